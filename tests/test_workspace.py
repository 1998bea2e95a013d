"""Which files are indexed, open buffers over disk, and the file watcher."""

import os
import time
from pathlib import Path

from retrieval.workspace import FileFilter, iter_source_files, read_source_file
from retrieval.workspace_index import WorkspaceIndex


def _write(root: Path, rel: str, data: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


def test_discovery_skips_ignored_vendored_secret_and_non_source_files(tmp_path: Path):
    _write(tmp_path, "pkg/mod.py", "x = 1\n")
    _write(tmp_path, "pkg/sub/deep.ts", "let y = 2\n")
    _write(tmp_path, ".gitignore", "generated/\n*.tmp.py\n")
    _write(tmp_path, "generated/out.py", "z = 3\n")
    _write(tmp_path, "pkg/scratch.tmp.py", "z = 3\n")
    _write(tmp_path, "pkg/.gitignore", "local.py\n")
    _write(tmp_path, "pkg/local.py", "z = 3\n")
    _write(tmp_path, "node_modules/lib/index.js", "z\n")
    _write(tmp_path, ".git/hooks/x.py", "z\n")
    _write(tmp_path, "env/pyvenv.cfg", "home = /usr\n")
    _write(tmp_path, "env/lib/site.py", "z\n")
    _write(tmp_path, ".env", "SECRET=1\n")
    _write(tmp_path, "notes.txt", "not source\n")
    files = {p.relative_to(tmp_path).as_posix() for p in iter_source_files(FileFilter(tmp_path))}
    assert files == {"pkg/mod.py", "pkg/sub/deep.ts"}


def test_exclude_setting_adds_patterns(tmp_path: Path):
    _write(tmp_path, "a.py", "x\n")
    _write(tmp_path, "secret_stuff/b.py", "x\n")
    found = iter_source_files(FileFilter(tmp_path, exclude=("secret_stuff/",)))
    assert [p.name for p in found] == ["a.py"]


def test_binary_and_oversized_files_are_not_read(tmp_path: Path):
    binary = _write(tmp_path, "bin.py", b"abc\0def")
    big = _write(tmp_path, "big.py", "x = 1\n" * 100)
    bad_utf8 = _write(tmp_path, "latin.py", "caf\xe9 = 1\n".encode("latin-1"))
    assert read_source_file(binary, 1000) is None
    assert read_source_file(big, 100) is None
    assert read_source_file(big, 10_000) is not None
    assert "caf" in (read_source_file(bad_utf8, 1000) or "")


def test_open_buffer_wins_over_disk_until_closed(tmp_path: Path):
    path = _write(tmp_path, "a.py", "disk_version = 1\n")
    index = WorkspaceIndex(tmp_path)
    index.build()
    assert index.search("disk_version", 1, None)[0].chunk.path == str(path)
    index.open_document(path, "buffer_version = 1\n")
    index.refresh_from_disk(path)  # a watcher event while open: ignored
    assert index.search("disk_version", 1, None) == []
    assert index.search("buffer_version", 1, None)[0].chunk.path == str(path)
    index.close_document(path)
    assert index.search("disk_version", 1, None)[0].chunk.path == str(path)


def test_watcher_follows_changes_made_outside_the_editor(tmp_path: Path):
    _write(tmp_path, "a.py", "first_name = 1\n")
    index = WorkspaceIndex(tmp_path)
    index.build()
    index.start_watching(settle_seconds=0.1)
    try:
        _write(tmp_path, "b.py", "created_outside = 1\n")
        (tmp_path / "a.py").unlink()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if index.chunks.files() == [str(tmp_path / "b.py")]:
                break
            time.sleep(0.05)
        assert index.chunks.files() == [str(tmp_path / "b.py")]
    finally:
        index.stop_watching()


def test_secret_and_ignored_buffers_opened_in_the_editor_are_never_retrievable(tmp_path: Path):
    _write(tmp_path, ".gitignore", "local_settings.py\n")
    _write(tmp_path, "app.py", "api_key = load()\n")
    index = WorkspaceIndex(tmp_path, exclude=("private/",))
    index.build()
    buffers = {
        ".env": "API_KEY=hunter2_token\n",
        "local_settings.py": "API_KEY = 'hunter2_token'\n",
        "private/keys.py": "API_KEY = 'hunter2_token'\n",
        "deploy/id_rsa": "hunter2_token\n",
    }
    for rel, text in buffers.items():
        index.open_document(_write(tmp_path, rel, text), text)  # typed into, then saved
        index.refresh_from_disk(tmp_path / rel)  # and the watcher's event for the save
    assert index.search("API_KEY hunter2_token", 10, None) == []
    assert [Path(f).name for f in index.chunks.files()] == ["app.py"]


def test_watcher_rereads_a_changed_file_once_not_on_its_own_reads(tmp_path: Path):
    # watchdog also reports `opened` and `closed_no_write`; reading a changed file to
    # re-index it used to queue it again, forever.
    path = _write(tmp_path, "a.py", "first_name = 1\n")
    _write(tmp_path, "b.py", "other = 2\n")
    index = WorkspaceIndex(tmp_path)
    index.build()
    reads: list[Path] = []
    real_read = index._read

    def counting_read(p: Path) -> str | None:
        reads.append(p)
        return real_read(p)

    index._read = counting_read  # type: ignore[method-assign]
    index.start_watching(settle_seconds=0.1)
    try:
        path.write_text("second_name = 1\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not index.search("second_name", 1, None):
            time.sleep(0.05)
        assert index.search("second_name", 1, None)
        time.sleep(2.0)  # long enough for several settle periods of a feedback loop
        assert reads == [path]
        (tmp_path / "b.py").read_text()  # a read by another program: nothing to do
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))  # same stamp
        time.sleep(1.0)
        assert reads == [path]
    finally:
        index.stop_watching()


def test_a_closed_index_stops_its_build_and_never_starts_a_watcher(tmp_path: Path):
    # A settings change during indexing replaces the index: the old build must stop and
    # must not start a watcher on an index nobody uses.
    for i in range(200):
        _write(tmp_path, f"m{i}.py", f"value_{i} = {i}\n")
    index = WorkspaceIndex(tmp_path)
    seen: list[int] = []

    def progress(done: int, total: int, path: str) -> None:
        seen.append(done)
        if done == 10:
            index.close()

    assert index.build(progress) == 200
    assert max(seen) == 10  # stopped at the next file
    assert len(index.chunks.files()) == 10
    index.start_watching()
    assert not index.watching


def test_close_stops_a_running_watcher(tmp_path: Path):
    _write(tmp_path, "a.py", "x = 1\n")
    index = WorkspaceIndex(tmp_path)
    index.build()
    index.start_watching(settle_seconds=0.05)
    assert index.watching
    index.close()
    assert not index.watching
    _write(tmp_path, "b.py", "created_after_close = 1\n")
    time.sleep(0.5)
    assert index.chunks.files() == [str(tmp_path / "a.py")]

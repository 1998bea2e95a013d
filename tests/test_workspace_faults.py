"""Awkward files on disk: never a crash, never a leak out of the workspace."""

import os
from pathlib import Path

from retrieval.workspace_index import WorkspaceIndex


def test_awkward_files_are_skipped_or_handled(tmp_path: Path):
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    outside = tmp_path / "secret_outside.py"
    outside.write_text("AWS_SECRET = 'outside-the-workspace'\n")
    (root / "pkg" / "ok.py").write_text("def fine():\n    return 1\n")
    (root / "pkg" / "latin1.py").write_bytes(b"name = '\xe9t\xe9'\nvalue = 1\n")  # not UTF-8
    (root / "pkg" / "mixed.py").write_bytes(b"a = 1\r\nb = 2\rc = 3\n")
    (root / "pkg" / "blob.py").write_bytes(b"\x00\x01binary" * 100)
    (root / "pkg" / "huge.py").write_text("x = 1\n" * 400_000)  # 2.4 MB: over the limit
    os.symlink(outside, root / "pkg" / "link_out.py")  # leads out of the workspace
    os.symlink(root / "loop", root / "loop")  # a symlink loop
    os.symlink(root / "pkg", root / "pkg" / "again")  # a folder link back up
    index = WorkspaceIndex(root)
    index.build()
    files = {Path(f).name for f in index.chunks.files()}
    assert files == {"ok.py", "latin1.py", "mixed.py"}
    assert not index.search("AWS_SECRET outside workspace", 4, None)
    assert index.search("name value", 1, None)[0].chunk.path.endswith("latin1.py")
    # Deleted after being listed (or renamed away): dropped, not an error.
    (root / "pkg" / "ok.py").unlink()
    index.refresh_from_disk(root / "pkg" / "ok.py")
    assert "ok.py" not in {Path(f).name for f in index.chunks.files()}
    # A document opened from outside the workspace is never indexed.
    index.open_document(outside, outside.read_text())
    assert str(outside) not in index.chunks.files()


def _snapshot(index: WorkspaceIndex) -> dict[str, list[tuple[int, int, str]]]:
    return {
        f: [(c.start_line, c.end_line, c.text) for c in index.chunks.chunks_of(f)]
        for f in index.chunks.files()
    }


def test_a_branch_switch_storm_ends_identical_to_a_fresh_build(tmp_path: Path):
    import shutil
    import time

    root = tmp_path / "repo"
    for d in range(20):
        (root / f"mod{d}").mkdir(parents=True)
        for f in range(50):
            (root / f"mod{d}" / f"f{f}.py").write_text(f"def f{d}_{f}():\n    return {f}\n")
    index = WorkspaceIndex(root)
    index.build()
    index.start_watching(settle_seconds=0.3)
    try:
        # A checkout: thousands of events (rewrites, new files, a deleted folder, renames).
        for d in range(20):
            for f in range(50):
                (root / f"mod{d}" / f"f{f}.py").write_text(f"def g{d}_{f}(x):\n    return x\n")
        shutil.rmtree(root / "mod3")
        (root / "mod4").rename(root / "renamed4")
        (root / "new").mkdir()
        for f in range(200):
            (root / "new" / f"n{f}.py").write_text(f"VALUE_{f} = {f}\n")
        fresh = WorkspaceIndex(root)
        fresh.build()
        expected = _snapshot(fresh)
        deadline = time.monotonic() + 60
        while _snapshot(index) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _snapshot(index) == expected
    finally:
        index.stop_watching()


def test_the_index_store_spares_a_restart_from_re_reading_an_unchanged_workspace(
    tmp_path: Path,
):
    import os

    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    for i in range(30):
        (root / "pkg" / f"m{i}.py").write_text(f"def f{i}(value):\n    return value + {i}\n")
    store = tmp_path / "cache" / "index.sqlite"

    def snapshot(index: WorkspaceIndex) -> dict:
        return {
            f: [(c.start_line, c.text, c.tokens) for c in index.chunks.chunks_of(f)]
            for f in index.chunks.files()
        }

    first = WorkspaceIndex(root, store=store)
    first.build()
    assert first.build_stats == {"loaded": 0, "read": 30, "rechunked": 30}
    # Changes while the server was down: one edit, one touch without change, one deletion.
    (root / "pkg" / "m1.py").write_text("def changed(): pass\n")
    touched = root / "pkg" / "m2.py"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    (root / "pkg" / "m3.py").unlink()
    second = WorkspaceIndex(root, store=store)
    second.build()
    assert second.build_stats == {"loaded": 27, "read": 2, "rechunked": 1}
    fresh = WorkspaceIndex(root)
    fresh.build()
    assert snapshot(second) == snapshot(fresh)
    third = WorkspaceIndex(root, store=store)  # the deletion was dropped from the store too
    third.build()
    assert third.build_stats["loaded"] == 29 and snapshot(third) == snapshot(fresh)


def test_a_damaged_store_does_not_stop_indexing(tmp_path: Path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.py").write_text("x = 1\n")
    store = tmp_path / "index.sqlite"
    store.write_bytes(b"this is not a database")
    index = WorkspaceIndex(root, store=store)
    index.build()
    assert index.chunks.files() == [str(root / "a.py")]


def test_the_index_stops_at_its_chunk_limit_and_says_so(tmp_path: Path):
    root = tmp_path / "big"
    root.mkdir()
    for i in range(20):
        (root / f"m{i:02}.py").write_text("".join(f"v{j} = {j}\n" for j in range(30)))
    index = WorkspaceIndex(root, max_chunks=12)
    index.build()
    assert 12 <= len(index.chunks) < 12 + 6  # the file that crosses the limit is kept whole
    assert index.skipped_for_size == 20 - len(index.chunks.files())

"""Chunking, tokenization and Jaccard ranking."""

import pytest

from retrieval.chunking import window_chunks
from retrieval.index import ChunkIndex
from retrieval.tokenize import identifier_tokens, jaccard


def test_identifier_tokens_are_case_sensitive_word_sets():
    assert identifier_tokens("foo(bar, Foo) + foo_1") == {"foo", "bar", "Foo", "foo_1"}
    assert identifier_tokens("  ()[] ") == frozenset()


def test_jaccard():
    a, b = frozenset("abc"), frozenset("bcd")
    assert jaccard(a, b) == 2 / 4
    assert jaccard(frozenset(), frozenset()) == 0.0


def test_windows_cover_every_line_with_overlap():
    text = "".join(f"line{i}\n" for i in range(23))
    chunks = window_chunks("f.py", text, window=10, stride=5)
    assert [(c.start_line, c.end_line) for c in chunks] == [(0, 10), (5, 15), (10, 20), (13, 23)]
    assert chunks[0].text.splitlines()[0] == "line0"
    assert "line22" in chunks[-1].tokens


def test_short_file_is_one_chunk_and_blank_windows_are_dropped():
    assert [(c.start_line, c.end_line) for c in window_chunks("f.py", "a\nb\n")] == [(0, 2)]
    assert window_chunks("f.py", "\n\n\n") == []


def _index(files: dict[str, str]) -> ChunkIndex:
    index = ChunkIndex(window=4, stride=2)
    for path, text in files.items():
        index.update_file(path, text)
    return index


def test_search_ranks_by_jaccard_and_excludes_the_current_file():
    index = _index(
        {
            "cur.py": "load_items save_items path\n",
            "a.py": "def load_items(path):\n    return read(path)\n",
            "b.py": "def unrelated(x):\n    return x\n",
        }
    )
    hits = index.search("items = load_items(path)", k=3, exclude_path="cur.py")
    assert [h.chunk.path for h in hits] == ["a.py", "b.py"][: len(hits)]
    assert hits[0].chunk.path == "a.py"
    query = identifier_tokens("items = load_items(path)")
    assert hits[0].score == jaccard(query, hits[0].chunk.tokens)
    assert all(h.chunk.path != "cur.py" for h in hits)


def test_overlapping_windows_of_one_file_count_once():
    text = "".join(f"alpha beta gamma{i}\n" for i in range(12))
    index = _index({"a.py": text, "b.py": "alpha\n"})
    hits = index.search("alpha beta", k=3)
    spans = [(h.chunk.path, h.chunk.start_line, h.chunk.end_line) for h in hits]
    for i, (p1, s1, e1) in enumerate(spans):
        for p2, s2, e2 in spans[i + 1 :]:
            assert p1 != p2 or e1 <= s2 or e2 <= s1


def test_update_rechunks_only_that_file_and_remove_forgets_it():
    index = _index({"a.py": "old_name = 1\n", "b.py": "other = 2\n"})
    b_chunks = index.chunks_of("b.py")
    index.update_file("a.py", "new_name = 1\n")
    assert index.search("old_name", k=5) == []
    assert index.search("new_name", k=5)[0].chunk.path == "a.py"
    assert index.chunks_of("b.py") == b_chunks
    index.remove_file("a.py")
    assert index.files() == ["b.py"]
    assert index.search("new_name", k=5) == []


@pytest.mark.parametrize("compact_slack", [10_000, 0])
def test_search_matches_an_exhaustive_reference(compact_slack: int):
    """The vectorised search returns exactly what scoring every chunk would, after edits
    and removals (with removed chunks left in the posting lists, or compacted away)."""
    import random

    from retrieval.index import ChunkIndex
    from retrieval.tokenize import jaccard

    rng = random.Random(7)
    words = [f"w{i}" for i in range(60)] + ["self", "return", "if"] * 10
    index = ChunkIndex(window=4, stride=2)
    index.compact_slack = compact_slack
    files = {}
    for f in range(12):
        lines = [" ".join(rng.choices(words, k=rng.randint(1, 6))) for _ in range(30)]
        files[f"f{f}.py"] = "\n".join(lines)
        index.update_file(f"f{f}.py", files[f"f{f}.py"])
    for edit in range(3):  # incremental edits: every file re-chunked three times
        for f in range(12):
            files[f"f{f}.py"] = files[f"f{f}.py"].replace(f"w{edit}", f"changed{edit}")
            index.update_file(f"f{f}.py", files[f"f{f}.py"])
    index.remove_file("f11.py")
    stats = index.stats()
    live = sum(len(c.tokens) for p in index.files() for c in index.chunks_of(p))
    assert stats["posting_entries"] >= live
    if compact_slack == 0:
        assert 0 < stats["dead"] <= stats["chunks"] + 1  # compacted along the way
    else:
        assert stats["dead"] > stats["chunks"]  # never compacted
    all_chunks = [c for path in index.files() for c in index.chunks_of(path)]
    for q in range(40):
        query = " ".join(rng.choices(words, k=rng.randint(1, 25)))
        exclude = f"f{q % 12}.py"
        got = index.search(query, 5, exclude)
        from retrieval.tokenize import identifier_tokens

        qt = identifier_tokens(query)
        ranked = sorted(
            (c for c in all_chunks if c.path != exclude and c.tokens & qt),
            key=lambda c: (-jaccard(qt, c.tokens), c.path, c.start_line),
        )
        expected = []
        for c in ranked:
            if any(
                p.path == c.path and p.start_line < c.end_line and c.start_line < p.end_line
                for p in expected
            ):
                continue
            expected.append(c)
            if len(expected) == 5:
                break
        assert [(s.chunk.path, s.chunk.start_line) for s in got] == [
            (c.path, c.start_line) for c in expected
        ]

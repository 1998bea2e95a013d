"""Property-based fuzzing of what the handlers rely on: document sync, the index kept in
step with it, completion requests at any position, and settings of any shape."""

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types

from lsp_server.documents import LspTextDocument
from lsp_server.settings import SETTING_KEYS, parse_settings
from models.engine import CompletionEngine, CompletionOptions, CompletionRequest
from models.text_lines import position_from_client_units
from retrieval.chunking import window_chunks
from retrieval.workspace_index import WorkspaceIndex
from tests.fakes import FakeGenerator

# Mixed line endings, and the characters that Python's splitlines() (so pygls) would
# take for line breaks but LSP does not: form feed, \x1c-\x1e, NEL, U+2028/U+2029. Non-BMP
# characters count two UTF-16 units (the client's default position encoding).
TEXT = st.lists(
    st.sampled_from(
        [*"ab_ (x):=\n\t é€", "\r\n", "\r", "\x0c", "\x1c", "\x1e", "\x85", "\u2028", "\u2029"]
        + ["😀", "𝒳"]
    ),
    max_size=40,
).map("".join)
EOL = re.compile(r"\r\n|\r|\n")


def _line_starts(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each LSP line (end excludes its line break)."""
    spans, start = [], 0
    for m in EOL.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    return [*spans, (start, len(text))]


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@st.composite
def edits(draw, text: str):
    """An edit inside `text` as an editor sends it: code-point offsets for the expected
    text, and the same positions in UTF-16 units for the client's message."""
    spans = _line_starts(text)
    l1 = draw(st.integers(0, len(spans) - 1))
    c1 = draw(st.integers(0, spans[l1][1] - spans[l1][0]))
    l2 = draw(st.integers(l1, len(spans) - 1))
    c2 = draw(st.integers(c1 if l2 == l1 else 0, spans[l2][1] - spans[l2][0]))
    u1 = _utf16(text[spans[l1][0] : spans[l1][0] + c1])
    u2 = _utf16(text[spans[l2][0] : spans[l2][0] + c2])
    return l1, c1, l2, c2, (u1, u2), draw(TEXT)


def _apply(text: str, l1: int, c1: int, l2: int, c2: int, new: str) -> str:
    spans = _line_starts(text)
    start, end = spans[l1][0] + c1, spans[l2][0] + c2
    return text[:start] + new + text[end:]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_edit_sequences_keep_document_index_and_completions_consistent(
    data, tmp_path_factory
):
    root = tmp_path_factory.mktemp("fuzz")
    path = root / "m.py"
    index = WorkspaceIndex(root, window=3, stride=2)
    expected = data.draw(TEXT)
    # The server's documents (lsp_server.documents), with incremental sync as negotiated.
    doc = LspTextDocument(
        path.as_uri(), expected, version=0, sync_kind=types.TextDocumentSyncKind.Incremental
    )
    generator = FakeGenerator()
    engine = CompletionEngine(generator, index)  # type: ignore[arg-type]
    for _ in range(data.draw(st.integers(1, 8))):
        l1, c1, l2, c2, (u1, u2), new = data.draw(edits(doc.source))
        doc.apply_change(
            types.TextDocumentContentChangePartial(
                range=types.Range(types.Position(l1, u1), types.Position(l2, u2)), text=new
            )
        )
        expected = _apply(expected, l1, c1, l2, c2, new)
        assert doc.source == expected  # the server's copy is what the client has
        index.open_document(path, doc.source)
        got = [(c.start_line, c.end_line, c.text) for c in index.chunks.chunks_of(str(path))]
        want = [
            (c.start_line, c.end_line, c.text) for c in window_chunks(str(path), expected, 3, 2)
        ]
        assert got == want  # the index follows the buffer exactly
        # A cursor anywhere in the document, in UTF-16 units, mapped as the server maps it.
        spans = _line_starts(expected)
        line = data.draw(st.integers(0, len(spans) - 1))
        char = data.draw(st.integers(0, spans[line][1] - spans[line][0]))
        units = _utf16(expected[spans[line][0] : spans[line][0] + char])
        assert position_from_client_units(doc.source, line, units) == (line, char)
        mode = data.draw(st.sampled_from(["never", "always", "selective"]))
        request = CompletionRequest(path, doc.source, line, char)
        left, right = request.split()
        assert left == expected[: spans[line][0] + char]
        assert left + right == doc.source
        result = engine.complete(request, CompletionOptions(mode=mode))
        assert result.record["mode"] == mode
        assert result.record["completion_chars"] == len(result.text)
        if not result.record["multiline"]:
            assert "\n" not in result.text
        # Whatever the shape rules kept is the start of what the generator said.
        assert result.text.split("\n")[0].strip() in generator.output.split("\n")[0]


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_positions_past_the_end_are_clamped(data):
    text = data.draw(TEXT)
    line = data.draw(st.integers(-3, 50))
    char = data.draw(st.integers(-3, 80))
    left, right = CompletionRequest(Path("m.py"), text, line, char).split()
    assert left + right == text
    spans = _line_starts(text)
    clamped = min(max(line, 0), len(spans) - 1)
    start, end = spans[clamped]
    assert len(left) == start + min(max(char, 0), end - start)


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10_000)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        JSONISH,
        st.dictionaries(st.sampled_from(list(SETTING_KEYS)), JSONISH, max_size=6),
    )
)
def test_settings_of_any_shape_never_raise_and_bad_values_are_reported(raw):
    parsed, errors = parse_settings(raw)
    assert all(isinstance(e, str) and e for e in errors)
    again, _ = parse_settings(raw, parsed)
    assert again == parsed  # applying the same settings twice changes nothing


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_client_positions_map_to_code_points_in_every_encoding(data):
    text = data.draw(TEXT)
    encoding, width = data.draw(st.sampled_from([("utf-8", 1), ("utf-16", 2), ("utf-32", 4)]))
    spans = _line_starts(text)
    line = data.draw(st.integers(0, len(spans) - 1))
    char = data.draw(st.integers(0, spans[line][1] - spans[line][0]))
    codec = {"utf-8": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}[encoding]
    units = len(text[spans[line][0] : spans[line][0] + char].encode(codec)) // width
    assert position_from_client_units(text, line, units, encoding) == (line, char)
    # Past the end of the line, and past the last line: clamped to the ends.
    line_end = spans[line][1] - spans[line][0]
    assert position_from_client_units(text, line, 10_000, encoding) == (line, line_end)
    last = len(spans) - 1
    assert position_from_client_units(text, last + 5, 0, encoding) == (
        last,
        spans[last][1] - spans[last][0],
    )

"""Property-based fuzzing of what the handlers rely on: document sync, the index kept in
step with it, completion requests at any position, and settings of any shape."""

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace import TextDocument

from lsp_server.settings import SETTING_KEYS, parse_settings
from models.engine import CompletionEngine, CompletionOptions, CompletionRequest
from retrieval.chunking import window_chunks
from retrieval.workspace_index import WorkspaceIndex
from tests.fakes import FakeGenerator

# Mixed line endings included; no other characters that Python's splitlines() (and so
# pygls) would take for a line break.
TEXT = st.lists(st.sampled_from([*"ab_ (x):=\n\t é€", "\r\n", "\r"]), max_size=40).map("".join)
EOL = re.compile(r"\r\n|\r|\n")


def _line_starts(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each LSP line (end excludes its line break)."""
    spans, start = [], 0
    for m in EOL.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    return [*spans, (start, len(text))]


@st.composite
def edits(draw, text: str):
    """An edit inside `text` as an editor sends it (UTF-16 positions; BMP text here)."""
    spans = _line_starts(text)
    l1 = draw(st.integers(0, len(spans) - 1))
    c1 = draw(st.integers(0, spans[l1][1] - spans[l1][0]))
    l2 = draw(st.integers(l1, len(spans) - 1))
    c2 = draw(st.integers(c1 if l2 == l1 else 0, spans[l2][1] - spans[l2][0]))
    return l1, c1, l2, c2, draw(TEXT)


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
    doc = TextDocument(path.as_uri(), expected, version=0)
    engine = CompletionEngine(FakeGenerator(), index)  # type: ignore[arg-type]
    for _ in range(data.draw(st.integers(1, 8))):
        l1, c1, l2, c2, new = data.draw(edits(doc.source))
        doc.apply_change(
            types.TextDocumentContentChangePartial(
                range=types.Range(types.Position(l1, c1), types.Position(l2, c2)), text=new
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
        line = data.draw(st.integers(-3, 50))
        char = data.draw(st.integers(-3, 80))
        mode = data.draw(st.sampled_from(["never", "always", "selective"]))
        request = CompletionRequest(path, doc.source, line, char)
        left, right = request.split()
        assert left + right == doc.source
        if 0 <= line < len(doc.lines) and 0 <= char <= len(doc.lines[line].rstrip("\r\n")):
            offset = sum(len(x) for x in doc.lines[:line]) + char  # pygls's own reading
            assert len(left) == offset
        result = engine.complete(request, CompletionOptions(mode=mode))
        assert isinstance(result.text, str) and result.record["mode"] == mode


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

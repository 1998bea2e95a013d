"""Definitions and imports of each file (tree-sitter), for the context a cursor needs.

The Jaccard windows find code that looks like the lines before the cursor; what a
completion often needs instead is the definition of the function being called or the class
being used, which may look like nothing nearby. Here every file with a grammar is reduced to
its definitions (functions, classes with their fields and method signatures, methods,
module-level constants and type aliases: name, kind, signature, first doc line, line) and
its imports. `extract_symbols` does one file; `SymbolIndex` keeps a workspace of them,
updated one file at a time, and resolves names through the importing file's imports first
and by unique name second (`retrieval.needed`).
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from repoformer_common.languages import language_of
from retrieval.syntax import GRAMMARS, load_parser

# A rendered class lists at most this many lines of members; a type alias or a constant
# keeps at most this many lines of its text.
MAX_CLASS_MEMBER_LINES = 16
MAX_VALUE_LINES = 3
MAX_LINE_CHARS = 160


@dataclass(frozen=True, slots=True)
class Definition:
    """One named definition. `line` is 0-based; `text` is its compact rendering: the
    signature (every line up to the body), the first doc line, and for a class its
    fields and the signatures of its methods, never a body."""

    name: str
    kind: str
    signature: str
    doc: str
    path: str
    line: int
    text: str
    container: str = ""  # the class of a method

    def as_json(self) -> list[Any]:
        return [
            self.name,
            self.kind,
            self.signature,
            self.doc,
            self.line,
            self.text,
            self.container,
        ]

    @classmethod
    def from_json(cls, path: str, row: list[Any]) -> Definition:
        name, kind, signature, doc, line, text, container = row
        return cls(name, kind, signature, doc, path, line, text, container)


@dataclass(frozen=True, slots=True)
class Import:
    """One imported name. `module` as written (`inventory.storage`, `./storage`,
    `com.acme.Item`, `example.com/shop/model`); `name` the imported member ("" when the
    module itself is bound); `alias` the name it is bound to in the file; `level` the
    leading dots of a Python relative import."""

    module: str
    name: str
    alias: str
    level: int = 0


@dataclass(frozen=True)
class FileSymbols:
    path: str
    language: str
    definitions: tuple[Definition, ...] = ()
    imports: tuple[Import, ...] = ()
    package: str = ""  # Java package, Go package name, C# namespace

    def to_json(self) -> dict[str, Any]:
        return {
            "language": self.language,
            "package": self.package,
            "definitions": [d.as_json() for d in self.definitions],
            "imports": [asdict(i) for i in self.imports],
        }

    @classmethod
    def from_json(cls, path: str, data: dict[str, Any]) -> FileSymbols:
        return cls(
            path,
            data["language"],
            tuple(Definition.from_json(path, row) for row in data["definitions"]),
            tuple(Import(**row) for row in data["imports"]),
            data.get("package", ""),
        )


# -- extraction -------------------------------------------------------------------------------


def _text(node: Any) -> str:
    return node.text.decode("utf-8", errors="replace") if node is not None else ""


def _clip(text: str, max_lines: int) -> str:
    lines = [ln[:MAX_LINE_CHARS] for ln in text.splitlines()]
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], "..."]
    return "\n".join(lines)


def _dedent(text: str, column: int) -> str:
    """Take the definition's own indentation off its continuation lines."""
    lines = text.split("\n")
    out = [lines[0]]
    for line in lines[1:]:
        cut = min(column, len(line) - len(line.lstrip(" \t")))
        out.append(line[cut:])
    return "\n".join(out)


def _source_until(node: Any, end: int, source: bytes) -> str:
    """The source from the node's start to byte `end`, dedented."""
    raw = source[node.start_byte : end].decode("utf-8", errors="replace").rstrip()
    return _dedent(raw, node.start_point[1])


def _head(node: Any, body: Any, source: bytes) -> str:
    """The source from the node's start up to its body: the whole signature."""
    return _source_until(node, body.start_byte if body is not None else node.end_byte, source)


def _first_doc_line(text: str) -> str:
    """The first non-empty line of a docstring or comment, without its markers."""
    for line in text.splitlines():
        line = line.strip().strip("\"'`").strip()
        for marker in ("///", "//", "/**", "/*", "*/", "#", "*"):
            if line.startswith(marker):
                line = line[len(marker) :].strip()
        line = line.removeprefix("<summary>").removesuffix("</summary>").strip()
        if line.endswith("*/"):
            line = line[:-2].strip()
        line = line.strip("\"'").strip()
        if line:
            return line[:MAX_LINE_CHARS]
    return ""


def _leading_comment(node: Any) -> str:
    """The first line of the comments right above a node (no blank line between)."""
    comments: list[str] = []
    prev = node.prev_named_sibling
    row = node.start_point[0]
    while prev is not None and "comment" in prev.type and prev.end_point[0] >= row - 1:
        comments.insert(0, _text(prev))
        row = prev.start_point[0]
        prev = prev.prev_named_sibling
    return _first_doc_line("\n".join(comments))


class _Extractor:
    """Walks one parsed file; subclasses know a language's node types."""

    language = ""
    comment = "//"

    def __init__(self, path: str, source: bytes) -> None:
        self.path = path
        self.source = source
        self.definitions: list[Definition] = []
        self.imports: list[Import] = []
        self.package = ""

    def add(
        self,
        node: Any,
        name: str,
        kind: str,
        signature: str,
        doc: str,
        text: str,
        container: str = "",
    ) -> Definition:
        definition = Definition(
            name, kind, signature, doc, self.path, node.start_point[0], text, container
        )
        self.definitions.append(definition)
        return definition

    def render(self, signature: str, doc: str, members: Iterable[str] = ()) -> str:
        """`// doc` above the signature, members inside `{ ... }` (brace languages)."""
        lines = [f"{self.comment} {doc}"] if doc else []
        body = [f"    {m}" for member in members for m in member.split("\n")]
        if body:
            body = body[:MAX_CLASS_MEMBER_LINES] + (
                ["    ..."] if len(body) > MAX_CLASS_MEMBER_LINES else []
            )
            lines += [f"{signature} {{", *body, "}"]
        else:
            lines.append(f"{signature} {{ ... }}" if "(" in signature else signature)
        return "\n".join(lines)

    def run(self, root: Any) -> None:
        raise NotImplementedError


class _Python(_Extractor):
    language = "python"
    comment = "#"

    def run(self, root: Any) -> None:
        for node in root.named_children:
            if node.type in ("import_statement", "import_from_statement"):
                self.imports += self._imports(node)
            else:
                self._statement(node, "")

    def _imports(self, node: Any) -> Iterator[Import]:
        if node.type == "import_statement":
            for item in node.children_by_field_name("name"):
                if item.type == "aliased_import":
                    module = _text(item.child_by_field_name("name"))
                    yield Import(module, "", _text(item.child_by_field_name("alias")))
                else:  # `import a.b` binds `a`; the chain `a.b.f` is resolved from it
                    module = _text(item)
                    yield Import(module, "", module.split(".")[0])
            return
        module_node = node.child_by_field_name("module_name")
        level, module = 0, _text(module_node)
        if module_node is not None and module_node.type == "relative_import":
            prefix = next((c for c in module_node.children if c.type == "import_prefix"), None)
            level = len(_text(prefix))
            dotted = next((c for c in module_node.children if c.type == "dotted_name"), None)
            module = _text(dotted)
        for item in node.children_by_field_name("name"):
            if item.type == "aliased_import":
                name = _text(item.child_by_field_name("name"))
                yield Import(module, name, _text(item.child_by_field_name("alias")), level)
            else:
                yield Import(module, _text(item), _text(item), level)

    def _docstring(self, body: Any) -> str:
        first = body.named_children[0] if body is not None and body.named_children else None
        if first is not None and first.type == "expression_statement":
            string = first.named_children[0] if first.named_children else None
            if string is not None and string.type == "string":
                return _first_doc_line(_text(string))
        return ""

    def _statement(self, node: Any, container: str) -> None:
        outer = node
        if node.type == "decorated_definition":
            node = node.child_by_field_name("definition")
            if node is None:
                return
        if node.type == "function_definition":
            self._function(outer, node, container)
        elif node.type == "class_definition" and not container:
            self._class(outer, node)
        elif not container:
            self._module_value(node)

    def _signature(self, outer: Any, node: Any) -> str:
        """Up to the `:` that opens the body (a comment before the body's first statement
        belongs to the body)."""
        colons = [c for c in node.children if c.type == ":"]
        return _source_until(outer, colons[-1].end_byte if colons else node.end_byte, self.source)

    def _function(self, outer: Any, node: Any, container: str) -> Definition:
        signature = self._signature(outer, node)
        doc = self._docstring(node.child_by_field_name("body"))
        text = signature + (f'\n    """{doc}"""' if doc else "") + "\n    ..."
        kind = "method" if container else "function"
        name = _text(node.child_by_field_name("name"))
        return self.add(
            outer, name, kind, signature, doc or _leading_comment(outer), text, container
        )

    def _class(self, outer: Any, node: Any) -> None:
        name = _text(node.child_by_field_name("name"))
        signature = self._signature(outer, node)
        body = node.child_by_field_name("body")
        doc = self._docstring(body)
        members: list[str] = []
        for child in body.named_children if body is not None else []:
            inner = (
                child.child_by_field_name("definition")
                if child.type == "decorated_definition"
                else child
            )
            if inner is not None and inner.type == "function_definition":
                method = self._function(child, inner, name)
                members.append(method.signature + " ...")
            elif child.type == "expression_statement" and child.named_children:
                assignment = child.named_children[0]
                if assignment.type == "assignment":  # a field: `price_cents: int = 0`
                    members.append(_clip(_text(child), 1))
        lines = [signature] + ([f'    """{doc}"""'] if doc else [])
        body_lines = [f"    {ln}" for m in members for ln in m.split("\n")]
        if len(body_lines) > MAX_CLASS_MEMBER_LINES:
            body_lines = [*body_lines[:MAX_CLASS_MEMBER_LINES], "    ..."]
        lines += body_lines or ["    ..."]
        self.add(outer, name, "class", signature, doc or _leading_comment(outer), "\n".join(lines))

    def _module_value(self, node: Any) -> None:
        if node.type == "type_alias_statement":
            left = node.child_by_field_name("left")
            name = _text(left).split("[")[0]
            text = _clip(_text(node), MAX_VALUE_LINES)
            self.add(node, name, "type", text.split("\n")[0], _leading_comment(node), text)
            return
        if node.type != "expression_statement" or not node.named_children:
            return
        assignment = node.named_children[0]
        if assignment.type != "assignment":
            return
        left = assignment.child_by_field_name("left")
        if left is None or left.type != "identifier":
            return
        name = _text(left)
        annotation = _text(assignment.child_by_field_name("type"))
        if annotation.endswith("TypeAlias"):
            kind = "type"
        elif name.isupper() or (name.lstrip("_")[:1].isupper() and "_" in name):
            kind = "constant"
        else:
            kind = "variable"
        text = _clip(_text(node), MAX_VALUE_LINES)
        self.add(node, name, kind, text.split("\n")[0], _leading_comment(node), text)


class _JavaScript(_Extractor):
    language = "javascript"

    _FUNCTIONS = ("function_declaration", "generator_function_declaration")
    _CLASSES = ("class_declaration", "abstract_class_declaration", "class")
    _TYPES: tuple[str, ...] = (
        "interface_declaration",
        "type_alias_declaration",
        "enum_declaration",
    )

    def run(self, root: Any) -> None:
        for node in root.named_children:
            if node.type == "import_statement":
                self.imports += self._imports(node)
            elif node.type == "export_statement":
                declaration = node.child_by_field_name("declaration")
                value = node.child_by_field_name("value")
                if declaration is not None:
                    self._declaration(declaration, node)
                elif value is not None and value.type in self._CLASSES + ("function_expression",):
                    self._declaration(value, node)
            else:
                self._declaration(node, node)

    def _imports(self, node: Any) -> Iterator[Import]:
        source = node.child_by_field_name("source")
        module = _text(source).strip("\"'`")
        clause = next((c for c in node.named_children if c.type == "import_clause"), None)
        for part in clause.named_children if clause is not None else []:
            if part.type == "identifier":  # default import
                yield Import(module, "default", _text(part))
            elif part.type == "namespace_import":
                ident = next((c for c in part.named_children if c.type == "identifier"), None)
                yield Import(module, "", _text(ident))
            elif part.type == "named_imports":
                for spec in part.named_children:
                    if spec.type != "import_specifier":
                        continue
                    name = _text(spec.child_by_field_name("name"))
                    alias = _text(spec.child_by_field_name("alias")) or name
                    yield Import(module, name, alias)

    def _declaration(self, node: Any, outer: Any) -> None:
        doc = _leading_comment(outer)
        if node.type in self._FUNCTIONS or node.type == "function_expression":
            signature = _head(outer, node.child_by_field_name("body"), self.source)
            name = _text(node.child_by_field_name("name")) or "default"
            text = self.render(signature, doc)
            self.add(outer, name, "function", signature, doc, text)
        elif node.type in self._CLASSES:
            self._class(node, outer, doc)
        elif node.type in self._TYPES:
            text = _clip(
                _text(outer), MAX_VALUE_LINES if node.type != "interface_declaration" else 12
            )
            name = _text(node.child_by_field_name("name"))
            self.add(outer, name, "type", text.split("\n")[0], doc, self.render(text, doc))
        elif node.type in ("lexical_declaration", "variable_declaration"):
            for declarator in node.named_children:
                if declarator.type != "variable_declarator":
                    continue
                name_node = declarator.child_by_field_name("name")
                if name_node is None or name_node.type != "identifier":
                    continue
                value = declarator.child_by_field_name("value")
                if value is not None and value.type in ("arrow_function", "function_expression"):
                    signature = _head(outer, value.child_by_field_name("body"), self.source)
                    signature = signature.removesuffix("=>").rstrip() + " => ..."
                    kind = "function"
                else:
                    signature = _clip(_text(outer), MAX_VALUE_LINES)
                    name = _text(name_node)
                    kind = "constant" if name.isupper() else "variable"
                text = f"{self.comment} {doc}\n{signature}" if doc else signature
                self.add(outer, _text(name_node), kind, signature, doc, text)

    def _class(self, node: Any, outer: Any, doc: str) -> None:
        name = _text(node.child_by_field_name("name")) or "default"
        body = node.child_by_field_name("body")
        signature = _head(outer, body, self.source)
        members: list[str] = []
        for child in body.named_children if body is not None else []:
            if child.type in ("method_definition", "method_signature", "abstract_method_signature"):
                method_sig = _head(child, child.child_by_field_name("body"), self.source)
                member = _text(child.child_by_field_name("name"))
                self.add(
                    child,
                    member,
                    "method",
                    method_sig,
                    _leading_comment(child),
                    self.render(method_sig, _leading_comment(child)),
                    name,
                )
                members.append(method_sig + ";")
            elif child.type in (
                "public_field_definition",
                "field_definition",
                "property_signature",
            ):
                members.append(_clip(_text(child), 1).rstrip(";") + ";")
        self.add(outer, name, "class", signature, doc, self.render(signature, doc, members))


class _TypeScript(_JavaScript):
    language = "typescript"


class _Java(_Extractor):
    language = "java"

    _TYPES: tuple[str, ...] = (
        "class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
    )
    _MEMBERS = ("method_declaration", "constructor_declaration")
    _FIELDS: tuple[str, ...] = ("field_declaration", "constant_declaration", "enum_constant")

    def run(self, root: Any) -> None:
        for node in root.named_children:
            if node.type == "package_declaration":
                self.package = _text(next(iter(node.named_children), None))
            elif node.type == "import_declaration":
                dotted = next(
                    (
                        c
                        for c in node.named_children
                        if c.type in ("scoped_identifier", "identifier")
                    ),
                    None,
                )
                full = _text(dotted)
                if any(c.type == "asterisk" for c in node.named_children):
                    self.imports.append(Import(full, "*", "*"))
                else:
                    module, _, name = full.rpartition(".")
                    self.imports.append(Import(module, name, name))
            elif node.type in self._TYPES:
                self._type(node, "")

    def _type(self, node: Any, outer_name: str) -> None:
        name = _text(node.child_by_field_name("name"))
        body = node.child_by_field_name("body")
        signature = _head(node, body, self.source)
        doc = _leading_comment(node)
        members: list[str] = []
        for child in body.named_children if body is not None else []:
            if child.type in self._MEMBERS:
                sig = _head(child, child.child_by_field_name("body"), self.source).rstrip(";")
                member = _text(child.child_by_field_name("name"))
                member_doc = _leading_comment(child)
                self.add(
                    child, member, "method", sig, member_doc, self.render(sig, member_doc), name
                )
                members.append(sig + ";")
            elif child.type in self._FIELDS:
                members.append(_clip(_text(child), 1))
            elif child.type in self._TYPES:
                self._type(child, name)
        kind = "type" if node.type == "interface_declaration" else "class"
        self.add(node, name, kind, signature, doc, self.render(signature, doc, members), outer_name)


class _CSharp(_Java):
    language = "c_sharp"

    _TYPES = (
        "class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "struct_declaration",
    )
    _FIELDS = ("field_declaration", "property_declaration", "enum_member_declaration")

    def run(self, root: Any) -> None:
        self._scope(root)

    def _scope(self, node: Any) -> None:
        for child in node.named_children:
            if child.type == "using_directive":
                name = next(
                    (c for c in child.named_children if c.type in ("identifier", "qualified_name")),
                    None,
                )
                self.imports.append(Import(_text(name), "*", "*"))
            elif child.type in ("namespace_declaration", "file_scoped_namespace_declaration"):
                self.package = _text(child.child_by_field_name("name"))
                body = child.child_by_field_name("body")
                self._scope(body if body is not None else child)
            elif child.type in self._TYPES:
                self._type(child, "")


class _Go(_Extractor):
    language = "go"

    def run(self, root: Any) -> None:
        for node in root.named_children:
            if node.type == "package_clause":
                self.package = _text(next(iter(node.named_children), None))
            elif node.type == "import_declaration":
                for spec in _descendants(node, "import_spec"):
                    path = _text(spec.child_by_field_name("path")).strip('"`')
                    alias = _text(spec.child_by_field_name("name")) or path.rsplit("/", 1)[-1]
                    self.imports.append(Import(path, "", alias))
            elif node.type in ("function_declaration", "method_declaration"):
                self._function(node)
            elif node.type == "type_declaration":
                for spec in node.named_children:
                    if spec.type in ("type_spec", "type_alias"):
                        text = _clip(_text(spec), 12)
                        name = _text(spec.child_by_field_name("name"))
                        doc = _leading_comment(node)
                        rendered = f"// {doc}\ntype {text}" if doc else f"type {text}"
                        self.add(
                            node, name, "type", f"type {text.split(chr(10))[0]}", doc, rendered
                        )
            elif node.type in ("const_declaration", "var_declaration"):
                kind = "constant" if node.type == "const_declaration" else "variable"
                for spec in _descendants(node, "const_spec", "var_spec"):
                    for name_node in spec.children_by_field_name("name"):
                        text = _clip(_text(spec), MAX_VALUE_LINES)
                        keyword = "const" if kind == "constant" else "var"
                        self.add(
                            spec,
                            _text(name_node),
                            kind,
                            f"{keyword} {text}",
                            "",
                            f"{keyword} {text}",
                        )

    def _function(self, node: Any) -> None:
        signature = _head(node, node.child_by_field_name("body"), self.source)
        doc = _leading_comment(node)
        container = ""
        receiver = node.child_by_field_name("receiver")
        if receiver is not None:
            types = [_text(t) for t in _descendants(receiver, "type_identifier")]
            container = types[0] if types else ""
        kind = "method" if container else "function"
        name = _text(node.child_by_field_name("name"))
        self.add(node, name, kind, signature, doc, self.render(signature, doc), container)


def _descendants(node: Any, *types: str) -> Iterator[Any]:
    for child in node.named_children:
        if child.type in types:
            yield child
        else:
            yield from _descendants(child, *types)


_EXTRACTORS: dict[str, type[_Extractor]] = {
    "python": _Python,
    "javascript": _JavaScript,
    "typescript": _TypeScript,
    "tsx": _TypeScript,
    "java": _Java,
    "go": _Go,
    "c_sharp": _CSharp,
}


def extract_symbols(path: str, text: str) -> FileSymbols | None:
    """The definitions and imports of one file; None when its language has no grammar
    here (or its grammar package is not installed)."""
    language = language_of(path)
    extractor_class = _EXTRACTORS.get(language.name) if language is not None else None
    grammar = GRAMMARS.get(PurePosixPath(path).suffix.lower())
    parser = load_parser(grammar) if grammar is not None else None
    if extractor_class is None or parser is None or language is None:
        return None
    source = text.encode("utf-8", errors="replace")
    extractor = extractor_class(path, source)
    extractor.run(parser.parse(source).root_node)
    return FileSymbols(
        path,
        language.name,
        tuple(extractor.definitions),
        tuple(extractor.imports),
        extractor.package,
    )


# -- the workspace's symbols -------------------------------------------------------------------

_JS_SUFFIXES = ("", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
_JS_INDEXES = tuple(f"/index{s}" for s in _JS_SUFFIXES[1:])


def _module_parts(path: str) -> tuple[str, ...]:
    """`src/pkg/mod.py` -> (src, pkg, mod); `pkg/__init__.py` -> (pkg,); `a/B.java` -> (a, B)."""
    pure = PurePosixPath(path)
    parts = [*pure.parent.parts, pure.stem]
    if pure.stem in ("__init__", "index"):
        parts.pop()
    return tuple(p for p in parts if p not in ("/", ""))


@dataclass
class SymbolIndex:
    """The symbols of a workspace's files, by file, by name and by module path. Thread-safe;
    updating one file re-extracts that file only."""

    files: dict[str, FileSymbols] = field(default_factory=dict)
    _by_name: dict[str, list[Definition]] = field(default_factory=dict)
    _by_module_tail: dict[str, set[str]] = field(default_factory=dict)
    _by_directory: dict[str, set[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __len__(self) -> int:
        return sum(len(s.definitions) for s in self.files.values())

    def update_file(self, path: str, text: str) -> FileSymbols | None:
        """Re-extract one file (from its new text); return its symbols."""
        symbols = extract_symbols(path, text)
        self.set_symbols(path, symbols)
        return symbols

    def set_symbols(self, path: str, symbols: FileSymbols | None) -> None:
        with self._lock:
            self._drop(path)
            if symbols is None:
                return
            self.files[path] = symbols
            for definition in symbols.definitions:
                self._by_name.setdefault(definition.name, []).append(definition)
            parts = _module_parts(path)
            if parts:
                self._by_module_tail.setdefault(parts[-1], set()).add(path)
            self._by_directory.setdefault(str(PurePosixPath(path).parent), set()).add(path)

    def remove_file(self, path: str) -> None:
        with self._lock:
            self._drop(path)

    def _drop(self, path: str) -> None:
        old = self.files.pop(path, None)
        if old is None:
            return
        for definition in old.definitions:
            same = self._by_name.get(definition.name)
            if same is not None:
                same[:] = [d for d in same if d.path != path]
                if not same:
                    del self._by_name[definition.name]
        parts = _module_parts(path)
        if parts:
            self._by_module_tail.get(parts[-1], set()).discard(path)
        self._by_directory.get(str(PurePosixPath(path).parent), set()).discard(path)

    # -- lookups (callers hold no lock: each returns copies) -----------------------------------

    def symbols_of(self, path: str) -> FileSymbols | None:
        with self._lock:
            return self.files.get(path)

    def named(self, name: str) -> list[Definition]:
        with self._lock:
            return list(self._by_name.get(name, ()))

    def module_files(self, importer: str, imp: Import, lang: str) -> list[str]:
        """The indexed files an import of `importer` (a file in language `lang`) refers
        to, nearest first."""
        with self._lock:
            if lang in ("javascript", "typescript", "tsx"):
                return self._js_module(importer, imp.module)
            if lang == "go":
                return self._go_package(imp.module)
            if lang == "python" and imp.level:
                base = PurePosixPath(importer).parent
                for _ in range(imp.level - 1):
                    base = base.parent
                target = base.joinpath(*imp.module.split(".")) if imp.module else base
                found = [
                    p
                    for p in (f"{target}.py", f"{target}.pyi", f"{target}/__init__.py")
                    if p in self.files
                ]
                return found
            return self._dotted(importer, imp.module.split(".") if imp.module else [])

    def _dotted(self, importer: str, parts: list[str]) -> list[str]:
        if not parts:
            return []
        tail = tuple(parts)
        found = [
            p
            for p in self._by_module_tail.get(parts[-1], ())
            if _module_parts(p)[-len(tail) :] == tail
        ]

        # The candidate sharing the most folders with the importer first (src layouts,
        # vendored copies), then the shortest path.
        def shared(p: str) -> int:  # folders in common with the importer
            return len(PurePosixPath(posixpath.commonpath([importer, p])).parts)

        return sorted(found, key=lambda p: (-shared(p), len(p), p))

    def _js_module(self, importer: str, module: str) -> list[str]:
        if not module.startswith("."):
            return []  # a package from node_modules, not the workspace's code
        target = posixpath.normpath(str(PurePosixPath(importer).parent / module))
        for candidate in [target + s for s in _JS_SUFFIXES] + [target + s for s in _JS_INDEXES]:
            if candidate in self.files:
                return [candidate]
        return []

    def _go_package(self, module: str) -> list[str]:
        parts = [p for p in module.split("/") if p]
        # The folder whose path ends with the longest tail of the import path.
        for size in range(len(parts), 0, -1):
            tail = "/" + "/".join(parts[-size:])
            dirs = [d for d in self._by_directory if d.endswith(tail)]
            if dirs:
                return sorted(p for d in sorted(dirs, key=len)[:1] for p in self._by_directory[d])
        return []

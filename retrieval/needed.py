"""The names a cursor needs, resolved to their definitions in other files.

From the code before the cursor, in priority order: the callee of each call the cursor is
inside (innermost first), the receiver chain of `obj.attr.` being typed, the other names
of the current line and the few lines above it (nearest first), and last the names the
current file imports. Each is resolved through the file's own imports (Python
`from x import y`, `import x as y`, relative imports; JS/TS `import`; Java imports; Go
package paths), then, failing that, by a name that only one other file defines.
Definitions of the current file are left out: the model sees that file already.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from retrieval.symbols import Definition, FileSymbols, Import, SymbolIndex, extract_symbols

_CHAIN = re.compile(r"[A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)*")
_CHAIN_AT_END = re.compile(r"([A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)*)\s*$")
_RECEIVER_AT_END = re.compile(r"([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)\.[\w$]*$")
_STRING = re.compile(r"\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|`[^`]*`")
# Python's keywords, and those of the brace languages (and `self`/`this`-like receivers):
# never a name to resolve on their own.
_KEYWORDS = frozenset(keyword.kwlist) | frozenset(
    "case catch const default export extends func function go implements instanceof "  # noqa: SIM905
    "interface let new nil null package private protected public static struct super "
    "switch this throw true false typeof var void self cls val do none type".split()
)
_SCAN_CHARS = 2000  # how far back an unclosed call is looked for


@dataclass(frozen=True, slots=True)
class NeededName:
    chain: tuple[str, ...]  # `storage.save_items` -> ("storage", "save_items")
    role: str  # "callee", "receiver", "nearby" or "import"


@dataclass(frozen=True, slots=True)
class Resolved:
    definition: Definition
    role: str  # why the cursor needs it (NeededName.role)
    via: str  # "import" (through the file's imports) or "name" (the only definition)

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.definition.path, self.definition.line, self.definition.name)


def _chain(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split("."))


def _open_calls(code: str) -> list[tuple[str, ...]]:
    """The callees of the calls left open before the end of `code`, innermost first."""
    depth = 0
    found: list[tuple[str, ...]] = []
    for i in range(len(code) - 1, -1, -1):
        ch = code[i]
        if ch in ")]}":
            depth += 1
        elif ch in "([{":
            if depth:
                depth -= 1
            elif ch == "(":
                match = _CHAIN_AT_END.search(code[:i])
                if match:
                    found.append(_chain(match.group(1)))
        elif ch in ";" and depth == 0:
            break
    return found


def needed_names(
    left: str, imports: tuple[Import, ...] = (), nearby_lines: int = 3
) -> list[NeededName]:
    """The names the code before the cursor needs, most needed first, each chain once."""
    code = _STRING.sub('""', left[-_SCAN_CHARS:])
    names: list[NeededName] = []
    seen: set[tuple[str, ...]] = set()

    def add(chain: tuple[str, ...], role: str) -> None:
        chain = tuple(p for p in chain if p)
        if not chain or chain in seen or (chain[0] in _KEYWORDS and len(chain) == 1):
            return
        seen.add(chain)
        names.append(NeededName(chain, role))

    for callee in _open_calls(code):
        add(callee, "callee")
    current = code.rsplit("\n", 1)[-1]
    receiver = _RECEIVER_AT_END.search(current)
    if receiver:
        add(_chain(receiver.group(1)), "receiver")
    lines = code.split("\n")
    for line in reversed(lines[-(nearby_lines + 1) :]):
        for match in reversed(list(_CHAIN.finditer(line))):
            add(_chain(match.group(0)), "nearby")
    for imp in imports:
        if imp.alias and imp.alias != "*":
            add((imp.alias,), "import")
    return names


class Resolver:
    """Resolves the needed names of one file against a workspace's symbols."""

    def __init__(self, index: SymbolIndex, path: str, text: str | None = None) -> None:
        """`text`: the file's current text, when the index may not hold this file."""
        self.index = index
        self.path = path
        symbols: FileSymbols | None = index.symbols_of(path)
        if symbols is None and text is not None:
            symbols = extract_symbols(path, text)
        self.imports = symbols.imports if symbols is not None else ()
        self.language = symbols.language if symbols is not None else ""
        self._by_alias = {imp.alias: imp for imp in self.imports if imp.alias != "*"}

    def resolve(self, names: list[NeededName], limit: int = 12) -> list[Resolved]:
        out: list[Resolved] = []
        seen: set[tuple[str, int, str]] = set()
        for needed in names:
            for found in self._resolve(needed):
                if found.key not in seen and found.definition.path != self.path:
                    seen.add(found.key)
                    out.append(found)
            if len(out) >= limit:
                break
        return out[:limit]

    def _resolve(self, needed: NeededName) -> list[Resolved]:
        head, rest = needed.chain[0], needed.chain[1:]
        imp = self._by_alias.get(head)
        if imp is not None:
            found = self._through_import(imp, needed.chain, rest)
            return [Resolved(d, needed.role, "import") for d in found]
        if head in ("self", "this", "cls") and rest:
            head, rest = rest[0], rest[1:]
        unique = self._unique(head, top_level=True)
        if unique is None and not rest and needed.role in ("callee", "receiver"):
            unique = self._unique(head, top_level=False)  # a method called by its name alone
        if unique is None and rest and needed.role == "callee":
            unique = self._unique(rest[-1], top_level=False)  # `obj.method(`
        return [Resolved(unique, needed.role, "name")] if unique is not None else []

    def _through_import(
        self, imp: Import, chain: tuple[str, ...], rest: tuple[str, ...]
    ) -> list[Definition]:
        if imp.name and imp.name != "default":
            # `from m import name`: a module of its own (Python submodule, Java class file)
            # or a definition in m.
            whole = Import(_join(imp.module, imp.name), "", imp.alias, imp.level)
            files = self.index.module_files(self.path, whole, self.language)
            target = imp.name
            if files:
                defs = self._top_level(files, target)
                if defs:
                    return defs[:1] + self._member(defs[0], rest)
                return self._top_level(files, rest[0])[:1] if rest else []
            defs = self._top_level(self.index.module_files(self.path, imp, self.language), target)
            return defs[:1] + (self._member(defs[0], rest) if defs else [])
        files = self.index.module_files(self.path, imp, self.language)
        if imp.name == "default":
            defs = self._top_level(files, imp.alias) or self._top_level(files, "default")
            return defs[:1] + (self._member(defs[0], rest) if defs else [])
        # The module itself: `import a.b` bound as `a`, `import x as y`, `import * as ns`,
        # a Go package. Its dotted part in the chain is skipped.
        depth = len(imp.module.split(".")) if imp.alias == imp.module.split(".")[0] else 1
        members = chain[depth:] if depth > 1 else rest
        if not files or not members:
            return []
        defs = self._top_level(files, members[0])
        return defs[:1] + (self._member(defs[0], members[1:]) if defs else [])

    def _top_level(self, files: list[str], name: str) -> list[Definition]:
        wanted = set(files)
        return [d for d in self.index.named(name) if d.path in wanted and not d.container]

    def _member(self, owner: Definition, rest: tuple[str, ...]) -> list[Definition]:
        """`Item.from_row` after `Item`: the method itself (the class already lists it)."""
        if owner.kind != "class" or not rest:
            return []
        return [
            d
            for d in self.index.named(rest[0])
            if d.path == owner.path and d.container == owner.name
        ][:1]

    def _unique(self, name: str, *, top_level: bool) -> Definition | None:
        if not name or name in _KEYWORDS:
            return None
        candidates = [
            d
            for d in self.index.named(name)
            if d.path != self.path and (not d.container) == top_level
        ]
        if len(candidates) == 1:
            return candidates[0]
        # Go and Java: the same package (folder) sees its names without an import.
        folder = self.path.rsplit("/", 1)[0]
        same = [d for d in candidates if d.path.rsplit("/", 1)[0] == folder]
        return same[0] if len(same) == 1 else None


def _join(module: str, name: str) -> str:
    return f"{module}.{name}" if module else name

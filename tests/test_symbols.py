"""The symbol index (definitions and imports, tree-sitter) and the resolution of the names a
cursor needs, for each grammar language, through real files and the workspace index."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.crossfile import LineMemory, needed_definitions
from retrieval.needed import needed_names
from retrieval.symbols import SymbolIndex, extract_symbols
from retrieval.workspace_index import WorkspaceIndex


def _index(files: dict[str, str]) -> SymbolIndex:
    index = SymbolIndex()
    for path, text in files.items():
        index.update_file(path, text)
    return index


def _resolve(files: dict[str, str], path: str, left: str) -> list[tuple[str, str, str]]:
    index = _index(files)
    found = needed_definitions(index, path, left, left)
    return [(d.definition.path, d.definition.name, d.via) for d in found]


# -- extraction -------------------------------------------------------------------------------

PY_MODELS = '''"""Models."""
from dataclasses import dataclass

MAX_ITEMS = 100
type Sku = str


@dataclass
class Item:
    """One stocked item."""

    sku: str
    price_cents: int = 0

    def __init__(self, sku: str, price_cents: int = 0) -> None:
        self.sku = sku

    @property
    def label(self) -> str:
        return self.sku.upper()


# Two decimals, always.
def format_cents(
    cents: int,
    currency: str = "EUR",
) -> str:
    return f"{cents / 100:.2f} {currency}"
'''


def test_python_definitions_have_kind_signature_doc_and_line():
    symbols = extract_symbols("pkg/models.py", PY_MODELS)
    assert symbols is not None
    by_name = {d.name: d for d in symbols.definitions}
    assert by_name["MAX_ITEMS"].kind == "constant"
    assert by_name["Sku"].kind == "type"
    item = by_name["Item"]
    assert (item.kind, item.line, item.doc) == ("class", 7, "One stocked item.")
    assert item.signature == "@dataclass\nclass Item:"
    # A class shows its fields and method signatures, never a body.
    assert "price_cents: int = 0" in item.text
    assert "def __init__(self, sku: str, price_cents: int = 0) -> None: ..." in item.text
    assert "upper()" not in item.text and "self.sku = sku" not in item.text
    assert by_name["label"].container == "Item" and by_name["label"].kind == "method"
    cents = by_name["format_cents"]
    # Every line up to the body, the leading comment's first line as its doc.
    assert (
        cents.signature
        == 'def format_cents(\n    cents: int,\n    currency: str = "EUR",\n) -> str:'
    )
    assert cents.doc == "Two decimals, always." and "return f" not in cents.text


def test_python_imports_absolute_aliased_and_relative():
    text = "import os.path as osp, sys\nfrom . import util\nfrom ..pkg.mod import a as b, c\n"
    symbols = extract_symbols("x/y/z.py", text)
    assert symbols is not None
    got = [(i.module, i.name, i.alias, i.level) for i in symbols.imports]
    assert got == [
        ("os.path", "", "osp", 0),
        ("sys", "", "sys", 0),
        ("", "util", "util", 1),
        ("pkg.mod", "a", "b", 2),
        ("pkg.mod", "c", "c", 2),
    ]


def test_languages_without_a_grammar_have_no_symbols():
    assert extract_symbols("notes.rs", "fn main() {}") is None
    assert extract_symbols("README.md", "# hi") is None


# -- resolution, per language ---------------------------------------------------------------------


def test_python_resolves_through_from_import_and_module_alias():
    files = {
        "proj/inventory/storage.py": "def save_items(path, items):\n    pass\n",
        "proj/inventory/models.py": PY_MODELS,
        "proj/other/storage.py": "def save_items(x):\n    pass\n",  # same name elsewhere
    }
    left = "from inventory.storage import save_items\n\ndef f(p, xs):\n    save_items("
    assert _resolve(files, "proj/inventory/restock.py", left)[0] == (
        "proj/inventory/storage.py",
        "save_items",
        "import",
    )
    left = "import inventory.models as m\n\nx = m.format_cents("
    assert _resolve(files, "proj/app.py", left)[0][:2] == (
        "proj/inventory/models.py",
        "format_cents",
    )


def test_python_relative_import_and_method_of_an_imported_class():
    files = {"pkg/models.py": PY_MODELS, "pkg/sub/helpers.py": "def helper():\n    pass\n"}
    left = "from ..models import Item\n\nitem = Item("
    assert _resolve(files, "pkg/sub/use.py", left)[0][:2] == ("pkg/models.py", "Item")
    left = "from .sub import helpers\n\nhelpers.helper("
    assert _resolve(files, "pkg/use.py", left)[0][:2] == ("pkg/sub/helpers.py", "helper")


def test_unique_name_resolves_without_import_and_ambiguous_names_do_not():
    files = {"a/one.py": "def only_here(x):\n    pass\n", "a/two.py": "def twice():\n    pass\n"}
    files["b/three.py"] = "def twice():\n    pass\n"
    assert _resolve(files, "c/use.py", "y = only_here(")[0] == ("a/one.py", "only_here", "name")
    assert _resolve(files, "c/use.py", "y = twice(") == []


def test_current_file_definitions_are_left_out():
    files = {"a/use.py": "def local_fn():\n    pass\n"}
    assert _resolve(files, "a/use.py", "local_fn(") == []


def test_javascript_and_typescript_resolve_through_imports():
    files = {
        "web/src/util.ts": (
            "/** Adds tax. */\nexport function withTax(cents: number, rate = 0.2): number {\n"
            "  return cents * (1 + rate);\n}\n"
            "export class Cart {\n  items: string[] = [];\n  add(sku: string): void {}\n}\n"
            "export const RATE = 0.2;\nexport type Sku = string;\n"
        ),
        "web/src/lib/index.js": "export const helper = (a, b) => a + b;\n",
    }
    left = "import { withTax as tax, Cart } from './util';\n\nconst t = tax("
    found = _resolve(files, "web/src/app.ts", left)
    assert found[0] == ("web/src/util.ts", "withTax", "import")
    symbols = _index(files).symbols_of("web/src/util.ts")
    assert symbols is not None
    by_name = {d.name: d for d in symbols.definitions}
    assert by_name["withTax"].doc == "Adds tax."
    assert "return cents" not in by_name["withTax"].text
    assert "add(sku: string): void;" in by_name["Cart"].text
    assert by_name["RATE"].kind == "constant" and by_name["Sku"].kind == "type"
    left = "import * as lib from './lib';\nlib.helper("
    assert _resolve(files, "web/src/app.js", left)[0][:2] == ("web/src/lib/index.js", "helper")
    left = "import { Cart } from './util';\nconst c = new Cart();\nc.add("
    names = [n for _, n, _ in _resolve(files, "web/src/app.tsx", left)]
    assert "add" in names and "Cart" in names


def test_java_resolves_through_imports():
    files = {
        "src/main/java/com/acme/model/Item.java": (
            "package com.acme.model;\n/** A stocked item. */\npublic class Item {\n"
            "  private final String sku;\n"
            "  public Item(String sku, int cents) { this.sku = sku; }\n"
            "  public int cents() { return 0; }\n}\n"
        ),
        "src/main/java/com/acme/other/Item.java": "package com.acme.other;\npublic class Item {}\n",
    }
    left = (
        "package com.acme.store;\nimport com.acme.model.Item;\n"
        "class S { Item make() { return new Item("
    )
    found = _resolve(files, "src/main/java/com/acme/store/S.java", left)
    assert found[0] == ("src/main/java/com/acme/model/Item.java", "Item", "import")
    item = next(d for d in _index(files).named("Item") if "model" in d.path and d.kind == "class")
    assert "public Item(String sku, int cents);" in item.text and "this.sku" not in item.text
    assert item.doc == "A stocked item."


def test_go_resolves_through_package_paths_and_the_same_package():
    files = {
        "shop/model/item.go": (
            "package model\n\n// Item is stocked.\ntype Item struct {\n\tSku string\n}\n\n"
            "func NewItem(sku string) *Item { return &Item{Sku: sku} }\n\n"
            "func (i *Item) Label() string { return i.Sku }\n"
        ),
        "shop/store/helpers.go": "package store\n\nfunc keep(n int) bool { return n > 0 }\n",
    }
    left = (
        'package store\n\nimport (\n\tm "example.com/shop/model"\n)\n\n'
        "func f() {\n\tx := m.NewItem("
    )
    found = _resolve(files, "shop/store/store.go", left)
    assert found[0] == ("shop/model/item.go", "NewItem", "import")
    symbols = _index(files).symbols_of("shop/model/item.go")
    assert symbols is not None and symbols.package == "model"
    label = next(d for d in symbols.definitions if d.name == "Label")
    assert label.container == "Item" and "return" not in label.text
    assert _resolve(files, "shop/store/store.go", "package store\nfunc g() { keep(")[0][:2] == (
        "shop/store/helpers.go",
        "keep",
    )


def test_csharp_resolves_by_name_behind_a_using():
    files = {
        "Acme/Model/Item.cs": (
            "using System;\nnamespace Acme.Model\n{\n    /// <summary>A stocked item.</summary>\n"
            "    public class Item\n    {\n        public int Cents { get; set; }\n"
            "        public Item(string sku) { }\n"
            "        public void Restock(int n) { }\n    }\n}\n"
        ),
    }
    left = "using Acme.Model;\nnamespace Acme.Store { class S { void F() { var i = new Item("
    found = _resolve(files, "Acme/Store/S.cs", left)
    assert found[0] == ("Acme/Model/Item.cs", "Item", "name")
    item = next(d for d in _index(files).named("Item") if d.kind == "class")
    assert item.doc == "A stocked item."
    assert "public void Restock(int n);" in item.text and "public int Cents" in item.text


# -- needed names -------------------------------------------------------------------------------


def test_needed_names_put_the_callee_and_receiver_first():
    left = "x = 1\ntotal = helpers.compute(items, cart.lines."
    names = needed_names(left)
    assert [n.chain for n in names[:2]] == [("helpers", "compute"), ("cart", "lines")]
    assert names[0].role == "callee" and names[1].role == "receiver"
    # a string's content is not a name
    assert ("hidden",) not in {n.chain for n in needed_names("f('hidden', ")}


def test_line_memory_keeps_the_order_while_typing_on_a_line():
    files = {
        "a/m.py": "def first(x):\n    pass\n\ndef second(y):\n    pass\n",
    }
    index = _index(files)
    memory = LineMemory()
    above = "from a.m import first, second\n"
    one = memory.stable("b.py", above, needed_definitions(index, "b.py", above + "second(", ""))
    two = memory.stable(
        "b.py", above, needed_definitions(index, "b.py", above + "second(first(", "")
    )
    # `first` became the innermost callee, but `second` keeps its place at the front.
    assert one[0].definition.name == "second"
    assert [d.definition.name for d in two][:2] == ["second", "first"]


# -- the workspace index: edits, deletes, restarts ---------------------------------------------


def test_rename_through_did_change_and_delete_on_disk(tmp_path: Path):
    (tmp_path / "lib.py").write_text("def old_name(a):\n    pass\n")
    index = WorkspaceIndex(tmp_path)
    index.build()
    lib = str(tmp_path / "lib.py")
    assert [d.path for d in index.symbols.named("old_name")] == [lib]
    index.open_document(tmp_path / "lib.py", "def new_name(a):\n    pass\n")  # didChange
    assert index.symbols.named("old_name") == []
    assert [d.path for d in index.symbols.named("new_name")] == [lib]
    index.close_document(tmp_path / "lib.py")  # back to the disk version
    assert [d.path for d in index.symbols.named("old_name")] == [lib]
    (tmp_path / "lib.py").unlink()
    index.apply_disk_changes({tmp_path / "lib.py"})
    assert index.symbols.named("old_name") == [] and index.symbols.symbols_of(lib) is None


def test_symbols_survive_a_restart_without_reading_files(tmp_path: Path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "lib.py").write_text(PY_MODELS)
    store = tmp_path / "index.sqlite"
    WorkspaceIndex(root, store=store).build()
    again = WorkspaceIndex(root, store=store)
    again.build()
    assert again.build_stats["loaded"] == 1 and again.build_stats["read"] == 0
    item = again.symbols.named("Item")[0]
    assert item.kind == "class" and "price_cents: int = 0" in item.text


def test_one_file_reextraction_touches_that_file_only():
    body = "".join(f"def f{i}(a, b):\n    return a + b\n\n" for i in range(333))
    index = _index({"a.py": body, "b.py": "def keep():\n    pass\n"})
    before = index.symbols_of("b.py")
    index.update_file("a.py", body.replace("def f0(", "def g0("))
    assert index.symbols_of("b.py") is before  # untouched
    assert index.named("g0") and not index.named("f0")


@pytest.mark.parametrize(
    ("defining", "text", "using", "left"),
    [
        ("lib/tax.js", "export function addTax(c) { return c; }\n", "app/main.js", "x = addTax("),
        ("lib/tax.ts", "export const addTax = (c: number) => c;\n", "app/main.ts", "addTax("),
        (
            "src/a/Tax.java",
            "package a;\npublic class Tax { public static int addTax(int c) { return c; } }\n",
            "src/b/Main.java",
            "class Main { int f() { return Tax.addTax(",
        ),
        (
            "pkg/tax/tax.go",
            "package tax\n\nfunc AddTax(c int) int { return c }\n",
            "cmd/main.go",
            "func main() { AddTax(",
        ),
    ],
)
def test_by_unique_name_in_every_grammar_language(defining, text, using, left):
    found = _resolve({defining: text}, using, left)
    assert found and found[0][0] == defining and found[0][2] == "name", found


def test_the_prompt_start_stays_the_same_while_typing_a_call(tmp_path: Path):
    """Definitions come first in the prompt; typing inside the call keeps them (and so
    the prompt up to the typed line) unchanged, so the KV cache is reused."""
    from models.engine import CompletionEngine, CompletionOptions, CompletionRequest
    from tests.fakes import FakeGenerator

    (tmp_path / "store.py").write_text("def save_items(path, items):\n    pass\n")
    index = WorkspaceIndex(tmp_path)
    index.build()
    engine = CompletionEngine(FakeGenerator("x"), index)  # type: ignore[arg-type]
    options = CompletionOptions(mode="always", sources="definitions", record_prompt_ids=True)
    head = "from store import save_items\n\n\ndef f(p, xs):\n    save_items("
    prompts = []
    for typed in ["", "p", "p, x", "p, xs"]:
        text = head + typed + ")\n"
        request = CompletionRequest(tmp_path / "use.py", text, 4, len("    save_items(" + typed))
        record = engine.complete(request, options).record
        assert [d["name"] for d in record["definitions"]] == ["save_items"]
        prompts.append(record["prompt_ids"])
    middle = FakeGenerator().token_id("<|fim_middle|>")
    starts = {tuple(p[: p.index(middle)]) for p in prompts}
    assert len(starts) == 1

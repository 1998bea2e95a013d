from pathlib import Path

from inventory.models import Item, format_cents
from inventory.storage import load_items


def total_stock_value_cents(items: list[Item]) -> int:
    return sum(item.stock_value_cents() for item in items)


def low_stock(items: list[Item], minimum: int = 5) -> list[Item]:
    return [item for item in items if item.quantity < minimum]


def print_report(path: Path) -> None:
    items = load_items(path)
    total = total_stock_value_cents(items)
    print(f"{len(items)} items, stock value {format_cents(total)}")
    for item in low_stock(items):
        print(f"low stock: {item.sku} {item.name} ({item.quantity} left)")

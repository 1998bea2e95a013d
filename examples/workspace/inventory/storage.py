import csv
from pathlib import Path

from inventory.models import Item

FIELDS = ["sku", "name", "unit_price_cents", "quantity"]


def load_items(path: Path) -> list[Item]:
    with path.open(newline="") as f:
        return [
            Item(row["sku"], row["name"], int(row["unit_price_cents"]), int(row["quantity"]))
            for row in csv.DictReader(f)
        ]


def save_items(path: Path, items: list[Item]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for item in items:
            writer.writerow(
                {
                    "sku": item.sku,
                    "name": item.name,
                    "unit_price_cents": item.unit_price_cents,
                    "quantity": item.quantity,
                }
            )

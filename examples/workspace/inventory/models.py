from dataclasses import dataclass


@dataclass
class Item:
    sku: str
    name: str
    unit_price_cents: int
    quantity: int = 0

    def stock_value_cents(self) -> int:
        return self.unit_price_cents * self.quantity


def format_cents(cents: int) -> str:
    euros, rest = divmod(cents, 100)
    return f"{euros}.{rest:02d} EUR"

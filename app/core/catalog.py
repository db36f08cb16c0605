"""The static product catalog: the default ProductCatalog, loaded once from a JSON file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec

from app.core.domain import ProductType
from app.core.ports import Product

DEFAULT_CATALOG_PATH = Path(__file__).resolve().parent.parent / "catalog.json"


class _CatalogEntry(msgspec.Struct, rename="camel"):
    product_type: ProductType
    product_id: str
    name: str
    amount: int


class _CatalogFile(msgspec.Struct):
    products: list[_CatalogEntry]


class StaticProductCatalog:
    """Prices from a file (PRODUCT_CATALOG_PATH, default app/catalog.json)."""

    def __init__(self, products: Sequence[Product]) -> None:
        self._products = {(p.product_type, p.product_id): p for p in products}

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> StaticProductCatalog:
        source = Path(path) if path else DEFAULT_CATALOG_PATH
        try:
            parsed = msgspec.json.decode(source.read_bytes(), type=_CatalogFile)
        except (OSError, msgspec.DecodeError) as exc:
            raise ValueError(f"cannot load the product catalog {source}: {exc}") from exc
        for entry in parsed.products:
            if entry.amount <= 0 or not 1 <= len(entry.product_id) <= 50:
                raise ValueError(f"catalog {source}: bad product {entry.product_id!r}")
        return cls([Product(e.product_type, e.product_id, e.name, e.amount) for e in parsed.products])

    async def get_product(self, product_type: ProductType, product_id: str) -> Product | None:
        return self._products.get((product_type, product_id))

    async def list_products(self) -> Sequence[Product]:
        return list(self._products.values())

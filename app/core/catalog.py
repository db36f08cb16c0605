"""The static product catalog: the default ProductCatalog, loaded once from a JSON file.

Each product says what it grants: a STUDY names its `studyId` and its `startsAt`/`endsAt` (the
refund policy reads those), an AI_RESUME product its `credits`. A file that leaves them out does
not load: a purchase must never fall back on what the buyer sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
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
    study_id: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    credits: int | None = None


class _CatalogFile(msgspec.Struct):
    products: list[_CatalogEntry]


def _check(entry: _CatalogEntry) -> str | None:
    """What is wrong with a catalog entry, or None."""
    if entry.amount <= 0 or not 1 <= len(entry.product_id) <= 50:
        return "needs an amount > 0 and a productId of 1–50 characters"
    if entry.product_type == ProductType.STUDY:
        if not entry.study_id or not 1 <= len(entry.study_id) <= 50:
            return "a STUDY product needs its studyId (1–50 characters)"
        if entry.starts_at is None or entry.starts_at.tzinfo is None:
            return "a STUDY product needs startsAt with a UTC offset"
        if entry.ends_at is not None and (entry.ends_at.tzinfo is None or entry.ends_at < entry.starts_at):
            return "endsAt needs a UTC offset and must not be before startsAt"
    if entry.product_type == ProductType.AI_RESUME and (entry.credits is None or entry.credits <= 0):
        return "an AI_RESUME product needs credits > 0"
    return None


class StaticProductCatalog:
    """Prices and grants from a file (PRODUCT_CATALOG_PATH, default app/catalog.json)."""

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
            problem = _check(entry)
            if problem is not None:
                raise ValueError(f"catalog {source}: product {entry.product_id!r} {problem}")
        return cls(
            [
                Product(
                    product_type=e.product_type,
                    product_id=e.product_id,
                    name=e.name,
                    amount=e.amount,
                    study_id=e.study_id,
                    starts_at=e.starts_at,
                    ends_at=e.ends_at,
                    credits=e.credits,
                )
                for e in parsed.products
            ]
        )

    async def get_product(self, product_type: ProductType, product_id: str) -> Product | None:
        return self._products.get((product_type, product_id))

    async def list_products(self) -> Sequence[Product]:
        return list(self._products.values())

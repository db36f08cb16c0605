"""/api/products: the catalog, public."""

from __future__ import annotations

from litestar import Controller, get

from app.core.queries import PaymentQueries
from app.core.schemas import ProductListBody, product_body


class ProductController(Controller):
    path = "/api/products"
    tags = ["products"]

    @get("/", summary="The product catalog")
    async def list_products(self, payment_queries: PaymentQueries) -> ProductListBody:
        return ProductListBody(items=[product_body(p) for p in await payment_queries.list_products()])

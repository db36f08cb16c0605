"""The checkout driver: HTTP clients on the e2e API process and the shared mock Toss."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.auth import TokenAuthority
from tests.support.servers import RunningServer

from .helpers import Checkout


@pytest.fixture
async def checkout(
    payments_api: RunningServer, mock_toss: RunningServer, token_authority: TokenAuthority
) -> AsyncIterator[Checkout]:
    timeout = httpx.Timeout(20.0)
    async with (
        # These tests read our words in English (a Korean browser's are tested in tests/unit).
        httpx.AsyncClient(
            base_url=payments_api.url, timeout=timeout, headers={"Accept-Language": "en"}
        ) as api,
        httpx.AsyncClient(base_url=mock_toss.url, timeout=timeout) as mock,
    ):
        yield Checkout(api=api, mock=mock, tokens=token_authority, api_url=payments_api.url)

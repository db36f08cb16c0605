"""Payment Core's use cases wired like app/bootstrap.py does, over the in-memory fakes of its ports.

    core = build_test_core()
    issued = await core.checkout.issue(...)
    core.repo.stored(tid).status

The use cases are the real ones (guarded transitions included): only the ports are fakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.core.catalog import StaticProductCatalog
from app.core.checkout import Checkout, CheckoutConfig
from app.core.fulfilment import Fulfilment
from app.core.payment_results import PaymentResults, ResultsConfig
from app.core.queries import PaymentQueries
from app.core.refunds import RefundService
from app.core.sweeper import Sweeper
from tests.support.fakes import FakeClock, FakeGateway, FakeQueue, InMemoryTransactionRepository

PUBLIC = "https://pay.example.com"
CLIENT_KEY = "test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq"


@dataclass
class CoreOverFakes:
    repo: InMemoryTransactionRepository = field(default_factory=InMemoryTransactionRepository)
    gateway: FakeGateway = field(default_factory=FakeGateway)
    clock: FakeClock = field(default_factory=FakeClock)
    queue: FakeQueue = field(default_factory=FakeQueue)
    checkout: Checkout = field(init=False)
    results: PaymentResults = field(init=False)
    fulfilment: Fulfilment = field(init=False)
    queries: PaymentQueries = field(init=False)
    sweeper: Sweeper = field(init=False)
    refunds: RefundService = field(init=False)


def build_test_core(core: CoreOverFakes | None = None, **checkout_config: Any) -> CoreOverFakes:
    """Wire (or re-wire, with other checkout settings) the use cases over `core`'s fakes."""
    core = core or CoreOverFakes()
    catalog = StaticProductCatalog.from_file()
    core.refunds = RefundService(
        repository=core.repo,
        refunds=core.repo,
        gateway=core.gateway,
        catalog=catalog,
        queue=core.queue,
        clock=core.clock,
        window_days=7,
    )
    core.fulfilment = Fulfilment(
        repository=core.repo, queue=core.queue, refunds=core.refunds, clock=core.clock
    )
    core.results = PaymentResults(
        repository=core.repo,
        gateway=core.gateway,
        clock=core.clock,
        config=ResultsConfig(),
        on_paid=core.fulfilment.start_provisioning,
    )
    core.checkout = Checkout(
        repository=core.repo,
        catalog=catalog,
        gateway=core.gateway,
        results=core.results,
        clock=core.clock,
        config=CheckoutConfig(
            **{
                "public_base_url": PUBLIC + "/",
                "transaction_expire_minutes": 30,
                "client_key": CLIENT_KEY,
                "provider": "TOSS",
                **checkout_config,
            }
        ),
    )
    core.queries = PaymentQueries(repository=core.repo, catalog=catalog, clock=core.clock)
    core.sweeper = Sweeper(
        repository=core.repo, fulfilment=core.fulfilment, refunds=core.refunds, clock=core.clock
    )
    return core

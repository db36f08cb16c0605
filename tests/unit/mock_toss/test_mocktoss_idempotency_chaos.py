"""The idempotency store and seeded chaos, without HTTP."""

from __future__ import annotations

import pytest

from mock_toss.idempotency import IdempotencyIdentity, IdempotencyStore
from mock_toss.scenarios import Chaos
from mock_toss.store import MockClock

CONFIRM = IdempotencyIdentity("key-1", "test_sk_a", "/v1/payments/confirm", "POST")


def test_first_request_claims_then_completes_and_later_ones_get_the_stored_response() -> None:
    store = IdempotencyStore(MockClock())
    assert store.begin(CONFIRM) is None
    processing = store.begin(CONFIRM)
    assert processing is not None and processing.status is None
    store.complete(CONFIRM, 400, b'{"code":"ALREADY_PROCESSED_PAYMENT"}')
    replay = store.begin(CONFIRM)
    assert replay is not None
    assert (replay.status, replay.body) == (400, b'{"code":"ALREADY_PROCESSED_PAYMENT"}')


def test_identity_is_key_secret_path_and_method() -> None:
    store = IdempotencyStore(MockClock())
    store.begin(CONFIRM)
    store.complete(CONFIRM, 200, b"{}")
    for other in (
        CONFIRM._replace(key="key-2"),
        CONFIRM._replace(secret_key="test_sk_b"),
        CONFIRM._replace(path="/v1/payments/abc/cancel"),
        CONFIRM._replace(method="PUT"),
    ):
        assert store.begin(other) is None, other


def test_keys_live_fifteen_days_on_the_mock_clock() -> None:
    clock = MockClock()
    store = IdempotencyStore(clock)
    store.begin(CONFIRM)
    store.complete(CONFIRM, 200, b"first")
    clock.advance(15 * 86400 - 60)
    assert store.begin(CONFIRM) is not None
    clock.advance(120)
    assert store.begin(CONFIRM) is None  # expired: this request claims the key afresh


def test_a_released_claim_can_be_claimed_again_and_the_store_is_bounded() -> None:
    store = IdempotencyStore(MockClock(), max_entries=3)
    store.begin(CONFIRM)
    store.release(CONFIRM)
    assert store.begin(CONFIRM) is None
    for number in range(10):
        store.begin(CONFIRM._replace(key=f"k{number}"))
    assert len(store) == 3


def _outcomes(chaos: Chaos, route: str, count: int) -> list[tuple[float, str | None, float]]:
    outcomes = []
    for _ in range(count):
        outcome = chaos.draw(route)
        assert outcome is not None
        outcomes.append((outcome.delay_seconds, outcome.error_code, outcome.hold_seconds))
    return outcomes


SETTINGS = {
    "seed": 1234,
    "routes": {
        "confirm": {
            "latencyMs": 100,
            "latencyJitterMs": 50,
            "errorRate": 0.3,
            "errorCode": "PROVIDER_ERROR",
            "timeoutRate": 0.2,
            "timeoutSeconds": 5,
        }
    },
}


def test_the_same_seed_gives_the_same_fates() -> None:
    first, second = Chaos(), Chaos()
    first.configure(SETTINGS)
    second.configure(SETTINGS)
    run = _outcomes(first, "confirm", 200)
    assert run == _outcomes(second, "confirm", 200)
    errors = [outcome for outcome in run if outcome[1] == "PROVIDER_ERROR"]
    holds = [outcome for outcome in run if outcome[2] == 5]
    assert 30 < len(errors) < 90 and 15 < len(holds) < 70
    assert all(0.1 <= delay <= 0.15 for delay, _, _ in run)
    assert first.describe()["stats"]["confirm"] == {
        "requests": 200,
        "errors": len(errors),
        "timeouts": len(holds),
    }


def test_configuring_again_restarts_the_sequence_and_other_routes_do_not_disturb_it() -> None:
    chaos = Chaos()
    chaos.configure({**SETTINGS, "routes": {**SETTINGS["routes"], "cancel": {"errorRate": 0.5}}})  # type: ignore[dict-item]
    interleaved = []
    for _ in range(50):
        interleaved.extend(_outcomes(chaos, "confirm", 1))
        chaos.draw("cancel")
    chaos.configure(SETTINGS)
    assert _outcomes(chaos, "confirm", 50) == interleaved


def test_lookups_are_untouched_unless_named_and_star_means_every_post_route() -> None:
    chaos = Chaos()
    chaos.configure({"seed": 1, "routes": {"*": {"errorRate": 1.0}}})
    assert chaos.draw("lookup") is None
    for route in ("confirm", "cancel", "virtual-accounts"):
        outcome = chaos.draw(route)
        assert outcome is not None and outcome.error_code == "FAILED_INTERNAL_SYSTEM_PROCESSING"
    chaos.configure({"routes": {"lookup": {"latencyMs": 10}}})
    assert chaos.seed is not None  # a seed is picked and shown so the run can be repeated
    assert chaos.draw("confirm") is None
    chaos.clear()
    assert not chaos.enabled and chaos.draw("lookup") is None


@pytest.mark.parametrize(
    "body",
    [
        {"routes": {"refund": {}}},
        {"routes": {"confirm": {"errorRate": 1.5}}},
        {"routes": {"confirm": {"errorCode": "NOPE"}}},
        {"routes": {"confirm": {"latencyMs": -1}}},
        {"routes": {"confirm": {"timeoutSeconds": 0}}},
        {"routes": {"confirm": {"unknownField": 1}}},
        {"seed": "abc"},
    ],
)
def test_invalid_chaos_bodies_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Chaos().configure(body)

"""Deterministic failure triggers: the test cards, and seeded chaos (latency, errors, timeouts)."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Any

import msgspec

from mock_toss.errors import ERRORS, NOT_TEST_CODES

DEFAULT_CARD_NUMBER = "4330000000000005"


class CardOutcome(enum.Enum):
    """What a test card does to its payment."""

    APPROVE = "approves"
    REJECT_BALANCE = "confirm → 403 REJECT_CARD_PAYMENT, payment ABORTED"
    EXPIRED_CARD = "confirm → 400 INVALID_CARD_EXPIRATION, payment ABORTED"
    PROVIDER_ERROR = "confirm → 400 PROVIDER_ERROR, payment stays IN_PROGRESS"
    SLOW_CONFIRM = "confirm answers after --slow-confirm-seconds, then DONE"
    FAIL_ONCE = "first confirm → 500 FAILED_INTERNAL_SYSTEM_PROCESSING, the next DONE"
    WINDOW_REJECT = "the payment window fails: failUrl with REJECT_CARD_COMPANY"


TEST_CARDS: dict[str, CardOutcome] = {
    "4330000000000005": CardOutcome.APPROVE,
    "4330000000000013": CardOutcome.REJECT_BALANCE,
    "4330000000000021": CardOutcome.EXPIRED_CARD,
    "4330000000000039": CardOutcome.PROVIDER_ERROR,
    "4330000000000047": CardOutcome.SLOW_CONFIRM,
    "4330000000000054": CardOutcome.FAIL_ONCE,
    "4330000000000062": CardOutcome.WINDOW_REJECT,
}


def normalize_card_number(raw: str | None) -> str | None:
    """The card's digits (spaces and dashes dropped); the default card when none is given; None if malformed."""
    if raw is None or not raw.strip():
        return DEFAULT_CARD_NUMBER
    digits = raw.replace(" ", "").replace("-", "")
    if not (digits.isascii() and digits.isdigit() and 15 <= len(digits) <= 16):
        return None
    return digits


def card_outcome(card_number: str) -> CardOutcome:
    """The test card's behaviour; any other well-formed number approves."""
    return TEST_CARDS.get(card_number, CardOutcome.APPROVE)


# ---------------------------------------------------------------------------------------------
# Chaos

CHAOS_ROUTES = ("confirm", "cancel", "lookup", "virtual-accounts", "key-in", "billing", "cash-receipts")
# "*" in a chaos body means every POST route; lookups (GETs) change only when named.
WRITE_ROUTES = ("confirm", "cancel", "virtual-accounts", "key-in", "billing", "cash-receipts")
MAX_LATENCY_MS = 120_000
MAX_TIMEOUT_SECONDS = 600.0


class ChaosRule(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    """Faults for one route. Latency delays the request before it is processed; a timeout processes
    it and then withholds the answer for `timeoutSeconds` (a PG that approved but answered too late)."""

    latency_ms: int = 0
    latency_jitter_ms: int = 0
    error_rate: float = 0.0
    error_code: str = "FAILED_INTERNAL_SYSTEM_PROCESSING"
    timeout_rate: float = 0.0
    timeout_seconds: float = 30.0


class ChaosSettings(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """The body of `PUT /_mock/chaos`."""

    seed: int | None = None
    routes: dict[str, ChaosRule] = msgspec.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChaosOutcome:
    """What chaos does to one request."""

    delay_seconds: float
    error_code: str | None
    hold_seconds: float


@dataclass(slots=True)
class ChaosStats:
    requests: int = 0
    errors: int = 0
    timeouts: int = 0


def _check_rule(route: str, rule: ChaosRule) -> None:
    if not 0 <= rule.latency_ms <= MAX_LATENCY_MS or not 0 <= rule.latency_jitter_ms <= MAX_LATENCY_MS:
        raise ValueError(f"routes.{route}: latencyMs and latencyJitterMs must be 0–{MAX_LATENCY_MS}")
    if not 0 <= rule.error_rate <= 1 or not 0 <= rule.timeout_rate <= 1:
        raise ValueError(f"routes.{route}: errorRate and timeoutRate must be between 0 and 1")
    if rule.error_code not in ERRORS or rule.error_code in NOT_TEST_CODES:
        raise ValueError(f"routes.{route}: errorCode {rule.error_code} is not a Toss error code")
    if not 0 < rule.timeout_seconds <= MAX_TIMEOUT_SECONDS:
        raise ValueError(f"routes.{route}: timeoutSeconds must be > 0 and ≤ {MAX_TIMEOUT_SECONDS:g}")


class Chaos:
    """Seeded fault injection per route: the n-th request to a route always meets the same fate
    for a given seed, whatever other routes receive in between."""

    def __init__(self) -> None:
        self.seed: int | None = None
        self.rules: dict[str, ChaosRule] = {}
        self._random: dict[str, random.Random] = {}
        self.stats: dict[str, ChaosStats] = {}

    @property
    def enabled(self) -> bool:
        """Whether any route has a rule."""
        return bool(self.rules)

    def configure(self, raw: Any) -> None:
        """Replace the settings with a `PUT /_mock/chaos` body; raises ValueError when it is invalid."""
        try:
            settings = msgspec.convert(raw, ChaosSettings)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from exc
        rules: dict[str, ChaosRule] = {}
        for route, rule in settings.routes.items():
            if route != "*" and route not in CHAOS_ROUTES:
                raise ValueError(f"unknown chaos route {route!r}; use one of {', '.join(CHAOS_ROUTES)} or *")
            _check_rule(route, rule)
        if "*" in settings.routes:
            rules = dict.fromkeys(WRITE_ROUTES, settings.routes["*"])
        rules.update({route: rule for route, rule in settings.routes.items() if route != "*"})
        self.seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**31)
        self.rules = rules
        # One generator per route keeps each route's sequence independent of the others.
        self._random = {route: random.Random(f"{self.seed}:{route}") for route in rules}
        self.stats = {route: ChaosStats() for route in rules}

    def draw(self, route: str) -> ChaosOutcome | None:
        """The fate of the next request to `route`; None when the route has no rule."""
        rule = self.rules.get(route)
        if rule is None:
            return None
        generator = self._random[route]
        # Always draw three numbers so the sequence does not depend on which faults are enabled.
        jitter_draw, error_draw, timeout_draw = generator.random(), generator.random(), generator.random()
        stats = self.stats[route]
        stats.requests += 1
        delay = (rule.latency_ms + jitter_draw * rule.latency_jitter_ms) / 1000
        error_code = rule.error_code if error_draw < rule.error_rate else None
        hold = rule.timeout_seconds if error_code is None and timeout_draw < rule.timeout_rate else 0.0
        if error_code is not None:
            stats.errors += 1
        if hold:
            stats.timeouts += 1
        return ChaosOutcome(delay_seconds=delay, error_code=error_code, hold_seconds=hold)

    def describe(self) -> dict[str, Any]:
        """The current settings and what they did so far, as `GET /_mock/chaos` shows them."""
        return {
            "enabled": self.enabled,
            "seed": self.seed,
            "routes": {route: msgspec.to_builtins(rule) for route, rule in self.rules.items()},
            "stats": {
                route: {"requests": stats.requests, "errors": stats.errors, "timeouts": stats.timeouts}
                for route, stats in self.stats.items()
            },
        }

    def clear(self) -> None:
        """No chaos."""
        self.seed = None
        self.rules = {}
        self._random = {}
        self.stats = {}

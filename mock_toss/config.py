"""The mock's configuration: one typed object, built by the CLI or by whoever embeds the mock."""

from __future__ import annotations

from dataclasses import dataclass

# The public key pair from Toss's docs; also the payment service's development defaults.
DEFAULT_CLIENT_KEY = "test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq"
DEFAULT_SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"
# The payment widget's key pair from Toss's docs ("결제위젯 연동 키": gck for the page, gsk for the server).
DOCS_WIDGET_CLIENT_KEY = "test_gck_docs_Ovk5rk1EwkEbP0W43n07xlzm"
DOCS_WIDGET_SECRET_KEY = "test_gsk_docs_OaPz8L5KdmQXkzRz3y47BMw6"


@dataclass(frozen=True, slots=True)
class MockConfig:
    """How one mock Toss server behaves.

    `time_scale` multiplies webhook retry intervals (Toss's 1, 4, 16, … minutes);
    `slow_confirm_seconds` is how long the slow test card holds its confirm.
    Two key pairs are accepted, like two Toss merchants: the API pair (`client_key`/`secret_key`,
    for the payment window SDK and the server API) and the widget pair (`widget_client_key`/
    `widget_secret_key`). A payment opened with one pair's client key is confirmed with that
    pair's secret key; the other pair's secret key gets 400 INVALID_API_KEY.
    """

    host: str = "127.0.0.1"
    port: int = 8090
    webhook_urls: tuple[str, ...] = ()
    time_scale: float = 1.0
    slow_confirm_seconds: float = 15.0
    webhook_secret: str | None = None
    secret_key: str = DEFAULT_SECRET_KEY
    client_key: str = DEFAULT_CLIENT_KEY
    widget_secret_key: str = DOCS_WIDGET_SECRET_KEY
    widget_client_key: str = DOCS_WIDGET_CLIENT_KEY

    def __post_init__(self) -> None:
        keys = (
            ("secret key", self.secret_key),
            ("client key", self.client_key),
            ("widget secret key", self.widget_secret_key),
            ("widget client key", self.widget_client_key),
        )
        for name, key in keys:
            if key.startswith("live_"):
                raise ValueError(f"the mock refuses live keys: {name} {key[:12]}… (use a test_ key)")
            if not key.startswith("test_"):
                raise ValueError(f"the {name} must be a Toss test key starting with test_")
        if self.time_scale <= 0:
            raise ValueError("time scale must be greater than 0")
        if self.slow_confirm_seconds < 0:
            raise ValueError("slow confirm seconds must not be negative")
        for url in self.webhook_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL must start with http:// or https://: {url}")

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """Every secret key the API accepts."""
        return (self.secret_key, self.widget_secret_key)

    @property
    def client_keys(self) -> tuple[str, ...]:
        """Every client key a payment window or the SDK accepts."""
        return (self.client_key, self.widget_client_key)

    def is_widget_key(self, client_key: str) -> bool:
        """Whether `client_key` is the widget pair's (widgets) rather than the API pair's (payment)."""
        return client_key == self.widget_client_key

    def secret_key_for(self, client_key: str) -> str | None:
        """The secret key of `client_key`'s pair; None for an unknown client key."""
        pairs = {self.client_key: self.secret_key, self.widget_client_key: self.widget_secret_key}
        return pairs.get(client_key)

    @property
    def base_url(self) -> str:
        """Where the mock listens, for log lines and links."""
        return f"http://{self.host}:{self.port}"

"""The mock's configuration: one typed object, built by the CLI or by whoever embeds the mock."""

from __future__ import annotations

from dataclasses import dataclass

# The public key pair from Toss's docs; also the payment service's development defaults.
DEFAULT_CLIENT_KEY = "test_ck_D5GePWvyJnrK0W0k6q8gLzN97Eoq"
DEFAULT_SECRET_KEY = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R"


@dataclass(frozen=True, slots=True)
class MockConfig:
    """How one mock Toss server behaves.

    `time_scale` multiplies webhook retry intervals (Toss's 1, 4, 16, … minutes);
    `slow_confirm_seconds` is how long the slow test card holds its confirm.
    """

    host: str = "127.0.0.1"
    port: int = 8090
    webhook_urls: tuple[str, ...] = ()
    time_scale: float = 1.0
    slow_confirm_seconds: float = 15.0
    webhook_secret: str | None = None
    secret_key: str = DEFAULT_SECRET_KEY
    client_key: str = DEFAULT_CLIENT_KEY

    def __post_init__(self) -> None:
        for name, key in (("secret key", self.secret_key), ("client key", self.client_key)):
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
    def base_url(self) -> str:
        """Where the mock listens, for log lines and links."""
        return f"http://{self.host}:{self.port}"

"""Mock Toss Payments: a stateful, faithful imitation of the Toss Payments API and payment window."""

__version__ = "1.0.0"

# The Toss API version the mock's Payment objects follow (field names: issuerCode, bankCode, …).
TOSS_API_VERSION = "2022-11-16"

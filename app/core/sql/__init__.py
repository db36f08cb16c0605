"""SQLAlchemy adapters of Payment Core's persistence ports (MySQL/MariaDB through asyncmy, or SQLite).

transactions.py    TransactionRepository: rows, guarded transitions with their history, claims
refunds.py         RefundRepository: refund rows and the transaction's refund amounts, together
webhook_events.py  WebhookEventRepository: each delivery once per transmission id
status_reader.py   StatusReader: the status poll's one SELECT

They only persist. A committed write that changes what a poll shows is announced through the
StatusChanges port, because only the adapter knows when its commit happened; the status cache
wraps the reader (app.core.status_cache) and the use cases record the business metrics.
"""

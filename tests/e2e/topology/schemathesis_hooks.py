"""Schemathesis hooks for the contract fuzzing run (loaded through SCHEMATHESIS_HOOKS=<this file>).

One custom check: every error response is the SPEC's envelope `{code, message, details?}` served
as JSON. Redirects (the PG callbacks' 302s) are not errors and are left alone.
"""

from __future__ import annotations

import json

import schemathesis

ENVELOPE_KEYS = frozenset({"code", "message", "details"})


@schemathesis.check
def error_envelope(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """4xx/5xx answers are `{"code": str, "message": str, "details"?: any}` with a JSON content type."""
    if response.status_code < 400:
        return None
    content_type = ";".join(response.headers.get("content-type", []))
    if not content_type.startswith("application/json"):
        raise AssertionError(f"error {response.status_code} is not JSON (content-type {content_type!r})")
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"error {response.status_code} body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise AssertionError(f"error {response.status_code} body is not an object: {body!r}")
    extra = set(body) - ENVELOPE_KEYS
    if extra:
        raise AssertionError(f"error envelope has keys beyond code/message/details: {sorted(extra)}")
    if not isinstance(body.get("code"), str) or not body["code"]:
        raise AssertionError(f"error envelope without a string `code`: {body!r}")
    if not isinstance(body.get("message"), str) or not body["message"]:
        raise AssertionError(f"error envelope without a string `message`: {body!r}")
    return None

"""The HTTP layer: Litestar controllers (thin: parse → call a use case → serialize), the error
envelope, request-body decoding and the OpenAPI document's extras. It imports core; core never
imports it."""

"""Venue errors grouped by what the caller must do about them (not by where they came from).

- `FatalVenueError`: configuration or credentials are wrong (bad key, signature, permission, IP
  whitelist). Retrying cannot help; stop and tell the operator.
- `RejectedError`: the venue refused this request now (insufficient margin, below minimum size,
  reduce-only would increase, duplicate client order id, unknown order). Do not retry the same request.
- `TemporaryVenueError`: the venue or the network failed (5xx, busy, timeouts). Safe to retry
  idempotent reads; never blindly re-submit an order.
- `RateLimitedError`: we are sending too much; back off for `retry_after_sec` at least.
- `NotSentError`: the request never left (connection refused, connect timeout): nothing happened.
- `UnknownOutcomeError`: a state-changing request may or may not have taken effect (HTTP 504, a
  timeout after sending). Resolve it by querying (for orders: by client order id) before acting again.
"""

from __future__ import annotations


class VenueError(Exception):
    def __init__(self, message: str, *, code: int | None = None, http_status: int | None = None) -> None:
        self.code = code
        self.http_status = http_status
        super().__init__(message)


class FatalVenueError(VenueError):
    pass


class RejectedError(VenueError):
    pass


class TemporaryVenueError(VenueError):
    pass


class RateLimitedError(TemporaryVenueError):
    def __init__(
        self, message: str, *, code: int | None = None, http_status: int | None = None, retry_after_sec: float = 1.0
    ) -> None:
        self.retry_after_sec = retry_after_sec
        super().__init__(message, code=code, http_status=http_status)


class UnknownOutcomeError(TemporaryVenueError):
    pass


class NotSentError(TemporaryVenueError):
    """The request never reached the venue (the connection was refused or could not be opened in time):
    nothing happened there, so sending it again is not a second send."""


class UnknownSymbolError(RejectedError):
    """The venue lists no such symbol (a typo, a lower-case name, a delisted pair): asking again cannot help."""


class OrderNotFoundError(RejectedError):
    """The venue does not know this order (by order id or client order id)."""


class DuplicateClientOrderIdError(RejectedError):
    """The client order id was used before: the earlier order exists; look it up, never resubmit."""


class WireFormatError(VenueError):
    """A venue message does not have the documented shape."""

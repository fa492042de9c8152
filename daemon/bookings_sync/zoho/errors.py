"""Typed failures of the Zoho clients.

Every exception carries what an operator needs (Zoho's code and message, the HTTP status) and
never a credential: messages are built from Zoho's reply fields, not from requests or URLs that
could hold a token. ``transient`` tells the engine whether a later cycle may succeed unchanged.
"""

from __future__ import annotations


class ZohoError(Exception):
    """Base class. ``code`` is Zoho's code (or ours), ``message`` the human text."""

    transient = False

    def __init__(self, message: str, *, code: str = "", status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code

    def __str__(self) -> str:
        parts = [self.code] if self.code else []
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        prefix = f"[{' '.join(parts)}] " if parts else ""
        return f"{prefix}{self.message}"


class ZohoUnreachable(ZohoError):
    """No usable answer: connection refused or dropped, timeout, 5xx or 429 after all retries."""

    transient = True


class ZohoAuthError(ZohoError):
    """Accounts refused to mint a token (``invalid_client``, ``invalid_code``, too many tokens),
    or an API kept answering INVALID_TOKEN after a fresh token."""


class ZohoApiError(ZohoError):
    """A CRM error envelope ``{code, details, message, status}`` that retrying will not fix."""


class BookingsError(ZohoError):
    """Bookings answered with something other than success that is not a business refusal
    (an HTML error page, a malformed envelope, a call limit)."""


class BookingsRefused(ZohoError):
    """Bookings understood the request and said no (slot taken, start in the past, appointment
    cancelled or completed, unknown booking id). ``message`` is Zoho's own text."""


class ZohoPayloadError(ZohoError):
    """A reply we cannot read: not JSON, or missing a field the API documents."""

"""Typed failures of the Zoho clients.

Every exception carries what an operator needs (Zoho's code and message, the HTTP status) and
never a credential: messages are built from Zoho's reply fields, not from requests or URLs that
could hold a token — and, because a confused or hostile server may echo back what it was sent,
every message passes through the log redactor's registry of secrets (client secret, refresh
token, each access token) when the exception is made, so it is safe to log, store and print.

``transient`` tells the engine whether a later cycle may succeed unchanged: such an action is
retried at the next cycle, then with growing backoff; any other error is recorded as a failure.
"""

from __future__ import annotations

from bookings_sync.logs import redactor


class ZohoError(Exception):
    """Base class. ``code`` is Zoho's code (or ours), ``message`` the human text."""

    transient = False

    def __init__(self, message: str, *, code: str = "", status_code: int | None = None):
        message, code = redactor.scrub(str(message)), redactor.scrub(str(code))
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
    """No usable answer: connection refused or dropped, timeout, 5xx or 429 after all retries,
    Bookings' daily call limit."""

    transient = True


class ZohoUnreadable(ZohoError):
    """An answer that is not what the API sends — not JSON, an HTML page where JSON belongs, no
    envelope, a body too large or undecodable: a proxy or an outage in front of Zoho, most
    likely, so worth another try later."""

    transient = True


class ZohoRedirected(ZohoError):
    """A redirect, which is never followed (it would carry credentials to another host)."""


class ZohoAuthError(ZohoError):
    """Accounts refused to mint a token (``invalid_client``, ``invalid_code``, too many tokens),
    or an API kept answering INVALID_TOKEN after a fresh token, or refused the token's scope."""


class ZohoApiError(ZohoError):
    """A CRM error envelope ``{code, details, message, status}`` that retrying will not fix."""


class BookingsRefused(ZohoError):
    """Bookings understood the request and said no (slot taken, start in the past, appointment
    cancelled or completed, unknown booking id). ``message`` is Zoho's own text."""


class ZohoPayloadError(ZohoError):
    """A reply we can read but cannot use: a field the API documents is missing or bad."""

"""Tokens from Zoho Accounts: access tokens (refresh-token grant), minted rarely and shared, and
the Self Client's one-time exchange of a grant code for a refresh token
(:func:`exchange_grant_code`, ``grant_type=authorization_code``). Both go through
:func:`post_token`.

Zoho lets one refresh token mint at most 10 access tokens per 10 minutes, and a token lives an
hour. So a token is reused until ``refresh_margin`` before it expires — across threads (a lock)
and across ``--run-once`` processes (a 0600 cache file in the state directory, written
atomically, keyed by a fingerprint of accounts URL, client id, secret and refresh token so a changed
config never reuses a stale token). After an API says INVALID_TOKEN, :meth:`invalidate` drops
exactly that token; a thread that arrives later with the same stale token does not refresh again.

Secrets go in the POST body, never the URL (URLs end up in logs and exception texts). Failures
become :class:`ZohoAuthError` with Zoho's error code and a hint, never with a secret. The last
reply's ``api_domain`` and granted ``scope`` are kept (:attr:`TokenProvider.api_domain`,
:attr:`TokenProvider.scopes`) for ``check`` to compare with the configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Callable

from urllib.parse import urlencode

import requests
import structlog

from bookings_sync.logs import redactor
from bookings_sync.secret_file import write_private

from .errors import ZohoAuthError, ZohoPayloadError, ZohoUnreachable, ZohoUnreadable
from .transport import send

log = structlog.get_logger("bookings_sync.zoho.auth")

HINTS = {
    "invalid_client": "check client_id/client_secret and the data center — a wrong data center "
                      "is a common cause",
    "invalid_code": "the refresh token is wrong or revoked (or was issued to another client)",
    "Access Denied": "too many token requests: Zoho allows 10 access tokens per 10 minutes per "
                     "refresh token; wait, and make sure only one daemon uses this refresh token",
}


class TokenProvider:
    def __init__(self, session: requests.Session, accounts_url: str, client_id: str,
                 client_secret: str, refresh_token: str, cache_path: Path | None = None,
                 refresh_margin: float = 300.0, clock: Callable[[], float] = time.time,
                 timeout: tuple[float, float] = (10.0, 30.0)):
        self._session = session
        self._url = accounts_url.rstrip("/") + "/oauth/v2/token"
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._cache_path = Path(cache_path) if cache_path else None
        self._margin = refresh_margin
        self._clock = clock
        self._timeout = timeout
        # Registered before any reply can echo them: every error text and log line masks them.
        redactor.add(client_secret)
        redactor.add(refresh_token)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._lifetime = 3600.0
        self._refused: tuple[float, ZohoAuthError] | None = None   # (until, error)
        self.refusal_cooldown = 60.0
        # From the last token reply: Zoho's API host for this account, and the granted scopes
        # (None when the reply has no ``scope``) — ``check`` compares both with the config.
        self.api_domain: str | None = None
        self.scopes: frozenset[str] | None = None
        # Token requests sent by this process, each attempt counted (ZohoHttp adds re-sends).
        self.refreshes = 0
        self._fingerprint = hashlib.sha256(
            "\0".join((self._url, client_id, client_secret, refresh_token)).encode()).hexdigest()

    def token(self) -> str:
        with self._lock:
            if self._token and self._clock() < self._refresh_at():
                return self._token
            if self._load_cache():
                return self._token
            if self._refused and self._clock() < self._refused[0]:
                # Accounts said no a moment ago: asking again at once would only spend the
                # 10-tokens-per-10-minutes budget (or lock the client out) for the same answer.
                raise self._refused[1]
            return self._refresh()

    def _refresh_at(self, expires_at: float | None = None, lifetime: float | None = None) -> float:
        """Refresh ``refresh_margin`` before expiry — or a quarter of the lifetime before, for
        tokens that live less than four margins (else every use would mint a new one)."""
        expires_at = self._expires_at if expires_at is None else expires_at
        lifetime = self._lifetime if lifetime is None else lifetime
        return expires_at - min(self._margin, lifetime / 4)

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (rejected by an API). A no-op if it was already replaced."""
        with self._lock:
            if self._token == token:
                self._token, self._expires_at = None, 0.0
            # The shared cache may meanwhile hold another process's fresh token: keep that.
            if self._cached_token() == token:
                self._cache_path.unlink(missing_ok=True)

    # -- internals --------------------------------------------------------------------------

    def _refresh(self) -> str:
        form = {"grant_type": "refresh_token", "client_id": self._client_id,
                "client_secret": self._client_secret, "refresh_token": self._refresh_token}
        self.refreshes += 1
        try:
            grant = post_token(self._session, self._url, form, timeout=self._timeout,
                               what="token refresh", hints=HINTS)
        except ZohoAuthError as error:
            self._refused = (self._clock() + self.refusal_cooldown, error)
            raise
        self._token, self._lifetime = grant.access_token, grant.expires_in
        self._expires_at = self._clock() + grant.expires_in
        self._refused = None
        self.api_domain, self.scopes = grant.api_domain, grant.scopes
        log.info("zoho.token_refreshed", expires_in=int(grant.expires_in))
        self._save_cache()
        return grant.access_token

    def _read_cache(self) -> dict | None:
        """The cache file's content if it is ours (same fingerprint), else None."""
        if not self._cache_path:
            return None
        try:
            data = json.loads(self._cache_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("fingerprint") != self._fingerprint:
            return None
        return data

    def _cached_token(self) -> str | None:
        data = self._read_cache()
        return data.get("access_token") if data else None

    def _load_cache(self) -> bool:
        data = self._read_cache()
        if data is None:
            return False
        token, expires_at = data.get("access_token"), data.get("expires_at", 0)
        lifetime = data.get("lifetime", 3600.0)
        if not isinstance(token, str) or not isinstance(expires_at, (int, float)) \
                or not isinstance(lifetime, (int, float)):
            return False
        if self._clock() >= self._refresh_at(expires_at, lifetime):
            return False
        redactor.add(token)
        self._token, self._expires_at, self._lifetime = token, float(expires_at), float(lifetime)
        return True

    def _save_cache(self) -> None:
        if not self._cache_path:
            return
        payload = json.dumps({"fingerprint": self._fingerprint, "access_token": self._token,
                              "expires_at": self._expires_at,
                              "lifetime": self._lifetime}).encode()
        try:
            write_private(self._cache_path, payload)
        except OSError as exc:
            # Not fatal: the next process refreshes once more. Say so; never say the token.
            log.warning("zoho.token_cache_unwritable", path=str(self._cache_path),
                        error=exc.strerror)


@dataclasses.dataclass(frozen=True)
class Grant:
    """A successful token reply. ``refresh_token`` only from the authorization-code grant."""
    access_token: str
    expires_in: float
    api_domain: str | None
    scopes: frozenset[str] | None
    refresh_token: str | None = dataclasses.field(default=None, repr=False)


def exchange_grant_code(session: requests.Session, accounts_url: str, client_id: str,
                        client_secret: str, code: str,
                        timeout: tuple[float, float] = (10.0, 30.0)) -> Grant:
    """Zoho's Self Client flow: trade a grant code from the API console for a refresh token
    (``grant_type=authorization_code``). Zoho's errors (``invalid_code``, ``invalid_client``)
    are :class:`ZohoAuthError` with that code; the caller explains them."""
    redactor.add(client_secret)
    redactor.add(code)
    form = {"grant_type": "authorization_code", "client_id": client_id,
            "client_secret": client_secret, "code": code}
    grant = post_token(session, accounts_url.rstrip("/") + "/oauth/v2/token", form,
                       timeout=timeout, what="grant code exchange", hints={})
    if not grant.refresh_token:
        raise ZohoPayloadError("Zoho Accounts answered the grant code without a refresh_token")
    return grant


def post_token(session: requests.Session, url: str, form: dict, *, timeout: tuple[float, float],
               what: str, hints: dict[str, str]) -> Grant:
    """One request to Accounts' token endpoint and its reply read: secrets in the POST body,
    never the URL; never a redirect followed (transport.send); every token in the reply is
    registered with the log redactor before anything could log or echo it."""
    prepared = requests.PreparedRequest()
    prepared.prepare(method="POST", url=url, data=urlencode(form),
                     headers={**session.headers,
                              "Content-Type": "application/x-www-form-urlencoded"})
    response = send(session, prepared, service="accounts", timeout=timeout, deadline=timeout[1])
    if response.status_code >= 500 or response.status_code == 429:
        raise ZohoUnreachable(f"Zoho Accounts answered HTTP {response.status_code}",
                              status_code=response.status_code)
    try:
        body = response.json()
    except ValueError:
        raise ZohoUnreadable(f"Zoho Accounts answered HTTP {response.status_code} with "
                             f"a non-JSON body", status_code=response.status_code) from None
    if not isinstance(body, dict):
        raise ZohoPayloadError("Zoho Accounts answered with a non-object JSON body")
    for key in ("access_token", "refresh_token"):
        if isinstance(body.get(key), str):
            redactor.add(body[key])
    error = body.get("error")
    if error or "access_token" not in body:
        code = str(error or "no_access_token")
        hint = hints.get(code, str(body.get("error_description") or ""))
        raise ZohoAuthError(f"{what} refused: {code}" + (f" — {hint}" if hint else ""),
                            code=code, status_code=response.status_code)
    try:
        lifetime = float(body.get("expires_in", 3600))
    except (TypeError, ValueError):
        lifetime = 3600.0
    api_domain = body.get("api_domain")
    refresh = body.get("refresh_token")
    return Grant(access_token=str(body["access_token"]), expires_in=lifetime,
                 api_domain=api_domain if isinstance(api_domain, str) else None,
                 scopes=parse_granted(body.get("scope")),
                 refresh_token=refresh if isinstance(refresh, str) and refresh else None)


def parse_granted(text) -> frozenset[str] | None:
    """A token reply's ``scope`` as a set of names, or None when the reply has none. Zoho does
    not document the separator of its reply: spaces (OAuth 2.0, RFC 6749 §3.3) and commas (how
    the API console takes them) are both read."""
    if not isinstance(text, str) or not text.strip():
        return None
    return frozenset(text.replace(",", " ").split())

"""Bytes on the wire to Zoho: one ``requests.Session`` with the retry policy, and one bounded
``send`` that every request — Accounts, CRM, Bookings — goes through.

Retry policy (urllib3's ``Retry`` mounted under requests, :class:`ZohoRetry`; ``retries`` = 4
re-sends at most, so 5 attempts):
- GET: retried on connection errors (refused, connect timeout), read timeouts, dropped
  connections, 429 and 500/502/503/504.
- POST/PUT/PATCH/DELETE (writes): re-sent only when the request provably never reached the
  server — a connection that could not be opened, or a 429 (refused unprocessed). Never after a
  read timeout, a dropped connection or a 5xx: those may have been applied, so they raise
  :class:`ZohoUnreachable` and the engine re-reads Bookings on a later cycle.
- Wait before re-send n (1, 2, …): ``Retry-After`` when the reply has one; otherwise
  ``backoff_factor · 2^(n-1)`` plus up to as much again of random jitter, capped at
  ``backoff_max``. A ``Retry-After`` longer than ``retry_after_limit`` (60 s) ends the retries at
  once (a later cycle tries again; a poller must not sit in one request for an hour).

What :func:`send` refuses, whoever the server is:
- **Redirects.** Every request carries a credential (a token, or the client secret and refresh
  token in the token request); a 3xx pointing elsewhere would carry it to another host. No
  redirect is followed: it becomes :class:`ZohoRedirected`, naming only the target's host.
- **Slow replies.** ``deadline`` bounds the whole body, not each socket read: a server that
  trickles one byte every few seconds never trips a read timeout, so the body is read in
  pieces against the clock (:class:`ZohoUnreachable`, code ``TIMEOUT``). The wait for the
  status line and headers is bounded by the read timeout of each attempt.
- **Huge replies.** A body over ``max_bytes`` (:data:`MAX_REPLY_BYTES`, after decompression) is
  refused — by its ``Content-Length`` before a byte is read, else as soon as it passes the cap —
  never read into memory (:class:`ZohoUnreadable`).
Errors name the method and the URL path, never a query string, header or body.
"""

from __future__ import annotations

import os
import random
import threading
import time
import urllib.request
from typing import Callable
from urllib.parse import urlsplit

import requests
import structlog
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (ConnectTimeoutError, DecodeError, InvalidHeader,
                                MaxRetryError, NewConnectionError, ProtocolError,
                                ReadTimeoutError, ResponseError)
from urllib3.util.retry import Retry

from .errors import ZohoRedirected, ZohoUnreachable, ZohoUnreadable

log = structlog.get_logger("bookings_sync.zoho.http")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The largest reply we read. A CRM page of 200 meetings is ~0.1–1 MB, the field list of a big
# org a few MB; anything past this is not a Zoho answer we can use.
MAX_REPLY_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024
# Which service the running request belongs to, for counting and logging retries (urllib3
# retries deep inside Session.send, where only the thread knows whose request it is).
_current = threading.local()


class ZohoRetry(Retry):
    """urllib3 ``Retry`` with the policy above: a write may be re-sent after a 429, backoff
    starts at the first re-send, an over-long ``Retry-After`` gives up, and each re-send is
    logged, reported to ``on_retry(service)`` and slept through ``sleeper`` (tests inject it)."""

    on_retry: Callable[[str], None] | None = None
    retry_after_limit: float = 60.0
    sleeper: Callable[[float], None] = staticmethod(time.sleep)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429 and method.upper() in WRITE_METHODS:
            return bool(self.total)   # refused before processing: safe to send again
        return super().is_retry(method, status_code, has_retry_after)

    def new(self, **kw) -> "ZohoRetry":
        fresh = super().new(**kw)
        fresh.on_retry, fresh.sleeper = self.on_retry, self.sleeper
        fresh.retry_after_limit = self.retry_after_limit
        return fresh

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None):
        fresh = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = self._retry_after(response)
        if wait is not None and wait > self.retry_after_limit:
            # urlopen hands the 429/503 itself back (raise_on_status=False); http maps it.
            raise MaxRetryError(_pool, url, ResponseError(f"Retry-After {wait:g} s"))
        return fresh

    def get_backoff_time(self) -> float:
        # urllib3 waits 0 s before the first re-send; a 429 or 5xx deserves a pause at once.
        attempt = len(self.history)
        if attempt == 0:
            return 0.0
        base = self.backoff_factor * 2 ** (attempt - 1)
        return min(self.backoff_max, base + random.uniform(0, base))

    def sleep(self, response=None) -> None:
        # Called by urlopen exactly once before each re-send, after increment().
        wait = self._retry_after(response) if self.respect_retry_after_header else None
        if not wait or wait <= 0:
            wait = self.get_backoff_time()
        last = self.history[-1] if self.history else None
        service = current_service()
        if last is not None:
            log.warning("zoho.retry", service=service, method=last.method,
                        path=urlsplit(last.url or "").path,
                        status=last.status or _error_kind(last.error),
                        attempt=len(self.history), wait=round(wait, 3))
        if self.on_retry:
            self.on_retry(service)
        if wait > 0:
            self.sleeper(wait)

    def _retry_after(self, response) -> float | None:
        if response is None or not response.headers.get("Retry-After"):
            return None
        try:
            return self.get_retry_after(response)
        except InvalidHeader:
            return None     # unreadable: fall back to our own backoff


def current_service() -> str:
    return getattr(_current, "service", None) or "accounts"


def set_service(service: str | None) -> None:
    """Name the service of the requests this thread sends next (``None``: Accounts)."""
    _current.service = service


def _error_kind(error: Exception | None) -> str:
    if isinstance(error, (NewConnectionError, ConnectTimeoutError)):
        return "connect_error"
    if isinstance(error, ReadTimeoutError):
        return "read_timeout"
    if isinstance(error, ProtocolError):
        return "connection_dropped"
    return type(error).__name__ if error else "unknown"


# The CA bundle to trust for HTTPS, as requests reads it: the first of these that is set wins.
CA_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def make_session(retries: int = 4, backoff_factor: float = 0.5, backoff_max: float = 60.0,
                 on_retry: Callable[[str], None] | None = None,
                 retry_after_limit: float = 60.0) -> requests.Session:
    """A Session with :class:`ZohoRetry` mounted on http:// and https://."""
    retry = ZohoRetry(
        total=retries, connect=retries, read=retries, status=retries, other=0, redirect=0,
        allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}),
        status_forcelist=RETRY_STATUSES, backoff_factor=backoff_factor, backoff_max=backoff_max,
        respect_retry_after_header=True, raise_on_status=False)
    retry.on_retry, retry.retry_after_limit = on_retry, retry_after_limit
    session = requests.Session()
    # requests re-reads every environment variable on every request when trust_env is on (a
    # third of the client's CPU in a 10,000-action cycle). Read proxy and CA settings once.
    session.proxies.update({k: v for k, v in urllib.request.getproxies().items()
                            if k in ("http", "https")})
    session.verify = next((os.environ[name] for name in CA_BUNDLE_ENV if os.environ.get(name)),
                          True)
    session.trust_env = False
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=4)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "bookings-sync"
    return session


def send(session: requests.Session, prepared: requests.PreparedRequest, *, service: str,
         timeout: tuple[float, float], deadline: float,
         max_bytes: int = MAX_REPLY_BYTES) -> requests.Response:
    """Send ``prepared`` (as ``service``'s request) and return the response with its whole body
    read — or raise: never a redirect followed, never more than ``deadline`` seconds, never more
    than ``max_bytes`` of body."""
    where = f"{prepared.method} {urlsplit(prepared.url).path}"
    started = time.monotonic()
    set_service(service)
    try:
        # Handed to Session.send directly: Session.request would merge cookies, auth and
        # settings we never use, a fifth of the client's CPU per call.
        response = session.send(prepared, timeout=timeout, allow_redirects=False, stream=True)
    except requests.RequestException as exc:
        # Never str(exc): requests' texts quote the URL. Name the kind of failure only.
        kind, code = _failure(exc)
        text = {"connect_error": "cannot connect",
                "read_timeout": f"no answer within {timeout[1]:g} s",
                "connection_dropped": "connection dropped"}.get(kind, kind)
        raise ZohoUnreachable(f"{where}: {text}", code=code) from None
    finally:
        set_service(None)
    try:
        if response.is_redirect or response.status_code in (301, 302, 303, 307, 308):
            host = urlsplit(response.headers.get("Location", "")).hostname or "an unnamed host"
            raise ZohoRedirected(
                f"{where}: answered HTTP {response.status_code}, a redirect to {host}; not "
                f"followed — a request that carries credentials never follows a redirect "
                f"(check accounts_url / api_url and the data center)",
                code="REDIRECT", status_code=response.status_code)
        # The clock for the body starts with the headers: urllib3's own re-sends (each bounded
        # by the read timeout) happen before we get them.
        response._content = _read_body(response, where, time.monotonic() + deadline, deadline,
                                       max_bytes)
    except BaseException:
        response.close()     # unread: the connection goes, not back to the pool
        raise
    log.debug("zoho.request", service=service, method=prepared.method,
              path=urlsplit(prepared.url).path, ms=round((time.monotonic() - started) * 1000))
    return response


def _read_body(response: requests.Response, where: str, until: float, deadline: float,
               max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ZohoUnreadable(f"{where}: reply of {int(declared):,} bytes refused (the limit "
                             f"is {max_bytes:,})", code="TOO_LARGE",
                             status_code=response.status_code)
    raw, body = response.raw, bytearray()
    try:
        while True:
            if time.monotonic() > until:
                raise ZohoUnreachable(f"{where}: no complete answer within {deadline:g} s",
                                      code="TIMEOUT")
            # read1: whatever one socket read brings, so the clock is checked between pieces.
            chunk = raw.read1(_CHUNK, decode_content=True)
            if not chunk:
                break
            body += chunk
            if len(body) > max_bytes:
                raise ZohoUnreadable(f"{where}: reply larger than {max_bytes:,} bytes refused",
                                     code="TOO_LARGE", status_code=response.status_code)
    except ReadTimeoutError:
        raise ZohoUnreachable(f"{where}: the reply stalled mid-body", code="TIMEOUT") from None
    except (ProtocolError, OSError):
        raise ZohoUnreachable(f"{where}: connection dropped mid-body",
                              code="UNREACHABLE") from None
    except DecodeError:
        raise ZohoUnreadable(f"{where}: reply body cannot be decoded",
                             status_code=response.status_code) from None
    response._content_consumed = True
    raw.release_conn()
    return bytes(body)


def _failure(exc: Exception) -> tuple[str, str]:
    """(kind, code) of a requests exception, from the urllib3 error underneath it."""
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    if isinstance(exc, requests.ConnectTimeout) or isinstance(
            cause, (NewConnectionError, ConnectTimeoutError)):
        return "connect_error", "UNREACHABLE"
    if isinstance(exc, requests.ReadTimeout) or isinstance(cause, ReadTimeoutError):
        return "read_timeout", "TIMEOUT"
    if isinstance(cause, ProtocolError):
        return "connection_dropped", "UNREACHABLE"
    return f"request failed ({type(exc).__name__})", "UNREACHABLE"

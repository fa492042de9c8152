"""One place that wires the Zoho clients: session → token provider → HTTP client → CRM, Bookings.

The daemon (``runtime``), ``check`` and the tests all connect through :func:`connect`, so they
share one retry policy, one way of minting and caching tokens, and one call counter. A
:class:`ZohoConnection` closes its session when it is closed (or leaves a ``with`` block).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import requests

from .auth import TokenProvider
from .bookings import BookingsClient
from .crm import CrmClient
from .http import ZohoHttp, make_session


@dataclasses.dataclass
class ZohoConnection:
    session: requests.Session
    tokens: TokenProvider
    http: ZohoHttp
    crm: CrmClient
    bookings: BookingsClient

    def calls(self) -> Counter:
        """API requests sent so far, per service (retries included; token requests as
        ``accounts``)."""
        return self.http.calls + Counter(accounts=self.tokens.refreshes)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "ZohoConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(*, accounts_url: str, api_url: str, client_id: str, client_secret: str,
            refresh_token: str, crm_api_version: str = "v8", timeout: float = 30.0,
            connect_timeout: float = 10.0, cache_path: Path | None = None, retries: int = 4,
            backoff_factor: float = 0.5, backoff_max: float = 60.0,
            sleep: Callable[[float], None] = time.sleep) -> ZohoConnection:
    """Clients for one Zoho account. ``cache_path`` shares access tokens across processes
    (``None``: every process mints its own). The client secret, the refresh token and every
    access token are registered with the log redactor as they become known (``auth``)."""
    session = make_session(retries, backoff_factor, backoff_max)
    tokens = TokenProvider(session, accounts_url, client_id, client_secret, refresh_token,
                           cache_path=cache_path, timeout=(connect_timeout, timeout))
    http = ZohoHttp(tokens, session, timeout=(connect_timeout, timeout), sleep=sleep)
    return ZohoConnection(session=session, tokens=tokens, http=http,
                          crm=CrmClient(http, api_url, version=crm_api_version),
                          bookings=BookingsClient(http, api_url))

"""Wire a :class:`~bookings_sync.config.Config` into live objects: the store (locked), one HTTP
session with its token provider, the CRM and Bookings clients, the executor and the cycle.

Built once per process; the daemon reuses it for every cycle so connections and the access
token are kept.
"""

from __future__ import annotations

from collections import Counter

from bookings_sync import logs
from bookings_sync.config import Config
from bookings_sync.engine.cycle import Cycle
from bookings_sync.engine.executor import Executor
from bookings_sync.store import SnapshotStore
from bookings_sync.zoho.auth import TokenProvider
from bookings_sync.zoho.bookings import BookingsClient
from bookings_sync.zoho.crm import CrmClient
from bookings_sync.zoho.http import ZohoHttp, make_session


class Runtime:
    def __init__(self, config: Config, *, store: SnapshotStore | None = None):
        self.config = config
        zoho = config.zoho
        logs.redactor.add(zoho.client_secret)
        logs.redactor.add(zoho.refresh_token)
        self.store = store or SnapshotStore.open(config.sync.state_dir)
        try:
            self.session = make_session()
            self.tokens = TokenProvider(
                self.session, zoho.accounts_url, zoho.client_id, zoho.client_secret,
                zoho.refresh_token, cache_path=config.token_cache_path,
                on_token=logs.redactor.add)
            self.http = ZohoHttp(self.tokens, self.session, timeout=(10.0, zoho.timeout))
            self.crm = CrmClient(self.http, zoho.api_url, version=zoho.crm_api_version)
            self.bookings = BookingsClient(self.http, zoho.api_url)
            self.executor = Executor(self.bookings, self.crm, on_refused=config.sync.on_refused)
            self.cycle = Cycle(config, self.store, self.crm, self.executor, self.calls)
        except BaseException:
            self.store.close()
            raise

    def calls(self) -> Counter:
        """API requests sent by this process so far, per service (retries included)."""
        return self.http.calls + Counter(accounts=self.tokens.refreshes)

    def close(self) -> None:
        self.session.close()
        self.store.close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

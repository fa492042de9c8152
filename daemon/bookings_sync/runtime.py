"""Wire a :class:`~bookings_sync.config.Config` into live objects: the store (locked), the Zoho
connection (session, token provider, clients), the executor and the cycle with its settings.

Built once per process; the daemon reuses it for every cycle so connections and the access
token are kept, and builds a new one on reload around the same (locked) store. Building one logs
the configuration's warnings (``config.warning``: a secret file other users can read). This is
the one place that reads the configuration's shape on behalf of the
engine: the cycle gets explicit :class:`~bookings_sync.engine.cycle.CycleSettings`.
"""

from __future__ import annotations

import structlog

from bookings_sync.config import Config
from bookings_sync.engine.budget import BudgetSettings
from bookings_sync.engine.cycle import Cycle, CycleSettings
from bookings_sync.engine.executor import Executor
from bookings_sync.engine.meetings import MeetingFields
from bookings_sync.engine.model import Kind
from bookings_sync.engine.planner import PlannerSettings
from bookings_sync.store import SnapshotStore
from bookings_sync.zoho.connection import ZohoConnection, connect

log = structlog.get_logger("bookings_sync.runtime")


def cycle_settings(config: Config) -> CycleSettings:
    crm, sync = config.crm, config.sync
    return CycleSettings(
        planner=PlannerSettings(
            status_map={value: Kind(action) for value, action in crm.status_map.items()},
            creation_grace_seconds=sync.creation_grace_seconds, on_delete=sync.on_delete,
            max_cancel_fraction=sync.max_cancel_fraction,
            max_cancel_floor=sync.max_cancel_floor),
        fields=MeetingFields(booking_id=crm.booking_id_field, status=crm.status_field),
        overlap_seconds=sync.overlap_seconds, prune_after_days=sync.prune_after_days,
        max_backoff_seconds=sync.max_backoff_seconds, budget=budget_settings(config))


def budget_settings(config: Config) -> BudgetSettings:
    return BudgetSettings(daily_limit=config.bookings.daily_call_limit,
                          time_zone=config.bookings.time_zone)


def connect_zoho(config: Config, *, cache_tokens: bool = True) -> ZohoConnection:
    """The Zoho clients for ``config``."""
    zoho = config.zoho
    return connect(accounts_url=zoho.accounts_url, api_url=zoho.api_url,
                   client_id=zoho.client_id, client_secret=zoho.client_secret,
                   refresh_token=zoho.refresh_token, crm_api_version=zoho.crm_api_version,
                   timeout=zoho.timeout,
                   cache_path=config.token_cache_path if cache_tokens else None)


class Runtime:
    """``store``: an already open store to reuse (the daemon's reload); this runtime's
    :meth:`close` closes it all the same, and a failure here leaves it open."""

    def __init__(self, config: Config, *, store: SnapshotStore | None = None):
        self.config = config
        self.store = store or SnapshotStore.open(config.sync.state_dir)
        try:
            self.zoho = connect_zoho(config)
            self.executor = Executor(self.zoho.bookings, self.zoho.crm,
                                     on_refused=config.sync.on_refused)
            self.cycle = Cycle(self.store, self.zoho.crm, self.executor, cycle_settings(config),
                               self.zoho.calls)
        except BaseException:
            if store is None:
                self.store.close()
            raise
        for warning in config.warnings:
            log.warning("config.warning", where=warning.where, problem=warning.problem,
                        fix=warning.fix)

    def close(self) -> None:
        self.zoho.close()
        self.store.close()

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

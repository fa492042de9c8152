"""One sync cycle: fetch → plan → record (commit) → act → record outcomes (commit).

Data flows one way: CRM records → planner → pending actions → executor → store. The cursor moves
in the same atomic commit that records the actions it made necessary, *before* they run; the
outcomes are a second commit. A kill between the two leaves the actions pending, and the
executor's read-before-write makes running them again harmless. An idle cycle writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import resource
import time
from collections import Counter
from typing import Callable

import structlog

from bookings_sync.config import Config
from bookings_sync.ops import take_retry_requests
from bookings_sync.store import SnapshotStore
from bookings_sync.zoho.crm import CrmClient
from bookings_sync.zoho.errors import ZohoError
from bookings_sync.zoho.timefmt import from_utc_iso, utc_iso

from . import planner
from .executor import AuthLost, Executor, Outcome, next_attempt

log = structlog.get_logger("bookings_sync.cycle")

OK, ACTION_FAILED, ZOHO_DOWN = 0, 1, 3
# First retry of a transient failure waits this long; doubles per attempt up to max_backoff.
BACKOFF_BASE_SECONDS = 30.0
PRUNE_EVERY = dt.timedelta(hours=24)


@dataclasses.dataclass
class CycleReport:
    exit_code: int = OK
    baseline: bool = False
    fetched: int = 0
    changed: int = 0
    planned: int = 0
    outcomes: Counter = dataclasses.field(default_factory=Counter)
    held: int = 0
    calls: Counter = dataclasses.field(default_factory=Counter)
    duration: float = 0.0
    cpu: float = 0.0                  # CPU seconds of this process during the cycle
    store_writes: int = 0
    error: str = ""
    plan: planner.Plan | None = None

    def summary(self) -> dict:
        return {
            "outcome": {OK: "ok", ACTION_FAILED: "action-failed", ZOHO_DOWN: "zoho-error"}
            .get(self.exit_code, str(self.exit_code)),
            "baseline": self.baseline, "fetched": self.fetched, "changed": self.changed,
            "planned": self.planned, "held": self.held, **dict(self.outcomes),
            "crm_calls": self.calls.get("crm", 0), "bookings_calls": self.calls.get("bookings", 0),
            "token_calls": self.calls.get("accounts", 0),
            "duration_ms": round(self.duration * 1000), "cpu_ms": round(self.cpu * 1000),
            "store_writes": self.store_writes, "peak_rss_mb": peak_rss_mb(),
            "error": self.error,
        }


class Cycle:
    """Everything one cycle needs, built once per process (clients keep their connections)."""

    def __init__(self, config: Config, store: SnapshotStore, crm: CrmClient, executor: Executor,
                 call_counter: Callable[[], Counter], *, clock: Callable[[], dt.datetime] | None = None):
        self.config = config
        self.store = store
        self.crm = crm
        self.executor = executor
        self.call_counter = call_counter
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        crm_cfg, sync = config.crm, config.sync
        self.settings = planner.PlannerSettings(
            booking_id_field=crm_cfg.booking_id_field, status_field=crm_cfg.status_field,
            status_map=dict(crm_cfg.status_map),
            creation_grace_seconds=sync.creation_grace_seconds, on_delete=sync.on_delete,
            max_cancel_fraction=sync.max_cancel_fraction, max_cancel_floor=sync.max_cancel_floor)

    # -- the cycle ------------------------------------------------------------------------------

    def run(self, *, dry_run: bool = False, allow_mass_cancel: bool = False) -> CycleReport:
        report = CycleReport()
        started, cpu_started = time.monotonic(), time.process_time()
        writes_before = self.store.writes
        calls_before = self.call_counter().copy()
        log.info("cycle.start", cursor=self.store.cursor, **({"dry_run": True} if dry_run else {}))
        try:
            self._run(report, dry_run=dry_run, allow_mass_cancel=allow_mass_cancel)
        except ZohoError as exc:
            # Unreachable, auth refused, or an API error on the CRM read (scope, permission):
            # nothing was committed past what is safe; the next cycle starts from the same cursor.
            report.exit_code, report.error = ZOHO_DOWN, str(exc)
            log.error("cycle.zoho_error", error=str(exc), kind=type(exc).__name__)
        finally:
            report.duration = time.monotonic() - started
            report.cpu = time.process_time() - cpu_started
            report.store_writes = self.store.writes - writes_before
            report.calls = self.call_counter() - calls_before
        if not dry_run:
            self._record_cycle(report)
        log.log(_level(report), "cycle.end", **{k: v for k, v in report.summary().items() if v})
        return report

    def _run(self, report: CycleReport, *, dry_run: bool, allow_mass_cancel: bool) -> None:
        store = self.store
        now = self.clock()
        report.baseline = store.is_new
        if not dry_run and take_retry_requests(store):
            log.info("retry.requested", pending=store.pending_count())
        records, bad = self._fetch(store.cursor)
        # The server's clock when the last page of changes was served; later replies (the
        # deleted list, retries) could claim a window closed that this read did not see close.
        read_at = self.crm.server_time
        deleted_cursor = store.meta().get("deleted_cursor")
        deleted = self._fetch_deleted(deleted_cursor)
        report.fetched = len(records) + len(bad)
        plan = planner.plan(
            store, records, settings=self.settings, baseline=report.baseline, now=now,
            cursor=store.cursor, deleted=deleted, deleted_cursor=deleted_cursor,
            upcoming_count=lambda: _upcoming(store, now), allow_mass_cancel=allow_mass_cancel)
        plan.notes[:0] = bad
        report.plan, report.changed, report.planned, report.held = (
            plan, len(plan.meetings), len(plan.actions), plan.held)
        for note in plan.notes:
            log.log(_LEVELS[note.level], note.event, **note.fields)
        if bad:
            report.exit_code = ACTION_FAILED
        if dry_run:
            return

        # Commit 1 — write-ahead: snapshot rows, new pending actions and the cursor together.
        store.put_meetings(plan.meetings)
        store.put_pending(plan.actions)
        store.remove_pending(plan.drop_pending)
        store.remove_failures(plan.clear_failures)
        meta = {"cursor": plan.cursor, "baseline_done": True,
                "cursor_settled": self._settled(plan.cursor, read_at),
                # Deletions are watched from the server's high-water mark at baseline on.
                "deleted_cursor": plan.deleted_cursor or plan.cursor}
        if report.baseline:
            meta["baseline_at"] = utc_iso(now)
            log.info("baseline.recorded", meetings=len(plan.meetings))
        if any(store.meta().get(k) != v for k, v in meta.items()):
            store.update_meta(**meta)
        self._prune(now)
        store.commit()

        # Act on what is due, then commit 2 — the outcomes.
        pending = store.pending()
        due = [a for a in pending.values()
               if (not a.get("held") or allow_mass_cancel)
               and (a.get("not_before") or "") <= utc_iso(now)]
        report.held = sum(1 for a in pending.values() if a.get("held") and not allow_mass_cancel)
        if report.held:
            log.error("guard.holding", held=report.held,
                      hint="bookings-sync --run-once --allow-mass-cancel, or bookings-sync retry")
            report.exit_code = ACTION_FAILED
        if not due:
            return
        due.sort(key=lambda a: (a["planned_at"], a["meeting_id"]))
        try:
            outcomes = self.executor.run(due)
        except AuthLost as lost:
            self._apply(lost.outcomes, now)
            store.commit()
            raise lost.error from None
        self._apply(outcomes, now)
        store.commit()
        report.outcomes.update(o.result for o in outcomes)
        if any(o.result in ("refused", "failed") for o in outcomes):
            report.exit_code = max(report.exit_code, ACTION_FAILED)
        if any(o.result == "retry" for o in outcomes):
            report.exit_code = ZOHO_DOWN   # Bookings unreachable: the action waits for a later cycle

    def _since(self, cursor: str | None) -> dt.datetime | None:
        """Where to read from: the cursor minus the overlap window — or the cursor itself once a
        read has shown that window closed (server time past it), so an idle cycle re-reads
        nothing and costs one 204."""
        if not cursor:
            return None
        if self.store.meta().get("cursor_settled") == cursor:
            return from_utc_iso(cursor)
        return self._minus_overlap(cursor)

    def _minus_overlap(self, cursor: str) -> dt.datetime:
        return from_utc_iso(cursor) - dt.timedelta(seconds=self.config.sync.overlap_seconds)

    def _settled(self, cursor: str | None, server: dt.datetime | None) -> str | None:
        """The cursor, if the server's clock at our read was past its overlap window."""
        if not cursor or server is None:
            return None
        closes = from_utc_iso(cursor) + dt.timedelta(seconds=self.config.sync.overlap_seconds + 1)
        return cursor if server >= closes else None

    def _fetch(self, cursor: str | None) -> tuple[list[planner.MeetingRecord], list[planner.Note]]:
        since = self._since(cursor)
        self.crm.server_time = None
        records, bad = [], []
        for page in self.crm.iter_modified(since, self.settings.fields()):
            for raw in page:
                try:
                    record = planner.normalize(raw, self.settings)
                except planner.RecordError as exc:
                    bad.append(planner.Note("error", "crm.bad_record", {"reason": str(exc)}))
                    continue
                if record is not None:
                    records.append(record)
        return records, bad

    def _fetch_deleted(self, cursor: str | None) -> list[dict]:
        """Deletions since the deleted-records cursor (server time, like the main cursor)."""
        if self.settings.on_delete == "ignore" or self.store.is_new:
            return []   # nothing tracked yet, or deletions are not acted on: save the call
        since = self._minus_overlap(cursor) if cursor else None
        items: list[dict] = []
        for page in self.crm.iter_deleted(since):
            items.extend(page)
        return items

    # -- recording outcomes -------------------------------------------------------------------

    def _apply(self, outcomes: list[Outcome], now: dt.datetime) -> None:
        store, sync = self.store, self.config.sync
        stamp = utc_iso(now)
        rows, done, retry, failures = [], [], [], []
        for outcome in outcomes:
            action = outcome.action
            meeting_id = action["meeting_id"]
            _log_outcome(outcome)
            snap = store.meeting(meeting_id)
            if snap is not None:
                row = dict(snap, last_action=action["kind"], outcome=outcome.result,
                           outcome_at=stamp)
                if outcome.reverted_to:
                    # CRM is being put back: expect that, or its write-back looks like a move.
                    row["start"] = outcome.reverted_to
                    row["end"] = outcome.reverted_end or row.get("end")
                rows.append(row)
            if outcome.result == "retry":
                attempts = action.get("attempts", 0) + 1
                retry.append(dict(action, attempts=attempts, last_error=outcome.reason,
                                  not_before=next_attempt(now, attempts, base=BACKOFF_BASE_SECONDS,
                                                          cap=sync.max_backoff_seconds)))
                continue
            done.append(meeting_id)
            if outcome.result in ("refused", "failed"):
                failures.append({
                    "meeting_id": meeting_id, "booking_id": action["booking_id"],
                    "kind": action["kind"], "start": action.get("start"),
                    "result": outcome.result, "reason": outcome.reason, "code": outcome.code,
                    "at": stamp, "reverted_to": outcome.reverted_to,
                    "attempts": action.get("attempts", 0) + 1,
                })
        store.put_meetings(rows)
        store.remove_pending(done)
        store.put_pending(retry)
        store.put_failures(failures)

    def _record_cycle(self, report: CycleReport) -> None:
        # For `status`: a small file of its own, so an idle cycle never rewrites the snapshot.
        self.store.record_cycle(dict(report.summary(), at=utc_iso(self.clock())))

    def _prune(self, now: dt.datetime) -> None:
        meta = self.store.meta()
        last = meta.get("pruned_at")
        if last and now - from_utc_iso(last) < PRUNE_EVERY:
            return
        removed = self.store.prune(now - dt.timedelta(days=self.config.sync.prune_after_days))
        self.store.update_meta(pruned_at=utc_iso(now))
        if removed:
            log.info("store.pruned", meetings=removed)


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, where Linux has it: ``ru_maxrss`` of a
    forked child also counts what its parent held at fork."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _upcoming(store: SnapshotStore, now: dt.datetime) -> int:
    stamp = utc_iso(now)
    return sum(1 for m in store.meetings() if m.get("start", "") > stamp and not m.get("deleted"))


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def _level(report: CycleReport) -> int:
    return 40 if report.exit_code == ZOHO_DOWN else 30 if report.exit_code else 20


def _log_outcome(outcome: Outcome) -> None:
    action = outcome.action
    fields = {"meeting_id": action["meeting_id"], "booking_id": action["booking_id"],
              "action": action["kind"], "outcome": outcome.result}
    if action["kind"] == planner.RESCHEDULE:
        fields.update({"old": outcome.bookings_start, "new": outcome.target,
                       "tz": outcome.time_zone, "crm_start": action.get("start")})
    if outcome.reason:
        fields["reason"] = outcome.reason
    if outcome.reverted_to:
        fields["reverted_to"] = outcome.reverted_to
    level = {"done": 20, "in_sync": 20, "skipped": 20, "refused": 30, "retry": 30,
             "failed": 40}[outcome.result]
    log.log(level, "action", **fields)

"""One sync cycle: read changes → plan → record (commit) → act → record outcomes (commit).

Data flows one way: CRM records → planner → pending actions → executor → store. The cursor moves
in the same atomic commit that records the actions it made necessary, *before* they run; the
outcomes are a second commit. A kill between the two leaves the actions pending, and the
executor's read-before-write makes running them again harmless. An idle cycle writes nothing.

The cycle takes explicit settings (:class:`CycleSettings`, built by the runtime from the
configuration), as vdirsyncer's ``sync()`` takes its policy as arguments: the engine never reads
the configuration file's shape.

Time it trusts: decisions about Zoho's data — which Modified_Time may move a cursor, which
meetings are upcoming (the mass-cancel guard), which ended long enough ago to forget — use the
server's clock (the ``Date`` of the last list reply), not only the local one: a local clock
40 days ahead for one cycle must not forget upcoming meetings. The local clock decides only the
daemon's own schedule (backoff, when an action was planned).

Every ``cycle.end`` says how many actions are still waiting and when the next one is due; a
cycle that leaves actions waiting never exits 0.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import resource
import time
from collections import Counter
from typing import Callable, Iterator, Protocol

import structlog

from bookings_sync.exitcodes import ExitCode
from bookings_sync.mailbox import take_retry_requests
from bookings_sync.store import SnapshotStore, parse_stamp, stamp
from bookings_sync.zoho.crm import Page
from bookings_sync.zoho.errors import ZohoError

from . import planner
from .budget import Budget, BudgetSettings
from .executor import BudgetExhausted, Executor, Outcome, RunAborted
from .meetings import MeetingFields, read_deleted
from .model import (Action, DeletedMeeting, Failure, Hold, Kind, MeetingRecord, Note, OnDelete,
                    Request, RequestState, Result, SeenMeeting)
from .retry import after_transient_failure, requeue

log = structlog.get_logger("bookings_sync.cycle")

PRUNE_EVERY = dt.timedelta(hours=24)
# A cycle starts at most this many actions (a burst drains over several cycles; each cycle
# stays far inside the service's WatchdogSec), and commits outcomes every BATCH_SIZE of them.
MAX_ACTIONS_PER_CYCLE = 500
BATCH_SIZE = 20
# How far past the server's clock a CRM timestamp is still believed (see the module docstring).
CLOCK_SKEW_SECONDS = 60


class CrmLists(Protocol):
    """The CRM reads a cycle makes (``zoho.crm.CrmClient``)."""
    def iter_modified(self, since: dt.datetime | None, fields: list[str]) -> Iterator[Page]: ...
    def iter_deleted(self, since: dt.datetime | None) -> Iterator[Page]: ...


@dataclasses.dataclass(frozen=True)
class CycleSettings:
    planner: planner.PlannerSettings = planner.PlannerSettings()
    fields: MeetingFields = MeetingFields()
    # Re-read this many seconds before the cursor until the server's clock has passed it.
    overlap_seconds: int = 5
    prune_after_days: int = 30
    max_backoff_seconds: float = 3600
    budget: BudgetSettings = BudgetSettings()


@dataclasses.dataclass
class CycleReport:
    exit_code: ExitCode = ExitCode.OK
    baseline: bool = False
    fetched: int = 0
    changed: int = 0
    planned: int = 0
    outcomes: Counter = dataclasses.field(default_factory=Counter)   # Result -> count
    held: int = 0
    calls: Counter = dataclasses.field(default_factory=Counter)
    duration: float = 0.0
    cpu: float = 0.0                  # CPU seconds of this process during the cycle
    store_writes: int = 0
    store_bytes: int = 0              # written to the state directory (journal, base)
    pending: int = 0                  # actions still waiting after this cycle
    next_try: dt.datetime | None = None
    conflicts: int = 0                # bookings linked to more than one meeting
    budget_held: int = 0              # due actions left for later: budget or per-cycle bound
    bookings_calls_today: int = 0
    bookings_daily_limit: int = 0
    error: str = ""
    plan: planner.Plan | None = None

    def fail(self, code: ExitCode) -> None:
        """Raise the exit code to ``code`` (a worse outcome is never hidden by a milder one)."""
        self.exit_code = max(self.exit_code, code)

    def summary(self) -> dict:
        return {
            "outcome": {ExitCode.OK: "ok", ExitCode.ACTION_FAILED: "action-failed",
                        ExitCode.ZOHO: "zoho-error"}.get(self.exit_code, str(int(self.exit_code))),
            "baseline": self.baseline, "fetched": self.fetched, "changed": self.changed,
            "planned": self.planned, "held": self.held,
            **{result.value: count for result, count in self.outcomes.items()},
            "crm_calls": self.calls.get("crm", 0), "bookings_calls": self.calls.get("bookings", 0),
            "token_calls": self.calls.get("accounts", 0),
            "duration_ms": round(self.duration * 1000), "cpu_ms": round(self.cpu * 1000),
            "store_writes": self.store_writes, "store_bytes": self.store_bytes,
            "pending": self.pending,
            "next_try": stamp(self.next_try), "conflicts": self.conflicts,
            "budget_held": self.budget_held, "bookings_calls_today": self.bookings_calls_today,
            "bookings_daily_limit": self.bookings_daily_limit,
            "peak_rss_mb": peak_rss_mb(), "error": self.error,
        }


@dataclasses.dataclass
class _Changes:
    """What one cycle read from CRM."""
    records: list[MeetingRecord]
    bad: list[Note]                     # records we could not use, one note each
    read_at: dt.datetime | None         # the server's clock at the last page of changes
    deleted: list[DeletedMeeting]
    deleted_notes: list[Note]


class Cycle:
    """Everything one cycle needs, built once per process (clients keep their connections)."""

    def __init__(self, store: SnapshotStore, crm: CrmLists, executor: Executor,
                 settings: CycleSettings, call_counter: Callable[[], Counter], *,
                 clock: Callable[[], dt.datetime] | None = None):
        self.store = store
        self.crm = crm
        self.executor = executor
        self.settings = settings
        self.call_counter = call_counter
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        # Called after each committed batch of actions: the daemon counts it as a sign of life
        # (its watchdog keeps being fed while a long backlog drains).
        self.progress: Callable[[], None] = lambda: None

    # -- the cycle ------------------------------------------------------------------------------

    def run(self, *, dry_run: bool = False, allow_mass_cancel: bool = False,
            allow_mass_book: bool = False) -> CycleReport:
        """One cycle. ``allow_mass_cancel`` / ``allow_mass_book`` send what the guards hold."""
        released = frozenset({Hold.MASS_CANCEL} if allow_mass_cancel else ()) | frozenset(
            {Hold.MASS_BOOK} if allow_mass_book else ())
        report = CycleReport()
        started, cpu_started = time.monotonic(), time.process_time()
        writes_before, bytes_before = self.store.writes, self.store.bytes_written
        calls_before = self.call_counter().copy()
        log.info("cycle.start", cursor=self.store.cursor, **({"dry_run": True} if dry_run else {}))
        try:
            self._run(report, dry_run=dry_run, released=released)
        except ZohoError as exc:
            # Unreachable, auth refused, or an API error on the CRM read (scope, permission):
            # nothing was committed past what is safe; the next cycle starts from the same cursor.
            report.exit_code, report.error = ExitCode.ZOHO, str(exc)
            log.error("cycle.zoho_error", error=str(exc), kind=type(exc).__name__)
        finally:
            report.duration = time.monotonic() - started
            report.cpu = time.process_time() - cpu_started
            report.store_writes = self.store.writes - writes_before
            report.store_bytes = self.store.bytes_written - bytes_before
            report.calls = self.call_counter() - calls_before
        if not dry_run:
            self._report_waiting(report)
        if not dry_run:
            self._record_cycle(report)
        # Zero counts are left out to keep lines short — except what is still waiting.
        log.log(_level(report), "cycle.end", **{k: v for k, v in report.summary().items()
                                                if v or k == "pending"})
        return report

    def _run(self, report: CycleReport, *, dry_run: bool, released: frozenset) -> None:
        now = self.clock()
        self.store.check_still_ours()     # an idle cycle writes nothing: look before reading
        report.baseline = self.store.is_new
        if not dry_run:
            self._take_retry_requests(now)
        changes = self._read_changes()
        server_now = changes.read_at or now
        plan = self._plan(changes, report, now, server_now, released)
        if dry_run:
            return
        self._record_plan(plan, changes.read_at, report.baseline, now, server_now)
        self._warn_conflicts()
        self._act(report, now, server_now, released)

    def _take_retry_requests(self, now: dt.datetime) -> None:
        requeued = sum(requeue(self.store, ids, now)
                       for ids in take_retry_requests(self.store.state_dir))
        if requeued:
            log.info("retry.requested", pending=self.store.pending_count())

    def _plan(self, changes: _Changes, report: CycleReport, now: dt.datetime,
              server_now: dt.datetime, released: frozenset) -> planner.Plan:
        store = self.store
        report.fetched = len(changes.records) + len(changes.bad)
        plan = planner.plan(
            _SnapshotView(store), changes.records, settings=self.settings.planner,
            baseline=report.baseline, now=now, cursor=parse_stamp(store.cursor),
            deleted=changes.deleted, deleted_cursor=self._deleted_cursor(),
            upcoming_count=lambda: store.upcoming_count(server_now),
            allow_mass_cancel=Hold.MASS_CANCEL in released,
            allow_mass_book=Hold.MASS_BOOK in released,
            believable_until=server_now + dt.timedelta(seconds=CLOCK_SKEW_SECONDS))
        bad = changes.bad + changes.deleted_notes
        plan.notes[:0] = bad
        report.plan, report.changed, report.planned, report.held = (
            plan, len(plan.meetings), len(plan.actions), plan.held)
        for note in plan.notes:
            log.log(_LEVELS[note.level], note.event, **note.fields)
        if bad:      # one bad record never stops the rest, but the run says so
            report.fail(ExitCode.ACTION_FAILED)
        return plan

    def _record_plan(self, plan: planner.Plan, read_at: dt.datetime | None, baseline: bool,
                     now: dt.datetime, server_now: dt.datetime) -> None:
        """Commit 1 — write-ahead: snapshot rows, new pending actions and the cursor together."""
        store = self.store
        store.put_meetings([m.to_row() for m in plan.meetings])
        store.put_requests([r.to_row() for r in plan.requests])
        store.put_pending([a.to_row() for a in plan.actions])
        store.remove_pending(plan.drop_pending)
        store.remove_failures(plan.clear_failures)
        cursor = stamp(plan.cursor)
        meta = {"cursor": cursor, "baseline_done": True,
                "cursor_settled": self._settled(plan.cursor, read_at),
                # Deletions are watched from the server's high-water mark at baseline on.
                "deleted_cursor": stamp(plan.deleted_cursor) or cursor}
        if baseline:
            meta["baseline_at"] = stamp(now)
            log.info("baseline.recorded", meetings=len(plan.meetings))
        if any(store.meta().get(k) != v for k, v in meta.items()):
            store.update_meta(**meta)
        self._prune(now, server_now)
        store.commit()

    def _warn_conflicts(self) -> None:
        """One line per cycle for each booking linked to more than one meeting."""
        for booking_id, meeting_ids in sorted(self.store.conflicts().items()):
            log.warning("booking.conflict", booking_id=booking_id, meetings=meeting_ids,
                        reason="this booking id is on more than one CRM meeting (a clone or an "
                               "import?): nothing is sent for it until only one keeps the id")

    def _act(self, report: CycleReport, now: dt.datetime, server_now: dt.datetime,
             released: frozenset) -> None:
        """Run what is due, soonest appointment first, within the day's Bookings budget and at
        most :data:`MAX_ACTIONS_PER_CYCLE`; commit the outcomes every :data:`BATCH_SIZE`
        actions (a kill re-spends at most one batch of Bookings reads)."""
        pending = [Action.from_row(row) for row in self.store.pending().values()]
        conflicted = self.store.conflicts()
        due = [a for a in pending if a.due(now, released=released)
               and a.booking_id not in conflicted]
        report.held = sum(1 for a in pending if a.held and a.held not in released)
        if report.held:
            log.error("guard.holding", held=report.held,
                      hint="bookings-sync --run-once --allow-mass-cancel (or --allow-mass-book), "
                           "or bookings-sync retry")
            report.fail(ExitCode.ACTION_FAILED)
        budget = Budget.load(self.store.meta(), self.settings.budget, server_now)  # Zoho's day
        due = sorted(due, key=_soonest)[:MAX_ACTIONS_PER_CYCLE]   # the rest: next cycle
        ran = 0
        while ran < len(due) and budget.affordable() > 0:
            batch = due[ran:ran + min(BATCH_SIZE, budget.affordable())]
            done, go_on = self._act_batch(batch, report, now, budget)
            ran += done
            self.progress()
            if not go_on:
                break
        report.budget_held = len(due) - ran
        if report.budget_held:
            log.warning("bookings.budget_holding", waiting=report.budget_held,
                        calls_today=budget.used, daily_limit=budget.limit,
                        resets_at=stamp(budget.resets_at()),
                        hint="the soonest appointments went first; the rest follow after the "
                             "reset ([bookings] daily_call_limit is your plan's number)")
            report.fail(ExitCode.ACTION_FAILED)
        self._record_budget(report, budget)

    def _act_batch(self, batch: list[Action], report: CycleReport, now: dt.datetime,
                   budget: Budget) -> tuple[int, bool]:
        """One batch: run, count the Bookings calls, commit outcomes and budget together.
        Returns how many actions got an outcome, and False when Zoho said the day's limit is
        reached (nothing more today)."""
        before = self.call_counter().get("bookings", 0)
        outcomes, stop = [], None
        try:
            outcomes = self.executor.run(batch, before_send=self._in_flight)
        except RunAborted as aborted:
            outcomes, stop = aborted.outcomes, aborted
        budget.spend(self.call_counter().get("bookings", 0) - before)
        if isinstance(stop, BudgetExhausted):
            budget.exhaust()
            log.warning("bookings.limit_reached", error=str(stop.error),
                        resets_at=stamp(budget.resets_at()),
                        hint="another client of this Zoho user may spend the same quota")
        self._apply(outcomes, now)
        self.store.update_meta(**budget.to_meta())
        self.store.commit()
        report.outcomes.update(o.result for o in outcomes)
        if any(o.result.is_failure for o in outcomes):
            report.fail(ExitCode.ACTION_FAILED)
        if any(o.result is Result.RETRY for o in outcomes):
            report.exit_code = ExitCode.ZOHO   # Bookings unreachable: the action waits for later
        if stop is not None and not isinstance(stop, BudgetExhausted):
            raise stop.error from None
        return len(outcomes), stop is None

    def _in_flight(self, action: Action) -> None:
        """A booking is about to be sent: recorded first, so that a kill or a lost reply makes
        the next run look it up in Bookings instead of booking it again."""
        self.store.put_pending([action.to_row()])
        self.store.commit()

    def _record_budget(self, report: CycleReport, budget: Budget) -> None:
        report.bookings_calls_today, report.bookings_daily_limit = budget.used, budget.limit
        if budget.warn_now():
            log.warning("bookings.budget", calls_today=budget.used, daily_limit=budget.limit,
                        resets_at=stamp(budget.resets_at()),
                        reason="80 % of the day's Bookings calls are spent")
        meta = {**budget.to_meta(), "budget_held": report.budget_held or None}
        if any(self.store.meta().get(k) != v for k, v in meta.items()):
            self.store.update_meta(**meta)
            self.store.commit()

    def _report_waiting(self, report: CycleReport) -> None:
        """What is still waiting: in ``cycle.end`` always, and never an exit 0 while it waits."""
        waiting = [Action.from_row(row) for row in self.store.pending().values()]
        report.pending = len(waiting)
        report.next_try = min((a.not_before or self.clock() for a in waiting if not a.held),
                              default=None)
        report.conflicts = len(self.store.conflicts())
        if waiting:
            report.fail(ExitCode.ACTION_FAILED)

    # -- reading CRM ----------------------------------------------------------------------------

    def _read_changes(self) -> _Changes:
        fields = self.settings.fields
        records, bad, read_at = [], [], None
        for page in self.crm.iter_modified(self._since(self.store.cursor), fields.names()):
            got, notes = fields.read(page.records)
            records += got
            bad += notes
            # The server's clock when the last page of changes was served; later replies (the
            # deleted list) could claim a window closed that this read did not see close.
            read_at = page.server_time or read_at
        deleted, deleted_notes = self._read_deleted()
        return _Changes(records, bad, read_at, deleted, deleted_notes)

    def _read_deleted(self) -> tuple[list[DeletedMeeting], list[Note]]:
        """Deletions since the deleted-records cursor (server time, like the main cursor)."""
        if self.settings.planner.on_delete is OnDelete.IGNORE or self.store.is_new:
            return [], []   # nothing tracked yet, or deletions are not acted on: save the call
        cursor = self._deleted_cursor()
        since = self._minus_overlap(cursor) if cursor else None
        raws = [raw for page in self.crm.iter_deleted(since) for raw in page.records]
        return read_deleted(raws)

    def _deleted_cursor(self) -> dt.datetime | None:
        return parse_stamp(self.store.meta().get("deleted_cursor"))

    def _since(self, cursor: str | None) -> dt.datetime | None:
        """Where to read from: the cursor minus the overlap window — or the cursor itself once a
        read has shown that window closed (server time past it), so an idle cycle re-reads
        nothing and costs one 204."""
        if not cursor:
            return None
        if self.store.meta().get("cursor_settled") == cursor:
            return parse_stamp(cursor)
        return self._minus_overlap(parse_stamp(cursor))

    def _minus_overlap(self, cursor: dt.datetime) -> dt.datetime:
        return cursor - dt.timedelta(seconds=self.settings.overlap_seconds)

    def _settled(self, cursor: dt.datetime | None, server: dt.datetime | None) -> str | None:
        """The cursor, if the server's clock at our read was past its overlap window."""
        if cursor is None or server is None:
            return None
        closes = cursor + dt.timedelta(seconds=self.settings.overlap_seconds + 1)
        return stamp(cursor) if server >= closes else None

    # -- recording outcomes ---------------------------------------------------------------------

    def _apply(self, outcomes: list[Outcome], now: dt.datetime) -> None:
        store = self.store
        rows, done, retry, failures = [], [], [], []
        for outcome in outcomes:
            action = outcome.action
            _log_outcome(outcome)
            settled = None
            if action.kind in (Kind.BOOK, Kind.LINK) and outcome.result is not Result.RETRY:
                settled = self._settle_request(outcome, now)
            # The request meeting that now carries its booking: the row the link made, not
            # the stored one (which an earlier unlink may have left without a booking id).
            row = settled.to_row() if settled else store.meeting(action.meeting_id)
            if row is not None:
                seen = dataclasses.replace(SeenMeeting.from_row(row), last_action=action.kind,
                                           outcome=outcome.result, outcome_at=now,
                                           warning=outcome.warning)
                if outcome.reverted_to:
                    # CRM is being put back: expect that, or its write-back looks like a move.
                    seen = dataclasses.replace(seen, start=outcome.reverted_to,
                                               end=outcome.reverted_end or seen.end)
                rows.append(seen.to_row())
            if outcome.result is Result.RETRY:
                retry.append(after_transient_failure(
                    action, outcome.reason, now, cap=self.settings.max_backoff_seconds).to_row())
                continue
            done.append(action.meeting_id)
            if outcome.result.is_failure:
                failures.append(Failure(
                    meeting_id=action.meeting_id, booking_id=action.booking_id, kind=action.kind,
                    start=action.start, result=outcome.result, reason=outcome.reason,
                    code=outcome.code, at=now, reverted_to=outcome.reverted_to,
                    attempts=action.attempts + 1, request=action.request).to_row())
        store.put_meetings(rows)
        store.remove_pending(done)
        store.put_pending(retry)
        store.put_failures(failures)

    def _settle_request(self, outcome: Outcome, now: dt.datetime) -> SeenMeeting | None:
        """A book or link action's outcome in its request's row; the snapshot row it makes
        when the request meeting now carries the booking."""
        action, store = outcome.action, self.store
        row = store.request(action.meeting_id)
        before = Request.from_row(row) if row else None
        fingerprint = (action.request.fingerprint(action.start) if action.request
                       else before.fingerprint if before else "")
        if action.kind is Kind.BOOK:
            booked = outcome.result is Result.DONE
            store.put_requests([Request(
                action.meeting_id, RequestState.BOOKED if booked else RequestState.REFUSED,
                fingerprint, at=now, booking_id=outcome.booking_id,
                reason=None if booked else outcome.reason, start=action.start,
                end=action.end).to_row()])
            return None
        if outcome.result is not Result.DONE:
            return None
        store.put_requests([dataclasses.replace(
            before, state=RequestState.LINKED, at=now,
            partner=action.partner or action.meeting_id).to_row()])
        if outcome.crm_modified is None:
            store.remove_meetings([action.meeting_id])    # deleted, or left unlinked
            return None
        # The request meeting now carries the booking: its row at the version our PUT made,
        # so that reading it back is no change.
        return SeenMeeting(id=action.meeting_id, booking_id=action.booking_id,
                           start=before.start, end=before.end, modified=outcome.crm_modified)

    def _record_cycle(self, report: CycleReport) -> None:
        # For `status`: a small file of its own, so an idle cycle never rewrites the snapshot.
        self.store.record_cycle(dict(report.summary(), at=stamp(self.clock())))

    def _prune(self, now: dt.datetime, server_now: dt.datetime) -> None:
        last = parse_stamp(self.store.meta().get("pruned_at"))
        if last and now - last < PRUNE_EVERY:
            return
        # The earlier of both clocks: a clock running ahead must not make upcoming meetings
        # look ended (and forgotten).
        trusted = min(now, server_now)
        removed = self.store.prune(trusted - dt.timedelta(days=self.settings.prune_after_days),
                                   settled=(RequestState.LINKED, RequestState.REFUSED))
        self.store.update_meta(pruned_at=stamp(now))
        if removed:
            log.info("store.pruned", meetings=removed)


class _SnapshotView:
    """The planner's read-only view of the store, in the engine's types."""

    def __init__(self, store: SnapshotStore):
        self.store = store

    def meeting(self, meeting_id: str) -> SeenMeeting | None:
        row = self.store.meeting(meeting_id)
        return SeenMeeting.from_row(row) if row is not None else None

    def pending(self) -> dict[str, Action]:
        return {m: Action.from_row(row) for m, row in self.store.pending().items()}

    def has_failure(self, meeting_id: str) -> bool:
        return self.store.failure(meeting_id) is not None

    def meetings_linked_to(self, booking_id: str) -> set[str]:
        return self.store.meetings_linked_to(booking_id)

    def requests(self) -> dict[str, Request]:
        return {m: Request.from_row(row) for m, row in self.store.requests().items()}


def _soonest(action: Action) -> tuple:
    """Sort key: the appointment that comes first (as Bookings holds it, or where it moves),
    then the order actions were planned."""
    times = [t for t in (action.old_start, action.start) if t is not None]
    return (min(times) if times else dt.datetime.max.replace(tzinfo=dt.timezone.utc),
            action.planned_at, action.meeting_id)


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


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_OUTCOME_LEVELS = {Result.DONE: 20, Result.IN_SYNC: 20, Result.SKIPPED: 20, Result.REFUSED: 30,
                   Result.RETRY: 30, Result.FAILED: 40}


def _level(report: CycleReport) -> int:
    return 40 if report.exit_code == ExitCode.ZOHO else 30 if report.exit_code else 20


def _log_outcome(outcome: Outcome) -> None:
    action = outcome.action
    fields = {"meeting_id": action.meeting_id,
              "booking_id": outcome.booking_id or action.booking_id or None,
              "action": action.kind.value, "outcome": outcome.result.value}
    if action.kind is Kind.RESCHEDULE:
        fields.update({"old": outcome.bookings_start, "new": outcome.target,
                       "tz": outcome.time_zone, "crm_start": stamp(action.start)})
    elif action.kind is Kind.BOOK:
        fields.update({"new": outcome.target, "tz": outcome.time_zone,
                       "crm_start": stamp(action.start), "service": action.request.service})
    elif action.kind is Kind.LINK:
        fields["zoho_meeting"] = action.partner
    if outcome.reason:
        fields["reason"] = outcome.reason
    if outcome.reverted_to:
        fields["reverted_to"] = stamp(outcome.reverted_to)
    if outcome.warning:
        fields["warning"] = outcome.warning
    level = max(_OUTCOME_LEVELS[outcome.result], 30 if outcome.warning else 0)
    log.log(level, "action", **fields)

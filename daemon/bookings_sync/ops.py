"""Operator commands: ``status`` (what state is it in?) and ``retry`` (try those again).

``status`` opens the store read-only, without the lock: it works while the daemon runs, and the
store's journal means it always reads one committed state. Text from Zoho (reasons, warnings)
is printed through ``logs.printable``: a control character never reaches the terminal raw. ``retry`` re-queues recorded
failures and releases cancels held by the mass-cancel guard (``engine.retry.requeue``). When a
daemon holds the state directory, ``retry`` leaves it a request instead (``mailbox``), which the
daemon applies at the start of its next cycle — the daemon stays the only writer.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path

from bookings_sync.engine.budget import Budget, BudgetSettings
from bookings_sync.engine.booking import INTEGRATION_WINDOW
from bookings_sync.engine.model import Action, Kind, Request, RequestState, Result
from bookings_sync.logs import printable
from bookings_sync.engine.retry import requeue
from bookings_sync.exitcodes import ExitCode
from bookings_sync.mailbox import post_retry_request, waiting_requests
from bookings_sync.store import (STATE_FILE, SnapshotStore, StateCorrupt, StateLocked, parse_stamp,
                                 stamp)


def collect_status(state_dir: Path, budget: BudgetSettings | None = None, *,
                   now: dt.datetime | None = None) -> dict:
    now = now or dt.datetime.now(dt.timezone.utc)
    budget = budget or BudgetSettings()
    if not (state_dir / STATE_FILE).exists():
        return {"state_dir": str(state_dir), "initialized": False, "last_cycle": None,
                "cursor": None, "meetings_tracked": 0, "pending": [], "failures": [],
                "conflicts": {}, "warnings": [], "booking_requests": [],
                "bookings_budget": _budget_status(Budget.load({}, budget, now), 0)}
    with SnapshotStore.open_readonly(state_dir) as store:
        meta = store.meta()
        pending = sorted(store.pending().values(), key=lambda a: a["meeting_id"])
        failures = sorted(store.failures().values(), key=lambda f: f.get("at", ""))
        for failure in failures:
            if failure.get("at"):
                failure["age_seconds"] = int((now - parse_stamp(failure["at"])).total_seconds())
        return {
            "state_dir": str(state_dir), "initialized": True,
            "cursor": meta.get("cursor"), "deleted_cursor": meta.get("deleted_cursor"),
            "baseline_at": meta.get("baseline_at"),
            "last_cycle": store.last_cycle(),
            "meetings_tracked": store.meeting_count(),
            "pending": pending, "held": sum(1 for a in pending if a.get("held")),
            "failures": failures,
            "conflicts": store.conflicts(),
            "booking_requests": sorted(store.requests().values(), key=lambda r: r["at"]),
            "warnings": [{"meeting_id": m["id"], "booking_id": m.get("booking_id"),
                          "warning": m["warning"], "at": m.get("outcome_at")}
                         for m in store.meetings() if m.get("warning")],
            "retry_requests_waiting": waiting_requests(state_dir),
            "bookings_budget": _budget_status(Budget.load(meta, budget, now),
                                              meta.get("budget_held") or 0),
        }


def _budget_status(budget: Budget, held: int) -> dict:
    return {"calls_today": budget.used, "daily_limit": budget.limit, "day": str(budget.day),
            "time_zone": budget.settings.time_zone, "resets_at": stamp(budget.resets_at()),
            "waiting_for_reset": held, "text": budget.describe()}


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def print_status(status: dict, out=sys.stdout) -> None:
    def p(line: str) -> None:
        print(printable(line), file=out)
    p(f"state dir:        {status['state_dir']}")
    if not status["initialized"]:
        p("no state yet:     the first cycle will record a baseline")
        return
    p(f"cursor:           {status['cursor']}  (CRM Modified_Time high-water mark)")
    last = status["last_cycle"]
    if last:
        acted = ", ".join(f"{last[r]} {r}" for r in Result if last.get(r))
        p(f"last cycle:       {last.get('at')}  {last.get('outcome')} — fetched "
          f"{last.get('fetched', 0)}, planned {last.get('planned', 0)}"
          f"{', ' + acted if acted else ''}; {last.get('crm_calls', 0)} CRM + "
          f"{last.get('bookings_calls', 0)} Bookings calls, {last.get('duration_ms', 0)} ms"
          + (f"; error: {last['error']}" if last.get("error") else ""))
    else:
        p("last cycle:       none recorded")
    p(f"meetings tracked: {status['meetings_tracked']}")
    budget = status["bookings_budget"]
    p(f"Bookings calls today: {budget['text']}"
      + (f"; {budget['waiting_for_reset']} actions wait for the reset (soonest appointments "
         f"went first)" if budget["waiting_for_reset"] else ""))
    held = status.get("held", 0)
    p(f"pending actions:  {len(status['pending'])}"
      + (f" ({held} held by the mass-cancel or mass-book guard: `bookings-sync retry` or "
         f"`--run-once --allow-mass-cancel` / `--allow-mass-book` to send)" if held else ""))
    for row in status["pending"]:
        a = Action.from_row(row)
        extra = f", last error: {a.last_error}" if a.last_error else ""
        when = f", next try {row['not_before']}" if a.not_before else ""
        p(f"  meeting {a.meeting_id} booking {a.booking_id}: {a.kind}"
          f"{' to ' + row['start'] if a.kind is Kind.RESCHEDULE else ''}"
          f"{' [held]' if a.held else ''}, {a.attempts} attempts{when}{extra}")
    p(f"failures:         {len(status['failures'])}")
    for f in status["failures"]:
        reverted = f", CRM reverted to {f['reverted_to']}" if f.get("reverted_to") else ""
        p(f"  meeting {f['meeting_id']} booking {f['booking_id']}: {f['kind']} "
          f"{f.get('result')} {_age(f.get('age_seconds', 0))} ago: {f.get('reason')}{reverted}")
    conflicts = status.get("conflicts") or {}
    p(f"conflicts:        {len(conflicts)}"
      + (" (nothing is sent for these bookings until only one meeting keeps the id)"
         if conflicts else ""))
    for booking_id, meeting_ids in sorted(conflicts.items()):
        p(f"  booking {booking_id} is on meetings {', '.join(meeting_ids)}")
    requests = [Request.from_row(r) for r in status.get("booking_requests") or []]
    if requests:
        states = Counter(r.state for r in requests)
        p("booking requests: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())))
        for r in requests:
            if r.state is RequestState.BOOKED:
                p(f"  meeting {r.meeting_id}: booked {r.booking_id}, waiting for Zoho's own "
                  f"meeting (or the request meeting carries it after "
                  f"{INTEGRATION_WINDOW.seconds // 60} min)")
    for w in status.get("warnings") or []:
        p(f"warning:          meeting {w['meeting_id']} booking {w['booking_id']}: {w['warning']}")
    if status.get("retry_requests_waiting"):
        p(f"retry requests:   {status['retry_requests_waiting']} waiting for the daemon's next cycle")


def status_command(state_dir: Path, budget: BudgetSettings, *, as_json: bool) -> int:
    try:
        status = collect_status(state_dir, budget)
    except (OSError, StateCorrupt) as exc:
        # Typically a user who may not read the service's state dir (0700): say so in one line.
        print(f"bookings-sync: cannot read the state in {state_dir}: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    if as_json:
        json.dump(status, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        print_status(status)
    return ExitCode.OK


def _unknown_ids(store: SnapshotStore, meeting_ids: list[str]) -> list[str]:
    known = store.failures().keys() | store.pending().keys()
    return [m for m in meeting_ids if m not in known]


def retry_command(state_dir: Path, meeting_ids: list[str]) -> int:
    if not (state_dir / STATE_FILE).exists():
        # Nothing was ever recorded here; opening the store would create the directory.
        print(f"bookings-sync: no state in {state_dir} yet: nothing to retry", file=sys.stderr)
        return ExitCode.ACTION_FAILED
    try:
        try:
            store = SnapshotStore.open(state_dir)
        except StateLocked:
            return _queue_retry(state_dir, meeting_ids)
    except (OSError, StateCorrupt) as exc:
        print(f"bookings-sync: cannot open the state in {state_dir}: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    with store:
        unknown = _unknown_ids(store, meeting_ids)
        count = requeue(store, meeting_ids or None, dt.datetime.now(dt.timezone.utc))
        store.commit()
    for meeting_id in unknown:
        print(f"meeting {meeting_id}: no failure or waiting action recorded (see `status`)")
    scope = ", ".join(meeting_ids) if meeting_ids else "all"
    print(f"re-queued {count} action(s) ({scope}); they run at the next cycle")
    return ExitCode.ACTION_FAILED if unknown and not count else ExitCode.OK


def _queue_retry(state_dir: Path, meeting_ids: list[str]) -> int:
    """A daemon holds the lock: leave it a request file (it stays the only writer)."""
    if meeting_ids:
        with SnapshotStore.open_readonly(state_dir) as store:
            unknown = _unknown_ids(store, meeting_ids)
        for meeting_id in unknown:
            print(f"meeting {meeting_id}: no failure or waiting action recorded (see `status`)")
        if len(unknown) == len(meeting_ids):
            return ExitCode.ACTION_FAILED
    post_retry_request(state_dir, meeting_ids or None)
    print(f"the daemon holds {state_dir}; retry request queued, it applies at the next cycle")
    return ExitCode.OK

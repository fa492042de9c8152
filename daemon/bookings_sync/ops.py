"""Operator commands: ``status`` (what state is it in?) and ``retry`` (try those again).

``status`` opens the store read-only, without the lock: it works while the daemon runs, and the
atomic replace of the state file means it always reads a whole one. ``retry`` re-queues recorded
failures and releases cancels held by the mass-cancel guard. When a daemon holds the state
directory, ``retry`` drops a request file there instead, which the daemon applies at the start of
its next cycle — the daemon stays the only writer.

Request files sit in the state directory itself, not in a folder of their own: under systemd the
daemon is a ``DynamicUser`` that owns the state directory, while ``retry`` runs as root — a folder
root created would be one the daemon cannot delete a request from. A request the daemon cannot
delete is not applied (it would be applied again every cycle) but logged as an error.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import structlog

from bookings_sync.store import SnapshotStore, StateCorrupt, StateLocked, atomic_write_json
from bookings_sync.zoho.timefmt import from_utc_iso, utc_iso

log = structlog.get_logger("bookings_sync.ops")

RETRY_REQUEST_GLOB = "retry-request-*.json"


def collect_status(state_dir: Path, *, now: dt.datetime | None = None) -> dict:
    now = now or dt.datetime.now(dt.timezone.utc)
    if not (state_dir / "state.json").exists():
        return {"state_dir": str(state_dir), "initialized": False, "last_cycle": None,
                "cursor": None, "meetings_tracked": 0, "pending": [], "failures": []}
    with SnapshotStore.open_readonly(state_dir) as store:
        meta = store.meta()
        pending = sorted(store.pending().values(), key=lambda a: a["meeting_id"])
        failures = sorted(store.failures().values(), key=lambda f: f.get("at", ""))
        for failure in failures:
            if failure.get("at"):
                failure["age_seconds"] = int((now - from_utc_iso(failure["at"])).total_seconds())
        return {
            "state_dir": str(state_dir), "initialized": True,
            "cursor": meta.get("cursor"), "deleted_cursor": meta.get("deleted_cursor"),
            "baseline_at": meta.get("baseline_at"),
            "last_cycle": store.last_cycle(),
            "meetings_tracked": store.meeting_count(),
            "pending": pending, "held": sum(1 for a in pending if a.get("held")),
            "failures": failures,
            "retry_requests_waiting": len(list(state_dir.glob(RETRY_REQUEST_GLOB))),
        }


def _age(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def print_status(status: dict, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"state dir:        {status['state_dir']}")
    if not status["initialized"]:
        p("no state yet:     the first cycle will record a baseline")
        return
    p(f"cursor:           {status['cursor']}  (CRM Modified_Time high-water mark)")
    last = status["last_cycle"]
    if last:
        acted = ", ".join(f"{last[k]} {k}" for k in ("done", "in_sync", "skipped", "refused",
                                                      "retry", "failed") if last.get(k))
        p(f"last cycle:       {last.get('at')}  {last.get('outcome')} — fetched "
          f"{last.get('fetched', 0)}, planned {last.get('planned', 0)}"
          f"{', ' + acted if acted else ''}; {last.get('crm_calls', 0)} CRM + "
          f"{last.get('bookings_calls', 0)} Bookings calls, {last.get('duration_ms', 0)} ms"
          + (f"; error: {last['error']}" if last.get("error") else ""))
    else:
        p("last cycle:       none recorded")
    p(f"meetings tracked: {status['meetings_tracked']}")
    held = status.get("held", 0)
    p(f"pending actions:  {len(status['pending'])}"
      + (f" ({held} held by the mass-cancel guard: `bookings-sync retry` or "
         f"`--run-once --allow-mass-cancel` to send)" if held else ""))
    for a in status["pending"]:
        extra = f", last error: {a['last_error']}" if a.get("last_error") else ""
        when = f", next try {a['not_before']}" if a.get("not_before") else ""
        p(f"  meeting {a['meeting_id']} booking {a['booking_id']}: {a['kind']}"
          f"{' to ' + a['start'] if a['kind'] == 'reschedule' else ''}"
          f"{' [held]' if a.get('held') else ''}, {a.get('attempts', 0)} attempts{when}{extra}")
    p(f"failures:         {len(status['failures'])}")
    for f in status["failures"]:
        reverted = f", CRM reverted to {f['reverted_to']}" if f.get("reverted_to") else ""
        p(f"  meeting {f['meeting_id']} booking {f['booking_id']}: {f['kind']} "
          f"{f.get('result')} {_age(f.get('age_seconds', 0))} ago: {f.get('reason')}{reverted}")
    if status.get("retry_requests_waiting"):
        p(f"retry requests:   {status['retry_requests_waiting']} waiting for the daemon's next cycle")


def status_command(state_dir: Path, *, as_json: bool) -> int:
    try:
        status = collect_status(state_dir)
    except (OSError, StateCorrupt) as exc:
        # Typically a user who may not read the service's state dir (0700): say so in one line.
        print(f"bookings-sync: cannot read the state in {state_dir}: {exc}", file=sys.stderr)
        return 2
    if as_json:
        json.dump(status, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        print_status(status)
    return 0


def apply_retry(store: SnapshotStore, meeting_ids: list[str] | None) -> int:
    """Re-queue failures and release held/backed-off pending actions. Returns how many."""
    wanted = set(meeting_ids) if meeting_ids else None
    failures = store.failures()
    pending = store.pending()
    requeue, released = [], []
    for meeting_id, failure in failures.items():
        if wanted is not None and meeting_id not in wanted:
            continue
        snap = store.meeting(meeting_id) or {}
        requeue.append({
            "meeting_id": meeting_id, "booking_id": failure["booking_id"], "kind": failure["kind"],
            "start": failure.get("start") or snap.get("start"), "end": snap.get("end"),
            "old_start": None, "modified": snap.get("modified"),
            "planned_at": utc_iso(dt.datetime.now(dt.timezone.utc)), "attempts": 0,
            "not_before": None, "last_error": None,
        })
    for meeting_id, action in pending.items():
        if wanted is not None and meeting_id not in wanted:
            continue
        if action.get("held") or action.get("not_before"):
            released.append(dict(action, held=None, not_before=None))
    store.put_pending(requeue + released)
    store.remove_failures([a["meeting_id"] for a in requeue])
    return len(requeue) + len(released)


def take_retry_requests(store: SnapshotStore) -> int:
    """Apply retry requests left by ``bookings-sync retry`` while this process held the lock."""
    total = 0
    for request in sorted(store.state_dir.glob(RETRY_REQUEST_GLOB)):
        try:
            ids = json.loads(request.read_text())["meeting_ids"]
            if ids is not None and not isinstance(ids, list):
                raise ValueError("meeting_ids is neither a list nor null")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Not ours, or damaged: "retry everything" is not a safe reading of it.
            log.error("retry.request_not_applied", file=str(request), error=str(exc),
                      hint="run `bookings-sync retry` again")
            ids = False
        try:
            # Delete first: a request that stayed would be applied again at every cycle.
            request.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("retry.request_not_applied", file=str(request), error=str(exc),
                      hint="delete the file and run `bookings-sync retry` again")
            continue
        if ids is not False:
            total += apply_retry(store, ids)
    return total


def _unknown_ids(store: SnapshotStore, meeting_ids: list[str]) -> list[str]:
    known = store.failures().keys() | store.pending().keys()
    return [m for m in meeting_ids if m not in known]


def retry_command(state_dir: Path, meeting_ids: list[str]) -> int:
    try:
        try:
            store = SnapshotStore.open(state_dir)
        except StateLocked:
            return _queue_retry(state_dir, meeting_ids)
    except (OSError, StateCorrupt) as exc:
        print(f"bookings-sync: cannot open the state in {state_dir}: {exc}", file=sys.stderr)
        return 2
    with store:
        unknown = _unknown_ids(store, meeting_ids)
        count = apply_retry(store, meeting_ids or None)
        store.commit()
    for meeting_id in unknown:
        print(f"meeting {meeting_id}: no failure or waiting action recorded (see `status`)")
    scope = ", ".join(meeting_ids) if meeting_ids else "all"
    print(f"re-queued {count} action(s) ({scope}); they run at the next cycle")
    return 1 if unknown and not count else 0


def _queue_retry(state_dir: Path, meeting_ids: list[str]) -> int:
    """A daemon holds the lock: leave it a request file (it stays the only writer)."""
    if meeting_ids:
        with SnapshotStore.open_readonly(state_dir) as store:
            unknown = _unknown_ids(store, meeting_ids)
        for meeting_id in unknown:
            print(f"meeting {meeting_id}: no failure or waiting action recorded (see `status`)")
        if len(unknown) == len(meeting_ids):
            return 1
    name = RETRY_REQUEST_GLOB.replace(
        "*", f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}-{os.getpid()}")
    atomic_write_json(state_dir / name, {"meeting_ids": meeting_ids or None})
    print(f"the daemon holds {state_dir}; retry request queued, it applies at the next cycle")
    return 0

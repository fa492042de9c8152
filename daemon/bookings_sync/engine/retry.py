"""When an action runs again: backoff after a transient failure, and ``retry`` by an operator.

A transient failure (Zoho unreachable, 429, 5xx, an unreadable reply) is tried again at the next
cycle — so a ``--run-once`` right after it retries it — and, if it fails again, after
``BACKOFF_BASE_SECONDS``, doubling per attempt up to ``max_backoff_seconds``. It is never
recorded as a failure. A refusal is not retried on its own: it
stays a recorded failure until the meeting changes again or an operator re-queues it with
``bookings-sync retry`` — which also releases actions held by a guard or waiting out a backoff.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from bookings_sync.store import SnapshotStore

from .model import Action, Failure, SeenMeeting

# The wait after the second transient failure in a row; doubles per attempt up to the cap.
BACKOFF_BASE_SECONDS = 30.0


def backoff_seconds(attempts: int, *, cap: float, base: float = BACKOFF_BASE_SECONDS) -> float:
    """Delay before attempt ``attempts + 1`` of a transient failure: none after the first
    (the next cycle tries again), then base·2^(n-2), capped."""
    if attempts <= 1:
        return 0.0
    return min(cap, base * (2 ** (attempts - 2)))


def after_transient_failure(action: Action, error: str, now: dt.datetime, *,
                            cap: float) -> Action:
    """The action to keep pending after a transient failure: one more attempt, its next try."""
    attempts = action.attempts + 1
    return dataclasses.replace(
        action, attempts=attempts, last_error=error,
        not_before=now + dt.timedelta(seconds=backoff_seconds(attempts, cap=cap)))


def requeue(store: SnapshotStore, meeting_ids: list[str] | None, now: dt.datetime) -> int:
    """Re-queue recorded failures and release held or backed-off actions (all, or those of
    ``meeting_ids``). Returns how many actions will run at the next cycle."""
    wanted = set(meeting_ids) if meeting_ids else None
    requeued = []
    for failure in map(Failure.from_row, store.failures().values()):
        if wanted is not None and failure.meeting_id not in wanted:
            continue
        row = store.meeting(failure.meeting_id)
        seen = SeenMeeting.from_row(row) if row else None
        requeued.append(Action(
            meeting_id=failure.meeting_id, booking_id=failure.booking_id, kind=failure.kind,
            start=failure.start or (seen and seen.start), end=seen and seen.end,
            old_start=None, modified=seen and seen.modified, planned_at=now,
            request=failure.request))
    released = [dataclasses.replace(action, held=None, not_before=None)
                for action in map(Action.from_row, store.pending().values())
                if (wanted is None or action.meeting_id in wanted)
                and (action.held or action.not_before)]
    store.put_pending([a.to_row() for a in requeued + released])
    store.remove_failures([a.meeting_id for a in requeued])
    return len(requeued) + len(released)


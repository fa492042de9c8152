"""Act on pending actions: the only engine code that talks to Bookings (and, for ``revert``, CRM).

Every action first reads the appointment and does nothing when Bookings already holds the wanted
state. That read is the loop guard — Bookings' integration writes our own changes (and changes
made in Bookings) back into CRM, where the next cycle sees them — and it also makes re-running an
action after a crash harmless: a reschedule that reached Bookings before the kill is found done.

Errors become results (:class:`~bookings_sync.engine.model.Result`) by one table,
:func:`result_for`: a refusal by Bookings → ``refused``; a transient error (``exc.transient``:
unreachable, 429, 5xx, timeouts) → ``retry``; anything else we cannot use → ``failed``. Only
Zoho refusing the connection itself — authentication or scope refused, or a redirect, which is
never followed — stops the run (:class:`RunAborted`): every later action would fail the same
way, so they stay pending for a later cycle and the cycle exits 3.

``on_refused = "revert"`` puts the CRM meeting back to Bookings' time — after re-reading it: a
meeting edited again in CRM while the cycle ran is left as it is (the next cycle handles that
edit), so the daemon never overwrites a newer edit with an older time.

Bookings takes a wall time, not an instant. When the target wall time occurs twice in the
appointment's zone (a DST fall-back hour), the outcome carries a warning that names the
ambiguity and the instant Bookings will hold (the first occurrence — what the sandbox and the
daemon's own reading of Bookings times assume).

The executor talks to two small protocols, :class:`Bookings` and :class:`Crm`, which the Zoho
clients implement — and so can an in-memory double in the tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Protocol

from bookings_sync.zoho.bookings import CALL_LIMIT, Appointment
from bookings_sync.zoho.errors import (BookingsRefused, ZohoAuthError, ZohoError, ZohoRedirected,
                                       ZohoUnreachable)
from bookings_sync.zoho.timefmt import (TimeFormatError, format_bookings_time,
                                        format_crm_datetime, parse_bookings_wall,
                                        parse_crm_datetime, wall_time_occurrences)

from .model import Action, Kind, OnRefused, Result, closed_state


class Bookings(Protocol):
    def get(self, booking_id: str) -> Appointment: ...
    def reschedule(self, booking_id: str, start_time: str) -> Appointment: ...
    def update_status(self, booking_id: str, action: str) -> dict: ...


class Crm(Protocol):
    def get_meeting(self, meeting_id: str, fields: list[str]) -> dict | None: ...
    def update_meeting(self, meeting_id: str, values: dict) -> dict: ...


@dataclasses.dataclass
class Outcome:
    action: Action
    result: Result
    reason: str = ""
    bookings_start: str | None = None   # Bookings' wall time (for logs: old -> new)
    target: str | None = None
    time_zone: str | None = None
    reverted_to: dt.datetime | None = None   # start put back into CRM (on_refused = revert)
    reverted_end: dt.datetime | None = None
    code: str = ""
    warning: str | None = None          # done, but not exactly as CRM meant (see ``status``)


class RunAborted(Exception):
    """Zoho refused the connection mid-run (auth, scope, a redirect): stop acting, keep the
    rest pending, exit 3. ``outcomes`` are those of the actions run before."""

    def __init__(self, error: ZohoError, outcomes: list[Outcome]):
        super().__init__(str(error))
        self.error = error
        self.outcomes = outcomes


class BudgetExhausted(RunAborted):
    """Bookings answered that the day's call limit is reached: stop acting (every further call
    would be refused too); the action that met it stays pending as it was, not one attempt
    more — it was not its fault."""


def result_for(exc: Exception) -> Result:
    """The error → result table (see the module docstring). Auth errors never get here."""
    if isinstance(exc, BookingsRefused):
        return Result.REFUSED
    if isinstance(exc, ZohoError) and exc.transient:
        return Result.RETRY
    return Result.FAILED


class Executor:
    def __init__(self, bookings: Bookings, crm: Crm, *, on_refused: OnRefused = OnRefused.KEEP):
        self.bookings = bookings
        self.crm = crm
        self.on_refused = on_refused

    def run(self, actions: list[Action]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for action in actions:
            try:
                outcome = self.run_one(action)
            except (ZohoAuthError, ZohoRedirected) as exc:
                raise RunAborted(exc, outcomes) from exc
            if outcome.code == CALL_LIMIT:
                raise BudgetExhausted(ZohoUnreachable(outcome.reason, code=CALL_LIMIT),
                                      outcomes)
            outcomes.append(outcome)
        return outcomes

    def run_one(self, action: Action) -> Outcome:
        try:
            appointment = self.bookings.get(action.booking_id)
            if action.kind is Kind.RESCHEDULE:
                return self._reschedule(action, appointment)
            return self._set_status(action, appointment)
        except (ZohoAuthError, ZohoRedirected):
            raise
        except BookingsRefused as exc:
            return Outcome(action, Result.REFUSED, exc.message, code=exc.code)
        except (ZohoError, TimeFormatError) as exc:
            return Outcome(action, result_for(exc), str(exc), code=getattr(exc, "code", ""))

    def _reschedule(self, action: Action, appointment: Appointment) -> Outcome:
        zone = appointment.time_zone
        target = format_bookings_time(action.start, zone)
        base = dict(bookings_start=appointment.start_text, target=target, time_zone=zone)
        if parse_bookings_wall(appointment.start_text) == parse_bookings_wall(target):
            # Bookings already there: our own earlier reschedule, or a move made in Bookings.
            return Outcome(action, Result.IN_SYNC, **base)
        closed = closed_state(appointment.status)
        if closed:
            return Outcome(action, Result.SKIPPED, f"appointment is {closed} in Bookings", **base)
        try:
            self.bookings.reschedule(action.booking_id, target)
        except BookingsRefused as exc:
            outcome = Outcome(action, Result.REFUSED, exc.message, code=exc.code, **base)
            if self.on_refused is OnRefused.REVERT:
                self._revert(action, appointment, outcome)
            return outcome
        return Outcome(action, Result.DONE, warning=_ambiguity(action.start, target, zone),
                       **base)

    def _revert(self, action: Action, appointment: Appointment, outcome: Outcome) -> None:
        """Put the CRM meeting back to the time Bookings holds, so calendars don't lie."""
        start = appointment.start
        end = None
        if action.end and action.start:
            end = start + (action.end - action.start)
        values = {"Start_DateTime": format_crm_datetime(start)}
        if end is not None:
            values["End_DateTime"] = format_crm_datetime(end)
        try:
            if self._edited_since(action):
                outcome.reason += (" (not reverted in CRM: the meeting was edited again there "
                                   "meanwhile; the next cycle handles that edit)")
                return
            self.crm.update_meeting(action.meeting_id, values)
        except (ZohoAuthError, ZohoRedirected):
            raise
        except ZohoError as exc:
            outcome.reason += f" (revert in CRM failed: {exc})"
            return
        outcome.reverted_to, outcome.reverted_end = start, end

    def _edited_since(self, action: Action) -> bool:
        """Has the meeting a newer CRM version than the one this action was planned from?"""
        current = self.crm.get_meeting(action.meeting_id, ["Modified_Time"])
        if current is None:
            return True     # deleted meanwhile: nothing to put back
        try:
            modified = parse_crm_datetime(current.get("Modified_Time"))
        except TimeFormatError:
            return True     # unreadable: do not overwrite what we cannot compare
        return action.modified is None or modified > action.modified

    def _set_status(self, action: Action, appointment: Appointment) -> Outcome:
        base = dict(bookings_start=appointment.start_text, time_zone=appointment.time_zone)
        closed = closed_state(appointment.status)
        if closed == action.kind.closed_state:
            return Outcome(action, Result.IN_SYNC, **base)
        if closed:
            return Outcome(action, Result.SKIPPED, f"appointment is already {closed} in Bookings",
                           **base)
        self.bookings.update_status(action.booking_id, action.kind.value)
        return Outcome(action, Result.DONE, **base)


def _ambiguity(instant: dt.datetime, wall: str, zone: str) -> str | None:
    """A warning when ``wall`` occurs twice in ``zone``: Bookings cannot tell which is meant."""
    first, *others = wall_time_occurrences(wall, zone)
    if not others:
        return None
    held = "the same instant" if first == instant else "an hour earlier than the CRM meeting"
    return (f"{wall} occurs twice in {zone} (the clocks go back); Bookings can only be given "
            f"the wall time and will hold the first, {first:%Y-%m-%d %H:%M}Z — {held} "
            f"({instant:%Y-%m-%d %H:%M}Z)")

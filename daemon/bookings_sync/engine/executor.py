"""Act on pending actions: the only engine code that talks to Bookings (and, for ``revert``, CRM).

Every action first reads the appointment and does nothing when Bookings already holds the wanted
state. That read is the loop guard — Bookings' integration writes our own changes (and changes
made in Bookings) back into CRM, where the next cycle sees them — and it also makes re-running an
action after a crash harmless: a reschedule that reached Bookings before the kill is found done.

Outcomes (``Outcome.result``):
``done`` the write call succeeded · ``in_sync`` Bookings already matched, no write · ``skipped``
the appointment is closed (cancelled, completed, no-show) so there is nothing to move ·
``refused`` Bookings said no (its message is kept; not retried until the meeting changes) ·
``retry`` a transient failure, tried again on a later cycle with backoff · ``failed`` a payload we
cannot use (bad time zone…), kept as a failure with the reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Callable

from bookings_sync.zoho.bookings import Appointment, BookingsClient
from bookings_sync.zoho.crm import CrmClient
from bookings_sync.zoho.errors import (BookingsRefused, ZohoAuthError, ZohoError,
                                       ZohoPayloadError, ZohoUnreachable)
from bookings_sync.zoho.timefmt import (TimeFormatError, format_bookings_time,
                                        format_crm_datetime, from_utc_iso, parse_bookings_wall,
                                        utc_iso)

from .planner import RESCHEDULE

# Bookings statuses after which an appointment can no longer be moved or re-closed.
CLOSED = {"cancel": "cancelled", "cancelled": "cancelled", "completed": "completed",
          "noshow": "no-show", "no_show": "no-show"}
# updateappointment action -> the status Bookings shows afterwards.
ACTION_STATUS = {"cancel": "cancel", "completed": "completed", "noshow": "noshow"}


@dataclasses.dataclass
class Outcome:
    action: dict
    result: str                     # done | in_sync | skipped | refused | retry | failed
    reason: str = ""
    bookings_start: str | None = None   # Bookings' wall time (for logs: old -> new)
    target: str | None = None
    time_zone: str | None = None
    reverted_to: str | None = None      # UTC ISO start put back into CRM (on_refused = revert)
    reverted_end: str | None = None
    code: str = ""


class AuthLost(Exception):
    """Authentication failed mid-run: stop acting, keep the rest pending, exit 3."""

    def __init__(self, error: ZohoError, outcomes: list[Outcome]):
        super().__init__(str(error))
        self.error = error
        self.outcomes = outcomes


class Executor:
    def __init__(self, bookings: BookingsClient, crm: CrmClient, *, on_refused: str = "keep",
                 crm_time_zone: str = "UTC", on_outcome: Callable[[Outcome], None] | None = None):
        self.bookings = bookings
        self.crm = crm
        self.on_refused = on_refused
        self.crm_time_zone = crm_time_zone
        self.on_outcome = on_outcome or (lambda outcome: None)

    def run(self, actions: list[dict]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for action in actions:
            try:
                outcome = self.run_one(action)
            except ZohoAuthError as exc:
                raise AuthLost(exc, outcomes) from exc
            outcomes.append(outcome)
            self.on_outcome(outcome)
        return outcomes

    def run_one(self, action: dict) -> Outcome:
        try:
            appointment = self.bookings.get(action["booking_id"])
            if action["kind"] == RESCHEDULE:
                return self._reschedule(action, appointment)
            return self._set_status(action, appointment)
        except BookingsRefused as exc:
            return Outcome(action, "refused", exc.message, code=exc.code)
        except ZohoUnreachable as exc:
            return Outcome(action, "retry", str(exc), code=exc.code)
        except (ZohoPayloadError, TimeFormatError) as exc:
            return Outcome(action, "failed", str(exc), code=getattr(exc, "code", ""))
        except ZohoAuthError:
            raise
        except ZohoError as exc:
            # An API error envelope that retrying will not fix (NO_PERMISSION, INVALID_DATA…).
            return Outcome(action, "failed", str(exc), code=exc.code)

    def _reschedule(self, action: dict, appointment: Appointment) -> Outcome:
        zone = appointment.time_zone
        target = format_bookings_time(from_utc_iso(action["start"]), zone)
        base = dict(bookings_start=appointment.start_text, target=target, time_zone=zone)
        if parse_bookings_wall(appointment.start_text) == parse_bookings_wall(target):
            # Bookings already there: our own earlier reschedule, or a move made in Bookings.
            return Outcome(action, "in_sync", **base)
        closed = CLOSED.get(appointment.status)
        if closed:
            return Outcome(action, "skipped", f"appointment is {closed} in Bookings", **base)
        try:
            self.bookings.reschedule(action["booking_id"], target)
        except BookingsRefused as exc:
            outcome = Outcome(action, "refused", exc.message, code=exc.code, **base)
            if self.on_refused == "revert":
                self._revert(action, appointment, outcome)
            return outcome
        return Outcome(action, "done", **base)

    def _revert(self, action: dict, appointment: Appointment, outcome: Outcome) -> None:
        """Put the CRM meeting back to the time Bookings holds, so calendars don't lie."""
        start = appointment.start
        end = None
        if action.get("end") and action.get("start"):
            duration = from_utc_iso(action["end"]) - from_utc_iso(action["start"])
            end = start + duration
        values = {"Start_DateTime": format_crm_datetime(start, self.crm_time_zone)}
        if end is not None:
            values["End_DateTime"] = format_crm_datetime(end, self.crm_time_zone)
        try:
            self.crm.update_meeting(action["meeting_id"], values)
        except ZohoAuthError:
            raise
        except ZohoError as exc:
            outcome.reason += f" (revert in CRM failed: {exc})"
            return
        outcome.reverted_to = utc_iso(start)
        outcome.reverted_end = utc_iso(end) if end is not None else None

    def _set_status(self, action: dict, appointment: Appointment) -> Outcome:
        kind = action["kind"]
        wanted = ACTION_STATUS[kind]
        base = dict(bookings_start=appointment.start_text, time_zone=appointment.time_zone)
        if CLOSED.get(appointment.status) == CLOSED[wanted]:
            return Outcome(action, "in_sync", **base)
        closed = CLOSED.get(appointment.status)
        if closed:
            return Outcome(action, "skipped", f"appointment is already {closed} in Bookings",
                           **base)
        self.bookings.update_status(action["booking_id"], kind)
        return Outcome(action, "done", **base)


def backoff_seconds(attempts: int, *, base: float, cap: float) -> float:
    """Delay before attempt ``attempts + 1`` of a transient failure: base·2^(n-1), capped."""
    return min(cap, base * (2 ** max(0, attempts - 1)))


def next_attempt(now: dt.datetime, attempts: int, *, base: float, cap: float) -> str:
    return utc_iso(now + dt.timedelta(seconds=backoff_seconds(attempts, base=base, cap=cap)))

"""In-memory Bookings and CRM behind the executor's protocols — real implementations, not mocks
(like vdirsyncer's memory storage): they keep appointments, move them, close them and refuse
what Bookings refuses. ``fail_next`` makes the next call of a verb raise a given Zoho error, so
every row of the executor's error → result table can be reached in microseconds."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict, deque

from bookings_sync.zoho.bookings import Appointment
from bookings_sync.zoho.errors import BookingsRefused
from bookings_sync.zoho.timefmt import format_bookings_time, parse_bookings_time


class _Faults:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []        # (verb, booking or meeting id)
        self._next: dict[str, deque] = defaultdict(deque)

    def fail_next(self, verb: str, error: Exception, key: str | None = None) -> None:
        """The next call of ``verb`` (for ``key`` only, when given) raises ``error``."""
        self._next[(verb, key)].append(error)

    def _enter(self, verb: str, key: str) -> None:
        self.calls.append((verb, key))
        for queued in (self._next[(verb, key)], self._next[(verb, None)]):
            if queued:
                raise queued.popleft()

    def count(self, verb: str) -> int:
        return sum(1 for v, _ in self.calls if v == verb)


class MemoryBookings(_Faults):
    def __init__(self) -> None:
        super().__init__()
        self.appointments: dict[str, Appointment] = {}
        self.taken: set[str] = set()       # wall times (in the appointment's zone) refused

    def add(self, booking_id: str, start: dt.datetime, time_zone: str = "UTC",
            status: str = "upcoming") -> None:
        text = format_bookings_time(start, time_zone)
        self.appointments[booking_id] = Appointment(
            booking_id=booking_id, status=status, start_text=text, time_zone=time_zone,
            start=start, staff_id="staff-1", customer_time_zone=time_zone,
            customer_start_text=None, raw={})

    def get(self, booking_id: str) -> Appointment:
        self._enter("get", booking_id)
        try:
            return self.appointments[booking_id]
        except KeyError:
            raise BookingsRefused("Invalid booking id", code="getappointment") from None

    def reschedule(self, booking_id: str, start_time: str) -> Appointment:
        self._enter("reschedule", booking_id)
        if start_time in self.taken:
            raise BookingsRefused("Slot not available", code="rescheduleappointment")
        old = self.appointments[booking_id]
        moved = dataclasses.replace(old, start_text=start_time,
                                    start=parse_bookings_time(start_time, old.time_zone))
        self.appointments[booking_id] = moved
        return moved

    def update_status(self, booking_id: str, action: str) -> dict:
        self._enter("update", booking_id)
        old = self.appointments[booking_id]
        self.appointments[booking_id] = dataclasses.replace(old, status=action)
        return {"booking_id": booking_id, "status": action}


class MemoryCrm(_Faults):
    """Meetings reduced to what the executor reads back: their ``Modified_Time``."""

    def __init__(self, modified: dict[str, dt.datetime] | None = None) -> None:
        super().__init__()
        self.modified = dict(modified or {})
        self.updates: list[tuple[str, dict]] = []

    def get_meeting(self, meeting_id: str, fields: list[str]) -> dict | None:
        self._enter("get_meeting", meeting_id)
        when = self.modified.get(meeting_id)
        return None if when is None else {"id": meeting_id, "Modified_Time": when.isoformat()}

    def update_meeting(self, meeting_id: str, values: dict) -> dict:
        self._enter("update_meeting", meeting_id)
        self.updates.append((meeting_id, values))
        return {"id": meeting_id}

"""Bookings appointments, and the meetings Zoho's Bookings→CRM integration makes of them.

``AppointmentBook`` is the Bookings half of :class:`~.world.World` (which extends it): the
catalog, the appointments, slot checks, status changes, and the integration. Facts followed
(shared/zoho-api.md): an appointment's ``start_time`` is wall time in its ``time_zone``; the
integration adds every appointment to CRM Meetings with the booking id in a Meetings field and
writes Bookings-side reschedules, cancels and status changes back into that meeting.

Choices where Zoho is silent (docs/zoho-bookings.md):
* Whether API-created bookings get a meeting is inferred, not stated: they do by default;
  ``meetings_for_api_bookings = False`` turns that off. Bookings made in Bookings itself
  (``Sandbox.book``) always get one.
* ``integration_delay`` (sandbox-clock seconds, default 0) is the integration's lag: the meeting
  appears in CRM that long after the booking, with ``Created_Time`` = ``Modified_Time`` = the
  instant it became due, built from the appointment as it is then (a reschedule or cancel made
  meanwhile is already in it). Until then the appointment's ``meeting_id`` is None.
* The meeting: ``Event_Title`` "<service name> with <customer name>", ``Start_DateTime`` /
  ``End_DateTime`` from the appointment, the booking id field, ``Description`` = the booking's
  notes, ``Owner`` the sandbox admin. ``Who_Id`` stays empty and ``Participants`` too: matching
  the customer to a CRM contact is the CRM side's data, which this half does not read.
* An appointment blocks its staff member for its duration plus the service's buffer time.
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools

from .catalog import Catalog
from .clock import second

UTC = dt.timezone.utc
CLOSED_STATUSES = {"cancel": "cancelled", "completed": "completed", "noshow": "marked as no-show"}
CRM_STATUS_FOR = {"cancel": "Cancelled", "completed": "Completed", "noshow": "No Show"}
SLOT_TAKEN = "Slot not available: the staff member is booked at that time"


class Refusal(Exception):
    """A Bookings business refusal: HTTP 200 with returnvalue.status = failure."""


class AppointmentBook:
    """Needs from its host: ``clock``, ``new_meeting``, ``touch``, ``meetings``,
    ``booking_id_field`` and ``status_field``."""

    def _init_bookings(self, workspace_time_zone: str) -> None:
        self.workspace_time_zone = workspace_time_zone
        self.catalog = Catalog(workspace_time_zone)
        self.appointments: dict[str, dict] = {}
        self.by_staff: dict[str, set[str]] = collections.defaultdict(set)   # slot checks
        self._bookings = itertools.count(1)
        self.meetings_for_api_bookings = True
        self.integration_delay = 0.0
        self._pending_meetings: list[tuple[dt.datetime, str]] = []
        # Wire switches read by bookings.py (see its docstring and docs/zoho-bookings.md).
        self.fetch_list_key = "response"
        self.fetch_needs_data_field = False
        self.phone_required = True

    # -- booking -------------------------------------------------------------------------------

    def book(self, *, start: dt.datetime, time_zone: str, duration_minutes: int, staff_id: str,
             service_id: str, customer: dict, customer_time_zone: str | None,
             check: bool = True, source: str = "bookings", notes: str = "",
             more_info: dict | None = None) -> tuple[str | None, str]:
        """``source`` "bookings" (made in Bookings: the catalog learns unknown ids) or "api"
        (``POST appointment``, already validated against the catalog)."""
        if source == "bookings":
            self.catalog.ensure(service_id, staff_id)
        service = self.catalog.services[service_id]
        workspace = self.catalog.workspace_of(service)
        start = start.astimezone(UTC)
        if check:
            self.check_slot(None, staff_id, start, duration_minutes, service["buffer"])
        booking_id = f"#AN-{next(self._bookings):05d}"
        appointment = {
            "booking_id": booking_id, "service_id": service_id, "service_name": service["name"],
            "staff_id": staff_id, "staff_name": self.catalog.staff[staff_id]["name"],
            "start": start, "duration": duration_minutes, "buffer": service["buffer"],
            "time_zone": time_zone, "customer_time_zone": customer_time_zone or time_zone,
            "status": "upcoming", "customer_name": customer.get("name", "Customer"),
            "customer_email": customer.get("email", "customer@example.invalid"),
            "customer_contact_no": customer.get("phone_number", ""),
            "booked_on": second(self.clock.now()), "workspace_id": workspace["id"],
            "workspace_name": workspace["name"], "cost": service["cost"],
            "currency": workspace["currency"], "notes": notes or "",
            "more_info": dict(more_info or {}), "source": source, "meeting_id": None,
        }
        self.appointments[booking_id] = appointment
        self.by_staff[staff_id].add(booking_id)
        if source == "bookings" or self.meetings_for_api_bookings:
            if self.integration_delay > 0:
                due = self.clock.now() + dt.timedelta(seconds=self.integration_delay)
                self._pending_meetings.append((due, booking_id))
            else:
                appointment["meeting_id"] = self._integration_meeting(appointment)
        return appointment["meeting_id"], booking_id

    def appointment(self, booking_id: str) -> dict:
        try:
            return self.appointments[booking_id]
        except KeyError:
            raise Refusal("Invalid booking id") from None

    def reschedule(self, booking_id: str, start: dt.datetime, staff_id: str | None = None) -> dict:
        appointment = self.appointment(booking_id)
        self._check_open(appointment)
        start = start.astimezone(UTC)
        if start < self.clock.now():
            raise Refusal("Cannot reschedule an appointment to a time in the past")
        staff = staff_id or appointment["staff_id"]
        self.check_slot(booking_id, staff, start, appointment["duration"], appointment["buffer"])
        self.by_staff[appointment["staff_id"]].discard(booking_id)
        self.by_staff[staff].add(booking_id)
        appointment["start"], appointment["staff_id"] = start, staff
        self._write_back(appointment, Start_DateTime=start,
                         End_DateTime=start + dt.timedelta(minutes=appointment["duration"]))
        return appointment

    def set_status(self, booking_id: str, action: str) -> dict:
        appointment = self.appointment(booking_id)
        if action not in CLOSED_STATUSES:
            raise Refusal(f"Invalid action {action!r}")
        self._check_open(appointment)
        appointment["status"] = action
        self._write_back(appointment, **self._crm_status_fields(action))
        return appointment

    def check_slot(self, booking_id, staff_id: str, start: dt.datetime, minutes: int,
                   buffer: int = 0) -> None:
        """Refuse when another upcoming appointment of the staff member overlaps, each one
        counted with its buffer time."""
        end = start + dt.timedelta(minutes=minutes + buffer)
        for other in map(self.appointments.__getitem__, self.by_staff[staff_id]):
            if (other["booking_id"] != booking_id and other["staff_id"] == staff_id
                    and other["status"] == "upcoming" and other["start"] < end
                    and start < other["start"] + dt.timedelta(
                        minutes=other["duration"] + other["buffer"])):
                raise Refusal(SLOT_TAKEN)

    # -- the integration -----------------------------------------------------------------------

    def deliver_due_meetings(self) -> None:
        """Create the delayed integration meetings whose time has come (in due order)."""
        if not self._pending_meetings:
            return
        now = self.clock.now()
        due = sorted(p for p in self._pending_meetings if p[0] <= now)
        if not due:
            return
        self._pending_meetings = [p for p in self._pending_meetings if p[0] > now]
        for when, booking_id in due:
            appointment = self.appointments[booking_id]
            appointment["meeting_id"] = self._integration_meeting(appointment, second(when))

    def _integration_meeting(self, appointment: dict, at: dt.datetime | None = None) -> str:
        start = appointment["start"]
        fields = {
            "Event_Title": f"{appointment['service_name']} with {appointment['customer_name']}",
            "Start_DateTime": start,
            "End_DateTime": start + dt.timedelta(minutes=appointment["duration"]),
            "Description": appointment["notes"] or None,
            self.booking_id_field: appointment["booking_id"],
        }
        if appointment["status"] in CRM_STATUS_FOR:
            fields.update(self._crm_status_fields(appointment["status"]))
        if at is not None:
            fields["Created_Time"] = fields["Modified_Time"] = at
        return self.new_meeting(fields)

    def _crm_status_fields(self, action: str) -> dict:
        fields = {self.status_field: CRM_STATUS_FOR[action]}
        if action == "cancel":
            fields["$event_cancelled"] = True
        return fields

    def _write_back(self, appointment: dict, **fields) -> None:
        meeting_id = appointment.get("meeting_id")
        if meeting_id in self.meetings:
            self.touch(meeting_id, **fields)

    def _check_open(self, appointment: dict) -> None:
        closed = CLOSED_STATUSES.get(appointment["status"])
        if closed:
            raise Refusal(f"The appointment is already {closed}")

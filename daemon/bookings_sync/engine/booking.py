"""Booking from CRM: a meeting staff tick becomes a Bookings appointment, then exactly one CRM
meeting carries it. The executor calls :class:`Booker` for the two action kinds it adds.

``book`` — what one ticked meeting costs: the service and staff resolved from Bookings' catalog
(:class:`Catalog`: workspaces, services, staff, read once an hour, not per booking), the
customer read from the meeting's contact (``Who_Id``) or lead (``What_Id`` + ``$se_module``),
the start as wall time in the customer's zone, then one ``POST appointment``. A request we can
refuse without asking Bookings (no contact email, start in the past, an unknown service or staff
member — with close matches —, staff not offering the service) costs no Bookings call. Crash
safety: the action is marked *in flight* and committed just before the call (``before_send``);
an action found in flight on a later run was perhaps booked already (a kill, a lost reply), so
Bookings is asked first (``fetchappointment`` by customer, service and time) and a booking found
there is adopted, never made twice. Afterwards the request meeting says what happened
(``[book] result_field``) and its trigger is cleared.

``link`` — Zoho's Bookings integration adds every appointment to CRM Meetings. When its meeting
for our booking appears, the request meeting is deleted (``on_booked = "delete"``; its
description moves to Zoho's meeting when that has none) or left unlinked (``"keep"``). When none
appears within :data:`INTEGRATION_WINDOW`, the request meeting itself gets the booking id — and
should Zoho's meeting still come later, the same rule then applies to the request meeting.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import time
from typing import Callable

from bookings_sync.zoho.errors import ZohoApiError
from bookings_sync.zoho.timefmt import (TimeFormatError, format_bookings_time, parse_crm_datetime,
                                        zone)

from .model import Action, BookRequest, OnBooked, closed_state

# How long after booking Zoho's integration meeting may take to appear before the request
# meeting itself is linked. Zoho's integration works within seconds to a minute in practice; the
# window leaves room for a slow day without leaving a booking unlinked for long.
INTEGRATION_WINDOW = dt.timedelta(minutes=15)
CATALOG_TTL_SECONDS = 3600
PERSON_FIELDS = ("Full_Name", "First_Name", "Last_Name", "Email", "Phone", "Mobile")


class NotBookable(Exception):
    """A request we refuse ourselves (before any Bookings call); the text says why."""


@dataclasses.dataclass(frozen=True)
class BookSettings:
    trigger_field: str
    result_field: str = ""
    booking_id_field: str = "BookingId"
    default_time_zone: str = "Europe/London"
    on_booked: OnBooked = OnBooked.DELETE
    max_per_cycle: int = 20


@dataclasses.dataclass
class Booked:
    booking_id: str
    from_time: str
    time_zone: str
    adopted: bool = False        # found in Bookings after a lost reply, not booked again
    note: str = ""               # what could not be written back to CRM


class Catalog:
    """Bookings' services and staff, read once per :data:`CATALOG_TTL_SECONDS`."""

    def __init__(self, bookings, monotonic: Callable[[], float] = time.monotonic):
        self.bookings, self.monotonic = bookings, monotonic
        self.services: list[dict] = []
        self.staff: list[dict] = []
        self.loaded_at: float | None = None

    def _load(self) -> None:
        if self.loaded_at is not None and self.monotonic() - self.loaded_at < CATALOG_TTL_SECONDS:
            return
        services = []
        for workspace in self.bookings.workspaces():
            services += self.bookings.services(str(workspace.get("id")))
        self.services, self.staff = services, self.bookings.staffs()
        self.loaded_at = self.monotonic()

    def service(self, wanted: str) -> dict:
        self._load()
        return _pick("service", wanted, self.services, keys=("id", "name"))

    def staff_member(self, wanted: str | None, owner_email: str | None, service: dict) -> dict:
        self._load()
        if wanted:
            member = _pick("staff member", wanted, self.staff, keys=("id", "email", "name"))
        elif owner_email:
            member = _pick("staff member", owner_email, self.staff, keys=("email",),
                           what="the meeting owner's email")
        else:
            raise NotBookable("no staff member named and the meeting owner has no email")
        assigned = [str(s) for s in service.get("assigned_staffs") or []]
        if assigned and str(member.get("id")) not in assigned:
            raise NotBookable(f"staff member {member.get('name')!r} does not offer service "
                              f"{service.get('name')!r}")
        return member


def _pick(thing: str, wanted: str, rows: list[dict], *, keys: tuple[str, ...],
          what: str | None = None) -> dict:
    """The row whose id, email or name is ``wanted`` (case-insensitive), or a refusal that
    suggests the closest names."""
    folded = wanted.strip().casefold()
    for row in rows:
        if any(str(row.get(key, "")).strip().casefold() == folded for key in keys):
            return row
    names = [str(row.get("name") or row.get("email") or "") for row in rows]
    close = difflib.get_close_matches(wanted, [n for n in names if n], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise NotBookable(f"{what or thing} {wanted!r} is not a Bookings {thing}{hint}")


class Booker:
    """The ``book`` and ``link`` actions (see the module docstring)."""

    def __init__(self, bookings, crm, settings: BookSettings,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)):
        self.bookings, self.crm, self.settings, self.clock = bookings, crm, settings, clock
        self.catalog = Catalog(bookings)

    # -- book ---------------------------------------------------------------------------------

    def book(self, action: Action, before_send: Callable[[Action], Action]) -> Booked:
        """Book ``action``'s request, or adopt a booking a lost reply made; raises
        :class:`NotBookable`, or Zoho's errors (a refusal, a transient failure)."""
        request = action.request
        time_zone = request.time_zone or self.settings.default_time_zone
        try:
            zone(time_zone)
        except TimeFormatError:
            raise NotBookable(f"unknown time zone {time_zone!r} in the meeting") from None
        if action.start is None or action.start <= self.clock():
            raise NotBookable("the meeting starts in the past")
        customer = self._customer(request)
        service = self.catalog.service(request.service) if request.service else None
        if service is None:
            raise NotBookable("no Bookings service named on the meeting")
        staff = self.catalog.staff_member(request.staff, request.owner_email, service)
        from_time = format_bookings_time(action.start, time_zone)
        if action.in_flight is not None:
            found = self._find(action, customer["email"], str(service["id"]))
            if found:
                return self._booked(action, found, from_time, time_zone, adopted=True)
        before_send(action)
        booking_id = self.bookings.book(str(service["id"]), str(staff["id"]), from_time,
                                        customer, time_zone=time_zone, notes=request.notes)
        return self._booked(action, booking_id, from_time, time_zone)

    def refused(self, action: Action, reason: str) -> str:
        """Tell staff in CRM why (``result_field``); returns what could not be written."""
        return self._write_back(action, {self.settings.result_field: f"Not booked: {reason}"}
                                if self.settings.result_field else {})

    def _booked(self, action: Action, booking_id: str, from_time: str, time_zone: str, *,
                adopted: bool = False) -> Booked:
        values = {self.settings.trigger_field: False}
        if self.settings.result_field:
            values[self.settings.result_field] = f"Booked {booking_id}"
        note = self._write_back(action, values)
        return Booked(booking_id, from_time, time_zone, adopted=adopted, note=note)

    def _write_back(self, action: Action, values: dict) -> str:
        if not values:
            return ""
        try:
            self.crm.update_meeting(action.meeting_id, values)
        except ZohoApiError as exc:
            return f"CRM not updated: {exc}"
        return ""

    def _customer(self, request: BookRequest) -> dict:
        if not request.who_id:
            raise NotBookable("the meeting names no contact or lead (Who_Id, or What_Id with "
                              "$se_module Leads)")
        person = self.crm.get_record(request.who_module, request.who_id, PERSON_FIELDS)
        if person is None:
            raise NotBookable(f"the meeting's {request.who_module[:-1].lower()} "
                              f"{request.who_id} is gone")
        email = str(person.get("Email") or "").strip()
        if not email:
            raise NotBookable(f"the {request.who_module[:-1].lower()} has no email address")
        name = person.get("Full_Name") or " ".join(
            str(p) for p in (person.get("First_Name"), person.get("Last_Name")) if p)
        phone = person.get("Phone") or person.get("Mobile")
        customer = {"name": str(name or email), "email": email}
        if phone:
            customer["phone_number"] = str(phone)
        return customer

    def _find(self, action: Action, email: str, service_id: str) -> str | None:
        """A booking a lost reply made: same customer, service and instant. The window is a
        day either side in wall time, as fetchappointment reads it in the workspace's zone."""
        start = action.start
        appointments = self.bookings.find(
            format_bookings_time(start - dt.timedelta(days=1), "UTC"),
            format_bookings_time(start + dt.timedelta(days=1), "UTC"),
            customer_email=email, service_id=service_id)
        for appointment in appointments:
            if appointment.start == start and closed_state(appointment.status) is None:
                return appointment.booking_id
        return None

    # -- link ---------------------------------------------------------------------------------

    def link(self, action: Action) -> dt.datetime | None:
        """Leave exactly one CRM meeting carrying the booking (see the module docstring).
        Returns the request meeting's new Modified_Time when it now carries the booking."""
        settings = self.settings
        request_meeting = action.meeting_id
        if action.partner is None:      # no meeting from Zoho in time: the request carries it
            details = self.crm.update_meeting(request_meeting,
                                              {settings.booking_id_field: action.booking_id})
            return _modified(details)
        if settings.on_booked is OnBooked.KEEP:
            current = self.crm.get_meeting(request_meeting, [settings.booking_id_field])
            if current and current.get(settings.booking_id_field):
                self.crm.update_meeting(request_meeting, {settings.booking_id_field: None})
            return None
        notes = (self.crm.get_meeting(request_meeting, ["Description"]) or {}).get("Description")
        if notes:
            partner = self.crm.get_meeting(action.partner, ["Description"]) or {}
            if not partner.get("Description"):
                self.crm.update_meeting(action.partner, {"Description": notes})
        try:
            self.crm.delete_meeting(request_meeting)
        except ZohoApiError as exc:
            if exc.code != "INVALID_DATA":      # already gone
                raise
        return None


def _modified(details: dict) -> dt.datetime | None:
    try:
        return parse_crm_datetime(details.get("Modified_Time"))
    except TimeFormatError:
        return None

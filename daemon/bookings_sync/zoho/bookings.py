"""Zoho Bookings appointments: read one, reschedule it, close it (cancel/completed/no-show), book.

Envelope: ``{"response": {"returnvalue": {...}, "status": "success"}}``. Bookings refuses business
requests (slot taken, time in the past, appointment closed, unknown id) with HTTP 200 and one of
three shapes, all handled (public clients disagree on which one Zoho uses):
``returnvalue.status == "failure"`` + ``returnvalue.message``; ``response.status == "failure"`` +
``response.errormessage``; ``response.status != "success"`` + ``response.message``. Those become
:class:`BookingsRefused` with Zoho's own text — except Zoho's per-day API call limit, which
arrives in the same shape but is no verdict on the appointment: it becomes
:class:`ZohoUnreachable` (code ``BOOKINGS_CALL_LIMIT``), so the engine holds its work until the
day's reset instead of recording a refusal (or reverting the CRM meeting) — and so is a refusal of the
token's scope, a :class:`ZohoAuthError` (code ``OAUTH_SCOPE_MISMATCH``): no appointment's fault.
A reply that is not Bookings' envelope at all (not JSON, no ``response``) is
:class:`ZohoUnreadable`, worth another try; one whose envelope lacks or garbles a documented
value is a :class:`ZohoPayloadError` naming the booking and the value. Times are
``dd-MMM-yyyy HH:mm:ss`` wall time in the appointment's ``time_zone``.

POST calls go as ``multipart/form-data``, as Zoho documents them (its samples use
``curl --form``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

from .errors import (BookingsRefused, ZohoAuthError, ZohoPayloadError, ZohoUnreachable,
                     ZohoUnreadable)
from .http import ZohoHttp
from .timefmt import TimeFormatError, parse_bookings_time, zone

# "API call limit exceeded for the day": Zoho's daily quota, not a business refusal. Kept narrow:
# "booking limit for the day" (a staff member's quota) is a real refusal.
_CALL_LIMIT = re.compile(r"\b(api|calls?)\b.{0,30}\blimit", re.I)
# "invalid oauth scope to access this URL": the token lacks zohobookings.data.CREATE.
_SCOPE = re.compile(r"\boauth\b.{0,20}\bscope", re.I)
SCOPE = "zohobookings.data.CREATE"
CALL_LIMIT = "BOOKINGS_CALL_LIMIT"      # the code of Zoho's "call limit exceeded for the day"


@dataclasses.dataclass(frozen=True)
class Appointment:
    booking_id: str
    status: str                 # lower-case, e.g. "upcoming", "cancel", "completed"
    start_text: str             # as Bookings wrote it: dd-MMM-yyyy HH:mm:ss in time_zone
    time_zone: str
    start: dt.datetime          # aware UTC
    staff_id: str | None
    customer_time_zone: str | None
    customer_start_text: str | None
    raw: dict = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_returnvalue(cls, value: dict, booking_id: str) -> "Appointment":
        def need(key: str) -> str:
            item = value.get(key)
            if item in (None, ""):
                raise ZohoPayloadError(f"Bookings appointment {booking_id}: reply has no {key!r}")
            return str(item)

        start_text, time_zone = need("start_time"), need("time_zone")
        try:
            zone(time_zone)
            start = parse_bookings_time(start_text, time_zone)
        except TimeFormatError as exc:
            raise ZohoPayloadError(f"Bookings appointment {booking_id}: {exc}") from None
        return cls(
            booking_id=str(value.get("booking_id") or booking_id),
            status=str(value.get("status") or "").strip().lower(),
            start_text=start_text, time_zone=time_zone, start=start,
            staff_id=str(value["staff_id"]) if value.get("staff_id") is not None else None,
            customer_time_zone=value.get("customer_booking_time_zone"),
            customer_start_text=value.get("customer_booking_start_time"),
            raw=value)


class BookingsClient:
    def __init__(self, http: ZohoHttp, api_url: str):
        self.http = http
        self.base = f"{api_url.rstrip('/')}/bookings/v1/json"

    def get(self, booking_id: str) -> Appointment:
        # requests URL-encodes params, so the '#' of "#AN-00014" travels as %23.
        value = self._call("GET", "getappointment", booking_id, params={"booking_id": booking_id})
        return Appointment.from_returnvalue(value, booking_id)

    def reschedule(self, booking_id: str, start_time: str, staff_id: str | None = None
                   ) -> Appointment:
        """Move the appointment; ``start_time`` is wall time in its ``time_zone``
        (``dd-MMM-yyyy HH:mm:ss``). Returns the appointment as Bookings now holds it."""
        form = {"booking_id": booking_id, "start_time": start_time}
        if staff_id:
            form["staff_id"] = staff_id
        value = self._call("POST", "rescheduleappointment", booking_id, data=form)
        try:
            return Appointment.from_returnvalue(value, booking_id)
        except ZohoPayloadError as exc:
            # The move itself was accepted: a later cycle's read finds it done (in sync).
            raise ZohoUnreadable(f"rescheduled, but the reply is unreadable: {exc.message}",
                                 code="rescheduleappointment") from None

    def update_status(self, booking_id: str, action: str) -> dict:
        """``action``: one of updateappointment's actions (``engine.model.STATUS_KINDS``)."""
        return self._call("POST", "updateappointment", booking_id,
                          data={"booking_id": booking_id, "action": action})

    def book(self, service_id: str, staff_id: str, from_time: str, customer: dict,
             time_zone: str | None = None) -> str:
        form = {"service_id": service_id, "staff_id": staff_id, "from_time": from_time,
                "customer_details": json.dumps(customer)}
        if time_zone:
            form["time_zone"] = time_zone
        value = self._call("POST", "appointment", "(new)", data=form)
        booking_id = value.get("booking_id")
        if not booking_id:
            raise ZohoPayloadError("Bookings book: reply has no booking_id")
        return str(booking_id)

    def _call(self, method: str, verb: str, booking_id: str, *, params=None, data=None) -> dict:
        response = self.http.request("bookings", method, f"{self.base}/{verb}", params=params,
                                     multipart=data)
        try:
            body = response.json()
        except ValueError:
            raise ZohoUnreadable(f"Bookings {verb} {booking_id}: reply is not JSON "
                                 f"(HTTP {response.status_code})") from None
        envelope = body.get("response") if isinstance(body, dict) else None
        if not isinstance(envelope, dict):
            raise ZohoUnreadable(f"Bookings {verb} {booking_id}: reply has no 'response' object")
        value = envelope.get("returnvalue")
        status = str(envelope.get("status", "")).lower()
        if status != "success":
            message = (envelope.get("errormessage") or envelope.get("message")
                       or (value.get("message") if isinstance(value, dict) else None))
            _refuse(verb, booking_id, message)
        if not isinstance(value, dict):
            raise ZohoUnreadable(f"Bookings {verb} {booking_id}: reply has no returnvalue")
        if str(value.get("status", "")).lower() == "failure":
            _refuse(verb, booking_id, value.get("message"))
        return value


def _refuse(verb: str, booking_id: str, message) -> None:
    text = str(message or "request failed")
    if _CALL_LIMIT.search(text):
        raise ZohoUnreachable(f"Bookings {verb} {booking_id}: {text}", code=CALL_LIMIT)
    if _SCOPE.search(text):
        raise ZohoAuthError(f"Bookings {verb}: {text} (the token needs scope {SCOPE})",
                            code="OAUTH_SCOPE_MISMATCH")
    raise BookingsRefused(text, code=verb)

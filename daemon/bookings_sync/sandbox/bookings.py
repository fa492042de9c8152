"""Zoho Bookings ``/bookings/v1/json/<verb>``: getappointment, rescheduleappointment,
updateappointment, appointment (book), fetchappointment — and the catalog verbs in
``bookings_catalog.py`` (workspaces, services, staffs, availableslots).

Envelope ``{"response": {"returnvalue": {...}, "status": "success"}}``. Business refusals are
HTTP 200 with ``returnvalue.status = "failure"`` and a ``message``. A missing or bad token gets
HTTP 401 with an HTML page, as Zoho Bookings does. POST parameters are read from multipart or
url-encoded form bodies alike (the server parses both). Every fact and choice, with its source,
is listed in docs/zoho-bookings.md; in short:

* Over the per-day call limit (when set) → HTTP 200 ``{"response": {"status": "failure",
  "errormessage": "API call limit exceeded for the day"}}``. Zoho documents the limit ("API
  counts are calculated between 00:00 and 23:59 hours in the respective time zones", token
  requests excluded), not its reply: that text and shape are the sandbox's choice. Every
  authenticated call counts, refused ones too; one over the limit is not counted.
* Book: ``time_zone`` or ``timezone`` (both spellings occur on Zoho's pages); duration from
  the service; ``customer_details`` needs name, email and phone_number (Deluge's
  createAppointment page calls all three mandatory; a live-tested public client met "invalid
  phone_number" without one — ``phone_required = False`` relaxes that).
* fetchappointment takes its filters as form fields (Zoho's page) or wrapped in one ``data``
  field holding JSON (what public clients send, saying Zoho needs it: with
  ``fetch_needs_data_field`` the sandbox refuses plain fields as those clients report). Times
  are read in the workspace's time zone; without both from_time and to_time nothing matches
  (a live-tested client's finding). The list sits at ``returnvalue.response`` (switch:
  ``fetch_list_key = "data"``), "No Match Found" in its place when empty, with
  ``next_page_available`` and ``page``; per_page defaults to 50, at most 100 (60 with
  need_customer_more_info).
"""

from __future__ import annotations

import json
import re

import pytz

from . import availability, bookings_catalog, scopes, wire
from .appointments import Refusal
from .messages import Reply

HTML_401 = ("<html><head><title>401 Unauthorized</title></head><body><h1>Unauthorized</h1>"
            "<p>Invalid OAuth token.</p></body></html>")
LIMIT_TEXT = "API call limit exceeded for the day"
JSON_ERROR = "EXECUTION ERROR :: Error setting value for the variable:'{}' Invalid JSON Format String"
DATA_MISSING = "EXECUTION ERROR :: Error setting value for the variable:'data' null"
NO_MATCH = "No Match Found"
FETCH_FIELDS = ("from_time", "to_time", "status", "service_id", "staff_id", "resource_id",
                "page", "per_page", "need_customer_more_info", "customer_name",
                "customer_email", "customer_phone_number")
STATUS_FILTER = {"UPCOMING": "upcoming", "CANCEL": "cancel", "COMPLETED": "completed",
                 "NO_SHOW": "noshow", "ONGOING": None, "PENDING": None,
                 "PENDING_PAYMENT": None, "PAYMENT_FAILURE": None}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?\d{5,20}$")


def ok(value):
    return Reply(200, {"response": {"returnvalue": value, "status": "success"}})


def refused(message: str):
    return Reply(200, {"response": {"returnvalue": {"status": "failure", "message": message},
                                    "status": "success"}})


def handle(sandbox, request):
    scope_refusal = scopes.bookings_refusal(sandbox, request)   # a token without its scope
    if scope_refusal is not None:
        return scope_refusal
    world = sandbox.world
    verb = request.path.rstrip("/").rsplit("/", 1)[-1]
    with world.lock:
        if not world.token_valid(request.token):
            return Reply(401, HTML_401, content_type="text/html;charset=UTF-8")
        if not sandbox._bookings_budget():
            return Reply(200, {"response": {"status": "failure", "errormessage": LIMIT_TEXT}})
        action = VERBS.get((request.method, verb))
        if action is None:
            return Reply(404, {"response": {"status": "failure",
                                            "errormessage": f"unknown API {verb}"}})
        try:
            return ok(action(world, request.param))
        except Refusal as exc:
            return refused(str(exc))


def _get(world, p):
    return wire.render_appointment(world.appointment(p("booking_id") or ""))


def _reschedule(world, p):
    appt = world.appointment(p("booking_id") or "")
    if not (p("start_time") or p("staff_id") or p("group_id")):
        raise Refusal("One of start_time, staff_id or group_id is required")
    start = appt["start"]
    if p("start_time"):
        start = _parse_time(p("start_time"), appt["time_zone"])
    return wire.render_appointment(world.reschedule(appt["booking_id"], start, p("staff_id")))


def _update(world, p):
    return wire.render_appointment(world.set_status(p("booking_id") or "", p("action") or ""))


def _book(world, p):
    staff_id = p("staff_id") or p("resource_id") or p("group_id")
    if not (p("service_id") and p("from_time") and staff_id):
        raise Refusal("service_id, from_time and one of staff_id/resource_id/group_id are "
                      "required")
    service = availability.service_and_staff(world.catalog, p("service_id"), staff_id)
    zone = (p("time_zone") or p("timezone")
            or world.catalog.workspace_of(service)["time_zone"])
    try:
        pytz.timezone(zone)
    except pytz.UnknownTimeZoneError:
        raise Refusal(f"Invalid time_zone {zone!r}") from None
    start = _parse_time(p("from_time"), zone)
    customer = _customer(world, p("customer_details"))
    more_info = _json_object("additional_fields", p("additional_fields") or "{}")
    availability.check_bookable(world, service, staff_id, start)
    _, booking_id = world.book(start=start, time_zone=zone, duration_minutes=service["duration"],
                               staff_id=staff_id, service_id=service["id"], customer=customer,
                               customer_time_zone=zone, check=False, source="api",
                               notes=p("notes") or "", more_info=more_info)
    return wire.render_appointment(world.appointment(booking_id))


def _customer(world, raw: str | None) -> dict:
    customer = _json_object("customer_details", raw or "")
    if not str(customer.get("name") or "").strip():
        raise Refusal("invalid name")
    if not _EMAIL.match(str(customer.get("email") or "")):
        raise Refusal("invalid email")
    phone = re.sub(r"[\s()-]", "", str(customer.get("phone_number") or ""))
    if (phone and not _PHONE.match(phone)) or (world.phone_required and not phone):
        raise Refusal("invalid phone_number")
    return customer


def _json_object(name: str, raw: str) -> dict:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise Refusal(JSON_ERROR.format(name))
    return value


def _parse_time(text: str, zone: str):
    try:
        return wire.parse_bookings_time(text, zone)
    except ValueError as exc:
        raise Refusal(str(exc)) from None


def _fetch(world, p):
    f = _fetch_filters(world, p)
    more_info = str(f.get("need_customer_more_info", "")).lower() == "true"
    page, per_page = _positive(f, "page", 1), _positive(f, "per_page", 50)
    per_page = min(per_page, 60 if more_info else 100)
    rows = _matching(world, f)
    chunk = rows[(page - 1) * per_page: page * per_page]
    listed = [wire.render_appointment(a, more_info=more_info) for a in chunk] or NO_MATCH
    return {world.fetch_list_key: listed, "next_page_available": len(rows) > page * per_page,
            "page": page, "per_page": per_page}


def _fetch_filters(world, p) -> dict:
    raw = p("data")
    if raw is None:
        if world.fetch_needs_data_field:
            raise Refusal(DATA_MISSING)
        return {name: p(name) for name in FETCH_FIELDS if p(name) not in (None, "")}
    wrapped = _json_object("data", raw)
    return {k: str(v) for k, v in wrapped.items() if v not in (None, "")}


def _positive(f: dict, name: str, default: int) -> int:
    try:
        value = int(f.get(name, default))
    except ValueError:
        value = 0
    if value < 1:
        raise Refusal(f"Invalid {name} {f.get(name)!r}")
    return value


def _matching(world, f: dict) -> list[dict]:
    status = f.get("status", "").upper()
    if status and status not in STATUS_FILTER:
        raise Refusal(f"Invalid status {f['status']!r}")
    if not (f.get("from_time") and f.get("to_time")):
        return []
    zone = world.workspace_time_zone
    start, end = _parse_time(f["from_time"], zone), _parse_time(f["to_time"], zone)
    equal = {"service_id": f.get("service_id"),
             "staff_id": f.get("staff_id") or f.get("resource_id")}
    contains = {"customer_name": f.get("customer_name"),
                "customer_email": f.get("customer_email"),
                "customer_contact_no": f.get("customer_phone_number")}
    rows = [a for a in world.appointments.values()
            if start <= a["start"] <= end
            and (not status or a["status"] == STATUS_FILTER[status])
            and all(a[key] == value for key, value in equal.items() if value)
            and all(value.lower() in a[key].lower() for key, value in contains.items() if value)]
    return sorted(rows, key=lambda a: (a["start"], a["booking_id"]))


VERBS = {
    ("GET", "getappointment"): _get,
    ("POST", "rescheduleappointment"): _reschedule,
    ("POST", "updateappointment"): _update,
    ("POST", "appointment"): _book,
    ("POST", "fetchappointment"): _fetch,
    **bookings_catalog.VERBS,
}

"""Zoho Bookings ``/bookings/v1/json/<verb>``: getappointment, rescheduleappointment,
updateappointment, appointment (book).

Envelope ``{"response": {"returnvalue": {...}, "status": "success"}}``. Business refusals (slot
taken by the same staff member, start in the past, appointment cancelled or completed, unknown
booking id) are HTTP 200 with ``returnvalue.status = "failure"`` and a message. A missing or bad
token gets HTTP 401 with an HTML page, as Zoho Bookings does. Over the per-day call limit (when
set; authenticated calls counted per sandbox-clock day in the workspace time zone, token requests excluded) the
sandbox answers HTTP 200 ``{"response": {"status": "failure", "errormessage": "API call limit
exceeded for the day"}}`` — Zoho documents the limit, not its reply; this is the
``response.errormessage`` failure shape public clients parse (shared/zoho-api.md). A client
cannot tell it from a business refusal by shape alone, only by its text.
"""

from __future__ import annotations

import json

from . import scopes, wire
from .messages import Reply
from .world import Refusal

HTML_401 = ("<html><head><title>401 Unauthorized</title></head><body><h1>Unauthorized</h1>"
            "<p>Invalid OAuth token.</p></body></html>")


def _ok(value: dict):
    return Reply(200, {"response": {"returnvalue": value, "status": "success"}})


def _refused(message: str):
    return Reply(200, {"response": {"returnvalue": {"status": "failure", "message": message},
                                    "status": "success"}})


def handle(sandbox, request):
    refused = scopes.bookings_refusal(sandbox, request)     # a token without the Bookings scope
    if refused is not None:
        return refused
    world = sandbox.world
    verb = request.path.rstrip("/").rsplit("/", 1)[-1]
    with world.lock:
        if not world.token_valid(request.token):
            return Reply(401, HTML_401, content_type="text/html;charset=UTF-8")
        if not sandbox._bookings_budget():
            return Reply(200, {"response": {"status": "failure", "errormessage":
                               "API call limit exceeded for the day"}})
        p = request.param
        try:
            if verb == "getappointment" and request.method == "GET":
                return _ok(wire.render_appointment(world.appointment(p("booking_id") or "")))
            if verb == "rescheduleappointment" and request.method == "POST":
                appt = world.appointment(p("booking_id") or "")
                if not (p("start_time") or p("staff_id") or p("group_id")):
                    raise Refusal("One of start_time, staff_id or group_id is required")
                start = appt["start"]
                if p("start_time"):
                    try:
                        start = wire.parse_bookings_time(p("start_time"), appt["time_zone"])
                    except ValueError as exc:
                        raise Refusal(str(exc)) from None
                return _ok(wire.render_appointment(world.reschedule(appt["booking_id"], start,
                                                                    p("staff_id"))))
            if verb == "updateappointment" and request.method == "POST":
                return _ok(wire.render_appointment(world.set_status(p("booking_id") or "",
                                                                    p("action") or "")))
            if verb == "appointment" and request.method == "POST":
                return _ok(wire.render_appointment(_book(world, p)))
        except Refusal as exc:
            return _refused(str(exc))
    return Reply(404, {"response": {"status": "failure", "errormessage": f"unknown API {verb}"}})


def _book(world, p):
    zone = p("time_zone") or world.workspace_time_zone
    if not (p("service_id") and p("from_time") and (p("staff_id") or p("resource_id") or p("group_id"))):
        raise Refusal("service_id, from_time and one of staff_id/resource_id/group_id are required")
    try:
        start = wire.parse_bookings_time(p("from_time"), zone)
        customer = json.loads(p("customer_details") or "{}")
    except ValueError as exc:
        raise Refusal(f"invalid input: {exc}") from None
    if start < world.clock.now():
        raise Refusal("Cannot book an appointment in the past")
    _, booking_id = world.book(start=start, time_zone=zone, duration_minutes=30,
                               staff_id=p("staff_id") or p("resource_id") or p("group_id"),
                               service_id=p("service_id"), customer=customer,
                               customer_time_zone=zone)
    return world.appointment(booking_id)

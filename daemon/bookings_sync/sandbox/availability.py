"""When a staff member can take a service: the checks behind ``POST appointment`` and the slots
``GET availableslots`` lists.

A start is bookable when the service and staff member exist, the staff member is assigned to
the service, the start is not in the past, the whole appointment (its duration, not its buffer)
lies inside the staff member's business hours that day, and no upcoming appointment of theirs
overlaps (buffers included). Slots start at the opening time and step by the workspace's slot
interval (15 minutes by default, as in Zoho's fetch-availability sample); they are rendered in
the workspace's time zone as "HH:mm", or "hh:mm AM" when the workspace uses a 12-hour clock
(Zoho: "the time format follows Settings > General > Basic Information > Time Format").
Refusal texts: Zoho publishes none for these cases, so the sandbox's own words, each naming
its cause (docs/zoho-bookings.md).
"""

from __future__ import annotations

import datetime as dt

import pytz

from .appointments import Refusal

UNKNOWN_SERVICE = "Invalid service_id: no such service"
UNKNOWN_STAFF = "Invalid staff_id: no such staff member"
NOT_ASSIGNED = "The staff member is not associated with the service"
IN_THE_PAST = "Cannot book an appointment in the past"
OUTSIDE_HOURS = "Slot not available: outside the staff member's business hours"


def service_and_staff(catalog, service_id: str, staff_id: str) -> dict:
    service = catalog.services.get(service_id or "")
    if service is None:
        raise Refusal(UNKNOWN_SERVICE)
    if (staff_id or "") not in catalog.staff:
        raise Refusal(UNKNOWN_STAFF)
    if staff_id not in service["staff"]:
        raise Refusal(NOT_ASSIGNED)
    return service


def check_bookable(world, service: dict, staff_id: str, start: dt.datetime) -> None:
    if start < world.clock.now():
        raise Refusal(IN_THE_PAST)
    if not _within_hours(world.catalog, staff_id, service, start):
        raise Refusal(OUTSIDE_HOURS)
    world.check_slot(None, staff_id, start, service["duration"], service["buffer"])


def _within_hours(catalog, staff_id: str, service: dict, start: dt.datetime) -> bool:
    end = start + dt.timedelta(minutes=service["duration"])
    zone = pytz.timezone(catalog.workspace_of(service)["time_zone"])
    day = start.astimezone(zone).date()
    return any(opens <= start and end <= closes
               for opens, closes in catalog.open_spans(staff_id, service, day))


def available_slots(world, service: dict, staff_id: str, day: dt.date) -> list[str]:
    workspace = world.catalog.workspace_of(service)
    zone = pytz.timezone(workspace["time_zone"])
    step = dt.timedelta(minutes=workspace["slot_minutes"])
    length = dt.timedelta(minutes=service["duration"])
    now = world.clock.now()
    slots = []
    for opens, closes in world.catalog.open_spans(staff_id, service, day):
        start = opens
        while start + length <= closes:
            if start > now and _free(world, staff_id, start, service):
                local = zone.normalize(start.astimezone(zone))
                slots.append(local.strftime("%I:%M %p" if workspace["time_format"] == "12h"
                                            else "%H:%M"))
            start += step
    return slots


def _free(world, staff_id: str, start: dt.datetime, service: dict) -> bool:
    try:
        world.check_slot(None, staff_id, start, service["duration"], service["buffer"])
    except Refusal:
        return False
    return True

"""Rendering the sandbox's data in Zoho's wire formats, and reading Zoho's request formats.

Kept apart from the daemon's own ``zoho.timefmt`` on purpose: the sandbox is an independent
implementation of the documents, so one shared bug cannot make both sides agree on something
Zoho would reject. CRM: ISO 8601 with the CRM user's offset, seconds precision. Bookings:
``dd-MMM-yyyy HH:mm:ss`` (English month abbreviations) in the appointment's time zone, and
``yyyy-MM-dd HH:mm:ss`` for ``customer_booking_start_time`` (customer's zone) and ``booked_on``
(as in Zoho's getappointment sample; the appointment's zone is the sandbox's choice). CRM field
and module metadata: ``fields.py`` and ``metadata.py``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re

import pytz

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_BOOKINGS_DAY = re.compile(r"^\d{1,2}-[A-Za-z]{3}-\d{4}")
_BOOKINGS = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{1,2}):(\d{2})(?::(\d{2}))?$")

def crm_datetime(when: dt.datetime, tz_name: str) -> str:
    zone = pytz.timezone(tz_name)
    return zone.normalize(when.astimezone(zone)).replace(microsecond=0).isoformat()


def parse_crm_datetime(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("no offset")
    return value.astimezone(pytz.utc)


def parse_if_modified_since(text: str) -> dt.datetime:
    """ISO 8601 with offset as Zoho documents; an RFC 1123 HTTP-date is accepted too."""
    try:
        return parse_crm_datetime(text.strip())
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(text)
        if parsed is None or parsed.tzinfo is None:
            raise ValueError(text) from None
        return parsed.astimezone(pytz.utc)


def bookings_time(when: dt.datetime, tz_name: str) -> str:
    zone = pytz.timezone(tz_name)
    local = zone.normalize(when.astimezone(zone))
    return (f"{local.day:02d}-{MONTHS[local.month - 1]}-{local.year} "
            f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}")


def parse_bookings_time(text: str, tz_name: str) -> dt.datetime:
    match = _BOOKINGS.match(text.strip())
    if not match:
        raise ValueError(f"invalid date format {text!r}, expected dd-MMM-yyyy HH:mm:ss")
    day, mon, year, hour, minute, sec = match.groups()
    try:
        month = [m.lower() for m in MONTHS].index(mon.lower()) + 1
    except ValueError:
        raise ValueError(f"invalid month in {text!r}") from None
    naive = dt.datetime(int(year), month, int(day), int(hour), int(minute), int(sec or 0))
    zone = pytz.timezone(tz_name)
    try:
        local = zone.localize(naive, is_dst=None)
    except pytz.AmbiguousTimeError:
        local = zone.localize(naive, is_dst=True)
    except pytz.NonExistentTimeError:
        local = zone.normalize(zone.localize(naive, is_dst=False))
    return local.astimezone(pytz.utc)


# A record's hostile values (Sandbox.crm_raw): on the wire they replace the typed ones, verbatim.
RAW = "$sandbox_raw"


def parse_bookings_date(text: str) -> dt.date:
    """``dd-MMM-yyyy`` (availableslots' ``selected_date``); a trailing time is ignored, as in
    Zoho's own sample request."""
    match = _BOOKINGS_DAY.match((text or "").strip())
    if not match:
        raise ValueError(f"invalid date format {text!r}, expected dd-MMM-yyyy")
    return parse_bookings_time(f"{match.group(0)} 00:00:00", "UTC").date()


def render_record(record: dict, fields: list[str] | None, tz_name: str) -> dict:
    names = ["id"] + [f for f in (fields or record.keys()) if f not in ("id", RAW)]
    raw = record.get(RAW, {})
    out = {}
    for name in names:
        if name not in record:
            continue
        value = raw[name] if name in raw else record[name]
        if isinstance(value, dt.datetime):
            value = crm_datetime(value, tz_name)
        out[name] = value
    return out


def _local_seconds(when: dt.datetime, tz_name: str) -> str:
    """``yyyy-MM-dd HH:mm:ss``, wall time in ``tz_name`` (Zoho's ``booked_on`` and
    ``customer_booking_start_time``)."""
    zone = pytz.timezone(tz_name)
    return zone.normalize(when.astimezone(zone)).strftime("%Y-%m-%d %H:%M:%S")


def render_appointment(appt: dict, *, more_info: bool = True) -> dict:
    """The keys of Zoho's getappointment sample, plus ``end_time``, ``iso_start_time``,
    ``iso_end_time`` and ``notes``, which public clients read. ``more_info=False`` (a
    fetchappointment without need_customer_more_info) leaves ``customer_more_info`` empty."""
    zone = appt["time_zone"]
    end = appt["start"] + dt.timedelta(minutes=appt["duration"])
    return {
        "booking_id": appt["booking_id"], "status": appt["status"],
        "start_time": bookings_time(appt["start"], zone), "end_time": bookings_time(end, zone),
        "iso_start_time": crm_datetime(appt["start"], zone),
        "iso_end_time": crm_datetime(end, zone),
        "time_zone": zone, "duration": f"{appt['duration']} mins",
        "customer_booking_start_time": _local_seconds(appt["start"], appt["customer_time_zone"]),
        "customer_booking_time_zone": appt["customer_time_zone"],
        "staff_id": appt["staff_id"], "staff_name": appt["staff_name"],
        "service_id": appt["service_id"], "service_name": appt["service_name"],
        "workspace_id": appt["workspace_id"], "workspace_name": appt["workspace_name"],
        "customer_name": appt["customer_name"], "customer_email": appt["customer_email"],
        "customer_contact_no": appt["customer_contact_no"],
        "customer_more_info": dict(appt["more_info"]) if more_info else {},
        "booked_on": _local_seconds(appt["booked_on"], zone),
        "booking_type": "appointment", "cost": f"{appt['cost']:.2f}", "cost_paid": "0.00",
        "due": f"{appt['cost']:.1f}", "currency": appt["currency"], "notes": appt["notes"],
        "summary_url": f"https://bookings.sandbox.invalid/summary/{appt['booking_id'].lstrip('#')}",
    }


def render_workspace(workspace: dict) -> dict:
    return {"id": workspace["id"], "name": workspace["name"]}


def render_service(service: dict, workspace: dict) -> dict:
    """Fetch-services keys (Zoho's page and public clients' samples)."""
    return {
        "id": service["id"], "name": service["name"], "duration": f"{service['duration']} mins",
        "buffertime": f"{service['buffer']} mins", "service_type": service["service_type"],
        "assigned_staffs": list(service["staff"]),
        "let_customer_select_staff": service["let_customer_select_staff"],
        "assigned_workspace": workspace["id"], "price": service["cost"],
        "currency": workspace["currency"],
        "embed_url": f"https://bookings.sandbox.invalid/portal-embed#/{service['id']}",
    }


def render_staff(staff: dict, services: list[dict]) -> dict:
    """Fetch-staff keys; ``services`` are those the staff member is assigned to."""
    return {
        "id": staff["id"], "name": staff["name"], "email": staff["email"],
        "designation": staff["designation"],
        "assigned_services": [s["id"] for s in services],
        "assigned_workspaces": sorted({s["workspace_id"] for s in services}),
        "embed_url": f"https://bookings.sandbox.invalid/portal-embed#/{staff['id']}",
    }


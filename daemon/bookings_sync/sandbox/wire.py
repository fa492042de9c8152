"""Rendering the sandbox's data in Zoho's wire formats, and reading Zoho's request formats.

Kept apart from the daemon's own ``zoho.timefmt`` on purpose: the sandbox is an independent
implementation of the documents, so one shared bug cannot make both sides agree on something
Zoho would reject. CRM: ISO 8601 with the CRM user's offset, seconds precision. Bookings:
``dd-MMM-yyyy HH:mm:ss`` (English month abbreviations) in the appointment's time zone, and
``yyyy-MM-dd HH:mm:ss`` for ``customer_booking_start_time``. CRM field and module metadata:
``fields.py`` and ``metadata.py``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re

import pytz

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
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


def render_appointment(appt: dict) -> dict:
    zone = appt["time_zone"]
    end = appt["start"] + dt.timedelta(minutes=appt["duration"])
    customer_zone = pytz.timezone(appt["customer_time_zone"])
    customer_start = customer_zone.normalize(appt["start"].astimezone(customer_zone))
    return {
        "booking_id": appt["booking_id"], "status": appt["status"],
        "start_time": bookings_time(appt["start"], zone), "end_time": bookings_time(end, zone),
        "iso_start_time": crm_datetime(appt["start"], zone),
        "iso_end_time": crm_datetime(end, zone),
        "time_zone": zone, "duration": f"{appt['duration']} mins",
        "customer_booking_start_time": customer_start.strftime("%Y-%m-%d %H:%M:%S"),
        "customer_booking_time_zone": appt["customer_time_zone"],
        "staff_id": appt["staff_id"], "staff_name": appt["staff_name"],
        "service_id": appt["service_id"], "service_name": appt["service_name"],
        "workspace_id": appt["workspace_id"], "customer_name": appt["customer_name"],
        "customer_email": appt["customer_email"],
        "customer_contact_no": appt["customer_contact_no"],
        "booked_on": bookings_time(appt["booked_on"], zone),
        "summary_url": f"https://bookings.sandbox.invalid/summary/{appt['booking_id'].lstrip('#')}",
    }

"""The date formats Zoho puts on the wire, and the time-zone arithmetic between them.

CRM speaks ISO 8601 with the CRM user's offset (``2026-03-08T10:00:00-04:00``); Bookings speaks
wall time ``dd-MMM-yyyy HH:mm:ss`` in the appointment's ``time_zone``. Instants are compared as
aware UTC datetimes, never as strings. Time-zone work goes through pytz's ``localize`` and
``normalize`` (``tzinfo=`` with a pytz zone silently picks the zone's LMT offset).
"""

from __future__ import annotations

import datetime as dt
import re

import pytz

UTC = pytz.utc
# Instants outside these years are broken records: Zoho was founded in 1996, and no booking is
# made two centuries ahead. (A Modified_Time in 2099 is plausible here and handled by the engine,
# which never lets it move a cursor past the server's clock.)
PLAUSIBLE_YEARS = range(1996, 2200)

# %b depends on the C locale; Zoho always writes English abbreviations, so we do too.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name.lower(): i for i, name in enumerate(_MONTHS, start=1)}
_BOOKINGS_RE = re.compile(
    r"^\s*(\d{1,2})-([A-Za-z]{3})-(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


class TimeFormatError(ValueError):
    """A date or time zone from config or an API payload that we cannot read."""


def zone(name: str) -> dt.tzinfo:
    """The pytz zone for an IANA name (old aliases like ``Asia/Calcutta`` included)."""
    try:
        return pytz.timezone(name)
    except (pytz.UnknownTimeZoneError, AttributeError, TypeError):
        raise TimeFormatError(f"unknown time zone {name!r}") from None


def parse_crm_datetime(text: str) -> dt.datetime:
    """``2020-02-02T10:00:00+05:30`` → aware UTC datetime. An offset is required, and the
    instant must lie in :data:`PLAUSIBLE_YEARS` (a meeting in year 206 or 9999 is a broken
    record, not a date to act on)."""
    if not isinstance(text, str):
        raise TimeFormatError(f"expected an ISO 8601 datetime string, got {text!r}")
    if not (text.isascii() and text.isprintable()):
        raise TimeFormatError(f"not an ISO 8601 datetime (odd characters): {text!r}")
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TimeFormatError(f"not an ISO 8601 datetime: {text!r}") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise TimeFormatError(f"datetime without a UTC offset: {text!r}")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        value = value.replace(tzinfo=None)   # year 1 or 9999 near the edge: out of range below
    if value.year not in PLAUSIBLE_YEARS:
        raise TimeFormatError(f"{text!r} is outside the years {PLAUSIBLE_YEARS.start}–"
                              f"{PLAUSIBLE_YEARS.stop - 1}")
    return value


def format_crm_datetime(instant: dt.datetime, tz_name: str = "UTC") -> str:
    """Aware instant → ISO 8601 in ``tz_name`` with its offset, seconds precision (CRM style)."""
    local = to_zone(instant, tz_name)
    return local.replace(microsecond=0).isoformat()


def to_zone(instant: dt.datetime, tz_name: str) -> dt.datetime:
    """An aware instant as wall time in ``tz_name`` (pytz-normalized, so DST is right)."""
    if instant.tzinfo is None:
        raise TimeFormatError(f"naive datetime {instant!r}: an instant needs an offset")
    tz = zone(tz_name)
    return tz.normalize(instant.astimezone(tz))


def format_bookings_time(instant: dt.datetime, tz_name: str) -> str:
    """Aware instant → ``dd-MMM-yyyy HH:mm:ss`` wall time in ``tz_name``."""
    local = to_zone(instant, tz_name)
    return (f"{local.day:02d}-{_MONTHS[local.month - 1]}-{local.year:04d} "
            f"{local.hour:02d}:{local.minute:02d}:{local.second:02d}")


def parse_bookings_wall(text: str) -> dt.datetime:
    """``28-May-2019 13:00:00`` → naive wall datetime (seconds optional, month any case)."""
    match = _BOOKINGS_RE.match(text) if isinstance(text, str) else None
    if not match:
        raise TimeFormatError(f"not a Bookings time (dd-MMM-yyyy HH:mm:ss): {text!r}")
    day, mon, year, hour, minute, second = match.groups()
    month = _MONTH_NUMBER.get(mon.lower())
    if month is None:
        raise TimeFormatError(f"unknown month {mon!r} in Bookings time {text!r}")
    try:
        return dt.datetime(int(year), month, int(day), int(hour), int(minute), int(second or 0))
    except ValueError as exc:
        raise TimeFormatError(f"impossible Bookings time {text!r}: {exc}") from None


def wall_time_occurrences(text: str, tz_name: str) -> list[dt.datetime]:
    """Every instant (aware UTC) at which the wall time ``text`` occurs in ``tz_name``: one
    usually, two in a DST fall-back hour (earliest first), none in a spring-forward gap."""
    naive = parse_bookings_wall(text)
    tz = zone(tz_name)
    instants = set()
    for is_dst in (True, False):
        local = tz.localize(naive, is_dst=is_dst)
        if tz.normalize(local).replace(tzinfo=None) == naive:   # not shifted out of a gap
            instants.add(local.astimezone(UTC))
    return sorted(instants)


def parse_bookings_time(text: str, tz_name: str) -> dt.datetime:
    """``28-May-2019 13:00:00`` read in ``tz_name`` → aware UTC datetime.

    A wall time that occurs twice (DST fall-back) resolves to the first occurrence, and one that
    never occurs (spring-forward gap) is shifted forward by pytz's normalize, as a calendar does.
    """
    naive = parse_bookings_wall(text)
    tz = zone(tz_name)
    try:
        local = tz.localize(naive, is_dst=None)
    except pytz.AmbiguousTimeError:
        local = tz.localize(naive, is_dst=True)
    except pytz.NonExistentTimeError:
        local = tz.normalize(tz.localize(naive, is_dst=False))
    return local.astimezone(UTC)

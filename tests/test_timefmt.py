"""Zoho's date formats and the time-zone arithmetic between CRM and Bookings."""

from __future__ import annotations

import datetime as dt

import pytest
import pytz
from hypothesis import given, strategies as st

from bookings_sync.zoho import timefmt

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Calcutta",
         "Australia/Sydney", "America/Sao_Paulo", "Pacific/Chatham", "Asia/Kathmandu"]
instants = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2037, 12, 31),
                        timezones=st.just(dt.timezone.utc)).map(lambda d: d.replace(microsecond=0))


@given(instants, st.sampled_from(ZONES))
def test_bookings_wall_time_round_trips_to_the_same_instant(instant, zone):
    text = timefmt.format_bookings_time(instant, zone)
    back = timefmt.parse_bookings_time(text, zone)
    local = pytz.timezone(zone).normalize(instant.astimezone(pytz.timezone(zone)))
    ambiguous = _is_ambiguous(local.replace(tzinfo=None), zone)
    if not ambiguous:
        assert back == instant
    else:   # the fall-back hour shows one wall time for two instants: an hour apart at most
        assert abs((back - instant).total_seconds()) <= 3600


@given(instants, st.sampled_from(ZONES), st.sampled_from(ZONES))
def test_crm_datetime_round_trips_in_any_user_zone(instant, _booked, user_zone):
    text = timefmt.format_crm_datetime(instant, user_zone)
    assert timefmt.parse_crm_datetime(text) == instant


def _is_ambiguous(naive, zone):
    try:
        pytz.timezone(zone).localize(naive, is_dst=None)
        return False
    except pytz.AmbiguousTimeError:
        return True
    except pytz.NonExistentTimeError:
        return False


def test_dst_spring_forward_in_new_york():
    before = timefmt.parse_crm_datetime("2027-03-12T10:00:00-05:00")
    after = timefmt.parse_crm_datetime("2027-03-15T10:00:00-04:00")
    assert timefmt.format_bookings_time(before, "America/New_York") == "12-Mar-2027 10:00:00"
    assert timefmt.format_bookings_time(after, "America/New_York") == "15-Mar-2027 10:00:00"
    assert (after - before) == dt.timedelta(days=3, hours=-1)


def test_kolkata_booking_edited_in_berlin():
    instant = timefmt.parse_crm_datetime("2027-02-11T09:00:00+01:00")
    assert timefmt.format_bookings_time(instant, "Asia/Kolkata") == "11-Feb-2027 13:30:00"
    assert timefmt.format_bookings_time(instant, "Asia/Calcutta") == "11-Feb-2027 13:30:00"


def test_english_month_names_whatever_the_locale():
    instant = dt.datetime(2027, 5, 28, 13, 0, tzinfo=dt.timezone.utc)
    assert timefmt.format_bookings_time(instant, "UTC") == "28-May-2027 13:00:00"
    assert timefmt.parse_bookings_wall("28-may-2027 13:00") == dt.datetime(2027, 5, 28, 13, 0)


@pytest.mark.parametrize("bad,needle", [
    ("2027-13-01T10:00:00+01:00", "not an ISO 8601 datetime"),
    ("2027-03-01T10:00:00", "without a UTC offset"),
    ("tomorrow", "not an ISO 8601 datetime"),
])
def test_bad_crm_datetimes_say_what_is_wrong(bad, needle):
    with pytest.raises(timefmt.TimeFormatError, match=needle):
        timefmt.parse_crm_datetime(bad)


@pytest.mark.parametrize("bad,needle", [
    ("31-Feb-2027 10:00:00", "impossible Bookings time"),
    ("2027-02-01 10:00:00", "not a Bookings time"),
    ("01-Foo-2027 10:00:00", "unknown month"),
])
def test_bad_bookings_times_say_what_is_wrong(bad, needle):
    with pytest.raises(timefmt.TimeFormatError, match=needle):
        timefmt.parse_bookings_wall(bad)


def test_unknown_zone_is_named():
    with pytest.raises(timefmt.TimeFormatError, match="unknown time zone 'Mars/Olympus'"):
        timefmt.zone("Mars/Olympus")

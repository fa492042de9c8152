"""The Zoho sandbox's wire behaviour, as a client relies on it — over real HTTP with ``requests``.

Accounts (token grant, its refusals, 10 tokens per 10 minutes), CRM Events (fields, sort, paging,
page_token, If-Modified-Since, 204, updates, deletes, the cancel action, field metadata, errors
with all four keys), Bookings (appointments rendered in their own zone, reschedule read as wall
time in that zone, business refusals, HTML 401, the daily limit), the Bookings→CRM integration,
each fault kind, the request log's masking and the ``/_sandbox`` control surface.

Facts checked come from shared/zoho-api.md and Zoho's OpenAPI files; schema conformance and the
official SDK's reading are tested in test_oas_conformance.py and test_sdk_fidelity.py.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import time

import pytest
import requests

from bookings_sync.sandbox import Sandbox
from e2e import FROZEN_NOW

UTC = dt.timezone.utc
NOW = FROZEN_NOW     # Berlin +01:00, Kolkata +05:30, NY -05:00
ERROR_KEYS = {"code", "details", "message", "status"}
INFO_KEYS = {"per_page", "count", "page", "more_records", "sort_by", "sort_order",
             "next_page_token", "previous_page_token", "page_token_expiry", "call", "email"}


class Client:
    """A bare Zoho client: token from Accounts, then CRM and Bookings calls."""

    def __init__(self, sb: Sandbox):
        self.sb = sb
        self.http = requests.Session()
        self.http.trust_env = False                     # never a proxy for 127.0.0.1
        self.token = self.grant().json()["access_token"]

    def grant(self, how: str = "query", **override) -> requests.Response:
        params = {"grant_type": "refresh_token", **self.sb.credentials, **override}
        if how == "query":
            return self.http.post(f"{self.sb.url}/oauth/v2/token", params=params, timeout=10)
        return self.http.post(f"{self.sb.url}/oauth/v2/token", data=params, timeout=10)

    def _auth(self, kwargs, auth):
        headers = dict(kwargs.pop("headers", {}))
        if auth == "token":
            headers["Authorization"] = f"Zoho-oauthtoken {self.token}"
        elif auth is not None:
            headers["Authorization"] = auth
        return headers

    def crm(self, method: str, path: str, *, version: int = 8, auth="token", **kwargs):
        return self.http.request(method, f"{self.sb.url}/crm/v{version}/{path}",
                                 headers=self._auth(kwargs, auth), timeout=10, **kwargs)

    def list(self, since: str | None = None, **params):
        params.setdefault("fields", "Start_DateTime,End_DateTime,Modified_Time,BookingId")
        headers = {"If-Modified-Since": since} if since else {}
        return self.crm("GET", "Events", params=params, headers=headers)

    def bookings(self, method: str, verb: str, *, auth="token", **kwargs):
        return self.http.request(method, f"{self.sb.url}/bookings/v1/json/{verb}",
                                 headers=self._auth(kwargs, auth), timeout=10, **kwargs)

    def appointment(self, booking_id: str) -> dict:
        reply = self.bookings("GET", "getappointment", params={"booking_id": booking_id})
        assert reply.status_code == 200
        return reply.json()["response"]["returnvalue"]


@pytest.fixture
def fsb(frozen_sb):
    return frozen_sb


@pytest.fixture
def client(fsb):
    c = Client(fsb)
    yield c
    c.http.close()


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2031, 3, day, hour, minute, tzinfo=UTC)


def error_of(reply: requests.Response, status: int, code: str) -> dict:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == ERROR_KEYS and body["status"] == "error" and body["code"] == code, body
    return body


def iso(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


# -- Accounts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["query", "form"])
def test_token_grant_in_query_or_form(sb, how):
    c = Client(sb)
    reply = c.grant(how)
    body = reply.json()
    assert reply.status_code == 200
    assert body["api_domain"] == sb.url and body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600 and body["access_token"]
    c.token = body["access_token"]
    assert c.list().status_code == 204                       # a valid token, no meetings yet


def test_wrong_credentials_are_http_200_with_an_error_key(sb):
    c = Client(sb)
    for override, error in [({"client_id": "1000.WRONG"}, "invalid_client"),
                            ({"client_secret": "wrong"}, "invalid_client"),
                            ({"refresh_token": "1000.revoked"}, "invalid_code")]:
        reply = c.grant("form", **override)
        assert (reply.status_code, reply.json()) == (200, {"error": error})


def test_the_eleventh_token_in_ten_minutes_is_refused(clock):
    with Sandbox(clock=clock) as sb:
        c = Client(sb)                                        # token 1
        for _ in range(9):
            assert c.grant().status_code == 200
        reply = c.grant()
        assert reply.status_code == 400
        assert reply.json() == {
            "error_description": "You have made too many requests continuously. Please try "
                                 "again after some time.",
            "error": "Access Denied", "status": "failure"}
        clock.advance(600)                                    # the first token leaves the window
        assert c.grant().status_code == 200


def test_tokens_expire_and_can_be_expired(clock):
    with Sandbox(clock=clock, token_ttl=60) as sb:
        c = Client(sb)
        assert c.list().status_code == 204
        clock.advance(61)
        body = error_of(c.list(), 401, "INVALID_TOKEN")
        assert body == {"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token",
                        "status": "error"}
        c.token = c.grant().json()["access_token"]
        assert c.list().status_code == 204
        sb.expire_tokens()
        error_of(c.list(), 401, "INVALID_TOKEN")
        error_of(c.crm("GET", "Events", auth=None, params={"fields": "id"}), 401,
                 "AUTHENTICATION_FAILURE")


# -- CRM: listing ------------------------------------------------------------------------------

def test_fields_is_mandatory_from_v3(fsb, client):
    fsb.book(at(5, 10))
    body = error_of(client.crm("GET", "Events"), 400, "REQUIRED_PARAM_MISSING")
    assert body["details"] == {"param_name": "fields"}
    assert client.crm("GET", "Events", version=2).status_code == 200
    too_many = ",".join(f"Field_{i}" for i in range(51))
    error_of(client.list(fields=too_many), 400, "LIMIT_EXCEEDED")


def test_list_returns_id_and_the_fields_asked_with_the_crm_users_offset(fsb, client, clock):
    meeting_id, booking_id = fsb.book(at(5, 10), time_zone="Asia/Kolkata")
    reply = client.list(fields="Start_DateTime,End_DateTime,Modified_Time,BookingId")
    body = reply.json()
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("application/json")
    [record] = body["data"]
    assert set(record) == {"id", "Start_DateTime", "End_DateTime", "Modified_Time", "BookingId"}
    assert record["id"] == meeting_id and record["id"].isdigit()
    assert record["BookingId"] == booking_id
    assert record["Start_DateTime"] == "2031-03-05T11:00:00+01:00"      # Berlin, seconds
    assert record["End_DateTime"] == "2031-03-05T11:30:00+01:00"
    assert record["Modified_Time"] == "2031-03-03T10:00:00+01:00"
    assert set(body["info"]) == INFO_KEYS
    assert body["info"] | {"page_token_expiry": None} == {
        "per_page": 200, "count": 1, "page": 1, "more_records": False, "sort_by": "id",
        "sort_order": "desc", "next_page_token": None, "previous_page_token": None,
        "page_token_expiry": None, "call": False, "email": False}
    fsb.set_crm_time_zone("Asia/Kolkata")
    [record] = client.list().json()["data"]
    assert record["Start_DateTime"] == "2031-03-05T15:30:00+05:30"
    assert iso(record["Start_DateTime"]) == at(5, 10)


def test_a_full_record_has_the_meeting_fields(fsb, client):
    meeting_id, booking_id = fsb.book(at(5, 10))
    reply = client.crm("GET", f"Events/{meeting_id}")
    [record] = reply.json()["data"]
    assert reply.status_code == 200
    for key in ("id", "Event_Title", "Start_DateTime", "End_DateTime", "All_day", "Created_Time",
                "Modified_Time", "Owner", "Created_By", "Modified_By", "Participants",
                "What_Id", "Who_Id", "Meeting_Status", "BookingId"):
        assert key in record, key
    assert record["All_day"] is False and record["Participants"] == []
    assert record["What_Id"] is None and record["Who_Id"] is None
    assert set(record["Owner"]) == {"name", "id", "email"}
    assert record["Meeting_Status"] == "Scheduled" and record["BookingId"] == booking_id
    assert record["Event_Title"] == "Consultation (svc-1) with Pat Customer"
    error_of(client.crm("GET", "Events/4876876000999999999"), 400, "INVALID_DATA")


def test_sort_orders_are_stable_with_id_as_tie_breaker(fsb, client, clock):
    ids = [fsb.book(at(5, 9 + i))[0] for i in range(4)]       # all modified in one second
    clock.advance(5)
    fsb.crm_move(ids[1], at(6, 9))                           # ids[1] now modified last

    def order(**params):
        return [r["id"] for r in client.list(**params).json()["data"]]

    assert order() == sorted(ids, key=int, reverse=True)            # default: id desc
    assert order(sort_by="id", sort_order="asc") == sorted(ids, key=int)
    expected = [ids[0], ids[2], ids[3], ids[1]]
    assert order(sort_by="Modified_Time", sort_order="asc") == expected
    assert order(sort_by="Modified_Time", sort_order="desc") == expected[::-1]
    assert order(sort_by="Created_Time", sort_order="asc") == sorted(ids, key=int)
    error_of(client.list(sort_by="Event_Title"), 400, "INVALID_DATA")


def test_pages_and_page_tokens_walk_every_record_once(fsb, client, clock):
    fsb.seed(25)
    walked, page_tokens = [], []
    for page in (1, 2, 3):
        body = client.list(page=page, per_page=10, sort_by="Modified_Time",
                           sort_order="asc").json()
        info = body["info"]
        assert (info["page"], info["per_page"], info["count"]) == (page, 10, len(body["data"]))
        assert info["more_records"] is (page < 3)
        assert (info["next_page_token"] is not None) is (page < 3)
        walked += [r["id"] for r in body["data"]]
        page_tokens.append(info["next_page_token"])
    assert len(walked) == len(set(walked)) == 25
    # page_token continues the same query exactly where page 1 stopped.
    body = client.list(page_token=page_tokens[0], per_page=10, sort_by="Modified_Time",
                       sort_order="asc").json()
    assert [r["id"] for r in body["data"]] == walked[10:20]
    assert body["info"]["page"] == 2
    assert client.list(page=4, per_page=10).status_code == 204       # past the end
    error_of(client.list(page_token="not-a-token"), 400, "INVALID_DATA")
    clock.advance(24 * 3600 + 1)                                     # tokens live 24 h
    client.token = client.grant().json()["access_token"]
    error_of(client.list(page_token=page_tokens[1], per_page=10, sort_by="Modified_Time",
                         sort_order="asc"), 400, "INVALID_DATA")


def test_beyond_2000_records_only_page_token_goes_on(fsb, client):
    fsb.seed(2050)
    error_of(client.list(page=11, per_page=200), 400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED")
    error_of(client.list(page=3, per_page=1000), 400, "INVALID_DATA")
    seen, params = [], {"per_page": 200, "fields": "id"}
    for _ in range(11):
        body = client.list(**params).json()
        seen += [r["id"] for r in body["data"]]
        params = {"per_page": 200, "fields": "id", "page_token": body["info"]["next_page_token"]}
    assert len(seen) == len(set(seen)) == 2050
    assert body["info"]["page"] == 11 and body["info"]["more_records"] is False


def test_if_modified_since_keeps_records_modified_strictly_after(fsb, client, clock):
    first, _ = fsb.book(at(5, 9))
    clock.advance(10)
    second, _ = fsb.book(at(5, 10))
    second_modified = fsb.meeting(second)["Modified_Time"]
    # The same instant in another offset, ISO 8601 as Zoho documents it.
    kolkata = second_modified.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    reply = client.list(since=(second_modified - dt.timedelta(seconds=1))
                        .astimezone(kolkata.tzinfo).isoformat())
    assert [r["id"] for r in reply.json()["data"]] == [second]
    reply = client.list(since=kolkata.isoformat())                    # not strictly after
    assert reply.status_code == 204 and reply.content == b""
    assert "Content-Length" not in reply.headers or reply.headers["Content-Length"] == "0"
    http_date = "Mon, 03 Mar 2031 09:00:05 GMT"                       # lenient: RFC 1123
    assert [r["id"] for r in client.list(since=http_date).json()["data"]] == [second]
    body = error_of(client.list(since="yesterday"), 400, "INVALID_DATA")
    assert body["details"] == {"param_name": "If-Modified-Since"}
    assert first


def test_modified_time_has_one_second_resolution(fsb, client, clock):
    clock.set(NOW + dt.timedelta(milliseconds=700))
    meeting_id, _ = fsb.book(at(5, 9))
    assert fsb.meeting(meeting_id)["Modified_Time"] == NOW
    [record] = client.list().json()["data"]
    assert record["Modified_Time"] == "2031-03-03T10:00:00+01:00"


# -- CRM: writes -------------------------------------------------------------------------------

def test_put_updates_start_and_bumps_modified_time(fsb, client, clock):
    meeting_id, booking_id = fsb.book(at(5, 10))
    clock.advance(30)
    reply = client.crm("PUT", "Events", json={"data": [
        {"id": meeting_id, "Start_DateTime": "2031-03-05T16:30:00+05:30",
         "End_DateTime": "2031-03-05T17:00:00+05:30"}]})
    assert reply.status_code == 200
    [result] = reply.json()["data"]
    assert (result["code"], result["status"], result["message"]) == (
        "SUCCESS", "success", "record updated")
    assert set(result["details"]) == {"id", "Modified_Time", "Modified_By", "Created_Time",
                                      "Created_By"}
    assert result["details"]["Modified_Time"] == "2031-03-03T10:00:30+01:00"
    meeting = fsb.meeting(meeting_id)
    assert meeting["Start_DateTime"] == at(5, 11) and meeting["Modified_Time"] == clock.now()
    assert fsb.appointment(booking_id)["start"] == at(5, 10)          # Bookings not told


def test_put_refuses_unknown_ids_and_bad_datetimes_per_record(fsb, client):
    meeting_id, _ = fsb.book(at(5, 10))
    reply = client.crm("PUT", "Events", json={"data": [
        {"id": "4876876000999999999", "Start_DateTime": "2031-03-05T16:30:00+05:30"},
        {"id": meeting_id, "Start_DateTime": "2031-03-05 16:30"}]})
    assert reply.status_code == 400
    unknown, bad = reply.json()["data"]
    assert set(unknown) == set(bad) == ERROR_KEYS
    assert (unknown["code"], unknown["details"]) == ("INVALID_DATA", {"id": "4876876000999999999"})
    assert bad["code"] == "INVALID_DATA"
    assert bad["details"]["api_name"] == "Start_DateTime"
    assert bad["details"]["expected_data_type"] == "datetime"
    assert fsb.meeting(meeting_id)["Start_DateTime"] == at(5, 10)


def test_delete_and_the_deleted_records_list(fsb, client, clock):
    ids = [fsb.book(at(5, 9 + i))[0] for i in range(4)]
    clock.advance(10)
    reply = client.crm("DELETE", f"Events/{ids[0]}")
    assert reply.status_code == 200 and reply.json()["data"][0]["code"] == "SUCCESS"
    clock.advance(10)
    reply = client.crm("DELETE", "Events", params={"ids": f"{ids[1]},{ids[2]}"})
    assert [r["details"]["id"] for r in reply.json()["data"]] == ids[1:3]
    body = client.crm("GET", "Events/deleted", params={"type": "all"}).json()
    assert {r["id"] for r in body["data"]} == set(ids[:3])
    entry = next(r for r in body["data"] if r["id"] == ids[0])
    assert set(entry) == {"id", "display_name", "type", "deleted_by", "created_by",
                          "deleted_time"}
    assert set(entry["deleted_by"]) == {"name", "id"} and entry["type"] == "recycle"
    assert entry["deleted_time"] == "2031-03-03T10:00:10+01:00"
    assert set(body["info"]) >= {"per_page", "count", "page", "more_records"}
    after_first = "2031-03-03T10:00:10+01:00"
    body = client.crm("GET", "Events/deleted", params={"type": "all"},
                      headers={"If-Modified-Since": after_first}).json()
    assert {r["id"] for r in body["data"]} == set(ids[1:3])
    reply = client.crm("GET", "Events/deleted", params={"type": "permanent"})
    assert reply.status_code == 204 and reply.content == b""
    assert [r["id"] for r in client.list().json()["data"]] == [ids[3]]


def test_cancel_action_marks_the_meeting_cancelled_without_touching_bookings(fsb, client, clock):
    meeting_id, booking_id = fsb.book(at(5, 10))
    clock.advance(7)
    reply = client.crm("POST", f"Events/{meeting_id}/actions/cancel",
                       json={"data": [{"send_cancelling_mail": False}]})
    assert reply.status_code == 200
    assert reply.json() == {"data": [{"code": "SUCCESS", "details": {"id": meeting_id},
                                      "message": "The event is successfully cancelled",
                                      "status": "success"}]}
    meeting = fsb.meeting(meeting_id)
    assert meeting["Meeting_Status"] == "Cancelled" and meeting["$event_cancelled"] is True
    assert meeting["Modified_Time"] == clock.now()
    assert fsb.appointment(booking_id)["status"] == "upcoming"
    again = client.crm("POST", f"Events/{meeting_id}/actions/cancel",
                       json={"data": [{"send_cancelling_mail": False}]})
    assert again.status_code == 400 and again.json()["data"][0]["code"] == "NOT_ALLOWED"
    unknown = client.crm("POST", "Events/4876876000999999999/actions/cancel",
                         json={"data": [{"send_cancelling_mail": False}]})
    assert unknown.status_code == 400
    assert unknown.json()["data"][0] | {} == {
        "code": "INVALID_DATA", "details": {"id": "4876876000999999999"},
        "message": "the id given seems to be invalid", "status": "error"}
    other, _ = fsb.book(at(5, 12))
    missing = client.crm("POST", f"Events/{other}/actions/cancel", json={"data": [{}]})
    assert missing.status_code == 400
    assert missing.json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"


def test_field_metadata_types_the_meeting_fields(fsb, client):
    reply = client.crm("GET", "settings/fields", params={"module": "Events"})
    fields = {f["api_name"]: f for f in reply.json()["fields"]}
    for name in ("Start_DateTime", "End_DateTime", "Created_Time", "Modified_Time"):
        assert fields[name]["data_type"] == "datetime", name
    assert fields["Event_Title"]["data_type"] == "text"
    assert fields["All_day"]["data_type"] == "boolean"
    assert fields["Owner"]["data_type"] == "ownerlookup"
    assert fields["Meeting_Status"]["data_type"] == "picklist"
    assert {v["actual_value"] for v in fields["Meeting_Status"]["pick_list_values"]} >= {
        "Scheduled", "Cancelled", "Completed", "No Show"}
    assert fields["BookingId"]["custom_field"] is True
    assert fields["Start_DateTime"]["custom_field"] is False
    for field in fields.values():
        for key in ("api_name", "data_type", "field_label", "id", "custom_field", "json_type",
                    "length", "read_only", "system_mandatory", "visible"):
            assert key in field, (field["api_name"], key)
    body = error_of(client.crm("GET", "settings/fields"), 400, "REQUIRED_PARAM_MISSING")
    assert body["details"] == {"param_name": "module"}


def test_configured_field_names_follow_through(clock):
    with Sandbox(clock=clock, booking_id_field="Zoho_Booking_ID",
                 status_field="Status_Custom") as sb:
        c = Client(sb)
        meeting_id, booking_id = sb.book(at(5, 10))
        [record] = c.list(fields="Zoho_Booking_ID,Status_Custom").json()["data"]
        assert record == {"id": meeting_id, "Zoho_Booking_ID": booking_id,
                          "Status_Custom": "Scheduled"}
        names = {f["api_name"] for f in c.crm("GET", "settings/fields",
                                              params={"module": "Events"}).json()["fields"]}
        assert {"Zoho_Booking_ID", "Status_Custom"} <= names


def test_url_errors(fsb, client):
    error_of(client.crm("GET", "Meetingz", params={"fields": "id"}), 400, "INVALID_MODULE")
    error_of(client.crm("GET", "Events", version=9, params={"fields": "id"}), 404,
             "INVALID_URL_PATTERN")
    error_of(client.crm("GET", "Events/1/nothing/here"), 404, "INVALID_URL_PATTERN")


# -- Bookings ----------------------------------------------------------------------------------

def test_getappointment_renders_the_appointment_in_its_own_zone(fsb, client):
    _, booking_id = fsb.book(at(5, 4, 30), time_zone="Asia/Kolkata",
                             customer_time_zone="America/New_York")
    assert booking_id.startswith("#AN-")
    value = client.appointment(booking_id)                 # '#' travels as %23
    assert value["booking_id"] == booking_id and value["status"] == "upcoming"
    assert value["start_time"] == "05-Mar-2031 10:00:00"
    assert value["end_time"] == "05-Mar-2031 10:30:00"
    assert value["iso_start_time"] == "2031-03-05T10:00:00+05:30"
    assert value["iso_end_time"] == "2031-03-05T10:30:00+05:30"
    assert value["time_zone"] == "Asia/Kolkata" and value["duration"] == "30 mins"
    assert value["customer_booking_start_time"] == "2031-03-04 23:30:00"
    assert value["customer_booking_time_zone"] == "America/New_York"
    for key in ("staff_id", "staff_name", "service_id", "service_name", "workspace_id",
                "customer_name", "customer_email", "booked_on", "summary_url"):
        assert value.get(key), key
    _, alias = fsb.book(at(5, 6), time_zone="Asia/Calcutta", staff_id="staff-2")
    value = client.appointment(alias)
    assert value["time_zone"] == "Asia/Calcutta"             # old alias kept as given
    assert value["start_time"] == "05-Mar-2031 11:30:00"


def test_reschedule_reads_start_time_as_wall_time_in_the_appointments_zone(fsb, client, clock):
    meeting_id, booking_id = fsb.book(at(5, 4, 30), time_zone="Asia/Kolkata")
    clock.advance(20)
    reply = client.bookings("POST", "rescheduleappointment",
                            data={"booking_id": booking_id, "start_time": "06-Mar-2031 15:00:00"})
    value = reply.json()["response"]["returnvalue"]
    assert reply.status_code == 200 and reply.json()["response"]["status"] == "success"
    assert value["start_time"] == "06-Mar-2031 15:00:00" and value["status"] == "upcoming"
    assert fsb.appointment(booking_id)["start"] == at(6, 9, 30)
    # The integration wrote the move back into the CRM meeting.
    meeting = fsb.meeting(meeting_id)
    assert meeting["Start_DateTime"] == at(6, 9, 30)
    assert meeting["End_DateTime"] == at(6, 10)
    assert meeting["Modified_Time"] == clock.now()
    [record] = client.list(since="2031-03-03T10:00:10+01:00").json()["data"]
    assert record["Start_DateTime"] == "2031-03-06T10:30:00+01:00"


def _refusal(reply: requests.Response) -> str:
    assert reply.status_code == 200
    body = reply.json()["response"]
    assert body["returnvalue"]["status"] == "failure", body
    return body["returnvalue"]["message"]


def test_bookings_refusals(fsb, client):
    _, taken = fsb.book(at(5, 10), staff_id="staff-1")
    _, mine = fsb.book(at(5, 12), staff_id="staff-1")

    def reschedule(booking_id, start_time):
        return client.bookings("POST", "rescheduleappointment",
                               data={"booking_id": booking_id, "start_time": start_time})

    assert "slot" in _refusal(reschedule(mine, "05-Mar-2031 10:15:00")).lower()   # overlaps
    assert "past" in _refusal(reschedule(mine, "01-Mar-2031 10:00:00")).lower()
    assert _refusal(reschedule("#AN-99999", "05-Mar-2031 14:00:00"))
    assert _refusal(reschedule(mine, "2031-03-05 14:00"))                         # bad format
    assert _refusal(client.bookings("POST", "rescheduleappointment",
                                    data={"booking_id": mine}))                   # nothing to do
    assert _refusal(client.bookings("POST", "updateappointment",
                                    data={"booking_id": mine, "action": "postpone"}))
    fsb.bookings_cancel(taken)                                 # a cancelled slot is free again
    assert reschedule(mine, "05-Mar-2031 10:15:00").json()["response"]["returnvalue"][
        "start_time"] == "05-Mar-2031 10:15:00"
    assert "cancel" in _refusal(reschedule(taken, "05-Mar-2031 16:00:00")).lower()
    fsb.bookings_set_status(mine, "completed")
    assert _refusal(reschedule(mine, "05-Mar-2031 16:00:00"))
    assert fsb.appointment(mine)["start"] == at(5, 10, 15)


def test_another_staff_member_may_take_the_same_slot(fsb, client):
    _, first = fsb.book(at(5, 10), staff_id="staff-1")
    _, second = fsb.book(at(5, 12), staff_id="staff-2")
    reply = client.bookings("POST", "rescheduleappointment",
                            data={"booking_id": second, "start_time": "05-Mar-2031 10:00:00"})
    assert reply.json()["response"]["returnvalue"]["status"] == "upcoming"
    assert first


@pytest.mark.parametrize("action, bookings_status, crm_status", [
    ("cancel", "cancel", "Cancelled"), ("completed", "completed", "Completed"),
    ("noshow", "noshow", "No Show")])
def test_updateappointment_writes_the_status_back_to_crm(fsb, client, clock, action,
                                                         bookings_status, crm_status):
    meeting_id, booking_id = fsb.book(at(5, 10))
    clock.advance(3)
    reply = client.bookings("POST", "updateappointment",
                            data={"booking_id": booking_id, "action": action})
    assert reply.json()["response"]["returnvalue"]["status"] == bookings_status
    meeting = fsb.meeting(meeting_id)
    assert meeting["Meeting_Status"] == crm_status and meeting["Modified_Time"] == clock.now()
    assert _refusal(client.bookings("POST", "updateappointment",
                                    data={"booking_id": booking_id, "action": "cancel"}))


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_booking_creates_the_crm_meeting(fsb, client, clock, encoding):
    # A catalog service and staff member, inside business hours (09:00-18:00 UTC), with a
    # customer phone number: POST appointment checks all three (test_sandbox_bookings.py).
    form = {"service_id": "svc-1", "staff_id": "staff-3", "from_time": "07-Mar-2031 10:00:00",
            "time_zone": "Europe/Berlin",
            "customer_details": json.dumps({"name": "Ada", "email": "ada@example.invalid",
                                            "phone_number": "+4930123456"})}
    if encoding == "urlencoded":
        reply = client.bookings("POST", "appointment", data=form)
    else:
        reply = client.bookings("POST", "appointment",
                                files={k: (None, v) for k, v in form.items()})
    value = reply.json()["response"]["returnvalue"]
    booking_id = value["booking_id"]
    assert value["start_time"] == "07-Mar-2031 10:00:00" and value["time_zone"] == "Europe/Berlin"
    meeting = fsb.meeting(fsb.meeting_for_booking(booking_id))
    assert meeting["BookingId"] == booking_id
    assert meeting["Start_DateTime"] == at(7, 9) and meeting["End_DateTime"] == at(7, 9, 30)
    assert meeting["Created_Time"] == meeting["Modified_Time"] == clock.now()
    assert meeting["Event_Title"] == f"{value['service_name']} with Ada"
    # The same staff member at the same time is refused; in the past too.
    assert _refusal(client.bookings("POST", "appointment", data=form))
    assert _refusal(client.bookings("POST", "appointment",
                                    data={**form, "from_time": "01-Mar-2031 09:00:00"}))


def test_bookings_without_a_valid_token_get_an_html_401(fsb, client):
    _, booking_id = fsb.book(at(5, 10))
    for auth in (None, "Zoho-oauthtoken 1000.nope"):
        reply = client.bookings("GET", "getappointment", auth=auth,
                                params={"booking_id": booking_id})
        assert reply.status_code == 401
        assert reply.headers["Content-Type"].startswith("text/html")
        assert "<html" in reply.text.lower()


def test_bookings_daily_limit(clock):
    with Sandbox(clock=clock, bookings_daily_limit=2) as sb:
        c = Client(sb)
        _, booking_id = sb.book(at(5, 10))
        assert c.appointment(booking_id)["booking_id"] == booking_id
        assert c.appointment(booking_id)["booking_id"] == booking_id
        reply = c.bookings("GET", "getappointment", params={"booking_id": booking_id})
        assert reply.status_code == 200
        assert reply.json() == {"response": {"status": "failure",
                                             "errormessage": "API call limit exceeded for the day"}}
        assert c.list().status_code == 200                      # CRM is not affected
        clock.advance(24 * 3600)                                # the next day in the workspace
        c.token = c.grant().json()["access_token"]
        assert c.appointment(booking_id)["booking_id"] == booking_id
        sb.set_bookings_daily_limit(None)
        for _ in range(3):
            assert c.appointment(booking_id)["booking_id"] == booking_id


# -- the Python control surface -----------------------------------------------------------------

def test_crm_side_edits_never_reach_bookings(fsb, clock):
    meeting_id, booking_id = fsb.book(at(5, 10), duration_minutes=45)
    clock.advance(1)
    fsb.crm_move(meeting_id, at(6, 8))
    meeting = fsb.meeting(meeting_id)
    assert (meeting["Start_DateTime"], meeting["End_DateTime"]) == (at(6, 8), at(6, 8, 45))
    assert meeting["Modified_Time"] == clock.now()
    clock.advance(1)
    fsb.crm_edit(meeting_id, Meeting_Status="Completed", Event_Title="Renamed")
    assert fsb.meeting(meeting_id)["Event_Title"] == "Renamed"
    assert fsb.meeting(meeting_id)["Modified_Time"] == clock.now()
    fsb.crm_cancel(meeting_id)
    fsb.crm_delete(meeting_id)
    assert fsb.appointment(booking_id)["start"] == at(5, 10)
    assert fsb.appointment(booking_id)["status"] == "upcoming"
    assert fsb.calls["bookings.rescheduleappointment"] == 0


def test_bookings_side_changes_write_back(fsb, clock):
    meeting_id, booking_id = fsb.book(at(5, 10), time_zone="Australia/Sydney")
    assert fsb.meeting_for_booking(booking_id) == meeting_id
    clock.advance(2)
    fsb.bookings_reschedule(booking_id, at(5, 11))
    assert fsb.meeting(meeting_id)["Start_DateTime"] == at(5, 11)
    assert fsb.appointment(booking_id)["start"] == at(5, 11)
    assert fsb.appointment(booking_id)["time_zone"] == "Australia/Sydney"
    clock.advance(2)
    fsb.bookings_cancel(booking_id)
    meeting = fsb.meeting(meeting_id)
    assert meeting["Meeting_Status"] == "Cancelled" and meeting["Modified_Time"] == clock.now()
    # Internal copies: changing them changes nothing.
    meeting["Meeting_Status"] = "Scheduled"
    assert fsb.meeting(meeting_id)["Meeting_Status"] == "Cancelled"


def test_seed_makes_upcoming_non_overlapping_bookings_in_mixed_zones(fsb, clock):
    pairs = fsb.seed(60) + fsb.seed(20, rng_seed=1)
    appointments = [fsb.appointment(b) for _, b in pairs]
    assert len({m for m, _ in pairs}) == len({b for _, b in pairs}) == 80
    assert all(a["start"] > clock.now() and a["status"] == "upcoming" for a in appointments)
    assert len({a["time_zone"] for a in appointments}) >= 4
    by_staff: dict[str, list] = {}
    for a in appointments:
        by_staff.setdefault(a["staff_id"], []).append(
            (a["start"], a["start"] + dt.timedelta(minutes=a["duration"])))
    for slots in by_staff.values():
        slots.sort()
        assert all(end <= nxt for (_, end), (nxt, _) in zip(slots, slots[1:]))
    for meeting_id, booking_id in pairs[:5]:
        assert fsb.meeting(meeting_id)["BookingId"] == booking_id


def test_credentials_and_toml_block(sb):
    block = sb.zoho_toml()
    creds = sb.credentials
    assert block.startswith("[zoho]")
    assert f'accounts_url = "{sb.url}"' in block and f'api_url = "{sb.url}"' in block
    for value in creds.values():
        assert f'"{value}"' in block
    assert 'data_center = "com"' in block


# -- faults ------------------------------------------------------------------------------------

def test_fault_429_then_500_then_normal(fsb, client):
    fsb.book(at(5, 10))
    fsb.inject("/crm/v8/Events", "429", retry_after=7)
    fsb.inject("/crm/v8/Events", "500")
    reply = client.list()
    error_of(reply, 429, "TOO_MANY_REQUESTS")
    assert reply.headers["Retry-After"] == "7"
    error_of(client.list(), 500, "INTERNAL_ERROR")
    assert client.list().status_code == 200
    assert fsb.calls["crm.list"] == 3                        # faulted requests count too
    fsb.inject("/crm/v8/Events", "429", count=2)
    assert "Retry-After" not in client.list().headers
    assert client.list().status_code == 429
    assert client.list().status_code == 200


def test_fault_stall_answers_late(fsb, client):
    _, booking_id = fsb.book(at(5, 10))
    fsb.inject("getappointment", "stall", stall_seconds=0.4)
    started = time.monotonic()
    assert client.appointment(booking_id)["booking_id"] == booking_id
    assert time.monotonic() - started >= 0.4
    with pytest.raises(requests.Timeout):
        fsb.inject("getappointment", "stall", stall_seconds=1.0)
        client.http.get(f"{fsb.url}/bookings/v1/json/getappointment",
                        params={"booking_id": booking_id}, timeout=0.2,
                        headers={"Authorization": f"Zoho-oauthtoken {client.token}"})


def test_fault_drop_closes_the_socket_without_a_response(fsb, client):
    fsb.inject("/oauth/v2/token", "drop")
    with pytest.raises(requests.ConnectionError):
        client.grant()
    assert client.grant().status_code == 200
    assert fsb.calls["accounts.token"] == 3                  # fixture's grant, dropped, this one
    assert [e["status"] for e in fsb.request_log if e["endpoint"] == "accounts.token"] == [
        200, 0, 200]


# -- counters, request log, hooks ----------------------------------------------------------------

def test_calls_and_request_log_never_hold_secrets(fsb, client):
    _, booking_id = fsb.book(at(5, 10))
    client.grant("query")
    client.grant("form")
    client.list()
    client.appointment(booking_id)
    client.bookings("POST", "rescheduleappointment",
                    data={"booking_id": booking_id, "start_time": "05-Mar-2031 12:00:00"})
    assert fsb.calls["accounts.token"] == 3
    assert fsb.calls["crm.list"] == 1 and fsb.calls["bookings.getappointment"] == 1
    assert fsb.calls["bookings.rescheduleappointment"] == 1
    dump = repr(fsb.request_log)
    for secret in (fsb.credentials["client_secret"], fsb.credentials["refresh_token"],
                   client.token):
        assert secret not in dump
    token_entries = [e for e in fsb.request_log if e["endpoint"] == "accounts.token"]
    assert token_entries[1]["query"]["client_secret"] == "***"
    assert token_entries[2]["form"]["refresh_token"] == "***"
    entry = fsb.request_log[-1]
    assert set(entry) >= {"endpoint", "method", "path", "query", "form", "json", "status", "at"}
    assert entry["form"] == {"booking_id": booking_id, "start_time": "05-Mar-2031 12:00:00"}
    assert entry["status"] == 200 and entry["at"] == NOW
    fsb.reset_counters()
    assert not fsb.calls and not fsb.request_log


def test_on_page_runs_after_each_list_page_so_data_can_change_between_pages(fsb, client, clock):
    ids = [m for m, _ in fsb.seed(5)]
    seen = []

    def hook(endpoint, query):
        seen.append((endpoint, query.get("page")))
        if len(seen) == 1:
            clock.advance(1)
            fsb.crm_move(ids[0], at(9, 9))                   # edited while pages are read

    fsb.on_page = hook
    first = client.list(per_page=2, page=1, sort_by="Modified_Time", sort_order="asc").json()
    assert fsb.meeting(ids[0])["Start_DateTime"] == at(9, 9)
    second = client.list(per_page=2, page=2, sort_by="Modified_Time", sort_order="asc").json()
    assert seen == [("crm.list", "1"), ("crm.list", "2")]
    # The edit moved ids[0] to the end: page 2 now starts one record later (a naive pager skips).
    assert ids[0] in [r["id"] for r in first["data"]]
    assert len({r["id"] for r in first["data"] + second["data"]}) == 4


def test_keep_alive_with_exact_lengths_including_a_204(fsb, client):
    conn = http.client.HTTPConnection(fsb.url.removeprefix("http://"), timeout=5)
    headers = {"Authorization": f"Zoho-oauthtoken {client.token}"}
    conn.request("GET", "/crm/v8/Events?fields=id", headers=headers)
    first = conn.getresponse()
    assert (first.status, first.read()) == (204, b"")
    sock = conn.sock
    fsb.book(at(5, 10))
    conn.request("GET", "/crm/v8/Events?fields=id", headers=headers)
    second = conn.getresponse()
    body = second.read()
    assert second.status == 200 and int(second.getheader("Content-Length")) == len(body)
    assert conn.sock is sock                                 # the same connection, kept alive
    conn.close()


# -- the HTTP control surface --------------------------------------------------------------------

def test_http_control_surface(fsb, client, clock):
    def control(verb, **body):
        reply = client.http.post(f"{fsb.url}/_sandbox/{verb}", json=body, timeout=10)
        return reply.status_code, reply.json()

    status, body = control("seed", count=3)
    assert status == 200 and len(body["pairs"]) == 3
    meeting_id, booking_id = body["pairs"][0]
    status, body = control("book", start="2031-03-08T10:00:00+01:00", time_zone="Europe/Berlin")
    assert status == 200 and fsb.appointment(body["booking_id"])["start"] == at(8, 9)
    assert control("clock", advance=5) == (200, {"now": "2031-03-03T09:00:05+00:00"})
    assert control("crm_move", meeting_id=meeting_id, start="2031-03-09T12:00:00+05:30")[0] == 200
    assert fsb.meeting(meeting_id)["Start_DateTime"] == at(9, 6, 30)
    assert control("crm_edit", meeting_id=meeting_id,
                   fields={"Meeting_Status": "No Show"})[0] == 200
    assert fsb.meeting(meeting_id)["Meeting_Status"] == "No Show"
    assert control("bookings_reschedule", booking_id=booking_id,
                   start="2031-03-10T08:00:00Z")[0] == 200
    assert fsb.meeting(meeting_id)["Start_DateTime"] == at(10, 8)
    status, body = control("appointment", booking_id=booking_id)
    assert status == 200 and body["start"] == "2031-03-10T08:00:00+00:00"
    assert control("bookings_cancel", booking_id=booking_id)[0] == 200
    assert control("inject", path="/crm/", kind="500")[0] == 200
    assert client.list().status_code == 500
    status, calls = control("calls")
    assert calls == {"accounts.token": 1, "crm.list": 1}     # control requests are not counted
    status, log = control("request_log")
    assert [e["endpoint"] for e in log] == ["accounts.token", "crm.list"]
    assert control("crm_move", meeting_id=meeting_id, start="2031-03-09T12:00:00")[0] == 400
    assert control("nope")[0] == 404
    assert control("expire_tokens")[0] == 200
    error_of(client.list(), 401, "INVALID_TOKEN")
    assert control("reset_counters")[0] == 200 and not fsb.calls


def test_a_client_that_resets_its_connection_costs_the_sandbox_no_traceback(sb, capsys):
    # A daemon killed with -9 mid-request resets its socket; the sandbox serving tests and the
    # bench must not print a Python traceback for that.
    import socket
    import struct
    host, port = sb.url.split("//", 1)[1].split(":")
    for _ in range(3):
        client = socket.create_connection((host, int(port)))
        client.sendall(b"GET /crm/v8/Events HTTP/1.1\r\nHost: x\r\n")   # headers unfinished
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()                                                   # RST, not FIN
    time.sleep(0.3)
    assert requests.get(f"{sb.url}/crm/v8/Events", timeout=5).status_code == 401   # still serving
    assert "Traceback" not in capsys.readouterr().err

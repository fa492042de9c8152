"""The sandbox's Bookings side as a client meets it, over real HTTP with ``requests``.

The catalog verbs (workspaces, services, staffs, availableslots) and business hours; booking
(``POST appointment``) with the service's duration, both time-zone spellings, and each refusal
class; fetchappointment's filters, paging, ``data`` wrapper and list-key switch; both form
encodings for every POST verb; the integration's meeting for API bookings, switched off and
delayed; the per-day call limit counted in the workspace's time zone; the control verbs. The
facts and choices behind each are in docs/zoho-bookings.md.

The frozen clock is Monday 2031-03-03 09:00 UTC; the default workspace keeps Mon-Fri
09:00-18:00 in its zone (UTC unless a test says otherwise).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests

from bookings_sync.sandbox import Sandbox
from test_sandbox import Client, at

# The keys of Zoho's getappointment sample reply (get-appointment.html).
SAMPLE_KEYS = {"staff_name", "customer_more_info", "customer_booking_start_time",
               "customer_contact_no", "booked_on", "booking_id", "workspace_id", "duration",
               "service_id", "staff_id", "cost_paid", "currency", "workspace_name", "cost",
               "service_name", "time_zone", "start_time", "due", "customer_email",
               "booking_type", "customer_name", "summary_url", "customer_booking_time_zone",
               "status"}
LIMIT_REPLY = {"response": {"status": "failure",
                            "errormessage": "API call limit exceeded for the day"}}


@pytest.fixture
def client(frozen_sb):
    c = Client(frozen_sb)
    yield c
    c.http.close()


def customer(**override) -> str:
    return json.dumps({"name": "Ada Lovelace", "email": "ada@example.invalid",
                       "phone_number": "+44 20 7946 0000", **override})


def book_form(**override) -> dict:
    form = {"service_id": "svc-1", "staff_id": "staff-1", "from_time": "04-Mar-2031 10:00:00",
            "customer_details": customer(), **override}
    return {k: v for k, v in form.items() if v is not None}


def post(client: Client, verb: str, form: dict, encoding: str = "urlencoded"):
    if encoding == "multipart":        # what Zoho's `curl --form` samples send
        return client.bookings("POST", verb, files={k: (None, v) for k, v in form.items()})
    return client.bookings("POST", verb, data=form)


def value_of(reply: requests.Response) -> dict:
    assert reply.status_code == 200, reply.text
    body = reply.json()["response"]
    assert body["status"] == "success", body
    return body["returnvalue"]


def refusal(reply: requests.Response) -> str:
    value = value_of(reply)
    assert value["status"] == "failure" and value["message"], value
    return value["message"]


def fetch(client: Client, encoding: str = "urlencoded", wrapped: bool = True, **filters):
    filters.setdefault("from_time", "01-Mar-2031 00:00:00")
    filters.setdefault("to_time", "31-Mar-2031 23:59:59")
    form = {"data": json.dumps(filters)} if wrapped else filters
    return value_of(post(client, "fetchappointment", form, encoding))


# -- the catalog ---------------------------------------------------------------------------------

def test_workspaces_services_and_staff_as_documented(frozen_sb, client):
    [workspace] = value_of(client.bookings("GET", "workspaces"))["data"]
    assert workspace == {"id": "ws-1", "name": "Sandbox Workspace"}
    services = value_of(client.bookings("GET", "services", params={"workspace_id": "ws-1"}))
    assert services["next_page_available"] is False and services["page"] == 1
    svc1, svc2 = services["data"]
    assert {"id", "name", "duration", "buffertime", "service_type", "assigned_staffs",
            "let_customer_select_staff"} <= set(svc1)
    assert (svc1["id"], svc1["duration"], svc1["service_type"]) == ("svc-1", "30 mins",
                                                                    "APPOINTMENT")
    assert "staff-1" in svc1["assigned_staffs"] and svc1["let_customer_select_staff"] is True
    assert (svc2["duration"], svc2["buffertime"], svc2["assigned_staffs"]) == (
        "60 mins", "15 mins", ["staff-2"])
    only = value_of(client.bookings("GET", "services",
                                    params={"workspace_id": "ws-1", "staff_id": "staff-3"}))
    assert [s["id"] for s in only["data"]] == ["svc-1"]
    staff = value_of(client.bookings("GET", "staffs", params={"service_id": "svc-2"}))["data"]
    assert [(s["id"], s["email"]) for s in staff] == [("staff-2", "staff2@sandbox.invalid")]
    assert staff[0]["assigned_services"] == ["svc-1", "svc-2"]
    by_mail = value_of(client.bookings("GET", "staffs", params={"staff_email": "STAFF7@"}))
    assert [s["id"] for s in by_mail["data"]] == ["staff-7"]          # "contains" logic
    assert "workspace_id" in refusal(client.bookings("GET", "services"))
    assert "no active service" in refusal(client.bookings(
        "GET", "services", params={"workspace_id": "ws-1", "service_id": "svc-404"}))
    assert "no active staff" in refusal(client.bookings("GET", "staffs",
                                                        params={"staff_id": "nobody"}))


def test_the_catalog_is_configurable_from_python_and_over_http(frozen_sb, client):
    frozen_sb.add_staff("doc-1", "Dr Who", "who@clinic.invalid")
    frozen_sb.add_service("svc-x", "X-ray", 20, staff_ids=["doc-1"], buffer_minutes=10)
    control = f"{frozen_sb.url}/_sandbox/"
    reply = client.http.post(control + "add_staff", json={
        "staff_id": "doc-2", "name": "Dr No", "email": "no@clinic.invalid",
        "service_ids": ["svc-x"], "hours": {"sat": ["10:00", "12:00"]}})
    assert reply.status_code == 200
    assert client.http.post(control + "add_service", json={
        "service_id": "svc-y", "name": "Yoga", "duration_minutes": 45,
        "service_type": "CLASS"}).status_code == 200
    services = value_of(client.bookings("GET", "services", params={"workspace_id": "ws-1"}))
    by_id = {s["id"]: s for s in services["data"]}
    assert by_id["svc-x"]["assigned_staffs"] == ["doc-1", "doc-2"]
    assert (by_id["svc-x"]["duration"], by_id["svc-y"]["service_type"]) == ("20 mins", "CLASS")
    catalog = client.http.post(control + "catalog", json={}).json()
    assert catalog["staff"]["doc-2"]["hours"] == {"sat": ["10:00", "12:00"]}
    bad = client.http.post(control + "add_service", json={
        "service_id": "svc-z", "name": "Z", "duration_minutes": 30, "staff_ids": ["ghost"]})
    assert bad.status_code == 400 and "ghost" in bad.json()["error"]
    assert client.http.post(control + "set_business_hours", json={
        "hours": {"mon": ["18:00", "09:00"]}}).status_code == 400


# -- availability and business hours -------------------------------------------------------------

def slots(client: Client, date: str, service_id="svc-1", staff_id="staff-1") -> list[str]:
    return value_of(client.bookings("GET", "availableslots", params={
        "service_id": service_id, "staff_id": staff_id, "selected_date": date}))["data"]


def test_available_slots_follow_business_hours_bookings_and_buffers(frozen_sb, client):
    reply = value_of(client.bookings("GET", "availableslots", params={
        "service_id": "svc-1", "staff_id": "staff-1", "selected_date": "04-Mar-2031"}))
    assert reply["reponse"] is True                               # Zoho's sample, typo and all
    day = reply["data"]
    assert day[:3] == ["09:00", "09:15", "09:30"] and day[-1] == "17:30" and len(day) == 35
    frozen_sb.book(at(4, 10), staff_id="staff-1")                 # 10:00-10:30 taken
    assert {"09:45", "10:00", "10:15"}.isdisjoint(slots(client, "04-Mar-2031"))
    assert {"09:30", "10:30"} <= set(slots(client, "04-Mar-2031"))
    assert slots(client, "08-Mar-2031") == []                     # a Saturday
    # Today: only slots after now (09:00 UTC) remain.
    assert slots(client, "03-Mar-2031")[0] == "09:15"
    # svc-2 lasts 60 min with 15 min buffer; staff-2 has 12:00-13:00 booked in svc-2.
    frozen_sb.book(at(4, 12), staff_id="staff-2", service_id="svc-2", duration_minutes=60)
    svc2 = slots(client, "04-Mar-2031", "svc-2", "staff-2")
    assert "10:45" in svc2 and "11:00" not in svc2                # 11:00+60+15 runs into 12:00
    assert "13:00" not in svc2 and "13:15" in svc2                # 12:00's buffer ends 13:15
    assert svc2[-1] == "17:00"


def test_hours_are_configurable_per_workspace_and_per_staff_in_the_workspace_zone(clock):
    with Sandbox(clock=clock, workspace_time_zone="America/New_York") as sb:
        c = Client(sb)
        sb.add_workspace("ws-1", "Manhattan", time_zone="America/New_York",
                         time_format="12h", slot_minutes=30,
                         hours={"wed": ["08:00", "10:00"]})
        sb.add_service("svc-1", "Consultation", 30, staff_ids=["staff-1", "staff-2"])
        assert slots(c, "05-Mar-2031") == ["08:00 AM", "08:30 AM", "09:00 AM", "09:30 AM"]
        assert slots(c, "04-Mar-2031") == []                      # Tuesday: closed
        sb.set_business_hours({"wed": ["13:00", "14:00"]}, staff_id="staff-2")
        assert slots(c, "05-Mar-2031", staff_id="staff-2") == ["01:00 PM", "01:30 PM"]
        # 08:00 in New York is 13:00 UTC: a booking there fits, one at 12:30 UTC does not.
        booked = value_of(post(c, "appointment", book_form(
            from_time="05-Mar-2031 13:00:00", time_zone="UTC")))
        assert booked["booking_id"]
        assert "business hours" in refusal(post(c, "appointment", book_form(
            from_time="05-Mar-2031 12:30:00", time_zone="UTC")))
        sb.set_business_hours(None, staff_id="staff-2")            # back to the workspace's
        assert slots(c, "05-Mar-2031", staff_id="staff-2")[0] == "08:00 AM"
        c.http.close()


def test_availableslots_refusals(frozen_sb, client):
    def ask(**params):
        return client.bookings("GET", "availableslots", params=params)

    assert "required" in refusal(ask(service_id="svc-1", staff_id="staff-1"))
    assert "service" in refusal(ask(service_id="svc-404", staff_id="staff-1",
                                    selected_date="04-Mar-2031"))
    assert "not associated" in refusal(ask(service_id="svc-2", staff_id="staff-1",
                                           selected_date="04-Mar-2031"))
    assert "date format" in refusal(ask(service_id="svc-1", staff_id="staff-1",
                                        selected_date="2031-03-04"))


# -- booking ---------------------------------------------------------------------------------------

def test_book_uses_the_service_duration_and_renders_zohos_sample_keys(frozen_sb, client, clock):
    clock.advance(47 * 60 + 3)                                    # booked on 09:47:03 UTC
    value = value_of(post(client, "appointment", book_form(
        service_id="svc-2", staff_id="staff-2", from_time="04-Mar-2031 16:00:00",
        time_zone="Asia/Kolkata", notes="Bring the X-rays",
        additional_fields=json.dumps({"Registration": "AB12 CDE"}))))
    assert SAMPLE_KEYS <= set(value)
    assert value["booking_id"].startswith("#AN-") and value["status"] == "upcoming"
    assert (value["start_time"], value["end_time"]) == ("04-Mar-2031 16:00:00",
                                                        "04-Mar-2031 17:00:00")
    assert value["duration"] == "60 mins" and value["time_zone"] == "Asia/Kolkata"
    assert value["booked_on"] == "2031-03-03 15:17:03"           # yyyy-MM-dd, Kolkata wall time
    assert value["customer_contact_no"] == "+44 20 7946 0000"
    assert value["customer_more_info"] == {"Registration": "AB12 CDE"}
    assert value["notes"] == "Bring the X-rays" and value["booking_type"] == "appointment"
    assert value["workspace_name"] == "Sandbox Workspace" and value["cost"] == "0.00"
    assert frozen_sb.appointment(value["booking_id"])["start"] == at(4, 10, 30)
    for verb, form in (("rescheduleappointment", {"booking_id": value["booking_id"],
                                                  "start_time": "04-Mar-2031 18:00:00"}),
                       ("updateappointment", {"booking_id": value["booking_id"],
                                              "action": "completed"})):
        assert SAMPLE_KEYS <= set(value_of(post(client, verb, form)))
    got = client.appointment(value["booking_id"])
    assert SAMPLE_KEYS <= set(got) and got["status"] == "completed"


@pytest.mark.parametrize("spelling", ["time_zone", "timezone"])
def test_both_time_zone_spellings_set_the_wall_time(frozen_sb, client, spelling):
    value = value_of(post(client, "appointment", book_form(
        from_time="04-Mar-2031 11:30:00", **{spelling: "Europe/Berlin"})))
    assert value["time_zone"] == "Europe/Berlin"
    assert frozen_sb.appointment(value["booking_id"])["start"] == at(4, 10, 30)


def test_without_a_zone_from_time_is_workspace_wall_time(clock):
    with Sandbox(clock=clock, workspace_time_zone="Asia/Kolkata") as sb:
        c = Client(sb)
        value = value_of(post(c, "appointment", book_form(from_time="04-Mar-2031 10:00:00")))
        assert value["time_zone"] == "Asia/Kolkata"
        assert sb.appointment(value["booking_id"])["start"] == at(4, 4, 30)
        c.http.close()


REFUSALS = [
    ("slot taken", {"from_time": "04-Mar-2031 10:15:00"}, "slot not available"),
    ("before opening", {"from_time": "04-Mar-2031 08:45:00"}, "business hours"),
    ("past closing", {"from_time": "04-Mar-2031 17:45:00"}, "business hours"),
    ("weekend", {"from_time": "08-Mar-2031 10:00:00"}, "business hours"),
    ("not assigned", {"service_id": "svc-2"}, "not associated"),
    ("unknown service", {"service_id": "svc-404"}, "service_id"),
    ("unknown staff", {"staff_id": "staff-404"}, "staff_id"),
    ("in the past", {"from_time": "03-Mar-2031 08:00:00"}, "past"),
    ("no email", {"customer_details": customer(email="")}, "invalid email"),
    ("bad email", {"customer_details": customer(email="ada.example")}, "invalid email"),
    ("no phone", {"customer_details": customer(phone_number="")}, "invalid phone_number"),
    ("no name", {"customer_details": customer(name=" ")}, "invalid name"),
    ("bad from_time", {"from_time": "2031-03-04 10:00"}, "dd-mmm-yyyy"),
    ("bad customer_details", {"customer_details": "{name: Ada}"},
     "'customer_details' invalid json format string"),
    ("bad additional_fields", {"additional_fields": "[1"}, "'additional_fields' invalid json"),
    ("bad time_zone", {"time_zone": "Mars/Olympus"}, "time_zone"),
    ("no staff", {"staff_id": None}, "required"),
]


@pytest.mark.parametrize("case, override, text", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_each_refusal_is_http_200_with_a_failure_and_books_nothing(frozen_sb, client, case,
                                                                   override, text):
    _, taken = frozen_sb.book(at(4, 10), staff_id="staff-1")       # 10:00-10:30 UTC
    frozen_sb.reset_counters()
    message = refusal(post(client, "appointment", book_form(**override)))
    assert text in message.lower(), message
    assert list(frozen_sb.world.appointments) == [taken]
    assert len(frozen_sb.world.meetings) == 1                       # no meeting either
    assert frozen_sb.calls["bookings.appointment"] == 1


def test_the_same_slot_with_another_staff_member_and_the_buffer(frozen_sb, client):
    frozen_sb.book(at(4, 10), staff_id="staff-1")
    assert value_of(post(client, "appointment", book_form(staff_id="staff-3")))["booking_id"]
    # svc-2 (60 min + 15 min buffer) at 11:00 blocks staff-2 until 12:15.
    assert value_of(post(client, "appointment", book_form(
        service_id="svc-2", staff_id="staff-2", from_time="04-Mar-2031 11:00:00")))
    assert "slot" in refusal(post(client, "appointment", book_form(
        staff_id="staff-2", from_time="04-Mar-2031 12:00:00"))).lower()
    assert value_of(post(client, "appointment", book_form(
        staff_id="staff-2", from_time="04-Mar-2031 12:15:00")))["booking_id"]


def test_the_phone_requirement_can_be_relaxed(frozen_sb, client):
    frozen_sb.set_bookings_wire(phone_required=False)
    value = value_of(post(client, "appointment", book_form(
        customer_details=customer(phone_number=""))))
    assert value["customer_contact_no"] == ""
    assert "phone" in refusal(post(client, "appointment", book_form(
        from_time="04-Mar-2031 11:00:00", customer_details=customer(phone_number="12"))))


# -- both encodings, every POST verb ---------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_every_post_verb_reads_both_form_encodings(frozen_sb, client, encoding):
    booking_id = value_of(post(client, "appointment", book_form(), encoding))["booking_id"]
    [listed] = fetch(client, encoding, wrapped=False, customer_email="ada@")["response"]
    assert listed["booking_id"] == booking_id
    moved = value_of(post(client, "rescheduleappointment", {
        "booking_id": booking_id, "start_time": "05-Mar-2031 11:00:00"}, encoding))
    assert moved["start_time"] == "05-Mar-2031 11:00:00"
    value_of(post(client, "updateappointment", {"booking_id": booking_id, "action": "cancel"},
                  encoding))
    [cancelled] = fetch(client, encoding, status="CANCEL")["response"]
    assert cancelled["status"] == "cancel" and cancelled["start_time"] == "05-Mar-2031 11:00:00"
    posts = [e for e in frozen_sb.request_log if e["endpoint"].startswith("bookings.")]
    assert len(posts) == 5 and all(e["form"] for e in posts)       # each body read as a form
    assert [frozen_sb.calls[f"bookings.{v}"] for v in (
        "appointment", "fetchappointment", "rescheduleappointment", "updateappointment")] == [
        1, 2, 1, 1]


# -- fetchappointment ------------------------------------------------------------------------------

def test_fetch_filters_page_and_say_no_match(frozen_sb, client):
    people = [("Ann Smith", "ann@x.invalid", "+100000001"), ("Bob Smith", "bob@y.invalid",
                                                             "+100000002"),
              ("Cy Jones", "cy@x.invalid", "+100000003")]
    ids = []
    for n, (name, email, phone) in enumerate(people):
        _, booking_id = frozen_sb.book(at(4, 10 + n), staff_id=f"staff-{n}", customer={
            "name": name, "email": email, "phone_number": phone})
        ids.append(booking_id)
    frozen_sb.bookings_cancel(ids[2])
    frozen_sb.book(at(20, 10))                                    # outside the range below

    def found(**filters):
        listed = fetch(client, to_time="10-Mar-2031 00:00:00", **filters)["response"]
        return listed if isinstance(listed, str) else [a["booking_id"] for a in listed]

    assert found() == ids                                        # start-time order
    assert found(customer_name="SMITH") == ids[:2]               # contains, any case
    assert found(customer_email="@x.inv") == [ids[0], ids[2]]
    assert found(customer_phone_number="0002") == [ids[1]]
    assert found(status="UPCOMING") == ids[:2] and found(status="CANCEL") == [ids[2]]
    assert found(staff_id="staff-1") == [ids[1]] and found(service_id="svc-2") == "No Match Found"
    assert found(status="ONGOING") == "No Match Found"
    first = fetch(client, to_time="10-Mar-2031 00:00:00", per_page=2)
    assert [a["booking_id"] for a in first["response"]] == ids[:2]
    assert first["next_page_available"] is True and first["page"] == 1
    second = fetch(client, to_time="10-Mar-2031 00:00:00", per_page=2, page=2)
    assert [a["booking_id"] for a in second["response"]] == [ids[2]]
    assert second["next_page_available"] is False
    # A live-tested client found no match without a range; the sandbox does the same.
    assert fetch(client, wrapped=True, from_time="", to_time="")["response"] == "No Match Found"
    assert "status" in refusal(post(client, "fetchappointment",
                                    {"data": json.dumps({"status": "LATE"})}))
    assert "page" in refusal(post(client, "fetchappointment",
                                  {"data": json.dumps({"page": 0})}))


def test_fetch_range_is_workspace_wall_time_and_per_page_is_capped(clock):
    with Sandbox(clock=clock, workspace_time_zone="Asia/Kolkata") as sb:
        c = Client(sb)
        ids = [sb.book(at(4, 3) + dt.timedelta(minutes=30 * n), staff_id=f"staff-{n % 8}")[1]
               for n in range(130)]
        # 04-Mar 09:00-09:30 Kolkata is 03:30-04:00 UTC: the 2nd and 3rd bookings.
        listed = fetch(c, from_time="04-Mar-2031 09:00:00", to_time="04-Mar-2031 09:30:00")
        assert [a["booking_id"] for a in listed["response"]] == ids[1:3]
        page = fetch(c, from_time="01-Mar-2031 00:00:00", per_page=500)
        assert (len(page["response"]), page["per_page"]) == (100, 100)
        more = fetch(c, from_time="01-Mar-2031 00:00:00", per_page=500,
                     need_customer_more_info="true")
        assert (len(more["response"]), more["next_page_available"]) == (60, True)
        assert len(fetch(c)["response"]) == 50                        # the default page
        c.http.close()


def test_fetch_data_field_and_list_key_switches(frozen_sb, client):
    _, booking_id = frozen_sb.book(at(4, 10))
    assert fetch(client, wrapped=False)["response"][0]["booking_id"] == booking_id
    frozen_sb.set_bookings_wire(fetch_needs_data_field=True)
    message = refusal(post(client, "fetchappointment", {"from_time": "01-Mar-2031 00:00:00",
                                                        "to_time": "31-Mar-2031 00:00:00"}))
    assert message == "EXECUTION ERROR :: Error setting value for the variable:'data' null"
    assert "Invalid JSON" in refusal(post(client, "fetchappointment", {"data": "{from_time"}))
    frozen_sb.set_bookings_wire(fetch_list_key="data")
    value = fetch(client)
    assert "response" not in value and value["data"][0]["booking_id"] == booking_id
    with pytest.raises(ValueError):
        frozen_sb.set_bookings_wire(fetch_list_key="items")


def test_customer_more_info_only_when_asked(frozen_sb, client):
    value_of(post(client, "appointment", book_form(additional_fields=json.dumps({"k": "v"}))))
    assert fetch(client)["response"][0]["customer_more_info"] == {}
    asked = fetch(client, need_customer_more_info="true")["response"][0]
    assert asked["customer_more_info"] == {"k": "v"}


# -- the integration's meeting -----------------------------------------------------------------

def test_api_bookings_get_a_meeting_by_default_and_not_when_switched_off(frozen_sb, client):
    value = value_of(post(client, "appointment", book_form(notes="first visit")))
    meeting = frozen_sb.meeting(frozen_sb.meeting_for_booking(value["booking_id"]))
    assert meeting["BookingId"] == value["booking_id"]
    assert meeting["Event_Title"] == "Consultation (svc-1) with Ada Lovelace"
    assert (meeting["Start_DateTime"], meeting["End_DateTime"]) == (at(4, 10), at(4, 10, 30))
    assert meeting["Description"] == "first visit" and meeting["Who_Id"] is None
    control = client.http.post(f"{frozen_sb.url}/_sandbox/set_integration",
                               json={"meetings_for_api_bookings": False})
    assert control.status_code == 200
    frozen_sb.reset_counters()
    second = value_of(post(client, "appointment", book_form(staff_id="staff-2")))
    assert frozen_sb.meeting_for_booking(second["booking_id"]) is None
    records = client.list().json()["data"]
    assert [r["BookingId"] for r in records] == [value["booking_id"]]
    assert frozen_sb.calls == {"bookings.appointment": 1, "crm.list": 1}
    _, ui_booking = frozen_sb.book(at(5, 10))                      # made in Bookings itself
    assert frozen_sb.meeting_for_booking(ui_booking) is not None


def test_a_delayed_integration_meeting_appears_when_due(clock):
    with Sandbox(clock=clock, crm_time_zone="Europe/Berlin",
                 integration_delay_seconds=90) as sb:
        c = Client(sb)
        first = value_of(post(c, "appointment", book_form()))["booking_id"]
        second = value_of(post(c, "appointment", book_form(staff_id="staff-2")))["booking_id"]
        value_of(post(c, "updateappointment", {"booking_id": second, "action": "cancel"}))
        assert sb.meeting_for_booking(first) is None
        clock.advance(89)
        assert c.list().status_code == 204                         # nothing in CRM yet
        clock.advance(1)
        records = c.list(since="2031-03-03T10:01:29+01:00",
                         fields="BookingId,Created_Time,Meeting_Status").json()["data"]
        by_booking = {r["BookingId"]: r for r in records}
        assert sorted(by_booking) == [first, second]
        assert {r["Created_Time"] for r in records} == {"2031-03-03T10:01:30+01:00"}
        assert by_booking[first]["Meeting_Status"] == "Scheduled"
        assert by_booking[second]["Meeting_Status"] == "Cancelled"
        assert sb.meeting(sb.meeting_for_booking(second))["$event_cancelled"] is True
        assert sb.calls["crm.list"] == 2
        c.http.close()


# -- the per-day call limit ----------------------------------------------------------------------

def test_the_daily_limit_counts_per_day_in_the_workspace_zone(clock):
    clock.set(dt.datetime(2031, 3, 3, 18, 0, tzinfo=dt.timezone.utc))   # 23:30 in Kolkata
    with Sandbox(clock=clock, workspace_time_zone="Asia/Kolkata", bookings_daily_limit=2) as sb:
        c = Client(sb)                                              # a token: not counted
        assert sb.bookings_budget() == {"day": "2031-03-03", "used": 0, "limit": 2, "left": 2,
                                        "time_zone": "Asia/Kolkata"}
        assert c.bookings("GET", "workspaces", auth="Zoho-oauthtoken nope").status_code == 401
        for _ in range(2):
            value_of(c.bookings("GET", "workspaces"))
        assert c.bookings("GET", "workspaces").json() == LIMIT_REPLY
        assert c.bookings("POST", "appointment", data=book_form()).json() == LIMIT_REPLY
        budget = c.http.post(f"{sb.url}/_sandbox/bookings_budget", json={}).json()
        assert (budget["used"], budget["left"]) == (2, 0)           # refusals are not counted
        # Four requests reached the sandbox (one with a bad token); two were counted.
        assert sb.calls["bookings.workspaces"] == 4 and sb.calls["accounts.token"] == 1
        clock.advance(30 * 60)               # 00:00 in Kolkata; still 2031-03-03 in UTC
        value_of(c.bookings("GET", "workspaces"))
        assert sb.bookings_budget()["day"] == "2031-03-04" and sb.bookings_budget()["used"] == 1
        c.http.close()


def test_calls_are_counted_without_a_limit_too(frozen_sb, client, clock):
    for verb, params in (("workspaces", {}), ("staffs", {}), ("getappointment",
                                                              {"booking_id": "#AN-404"})):
        client.bookings("GET", verb, params=params)
    assert frozen_sb.bookings_budget()["used"] == 3 and frozen_sb.bookings_budget()["limit"] is None
    clock.advance(24 * 3600)
    assert frozen_sb.bookings_budget() == {"day": "2031-03-04", "used": 0, "limit": None,
                                           "left": None, "time_zone": "UTC"}

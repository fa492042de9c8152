"""The sandbox's CRM beyond Meetings, as a second real client (Airbyte's connector) needs it and
as booking-from-CRM will: module, org and user metadata, Contacts and Leads, a meeting's
``Who_Id`` / ``What_Id``, custom Meetings fields, realistic field lengths, Zoho's page-11
message, ``If-Modified-Since`` strict or inclusive, and an endpoint name per call.

Over HTTP with ``requests``; replies Zoho's OpenAPI covers (records, fields, errors) are validated
with ``tests/zoho_oas.py``. Facts and sources: docs/zoho-crm-and-accounts.md.
"""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from bookings_sync.sandbox import Sandbox
from e2e import FROZEN_NOW
from zoho_oas import ZohoOAS, default_dir, missing_reason

NOW = FROZEN_NOW                 # Europe/Berlin is +01:00 then
EXTRA = {"Book_In_Bookings": "boolean", "Bookings_Service": "text"}
PERSON_FIELDS = "First_Name,Last_Name,Full_Name,Email,Phone,Modified_Time"


@pytest.fixture(scope="module")
def oas() -> ZohoOAS:
    reason = missing_reason(default_dir())
    if reason:
        pytest.skip(reason)
    return ZohoOAS(default_dir())


@pytest.fixture
def sb(clock):
    with Sandbox(crm_time_zone="Europe/Berlin", clock=clock, extra_event_fields=EXTRA) as sb:
        yield sb


class Crm:
    def __init__(self, sb: Sandbox):
        self.sb = sb
        self.http = requests.Session()
        self.http.trust_env = False
        reply = self.http.post(f"{sb.url}/oauth/v2/token", timeout=10,
                               params={"grant_type": "refresh_token", **sb.credentials})
        self.token = reply.json()["access_token"]

    def get(self, path: str, *, since: str | None = None, **params) -> requests.Response:
        headers = {"Authorization": f"Zoho-oauthtoken {self.token}"}
        if since:
            headers["If-Modified-Since"] = since
        return self.http.get(f"{self.sb.url}/crm/{path}", params=params, headers=headers,
                             timeout=10)

    def delete(self, path: str, **params) -> requests.Response:
        return self.http.delete(f"{self.sb.url}/crm/{path}", params=params, timeout=10,
                                headers={"Authorization": f"Zoho-oauthtoken {self.token}"})


@pytest.fixture
def crm(sb):
    client = Crm(sb)
    yield client
    client.http.close()


def ok(reply: requests.Response) -> dict:
    assert reply.status_code == 200, (reply.status_code, reply.text[:400])
    return reply.json()


def people(sb) -> tuple[str, str]:
    contact = sb.crm_create_contact(First_Name="Ada", Last_Name="Lovelace",
                                    Email="ada@example.invalid", Phone="+44 20 7946 0000")
    lead = sb.crm_create_lead(First_Name="Grace", Last_Name="Hopper", Company="Navy",
                              Email="grace@example.invalid", Phone="+1 202 555 0100")
    return contact, lead


# -- module, org and user metadata -------------------------------------------------------------

@pytest.mark.parametrize("version", [2, 8])
def test_settings_modules_lists_the_modules_a_client_builds_its_catalog_from(crm, version):
    body = ok(crm.get(f"v{version}/settings/modules"))
    by_name = {m["api_name"]: m for m in body["modules"]}
    for name in ("Events", "Contacts", "Leads"):
        assert by_name[name]["api_supported"] is True and by_name[name]["module_name"] == name
    assert by_name["Events"]["plural_label"] == "Meetings"
    assert by_name["Home"]["api_supported"] is False          # a client must filter
    for module in body["modules"]:
        assert isinstance(module["id"], str) and isinstance(module["profiles"], list)


def test_one_module_in_detail_and_an_unknown_one(oas, crm):
    [events] = ok(crm.get("v2/settings/modules/Events"))["modules"]
    assert (events["api_name"], events["singular_label"], events["api_supported"]) == (
        "Events", "Meeting", True)
    assert "per_page" in events and "search_layout_fields" in events
    reply = crm.get("v2/settings/modules/Meetingz")
    assert reply.status_code == 400
    oas.check("error", reply.json())
    assert reply.json()["code"] == "INVALID_MODULE"
    assert reply.json()["details"] == {"resource_path_index": 2}


def test_org_names_its_edition_and_time_zone(crm):
    [org] = ok(crm.get("v2/org"))["org"]
    assert org["license_details"]["paid_type"] == "enterprise"
    assert org["license_details"]["paid"] is True
    assert org["time_zone"] == "Europe/Berlin" and isinstance(org["id"], str)


@pytest.mark.parametrize("kind", ["AllUsers", "ActiveUsers", "AdminUsers", "CurrentUser", None])
def test_users_of_every_documented_type_with_our_one_admin(crm, kind):
    params = {"type": kind} if kind else {}
    body = ok(crm.get("v8/users", **params))
    [user] = body["users"]
    assert user["status"] == "active" and user["confirm"] is True
    assert user["profile"]["name"] == "Administrator" and user["id"].isdigit()
    assert body["info"] == {"per_page": 200, "count": 1, "page": 1, "more_records": False}


def test_users_types_without_our_user_are_204_and_an_unknown_type_is_refused(oas, crm):
    for kind in ("DeactiveUsers", "NotConfirmedUsers", "DeletedUsers"):
        reply = crm.get("v8/users", type=kind)
        assert (reply.status_code, reply.content) == (204, b"")
    reply = crm.get("v8/users", type="Everyone")
    assert reply.status_code == 400
    oas.check("error", reply.json())
    assert reply.json()["details"] == {"param_name": "type"}


# -- Contacts and Leads ------------------------------------------------------------------------

@pytest.mark.parametrize("module", ["Contacts", "Leads"])
def test_contacts_and_leads_list_and_get_like_events(oas, sb, crm, clock, module):
    assert crm.get(f"v8/{module}", fields=PERSON_FIELDS).status_code == 204
    contact, lead = people(sb)
    record_id = contact if module == "Contacts" else lead
    body = ok(crm.get(f"v8/{module}", fields=PERSON_FIELDS))
    oas.check("records", body)
    [record] = body["data"]
    assert set(record) == {"id", *PERSON_FIELDS.split(",")}
    assert record["id"] == record_id and record["Modified_Time"] == "2031-03-03T10:00:00+01:00"
    one = ok(crm.get(f"v8/{module}/{record_id}"))
    oas.check("record", one)
    expected_name = "Ada Lovelace" if module == "Contacts" else "Grace Hopper"
    assert one["data"][0]["Full_Name"] == expected_name
    if module == "Leads":
        assert one["data"][0]["Company"] == "Navy"
    assert crm.get(f"v8/{module}/4876876000999999999").json()["code"] == "INVALID_DATA"
    # fields stays mandatory from v3, as for Events.
    assert crm.get(f"v8/{module}").json()["code"] == "REQUIRED_PARAM_MISSING"


def test_contacts_sort_page_and_filter_by_modified_time(sb, crm, clock):
    ids = []
    for i in range(5):
        ids.append(sb.crm_create_contact(Last_Name=f"Person {i}"))
        clock.advance(10)
    first = ok(crm.get("v8/Contacts", fields="Last_Name", sort_by="Modified_Time",
                       sort_order="asc", per_page=2))
    assert [r["id"] for r in first["data"]] == ids[:2] and first["info"]["more_records"] is True
    rest = ok(crm.get("v8/Contacts", fields="Last_Name", sort_by="Modified_Time",
                      sort_order="asc", per_page=2, page_token=first["info"]["next_page_token"]))
    assert [r["id"] for r in rest["data"]] == ids[2:4]
    since = (NOW + dt.timedelta(seconds=25)).isoformat()
    newer = ok(crm.get("v8/Contacts", fields="Last_Name", since=since))
    assert sorted(r["id"] for r in newer["data"]) == sorted(ids[3:])


def test_deleting_a_contact_lists_it_as_deleted(oas, sb, crm):
    contact, _ = people(sb)
    assert ok(crm.delete("v8/Contacts", ids=contact))["data"][0]["status"] == "success"
    body = ok(crm.get("v8/Contacts/deleted", type="all"))
    oas.check("deleted", body)
    assert [d["id"] for d in body["data"]] == [contact]
    assert body["data"][0]["display_name"] == "Ada Lovelace"
    assert crm.get("v8/Leads/deleted").status_code == 204
    assert crm.get("v8/Events/deleted").status_code == 204


def test_a_meeting_made_in_crm_names_its_contact_and_lead(oas, sb, crm):
    contact, lead = people(sb)
    meeting = sb.crm_create_meeting(Start_DateTime=NOW + dt.timedelta(days=1),
                                    Event_Title="Intro", Who_Id=contact, What_Id=lead,
                                    **{"$se_module": "Leads"}, Book_In_Bookings=True,
                                    Bookings_Service="svc-7")
    body = ok(crm.get(f"v8/Events/{meeting}"))
    oas.check("record", body)
    [record] = body["data"]
    assert record["Who_Id"] == {"name": "Ada Lovelace", "id": contact}
    assert record["What_Id"] == {"name": "Grace Hopper", "id": lead}
    assert record["$se_module"] == "Leads"
    assert record["End_DateTime"] == "2031-03-04T10:30:00+01:00"       # 30 minutes by default
    assert (record["Book_In_Bookings"], record["Bookings_Service"]) == (True, "svc-7")
    assert record["BookingId"] is None                                   # nothing booked yet
    # What booking from CRM reads next: the contact behind Who_Id.
    [person] = ok(crm.get(f"v8/Contacts/{record['Who_Id']['id']}",
                          fields="Full_Name,First_Name,Last_Name,Email,Phone"))["data"]
    assert (person["Email"], person["Phone"]) == ("ada@example.invalid", "+44 20 7946 0000")


def test_meetings_made_otherwise_have_the_custom_fields_unset(sb, crm):
    meeting, _ = sb.book(NOW + dt.timedelta(days=2))
    [record] = ok(crm.get("v8/Events", fields="Book_In_Bookings,Bookings_Service"))["data"]
    assert record == {"id": meeting, "Book_In_Bookings": False, "Bookings_Service": None}


def test_bad_crm_records_are_refused_with_a_reason(sb):
    contact, lead = people(sb)
    start = NOW + dt.timedelta(days=1)
    with pytest.raises(ValueError, match="no Contacts record"):
        sb.crm_create_meeting(Start_DateTime=start, Who_Id=lead)      # Who_Id is a contact
    with pytest.raises(ValueError, match=r"\$se_module"):
        sb.crm_create_meeting(Start_DateTime=start, What_Id=lead)
    with pytest.raises(ValueError, match="Start_DateTime"):
        sb.crm_create_meeting(Who_Id=contact)
    with pytest.raises(ValueError, match="aware"):
        sb.crm_create_meeting(Start_DateTime=dt.datetime(2031, 3, 4, 9))
    with pytest.raises(ValueError, match="Last_Name"):
        sb.crm_create_contact(First_Name="Only")
    with pytest.raises(ValueError, match="unknown data_type"):
        Sandbox(extra_event_fields={"X": "checkbox"})


def test_control_verbs_create_contacts_leads_and_meetings(sb, crm):
    def control(verb, **body):
        reply = crm.http.post(f"{sb.url}/_sandbox/{verb}", json=body, timeout=10)
        return reply.status_code, reply.json()

    status, contact = control("crm_create_contact", fields={"Last_Name": "Curie",
                                                            "Email": "marie@example.invalid"})
    assert status == 200
    status, lead = control("crm_create_lead", fields={"Last_Name": "Noether"})
    assert status == 200
    status, meeting = control("crm_create_meeting", fields={
        "Start_DateTime": "2031-03-05T10:00:00+01:00", "Who_Id": contact["id"],
        "What_Id": lead["id"], "$se_module": "Leads", "Book_In_Bookings": True})
    assert status == 200
    status, record = control("crm_record", module="Events", id=meeting["id"])
    assert record["Who_Id"] == {"name": "Curie", "id": contact["id"]}
    assert record["Start_DateTime"] == "2031-03-05T09:00:00+00:00"
    assert control("crm_create_meeting", fields={"Start_DateTime": "2031-03-05T10:00:00"})[0] \
        == 400


def test_a_scope_refusal_conforms_to_zohos_error_shape(oas, sb, crm):
    refresh = sb.credentials_with("ZohoCRM.modules.events.READ")["refresh_token"]
    token = crm.http.post(f"{sb.url}/oauth/v2/token", timeout=10, params={
        "grant_type": "refresh_token", **sb.credentials, "refresh_token": refresh}).json()
    crm.token = token["access_token"]
    reply = crm.get("v8/Contacts", fields="id")
    assert reply.status_code == 401
    oas.check("error", reply.json())
    assert reply.json()["code"] == "OAUTH_SCOPE_MISMATCH"


# -- field metadata ------------------------------------------------------------------------------

@pytest.mark.parametrize("module", ["Events", "Contacts", "Leads"])
def test_field_metadata_conforms_and_has_realistic_lengths(oas, crm, module):
    body = ok(crm.get("v8/settings/fields", module=module))
    oas.check("fields", body)
    by_name = {f["api_name"]: f for f in body["fields"]}
    assert all(f["length"] > 0 for f in body["fields"]), [
        f["api_name"] for f in body["fields"] if not f["length"]]
    expected = {"Modified_Time": 120, "Created_Time": 120, "Owner": 120}
    if module == "Events":
        expected |= {"Event_Title": 255, "Start_DateTime": 120, "All_day": 5, "Who_Id": 120}
    else:
        expected |= {"First_Name": 40, "Last_Name": 80, "Full_Name": 80, "Email": 100,
                     "Phone": 50}
    assert {name: by_name[name]["length"] for name in expected} == expected
    assert len({f["id"] for f in body["fields"]}) == len(body["fields"])


def test_events_field_metadata_lists_the_orgs_custom_fields(crm):
    by_name = {f["api_name"]: f for f in ok(crm.get("v2/settings/fields", module="Events"))["fields"]}
    checkbox, text = by_name["Book_In_Bookings"], by_name["Bookings_Service"]
    assert (checkbox["data_type"], checkbox["json_type"], checkbox["custom_field"]) == (
        "boolean", "boolean", True)
    assert (text["data_type"], text["json_type"], text["length"]) == ("text", "string", 255)
    assert by_name["Meeting_Status"]["pick_list_values"][1]["actual_value"] == "Cancelled"
    contacts = {f["api_name"] for f in ok(crm.get("v2/settings/fields", module="Contacts"))["fields"]}
    assert "Book_In_Bookings" not in contacts and "Email" in contacts


# -- paging message, If-Modified-Since, endpoint names ----------------------------------------

def test_page_eleven_without_page_token_has_zohos_message(oas, crm):
    reply = crm.get("v8/Events", fields="id", page=11, per_page=200)
    assert reply.status_code == 400
    oas.check("error", reply.json())
    assert reply.json()["message"] == \
        "You can only get the first 2000 records without using page_token param"


def _stamps(sb, clock):
    """Meeting ``a`` modified at NOW, ``b`` 10 s later; contact ``c`` at NOW + 10 s; meeting
    ``d`` deleted at NOW + 10 s."""
    a, _ = sb.book(NOW + dt.timedelta(days=2))
    d, _ = sb.book(NOW + dt.timedelta(days=3))
    clock.advance(10)
    b, _ = sb.book(NOW + dt.timedelta(days=4))
    c = sb.crm_create_contact(Last_Name="Stamp")
    sb.crm_delete(d)
    return a, b, c, d


@pytest.mark.parametrize("mode", ["strict", "inclusive"])
def test_if_modified_since_strict_or_inclusive_everywhere(sb, crm, clock, mode):
    a, b, c, d = _stamps(sb, clock)
    sb.set_if_modified_since(mode)
    at_b = (NOW + dt.timedelta(seconds=10)).isoformat()      # exactly b's, c's and d's stamp
    inclusive = mode == "inclusive"
    for order in ("asc", "desc"):                             # both filter paths
        reply = crm.get("v8/Events", fields="id", since=at_b, sort_by="Modified_Time",
                        sort_order=order)
        ids = [r["id"] for r in reply.json()["data"]] if reply.status_code == 200 else []
        assert ids == ([b] if inclusive else []), (order, ids)
    contacts = crm.get("v8/Contacts", fields="id", since=at_b)
    assert (contacts.status_code == 200) is inclusive
    deleted = crm.get("v8/Events/deleted", since=at_b)
    assert (deleted.status_code == 200) is inclusive
    # One second earlier, both modes see them.
    earlier = (NOW + dt.timedelta(seconds=9)).isoformat()
    assert [r["id"] for r in crm.get("v8/Events", fields="id", since=earlier).json()["data"]] \
        == [b]
    assert a and c and d


def test_if_modified_since_mode_is_switched_by_its_control_verb(sb, crm, clock):
    _, b, _, _ = _stamps(sb, clock)
    at_b = (NOW + dt.timedelta(seconds=10)).isoformat()
    assert crm.get("v8/Events", fields="id", since=at_b).status_code == 204     # default strict
    reply = crm.http.post(f"{sb.url}/_sandbox/set_if_modified_since", json={"mode": "inclusive"},
                          timeout=10)
    assert reply.status_code == 200
    assert [r["id"] for r in crm.get("v8/Events", fields="id", since=at_b).json()["data"]] == [b]
    bad = crm.http.post(f"{sb.url}/_sandbox/set_if_modified_since", json={"mode": "loose"},
                        timeout=10)
    assert bad.status_code == 400 and "strict | inclusive" in bad.json()["error"]
    with pytest.raises(ValueError):
        Sandbox(if_modified_since="sometimes")


def test_every_call_has_its_own_endpoint_name(sb, crm):
    contact, lead = people(sb)
    meeting, _ = sb.book(NOW + dt.timedelta(days=2))
    calls = [("v8/Events", {"fields": "id"}), (f"v8/Events/{meeting}", {}),
             ("v8/Events/deleted", {}), ("v8/settings/fields", {"module": "Events"}),
             ("v2/settings/modules", {}), ("v2/settings/modules/Events", {}), ("v2/org", {}),
             ("v2/users", {}), ("v8/Contacts", {"fields": "id"}), (f"v8/Contacts/{contact}", {}),
             ("v8/Leads", {"fields": "id"}), (f"v8/Leads/{lead}", {}), ("v8/Leads/deleted", {}),
             ("v8/Meetingz", {"fields": "id"})]
    sb.reset_counters()
    for path, params in calls:
        crm.get(path, **params)
    assert [e["endpoint"] for e in sb.request_log] == [
        "crm.list", "crm.get", "crm.deleted", "crm.fields", "crm.modules", "crm.module",
        "crm.org", "crm.users", "crm.contacts.list", "crm.contacts.get", "crm.leads.list",
        "crm.leads.get", "crm.leads.deleted", "crm.other"]

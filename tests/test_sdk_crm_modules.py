"""Zoho's official CRM SDK reads the sandbox's newer CRM surface: Contacts and Leads typed by
their field metadata, a meeting's ``Who_Id`` / ``What_Id`` lookups and custom fields, and a
scope refusal parsed as Zoho's ``OAUTH_SCOPE_MISMATCH``.

Same harness as ``test_sdk_fidelity.py`` (the SDK runs in a child process driven line by line);
see that module for how the SDK is pointed at the sandbox.
"""

from __future__ import annotations

import datetime as dt

import pytest

from bookings_sync.sandbox import Sandbox
from e2e import FROZEN_NOW
from test_sdk_fidelity import SDK, _api_exception, _instant, _value

NOW = FROZEN_NOW


@pytest.fixture
def sb(clock):
    with Sandbox(crm_time_zone="Europe/Berlin", clock=clock,
                 extra_event_fields={"Book_In_Bookings": "boolean"}) as sb:
        yield sb


def start_sdk(sb, tmp_path, credentials) -> SDK:
    driver = SDK(tmp_path / "sdk")
    reply = driver("init", url=sb.url, dir=str(tmp_path / "sdk"), **credentials)
    assert "raised" not in reply, reply
    return driver


@pytest.fixture
def sdk(sb, tmp_path):
    driver = start_sdk(sb, tmp_path, sb.credentials)
    yield driver
    driver.close()


@pytest.mark.parametrize("module", ["Contacts", "Leads"])
def test_contacts_and_leads_are_parsed_into_typed_records(sb, sdk, module):
    create = sb.crm_create_contact if module == "Contacts" else sb.crm_create_lead
    record_id = create(First_Name="Ada", Last_Name="Lovelace", Email="ada@example.invalid")
    reply = sdk("get_records", module=module, fields=["Full_Name", "Email", "Modified_Time"])
    assert reply.get("status_code") == 200, reply
    [record] = reply["object"]["data"]
    values = record["key_values"]
    assert str(_value(values["id"])) == record_id
    assert values["Full_Name"] == "Ada Lovelace" and values["Email"] == "ada@example.invalid"
    assert _instant(values["Modified_Time"]) == NOW
    assert sb.calls[f"crm.{module.lower()}.list"] == 1 and sb.calls["crm.fields"] == 1


def test_a_meetings_lookups_and_custom_checkbox_are_parsed(sb, sdk):
    contact = sb.crm_create_contact(Last_Name="Lovelace", First_Name="Ada")
    lead = sb.crm_create_lead(Last_Name="Hopper")
    meeting = sb.crm_create_meeting(Start_DateTime=NOW + dt.timedelta(days=1), Who_Id=contact,
                                    What_Id=lead, **{"$se_module": "Leads"},
                                    Book_In_Bookings=True)
    reply = sdk("get_records", fields=["Who_Id", "What_Id", "Book_In_Bookings",
                                       "Start_DateTime"])
    assert reply.get("status_code") == 200, reply
    [record] = reply["object"]["data"]
    values = record["key_values"]
    assert str(_value(values["id"])) == meeting
    who = values["Who_Id"]["key_values"]                      # a lookup becomes a Record
    assert (str(_value(who["id"])), who["name"]) == (contact, "Ada Lovelace")
    assert str(_value(values["What_Id"]["key_values"]["id"])) == lead
    assert values["Book_In_Bookings"] is True
    assert _instant(values["Start_DateTime"]) == NOW + dt.timedelta(days=1)


def test_a_scope_refusal_is_parsed_as_zohos_api_exception(sb, tmp_path):
    credentials = sb.credentials_with("ZohoCRM.modules.events.READ,ZohoCRM.settings.fields.READ")
    driver = start_sdk(sb, tmp_path, credentials)
    try:
        assert driver("get_records", fields=["Event_Title"]).get("status_code") == 204
        reply = driver("get_records", module="Contacts", fields=["Email"])
    finally:
        driver.close()
    assert reply.get("status_code") == 401, reply
    assert _api_exception(reply) == {"code": "OAUTH_SCOPE_MISMATCH", "status": "error",
                                     "message": "invalid oauth scope to access this URL",
                                     "details": {}}

"""The sandbox's CRM replies validated against Zoho's published OpenAPI v8 files.

The files are ``shared/zoho-crm-oas/`` beside the repository checkout (``$ZOHO_CRM_OAS_DIR``
overrides); without them every test here is skipped with the reason. How the OpenAPI 3.0 files
become strict Draft 2020-12 validators — cross-file ``$ref``s, ``nullable``, asserted formats, the
``oneOf`` branch each reply must take, and the few documented gaps patched — is in
``tests/zoho_oas.py``. The last tests prove the validator can fail: it rejects a reply without
``status``, an ``info.more_records`` that is a string, a datetime without offset …

Each test talks to the sandbox over HTTP as any client would (``requests``, token from
``POST /oauth/v2/token`` with the parameters in the query string, as Zoho's docs show).
"""

from __future__ import annotations

import copy
import datetime as dt

import pytest
import requests

from bookings_sync.sandbox import Sandbox
from e2e import FROZEN_NOW
from zoho_oas import ENV_VAR, ZohoOAS, default_dir, missing_reason

UTC = dt.timezone.utc
NOW = FROZEN_NOW          # Europe/Berlin is +01:00 then
FIELDS = ("Event_Title,Start_DateTime,End_DateTime,Modified_Time,Owner,BookingId,Participants,"
          "What_Id")


@pytest.fixture(scope="module")
def oas() -> ZohoOAS:
    folder = default_dir()
    reason = missing_reason(folder)
    if reason:
        print(reason)
        pytest.skip(reason)
    return ZohoOAS(folder)


@pytest.fixture
def sb(frozen_sb):
    return frozen_sb


class Crm:
    """A bare HTTP client of the sandbox's CRM, authenticated like any Zoho client."""

    def __init__(self, sb: Sandbox):
        self.sb = sb
        self.http = requests.Session()
        self.http.trust_env = False                       # never a proxy for 127.0.0.1
        reply = self.http.post(f"{sb.url}/oauth/v2/token", timeout=10,
                               params={"grant_type": "refresh_token", **sb.credentials})
        token = reply.json()
        assert reply.status_code == 200 and token.get("api_domain") == sb.url, token
        self.token = token["access_token"]

    def __call__(self, method: str, path: str, *, auth: str | None = "token",
                 **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if auth == "token":
            headers["Authorization"] = f"Zoho-oauthtoken {self.token}"
        elif auth is not None:
            headers["Authorization"] = auth
        return self.http.request(method, f"{self.sb.url}{path}", headers=headers, timeout=10,
                                 **kwargs)


@pytest.fixture
def crm(sb):
    client = Crm(sb)
    yield client
    client.http.close()


def body_of(response: requests.Response, status: int):
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers.get("Content-Type", "").startswith("application/json"), \
        response.headers
    return response.json()


def book(sb, count: int) -> list[str]:
    zones = ["Asia/Kolkata", "America/New_York", "Europe/Berlin"]
    return [sb.book(start=NOW + dt.timedelta(days=2 + i, hours=i), time_zone=zones[i % 3])[0]
            for i in range(count)]


# -- records -------------------------------------------------------------------------------------

def test_events_list_pages_conform(oas, sb, crm):
    book(sb, 3)
    since = {"If-Modified-Since": (NOW - dt.timedelta(hours=1)).isoformat()}
    first = body_of(crm("GET", "/crm/v8/Events", headers=since, params={
        "fields": FIELDS, "sort_by": "Modified_Time", "sort_order": "asc", "per_page": 2}), 200)
    oas.check("records", first)
    assert first["info"]["more_records"] is True and first["info"]["next_page_token"]
    # Datetimes in the CRM user's zone (Europe/Berlin, +01:00 in March), as Zoho renders them.
    assert all(r["Start_DateTime"].endswith("+01:00") for r in first["data"])

    second = body_of(crm("GET", "/crm/v8/Events", headers=since, params={
        "fields": FIELDS, "sort_by": "Modified_Time", "sort_order": "asc", "per_page": 2,
        "page_token": first["info"]["next_page_token"]}), 200)
    oas.check("records", second)
    assert second["info"]["more_records"] is False and len(second["data"]) == 1


def test_single_record_reply_conforms(oas, sb, crm):
    [meeting_id] = book(sb, 1)
    body = body_of(crm("GET", f"/crm/v8/Events/{meeting_id}", params={"fields": FIELDS}), 200)
    oas.check("record", body)
    assert body["data"][0]["id"] == meeting_id


def test_deleted_records_reply_conforms(oas, sb, crm, clock):
    ids = book(sb, 3)
    clock.advance(60)
    for meeting_id in ids[:2]:
        sb.crm_delete(meeting_id)
    body = body_of(crm("GET", "/crm/v8/Events/deleted", params={"type": "all", "per_page": 200},
                       headers={"If-Modified-Since": NOW.isoformat()}), 200)
    oas.check("deleted", body)
    assert sorted(d["id"] for d in body["data"]) == sorted(ids[:2])


def test_update_reply_conforms(oas, sb, crm, clock):
    [meeting_id] = book(sb, 1)
    clock.advance(30)
    start = NOW + dt.timedelta(days=9)
    request = {"data": [{"id": meeting_id, "Start_DateTime": start.isoformat(),
                         "End_DateTime": (start + dt.timedelta(minutes=30)).isoformat()}]}
    oas.check("update_request", request)
    body = body_of(crm("PUT", "/crm/v8/Events", json=request), 200)
    oas.check("update", body)
    assert body["data"][0]["details"]["id"] == meeting_id


def test_cancel_reply_conforms(oas, sb, crm):
    [meeting_id] = book(sb, 1)
    request = {"data": [{"send_cancelling_mail": False}]}
    oas.check("cancel_request", request)
    body = body_of(crm("POST", f"/crm/v8/Events/{meeting_id}/actions/cancel", json=request), 200)
    oas.check("cancel", body)
    assert body["data"][0]["details"]["id"] == meeting_id


def test_field_metadata_reply_conforms(oas, crm):
    body = body_of(crm("GET", "/crm/v8/settings/fields", params={"module": "Events"}), 200)
    oas.check("fields", body)
    by_name = {f["api_name"]: f for f in body["fields"]}
    assert by_name["Start_DateTime"]["data_type"] == "datetime"
    assert by_name["BookingId"]["custom_field"] is True


# -- errors --------------------------------------------------------------------------------------

def _list(crm, **params):
    return crm("GET", "/crm/v8/Events", params=params)


ERROR_CASES = {
    # name: (how to provoke it, HTTP status, code, details expected or None)
    "REQUIRED_PARAM_MISSING": (lambda sb, crm: _list(crm), 400, {"param_name": "fields"}),
    "DISCRETE_PAGINATION_LIMIT_EXCEEDED": (
        lambda sb, crm: _list(crm, fields="id", page=11, per_page=200), 400, None),
    "INVALID_TOKEN": (
        lambda sb, crm: crm("GET", "/crm/v8/Events", params={"fields": "id"},
                            auth="Zoho-oauthtoken 1000.not-a-token"), 401, None),
    "AUTHENTICATION_FAILURE": (
        lambda sb, crm: crm("GET", "/crm/v8/Events", params={"fields": "id"}, auth=None),
        401, None),
    "INVALID_MODULE": (
        lambda sb, crm: crm("GET", "/crm/v8/Meetingz", params={"fields": "id"}), 400, None),
    "TOO_MANY_REQUESTS": (
        lambda sb, crm: (sb.inject("/crm/v8/Events", "429"), _list(crm, fields="id"))[1],
        429, None),
    "INTERNAL_ERROR": (
        lambda sb, crm: (sb.inject("/crm/v8/Events", "500"), _list(crm, fields="id"))[1],
        500, None),
}


@pytest.mark.parametrize("code", list(ERROR_CASES))
def test_error_reply_conforms(oas, sb, crm, code):
    provoke, status, details = ERROR_CASES[code]
    body = body_of(provoke(sb, crm), status)
    oas.check("error", body)
    assert body["code"] == code
    if details is not None:
        assert body["details"] == details


@pytest.mark.parametrize("params", [{}, {"module": "Meetingz"}], ids=["no-module", "bad-module"])
def test_field_metadata_error_reply_conforms(oas, crm, params):
    body = body_of(crm("GET", "/crm/v8/settings/fields", params=params), 400)
    oas.check("fields_error", body)


# -- the validator can fail ----------------------------------------------------------------------

# The replies shared/zoho-api.md quotes from Zoho's docs: all must pass, every mutation must fail.
DOCUMENTED = {
    "records": {"data": [{"id": "4876876000000100001",
                          "Start_DateTime": "2020-02-02T10:00:00+05:30",
                          "Modified_Time": "2019-07-25T15:26:49+05:30",
                          "Owner": {"name": "A", "id": "1", "email": "a@example.com"}}],
                "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False,
                         "next_page_token": None, "previous_page_token": None,
                         "page_token_expiry": None, "sort_by": "Modified_Time",
                         "sort_order": "asc", "call": False, "email": False}},
    "deleted": {"data": [{"id": "1", "display_name": "Call", "type": "recycle",
                          "deleted_by": {"name": "A", "id": "1"},
                          "created_by": {"name": "A", "id": "1"},
                          "deleted_time": "2019-07-25T15:26:49+05:30"}],
                "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False}},
    "error": {"code": "REQUIRED_PARAM_MISSING", "details": {"param_name": "fields"},
              "message": "required param is missing", "status": "error"},
    "update": {"data": [{"code": "SUCCESS", "details": {
        "id": "1", "Modified_Time": "2019-07-25T15:26:49+05:30"},
        "message": "record updated", "status": "success"}]},
}


def _without(key):
    return lambda body: body.pop(key)


def _set(path, value):
    def mutate(body):
        node = body
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    return mutate


MUTATIONS = [
    ("error", "no status", _without("status"), "'status' is a required property"),
    ("error", "no details", _without("details"), "'details' is a required property"),
    ("error", "unknown code", _set(["code"], "WHATEVER"), "is not one of"),
    ("error", "status not error", _set(["status"], "failure"), "is not one of ['error']"),
    ("records", "more_records as string", _set(["info", "more_records"], "false"),
     "'false' is not of type 'boolean'"),
    ("records", "count as string", _set(["info", "count"], "1"), "'1' is not of type 'integer'"),
    ("records", "no info", _without("info"), "'info' is a required property"),
    ("records", "datetime without offset",
     _set(["data", 0, "Modified_Time"], "2019-07-25 15:26:49"), "is not a 'date-time'"),
    ("records", "numeric id", _set(["data", 0, "id"], 4876876000000100001),
     "is not of type 'string'"),
    ("deleted", "no deleted_time", lambda b: b["data"][0].pop("deleted_time"),
     "'deleted_time' is a required property"),
    ("update", "item status error", _set(["data", 0, "status"], "error"),
     "is not one of ['success']"),
    ("update", "item without id", lambda b: b["data"][0]["details"].pop("id"),
     "'id' is a required property"),
]


@pytest.mark.parametrize("kind", list(DOCUMENTED))
def test_validator_accepts_the_documented_replies(oas, kind):
    oas.check(kind, DOCUMENTED[kind])


@pytest.mark.parametrize("kind,what,mutate,expected", MUTATIONS, ids=[m[1] for m in MUTATIONS])
def test_validator_rejects_a_wrong_shape(oas, kind, what, mutate, expected):
    body = copy.deepcopy(DOCUMENTED[kind])
    mutate(body)
    problems = oas.errors(kind, body)
    assert any(expected in p for p in problems), problems
    with pytest.raises(AssertionError, match="does not conform"):
        oas.check(kind, body)


def test_validator_rejects_a_mutated_sandbox_reply(oas, sb, crm):
    book(sb, 1)
    body = body_of(_list(crm, fields=FIELDS), 200)
    body["info"]["more_records"] = "false"
    del body["data"][0]["id"]
    problems = oas.errors("records", body)
    assert "$.info.more_records: 'false' is not of type 'boolean'" in problems
    assert "$.data[0]: 'id' is a required property" in problems


def test_a_missing_spec_folder_is_a_skip_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    assert default_dir() == tmp_path / "nowhere"
    reason = missing_reason(default_dir())
    assert reason and "not found" in reason and ENV_VAR in reason

"""The sandbox read by Zoho's official CRM SDK (PyPI ``zohocrmsdk8-0``): if Zoho's own client parses
its replies into the right classes and values, the sandbox speaks Zoho's CRM wire format.

How the SDK is pointed at the sandbox (shared/zoho-api.md, "The official CRM SDK as a fidelity
check"): ``DataCenter.Environment(sb.url, sb.url + "/oauth/v2/token", sb.url)`` and an
``OAuthToken`` with the sandbox's client id, secret and refresh token (``find_user=False``: no
``/users`` lookup). ``Initializer.initialize`` then POSTs the refresh-token form to the sandbox; the
token reply's ``api_domain`` must be the sandbox's own URL, or the SDK switches to a real Zoho host
(``DataCenter.get``). Before its first ``Events`` call the SDK reads
``GET /crm/v8/settings/fields?module=Events`` and types record values by each field's
``data_type`` — so a ``datetime`` ``Start_DateTime`` arrives as ``datetime.datetime``.

The SDK is process-global (``Initializer`` is a singleton that also configures logging), so it runs
in a child process: this very file executed as a script is a small driver that reads one JSON
command per line on stdin and answers one JSON line on stdout (see :class:`SDK`). Between two
commands the test changes the sandbox (delete a meeting, expire tokens, inject a 429). The SDK's
token store, field cache and log go to ``tmp_path``.

SDK behaviour these tests rely on (read from its source, zohocrmsdk 7.0.0):
* it refreshes the access token only by its *own* clock — when fewer than 5 s of the
  ``expires_in`` it was given are left — and never after a 401: a token the server expired early
  comes back as an ``APIException`` with ``INVALID_TOKEN``;
* it sends ``Authorization: Zoho-oauthtoken <token>``, ``X-ZOHO-SDK``, ``If-Modified-Since`` as
  ISO 8601 with the local offset, and its JSON bodies (PUT records, cancel) with *no*
  ``Content-Type`` header — Zoho reads them as JSON anyway, so the sandbox must too;
* a reply without ``Content-Type`` (204, 304) yields an ``APIResponse`` with no object — the
  sandbox answers "nothing modified" with 204 only (it has no 304), so that is the path tested;
* ``CommonAPIHandler.api_call`` swallows its own parse failures and returns ``None`` — so a
  ``None`` response is itself a fidelity failure.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

# -----------------------------------------------------------------------------------------------
# The driver: runs in the child process only (``python test_sdk_fidelity.py``). SDK imports stay
# inside these functions so pytest's own process never loads the SDK.
# -----------------------------------------------------------------------------------------------


def _describe(value):
    """An SDK value as JSON: datetimes and SDK classes keep their type name."""
    from zohocrmsdk.src.com.zoho.crm.api.record import Record
    from zohocrmsdk.src.com.zoho.crm.api.util import Choice

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dt.datetime):
        return {"$type": "datetime", "value": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$type": "date", "value": value.isoformat()}
    if isinstance(value, Choice):
        return {"$type": "Choice", "value": _describe(value.get_value())}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, Record):
        return {"$type": type(value).__name__,
                "key_values": {k: _describe(v) for k, v in value.get_key_values().items()}}
    # Other SDK classes keep their members as name-mangled attributes: _Class__member.
    prefix = f"_{type(value).__name__}__"
    members = {name[len(prefix):]: _describe(v) for name, v in vars(value).items()
               if name.startswith(prefix) and name[len(prefix):] != "key_modified"}
    return {"$type": type(value).__name__, **members}


def _describe_response(response) -> dict:
    if response is None:
        return {"response": None}
    return {"status_code": response.get_status_code(),
            "headers": {k: v for k, v in response.get_headers().items()},
            "object": _describe(response.get_object())}


def _token_state() -> dict:
    """The token as the SDK's FileStore holds it (the object passed to ``initialize`` is not
    updated by later refreshes), and the environment the SDK will call."""
    import csv

    from zohocrmsdk.src.com.zoho.crm.api import Initializer

    initializer = Initializer.get_initializer()
    with open(initializer.store.file_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    row = rows[-1] if rows else {}
    return {"access_token": row.get("access_token"), "expires_in": row.get("expiry_time"),
            "api_domain": row.get("api_domain"), "environment_url": initializer.environment.url,
            "stored_tokens": len(rows)}


def _init(cmd: dict) -> dict:
    from zohocrmsdk.src.com.zoho.api.authenticator import OAuthToken
    from zohocrmsdk.src.com.zoho.api.authenticator.store import FileStore
    from zohocrmsdk.src.com.zoho.api.logger import Logger
    from zohocrmsdk.src.com.zoho.crm.api import Initializer
    from zohocrmsdk.src.com.zoho.crm.api.dc import DataCenter

    work = Path(cmd["dir"])
    work.mkdir(parents=True, exist_ok=True)
    url = cmd["url"].rstrip("/")
    environment = DataCenter.Environment(url, url + "/oauth/v2/token", url)
    token = OAuthToken(client_id=cmd["client_id"], client_secret=cmd["client_secret"],
                       refresh_token=cmd["refresh_token"], find_user=False)
    Initializer.initialize(environment=environment, token=token,
                           store=FileStore(str(work / "sdk_tokens.csv")),
                           logger=Logger.get_instance(Logger.Levels.INFO, str(work / "sdk.log")),
                           resource_path=str(work))
    return {"token": _token_state()}


def _headers(cmd: dict, header_class):
    from zohocrmsdk.src.com.zoho.crm.api import HeaderMap

    headers = HeaderMap()
    if cmd.get("if_modified_since"):
        headers.add(header_class.if_modified_since,
                    dt.datetime.fromisoformat(cmd["if_modified_since"]))
    return headers


def _get_records(cmd: dict) -> dict:
    from zohocrmsdk.src.com.zoho.crm.api import ParameterMap
    from zohocrmsdk.src.com.zoho.crm.api.record import (GetRecordsHeader, GetRecordsParam,
                                                        RecordOperations)

    params = ParameterMap()
    params.add(GetRecordsParam.fields, ",".join(cmd["fields"]))
    for name in ("sort_by", "sort_order", "per_page", "page", "page_token"):
        if cmd.get(name) is not None:
            params.add(getattr(GetRecordsParam, name), cmd[name])
    response = RecordOperations(cmd.get("module", "Events")).get_records(
        params, _headers(cmd, GetRecordsHeader))
    return _describe_response(response)


def _get_deleted(cmd: dict) -> dict:
    from zohocrmsdk.src.com.zoho.crm.api import ParameterMap
    from zohocrmsdk.src.com.zoho.crm.api.record import (GetDeletedRecordsHeader,
                                                        GetDeletedRecordsParam, RecordOperations)

    params = ParameterMap()
    params.add(GetDeletedRecordsParam.type, cmd.get("type", "all"))
    if cmd.get("per_page") is not None:
        params.add(GetDeletedRecordsParam.per_page, cmd["per_page"])
    response = RecordOperations(cmd.get("module", "Events")).get_deleted_records(
        params, _headers(cmd, GetDeletedRecordsHeader))
    return _describe_response(response)


def _get_fields(cmd: dict) -> dict:
    from zohocrmsdk.src.com.zoho.crm.api import ParameterMap
    from zohocrmsdk.src.com.zoho.crm.api.fields import FieldsOperations, GetFieldsParam

    params = ParameterMap()
    params.add(GetFieldsParam.module, cmd.get("module", "Events"))
    response = FieldsOperations().get_fields(params)
    if response is None or response.get_object() is None:
        return _describe_response(response)
    wrapper = response.get_object()
    if not hasattr(wrapper, "get_fields"):
        return _describe_response(response)
    fields = [{"api_name": f.get_api_name(), "data_type": f.get_data_type(),
               "custom_field": f.get_custom_field(), "system_mandatory": f.get_system_mandatory(),
               "read_only": f.get_read_only(), "field_label": f.get_field_label(),
               "id": f.get_id(), "json_type": f.get_json_type(), "length": f.get_length()}
              for f in wrapper.get_fields()]
    return {"status_code": response.get_status_code(),
            "object": {"$type": type(wrapper).__name__, "fields": fields}}


def _update_record(cmd: dict) -> dict:
    from zohocrmsdk.src.com.zoho.crm.api.record import BodyWrapper, Record, RecordOperations

    record = Record()
    record.set_id(int(cmd["id"]))
    for name, value in cmd["values"].items():
        if isinstance(value, dict) and value.get("$type") == "datetime":
            value = dt.datetime.fromisoformat(value["value"])
        record.add_key_value(name, value)
    body = BodyWrapper()
    body.set_data([record])
    return _describe_response(RecordOperations(cmd.get("module", "Events")).update_records(body))


def _cancel_meeting(cmd: dict) -> dict:
    from zohocrmsdk.src.com.zoho.crm.api.cancel_meetings import (BodyWrapper,
                                                                 CancelMeetingsOperations, Notify)

    notify = Notify()
    notify.set_send_cancelling_mail(bool(cmd.get("send_cancelling_mail", False)))
    body = BodyWrapper()
    body.set_data([notify])
    return _describe_response(CancelMeetingsOperations(int(cmd["id"])).cancel_meetings(body))


_OPS = {
    "init": _init,
    "token": lambda cmd: {"token": _token_state()},
    "get_records": _get_records,
    "get_deleted": _get_deleted,
    "get_fields": _get_fields,
    "update_record": _update_record,
    "cancel_meeting": _cancel_meeting,
}


def _driver_main() -> int:
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr            # whatever the SDK prints must not corrupt the protocol
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            reply = _OPS[cmd["op"]](cmd)
        except Exception as exc:       # reported to the test, which decides
            reply = {"raised": type(exc).__name__, "code": getattr(exc, "code", None),
                     "message": str(getattr(exc, "message", None) or exc),
                     "details": _describe(getattr(exc, "details", None)),
                     "cause": repr(getattr(exc, "cause", None))}
        protocol.write(json.dumps(reply, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_driver_main())


# -----------------------------------------------------------------------------------------------
# The tests (pytest's process).
# -----------------------------------------------------------------------------------------------

import pytest  # noqa: E402  (the driver above must not need it)

from bookings_sync.sandbox import FrozenClock, Sandbox  # noqa: E402
from e2e import FROZEN_NOW  # noqa: E402

UTC = dt.timezone.utc
NOW = FROZEN_NOW          # Europe/Berlin is +01:00 then
ANSWER_TIMEOUT = 20.0


class SDK:
    """Zoho's CRM SDK in a child process: ``sdk("get_records", fields=[...])`` -> JSON reply."""

    def __init__(self, work: Path):
        work.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        self.work = work
        self._stderr = open(work / "driver.stderr", "w")
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve())],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, text=True, cwd=work, env=env)

    def __call__(self, op: str, **args) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **args}, default=str) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], ANSWER_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise AssertionError(f"SDK driver gave no answer to {op!r}; stderr:\n{self.stderr()}")
        return json.loads(line)

    def stderr(self) -> str:
        self._stderr.flush()
        return (self.work / "driver.stderr").read_text()[-4000:]

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture
def sb(frozen_sb):
    return frozen_sb


@pytest.fixture
def sdk(sb, tmp_path):
    """The SDK initialised against ``sb`` (the token refresh already done)."""
    driver = SDK(tmp_path / "sdk")
    reply = driver("init", url=sb.url, dir=str(tmp_path / "sdk"), **sb.credentials)
    assert "raised" not in reply, reply
    yield driver
    driver.close()


def _value(described):
    """Unwrap ``{"$type": ..., "value": ...}`` from the driver."""
    return described["value"] if isinstance(described, dict) and "value" in described else described


def _instant(described) -> dt.datetime:
    assert isinstance(described, dict) and described.get("$type") == "datetime", (
        f"expected the SDK to type this value as datetime, got {described!r}")
    return dt.datetime.fromisoformat(described["value"])


def _api_exception(reply: dict) -> dict:
    """The APIException the SDK parsed, as plain values."""
    obj = reply.get("object")
    assert obj and obj["$type"] == "APIException", f"expected an APIException, got {reply!r}"
    return {"code": _value(obj.get("code")), "status": _value(obj.get("status")),
            "message": _value(obj.get("message")), "details": obj.get("details")}


def _token_calls(sb) -> list[dict]:
    return [e for e in sb.request_log if e["endpoint"] == "accounts.token"]


MEETING_FIELDS = ["Event_Title", "Start_DateTime", "End_DateTime", "Modified_Time", "Owner",
                  "BookingId"]


def _book(sb, count: int = 3) -> dict[str, tuple[str, dt.datetime]]:
    """``count`` meetings starting on distinct days in mixed zones: id -> (booking id, start)."""
    zones = ["Asia/Kolkata", "America/New_York", "Europe/Berlin", "UTC"]
    booked = {}
    for i in range(count):
        start = (NOW + dt.timedelta(days=2 + i, hours=i)).replace(minute=15 * (i % 4))
        meeting_id, booking_id = sb.book(start=start, time_zone=zones[i % len(zones)])
        booked[meeting_id] = (booking_id, start)
    return booked


# -- Accounts -------------------------------------------------------------------------------------

def test_token_refresh_is_parsed_and_keeps_the_sdk_on_the_sandbox(sb, tmp_path):
    _book(sb, 1)
    started = time.time()
    driver = SDK(tmp_path / "sdk")
    try:
        reply = driver("init", url=sb.url, dir=str(tmp_path / "sdk"), **sb.credentials)
        assert "raised" not in reply, reply
        token = reply["token"]
        # The SDK posted the refresh-token grant as a form body, once.
        [call] = _token_calls(sb)
        assert call["method"] == "POST" and call["status"] == 200
        assert call["form"]["grant_type"] == "refresh_token"
        assert set(call["form"]) >= {"client_id", "client_secret", "refresh_token"}
        # It read access_token, expires_in (seconds -> its own ms deadline) and api_domain.
        assert token["access_token"] and token["access_token"] in sb.world.tokens
        deadline = int(token["expires_in"]) / 1000
        assert started + 3600 - 5 <= deadline <= time.time() + 3600 + 5
        assert token["api_domain"] == sb.url            # not a real Zoho host ...
        assert token["environment_url"] == sb.url       # ... so DataCenter.get kept us here
        assert token["stored_tokens"] == 1
        # And the token works: the next call is authenticated with it, no second refresh.
        assert driver("get_records", fields=MEETING_FIELDS).get("status_code") == 200
        assert len(_token_calls(sb)) == 1
        assert [e["endpoint"] for e in sb.request_log] == ["accounts.token", "crm.fields",
                                                           "crm.list"]
    finally:
        driver.close()


def test_sdk_refreshes_on_its_own_clock_and_succeeds_after_the_sandbox_expired_tokens(tmp_path):
    # expires_in = 4 s: the SDK refreshes whenever fewer than 5 s are left, i.e. before each call.
    with Sandbox(crm_time_zone="Europe/Berlin", clock=FrozenClock(NOW), token_ttl=4) as sb:
        booked = _book(sb, 2)
        driver = SDK(tmp_path / "sdk")
        try:
            first = driver("init", url=sb.url, dir=str(tmp_path / "sdk"), **sb.credentials)
            sb.expire_tokens()                          # the server forgets every token
            reply = driver("get_records", fields=MEETING_FIELDS)
            assert reply.get("status_code") == 200, reply
            assert {str(r["key_values"]["id"]) for r in reply["object"]["data"]} == set(booked)
            later = driver("token")["token"]
            assert later["access_token"] != first["token"]["access_token"]
            assert later["access_token"] in sb.world.tokens
            assert later["api_domain"] == later["environment_url"] == sb.url
            # init + one refresh before settings/fields + one before Events.
            assert len(_token_calls(sb)) == 3
            assert [e["endpoint"] for e in sb.request_log] == [
                "accounts.token", "accounts.token", "crm.fields", "accounts.token", "crm.list"]
        finally:
            driver.close()


# -- Events list ---------------------------------------------------------------------------------

def test_events_list_200_is_parsed_into_typed_records(sb, sdk, clock):
    booked = _book(sb, 3)
    reply = sdk("get_records", fields=MEETING_FIELDS, sort_by="Modified_Time", sort_order="asc",
                per_page=200, if_modified_since=(NOW - dt.timedelta(hours=1)).isoformat())
    assert reply.get("status_code") == 200, reply
    wrapper = reply["object"]
    assert wrapper["$type"] == "ResponseWrapper"
    # The SDK typed the values from settings/fields, read once before the list.
    assert sb.calls["crm.fields"] == 1
    records = {str(r["key_values"]["id"]): r for r in wrapper["data"]}
    assert set(records) == set(booked)
    for meeting_id, (booking_id, start) in booked.items():
        record = records[meeting_id]
        assert record["$type"] == "Record"
        values = record["key_values"]
        seeded = sb.meeting(meeting_id)
        assert _instant(values["Start_DateTime"]) == start
        assert _instant(values["End_DateTime"]) == seeded["End_DateTime"]
        assert _instant(values["Modified_Time"]) == NOW
        assert values["BookingId"] == booking_id
        assert values["Event_Title"] == seeded["Event_Title"]
        owner = values["Owner"]
        assert owner["$type"] == "MinifiedUser"
        assert (owner["name"], str(owner["id"]), owner["email"]) == (
            seeded["Owner"]["name"], seeded["Owner"]["id"], seeded["Owner"]["email"])
        assert set(values) == {"id", *MEETING_FIELDS}   # exactly the fields asked for
    info = wrapper["info"]
    assert info["$type"] == "Info"
    assert (info["count"], info["page"], info["per_page"]) == (3, 1, 200)
    assert info["more_records"] is False
    assert (info["sort_by"], info["sort_order"]) == ("Modified_Time", "asc")

    # Paging: two per page, then the next_page_token the SDK parsed (its expiry typed datetime).
    first = sdk("get_records", fields=MEETING_FIELDS, sort_by="Modified_Time", sort_order="asc",
                per_page=2)["object"]
    assert (first["info"]["count"], first["info"]["more_records"]) == (2, True)
    assert first["info"]["next_page_token"]
    assert _instant(first["info"]["page_token_expiry"]) > NOW
    rest = sdk("get_records", fields=MEETING_FIELDS, sort_by="Modified_Time", sort_order="asc",
               per_page=2, page_token=first["info"]["next_page_token"])["object"]
    assert (rest["info"]["count"], rest["info"]["more_records"]) == (1, False)
    assert {str(r["key_values"]["id"]) for r in first["data"] + rest["data"]} == set(booked)

    # If-Modified-Since (sent by the SDK as ISO 8601 with offset) keeps only later edits.
    clock.advance(60)
    moved_id = next(iter(booked))
    new_start = booked[moved_id][1] + dt.timedelta(hours=2)
    sb.crm_move(moved_id, new_start)
    reply = sdk("get_records", fields=MEETING_FIELDS,
                if_modified_since=(NOW + dt.timedelta(seconds=30)).isoformat())
    assert reply.get("status_code") == 200, reply
    [record] = reply["object"]["data"]
    assert str(record["key_values"]["id"]) == moved_id
    assert _instant(record["key_values"]["Start_DateTime"]) == new_start
    assert _instant(record["key_values"]["Modified_Time"]) == NOW + dt.timedelta(seconds=60)
    assert reply["object"]["info"]["count"] == 1


def test_nothing_modified_since_is_204_without_a_body(sb, sdk):
    """Zoho documents 204 and also 304 for "nothing modified since". The sandbox answers 204
    only (it has no way to emit 304), so this is the no-change path Zoho's SDK sees here: a
    response with a status and no object to parse."""
    _book(sb, 2)
    reply = sdk("get_records", fields=MEETING_FIELDS,
                if_modified_since=(NOW + dt.timedelta(seconds=1)).isoformat())
    assert reply.get("status_code") == 204, reply
    assert reply["object"] is None
    assert "Content-Type" not in reply["headers"]


# -- deleted records -----------------------------------------------------------------------------

def test_deleted_records_are_parsed(sb, sdk, clock):
    booked = _book(sb, 3)
    clock.advance(90)
    gone = list(booked)[:2]
    titles = {m: sb.meeting(m)["Event_Title"] for m in gone}
    for meeting_id in gone:
        sb.crm_delete(meeting_id)
    reply = sdk("get_deleted", type="all", if_modified_since=NOW.isoformat())
    assert reply.get("status_code") == 200, reply
    wrapper = reply["object"]
    assert wrapper["$type"] == "DeletedRecordsWrapper"
    entries = {str(e["id"]): e for e in wrapper["data"]}
    assert set(entries) == set(gone)
    for meeting_id, entry in entries.items():
        assert entry["$type"] == "DeletedRecord"
        assert entry["display_name"] == titles[meeting_id]
        assert _value(entry["type"]) == "recycle"
        assert _instant(entry["deleted_time"]) == NOW + dt.timedelta(seconds=90)
        for who in ("deleted_by", "created_by"):
            assert entry[who]["$type"] == "MinifiedUser" and entry[who]["name"]
    info = wrapper["info"]
    assert (info["$type"], info["count"], info["more_records"]) == ("Info", 2, False)
    # Nothing deleted after that: 204.
    later = sdk("get_deleted", type="all",
                if_modified_since=(NOW + dt.timedelta(seconds=91)).isoformat())
    assert (later.get("status_code"), later.get("object")) == (204, None)


# -- errors --------------------------------------------------------------------------------------

def test_expired_token_is_an_invalid_token_api_exception(sb, sdk):
    """The SDK trusts its own expiry clock (3600 s here) and does not refresh on a 401: a token
    the server has dropped comes back as Zoho's INVALID_TOKEN."""
    _book(sb, 1)
    assert sdk("get_records", fields=MEETING_FIELDS).get("status_code") == 200  # fields cached
    sb.expire_tokens()
    reply = sdk("get_records", fields=MEETING_FIELDS)
    assert reply.get("status_code") == 401, reply
    assert _api_exception(reply) == {"code": "INVALID_TOKEN", "status": "error",
                                     "message": "invalid oauth token", "details": {}}
    assert len(_token_calls(sb)) == 1                   # no refresh attempted


def test_invalid_token_on_the_field_metadata_call_is_parsed_too(sb, sdk):
    """Before its first Events call the SDK reads settings/fields; an INVALID_TOKEN there is
    parsed by the fields package and re-raised as SDKException(API_EXCEPTION) with its values."""
    sb.expire_tokens()
    reply = sdk("get_records", fields=MEETING_FIELDS)
    assert reply.get("raised") == "SDKException", reply
    assert reply["code"] == "API_EXCEPTION"
    assert reply["details"] == {"code": "INVALID_TOKEN", "status": "error",
                                "message": "invalid oauth token"}
    assert [(e["endpoint"], e["status"]) for e in sb.request_log][-1] == ("crm.fields", 401)


@pytest.mark.parametrize("kind,status,code", [("429", 429, "TOO_MANY_REQUESTS"),
                                               ("500", 500, "INTERNAL_ERROR")])
def test_injected_faults_are_api_exceptions(sb, sdk, kind, status, code):
    _book(sb, 1)
    sb.inject("/crm/v8/Events", kind, count=1, retry_after=7 if kind == "429" else None)
    reply = sdk("get_records", fields=MEETING_FIELDS)
    assert reply.get("status_code") == status, reply
    error = _api_exception(reply)
    assert (error["code"], error["status"]) == (code, "error")
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    if kind == "429":
        assert reply["headers"].get("Retry-After") == "7"
    # The fault was consumed: the same call succeeds next time.
    assert sdk("get_records", fields=MEETING_FIELDS).get("status_code") == 200


@pytest.mark.parametrize("args,code,details", [
    ({"fields": []}, "REQUIRED_PARAM_MISSING", {"param_name": "fields"}),
    ({"fields": MEETING_FIELDS, "page": 11, "per_page": 200},
     "DISCRETE_PAGINATION_LIMIT_EXCEEDED", None),
])
def test_request_errors_are_api_exceptions(sb, sdk, args, code, details):
    _book(sb, 1)
    reply = sdk("get_records", **args)
    assert reply.get("status_code") == 400, reply
    error = _api_exception(reply)
    assert (error["code"], error["status"]) == (code, "error")
    assert isinstance(error["message"], str) and error["message"]
    if details is not None:
        assert error["details"] == details


# -- fields, update, cancel ------------------------------------------------------------------------

def test_field_metadata_is_parsed(sb, sdk):
    reply = sdk("get_fields", module="Events")
    assert reply.get("status_code") == 200, reply
    fields = {f["api_name"]: f for f in reply["object"]["fields"]}
    for name in ("Start_DateTime", "End_DateTime", "Modified_Time"):
        assert fields[name]["data_type"] == "datetime"
    assert fields["BookingId"]["custom_field"] is True
    assert fields["Start_DateTime"]["custom_field"] is False
    assert all(isinstance(f["id"], int) and f["field_label"] for f in fields.values())


def test_update_by_the_sdk_is_applied_and_its_reply_parsed(sb, sdk, clock):
    booked = _book(sb, 1)
    [(meeting_id, (_, start))] = booked.items()
    clock.advance(30)
    new_start = start + dt.timedelta(days=1)
    reply = sdk("update_record", id=meeting_id, values={
        "Start_DateTime": {"$type": "datetime", "value": new_start.isoformat()},
        "End_DateTime": {"$type": "datetime",
                         "value": (new_start + dt.timedelta(minutes=30)).isoformat()}})
    assert reply.get("status_code") == 200, reply
    wrapper = reply["object"]
    assert wrapper["$type"] == "ActionWrapper"
    [result] = wrapper["data"]
    assert result["$type"] == "SuccessResponse"
    assert (_value(result["code"]), _value(result["status"]), _value(result["message"])) == (
        "SUCCESS", "success", "record updated")
    assert str(result["details"]["id"]) == meeting_id
    assert sb.meeting(meeting_id)["Start_DateTime"] == new_start
    assert sb.meeting(meeting_id)["Modified_Time"] == NOW + dt.timedelta(seconds=30)


def test_cancel_by_the_sdk_is_applied_and_its_reply_parsed(sb, sdk):
    booked = _book(sb, 1)
    [meeting_id] = booked
    reply = sdk("cancel_meeting", id=meeting_id, send_cancelling_mail=False)
    assert reply.get("status_code") == 200, reply
    wrapper = reply["object"]
    assert wrapper["$type"] == "ActionWrapper"
    [result] = wrapper["data"]
    assert result["$type"] == "SuccessResponse"
    assert (_value(result["code"]), _value(result["status"])) == ("SUCCESS", "success")
    assert str(result["details"]["id"]) == meeting_id
    assert sb.meeting(meeting_id)["Meeting_Status"] == "Cancelled"
    [call] = [e for e in sb.request_log if e["endpoint"] == "crm.cancel"]
    assert call["json"] == {"data": [{"send_cancelling_mail": False}]}

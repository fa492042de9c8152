"""The sandbox's Accounts side as a client meets it over HTTP: Zoho's Self Client flow (grant code
→ refresh token), scopes carried by tokens and enforced by CRM and Bookings, the ``api_domain``
of another data center, and credentials masked in the request log.

Facts and their sources: docs/zoho-crm-and-accounts.md; the scope table is in
``bookings_sync/sandbox/scopes.py``. Every request goes through ``requests`` (no daemon client).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
import requests

from bookings_sync.sandbox import Sandbox
from e2e import FROZEN_NOW

SCOPE_ERROR = {"code": "OAUTH_SCOPE_MISMATCH", "details": {},
               "message": "invalid oauth scope to access this URL", "status": "error"}
EVENTS_READ = "ZohoCRM.modules.events.READ"


class Http:
    """A bare client: tokens from /oauth/v2/token, CRM and Bookings calls with one of them."""

    def __init__(self, sb: Sandbox, session: requests.Session):
        self.sb, self.session = sb, session

    def token(self, **params) -> requests.Response:
        return self.session.post(f"{self.sb.url}/oauth/v2/token", params=params, timeout=10)

    def exchange(self, code: str, **override) -> requests.Response:
        c = self.sb.credentials
        return self.token(**{"grant_type": "authorization_code", "client_id": c["client_id"],
                             "client_secret": c["client_secret"], "code": code, **override})

    def refresh(self, refresh_token: str) -> requests.Response:
        c = self.sb.credentials
        return self.token(grant_type="refresh_token", client_id=c["client_id"],
                          client_secret=c["client_secret"], refresh_token=refresh_token)

    def access(self, scopes) -> str:
        reply = self.refresh(self.sb.credentials_with(scopes)["refresh_token"])
        return reply.json()["access_token"]

    def get(self, path: str, token: str, **params) -> requests.Response:
        return self.session.get(f"{self.sb.url}{path}", params=params, timeout=10,
                                headers={"Authorization": f"Zoho-oauthtoken {token}"})


@pytest.fixture
def sb(clock):
    with Sandbox(crm_time_zone="Europe/Berlin", clock=clock) as sandbox:
        yield sandbox


@pytest.fixture
def http(sb):
    with requests.Session() as session:
        session.trust_env = False                       # never a proxy for 127.0.0.1
        yield Http(sb, session)


# -- the Self Client flow -------------------------------------------------------------------

def test_a_grant_code_becomes_a_refresh_token_with_its_scopes(sb, http):
    code = sb.issue_grant_code("ZohoCRM.modules.events.READ,ZohoCRM.settings.fields.READ")
    reply = http.exchange(code)
    body = reply.json()
    assert reply.status_code == 200
    assert set(body) == {"access_token", "refresh_token", "scope", "api_domain", "token_type",
                         "expires_in"}
    assert body["scope"].split() == ["ZohoCRM.modules.events.READ",
                                     "ZohoCRM.settings.fields.READ"]
    assert (body["api_domain"], body["token_type"], body["expires_in"]) == (sb.url, "Bearer",
                                                                            3600)
    assert body["refresh_token"] != sb.credentials["refresh_token"]
    # The access token works within its scopes …
    assert http.get("/crm/v8/Events", body["access_token"], fields="id").status_code == 204
    # … and the new refresh token mints more of the same.
    again = http.refresh(body["refresh_token"]).json()
    assert again["scope"] == body["scope"] and "refresh_token" not in again
    assert http.get("/crm/v8/settings/fields", again["access_token"],
                    module="Events").status_code == 200


def test_a_code_is_good_once_and_in_the_form_body_too(sb, http):
    code = sb.issue_grant_code(["ZohoCRM.modules.ALL"])
    c = sb.credentials
    form = {"grant_type": "authorization_code", "client_id": c["client_id"],
            "client_secret": c["client_secret"], "code": code}
    first = http.session.post(f"{sb.url}/oauth/v2/token", data=form, timeout=10)
    assert "refresh_token" in first.json()
    second = http.exchange(code)
    assert (second.status_code, second.json()) == (200, {"error": "invalid_code"})


def test_an_expired_code_is_an_invalid_code(sb, http, clock):
    code = sb.issue_grant_code(EVENTS_READ, minutes=3)
    clock.advance(3 * 60)
    assert http.exchange(code).json() == {"error": "invalid_code"}
    fresh = sb.issue_grant_code(EVENTS_READ, minutes=10)
    clock.advance(9 * 60)
    assert "access_token" in http.exchange(fresh).json()


def test_a_code_from_another_data_center_is_an_invalid_code(sb, http):
    code = sb.issue_grant_code(EVENTS_READ, data_center="eu")
    assert http.exchange(code).json() == {"error": "invalid_code"}
    with Sandbox(data_center="eu") as eu:
        eu_code = eu.issue_grant_code(EVENTS_READ)
        assert "refresh_token" in Http(eu, http.session).exchange(eu_code).json()


def test_a_wrong_client_is_refused_and_keeps_the_code_good(sb, http):
    code = sb.issue_grant_code(EVENTS_READ)
    assert http.exchange(code, client_secret="wrong").json() == {"error": "invalid_client"}
    assert http.exchange(code, client_id="1000.OTHER").json() == {"error": "invalid_client"}
    assert http.exchange("1000.never-issued").json() == {"error": "invalid_code"}
    assert "access_token" in http.exchange(code).json()


def test_bad_grant_code_requests_are_one_clear_line(sb):
    with pytest.raises(ValueError, match="at least one scope"):
        sb.issue_grant_code(" , ")
    with pytest.raises(ValueError, match="3 to 10"):
        sb.issue_grant_code(EVENTS_READ, minutes=30)


def test_the_token_budget_is_per_refresh_token(sb, http):
    limited = sb.credentials_with(EVENTS_READ)["refresh_token"]
    for _ in range(10):
        assert http.refresh(limited).status_code == 200
    assert http.refresh(limited).json()["error"] == "Access Denied"
    assert http.refresh(sb.credentials["refresh_token"]).status_code == 200


def test_api_domain_can_name_another_data_center(sb, http):
    sb.set_api_domain("https://www.zohoapis.eu")
    assert http.refresh(sb.credentials["refresh_token"]).json()["api_domain"] == \
        "https://www.zohoapis.eu"
    assert http.exchange(sb.issue_grant_code(EVENTS_READ)).json()["api_domain"] == \
        "https://www.zohoapis.eu"
    sb.set_api_domain(None)
    assert http.refresh(sb.credentials["refresh_token"]).json()["api_domain"] == sb.url


def test_the_ready_made_credentials_reach_everything(sb, http):
    body = http.refresh(sb.credentials["refresh_token"]).json()
    token = body["access_token"]
    assert "ZohoCRM.modules.ALL" in body["scope"].split()
    _, booking_id = sb.book(FROZEN_NOW + dt.timedelta(days=2))
    for path, params in [("/crm/v8/Events", {"fields": "id"}), ("/crm/v8/Events/deleted", {}),
                         ("/crm/v8/Contacts", {"fields": "id"}), ("/crm/v2/settings/modules", {}),
                         ("/crm/v8/settings/fields", {"module": "Events"}), ("/crm/v2/org", {}),
                         ("/crm/v2/users", {"type": "AllUsers"}),
                         ("/bookings/v1/json/getappointment", {"booking_id": booking_id})]:
        reply = http.get(path, token, **params)
        assert reply.status_code in (200, 204), (path, reply.text)
        assert "OAUTH_SCOPE_MISMATCH" not in reply.text and "invalid oauth scope" not in reply.text


# -- scopes enforced -------------------------------------------------------------------------

# (granted scopes, method, path, params/body) that must be refused, and one that must not.
REFUSED = [
    (EVENTS_READ, "PUT", "/crm/v8/Events", {"json": {"data": [{"id": "1"}]}}),
    (EVENTS_READ, "DELETE", "/crm/v8/Events", {"params": {"ids": "1"}}),
    (EVENTS_READ, "POST", "/crm/v8/Events/1/actions/cancel", {"json": {"data": [{}]}}),
    (EVENTS_READ, "GET", "/crm/v8/Contacts", {"params": {"fields": "id"}}),
    (EVENTS_READ, "GET", "/crm/v8/settings/fields", {"params": {"module": "Events"}}),
    (EVENTS_READ, "GET", "/crm/v2/settings/modules", {}),
    (EVENTS_READ, "GET", "/crm/v2/settings/modules/Events", {}),
    (EVENTS_READ, "GET", "/crm/v2/org", {}),
    (EVENTS_READ, "GET", "/crm/v2/users", {}),
    (EVENTS_READ, "GET", "/crm/v8/Meetingz", {"params": {"fields": "id"}}),
    ("ZohoCRM.settings.fields.READ", "GET", "/crm/v8/Events/deleted", {}),
    ("ZohoCRM.modules.contacts.READ", "GET", "/crm/v8/Leads/1", {}),
    ("ZohoCRM.modules.events.UPDATE", "GET", "/crm/v8/Events", {"params": {"fields": "id"}}),
]
ALLOWED = [
    ("ZohoCRM.modules.events.ALL", "GET", "/crm/v8/Events/deleted", {}),
    ("ZohoCRM.Modules.Events.UPDATE", "POST", "/crm/v8/Events/1/actions/cancel",
     {"json": {"data": [{"send_cancelling_mail": False}]}}),
    ("ZohoCRM.modules.WRITE", "PUT", "/crm/v8/Events", {"json": {"data": [{"id": "1"}]}}),
    ("ZohoCRM.modules.READ", "GET", "/crm/v8/Leads", {"params": {"fields": "id"}}),
    ("ZohoCRM.settings.ALL", "GET", "/crm/v2/settings/modules", {}),
    ("ZohoCRM.settings.modules.READ", "GET", "/crm/v2/settings/modules/Events", {}),
    ("ZohoCRM.settings.fields.READ", "GET", "/crm/v8/settings/fields", {"params": {"module": "Leads"}}),
    ("ZohoCRM.org.READ", "GET", "/crm/v2/org", {}),
    ("ZohoCRM.users.ALL", "GET", "/crm/v2/users", {}),
    ("ZohoCRM.modules.ALL", "GET", "/crm/v8/Meetingz", {"params": {"fields": "id"}}),
]


def _call(http, token, method, path, kwargs):
    return http.session.request(method, f"{http.sb.url}{path}", timeout=10,
                                headers={"Authorization": f"Zoho-oauthtoken {token}"}, **kwargs)


@pytest.mark.parametrize("granted,method,path,kwargs", REFUSED,
                         ids=[f"{g}:{m} {p}" for g, m, p, _ in REFUSED])
def test_crm_refuses_a_call_outside_the_tokens_scopes(http, granted, method, path, kwargs):
    reply = _call(http, http.access(granted), method, path, kwargs)
    assert (reply.status_code, reply.json()) == (401, SCOPE_ERROR)


@pytest.mark.parametrize("granted,method,path,kwargs", ALLOWED,
                         ids=[f"{g}:{m} {p}" for g, m, p, _ in ALLOWED])
def test_crm_lets_a_call_within_the_tokens_scopes_through(http, granted, method, path, kwargs):
    reply = _call(http, http.access(granted), method, path, kwargs)
    assert reply.status_code != 401, reply.text
    assert "OAUTH_SCOPE_MISMATCH" not in reply.text


def test_an_unknown_module_is_invalid_module_never_a_scope_error_with_all_modules(sb, http):
    token = http.access("ZohoCRM.modules.ALL")
    body = http.get("/crm/v8/Meetingz", token, fields="id").json()
    assert body["code"] == "INVALID_MODULE"


@pytest.mark.parametrize("shape", ["json", "html"])
def test_bookings_refuses_a_token_without_its_scope(sb, http, shape):
    _, booking_id = sb.book(FROZEN_NOW + dt.timedelta(days=2))
    sb.set_bookings_scope_refusal(shape)
    token = http.access("ZohoCRM.modules.ALL")
    reply = http.get("/bookings/v1/json/getappointment", token, booking_id=booking_id)
    if shape == "json":
        assert (reply.status_code, reply.json()) == (200, {"response": {
            "status": "failure", "errormessage": "invalid oauth scope to access this URL"}})
    else:
        assert reply.status_code == 401 and reply.headers["Content-Type"].startswith("text/html")
        assert "invalid oauth scope" in reply.text
    allowed = http.get("/bookings/v1/json/getappointment", http.access("zohobookings.data.CREATE"),
                       booking_id=booking_id)
    assert allowed.json()["response"]["returnvalue"]["booking_id"] == booking_id
    # An unknown token is still the plain HTML 401, whatever the refusal shape.
    assert http.get("/bookings/v1/json/getappointment", "1000.nope",
                    booking_id=booking_id).status_code == 401


def test_an_unknown_refusal_shape_is_refused(sb):
    with pytest.raises(ValueError, match="json | html"):
        sb.set_bookings_scope_refusal("xml")


# -- the request log and the control surface --------------------------------------------------

def test_request_log_keeps_headers_with_the_credential_masked(sb, http):
    code = sb.issue_grant_code(EVENTS_READ)
    body = http.exchange(code).json()
    http.get("/crm/v8/Events", body["access_token"], fields="id")
    entries = {e["endpoint"]: e for e in sb.request_log}
    assert entries["crm.list"]["headers"]["Authorization"] == "Zoho-oauthtoken ***"
    assert entries["accounts.token"]["query"]["code"] == "***"
    assert entries["accounts.token"]["query"]["client_secret"] == "***"
    dump = repr(sb.request_log)
    for secret in (code, body["access_token"], body["refresh_token"],
                   sb.credentials["client_secret"]):
        assert secret not in dump


def test_control_verbs_for_the_self_client_flow(sb, http):
    def control(verb, **body):
        reply = http.session.post(f"{sb.url}/_sandbox/{verb}", json=body, timeout=10)
        return reply.status_code, reply.json()

    status, body = control("issue_grant_code", scopes="ZohoCRM.org.READ", minutes=5)
    assert status == 200
    token = http.exchange(body["code"]).json()["access_token"]
    assert http.get("/crm/v2/org", token).status_code == 200
    assert control("issue_grant_code", scopes="")[0] == 400
    status, creds = control("credentials_with", scopes=["ZohoCRM.users.READ"])
    assert status == 200 and http.refresh(creds["refresh_token"]).json()["scope"] == \
        "ZohoCRM.users.READ"
    assert control("set_api_domain", url="https://www.zohoapis.in") == (200, {"ok": True})
    assert http.refresh(creds["refresh_token"]).json()["api_domain"] == "https://www.zohoapis.in"
    assert control("set_bookings_scope_refusal", shape="html")[0] == 200
    assert sb.bookings_scope_refusal == "html"
    assert control("set_bookings_scope_refusal", shape="xml")[0] == 400


def test_cli_grant_code_prints_a_code_that_works(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "bookings_sync", "sandbox", "--port", "0",
         "--grant-code", "ZohoCRM.modules.events.READ,ZohoCRM.settings.fields.READ"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any(line.startswith("# Ctrl-C") for line in lines):
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line.rstrip("\n"))
        url = next(line.split('"')[1] for line in lines if line.startswith("accounts_url"))
        client_id = next(line.split('"')[1] for line in lines if line.startswith("client_id"))
        secret = next(line.split('"')[1] for line in lines if line.startswith("client_secret"))
        code = lines[[i for i, line in enumerate(lines) if "grant code" in line][0] + 1]
        reply = requests.post(f"{url}/oauth/v2/token", timeout=10, params={
            "grant_type": "authorization_code", "client_id": client_id,
            "client_secret": secret, "code": code})
        assert reply.json()["scope"].split() == ["ZohoCRM.modules.events.READ",
                                                 "ZohoCRM.settings.fields.READ"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_grant_code_without_scopes_is_one_clear_line():
    proc = subprocess.run([sys.executable, "-m", "bookings_sync", "sandbox", "--port", "0",
                           "--grant-code", ","], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "at least one scope" in proc.stderr
    assert "Traceback" not in proc.stderr

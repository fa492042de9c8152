"""``make hostile``'s self-checks: cases that break one rule on purpose — a planted secret, a
traceback, a raw control character, a reschedule of a booking two meetings carry, a redirect
followed to another host, the same reschedule applied twice, a move never synced, a wrong exit
code, a state file that does not load, a refusal recorded where none is allowed. Each must come
out *not handled* for exactly that rule (and no other), or the campaign's checks prove nothing.
They are not counted in the figures.
"""

from __future__ import annotations

import sys

import requests

from hostile_harness import Case, Harness, three


def _token(h: Harness) -> str:
    c = h.sb.credentials
    reply = requests.post(f"{h.sb.url}/oauth/v2/token", data={
        "grant_type": "refresh_token", "client_id": c["client_id"],
        "client_secret": c["client_secret"], "refresh_token": c["refresh_token"]}, timeout=10)
    return reply.json()["access_token"]


def _reschedule_over_http(h: Harness, booking_id: str, wall: str) -> None:
    """What a buggy client would send: a reschedule, over HTTP, from outside the daemon."""
    h.step(f"POST rescheduleappointment {booking_id} {wall} (not the daemon)")
    requests.post(f"{h.sb.url}/bookings/v1/json/rescheduleappointment",
                  data={"booking_id": booking_id, "start_time": wall},
                  headers={"Authorization": f"Zoho-oauthtoken {_token(h)}"}, timeout=10)


def planted_secret(h: Harness) -> None:
    three(h, baseline=False)
    h.output("planted output", f"error: {h.sb.credentials['client_secret']}")


def planted_traceback(h: Harness) -> None:
    h.cli(command=[sys.executable, "-c", "import bookings_sync.no_such_module"], label="python")


def planted_control_char(h: Harness) -> None:
    h.output("planted output", "slot \x1b[2J taken")


def wrong_booking(h: Harness) -> None:
    three(h)
    h.act("crm_clone", h.meeting("A"))
    _reschedule_over_http(h, h.booking("A"), h.at(7).strftime("%d-%b-%Y %H:%M:%S"))


def redirect_followed(h: Harness) -> None:
    three(h, baseline=False)
    h.act("inject", "/crm/v8/Events", "redirect", 1, status=307)
    h.step("GET /crm/v8/Events following redirects (not the daemon)")
    requests.get(f"{h.sb.url}/crm/v8/Events", allow_redirects=True, timeout=10,
                 headers={"Authorization": f"Zoho-oauthtoken {_token(h)}"})


def twice(h: Harness) -> None:
    three(h, baseline=False)
    h.act("crm_move", h.meeting("A"), h.at(7))
    for _ in range(2):
        _reschedule_over_http(h, h.booking("A"), h.at(7).strftime("%d-%b-%Y %H:%M:%S"))


def not_converged(h: Harness) -> None:
    three(h)
    h.act("crm_move", h.meeting("A"), h.at(7))
    h.check_converged()


def wrong_exit(h: Harness) -> None:
    three(h, baseline=False, sync="overlap_seconds = nan")
    h.run_once(0, label="bad config")


def state_garbage(h: Harness) -> None:
    three(h)
    (h.state_dir / "state.json").write_bytes(b"{garbage")
    h.check_state_loads("planted garbage")


def nuisance_failure(h: Harness) -> None:
    three(h, blocker=True)
    h.act("crm_move", h.meeting("A"), h.at(6))
    h.run_once(1, label="a refusal")
    h.status(allowed_failures=set())


def cases() -> list[Case]:
    planted = [("secret", "secret", planted_secret), ("traceback", "traceback", planted_traceback),
               ("control-char", "control-char", planted_control_char),
               ("wrong-booking", "wrong-booking", wrong_booking),
               ("redirect-followed", "secret", redirect_followed),
               ("applied-twice", "applied-twice", twice), ("converge", "converge", not_converged),
               ("exit", "exit", wrong_exit), ("state-load", "state-load", state_garbage),
               ("failure-recorded", "failure-recorded", nuisance_failure)]
    return [Case("self-checks", f"self-check/{name}", scenario, quick=True, catches=kind)
            for name, kind, scenario in planted]

"""The resident daemon as systemd runs it: ``python -m bookings_sync --config X`` in a child
process, speaking sd_notify to a real unix datagram socket, against an in-process sandbox.

Promises: READY=1 only once it works; the first cycle runs at start; WATCHDOG=1 after every
cycle (and, under ``WatchdogSec``, between cycles unless one is stuck); cycles never overlap;
SIGTERM during a cycle answers STOPPING=1 at once, lets that cycle finish and exits 0.
"""

from __future__ import annotations

import datetime as dt
import signal
import time

from bookings_sync.sandbox import Sandbox
from bookings_sync.store import SnapshotStore

from e2e import NOW, write_config
from bookings_sync.sandbox import wait_for
from service_proc import Daemon, NotifySocket



def test_ready_watchdog_then_stopping_without_cutting_a_cycle_in_half(tmp_path):
    with Sandbox() as sb, NotifySocket(tmp_path / "notify.sock") as notify:
        meeting_id, booking_id = sb.book(start=NOW + dt.timedelta(days=3),
                                         time_zone="Europe/Berlin")
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        with Daemon(config, tmp_path / "daemon.log", notify=notify) as daemon:
            assert notify.until(lambda got: sum("WATCHDOG=1" in m for _, m in got) >= 2, 20), \
                notify.received
            # READY=1 came first, alone with its STATUS; each WATCHDOG=1 reports a cycle.
            first = notify.received[0][1]
            assert first[0] == "READY=1" and first[1].startswith("STATUS=running"), first
            pings = [m for _, m in notify.received if "WATCHDOG=1" in m]
            assert all(any(line.startswith("STATUS=last cycle ok") for line in m) for m in pings)
            assert len(daemon.events("cycle.end")) >= len(pings)

            # A slow cycle: the appointment read stalls 1.5 s. SIGTERM lands in the middle.
            sb.inject("getappointment", "stall", stall_seconds=1.5)
            sb.crm_move(meeting_id, NOW + dt.timedelta(days=4))
            new_start = sb.meeting(meeting_id)["Start_DateTime"]
            assert wait_for(lambda: sb.calls["bookings.getappointment"] == 1, 10)
            daemon.send(signal.SIGTERM)
            assert notify.until(lambda got: "STOPPING=1" in got[-1][1], 5), notify.received[-3:]
            # STOPPING=1 came while the cycle was still under way: nothing written yet.
            assert sb.calls["bookings.rescheduleappointment"] == 0
            code = daemon.proc.wait(timeout=30)
            assert code == 0, daemon.stderr[-2000:]

        # The cycle that was running finished: Bookings moved and the state says so.
        assert sb.appointment(booking_id)["start"] == new_start
        assert sb.calls["bookings.rescheduleappointment"] == 1
        with SnapshotStore.open(tmp_path / "state") as store:
            assert store.pending() == {}
            assert store.meeting(meeting_id)["outcome"] == "done"
        names = [e["event"] for e in daemon.events()
                 if e["event"] in ("cycle.start", "cycle.end", "action", "daemon.stopping",
                                   "daemon.stopped")]
        # ... cycle.start, daemon.stopping, action, cycle.end, daemon.stopped — in that order.
        assert names[-5:] == ["cycle.start", "daemon.stopping", "action", "cycle.end",
                              "daemon.stopped"], names


def test_first_cycle_at_start_and_watchdog_pings_between_cycles_unless_one_is_stuck(tmp_path):
    """interval = 30 (longer than this test): the only cycle is the one at start. Under a
    0.4 s WatchdogSec the daemon pings every 0.2 s, stops pinging while a cycle has run longer
    than 0.4 s (here the first one, stalled 2 s), and resumes after it."""
    with Sandbox() as sb, NotifySocket(tmp_path / "notify.sock") as notify:
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        config.write_text(config.read_text().replace("interval = 1", "interval = 30"))
        sb.inject("/Events", "stall", stall_seconds=2.0)     # the first cycle's CRM read
        with Daemon(config, tmp_path / "daemon.log", notify=notify,
                    env={"WATCHDOG_USEC": "400000"}) as daemon:
            assert notify.until(lambda got: any(m[0] == "READY=1" for _, m in got), 10)
            ready_at = notify.received[-1][0]
            assert notify.until(lambda got: any("STATUS=last cycle ok" in " ".join(m)
                                                for _, m in got), 10), notify.received
            cycle_at = notify.received[-1][0]
            assert cycle_at - ready_at < 3.0          # the first cycle ran at start
            time.sleep(0.9)
            notify.until(lambda got: False, 0.1)      # drain what came meanwhile

            pings = [t for t, m in notify.received if m == ["WATCHDOG=1"]]
            # (1 s, not 0.4 s: room for a late scheduler tick on a busy machine)
            during = [t for t in pings if ready_at + 1.0 < t < cycle_at]
            after = [t for t in pings if t > cycle_at]
            assert during == [], "pinged while a cycle was stuck past the watchdog period"
            assert any(t < ready_at + 1.0 for t in pings)    # pings while the cycle was young
            assert len(after) >= 2                            # and again once it finished
            assert len(daemon.events("cycle.end")) == 1

            # Idle until the next tick in ~28 s: SIGTERM does not wait for it.
            stopped = time.monotonic()
            assert daemon.stop(signal.SIGTERM) == 0
            assert time.monotonic() - stopped < 3
            assert notify.until(lambda got: "STOPPING=1" in got[-1][1], 1)


def test_slow_cycles_never_overlap(tmp_path):
    """interval = 1 and cycles of 1.3–2.6 s (stalled CRM reads): max_instances=1 runs them one
    after the other; each overrun is one warning of ours, not APScheduler's per-tick line."""
    with Sandbox() as sb:
        sb.book(start=NOW + dt.timedelta(days=2))
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        sb.inject("/Events", "stall", count=3, stall_seconds=1.3)
        with Daemon(config, tmp_path / "daemon.log") as daemon:
            assert wait_for(lambda: len(daemon.events("cycle.end")) >= 3, 20)
            assert daemon.stop() == 0
        events = [e for e in daemon.events() if e["event"] in ("cycle.start", "cycle.end")]
        names = [e["event"] for e in events]
        assert names == ["cycle.start", "cycle.end"] * (len(names) // 2), names
        overran = daemon.events("cycle.overran")
        assert len(overran) == 2 and all(e["level"] == "warning" for e in overran)
        assert overran[0]["duration_s"] >= 1.3 and overran[1]["duration_s"] >= 2.6
        text = daemon.log.read_text()
        assert "maximum number of running instances" not in text


def test_no_notify_socket_is_fine_and_sigint_also_stops(tmp_path):
    with Sandbox() as sb:
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        with Daemon(config, tmp_path / "daemon.log") as daemon:
            assert wait_for(lambda: sb.calls["crm.list"] >= 2, 15)   # at start, then 1 s later
            assert daemon.stop(signal.SIGINT) == 0
        assert daemon.events("daemon.stopping")[0]["signal"] == "SIGINT"
        assert daemon.events("daemon.stopped")


def test_a_daemon_that_cannot_authenticate_exits_3_before_ready(tmp_path):
    with Sandbox() as sb, NotifySocket(tmp_path / "notify.sock") as notify:
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        config.write_text(config.read_text().replace(sb.credentials["client_secret"], "wrong"))
        with Daemon(config, tmp_path / "daemon.log", notify=notify) as daemon:
            assert daemon.proc.wait(timeout=30) == 3
        [failed] = daemon.events("daemon.start_failed")
        assert failed["level"] == "error" and "invalid_client" in failed["error"]
        assert notify.receive(0.2) is None              # never READY=1


def test_zoho_unreachable_at_boot_is_waited_out_then_ready(tmp_path):
    """The token request's connection is dropped once (Zoho not reachable yet at boot): the
    daemon logs it, waits 1 s, tries again, and only then says READY=1."""
    with Sandbox() as sb, NotifySocket(tmp_path / "notify.sock") as notify:
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        sb.inject("/oauth/v2/token", "drop")
        with Daemon(config, tmp_path / "daemon.log", notify=notify) as daemon:
            assert notify.until(lambda got: any("STATUS=last cycle ok" in " ".join(m)
                                                for _, m in got), 10), notify.received
            assert notify.received[0][1][0] == "READY=1"
            assert daemon.stop() == 0
        names = [e["event"] for e in daemon.events()]
        assert names.index("daemon.waiting_for_zoho") < names.index("daemon.start")
        assert sb.calls["accounts.token"] == 2


def test_sigterm_while_waiting_for_zoho_stops_at_once(tmp_path):
    with Sandbox() as sb:
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    # The sandbox is gone: connections are refused, and the HTTP layer's retries of the token
    # request would take seconds. Before READY=1 nothing is under way, so SIGTERM stops now.
    with NotifySocket(tmp_path / "notify.sock") as notify, \
            Daemon(config, tmp_path / "daemon.log", notify=notify) as daemon:
        # Inside the first token request, retrying the refused connection (a fixed sleep was
        # not enough on a loaded machine: the signal came before the handlers were installed).
        assert wait_for(lambda: daemon.events("zoho.retry"), 20), daemon.events()
        assert daemon.proc.poll() is None
        stopped = time.monotonic()
        assert daemon.stop() == 0
        assert time.monotonic() - stopped < 2
        assert "READY=1" not in notify.lines
    [stopping] = daemon.events("daemon.stopping")
    assert stopping["signal"] == "SIGTERM" and stopping["before_ready"] is True

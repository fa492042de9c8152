"""SIGHUP, as ``systemctl reload`` sends it (ExecReload=/bin/kill -HUP $MAINPID), to the real daemon
in a child process.

Promises: a valid edited config is applied between cycles (a new interval reschedules the job;
``daemon.reloaded`` names the changed keys, never a value) and systemd hears RELOADING=1 then
READY=1; a broken config, or a moved ``state_dir``, is one ``daemon.reload_failed`` line and the
daemon carries on with the old one; the log file is reopened; SIGHUP never kills the daemon, and
while it waits for Zoho at boot a reload applies at once.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

from bookings_sync.sandbox import Sandbox, wait_for

from e2e import NOW, write_config
from service_proc import Daemon, NotifySocket


def slow_config(sb, tmp_path):
    """interval = 30: after the cycle at start, nothing runs for the length of a test."""
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    config.write_text(config.read_text().replace("interval = 1", "interval = 30"))
    return config


def cycles(daemon: Daemon) -> int:
    return len(daemon.events("cycle.end"))


def test_an_edited_config_is_applied_between_cycles(tmp_path):
    with Sandbox() as sb, NotifySocket(tmp_path / "notify.sock") as notify:
        sb.book(start=NOW + dt.timedelta(days=3))
        config = slow_config(sb, tmp_path)
        with Daemon(config, tmp_path / "daemon.log", notify=notify) as daemon:
            assert wait_for(lambda: cycles(daemon) == 1, 15)
            time.sleep(1.5)
            assert cycles(daemon) == 1                       # interval 30: nothing more yet
            config.write_text(config.read_text()
                              .replace("interval = 30", "interval = 1")
                              .replace("[crm]", '[crm]\nstatus_field = "Meeting_Status"')
                              .replace('data_center = "com"', 'data_center = "com"\ntimeout = 20'))
            daemon.send(signal.SIGHUP)
            assert wait_for(lambda: daemon.events("daemon.reloaded"), 10), daemon.events()
            [reloaded] = daemon.events("daemon.reloaded")
            assert reloaded["changed"] == ["[zoho] timeout", "[crm] status_field",
                                           "[sync] interval"]
            assert reloaded["config"] == str(config)
            # The new interval: cycles every second from now on.
            assert wait_for(lambda: cycles(daemon) >= 4, 10), cycles(daemon)
            assert notify.until(lambda got: sum(m[0] == "READY=1" for _, m in got) == 2, 5)
            assert daemon.proc.poll() is None
            assert daemon.stop() == 0
    # systemd hears the reload begin, then end (cycles' WATCHDOG=1 may come in between).
    messages = [m for _, m in notify.received if m[0] in ("READY=1", "RELOADING=1")]
    assert [m[0] for m in messages] == ["READY=1", "RELOADING=1", "READY=1"]
    assert messages[1][1].startswith("MONOTONIC_USEC=")
    assert "configuration reloaded" in messages[2][1]
    text = daemon.log.read_text()
    for secret in sb.credentials.values():
        assert secret not in text


def test_an_unchanged_config_reloads_to_nothing_new(tmp_path):
    with Sandbox() as sb:
        config = slow_config(sb, tmp_path)
        with Daemon(config, tmp_path / "daemon.log") as daemon:
            assert wait_for(lambda: cycles(daemon) == 1, 15)
            daemon.send(signal.SIGHUP)
            assert wait_for(lambda: daemon.events("daemon.reloaded"), 10)
            assert daemon.events("daemon.reloaded")[0]["changed"] == []
            assert daemon.stop() == 0


def test_a_broken_config_keeps_the_running_one(tmp_path):
    with Sandbox() as sb:
        sb.book(start=NOW + dt.timedelta(days=3))
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        good = config.read_text()
        with Daemon(config, tmp_path / "daemon.log") as daemon:
            assert wait_for(lambda: cycles(daemon) >= 1, 15)
            config.write_text(good.replace("interval = 1", "interval = nan"))
            daemon.send(signal.SIGHUP)
            assert wait_for(lambda: daemon.events("daemon.reload_failed"), 10)
            [failed] = daemon.events("daemon.reload_failed")
            assert failed["level"] == "error"
            assert failed["error"] == (f"{config}: [sync] interval: must be a finite number "
                                       f"(1 – 86400 seconds), got nan")
            assert "exception" not in failed          # a user's error: no traceback
            # Still running its cycles, every second, with the old configuration.
            seen = cycles(daemon)
            assert wait_for(lambda: cycles(daemon) >= seen + 2, 10)

            # A new state_dir cannot be taken over while running: restart needed.
            config.write_text(good.replace(str(tmp_path / "state"), str(tmp_path / "moved")))
            daemon.send(signal.SIGHUP)
            assert wait_for(lambda: len(daemon.events("daemon.reload_failed")) == 2, 10)
            moved = daemon.events("daemon.reload_failed")[1]["error"]
            assert "[sync] state_dir: changed from" in moved and "needs a restart" in moved
            seen = cycles(daemon)
            assert wait_for(lambda: cycles(daemon) >= seen + 2, 10)
            assert daemon.events("daemon.reloaded") == []
            assert daemon.stop() == 0
        assert not (tmp_path / "moved").exists()


def test_sighup_reopens_the_log_file(tmp_path):
    with Sandbox() as sb:
        config = slow_config(sb, tmp_path)
        log = tmp_path / "daemon.log"
        rotated = tmp_path / "daemon.log.1"
        with Daemon(config, log) as daemon:
            assert wait_for(lambda: log.exists() and "cycle.end" in log.read_text(), 15)
            os.rename(log, rotated)
            daemon.send(signal.SIGHUP)
            # No cycle runs for 30 s: the reload's own line is the first in the new file.
            assert wait_for(lambda: log.exists() and "daemon.reloaded" in log.read_text(), 10)
            assert "daemon.reloaded" not in rotated.read_text()
            assert daemon.stop() == 0
        assert [e["event"] for e in daemon.events()][-1] == "daemon.stopped"


def test_sighup_at_boot_never_kills_and_a_fixed_config_starts_it(tmp_path):
    """Booted against a Zoho that is not there (the wrong URL), the daemon is retrying its first
    token request. SIGHUPs do not kill it; each reloads at once. Once the admin has fixed the
    URL, the next SIGHUP gets it going."""
    with Sandbox() as gone:
        config = write_config(gone, tmp_path / "state", tmp_path / "sync.toml")
    with Sandbox() as sb, NotifySocket(tmp_path / "notify.sock") as notify:
        with Daemon(config, tmp_path / "daemon.log", notify=notify) as daemon:
            # Inside the first token request, retrying the refused connection.
            assert wait_for(lambda: daemon.events("zoho.retry"), 20)
            for _ in range(3):
                daemon.send(signal.SIGHUP)
                time.sleep(0.2)
            assert wait_for(lambda: len(daemon.events("daemon.reloaded")) == 3, 5)
            assert daemon.proc.poll() is None
            assert "READY=1" not in notify.lines
            write_config(sb, tmp_path / "state", config)        # the right URL
            daemon.send(signal.SIGHUP)
            assert notify.until(lambda got: any(m[0] == "READY=1" for _, m in got), 15), \
                notify.received
            assert wait_for(lambda: daemon.events("cycle.end"), 10)
            assert daemon.stop() == 0
        reloads = daemon.events("daemon.reloaded")
        assert [r["changed"] for r in reloads[:3]] == [[], [], []]
        assert "[zoho] accounts_url" in reloads[3]["changed"]
        assert daemon.events("daemon.waiting_for_zoho") == []   # no wait out: reloaded at once
        # RELOADING=1 is for a daemon systemd already considers started.
        assert "RELOADING=1" not in notify.lines

"""The resident daemon speaks sd_notify for real and stops cleanly on SIGTERM."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from bookings_sync.sandbox import Sandbox
from bookings_sync.store import SnapshotStore

from e2e import write_config

UTC = dt.timezone.utc


def receive(sock: socket.socket, timeout: float) -> list[str]:
    sock.settimeout(timeout)
    try:
        return sock.recv(4096).decode().split("\n")
    except socket.timeout:
        return []


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_ready_watchdog_then_stopping_without_cutting_a_cycle_in_half(tmp_path):
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    with Sandbox() as sb:
        meeting_id, booking_id = sb.book(start=dt.datetime.now(UTC).replace(microsecond=0)
                                         + dt.timedelta(days=3), time_zone="Europe/Berlin")
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        env = dict(os.environ, NOTIFY_SOCKET=address)
        env.pop("JOURNAL_STREAM", None)
        daemon = subprocess.Popen([sys.executable, "-m", "bookings_sync", "--config", str(config),
                                   "--log-format", "json"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            messages = []
            deadline = time.monotonic() + 20
            while sum(m == "WATCHDOG=1" for m in messages) < 2 and time.monotonic() < deadline:
                messages += receive(listener, 5)
            assert messages[0] == "READY=1", messages
            assert sum(m == "WATCHDOG=1" for m in messages) >= 2
            assert any(m.startswith("STATUS=last cycle ok") for m in messages)

            # A slow cycle: the appointment read stalls 1.5 s. SIGTERM lands in the middle.
            sb.inject("getappointment", "stall", stall_seconds=1.5)
            sb.crm_move(meeting_id, dt.datetime.now(UTC).replace(microsecond=0)
                        + dt.timedelta(days=4))
            new_start = sb.meeting(meeting_id)["Start_DateTime"]
            assert wait_for(lambda: sb.calls["bookings.getappointment"] == 1, 10)
            daemon.send_signal(signal.SIGTERM)
            tail = []
            while "STOPPING=1" not in tail:
                got = receive(listener, 10)
                assert got, f"no STOPPING=1 after SIGTERM: {tail}"
                tail += got
            code = daemon.wait(timeout=30)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        assert code == 0, daemon.stderr.read().decode()[-2000:]
        # The cycle that was running finished: Bookings moved and the state says so.
        assert sb.appointment(booking_id)["start"] == new_start
        assert sb.calls["bookings.rescheduleappointment"] == 1
        with SnapshotStore.open(tmp_path / "state") as store:
            assert store.pending() == {}
            assert store.meeting(meeting_id)["outcome"] == "done"
    listener.close()


def test_no_notify_socket_is_fine_and_sigint_also_stops(tmp_path):
    with Sandbox() as sb:
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        daemon = subprocess.Popen([sys.executable, "-m", "bookings_sync", "--config", str(config),
                                   "--log-format", "json"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert wait_for(lambda: sb.calls["crm.list"] >= 2, 15)   # first cycle at start, then 1 s
        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(timeout=30) == 0
        assert b"daemon.stopped" in daemon.stderr.read()


def test_a_daemon_that_cannot_authenticate_exits_3_before_ready(tmp_path):
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    with Sandbox() as sb:
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
        config.write_text(config.read_text().replace(sb.credentials["client_secret"], "wrong"))
        proc = subprocess.run([sys.executable, "-m", "bookings_sync", "--config", str(config),
                               "--log-format", "json"], env=dict(os.environ, NOTIFY_SOCKET=address),
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3
    assert "invalid_client" in proc.stderr
    assert "READY=1" not in receive(listener, 0.2)
    listener.close()


def test_zoho_unreachable_at_boot_is_waited_out_not_fatal(tmp_path):
    with Sandbox() as sb:
        config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    # The sandbox is gone: the daemon waits (no READY=1), and SIGTERM still stops it cleanly.
    daemon = subprocess.Popen([sys.executable, "-m", "bookings_sync", "--config", str(config),
                               "--log-format", "json"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(daemon.stderr), daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: any("daemon.waiting_for_zoho" in l for l in lines), 30)
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0

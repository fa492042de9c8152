"""The resident daemon: an APScheduler ``BlockingScheduler`` running one cycle per interval,
talking to systemd, stopping cleanly.

- The interval job has ``max_instances=1`` and ``coalesce=True`` (a slow cycle never overlaps the
  next; missed runs collapse into one) and runs first at start.
- SIGTERM / SIGINT stop the scheduler; a cycle already running finishes (its commits are
  atomic, but a half-done cycle would re-spend API calls), then the process exits 0.
- systemd ``Type=notify``: ``READY=1`` once config, state and the first token are good,
  ``WATCHDOG=1`` and ``STATUS=`` after every cycle, ``STOPPING=1`` on the way out. The protocol is a
  datagram to ``$NOTIFY_SOCKET`` (sd_notify(3)); :class:`Notifier` is those few lines of stdlib
  code, so there is no libsystemd dependency.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import threading

import structlog
from apscheduler.schedulers.blocking import BlockingScheduler

from bookings_sync.engine.cycle import CycleReport
from bookings_sync.runtime import Runtime
from bookings_sync.zoho.errors import ZohoUnreachable

log = structlog.get_logger("bookings_sync.service")


class Notifier:
    """sd_notify(3) over ``$NOTIFY_SOCKET``; silently a no-op outside systemd."""

    def __init__(self, address: str | None = None):
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._address = None
        self._sock = None
        if address:
            # "@name" is an abstract-namespace socket: a leading NUL byte on the wire.
            self._address = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def notify(self, *states: str) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(states).encode("utf-8"), self._address)
        except OSError as exc:
            log.warning("systemd.notify_failed", error=str(exc))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


def status_line(report: CycleReport) -> str:
    s = report.summary()
    done = sum(report.outcomes.values())
    text = (f"last cycle {s['outcome']}: {s['fetched']} fetched, {s['planned']} planned, "
            f"{done} acted, {s['crm_calls']} CRM + {s['bookings_calls']} Bookings calls, "
            f"{s['duration_ms']} ms")
    if report.held:
        text += f"; {report.held} cancels HELD by the mass-cancel guard"
    if report.error:
        text += f"; error: {report.error}"
    return text


def _first_token(runtime: Runtime, stopping: threading.Event) -> bool:
    """Fetch the first access token, waiting out a Zoho that is unreachable at boot (1 s,
    doubling to 60 s). Wrong credentials raise; a stop request returns False."""
    delay = 1.0
    while True:
        try:
            runtime.tokens.token()
            return True
        except ZohoUnreachable as exc:
            log.warning("daemon.waiting_for_zoho", error=str(exc), retry_in_s=delay)
            if stopping.wait(delay):
                return False
            delay = min(delay * 2, 60.0)


def run_daemon(runtime: Runtime, *, notifier: Notifier | None = None) -> int:
    notifier = notifier or Notifier()
    interval = runtime.config.sync.interval
    cycle_lock = threading.Lock()
    stopping = threading.Event()
    scheduler = BlockingScheduler(timezone=dt.timezone.utc)

    def stop(signum, _frame) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("daemon.stopping", signal=signal.Signals(signum).name)
        notifier.notify("STOPPING=1")
        if scheduler.running:
            scheduler.shutdown(wait=False)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        # READY=1 means it really works: config, state and credentials are good.
        if not _first_token(runtime, stopping):
            log.info("daemon.stopped")
            return 0

        def job() -> None:
            if stopping.is_set():
                return
            with cycle_lock:
                try:
                    report = runtime.cycle.run()
                except Exception:   # a bug must not kill the scheduler thread silently
                    log.exception("cycle.crashed")
                    notifier.notify("WATCHDOG=1", "STATUS=last cycle crashed, see the log")
                    return
                notifier.notify("WATCHDOG=1", f"STATUS={status_line(report)}")

        scheduler.add_job(job, "interval", seconds=interval, id="sync", max_instances=1,
                          coalesce=True, next_run_time=dt.datetime.now(dt.timezone.utc),
                          misfire_grace_time=None)
        log.info("daemon.start", interval=interval, state_dir=str(runtime.config.sync.state_dir))
        notifier.notify("READY=1", f"STATUS=running, first cycle now, then every {interval:g} s")
        if not stopping.is_set():
            scheduler.start()
    finally:
        with cycle_lock:   # let a running cycle finish before we close the store
            stopping.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        notifier.close()
    log.info("daemon.stopped")
    return 0

"""The resident daemon: an APScheduler ``BackgroundScheduler`` running one cycle per interval,
talking to systemd, stopping cleanly.

- The interval job has ``max_instances=1`` and ``coalesce=True`` (a slow cycle never overlaps the
  next; missed runs collapse into one) and runs first at start. A cycle longer than the interval
  logs one ``cycle.overran`` warning instead of APScheduler's "skipped" line per missed tick.
- SIGTERM / SIGINT: no new cycle starts; a cycle already running finishes (its commits are
  atomic, but a half-done cycle would re-spend API calls), then the process exits 0. Before
  READY=1 (waiting for Zoho at boot) nothing is under way, so a signal stops at once.
- SIGHUP (``systemctl reload``, systemd's convention): the ``--log-file`` is reopened, then the
  configuration file is read again. A valid one is swapped in between cycles — a new
  :class:`Runtime` around the same locked store, the old Zoho connection closed, the job
  rescheduled when ``interval`` changed — and logged as ``daemon.reloaded`` with the names of the
  keys that changed (never values). An invalid one, or one that moves ``state_dir`` (locked at
  start: that needs a restart), keeps the running configuration and logs one
  ``daemon.reload_failed`` line. A reload waits for a running cycle to finish; a stop signal
  meanwhile is acted on right after. SIGHUP never kills the daemon: while it waits for Zoho at
  boot, a reload applies at once and the wait starts over with the new configuration. The reload
  is bracketed by ``RELOADING=1`` … ``READY=1`` for systemd.
- systemd ``Type=notify``: ``READY=1`` once config, state and the first token are good,
  ``WATCHDOG=1`` and ``STATUS=`` after every cycle, ``STOPPING=1`` on the way out. When systemd
  sets ``$WATCHDOG_USEC`` the daemon also pings at half that period for as long as no cycle has
  been running longer than it — so an ``interval`` longer than ``WatchdogSec`` is fine, and a hung
  cycle still gets the daemon restarted. The protocol is a datagram to ``$NOTIFY_SOCKET``
  (sd_notify(3)); :class:`Notifier` is those few lines of stdlib code, so there is no libsystemd
  dependency.
- A cycle that crashes does not look healthy: the watchdog is fed only while cycles complete,
  and after ``MAX_CRASHES`` crashed cycles in a row the daemon exits 6 (systemd restarts it and
  shows it). A state directory that vanishes, is replaced or refuses a write stops the daemon
  with one ``state.unwritable`` line and exit 5 — never a second writer beside the first.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import select
import signal
import socket
import threading
import time
from typing import Callable

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from bookings_sync import config as config_mod
from bookings_sync import logs
from bookings_sync.engine.cycle import CycleReport
from bookings_sync.exitcodes import MEANINGS, ExitCode
from bookings_sync.runtime import Runtime
from bookings_sync.store import StateUnwritable
from bookings_sync.zoho.errors import ZohoError

log = structlog.get_logger("bookings_sync.service")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HANDLED_SIGNALS = (*STOP_SIGNALS, signal.SIGHUP)
_FATAL = 0          # a byte on the signal pipe that is no signal: a job says "stop now"
# Cycles crashing in a row (a bug, or a fault we do not handle) before the daemon exits 6, so
# that systemd restarts it and `systemctl status` shows it: a daemon that only logs tracebacks
# forever looks healthy.
MAX_CRASHES = 3


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


def watchdog_period() -> float | None:
    """``$WATCHDOG_USEC`` in seconds, when the watchdog is meant for this process
    (sd_watchdog_enabled(3)); None without one."""
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None


class _Interrupt(BaseException):
    """Raised by the signal handler only while booting, when there is nothing to finish.
    A BaseException, so that no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.name = signal.Signals(signum).name


class _Signals:
    """SIGTERM, SIGINT and SIGHUP as bytes on a pipe (``signal.set_wakeup_fd``), read by the main
    thread one signal at a time, in order.

    Past boot the handler does nothing itself: logging, sd_notify and ``Event.set()`` take locks
    that the interrupted main thread may be holding at that very bytecode — a deadlock a
    stopping daemon would meet once in a long while. So the main thread waits on the pipe and
    does all of that itself once awake.
    """

    def __init__(self) -> None:
        self.interruptible = False
        self._queue: list[int] = []
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        self._previous = {sig: signal.signal(sig, self._handler) for sig in HANDLED_SIGNALS}

    def _handler(self, signum, _frame) -> None:
        if self.interruptible:
            raise _Interrupt(signum)

    def _read(self) -> None:
        try:
            data = os.read(self._r, 64)
        except BlockingIOError:
            return
        self._queue += [number for number in data if number in HANDLED_SIGNALS or number == _FATAL]

    def wake_fatal(self) -> None:
        """From any thread: make :meth:`wait` return ``"FATAL"`` (the daemon must stop)."""
        try:
            os.write(self._w, bytes([_FATAL]))
        except BlockingIOError:
            pass    # the pipe is full of wake-ups already

    def wait(self, timeout: float | None = None) -> str | None:
        """The name of the next signal received (now or earlier), or None after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._queue:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._r], [], [], left)
            if not ready:
                return None
            self._read()
        number = self._queue.pop(0)
        return "FATAL" if number == _FATAL else signal.Signals(number).name

    def consumed(self, interrupt: _Interrupt) -> str:
        """``interrupt`` has been acted on: drop its byte from the pipe too. Returns its name."""
        self._read()    # the C handler wrote the byte before the Python handler raised
        number = signal.Signals[interrupt.name].value
        if number in self._queue:
            self._queue.remove(number)
        return interrupt.name

    def close(self) -> None:
        signal.set_wakeup_fd(self._old_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        os.close(self._r)
        os.close(self._w)


class _QuietMaxInstances(logging.Filter):
    """APScheduler says "skipped: maximum number of running instances reached" for every tick a
    long cycle spans; the daemon logs one ``cycle.overran`` line per such cycle instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in str(record.msg)


def status_line(report: CycleReport) -> str:
    s = report.summary()
    done = sum(report.outcomes.values())
    text = (f"last cycle {s['outcome']}: {s['fetched']} fetched, {s['planned']} planned, "
            f"{done} acted, {s['crm_calls']} CRM + {s['bookings_calls']} Bookings calls, "
            f"{s['duration_ms']} ms")
    if report.held:
        text += f"; {report.held} actions HELD by the mass-cancel or mass-book guard"
    if report.error:
        text += f"; error: {report.error}"
    return text


def reload_runtime(runtime: Runtime) -> Runtime | None:
    """The configuration file read again and built into a new :class:`Runtime` around
    ``runtime``'s store; ``runtime`` itself when nothing changed; None, after one
    ``daemon.reload_failed`` line, when the new configuration cannot be used."""
    old = runtime.config
    try:
        # The running state dir is open and locked: no probe. A new one is not even created.
        new = config_mod.load(old.path, check_state_dir=False)
        if new.sync.state_dir != old.sync.state_dir:
            raise config_mod.ConfigError(
                f"{old.path}: [sync] state_dir: changed from {old.sync.state_dir} to "
                f"{new.sync.state_dir}; the state directory is locked at start, so this needs a "
                f"restart")
        changed = config_mod.changed_keys(old, new)
        if not changed:
            log.info("daemon.reloaded", config=str(old.path), changed=[])
            return runtime
        fresh = Runtime(new, store=runtime.store)
    except Exception as exc:   # ConfigError, or a bug: either way the running config stays
        log.error("daemon.reload_failed", error=str(exc), kept="the running configuration",
                  exc_info=not isinstance(exc, config_mod.ConfigError))
        return None
    log.info("daemon.reloaded", config=str(old.path), changed=changed)
    return fresh


class _Daemon:
    """The two scheduled jobs — one cycle per interval, a watchdog ping — what they share, and
    the reload that swaps the runtime between cycles."""

    def __init__(self, runtime: Runtime, notifier: Notifier, watchdog: float | None,
                 wake_fatal: Callable[[], None] = lambda: None):
        self.runtime, self.notifier, self.watchdog = runtime, notifier, watchdog
        self.wake_fatal = wake_fatal
        self.exit_code = ExitCode.OK
        self.crashes = 0            # cycles in a row that crashed
        self.interval = runtime.config.sync.interval
        self.cycle_lock = threading.Lock()
        self.stopping = threading.Event()
        self.cycle_since: float | None = None   # monotonic start of the cycle under way
        self.scheduler: BackgroundScheduler | None = None
        self.ready = False      # READY=1 sent: from then on a reload is reported to systemd

    def schedule(self, scheduler: BackgroundScheduler) -> None:
        self.scheduler = scheduler
        scheduler.add_job(self.cycle_job, "interval", seconds=self.interval, id="sync",
                          max_instances=1, coalesce=True,
                          next_run_time=dt.datetime.now(dt.timezone.utc), misfire_grace_time=None)
        if self.watchdog:
            scheduler.add_job(self.keepalive, "interval", seconds=self.watchdog / 2,
                              id="watchdog", max_instances=1, coalesce=True,
                              misfire_grace_time=None)

    def cycle_job(self) -> None:
        # The stop check is inside the lock: once the main thread has set `stopping` under the
        # lock, no cycle can start against a store that is about to be closed.
        with self.cycle_lock:
            if self.stopping.is_set():
                return
            started = self.cycle_since = time.monotonic()
            self.runtime.cycle.progress = self.progressed
            try:
                report = self.runtime.cycle.run()
            except StateUnwritable as exc:
                log.error("state.unwritable", error=str(exc),
                          hint="the daemon stops; the state on disk is the last one committed")
                self.fail(ExitCode.STATE)
                return
            except Exception:   # a bug must not kill the scheduler thread silently
                self.crashed()
                return
            finally:
                self.cycle_since = None
            self.crashes = 0
            self.notifier.notify("WATCHDOG=1", f"STATUS={status_line(report)}")
            took = time.monotonic() - started
            if took > self.interval:
                log.warning("cycle.overran", duration_s=round(took, 1), interval=self.interval,
                            hint="cycles never overlap: the next one starts at the next tick")

    def progressed(self) -> None:
        """A cycle committed a batch of actions: alive, however long the backlog it drains."""
        self.cycle_since = time.monotonic()

    def crashed(self) -> None:
        """A cycle raised: say so, feed no watchdog, and stop after MAX_CRASHES in a row."""
        self.crashes += 1
        log.exception("cycle.crashed", crashes_in_a_row=self.crashes)
        self.notifier.notify(f"STATUS=last cycle crashed ({self.crashes} in a row), see the log")
        if self.crashes >= MAX_CRASHES:
            log.error("daemon.crash_loop", crashes_in_a_row=self.crashes,
                      hint="exiting so that systemd restarts the daemon and shows the failure")
            self.fail(ExitCode.CRASHED)

    def fail(self, code: ExitCode) -> None:
        """From the job's thread: the daemon must stop with ``code``."""
        self.exit_code = code
        self.stopping.set()       # no further cycle (the lock is ours: we are in one)
        self.wake_fatal()

    def keepalive(self) -> None:
        # The watchdog is fed only while cycles complete: a crashing daemon is not healthy, and
        # a cycle stuck for longer than the watchdog period stops the pings: systemd restarts.
        since = self.cycle_since
        if self.crashes == 0 and (since is None or time.monotonic() - since < self.watchdog):
            self.notifier.notify("WATCHDOG=1")

    def hangup(self) -> None:
        """SIGHUP, in the main thread: reopen the log file, reload the configuration."""
        problem = logs.reopen_log_file()
        if problem:
            log.error("daemon.log_reopen_failed", error=problem)
        if self.ready:
            monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}",
                                 "STATUS=reloading the configuration")
        fresh = reload_runtime(self.runtime)
        if fresh is not None and fresh is not self.runtime:
            with self.cycle_lock:          # between cycles
                old, self.runtime = self.runtime, fresh
            old.zoho.close()
            interval = fresh.config.sync.interval
            if interval != self.interval:
                self.interval = interval
                if self.scheduler is not None:
                    self.scheduler.reschedule_job("sync", trigger="interval", seconds=interval)
        if self.ready:
            outcome = ("reload failed, kept the running configuration" if fresh is None
                       else "configuration reloaded")
            self.notifier.notify("READY=1",
                                 f"STATUS=running, {outcome}; every {self.interval:g} s")

    def stop(self) -> None:
        """No cycle starts after this returns (one under way finishes first)."""
        with self.cycle_lock:
            self.stopping.set()


def _boot(daemon: _Daemon, signals: _Signals) -> str | None:
    """Fetch the first access token (READY=1 means config, state and credentials really work),
    waiting out a Zoho unreachable (or answering garbage) at boot (1 s, doubling to 60 s). Wrong
    credentials raise.
    Before READY nothing is under way, so a signal acts at once: a stop signal ends the wait
    (its name is returned), SIGHUP reloads and the wait starts over. None once the token is in."""
    delay = 1.0
    while True:
        try:
            try:
                signals.interruptible = True
                daemon.runtime.zoho.tokens.token()
            finally:
                signals.interruptible = False
            name = signals.wait(0)          # one that came after the token, before READY
            if name is None:
                return None
        except ZohoError as exc:
            if not exc.transient:
                raise
            log.warning("daemon.waiting_for_zoho", error=str(exc), retry_in_s=delay)
            name = signals.wait(delay)
            delay = min(delay * 2, 60.0)
        except _Interrupt as interrupt:
            name = signals.consumed(interrupt)
        if name == "SIGHUP":
            daemon.hangup()
            delay = 1.0
        elif name is not None:
            return name


def run_daemon(runtime: Runtime, *, notifier: Notifier | None = None) -> int:
    notifier = notifier or Notifier()
    # Two workers: the sync job and the watchdog ping (max_instances=1 keeps cycles apart).
    scheduler = BackgroundScheduler(timezone=dt.timezone.utc,
                                    executors={"default": ThreadPoolExecutor(2)})
    quiet = _QuietMaxInstances()
    logging.getLogger("apscheduler.scheduler").addFilter(quiet)
    signals = _Signals()
    daemon = _Daemon(runtime, notifier, watchdog_period(), wake_fatal=signals.wake_fatal)
    try:
        name = _boot(daemon, signals)
        if name:
            log.info("daemon.stopping", signal=name, before_ready=True)
            log.info("daemon.stopped")
            return ExitCode.OK
        daemon.schedule(scheduler)
        log.info("daemon.start", interval=daemon.interval,
                 state_dir=str(daemon.runtime.config.sync.state_dir),
                 **({"watchdog_s": daemon.watchdog} if daemon.watchdog else {}))
        notifier.notify("READY=1",
                        f"STATUS=running, first cycle now, then every {daemon.interval:g} s")
        daemon.ready = True
        scheduler.start()
        while (name := signals.wait()) == "SIGHUP":
            daemon.hangup()
        if name == "FATAL":
            log.error("daemon.stopping", exit_code=int(daemon.exit_code),
                      reason=MEANINGS[daemon.exit_code])
        else:
            log.info("daemon.stopping", signal=name)
        notifier.notify("STOPPING=1", "STATUS=stopping: letting the running cycle finish")
        daemon.stopping.set()
        scheduler.shutdown(wait=True)      # returns once a cycle under way has finished
    finally:
        daemon.stop()   # belt and braces: no cycle runs once we return and the store closes
        if scheduler.running:
            scheduler.shutdown(wait=False)
        signals.close()
        logging.getLogger("apscheduler.scheduler").removeFilter(quiet)
        notifier.close()
        if daemon.runtime is not runtime:   # reloaded: the caller closes the store it gave
            daemon.runtime.zoho.close()
    log.info("daemon.stopped")
    return daemon.exit_code

"""One case of ``make hostile``: a fresh sandbox, a temp dir, the real console script — and the
checks that decide whether the case was handled cleanly.

A case's scenario (``hostile_cases*.py``) drives a :class:`Harness`: it books meetings, edits
them as a hostile CRM would, arms faults, and runs ``python -m bookings_sync`` exactly as a user
or a timer would (``--run-once --log-format json``, ``status``, ``status --json``, ``check``,
``retry``, the daemon). Every step is written down, so a case that is not handled can be
reproduced by hand from the report. What the harness checks, whatever the case:

- **exit codes**: each run exits with a code the case allows; a ``--run-once`` whose
  ``cycle.end`` says actions are waiting never exits 0; an exit 3 comes with a line saying why
  (``cycle.zoho_error``, ``daemon.start_failed``, or an ``action`` line with outcome ``retry``);
- **no traceback** and **no raw control character** (C0 but tab and newline, DEL, C1) in any
  stdout or stderr;
- **no secret** — the client secret, the refresh token, every access token the sandbox issued
  (``World.issue_token`` is wrapped to collect them) — in any output, nor in the state
  directory's files other than ``token.json``;
- **never the wrong booking, never twice**: ``World.reschedule`` / ``World.set_status`` are
  wrapped; a write that comes over HTTP (not from the driver's own thread) must be for a booking
  exactly one readable meeting carries, to that meeting's wall time in the booking's zone (an
  action re-queued by ``retry`` goes to the time it recorded) — a
  cancel only once no readable meeting carries it — never for a booking the case forbids, and no
  (booking, start) reschedule is applied twice. "Readable" = no hostile raw value on the record;
- **no nuisance failures**: after a transient fault, ``status --json`` lists no failure the case
  did not allow (a transient failure is never recorded as permanent);
- **the state loads** (``SnapshotStore.open_readonly``) after the faulted runs, and **a clean run
  converges** (:meth:`Harness.clean_phase`): faults cleared, ``retry`` if refusals were
  recorded, then one ``--run-once`` exits 0 with nothing pending and no failure, and every
  booking is where it should be (:meth:`Harness.check_converged`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytz

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from e2e import PREMIUM_PLAN, Run, child_env  # noqa: E402  (the tests' own child-process helpers)

from bookings_sync.sandbox import Sandbox  # noqa: E402
from bookings_sync.sandbox.wire import RAW  # noqa: E402
from bookings_sync.sandbox.world import Refusal  # noqa: E402
from bookings_sync.store import SnapshotStore  # noqa: E402

UTC = dt.timezone.utc
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Lines that explain an exit 3 (Zoho unreachable, misbehaving or refusing the connection).
WHY_EVENTS = ("cycle.zoho_error", "daemon.start_failed")
RUN_TIMEOUT = 150.0


@dataclasses.dataclass
class Case:
    group: str                                   # the class it is counted under
    name: str                                    # unique, e.g. "faults/500/getappointment/persist"
    scenario: Callable[["Harness"], None]
    quick: bool = False                          # part of --quick
    slow: bool = False                           # mostly asleep (re-sends, stalls): own pool
    catches: str | None = None                   # self-check: the problem kind it must cause


class Problem(Exception):
    """Raised by a scenario to stop at a failed expectation (already recorded)."""


class Skip(Exception):
    """Raised by a scenario that cannot run on this machine (e.g. no mount(2)): says why."""


class Harness:
    def __init__(self, case: Case, workdir: Path, verbose: bool = False):
        self.case = case
        self.workdir = workdir
        self.verbose = verbose
        self.problems: list[tuple[str, str]] = []     # (kind, text)
        self.steps: list[str] = []
        self.outputs: list[tuple[str, str]] = []      # (label, text) — scanned for secrets
        self.secrets: set[str] = set()
        self.sb: Sandbox | None = None
        self.roles: dict[str, tuple[str, str]] = {}   # role -> (meeting id, booking id)
        self.config_path = workdir / "sync.toml"
        self.state_dir = workdir / "state"
        self.writes: list[tuple[str, str, dt.datetime | None]] = []
        self.forbidden: set[str] = set()
        self.retried: set[str] = set()      # bookings whose recorded failure `retry` re-queued
        self.refusal_hook: Callable[[str], None] | None = None   # runs when Bookings refuses
        self.expect_closed: set[str] = set()
        self.driver_closed: set[str] = set()
        self.baseline_appointments: dict[str, tuple] = {}
        self.cleanups: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # -- bookkeeping ------------------------------------------------------------------------

    def step(self, text: str) -> None:
        self.steps.append(text)
        if self.verbose:
            print(f"  . {text}", flush=True)

    def problem(self, kind: str, text: str) -> None:
        with self._lock:
            self.problems.append((kind, text))
        if self.verbose:
            print(f"  ! {kind}: {text}", flush=True)

    def expect(self, condition: bool, kind: str, text: str) -> bool:
        if not condition:
            self.problem(kind, text)
        return bool(condition)

    def output(self, label: str, text: str) -> None:
        self.outputs.append((label, text))
        self.scan_text(label, text)

    def scan_text(self, label: str, text: str) -> None:
        if "Traceback" in text:
            self.problem("traceback", f"{label}: a Python traceback")
        if CONTROL.search(text):
            char = CONTROL.search(text).group()
            self.problem("control-char", f"{label}: raw control character {char!r}")

    # -- the sandbox and the world -----------------------------------------------------------

    def sandbox(self, **kwargs) -> Sandbox:
        self.sb = sb = Sandbox(**kwargs).start()
        self.cleanups.append(sb.stop)
        # A client that hangs up mid-request (a refused 200 MB reply, kill -9) is expected here;
        # socketserver would print its traceback on the runner's stderr.
        sb._server.handle_error = lambda request, client_address: None
        self.secrets |= {sb.credentials["client_secret"], sb.credentials["refresh_token"]}
        self._watch(sb.world)
        self.step(f"sandbox {kwargs or ''} at {sb.url}")
        return sb

    def _watch(self, world) -> None:
        """Wrap the world's writes (see the module docstring) and its token minting."""
        issue_token, reschedule, set_status = world.issue_token, world.reschedule, world.set_status

        def issue():
            token, ttl = issue_token()
            self.secrets.add(token)
            return token, ttl

        def watched_reschedule(booking_id, start, staff_id=None):
            carriers = self._carriers(booking_id)
            try:
                appointment = reschedule(booking_id, start, staff_id)
            except Refusal:
                if self.refusal_hook and threading.current_thread() is not threading.main_thread():
                    self.refusal_hook(booking_id)
                raise
            if threading.current_thread() is not threading.main_thread():
                self._judge("reschedule", booking_id, start, carriers)
            return appointment

        def watched_set_status(booking_id, action):
            carriers = self._carriers(booking_id)
            appointment = set_status(booking_id, action)
            if threading.current_thread() is not threading.main_thread():
                self._judge(action, booking_id, None, carriers)
            return appointment

        world.issue_token, world.reschedule, world.set_status = (
            issue, watched_reschedule, watched_set_status)

    def _carriers(self, booking_id: str) -> dict[str, dt.datetime]:
        """Readable meetings (no hostile raw value) whose booking-id field holds ``booking_id``
        → their start. Called with the world's lock held (the handlers hold it)."""
        world = self.sb.world
        found = {}
        for meeting_id, record in world.meetings.items():
            value = record.get(world.booking_id_field)
            if not record.get(RAW) and isinstance(value, str) and value.strip() == booking_id:
                found[meeting_id] = record.get("Start_DateTime")
        return found

    def _judge(self, kind: str, booking_id: str, start, carriers: dict) -> None:
        try:
            self.writes.append((kind, booking_id, start))
            if booking_id in self.forbidden:
                self.problem("wrong-booking", f"{kind} sent for {booking_id}, which this case "
                                              f"forbids")
            elif kind == "reschedule":
                zone = pytz.timezone(self.sb.world.appointments[booking_id]["time_zone"])
                walls = {m: s.astimezone(zone).replace(tzinfo=None) for m, s in carriers.items()
                         if isinstance(s, dt.datetime)}
                wall = start.astimezone(zone).replace(tzinfo=None)
                # `retry` re-sends a recorded action as recorded (after a revert the meeting
                # is back at Bookings' time): only the carrier count is judged then.
                if len(carriers) != 1 or (wall not in walls.values()
                                          and booking_id not in self.retried):
                    self.problem("wrong-booking", f"reschedule of {booking_id} to {wall} while "
                                                  f"readable meetings carry it: {walls or 'none'}")
                if sum(1 for k, b, s in self.writes if (k, b, s) == (kind, booking_id, start)) > 1:
                    self.problem("applied-twice", f"reschedule of {booking_id} to {start} "
                                                  f"applied twice")
            elif carriers:
                self.problem("wrong-booking", f"{kind} sent for {booking_id} while meeting(s) "
                                              f"{sorted(carriers)} still carry it")
        except Exception as exc:   # a checker bug must not become the sandbox's 500
            self.problem("harness", f"judging a write: {exc!r}")

    def book(self, role: str, days: float, *, hour: int = 10, minute: int = 0,
             staff: str | None = None, tz: str = "UTC") -> tuple[str, str]:
        start = self.at(days, hour, minute)
        pair = self.sb.book(start=start, time_zone=tz, staff_id=staff or f"staff-{role}")
        self.roles[role] = pair
        self.step(f"book {role} at {start:%Y-%m-%dT%H:%MZ} ({tz}) -> meeting {pair[0]}, "
                  f"booking {pair[1]}")
        return pair

    def at(self, days: float, hour: int = 10, minute: int = 0) -> dt.datetime:
        day = self.sb.clock.now() + dt.timedelta(days=days)
        return day.replace(hour=hour, minute=minute, second=0, microsecond=0)

    def meeting(self, role: str) -> str:
        return self.roles[role][0]

    def booking(self, role: str) -> str:
        return self.roles[role][1]

    def act(self, what: str, *args, **kwargs):
        """A sandbox control call (``crm_move``, ``inject``, …), written down as a step."""
        shown = ", ".join([*map(_show, args), *(f"{k}={_show(v)}" for k, v in kwargs.items())])
        self.step(f"sb.{what}({shown})")
        return getattr(self.sb, what)(*args, **kwargs)

    def mark_baseline(self) -> None:
        with self.sb.world.lock:
            self.baseline_appointments = {b: (a["start"], a["status"])
                                          for b, a in self.sb.world.appointments.items()}

    # -- the command line --------------------------------------------------------------------

    def config(self, *, crm: str = "", sync: str = "", tables: str = "", timeout: float = 2,
               state_dir: Path | None = None, text: str | None = None) -> Path:
        """The case's config file: the sandbox's, ``[zoho] timeout`` short (fault cases must not
        wait the default 30 s), or ``text`` verbatim. Cases test hostility, not the budget: a
        premium plan's Bookings quota unless ``tables`` brings its own ``[bookings]``."""
        given = text is not None
        if not given:
            if "[bookings]" not in tables:
                tables = f"{tables}\n{PREMIUM_PLAN}"
            text = self.sb.config_toml(state_dir or self.state_dir, interval=1, crm=crm,
                                       sync=sync, tables=tables)
            text = text.replace("[crm]", f"timeout = {timeout}\n\n[crm]", 1)
        self.config_path.write_text(text)
        shown = "(its own text)" if given else \
            " ".join(filter(None, (crm, sync, tables))).replace("\n", "; ")
        self.step(f"config {self.config_path.name} for this sandbox: {shown}".strip())
        return self.config_path

    def cli(self, *args: str, expect=None, env: dict | None = None, label: str = "",
            timeout: float = RUN_TIMEOUT, command: list[str] | None = None) -> Run:
        program = "$ bookings-sync " if command is None else "$ "
        command = command or [sys.executable, "-m", "bookings_sync", *args]
        shown = " ".join(shlex.quote(a) for a in (args or command))
        label = label or (args[-1] if args else command[-1])
        self.step(program + shown + (f"   (env {env})" if env else ""))
        try:
            proc = subprocess.run(command, capture_output=True, env=child_env(env),
                                  timeout=timeout, encoding="utf-8", errors="replace")
            run = Run(proc.returncode, proc.stdout, proc.stderr)
        except subprocess.TimeoutExpired as exc:
            self.problem("hang", f"{shown}: still running after {timeout:g} s (killed)")
            run = Run(-9, _text(exc.stdout), _text(exc.stderr))
        self.step(f"  -> exit {run.code}")
        if self.verbose:
            for line in (run.stdout + run.stderr).strip().splitlines()[-4:]:
                print(f"      | {line[:300]}", flush=True)
        self.output(f"{label} stdout", run.stdout)
        self.output(f"{label} stderr", run.stderr)
        if expect is not None:
            allowed = {expect} if isinstance(expect, int) else set(expect)
            wanted = " or ".join(map(str, sorted(allowed)))
            self.expect(run.code in allowed, "exit", f"{shown}: exit {run.code}, expected "
                                                     f"{wanted} — stderr: {_tail(run.stderr)}")
        return run

    def run_once(self, expect, *extra: str, label: str = "run", env: dict | None = None) -> Run:
        run = self.cli("--config", str(self.config_path), "--run-once", "--log-format", "json",
                       *extra, expect=expect, env=env, label=label)
        events = events_of(run)
        if events is None:
            self.problem("log", f"{label}: a log line that is not JSON")
            return run
        for end in (e for e in events if e.get("event") == "cycle.end"):
            if end.get("pending") and run.code == 0:
                self.problem("exit", f"{label}: exit 0 with {end['pending']} action(s) waiting")
        if run.code == 3 and not any(
                e.get("event") in WHY_EVENTS
                or (e.get("event") == "action" and e.get("outcome") == "retry" and e.get("reason"))
                for e in events):
            self.problem("line", f"{label}: exit 3 without a line saying why")
        return run

    def status(self, *, allowed_failures: set[str] = frozenset()) -> dict | None:
        """``status`` and ``status --json`` (both exit 0); failures must be among the allowed
        meeting ids (a transient fault is never recorded as a failure)."""
        self.cli("--config", str(self.config_path), "status", expect=0, label="status")
        run = self.cli("--config", str(self.config_path), "status", "--json", expect=0,
                       label="status --json")
        try:
            status = json.loads(run.stdout)
        except ValueError:
            self.problem("status", "status --json is not JSON")
            return None
        recorded = {f.get("meeting_id") for f in status.get("failures", [])}
        self.expect(recorded <= set(allowed_failures), "failure-recorded",
                    f"failures recorded for {sorted(recorded - set(allowed_failures))}: "
                    f"{[f.get('reason') for f in status.get('failures', [])]}")
        return status

    def check_state_loads(self, label: str) -> None:
        try:
            with SnapshotStore.open_readonly(self.state_dir) as store:
                store.meta(), store.pending(), store.failures(), store.meeting_count()
        except Exception as exc:
            self.problem("state-load", f"{label}: the state does not load: {exc!r}")

    # -- the end of every case ----------------------------------------------------------------

    def clean_phase(self, before: Callable[[], None] | None = None) -> None:
        """Faults cleared (and ``before``, e.g. a repair), ``retry`` if refusals were recorded,
        then one clean ``--run-once``: exit 0, nothing pending, every booking converged."""
        self.check_state_loads("after the faulted runs")
        self.act("clear_faults")
        self.sb.on_page = None
        if before:
            before()
        with SnapshotStore.open_readonly(self.state_dir) as store:
            failures = store.failures()
        if failures:
            self.retried |= {f.get("booking_id") for f in failures.values()}
            self.cli("--config", str(self.config_path), "retry", expect=0, label="retry")
        self.run_once(0, label="clean run")
        self.check_converged()

    def check_converged(self) -> None:
        try:
            with SnapshotStore.open_readonly(self.state_dir) as store:
                pending, failures = store.pending(), store.failures()
        except Exception as exc:
            self.problem("state-load", f"after the clean run: {exc!r}")
            return
        self.expect(not pending, "converge", f"still pending after the clean run: "
                                             f"{sorted(pending)}")
        self.expect(not failures, "converge", f"failures after the clean run: {sorted(failures)}")
        world = self.sb.world
        with world.lock:
            for booking_id, appointment in world.appointments.items():
                if booking_id in self.driver_closed or booking_id not in self.baseline_appointments:
                    continue
                self._converged(booking_id, appointment, self._carriers(booking_id))

    def _converged(self, booking_id: str, appointment: dict, carriers: dict) -> None:
        status, start = appointment["status"], appointment["start"]
        if booking_id in self.expect_closed:
            self.expect(status != "upcoming", "converge", f"{booking_id}: its meeting was "
                                                          f"deleted, the booking is still upcoming")
        elif status != "upcoming":
            self.problem("converge", f"{booking_id}: {status}, which nothing asked for")
        elif len(carriers) == 1:
            [(meeting_id, meeting_start)] = carriers.items()
            self.expect(start == meeting_start, "converge",
                        f"{booking_id} at {start:%Y-%m-%dT%H:%MZ}, its meeting {meeting_id} at "
                        f"{_show(meeting_start)}")
        else:
            before = self.baseline_appointments[booking_id][0]
            self.expect(start == before, "converge",
                        f"{booking_id} moved to {start:%Y-%m-%dT%H:%MZ} though "
                        f"{len(carriers)} readable meetings carry it")

    def check_secrets(self) -> None:
        texts = list(self.outputs)
        if self.state_dir.is_dir():
            for path in sorted(self.state_dir.iterdir()):
                if path.is_file() and path.name != "token.json":
                    texts.append((f"state file {path.name}",
                                  path.read_bytes().decode("utf-8", "replace")))
        for label, text in texts:
            for secret in self.secrets:
                if secret and secret in text:
                    self.problem("secret", f"{label} holds a secret ({secret[:6]}…)")

    def finish(self) -> None:
        self.check_secrets()
        if self.sb is not None and self.sb._catcher is not None:
            self.expect(self.sb.catcher.requests == [], "secret",
                        f"{len(self.sb.catcher.requests)} request(s) followed a redirect to "
                        f"another host")

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception:
                pass


def three(h: Harness, *, baseline: bool = True, blocker: bool = False,
          state_dir: Path | None = None, **config) -> None:
    """The usual start: a sandbox, meetings A, B, C (+3, +4, +5 days, one staff member each;
    with ``blocker``, X in A's staff member's slot at +6 days), the config (state in
    ``state_dir`` if given) and — unless ``baseline`` is False — the baseline run."""
    h.sandbox()
    for role, days in (("A", 3), ("B", 4), ("C", 5)):
        h.book(role, days, staff=f"s{role}")
    if blocker:
        h.book("X", 6, staff="sA")
    if state_dir is not None:
        h.state_dir = state_dir
    h.config(**config)
    if baseline:
        h.run_once(0, label="baseline")
        h.mark_baseline()


def events_of(run: Run) -> list[dict] | None:
    try:
        return run.events
    except ValueError:
        return None


def _text(data) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


def _tail(text: str, limit: int = 300) -> str:
    text = " | ".join(line for line in text.strip().splitlines()[-3:])
    return text[-limit:]


def _show(value) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return repr(value)


def run_case(case: Case, workdir: Path, verbose: bool = False) -> dict:
    """Run one case; its result as the report and bench/hostile.json show it."""
    started = time.monotonic()
    harness = Harness(case, workdir, verbose)
    skipped = None
    try:
        case.scenario(harness)
        harness.finish()
    except Skip as exc:
        skipped = str(exc)
    except Problem:
        pass
    except Exception as exc:
        harness.problem("harness", f"the scenario stopped: {exc!r}")
    finally:
        harness.close()
    kinds = sorted({kind for kind, _ in harness.problems})
    return {"name": case.name, "group": case.group, "handled": not harness.problems,
            "problems": [f"{kind}: {text}" for kind, text in harness.problems],
            "kinds": kinds, "steps": harness.steps, "catches": case.catches,
            "skipped": skipped, "seconds": round(time.monotonic() - started, 1)}

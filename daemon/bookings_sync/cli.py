"""The command line — the whole CLI surface in one place.

Exit codes are a contract (scripts act on them), defined once in ``exitcodes``: 0 done, nothing
failed · 1 done, some action failed (a refusal, a held mass-cancel, a record we could not read) ·
2 configuration error · 3 Zoho unreachable or authentication failed · 4 another bookings-sync
holds the state directory.

A user's mistake is one line on stderr and exit 2, never a traceback: a bad config key, a
``--log-file`` that cannot be appended to, a ``$REQUESTS_CA_BUNDLE`` / ``$CURL_CA_BUNDLE`` naming a
missing file (checked before any request, for the commands that send one), a sandbox ``--port``
outside 0–65535 (argparse's usage error).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
from pathlib import Path

import structlog

from bookings_sync import __version__, logs
from bookings_sync import config as config_mod
from bookings_sync.exitcodes import MEANINGS, ExitCode

EPILOG = textwrap.dedent("""\
    examples:
      bookings-sync --config /etc/bookings-sync.toml --run-once          # one cycle, then exit
      bookings-sync --config /etc/bookings-sync.toml --run-once --dry-run  # show the plan only
      bookings-sync --config /etc/bookings-sync.toml                     # the daemon
      bookings-sync sandbox --port 8765 --seed 20                        # a local fake Zoho
      bookings-sync --config /etc/bookings-sync.toml auth                # connect a Zoho account

    exit codes:
    {exit_codes}

    The config path may also come from $BOOKINGS_SYNC_CONFIG; secrets from $ZOHO_CLIENT_SECRET,
    $ZOHO_REFRESH_TOKEN or systemd credentials. See config/bookings-sync.example.toml.
""").format(exit_codes="\n".join(f"  {int(code)}  {text}" for code, text in MEANINGS.items()))


def _port(text: str) -> int:
    """argparse type of ``--port``: a TCP port, 0 meaning any free one."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 – 65535 (0 = any free port), got {port}")
    return port


# The sandbox holds what it seeds in memory; 100,000 is the largest snapshot the bench measures.
MAX_SEED = 100_000


def _seed_count(text: str) -> int:
    """argparse type of ``--seed``: how many booked meetings to create."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= count <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be 0 – {MAX_SEED}, got {count}")
    return count


def _file_path(text: str) -> Path:
    """argparse type of ``--output``: a file name, not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a file")
    return Path(text)


def _optional_config_path(cli_value: str | None) -> Path | None:
    """``--config`` or $BOOKINGS_SYNC_CONFIG, else None (``auth --print-scopes``: defaults)."""
    value = cli_value or os.environ.get(config_mod.CONFIG_ENV)
    return Path(value) if value else None


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parser.add_argument("--config", "-c", metavar="PATH", default=default(None),
                        help="TOML configuration (default: $BOOKINGS_SYNC_CONFIG)")
    parser.add_argument("--log-format", choices=logs.FORMATS, default=default(None),
                        help="console (default on a TTY), logfmt (default otherwise) or json")
    parser.add_argument("--log-file", metavar="PATH", default=default(None),
                        help="append logs to PATH (reopened when logrotate moves it)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default=default("info"), help="default: info")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bookings-sync",
        description="Follow Zoho CRM meeting changes back into Zoho Bookings: when staff move, "
                    "cancel or close a booked meeting in CRM, the appointment follows — without "
                    "CRM workflows. Without a command it runs the sync (daemon or --run-once).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"bookings-sync {__version__}")
    _common(parser, suppress=False)
    parser.add_argument("--run-once", action="store_true",
                        help="run one cycle and exit with its outcome (for timers and cron)")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --run-once: print the plan; send no write call, change no state")
    parser.add_argument("--allow-mass-cancel", action="store_true",
                        help="send cancels the mass-cancel guard would hold back (deliberate bulk "
                             "cancellations)")
    parser.add_argument("--allow-mass-book", action="store_true",
                        help="send bookings the mass-book guard would hold back ([book] "
                             "max_per_cycle: a misconfigured trigger must not book a calendar)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sandbox = sub.add_parser(
        "sandbox", help="run the local Zoho sandbox (fake Accounts, CRM and Bookings)",
        description="Serve a local HTTP sandbox that speaks Zoho's wire format, and print the "
                    "[zoho] block to paste into a config.",
        epilog="example:\n  bookings-sync sandbox --port 8765 --seed 20",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sandbox.add_argument("--port", type=_port, default=8765,
                         help="default: 8765 (0 = any free port)")
    sandbox.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    sandbox.add_argument("--seed", type=_seed_count, default=0, metavar="COUNT",
                         help=f"create COUNT (≤ {MAX_SEED}) booking-linked meetings with their "
                              f"appointments")
    sandbox.add_argument("--grant-code", metavar="SCOPES",
                         help="print a Self Client grant code for SCOPES (comma-separated), "
                              "good once within 3 minutes, to exchange at /oauth/v2/token")
    _common(sandbox, suppress=True)

    status = sub.add_parser(
        "status", help="show cursor, last cycle, pending actions and failures (read-only)",
        description="Show what the daemon knows: cursor, last cycle, meetings tracked, pending "
                    "actions and failures with Zoho's reason and age. Safe while the daemon runs.",
        epilog="examples:\n  bookings-sync -c /etc/bookings-sync.toml status\n"
               "  bookings-sync -c /etc/bookings-sync.toml status --json | jq '.failures'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _common(status, suppress=True)

    check = sub.add_parser(
        "check", help="check config, credentials and every scope needed (run this first)",
        description="A checklist for a new setup: configuration valid; token refresh works; "
                    "each scope the configured features need, proven by a read-only call (the "
                    "Meetings list and deleted list, the field list with the booking-id field, "
                    "a Bookings probe; a write scope from Zoho's token reply). A missing scope "
                    "is named with the command that fixes it. Exit 0 only when every line is ✓.",
        epilog="example:\n  bookings-sync --config /etc/bookings-sync.toml check",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(check, suppress=True)

    auth = sub.add_parser(
        "auth", help="connect a Zoho account: the scopes to grant, then a Self Client grant "
                     "code → refresh token, then check",
        description="Zoho's Self Client flow. Prints the API console of the configured data "
                    "center and the scope string, reads the grant code from stdin (never from "
                    "the command line), exchanges it at the data center's Accounts host, writes "
                    "the refresh token to [zoho] refresh_token_file (or --output) with mode "
                    "0600, then runs check's checks with it. --print-scopes only prints the "
                    "scopes the configured features need (without a config: the defaults).",
        epilog="examples:\n"
               "  bookings-sync auth --print-scopes --explain\n"
               "  bookings-sync -c /etc/bookings-sync/bookings-sync.toml auth --print-scopes\n"
               "  bookings-sync -c /etc/bookings-sync/bookings-sync.toml auth\n"
               "  pbpaste | bookings-sync -c /etc/bookings-sync/bookings-sync.toml auth "
               "--output /etc/bookings-sync/refresh_token",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    auth.add_argument("--print-scopes", action="store_true",
                      help="print the comma-separated scopes to grant and exit (no network)")
    auth.add_argument("--explain", action="store_true",
                      help="with --print-scopes: say why each scope is needed, with its source")
    auth.add_argument("--output", metavar="PATH", type=_file_path,
                      help="write the refresh token here instead of [zoho] refresh_token_file")
    _common(auth, suppress=True)

    retry = sub.add_parser(
        "retry", help="re-queue recorded failures (all, or the given meeting ids)",
        description="Re-queue failures recorded by earlier cycles (refusals, refused bookings) "
                    "and release what a guard holds (mass cancel, mass book); they run at the "
                    "next cycle. With a daemon running, the request is handed to it.",
        epilog="examples:\n  bookings-sync -c /etc/bookings-sync.toml retry\n"
               "  bookings-sync -c /etc/bookings-sync.toml retry 4876876000000412345",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    retry.add_argument("meeting_ids", nargs="*", metavar="MEETING_ID")
    _common(retry, suppress=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None and not args.run_once:
        # The daemon: SIGHUP asks it to reload (systemctl reload), and its default action would
        # kill it while it starts. run_daemon takes the signal over once it can act on it.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        logs.setup(args.log_format, level=args.log_level, log_file=args.log_file)
    except logs.LogFileError as exc:
        print(f"bookings-sync: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    try:
        if args.command == "sandbox":
            from bookings_sync.sandbox.cli import serve_forever_cli
            return serve_forever_cli(args.port, args.seed, host=args.host,
                                     grant_code_scopes=args.grant_code)
        if args.command in ("status", "retry"):
            from bookings_sync import ops
            from bookings_sync.runtime import budget_settings
            config = _load_for_state(config_mod.config_path(args.config))
            if args.command == "status":
                return ops.status_command(config.sync.state_dir, budget_settings(config),
                                          as_json=args.json)
            return ops.retry_command(config.sync.state_dir, args.meeting_ids)
        if args.command == "auth":
            from bookings_sync import onboard
            if args.print_scopes or args.explain:
                return onboard.print_scopes(_optional_config_path(args.config),
                                            explain=args.explain)
            check_ca_bundle()
            return onboard.auth_command(config_mod.config_path(args.config), output=args.output)
        if args.command == "check":
            from bookings_sync import checks
            check_ca_bundle()
            return checks.check_command(config_mod.config_path(args.config))
        if args.dry_run and not args.run_once:
            parser.error("--dry-run goes with --run-once")
        check_ca_bundle()
        return _run(args)
    except config_mod.ConfigError as exc:
        print(f"bookings-sync: configuration error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


def check_ca_bundle() -> None:
    """A CA bundle named in the environment must exist and be readable, or every request would
    fail later with an error that does not name the variable. A directory of certificates (as
    for ``c_rehash``) is accepted as requests accepts it."""
    from bookings_sync.zoho.transport import CA_BUNDLE_ENV     # (requests: only when needed)
    name = next((name for name in CA_BUNDLE_ENV if os.environ.get(name)), None)
    if name is None:
        return
    path = Path(os.environ[name])
    where = f"${name}={logs.printable(str(path))}"
    if path.is_dir():
        return
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise config_mod.ConfigError(f"{where}: no such file (the CA certificates to trust for "
                                     f"HTTPS): fix the path or unset {name}") from None
    except OSError as exc:
        raise config_mod.ConfigError(f"{where}: cannot read it: {exc.strerror}") from None


def _load_for_state(path):
    """The config for ``status`` and ``retry``, which read only ``[sync] state_dir`` and call no
    API. An operator's shell has no ``$CREDENTIALS_DIRECTORY`` (the service's secrets are
    systemd credentials), so missing secrets must not stop them."""
    return config_mod.load(path, check_state_dir=False, need_secrets=False)


def _run(args) -> int:
    from bookings_sync.runtime import Runtime
    from bookings_sync.store import StateCorrupt, StateLocked, StateUnwritable
    from bookings_sync.zoho.errors import ZohoAuthError, ZohoError

    log = structlog.get_logger("bookings_sync.cli")
    config = config_mod.load(config_mod.config_path(args.config))
    try:
        runtime = Runtime(config)
    except StateLocked as exc:
        print(f"bookings-sync: {exc}", file=sys.stderr)
        return ExitCode.LOCKED
    except StateCorrupt as exc:
        print(f"bookings-sync: {exc}; move it aside to start from a new baseline",
              file=sys.stderr)
        return ExitCode.CONFIG
    except OSError as exc:
        print(f"bookings-sync: cannot use the state directory {config.sync.state_dir}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return ExitCode.STATE
    with runtime:
        if not args.run_once:
            from bookings_sync.service import run_daemon
            try:
                return run_daemon(runtime)
            except ZohoError as exc:
                log.error("daemon.start_failed", error=str(exc),
                          auth=isinstance(exc, ZohoAuthError) or None)
                return ExitCode.ZOHO
        try:
            report = runtime.cycle.run(dry_run=args.dry_run,
                                       allow_mass_cancel=args.allow_mass_cancel,
                                       allow_mass_book=args.allow_mass_book)
        except StateUnwritable as exc:
            log.error("state.unwritable", error=str(exc))
            return ExitCode.STATE
        except Exception:     # a bug: the traceback goes to the log, escaped and redacted
            log.exception("cycle.crashed")
            return ExitCode.CRASHED
        if args.dry_run and report.plan is not None:
            _print_plan(report.plan)
        return report.exit_code


def _print_plan(plan) -> None:
    """Dry run: the plan on stdout, one line per action — for people and for grep."""
    from bookings_sync.engine.model import Kind
    from bookings_sync.store import stamp

    out = sys.stdout
    if plan.baseline:
        print(f"baseline: would record {len(plan.meetings)} booking-linked meetings, act on none",
              file=out)
    print(f"would update {len(plan.meetings)} snapshot rows; cursor -> {stamp(plan.cursor)}",
          file=out)
    for action in plan.actions:
        held = f" (held: {action.held})" if action.held else ""
        if action.kind is Kind.BOOK:
            request = action.request
            staff = request.staff or f"the owner {request.owner_email or '(no email)'}"
            print(f"would book {request.service!r} with {staff} at {stamp(action.start)} "
                  f"(meeting {action.meeting_id}; customer zone "
                  f"{request.time_zone or 'the default'}){held}", file=out)
            continue
        move = (f" {stamp(action.old_start)} -> {stamp(action.start)}"
                if action.kind is Kind.RESCHEDULE else "")
        print(f"would {action.kind} booking {action.booking_id} "
              f"(meeting {action.meeting_id}){move}{held}", file=out)
    if not plan.actions:
        print("no actions", file=out)

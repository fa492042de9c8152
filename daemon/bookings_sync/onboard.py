"""``bookings-sync auth``: from "I have a Zoho account" to a checked refresh token, by Zoho's
Self Client flow.

Promises:
- ``auth --print-scopes [--explain]`` prints the minimal scope string for the configured features
  (:func:`bookings_sync.scopes.required`; without a configuration, the default features) and
  sends nothing.
- ``auth`` prints the API console of the configured data center and the scope string, reads the
  grant code from stdin (with a prompt on a TTY; never from the command line, where ``ps`` and
  shell history would keep it), exchanges it once at the data center's Accounts host
  (``grant_type=authorization_code``, parameters in the POST body, no redirect followed), writes
  the refresh token to ``[zoho] refresh_token_file`` or ``--output`` — atomically, mode 0600 —
  and then runs ``check``'s checks with it. The refresh token is never printed or logged.
- Before the code is asked for, the configuration must load (without a refresh token: that is
  what is being fetched) and the target file's directory must take a file: a one-time code is
  never spent on a token that cannot be kept.
- Each failure is one line on stderr: exit 2 for the configuration (no target file, an
  unwritable directory, no code on stdin), exit 3 when Zoho refuses (``invalid_code``:
  expired, already used or made in another data center's console; ``invalid_client``; a reply
  whose ``api_domain`` is another data center's — then nothing is written) or cannot be reached.
  Once the token is saved the exit code is ``check``'s (0 only when every line is ✓).

Zoho's docs are silent on how long the prompt may wait and on what to do with a token whose
``api_domain`` names another data center; here the prompt waits as long as the user does (the
code expires on Zoho's side anyway), and such a token is not written: with the data center
corrected, the Self Client lives in another console and a new code is needed regardless.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

from bookings_sync import checks as checks_mod
from bookings_sync import config as config_mod
from bookings_sync.exitcodes import ExitCode
from bookings_sync.logs import printable, redactor
from bookings_sync.scopes import required, scope_string
from bookings_sync.secret_file import write_private
from bookings_sync.zoho.auth import exchange_grant_code
from bookings_sync.zoho.datacenters import DATA_CENTERS
from bookings_sync.zoho.errors import ZohoAuthError, ZohoError
from bookings_sync.zoho.transport import make_session

# Zoho's grant codes are ~70 characters ("1000.<hex>.<hex>"); anything this long is not one.
MAX_CODE_CHARS = 512


class AuthStop(Exception):
    """One line for stderr and the exit code to stop with."""

    def __init__(self, code: ExitCode, message: str):
        super().__init__(message)
        self.code = code


def print_scopes(path: Path | None, *, explain: bool = False, out=sys.stdout) -> int:
    """The scope string (and with ``explain``, why each scope and its source). No network."""
    config = (config_mod.load(path, check_state_dir=False, need_secrets=False)
              if path is not None else None)
    scopes = required(config)
    print(scope_string(scopes), file=out)
    if explain:
        width = max(len(scope.name) for scope in scopes)
        for scope in scopes:
            print(f"  {scope.name:<{width}}  {scope.why}\n  {'':<{width}}  source: {scope.source}",
                  file=out)
    return ExitCode.OK


def auth_command(path: Path, *, output: Path | None = None, stdin=sys.stdin, out=sys.stdout,
                 err=sys.stderr) -> int:
    try:
        return _auth(path, output, stdin, out)
    except AuthStop as stop:
        print(f"bookings-sync auth: {printable(redactor.scrub(str(stop)))}", file=err)
        return stop.code


def _auth(path: Path, output: Path | None, stdin, out) -> int:
    config = config_mod.load(path, need_refresh_token=False)
    target = output or config.zoho.refresh_token_file
    if target is None:
        raise AuthStop(ExitCode.CONFIG,
                       f"{path}: [zoho] names no refresh_token_file to write the new refresh "
                       f"token to: add refresh_token_file = \"/etc/bookings-sync/refresh_token\" "
                       f"(and remove refresh_token), or pass --output PATH")
    _probe_writable(target)
    _introduce(config, target, out)
    code = _read_code(stdin, out, DATA_CENTERS[config.zoho.data_center].console)
    zoho = config.zoho
    try:
        with make_session(retries=2) as session:
            grant = exchange_grant_code(session, zoho.accounts_url, zoho.client_id,
                                        zoho.client_secret, code, timeout=(10.0, zoho.timeout))
    except ZohoAuthError as exc:
        raise AuthStop(ExitCode.ZOHO, _refusal(config, exc)) from None
    except ZohoError as exc:
        raise AuthStop(ExitCode.ZOHO, f"grant code exchange at {zoho.accounts_url}: {exc}") \
            from None
    problem = checks_mod.foreign_api_domain(config, grant.api_domain)
    if problem:
        raise AuthStop(ExitCode.ZOHO, f"{problem[0]}; nothing written: {problem[1]}")
    try:
        write_private(target, (grant.refresh_token + "\n").encode())
    except OSError as exc:
        raise AuthStop(ExitCode.CONFIG, f"cannot write {target}: {exc.strerror or exc}") from None
    print(f"✓ refresh token written to {printable(str(target))} (mode 0600)", file=out)
    fresh = dataclasses.replace(config, zoho=dataclasses.replace(
        config.zoho, refresh_token=grant.refresh_token))
    return checks_mod.check_account(checks_mod.Checklist(out), fresh)


def _probe_writable(target: Path) -> None:
    """The directory of ``target`` takes a new file (a real one: root passes ``os.access``
    on a read-only mount), and ``target`` is not a directory."""
    if target.is_dir():
        raise AuthStop(ExitCode.CONFIG, f"{target} is a directory; name the file for the "
                                        f"refresh token")
    try:
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".probe-"):
            pass
    except OSError as exc:
        raise AuthStop(ExitCode.CONFIG, f"cannot write the refresh token to {target}: "
                                        f"{exc.strerror or exc} (create the directory, or pass "
                                        f"--output PATH)") from None


def _introduce(config: config_mod.Config, target: Path, out) -> None:
    """What to do in the API console, with this configuration's console and scopes."""
    dc = DATA_CENTERS[config.zoho.data_center]
    print(f"Connect bookings-sync to Zoho — data center {dc.key} ({dc.region}).\n"
          f"  1. Open {dc.console} and sign in as a Zoho user who may see and edit every\n"
          f"     booked meeting in CRM and every appointment in Bookings (an administrator).\n"
          f"  2. Open the Self Client with client_id {printable(config.zoho.client_id)} (or add\n"
          f"     one: Add Client → Self Client, then put its client ID and secret into\n"
          f"     {printable(str(config.path))}).\n"
          f"  3. Generate Code → scopes (paste this line), any description, 10 minutes:\n"
          f"     {scope_string(required(config))}\n"
          f"  4. Paste the code here. The refresh token goes to {printable(str(target))}.",
          file=out)
    if dc.note:
        print(f"! {dc.note}", file=out)
    if os.environ.get(config_mod.SECRET_ENV["refresh_token"], "").strip():
        print(f"! ${config_mod.SECRET_ENV['refresh_token']} is set and wins over any file: unset "
              f"it for the daemon to use the new token", file=out)
    if target not in _files_the_config_reads(config):
        print(f"! {printable(str(config.path))} does not read {printable(str(target))}: set "
              f"[zoho] refresh_token_file to it, or use it as the systemd credential "
              f"refresh_token (LoadCredential=)", file=out)
    out.flush()


def _files_the_config_reads(config: config_mod.Config) -> list[Path]:
    """Where the loader looks for a refresh token on disk: ``refresh_token_file``, else the
    systemd credential (what ``check`` and the service read)."""
    if config.zoho.refresh_token_file is not None:
        return [config.zoho.refresh_token_file]
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    return [Path(credentials) / "refresh_token"] if credentials else []


def _read_code(stdin, out, console: str) -> str:
    if stdin.isatty():
        print("grant code: ", end="", file=out, flush=True)
    code = stdin.readline().strip()
    if not code:
        raise AuthStop(ExitCode.CONFIG, f"no grant code on stdin: generate one in {console} "
                                        f"(Self Client → Generate Code) and paste it")
    if len(code) > MAX_CODE_CHARS or not all(c.isascii() and c.isprintable() and not c.isspace()
                                             for c in code):
        raise AuthStop(ExitCode.CONFIG, "that is not a grant code (one word of printable "
                                        "ASCII): paste only the code the API console shows")
    redactor.add(code)
    return code


def _refusal(config: config_mod.Config, exc: ZohoAuthError) -> str:
    """One line with the likely causes of Zoho's refusal, most likely first."""
    dc = DATA_CENTERS[config.zoho.data_center]
    where = f"Zoho Accounts at {config.zoho.accounts_url} refused the grant code: {exc.code}"
    if exc.code == "invalid_code":
        return (f"{where} — it expired (codes live the 3–10 minutes chosen in the console), "
                f"was already used (each code works once), or was generated in another data "
                f"center's API console (this config's data center is {dc.key!r}: "
                f"{dc.console}): generate a new code there and run auth again at once")
    if exc.code == "invalid_client":
        return (f"{where} — client_id or client_secret is wrong, or the Self Client belongs to "
                f"another data center than {dc.key!r} (its console: {dc.console})")
    return f"{where} — {exc.message}"

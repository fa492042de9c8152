"""``make hostile``, class "admin": the careless admin at the command line.

Numbers that are nan, inf, negative or huge; missing keys; URLs without a host; an empty
``state_dir``; config files that are missing, a directory, not TOML, UTF-16 or binary; secret
files with a BOM (works), UTF-16, Latin-1, several lines or mode 0644 (works, with a warning
and a ✗ in ``check``); bad command-line arguments; ``status`` and ``--run-once`` on damaged
state files; ``retry`` and ``status`` without state. Handled cleanly: the documented exit code
(2 for a mistake), stderr exactly one line naming the problem (argparse's usage errors: the
usage, then one ``error:`` line), no traceback, no secret in the output, no state directory
created by a command that should create none.
"""

from __future__ import annotations

import codecs

from hostile_harness import Case, Harness, three

SECRET, REFRESH = "s3cret-value-123", "1000.refresh-value"
CONFIG = f"""[zoho]
data_center = "eu"
client_id = "1000.ABC"
client_secret = "{SECRET}"
refresh_token = "{REFRESH}"
accounts_url = "http://127.0.0.1:9"
api_url = "http://127.0.0.1:9"
{{zoho}}
[sync]
state_dir = "{{state}}"
{{sync}}
"""


def one_line(h: Harness, run, needle: str = "", code: int = 2) -> None:
    """Exit ``code`` and exactly one stderr line (containing ``needle``)."""
    lines = run.stderr.strip().splitlines()
    h.expect(run.code == code, "exit", f"exit {run.code}, expected {code}: {run.stderr[-200:]}")
    h.expect(len(lines) == 1 and needle in lines[0], "line",
             f"stderr is {len(lines)} line(s), expected one naming {needle!r}: "
             f"{run.stderr[-300:]!r}")


def usage_error(h: Harness, run) -> None:
    lines = run.stderr.strip().splitlines()
    h.expect(run.code == 2, "exit", f"exit {run.code}, expected 2")
    h.expect(bool(lines) and ": error: " in lines[-1], "line", "no argparse error line")


def admin_config(*, zoho: str = "", sync: str = "", replace: tuple[str, str] | None = None,
                 needle: str = "", text: str | None = None, suffix: str = ".toml"):
    """The config with the lines given (or ``text``), then ``--run-once``: one line, exit 2,
    no state directory created."""
    def scenario(h: Harness) -> None:
        h.secrets |= {SECRET, REFRESH}
        body = text if text is not None else CONFIG.format(zoho=zoho, sync=sync,
                                                           state=h.state_dir)
        if replace:
            body = body.replace(*replace)
        h.config_path = h.workdir / f"sync{suffix}"
        if isinstance(body, bytes):
            h.config_path.write_bytes(body)
        else:
            h.config_path.write_text(body)
        h.step(f"config: {body[:400]!r}")
        run = h.cli("--config", str(h.config_path), "--run-once", label="run")
        one_line(h, run, needle)
        h.expect(not h.state_dir.exists(), "created-state", "a state directory was created")

    return scenario


NUMBERS = {
    "interval": ["nan", "inf", "-inf", "-1", "0", "0.5", "1e12", '"60"', "true"],
    "overlap_seconds": ["-1", "99999999999999", "nan"],
    "creation_grace_seconds": ["-5", "inf"],
    "prune_after_days": ["0", "1e9", "3651"],
    "max_backoff_seconds": ["0", "inf"],
    "max_cancel_fraction": ["2", "-0.1", "nan"],
    "max_cancel_floor": ["-1", "true", "1000001"],
}
URLS = ["http://", "https:///x", "http://:80", "http://zoho.example:99999",
        "ftp://accounts.zoho.eu", "accounts.zoho.eu", "http://user:pw@accounts.zoho.eu",
        "https://accounts.zoho.eu/?x=1", "https://accounts.zoho.eu/#frag",
        "http://exa mple.com"]


def config_cases() -> list[Case]:
    out = []
    for key, values in NUMBERS.items():
        for value in values:
            out.append(Case("admin", f"admin/config/{key}-{value.strip(chr(34))}",
                            admin_config(sync=f"{key} = {value}", needle=key)))
    for value in ("nan", "0", "301", "-5"):
        out.append(Case("admin", f"admin/config/timeout-{value}",
                        admin_config(zoho=f"timeout = {value}", needle="timeout")))
    for url in URLS:
        out.append(Case("admin", f"admin/config/accounts_url-{url}", admin_config(
            replace=('accounts_url = "http://127.0.0.1:9"', f'accounts_url = "{url}"'),
            needle="accounts_url")))
    out.append(Case("admin", "admin/config/api_url-no-host", admin_config(
        replace=('api_url = "http://127.0.0.1:9"', 'api_url = "http://"'), needle="api_url")))
    for label, (old, new, needle) in {
        "no-zoho-table": ("[zoho]", "[zohoo]", "zoho"),
        "no-client_id": ('client_id = "1000.ABC"\n', "", "client_id"),
        "no-client_secret": (f'client_secret = "{SECRET}"\n', "", "client_secret"),
        "no-refresh_token": (f'refresh_token = "{REFRESH}"\n', "", "refresh_token"),
        "data_center-mars": ('data_center = "eu"', 'data_center = "mars"', "data_center"),
        "client_secret-control-char": (f'client_secret = "{SECRET}"',
                                       f'client_secret = "{SECRET}\\u0007"', "client_secret"),
        "client_secret-number": (f'client_secret = "{SECRET}"', "client_secret = 42",
                                 "client_secret"),
    }.items():
        out.append(Case("admin", f"admin/config/{label}",
                        admin_config(replace=(old, new), needle=needle)))
    for label, line in {"on_delete-explode": 'on_delete = "explode"',
                        "on_refused-maybe": 'on_refused = "maybe"'}.items():
        out.append(Case("admin", f"admin/config/{label}",
                        admin_config(sync=line, needle=label.split("-")[0])))
    out.append(Case("admin", "admin/config/status_map-destroy", admin_config(
        sync='[crm]\nstatus_field = "Meeting_Status"\n[crm.status_map]\n"Gone" = "destroy"',
        needle="status_map")))
    for label, value in (("empty", ""), ("blank", "   "), ("nul", "\\u0000")):
        out.append(Case("admin", f"admin/config/state_dir-{label}", admin_config(
            replace=('state_dir = "', f'state_dir = "{value}" #'), needle="state_dir")))
    for label, text, suffix in (("missing-file", None, ".missing"),
                                ("invalid-toml", "[zoho\nclient_id = ", ".toml"),
                                ("utf-16", CONFIG.encode("utf-16"), ".toml"),
                                ("empty-file", "", ".toml"),
                                ("binary", bytes(range(256)), ".toml")):
        out.append(Case("admin", f"admin/config-file/{label}",
                        admin_config(text=text, suffix=suffix)
                        if text is not None else missing_config))
    out.append(Case("admin", "admin/config-file/a-directory", config_is_directory))
    return out


def missing_config(h: Harness) -> None:
    run = h.cli("--config", str(h.workdir / "nope.toml"), "--run-once", label="run")
    one_line(h, run, "nope.toml")


def config_is_directory(h: Harness) -> None:
    run = h.cli("--config", str(h.workdir), "--run-once", label="run")
    one_line(h, run, str(h.workdir))


def secret_file(make, mode: int, expect: int, which: str = "client_secret"):
    """A secret file holding ``make(value)``; ``expect`` 0: it works against the sandbox
    (0644: with a warning and a ✗ in ``check``), 2: one line naming the file, never its
    content."""
    def scenario(h: Harness) -> None:
        sb = h.sandbox()
        value = sb.credentials[which]
        path = h.workdir / which
        content = make(value)
        path.write_bytes(content)
        path.chmod(mode)
        text = h.config().read_text().replace(f'{which} = "{value}"',
                                              f'{which}_file = "{path}"')
        h.config(text=text)
        h.step(f"{which} file: {content[:60]!r}, mode {mode:o}")
        run = h.run_once(expect, label="run")
        if expect == 2:
            one_line(h, run, str(path))
            return
        warnings = run.event("config.warning")
        if mode & 0o077:
            h.expect(len(warnings) == 1 and f"chmod 600 {path}" in warnings[0].get("fix", ""),
                     "line", "no config.warning with the chmod fix")
            check = h.cli("--config", str(h.config_path), "check", label="check")
            h.expect("✗" in check.stdout + check.stderr, "line", "check shows no ✗ hint")
        else:
            h.expect(not warnings, "line", "a config.warning for a private secret file")

    return scenario


def secret_cases() -> list[Case]:
    bom = codecs.BOM_UTF8
    files = {
        "bom": (lambda v: bom + v.encode() + b"\r\n", 0o600, 0),
        "mode-0644": (lambda v: v.encode() + b"\n", 0o644, 0),
        "bom-and-0640": (lambda v: bom + v.encode() + b"\n", 0o640, 0),
        "utf-16": (lambda v: v.encode("utf-16"), 0o600, 2),
        "latin-1": (lambda v: (v + "ä").encode("latin-1"), 0o600, 2),
        "empty": (lambda v: b"", 0o600, 2),
        "two-lines": (lambda v: v.encode() + b"\nsecond-line\n", 0o600, 2),
        "two-words": (lambda v: v.encode() + b" extra\n", 0o600, 2),
        "nul-byte": (lambda v: v.encode() + b"\x00", 0o600, 2),
    }
    out = [Case("admin", f"admin/secret/{label}", secret_file(make, mode, code))
           for label, (make, mode, code) in files.items()]
    out.append(Case("admin", "admin/secret/refresh-token-utf-16",
                    secret_file(lambda v: v.encode("utf-16"), 0o600, 2, "refresh_token")))
    out += [Case("admin", "admin/secret/missing-file", secret_path_problem("missing")),
            Case("admin", "admin/secret/a-directory", secret_path_problem("directory")),
            Case("admin", "admin/secret/value-and-file", secret_path_problem("both"))]
    return out


def secret_path_problem(kind: str):
    def scenario(h: Harness) -> None:
        h.secrets |= {SECRET, REFRESH}
        path = h.workdir / "client_secret"
        if kind == "directory":
            path.mkdir()
        line = f'client_secret_file = "{path}"'
        old = f'client_secret = "{SECRET}"'
        new = line if kind != "both" else f"{old}\n{line}"
        admin_config(replace=(old, new), needle="client_secret")(h)

    return scenario


def cli_case(*args: str, needle: str = "", usage: bool = False, env: dict | None = None,
             code: int = 2, with_config: bool = True):
    def scenario(h: Harness) -> None:
        h.secrets |= {SECRET, REFRESH}
        h.config_path.write_text(CONFIG.format(zoho="", sync="", state=h.state_dir))
        given = [a.format(config=h.config_path, tmp=h.workdir) for a in args]
        if with_config:
            given = ["--config", str(h.config_path), *given]
        run = h.cli(*given, env=env, label="cli", timeout=30)
        if usage:
            usage_error(h, run)
        else:
            one_line(h, run, needle.format(tmp=h.workdir), code=code)
        h.expect(not h.state_dir.exists(), "created-state", "a state directory was created")

    return scenario


def cli_cases() -> list[Case]:
    cases = {
        "log-format-xml": cli_case("--run-once", "--log-format", "xml", usage=True),
        "unknown-option": cli_case("--run-once", "--bogus", usage=True),
        "dry-run-alone": cli_case("--dry-run", usage=True),
        "log-level-loud": cli_case("--run-once", "--log-level", "loud", usage=True),
        "log-file-missing-dir": cli_case("--run-once", "--log-file", "{tmp}/no/such.log",
                                         needle="{tmp}/no"),
        "log-file-a-directory": cli_case("--run-once", "--log-file", "{tmp}",
                                         needle="is a directory"),
        "sandbox-port-minus-1": cli_case("sandbox", "--port", "-1", usage=True,
                                         with_config=False),
        "sandbox-port-70000": cli_case("sandbox", "--port", "70000", usage=True,
                                       with_config=False),
        "sandbox-seed-minus-5": cli_case("sandbox", "--seed", "-5", usage=True,
                                         with_config=False),
        "no-config-at-all": cli_case("--run-once", with_config=False, needle="config"),
        "ca-bundle-missing": cli_case("--run-once", env={"REQUESTS_CA_BUNDLE":
                                                         "/nonexistent/ca.pem"},
                                      needle="REQUESTS_CA_BUNDLE"),
        "retry-without-state": cli_case("retry", code=1, needle="nothing to retry"),
        "retry-unknown-id-without-state": cli_case("retry", "123", code=1,
                                                   needle="nothing to retry"),
    }
    out = [Case("admin", f"admin/cli/{label}", scenario) for label, scenario in cases.items()]
    out.append(Case("admin", "admin/cli/status-without-state", status_without_state))
    return out


def status_without_state(h: Harness) -> None:
    h.config_path.write_text(CONFIG.format(zoho="", sync="", state=h.state_dir))
    for args in (("status",), ("status", "--json")):
        h.cli("--config", str(h.config_path), *args, expect=0, label=" ".join(args))
    h.expect(not h.state_dir.exists(), "created-state", "status created a state directory")


DAMAGE = {
    "state.json-garbage": ("state.json", b"\x00garbage{"),
    "state.json-empty": ("state.json", b""),
    "state.json-a-list": ("state.json", b"[]"),
    "state.json-format-99": ("state.json", b'{"_store": {"format": 99, "generation": 0}}'),
    "journal-garbage": ("state.journal", b"not a journal\n"),
    "last-cycle-garbage": ("last-cycle.json", b"{\x1b[2J"),
    "last-cycle-a-list": ("last-cycle.json", b"[1, 2]"),
}


def damaged(file: str, content: bytes):
    """``status``, ``status --json`` and ``--run-once`` on a damaged state file: a damaged
    last-cycle.json is shrugged off; damaged state is one line (exit 2) naming it."""
    def scenario(h: Harness) -> None:
        three(h, baseline=False)
        h.run_once(0, label="baseline")
        h.step(f"overwrite {file} with {content!r}")
        (h.state_dir / file).write_bytes(content)
        shrug = file == "last-cycle.json"
        for args in (("status",), ("status", "--json")):
            run = h.cli("--config", str(h.config_path), *args, label=" ".join(args))
            if shrug:
                h.expect(run.code == 0, "exit", f"{' '.join(args)}: exit {run.code}")
            else:
                one_line(h, run, "state")
        run = h.cli("--config", str(h.config_path), "--run-once", label="run")
        if shrug:
            h.expect(run.code == 0, "exit", f"run: exit {run.code}: {run.stderr[-200:]}")
        else:
            one_line(h, run, "state")

    return scenario


def cases() -> list[Case]:
    return (config_cases() + secret_cases() + cli_cases()
            + [Case("admin", f"admin/damaged/{label}", damaged(*spec))
               for label, spec in DAMAGE.items()])

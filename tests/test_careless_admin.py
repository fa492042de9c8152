"""The careless admin, at the real command line (``python -m bookings_sync`` in a child process):
every mistake in the config, a secret file, ``--log-file``, the CA-bundle variables or the
sandbox's ``--port`` is one line on stderr naming what is wrong and where, exit 2, never a
traceback. A secret file other users can read works, with one warning line saying how to fix it.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from e2e import Run, cli, run_once, write_config


def assert_one_line(run: Run, expected: str) -> None:
    """Exit 2, and stderr is exactly one line: ``expected`` — nothing else, no traceback."""
    assert "Traceback" not in run.stderr, run.stderr
    assert run.code == 2, (run.code, run.stderr)
    assert run.stderr.splitlines() == [expected], run.stderr


# The sandbox is never reached: each run stops at the mistake, before any request.
CONFIG = """
[zoho]
data_center = "eu"
client_id = "1000.ABC"
client_secret = "s3cret-value-123"
refresh_token = "1000.refresh-value"
accounts_url = "http://127.0.0.1:9"
api_url = "http://127.0.0.1:9"
{zoho}
[sync]
{sync}
"""


def config_file(tmp_path: Path, *, zoho: str = "", sync: str | None = None) -> Path:
    """CONFIG with the lines ``zoho`` and ``sync`` (default: the state_dir in ``tmp_path``)."""
    path = tmp_path / "sync.toml"
    if sync is None:
        sync = f'state_dir = "{tmp_path / "state"}"'
    path.write_text(CONFIG.format(zoho=zoho, sync=sync))
    return path


@pytest.mark.parametrize("line,expected", [
    ("interval = nan", "[sync] interval: must be a finite number (1 – 86400 seconds), got nan"),
    ("interval = -inf", "[sync] interval: must be a finite number (1 – 86400 seconds), got -inf"),
    ("interval = 0.5", "[sync] interval: must be 1 – 86400 seconds, got 0.5"),
    ("overlap_seconds = 99999999999999", "[sync] overlap_seconds: must be 0 – 3600 seconds, "
                                         "got 99999999999999"),
    ("max_cancel_fraction = inf", "[sync] max_cancel_fraction: must be a finite number (0 – 1), "
                                  "got inf"),
    ("prune_after_days = 1e9", "[sync] prune_after_days: expected an integer, got 1000000000.0"),
    ("max_cancel_floor = true", "[sync] max_cancel_floor: expected an integer, got True"),
    ('state_dir = "  "', "[sync] state_dir: must not be empty"),
])
def test_bad_numbers_and_an_empty_state_dir(tmp_path, line, expected):
    state = "" if line.startswith("state_dir") else f'state_dir = "{tmp_path / "state"}"'
    path = config_file(tmp_path, sync=f"{state}\n{line}")
    assert_one_line(run_once(path), f"bookings-sync: configuration error: {path}: {expected}")


NO_HOST = "has no host, got {!r} (e.g. https://accounts.zoho.eu)"


@pytest.mark.parametrize("url,problem", [
    ("http://", NO_HOST.format("http://")),
    ("https:///x", NO_HOST.format("https:///x")),
    ("http://:80", NO_HOST.format("http://:80")),
    ("http://zoho.example:99999",
     "has an invalid port (1 – 65535), got 'http://zoho.example:99999'"),
])
def test_urls_need_a_host(tmp_path, url, problem):
    path = config_file(tmp_path)
    path.write_text(path.read_text().replace('accounts_url = "http://127.0.0.1:9"',
                                             f'accounts_url = "{url}"'))
    assert_one_line(run_once(path), f"bookings-sync: configuration error: {path}: [zoho] "
                                    f"accounts_url: {problem}")


def secret_config(tmp_path: Path, content: bytes) -> tuple[Path, Path]:
    secret = tmp_path / "client_secret"
    secret.write_bytes(content)
    secret.chmod(0o600)
    path = config_file(tmp_path, zoho=f'client_secret_file = "{secret}"')
    path.write_text(path.read_text().replace('client_secret = "s3cret-value-123"\n', ""))
    return path, secret


@pytest.mark.parametrize("content,problem", [
    ("s3cret-value-123\n".encode("utf-16"), "UTF-16 or UTF-32 text, expected UTF-8: save it as "
                                            "UTF-8"),
    ("s3cret-välue".encode("latin-1"), "not UTF-8 text (invalid byte at offset 8, as Latin-1 or "
                                       "Windows-1252 text has): save it as UTF-8"),
])
def test_a_secret_file_in_another_encoding_is_named(tmp_path, content, problem):
    path, secret = secret_config(tmp_path, content)
    assert_one_line(run_once(path), f"bookings-sync: configuration error: {path}: [zoho] "
                                    f"client_secret_file: {secret}: {problem}")


def test_a_secret_file_with_a_byte_order_mark_works_and_one_others_can_read_is_a_warning(
        sb, tmp_path):
    secret = tmp_path / "client_secret"
    secret.write_bytes(codecs.BOM_UTF8 + sb.credentials["client_secret"].encode() + b"\r\n")
    secret.chmod(0o644)
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    config.write_text(config.read_text().replace(
        f'client_secret = "{sb.credentials["client_secret"]}"', f'client_secret_file = "{secret}"'))
    run = run_once(config)
    assert run.code == 0, run.stderr
    assert "Traceback" not in run.stderr
    [warning] = run.event("config.warning")
    assert warning["level"] == "warning"
    assert warning["where"] == f"{config}: [zoho] client_secret_file"
    assert warning["problem"] == (f"{secret} has mode 0644: users other than its owner can "
                                  f"read or change the client_secret")
    assert warning["fix"] == f"chmod 600 {secret}"
    assert run.events[0]["event"] == "config.warning"       # at start, before the cycle
    assert sb.credentials["client_secret"] not in run.stderr

    secret.chmod(0o600)
    run = run_once(config)
    assert run.code == 0 and run.event("config.warning") == []


@pytest.mark.parametrize("make_target,problem", [
    (lambda tmp: str(tmp / "missing" / "sync.log"), "directory {tmp}/missing does not exist"),
    (lambda tmp: str(tmp), "is a directory; give the path of a file in it"),
    # Read-only even for root (the tests may run as root, to whom a chmod means nothing).
    (lambda tmp: "/proc/sys/kernel/ostype", "permission denied (cannot append to it)"),
])
def test_an_unusable_log_file_is_one_line(tmp_path, make_target, problem):
    path = config_file(tmp_path)
    target = make_target(tmp_path)
    run = cli("--config", str(path), "--run-once", "--log-file", target)
    assert_one_line(run, f"bookings-sync: --log-file {target!r}: {problem.format(tmp=tmp_path)}")
    # The daemon says it the same way, before it starts anything.
    run = cli("--config", str(path), "--log-file", target)
    assert_one_line(run, f"bookings-sync: --log-file {target!r}: {problem.format(tmp=tmp_path)}")


@pytest.mark.parametrize("command", [("--run-once",), ("check",), ()])
@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_bundle_that_does_not_exist_stops_before_any_request(sb, tmp_path, command,
                                                                   variable):
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    # requests reads REQUESTS_CA_BUNDLE first: set to "", it leaves CURL_CA_BUNDLE in charge.
    env = {"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "", variable: str(tmp_path / "ca.pem")}
    run = cli("--config", str(config), *command, env=env)
    assert_one_line(run, f"bookings-sync: configuration error: ${variable}={tmp_path}/ca.pem: "
                         f"no such file (the CA certificates to trust for HTTPS): fix the path "
                         f"or unset {variable}")
    assert sb.request_log == []


def test_a_ca_bundle_directory_or_file_that_exists_is_used(sb, tmp_path):
    config = write_config(sb, tmp_path / "state", tmp_path / "sync.toml")
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")     # the sandbox is plain http: the bundle is never opened for TLS
    for value in (str(bundle), str(tmp_path)):
        run = run_once(config, env={"REQUESTS_CA_BUNDLE": value})
        assert run.code == 0, run.stderr


@pytest.mark.parametrize("port,problem", [
    ("-1", "must be 0 – 65535 (0 = any free port), got -1"),
    ("65536", "must be 0 – 65535 (0 = any free port), got 65536"),
    ("http", "not a port number: 'http'"),
])
def test_sandbox_port_out_of_range_is_a_usage_error(port, problem):
    run = cli("sandbox", "--port", port, timeout=20)
    assert run.code == 2 and "Traceback" not in run.stderr
    assert run.stderr.splitlines()[0].startswith("usage: bookings-sync sandbox")
    assert run.stderr.splitlines()[-1] == \
        f"bookings-sync sandbox: error: argument --port: {problem}"
    assert run.stdout == ""

"""The shipped systemd units verify cleanly and stay hardened."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = ["bookings-sync.service", "bookings-sync-once.service", "bookings-sync.timer"]
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed here")


def installed_copy(tmp_path: Path) -> Path:
    """The units as installed: ExecStart pointing at the console script that exists here
    (verify checks that the binary exists)."""
    script = Path(sys.executable).parent / "bookings-sync"
    assert script.exists(), "the console script is missing: pip install -e ."
    for name in UNITS:
        text = (REPO / "systemd" / name).read_text()
        (tmp_path / name).write_text(text.replace("/usr/local/bin/bookings-sync", str(script)))
    return tmp_path


def test_systemd_analyze_verify_is_clean(tmp_path):
    folder = installed_copy(tmp_path)
    proc = subprocess.run([ANALYZE, "verify", *UNITS], cwd=folder, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if "bookings-sync" in line]
    assert ours == [], ours


def exposure(unit: Path) -> float:
    proc = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
                          capture_output=True, text=True)
    if proc.returncode != 0 and "offline" in proc.stderr:
        pytest.skip(f"this systemd-analyze has no --offline: {proc.stderr.strip()}")
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout)
    assert match, proc.stdout[-2000:] + proc.stderr[-2000:]
    return float(match.group(1))


def test_exposure_score_is_at_most_2(tmp_path):
    folder = installed_copy(tmp_path)
    score = exposure(folder / "bookings-sync.service")
    print(f"systemd-analyze security exposure: {score}")
    assert score <= 2.0
    readme = (REPO / "README.md").read_text()
    assert f"exposure level {score}" in readme, "README must record the current score"
    # The timer's oneshot runs the same code with the same hardening.
    assert exposure(folder / "bookings-sync-once.service") <= 2.0


def test_verify_is_not_vacuous(tmp_path):
    """verify really reads our files: a misspelt key in a copy is reported."""
    folder = installed_copy(tmp_path)
    unit = folder / "bookings-sync.service"
    unit.write_text(unit.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    proc = subprocess.run([ANALYZE, "verify", "bookings-sync.service"], cwd=folder,
                          capture_output=True, text=True)
    assert "Unknown key 'NoNewPrivilege'" in proc.stderr, proc.stderr


def test_the_service_contract():
    text = (REPO / "systemd" / "bookings-sync.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "RestartPreventExitStatus=2",
                 "Restart=on-failure", "DynamicUser=yes", "StateDirectory=bookings-sync",
                 "LoadCredential=client_secret:", "LoadCredential=refresh_token:"):
        assert line in text
    timer = (REPO / "systemd" / "bookings-sync.timer").read_text()
    assert "Unit=bookings-sync-once.service" in timer
    assert "--run-once" in (REPO / "systemd" / "bookings-sync-once.service").read_text()

"""Smoke variants of `make bench`, `make soak` and `make hostile`, so they don't rot. The real
runs are `make bench` / `make soak` / `make hostile`; these only prove the drivers work end to
end and their checks hold."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bookings_sync.engine.cycle import BATCH_SIZE

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_quick_meets_the_cost_targets(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench.py"), "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    ignore = [r for r in results["idle"] if r["on_delete"] == "ignore"][0]
    cancel = [r for r in results["idle"] if r["on_delete"] == "cancel"][0]
    assert ignore["crm_calls"] == 1 and ignore["bookings_calls"] == 0
    assert cancel["crm_calls"] == 2 and cancel["bookings_calls"] == 0
    assert all(r["bookings_per_reschedule"] <= 2 for r in results["edits"])
    # The write-ahead commit, then one per batch of outcomes (a kill re-spends at most one).
    for row in results["edits"] + results["scale"]:
        actions = row.get("k") or (row["changed"] if isinstance(row.get("changed"), int) else 0)
        assert row["store_writes"] <= 2 + math.ceil(actions / BATCH_SIZE), row
    assert "Versus a naive poller" in proc.stdout


@pytest.mark.slow
def test_soak_quick_passes_its_checks():
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), "--quick"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SOAK PASSED" in proc.stdout
    assert re.search(r"^edits applied twice\s+0$", proc.stdout, re.M)
    assert re.search(r"^disagree\s+0$", proc.stdout, re.M)


@pytest.mark.slow
def test_hostile_quick_catches_every_planted_fault_and_handles_its_cases(tmp_path):
    out = tmp_path / "hostile.json"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "hostile.py"), "--quick",
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    # The runner's own checks: each self-check breaks exactly one rule, and is caught for it.
    checks = report["self_checks"]
    assert {c["catches"] for c in checks} == {"secret", "traceback", "control-char",
                                              "wrong-booking", "applied-twice", "converge",
                                              "exit", "state-load", "failure-recorded"}
    assert all(c["caught"] and c["kinds"] == [c["catches"]] for c in checks)
    # A few real cases of each class, all handled, and the figures add up.
    real = [c for c in report["cases"] if not c["catches"]]
    assert {c["group"].split(":")[0] for c in real} == {"faults", "records", "links", "time",
                                                        "machine", "admin"}
    assert all(c["handled"] for c in real), [c["problems"] for c in real if not c["handled"]]
    assert report["total"]["cases"] == len(real) == report["total"]["handled"]
    assert sum(row["cases"] for row in report["classes"].values()) == len(real)
    assert "HOSTILE PASSED" in proc.stdout
    assert f"self-checks: {len(checks)}/{len(checks)} caught" in proc.stdout
    # About 9 s on the 2-core reference machine (20 s is the budget); a loaded machine gets
    # twice that before this fails.
    assert seconds < 40, f"--quick took {seconds:.1f} s"

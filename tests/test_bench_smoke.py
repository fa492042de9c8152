"""Smoke variants of `make bench` and `make soak`, so they don't rot. The real runs are
`make bench` / `make soak`; these only prove the drivers work end to end and their checks hold."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
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

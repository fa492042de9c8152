"""Airbyte's Zoho CRM connector, unmodified, reads the sandbox: ``tests/fidelity/run_airbyte.py``
(check, discover, an incremental read of every meeting with the right cursor, and a second read
under both If-Modified-Since modes) run as ``make fidelity`` runs it.

The connector lives in ``.venv-fidelity`` (``make fidelity`` builds it); a pytest
run without that venv skips this test and says how to get it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONNECTOR_PYTHON = ROOT / ".venv-fidelity" / "bin" / "python"


@pytest.mark.slow
def test_airbyte_connector_reads_the_sandbox_as_it_would_read_zoho():
    if not CONNECTOR_PYTHON.exists():
        pytest.skip(f"{CONNECTOR_PYTHON} missing: `make fidelity` builds it")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "fidelity" / "run_airbyte.py"),
                           "--connector-python", str(CONNECTOR_PYTHON)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok   ") >= 20 and "0 mismatch(es)" in proc.stdout

"""``bookings-sync sandbox``: serve the local Zoho until Ctrl-C, after printing a config block."""

from __future__ import annotations

import signal
import sys
import threading

from .app import Sandbox


def serve_forever_cli(port: int, seed: int, host: str = "127.0.0.1",
                      grant_code_scopes: str | None = None) -> int:
    """``bookings-sync sandbox``: serve until Ctrl-C, after printing a config block to paste
    (and, with ``--grant-code SCOPES``, a Self Client grant code for those scopes)."""
    # Ctrl-C must stop it even when started with SIGINT ignored (a background job, some CI).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sandbox = Sandbox(host=host, port=port)
    code = None
    if grant_code_scopes is not None:
        try:
            code = sandbox.issue_grant_code(grant_code_scopes)
        except ValueError as exc:
            print(f"bookings-sync sandbox: --grant-code: {exc}", file=sys.stderr)
            return 2
    try:
        sandbox.start()
    except OSError as exc:
        print(f"bookings-sync sandbox: cannot listen on {host}:{port}: {exc.strerror}",
              file=sys.stderr)
        return 2
    pairs = sandbox.seed(seed) if seed else []
    print(f"# Zoho sandbox at {sandbox.url} — {len(pairs)} booked meetings seeded. "
          f"Paste into your config:\n")
    print(sandbox.zoho_toml(), flush=True)
    for meeting_id, booking_id in pairs[:5]:
        print(f"# meeting {meeting_id} <-> booking {booking_id}")
    if code is not None:
        print(f"# Self Client grant code (good once, for 3 minutes; exchange it with "
              f"grant_type=authorization_code at {sandbox.url}/oauth/v2/token):\n{code}")
    print("# Ctrl-C stops it.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0

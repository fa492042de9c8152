"""``bookings-sync sandbox``: serve the local Zoho until Ctrl-C, after printing a config block."""

from __future__ import annotations

import signal
import sys
import threading

from .app import Sandbox


def serve_forever_cli(port: int, seed: int, host: str = "127.0.0.1") -> int:
    """``bookings-sync sandbox``: serve until Ctrl-C, after printing a config block to paste."""
    # Ctrl-C must stop it even when started with SIGINT ignored (a background job, some CI).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sandbox = Sandbox(host=host, port=port)
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
    print("# Ctrl-C stops it.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0

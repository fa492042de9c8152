"""``make bench``: what the daemon costs (API calls) and how far it scales, measured.

The real daemon — the console script, ``bookings-sync --run-once``, in a subprocess — runs
against the sandbox served from this process. Daemon figures come from the child alone
(``os.wait4`` rusage: CPU and peak RSS; its own ``cycle.end`` line: cycle time, cycle CPU, store
writes), so the sandbox's work is measured apart (this process's CPU during the run).

    python bench/bench.py [--quick] [--out bench/results.json]

``--quick`` is the smoke variant run inside ``make test`` (small sizes, seconds).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bookings_sync.sandbox import FrozenClock, Sandbox
from bookings_sync.store import SnapshotStore, stamp
from bookings_sync.zoho.timefmt import format_crm_datetime

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}", "commit": commit,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")}


class Bench:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        # A steered clock: data seeded "now" is a minute old by the time we poll, as it would be
        # in real life, without the bench sleeping.
        self.clock = FrozenClock()
        self.sandbox = Sandbox(crm_time_zone="Europe/Berlin", token_ttl=24 * 3600,
                               clock=self.clock).start()

    def close(self) -> None:
        self.sandbox.stop()

    def config(self, name: str, extra: str = "") -> Path:
        state = self.workdir / name
        path = self.workdir / f"{name}.toml"
        path.write_text(self.sandbox.config_toml(state, interval=60, sync=extra))
        return path

    def run(self, config: Path) -> dict:
        """One ``--run-once`` in a child; its rusage and its cycle.end line."""
        before_calls = dict(self.sandbox.calls)
        sandbox_cpu = time.process_time()
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "bookings_sync", "--config", str(config), "--run-once",
             "--log-format", "json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stderr = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        end = {}
        for line in stderr.decode().splitlines():
            if line.startswith("{") and '"cycle.end"' in line:
                end = json.loads(line)
        if child.returncode not in (0,):
            raise SystemExit(f"daemon exited {child.returncode}:\n{stderr.decode()[-3000:]}")
        calls = {k: v - before_calls.get(k, 0) for k, v in self.sandbox.calls.items()
                 if v - before_calls.get(k, 0)}
        state = Path(tomllib_state(config)) / "state.json"
        return {
            "wall_s": round(wall, 3), "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "cycle_ms": end.get("duration_ms"), "cycle_cpu_ms": end.get("cpu_ms"),
            "peak_rss_mb": end.get("peak_rss_mb"),
            "store_writes": end.get("store_writes", 0),
            "state_file_mb": round(state.stat().st_size / 1e6, 2) if state.exists() else 0,
            "sandbox_cpu_s": round(time.process_time() - sandbox_cpu, 3),
            "crm_calls": sum(v for k, v in calls.items() if k.startswith("crm.")),
            "bookings_calls": sum(v for k, v in calls.items() if k.startswith("bookings.")),
            "token_calls": calls.get("accounts.token", 0), "calls": calls,
        }

    def seed_snapshot(self, name: str, pairs: list[tuple[str, str]], extra: str = "") -> Path:
        """A snapshot of ``pairs`` as a baseline cycle would have left it (built directly: a
        100k-meeting baseline over HTTP measures the sandbox, not us)."""
        config = self.config(name, extra)
        rows, cursor = [], ""
        for meeting_id, booking_id in pairs:
            m = self.sandbox.meeting(meeting_id)
            modified = stamp(m["Modified_Time"])
            cursor = max(cursor, modified)
            rows.append({"id": meeting_id, "booking_id": booking_id,
                         "start": stamp(m["Start_DateTime"]), "end": stamp(m["End_DateTime"]),
                         "modified": modified, "status": None, "last_action": None,
                         "outcome": None, "outcome_at": None})
        with SnapshotStore.open(self.workdir / name) as store:
            store.put_meetings(rows)
            store.update_meta(cursor=cursor, deleted_cursor=cursor, baseline_done=True,
                              pruned_at=stamp(dt.datetime.now(dt.timezone.utc)))
            store.commit()
        return config

    def move(self, pairs, count: int, days: int) -> None:
        for meeting_id, _ in pairs[:count]:
            start = self.sandbox.meeting(meeting_id)["Start_DateTime"]
            self.sandbox.crm_move(meeting_id, start + dt.timedelta(days=days))


def tomllib_state(config: Path) -> str:
    import tomllib
    return tomllib.loads(config.read_text())["sync"]["state_dir"]


def scenario_idle(bench: Bench, n: int) -> dict:
    pairs = bench.sandbox.seed(n)
    config = bench.seed_snapshot(f"idle-{n}", pairs)
    bench.clock.advance(60)
    bench.run(config)                       # warm: token cache, the cursor settles
    bench.clock.advance(60)                 # a minute later, nothing changed
    result = bench.run(config)
    result["per_day_at_60s"] = {"crm": result["crm_calls"] * 1440,
                                "bookings": result["bookings_calls"] * 1440}
    result["on_delete"] = "cancel"
    # The same without watching deletions (on_delete = "ignore"): the list call alone.
    quiet = bench.seed_snapshot(f"idle-{n}-ignore", pairs, 'on_delete = "ignore"')
    bench.clock.advance(60)
    bench.run(quiet)
    bench.clock.advance(60)
    ignore = bench.run(quiet)
    return [result, dict(ignore, on_delete="ignore")]


def scenario_edits(bench: Bench, n: int, ks: list[int]) -> list[dict]:
    pairs = bench.sandbox.seed(n)
    config = bench.seed_snapshot(f"edits-{n}", pairs)
    bench.clock.advance(60)
    bench.run(config)
    out = []
    for round_no, k in enumerate(ks, start=1):
        bench.clock.advance(60)
        bench.move(pairs, k, days=1000 * round_no)
        result = bench.run(config)
        bench.clock.advance(60)
        bench.run(config)                   # the integration's write-backs: no Bookings call
        result["k"] = k
        result["bookings_per_reschedule"] = round(result["bookings_calls"] / k, 3)
        out.append(result)
    return out


def scenario_scale(bench: Bench, n: int, changes: list[int]) -> list[dict]:
    pairs = bench.sandbox.seed(n)
    out = []
    for round_no, c in enumerate(changes, start=1):
        config = bench.seed_snapshot(f"scale-{n}-{c}", pairs)
        bench.clock.advance(60)
        bench.run(config)                   # token, the cursor settles
        bench.clock.advance(60)
        bench.move(pairs, c, days=1000 * round_no)
        result = bench.run(config)
        result.update(snapshot=n, changed=c)
        out.append(result)
        bench.clock.advance(60)
        settle = bench.run(config)          # the write-backs of our reschedules come back
        out.append(dict(settle, snapshot=n, changed="write-backs"))
        bench.clock.advance(60)
        idle = bench.run(config)            # and the idle cycle after, at this size
        out.append(dict(idle, snapshot=n, changed=0))
    return out


def scenario_naive(bench: Bench, n: int, ours: dict) -> dict:
    """A Zapier-style poller lists every meeting each time; measure one full listing."""
    sb = bench.sandbox
    token = requests.post(f"{sb.url}/oauth/v2/token", data=dict(
        grant_type="refresh_token", **sb.credentials)).json()["access_token"]
    headers = {"Authorization": f"Zoho-oauthtoken {token}"}
    params = {"fields": "id,Start_DateTime,End_DateTime,Modified_Time,Created_Time,BookingId",
              "per_page": 200, "page": 1}
    calls = size = 0
    session = requests.Session()
    while True:
        response = session.get(f"{sb.url}/crm/v8/Events", params=params, headers=headers)
        calls += 1
        size += len(response.content)
        if response.status_code != 200:
            break
        info = response.json()["info"]
        if not info.get("more_records"):
            break
        if params.get("page") and params["page"] * 200 < 2000:
            params["page"] += 1
        else:
            params.pop("page", None)
            params["page_token"] = info["next_page_token"]
    # Our idle poll: the same request with If-Modified-Since at the cursor.
    cursor = bench.clock.now()
    idle = session.get(f"{sb.url}/crm/v8/Events", headers=dict(
        headers, **{"If-Modified-Since": format_crm_datetime(cursor)}),
        params={"fields": params["fields"], "per_page": 200, "page": 1,
                "sort_by": "Modified_Time", "sort_order": "asc"})
    assert idle.status_code == 204, idle.status_code
    idle_calls = ours["crm_calls"]
    return {
        "meetings": n,
        "naive_calls_per_poll": calls, "naive_calls_per_day": calls * 1440,
        "naive_bytes_per_poll": size, "naive_mb_per_day": round(size * 1440 / 1e6, 1),
        "ours_calls_per_day": idle_calls * 1440,
        "ours_bytes_per_poll": len(idle.content) * idle_calls,
        "ours_mb_per_day": round(len(idle.content) * idle_calls * 1440 / 1e6, 3),
    }


def table(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (seconds)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args(argv)
    sizes = dict(idle=[200], edits=(500, [1, 10, 50]), scale=[(1000, [100])], naive=1000) \
        if args.quick else dict(idle=[1000, 10_000, 100_000], edits=(5000, [1, 10, 200, 2000]),
                                scale=[(10_000, [1000, 10_000]), (100_000, [1000, 10_000])],
                                naive=100_000)
    results = {"machine": machine(), "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="bookings-sync-bench-") as tmp:
        # Each scenario gets its own sandbox so sizes don't add up.
        def fresh():
            return Bench(Path(tmp))

        growth = []
        for n in sizes["idle"]:
            bench = fresh()
            try:
                growth.extend(dict(row, snapshot=n) for row in scenario_idle(bench, n))
            finally:
                bench.close()
        results["idle"] = growth
        bench = fresh()
        try:
            n, ks = sizes["edits"]
            results["edits"] = scenario_edits(bench, n, ks)
        finally:
            bench.close()
        scale = []
        for n, changes in sizes["scale"]:
            bench = fresh()
            try:
                scale.extend(scenario_scale(bench, n, changes))
            finally:
                bench.close()
        results["scale"] = scale
        bench = fresh()
        try:
            bench.sandbox.seed(sizes["naive"])
            results["naive"] = scenario_naive(bench, sizes["naive"], growth[0])
        finally:
            bench.close()

    m = results["machine"]
    print(f"\nbookings-sync bench — {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
          f"commit {m['commit']}, {m['date']}\n")
    print("Idle cycle (nothing changed):")
    print(table(results["idle"], ["snapshot", "on_delete", "crm_calls", "bookings_calls", "token_calls",
                                  "cycle_ms", "cycle_cpu_ms", "process_cpu_s", "peak_rss_mb",
                                  "store_writes"]))
    print(f"  per day at interval = 60 s: {results['idle'][0]['per_day_at_60s']}\n")
    print("Cycle with k edits:")
    print(table(results["edits"], ["k", "crm_calls", "bookings_calls",
                                   "bookings_per_reschedule", "cycle_ms", "cycle_cpu_ms",
                                   "store_writes"]))
    print("\nScale (one cycle; changed = 0 is the idle cycle after):")
    print(table(results["scale"], ["snapshot", "changed", "wall_s", "cycle_ms", "cycle_cpu_ms",
                                   "process_cpu_s", "peak_rss_mb", "state_file_mb",
                                   "store_writes", "crm_calls", "bookings_calls",
                                   "sandbox_cpu_s"]))
    naive = results["naive"]
    print(f"\nVersus a naive poller at {naive['meetings']} meetings, one poll a minute:")
    print(table([
        {"poller": "list everything", "CRM calls/day": naive["naive_calls_per_day"],
         "MB/day": naive["naive_mb_per_day"]},
        {"poller": "bookings-sync (idle)", "CRM calls/day": naive["ours_calls_per_day"],
         "MB/day": naive["ours_mb_per_day"]},
    ], ["poller", "CRM calls/day", "MB/day"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

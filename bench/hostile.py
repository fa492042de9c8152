"""``make hostile``: the hostile campaign of issue 10, as a tool — how many cases were tried and
how many were handled cleanly, per class.

Each case runs against a fresh sandbox (its own port) in its own temp dir, with the real console
script (``python -m bookings_sync``), deterministically; what "handled cleanly" means is checked
automatically (``hostile_harness.py``: exit codes and lines, no traceback, no secret anywhere,
never the wrong booking or twice, the state loads, a clean run converges). The classes:

- faults × endpoints × when (``hostile_faults.py``);
- hostile records (``hostile_records.py``); clones, imports and cleared ids
  (``hostile_links.py``); clocks and zones (``hostile_time.py``);
- the machine (``hostile_machine.py``) and the careless admin (``hostile_admin.py``).

Self-checks (``hostile_selfchecks.py``): cases that break a rule on purpose (a planted secret,
a traceback, a write for the wrong booking, …) must be caught, or the run fails — a check that
cannot fail proves nothing. They are not counted in the figures.

    python bench/hostile.py [--jobs 2] [--quick] [--case NAME ...] [--only TEXT] [--list] [-v]
    python bench/hostile.py --case faults/500/getappointment/persist -v   # reproduce one case

Prints a table per class and the total, every case not handled with its problems and steps,
and writes bench/hostile.json (a partial run: only to ``--out``; steps are kept for the cases
not handled). Exit 0 when every case was handled and every self-check caught its problem; 1
otherwise.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import machine  # noqa: E402  (bench/bench.py: the figures' machine and commit)
import hostile_admin  # noqa: E402
import hostile_faults  # noqa: E402
import hostile_links  # noqa: E402
import hostile_machine  # noqa: E402
import hostile_records  # noqa: E402
import hostile_selfchecks  # noqa: E402
import hostile_time  # noqa: E402
from hostile_harness import Case, run_case  # noqa: E402


def all_cases() -> list[Case]:
    cases = [case for module in (hostile_selfchecks, hostile_faults, hostile_records,
                                 hostile_links, hostile_time, hostile_machine, hostile_admin)
             for case in module.cases()]
    names = Counter(c.name for c in cases)
    doubled = [n for n, k in names.items() if k > 1]
    if doubled:
        raise SystemExit(f"duplicate case names: {doubled}")
    return cases


_BY_NAME: dict[str, Case] = {}


def _run_in_temp(name: str, verbose: bool) -> dict:
    """One case by name (scenarios are closures: workers rebuild the list, never unpickle it)."""
    if not _BY_NAME:
        _BY_NAME.update((c.name, c) for c in all_cases())
    with tempfile.TemporaryDirectory(prefix="bookings-sync-hostile-") as tmp:
        return run_case(_BY_NAME[name], Path(tmp), verbose)


def run_all(cases: list[Case], jobs: int, verbose: bool) -> list[dict]:
    """Each case in a worker process. Cases marked ``slow`` spend most of their time asleep
    (waiting out the client's re-sends, stalls): they get a second pool of ``jobs`` workers,
    so they overlap the CPU-bound ones instead of queueing behind them."""
    results = []
    if jobs <= 1:
        for case in cases:
            results.append(_run_in_temp(case.name, verbose))
            _progress(results[-1], len(results), len(cases))
        return results
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as busy, \
            concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as sleepy:
        futures = {(sleepy if case.slow else busy).submit(_run_in_temp, case.name, verbose): case
                   for case in cases}
        for future in concurrent.futures.as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:          # a worker that died: the case counts as not handled
                case = futures[future]
                result = {"name": case.name, "group": case.group, "handled": False,
                          "problems": [f"harness: worker failed: {exc!r}"], "kinds": ["harness"],
                          "steps": [], "catches": case.catches, "skipped": None, "seconds": 0}
            results.append(result)
            _progress(result, len(results), len(cases))
    return results


def _progress(result: dict, done: int, total: int) -> None:
    mark = "ok " if result["handled"] else "NOT"
    print(f"[{done:3}/{total}] {mark} {result['seconds']:5.1f}s {result['name']}",
          file=sys.stderr, flush=True)


def self_check_verdicts(results: list[dict]) -> list[dict]:
    """A self-check passes when its case was *not* handled, for the reason it plants."""
    return [{"name": r["name"], "catches": r["catches"],
             "caught": r["kinds"] == [r["catches"]], "kinds": r["kinds"]}
            for r in results if r["catches"]]


def tables(results: list[dict]) -> tuple[dict, dict]:
    """Per class and in total: cases tried, handled, not handled (skipped cases are not tried)."""
    groups: dict[str, Counter] = {}
    for r in results:
        if r["catches"] or r.get("skipped"):
            continue
        counter = groups.setdefault(r["group"], Counter())
        counter["cases"] += 1
        counter["handled" if r["handled"] else "not handled"] += 1
    total = Counter()
    for counter in groups.values():
        total.update(counter)
    as_dict = {g: {k: c[k] for k in ("cases", "handled", "not handled")}
               for g, c in groups.items()}
    return as_dict, {k: total[k] for k in ("cases", "handled", "not handled")}


def print_report(results: list[dict], groups: dict, total: dict, checks: list[dict],
                 seconds: float, jobs: int) -> None:
    width = max([len(g) for g in groups] + [5])
    print(f"\n{'class':<{width}} | cases | handled | not handled")
    print(f"{'-' * width}-|-------|---------|------------")
    for group, row in groups.items():
        print(f"{group:<{width}} | {row['cases']:5} | {row['handled']:7} | {row['not handled']:11}")
    print(f"{'total':<{width}} | {total['cases']:5} | {total['handled']:7} | "
          f"{total['not handled']:11}")
    caught = sum(c["caught"] for c in checks)
    print(f"\nself-checks: {caught}/{len(checks)} caught"
          + "".join(f"\n  MISSED {c['name']} (expected {c['catches']}, got {c['kinds']})"
                    for c in checks if not c["caught"]))
    print(f"wall time: {seconds:.0f} s with --jobs {jobs}")
    for r in results:
        if r.get("skipped"):
            print(f"skipped: {r['name']}: {r['skipped']}")
    failed = [r for r in results if not r["handled"] and not r["catches"] and not r.get("skipped")]
    if failed:
        print(f"\nNot handled ({len(failed)}):")
    for r in failed:
        print(f"\n* {r['name']}   (python bench/hostile.py --case {r['name']} -v)")
        for problem in r["problems"][:8]:
            print(f"    - {problem}")
        print("    steps:")
        for step in r["steps"]:
            print(f"      {step}")


QUICK = ("faults/html200/getappointment/persist", "faults/redirect307/token/persist",
         "records/Start_DateTime/year-0206", "links/clone-moved-and-deleted-same-interval",
         "time/dst-America/New_York-spring", "machine/second-writer",
         "admin/config/interval-nan", "admin/secret/bom")


def select(cases: list[Case], args) -> list[Case]:
    if args.case:
        wanted = set(args.case)
        unknown = wanted - {c.name for c in cases}
        if unknown:
            raise SystemExit(f"unknown case(s): {', '.join(sorted(unknown))}")
        return [c for c in cases if c.name in wanted]
    if args.quick:
        return [c for c in cases if c.catches or c.name in QUICK]
    if args.only:
        return [c for c in cases if c.catches or args.only in c.group or args.only in c.name]
    return cases


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The hostile campaign of issue 10.")
    parser.add_argument("--jobs", type=int, default=2, help="cases run in parallel (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="the self-checks and a few cases of each class (< 20 s)")
    parser.add_argument("--case", action="append", metavar="NAME", help="only this case (repeat)")
    parser.add_argument("--only", metavar="TEXT", help="only classes or names containing TEXT")
    parser.add_argument("--list", action="store_true", help="list the case names and exit")
    parser.add_argument("--out", type=Path, help="the JSON report (default for a full run: "
                                                 "bench/hostile.json; a partial run writes "
                                                 "only where this says)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every step")
    args = parser.parse_args(argv)
    cases = select(all_cases(), args)
    if args.list:
        print("\n".join(f"{c.group:24} {c.name}" for c in cases))
        return 0
    started = time.monotonic()
    jobs = 1 if args.verbose else args.jobs      # steps of one case at a time
    order = {case.name: index for index, case in enumerate(cases)}
    results = sorted(run_all(cases, jobs, args.verbose), key=lambda r: order[r["name"]])
    seconds = time.monotonic() - started
    groups, total = tables(results)
    checks = self_check_verdicts(results)
    print_report(results, groups, total, checks, seconds, jobs)
    report = {"machine": machine(), "seconds": round(seconds, 1), "jobs": jobs,
              "quick": args.quick, "classes": groups, "total": total, "self_checks": checks,
              "cases": [{k: v for k, v in r.items() if k != "steps" or not r["handled"]}
                        for r in results]}
    out = args.out or (None if args.case or args.quick or args.only else HERE / "hostile.json")
    if out:
        out.write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"written: {out}")
    ok = total["not handled"] == 0 and all(c["caught"] for c in checks)
    print("\nHOSTILE", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Run the benchmarks: ``python -m benchmarks.run [--quick] [--only P1,P2]``.

Writes ``benchmarks/results/latest.json`` (each id -> ``{"value", "baseline", "target", "met", "params", ...}``)
and ``latest.md``. ``--quick`` (``make bench QUICK=1``, part of ``make test``) runs every benchmark at tiny
sizes to keep the harness working, and writes to ``benchmarks/results/quick/``; its figures mean nothing and
no threshold applies to them. A benchmark
that crashes is recorded with its error (``met`` false) and the others still run; the exit status is 1 then.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks import bench_ingest, bench_online, bench_refresh, bench_training
from benchmarks.harness import (
    IDS,
    RESULTS_DIR,
    Options,
    Result,
    World,
    failed_result,
    machine_record,
    world,
    write_results,
)

logger = logging.getLogger("benchmarks")

WHAT = {
    "P1": ("ingest rows/s vs the SageMaker SDK", ">= 10"),
    "P1b": ("ingest efficiency vs the latency bound", ">= 0.8"),
    "P2": ("training-set build time vs the SDK DatasetBuilder SQL", "<= 0.2"),
    "P2b": ("training-set build time vs DuckDB ASOF JOIN on the Parquet", "<= 2"),
    "P3": ("bytes scanned, 1-day entity window vs no time bounds", "<= 0.1"),
    "P4": ("AssumeRole calls in a simulated 8 h job with 64 threads", "<= 11"),
    "P5": ("online get of 10,000 ids vs a sequential GetRecord loop", ">= 20"),
    "M1": ("peak memory ingesting a Parquet file in chunks, over the file size", "<= 0.5"),
}
#: Benchmarks that need the embedded AWS server, in the order they run (P4 runs its own in-process AWS).
_WITH_SERVER: Sequence[tuple[set[str], Callable[[World, Options, set[str]], list[Result]]]] = (
    ({"P1", "P1b", "M1"}, bench_ingest.run),
    ({"P2", "P2b", "P3"}, bench_training.run),
    ({"P5"}, bench_online.run),
)


def _guarded(ids: set[str], fn: Callable[[], list[Result]]) -> list[Result]:
    """Run one benchmark module; if it crashes, its ids get a failed result instead of ending the run."""
    try:
        return fn()
    except Exception as exc:
        logger.exception("benchmark %s failed", sorted(ids))
        return [failed_result(i, WHAT[i][0], WHAT[i][1], exc) for i in sorted(ids)]


def run(options: Options, only: set[str]) -> list[Result]:
    if options.quick:
        return _run_quick(options, only)
    results: list[Result] = []
    for ids, module_run in _WITH_SERVER:
        chosen = ids & only
        if not chosen:
            continue
        started = time.perf_counter()

        def one(chosen: set[str] = chosen, module_run: Callable[..., list[Result]] = module_run) -> list[Result]:
            with world() as w:
                return module_run(w, options, chosen)

        results += _guarded(chosen, one)
        logger.info("%s done in %.1fs", ",".join(sorted(chosen)), time.perf_counter() - started)
    if "P4" in only:
        results += _guarded({"P4"}, lambda: bench_refresh.run(options))
    return _in_order(results)


def _run_quick(options: Options, only: set[str]) -> list[Result]:
    """One embedded AWS for every server benchmark (a full run gives each module a fresh one)."""
    results: list[Result] = []
    with world() as w:
        for ids, module_run in _WITH_SERVER:
            chosen = ids & only
            if chosen:
                results += _guarded(chosen, lambda m=module_run, c=chosen: m(w, options, c))
    if "P4" in only:
        results += _guarded({"P4"}, lambda: bench_refresh.run(options))
    return _in_order(results)


def _in_order(results: list[Result]) -> list[Result]:
    order = {id_: i for i, id_ in enumerate(IDS)}
    return sorted(results, key=lambda r: order.get(r.id, len(order)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 repetitions, no thresholds")
    parser.add_argument("--only", default=",".join(IDS), help="comma-separated ids, e.g. P1,P2 (default: all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results directory (default benchmarks/results, or benchmarks/results/quick with "
                             "--quick so that a smoke run never replaces the full results)")
    args = parser.parse_args(argv)
    only = {i.strip() for i in args.only.split(",") if i.strip()}
    unknown = only - set(IDS)
    if unknown:
        parser.error(f"unknown benchmark id(s) {sorted(unknown)}; known: {', '.join(IDS)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("botocore", "boto3", "urllib3", "featureshare"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    options = Options(quick=args.quick)
    machine = machine_record()
    results = run(options, only)
    out = args.out or (RESULTS_DIR / "quick" if args.quick else RESULTS_DIR)
    json_path, md_path = write_results(results, machine, options, started, out)
    for r in results:
        shown = "skipped" if r.value is None else f"{r.value:.3g}{r.unit}"
        print(f"{r.id:4} {shown:>12}  target {r.target}{r.unit:2} {'met' if r.met else 'NOT MET'}  {r.what}")
    print(f"wrote {json_path} and {md_path} in {time.perf_counter() - clock:.0f}s")
    crashed = [r.id for r in results if r.checks.get("ran") is False]
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())

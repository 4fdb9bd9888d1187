"""P1, P1b, M1: ingestion throughput against the SageMaker SDK, efficiency against the latency bound, and peak
memory ingesting a large Parquet file in chunks.

P1: the consumer ingests a DataFrame into a central group through its assumed role, over the embedded AWS
server with 10 ms injected latency per runtime call, at equal concurrency (8 and 32 requests in flight).
featureshare sends ``BatchWriteRecord`` calls of 25 records; the SDK (``ingest_dataframe`` with its defaults)
sends one ``PutRecord`` per row. Both get the same frame (event times already ISO-8601 strings, as the SDK
needs). Rows/s of each side are medians of repetitions in the same run; the baseline ingests fewer rows per
repetition because it is ~25x slower (rows/s do not depend on the row count once the threads are busy).

P1b: featureshare's rows/s at C=8 divided by the latency bound C x 25 / latency = 20,000 rows/s: how much of
the time goes to waiting on AWS rather than to client or emulator CPU.

M1: a child process ingests a Parquet file through the documented streaming path
(``group.ingest(featureshare.sources.iter_parquet_chunks(path, chunk))``: buffered page-by-page reads, one
batch converted to pandas at a time, rows per chunk capped to ~2 MiB of data); value = (peak RSS - RSS before
ingesting) / file size, after a warm-up ingest of the first 5 rows (one-time costs: see ``_m1_child``). The
absolute peak (interpreter + pandas + pyarrow + boto3, ~150 MB before any data) is recorded too. Records go to
the online store only, cycling over a bounded set of ids, so the emulator's own memory stays small (the offline
buffer of millions of rows would live in the server process, not in the measured one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import sdk_baselines
from benchmarks.harness import Options, Result, World, median

LATENCY_MS = 10.0
CONCURRENCIES = (8, 32)
BATCH = 25
P1_TARGET, P1B_TARGET, M1_TARGET = ">= 10", ">= 0.8", "<= 0.5"
START = pd.Timestamp("2026-03-01", tz="UTC")


def ingest_frame(n: int, *, offset: int = 0, seed: int = 11) -> pd.DataFrame:
    """``n`` rows of a realistic user-features frame; ids ``offset..offset+n`` (distinct across repetitions)."""
    rng = np.random.default_rng(seed + offset)
    times = START + pd.to_timedelta(rng.integers(0, 30 * 86400, n), unit="s")
    return pd.DataFrame({
        "user_id": [f"u{i:08d}" for i in range(offset, offset + n)],
        "event_time": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "country": rng.choice(["DE", "FR", "GB", "IN", "JP", "US", "BR"], n),
        "lifetime_value": np.round(rng.gamma(2.0, 40.0, n), 2),
        "orders": rng.integers(0, 60, n).astype("int64"),
    })


def _spec(name: str, frame: pd.DataFrame, **options: Any) -> Any:
    from featureshare.groups import GroupSpec

    return GroupSpec.from_dataframe(name, frame, record_id="user_id", event_time="event_time", **options)


# ------------------------------------------------------------------------------------------------ P1

def _featureshare_rates(world: World, group: Any, options: Options, concurrency: int, rows: int,
                        offset: int) -> tuple[list[float], int]:
    rates, failed = [], 0
    for i in range(options.repeats):
        frame = ingest_frame(rows, offset=offset + i * rows)
        started = time.perf_counter()
        report = group.ingest(frame, max_in_flight=concurrency)
        rates.append(report.rows_written / (time.perf_counter() - started))
        failed += report.failed + (rows - report.rows_written)
        world.server.command("flush")  # keep the emulator's offline buffer small; not timed
    return rates, failed


def _baseline_rates(world: World, group: Any, options: Options, concurrency: int, rows: int, offset: int,
                    sdk: bool, workdir: Path) -> tuple[list[float], int]:
    frames = [ingest_frame(rows, offset=offset + i * rows) for i in range(options.repeats)]
    if sdk:
        path = workdir / f"sdk-{concurrency}.parquet"
        pd.concat(frames, ignore_index=True).to_parquet(path, index=False)
        env = world.child_env(credentials=world.central.boto3_session.get_credentials().get_frozen_credentials())
        runs = sdk_baselines.run_sdk_ingest(env, group=group.name, parquet=str(path), concurrency=concurrency,
                                            repeats=options.repeats, region=world.region)
        world.server.command("flush")
        return [(r["rows"] - r["failed"]) / r["seconds"] for r in runs], sum(r["failed"] for r in runs)
    client = world.central.client("sagemaker-featurestore-runtime", max_pool_connections=concurrency)
    rates, failed = [], 0
    for frame in frames:
        started = time.perf_counter()
        lost = sdk_baselines.put_record_loop(client, group.arn, frame, concurrency)
        rates.append((len(frame) - lost) / (time.perf_counter() - started))
        failed += lost
        world.server.command("flush")
    return rates, failed


def run_p1(world: World, options: Options) -> list[Result]:
    rows = options.size(8_000, 500)
    baseline_rows = options.size(200, 40)
    group = world.ensure_central(_spec("bench-ingest", ingest_frame(10)))
    sdk, why = (False, "quick run: the SDK is not started (PutRecord loop instead)") if options.quick else \
        sdk_baselines.sdk_available(world.child_env())
    per_c: dict[str, Any] = {}
    checks: dict[str, bool] = {}
    world.server.command("faults", latency_ms=LATENCY_MS)
    with tempfile.TemporaryDirectory(prefix="featureshare-bench-") as tmp:
        for c_index, concurrency in enumerate(CONCURRENCIES):
            offset = 10_000_000 * (c_index + 1)
            fs, fs_failed = _featureshare_rates(world, group, options, concurrency, rows, offset)
            base, base_failed = _baseline_rates(world, group, options, concurrency, baseline_rows,
                                                offset + 5_000_000, sdk, Path(tmp))
            per_c[f"C={concurrency}"] = {
                "featureshare_rows_per_s": round(median(fs), 1), "baseline_rows_per_s": round(median(base), 1),
                "ratio": round(median(fs) / median(base), 2), "featureshare_samples": [round(r) for r in fs],
                "baseline_samples": [round(r, 1) for r in base]}
            checks[f"featureshare wrote every row (C={concurrency})"] = fs_failed == 0
            checks[f"baseline wrote every row (C={concurrency})"] = base_failed == 0
    world.server.command("clear")
    name = sdk_baselines.SDK_NAME if sdk else sdk_baselines.LOOP_NAME
    params = {"latency_ms": LATENCY_MS, "concurrency": list(CONCURRENCIES), "rows_per_repetition": rows,
              "baseline_rows_per_repetition": baseline_rows, "repeats": options.repeats, "per_concurrency": per_c,
              "featureshare_call": "BatchWriteRecord x25", "baseline_call": "PutRecord per row"}
    ratio = min(v["ratio"] for v in per_c.values())
    c8 = per_c["C=8"]
    bound = CONCURRENCIES[0] * BATCH / (LATENCY_MS / 1000)
    p1 = Result("P1", "ingest rows/s vs the SageMaker SDK, 10 ms latency, equal concurrency (worst of C=8, 32)",
                ratio, {"name": name, "rows_per_s": {k: v["baseline_rows_per_s"] for k, v in per_c.items()}},
                P1_TARGET, params, unit="x", checks=checks, notes=[why])
    p1b = Result("P1b", "ingest efficiency vs the latency bound C x 25 / latency (C=8)",
                 c8["featureshare_rows_per_s"] / bound, {"name": "latency bound", "rows_per_s": bound},
                 P1B_TARGET, {"latency_ms": LATENCY_MS, "concurrency": 8, "rows_per_repetition": rows,
                              "featureshare_rows_per_s": c8["featureshare_rows_per_s"],
                              "samples": c8["featureshare_samples"]}, checks=dict(checks))
    return [p1, p1b]


# ------------------------------------------------------------------------------------------------ M1

def write_big_parquet(path: Path, target_bytes: int, *, payload: int = 1000, row_group: int = 20_000,
                      seed: int = 5) -> int:
    """A Parquet file of about ``target_bytes``: rows with a ``payload``-character random (incompressible)
    string feature, written row group by row group (never all in memory). Returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    rows_total = max(1, target_bytes // (payload + 40))
    alphabet = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", dtype=np.uint8)
    writer = None
    written = 0
    try:
        while written < rows_total:
            n = min(row_group, rows_total - written)
            chars = alphabet[rng.integers(0, len(alphabet), (n, payload))]
            table = pa.table({
                "user_id": [f"m{(written + i) % 50_000:06d}" for i in range(n)],
                "event_time": (START + pd.to_timedelta(np.arange(written, written + n) % 86400, unit="s")
                               ).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "payload": pa.array([row.tobytes().decode() for row in chars], pa.string()),
                "score": rng.random(n)})
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            written += n
    finally:
        if writer is not None:
            writer.close()
    return written


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _m1_child(args: argparse.Namespace) -> None:
    """Child process: ingest the file through the documented streaming reader (or only read it,
    ``--read-only``); print the memory figures as one JSON line.

    Before the baseline RSS is read, the file's first rows go once through the same path (read, and for an
    ingest also written): lazy imports, botocore's runtime model, the client and its thread pool are one-time
    costs of any ingestion, not memory that grows with the file, and at 100 MB instead of the issue's 2 GB
    they would otherwise count ~20x more than they do at full size. The measured ingest writes every row
    again (the warm-up rows are overwritten with the same values)."""
    import pyarrow.parquet as pq

    from featureshare.groups import FeatureStore
    from featureshare.session import AccountSession
    from featureshare.sources import DEFAULT_MAX_CHUNK_BYTES, iter_parquet_chunks, rows_per_chunk

    group = FeatureStore(AccountSession.current()).group(args.group)
    head = next(iter_parquet_chunks(args.parquet, 5))
    if not args.read_only:
        group.ingest(head, max_in_flight=8, target_stores=["OnlineStore"])
    before = _rss_kb("VmRSS")
    started = time.perf_counter()
    half: dict[str, int] = {}
    total_rows = pq.ParquetFile(args.parquet).metadata.num_rows

    def chunks() -> Any:  # notes the peak when half the file has been read: a bounded reader stops growing
        seen = 0
        for frame in iter_parquet_chunks(args.parquet, args.chunk):
            seen += len(frame)
            if seen * 2 >= total_rows and not half:
                half["peak_kb"] = _rss_kb("VmHWM")
            yield frame

    if args.read_only:
        rows, failed = sum(len(frame) for frame in chunks()), 0
    else:
        report = group.ingest(chunks(), chunk_size=args.chunk, max_in_flight=8, target_stores=["OnlineStore"])
        rows, failed = report.rows_written, report.failed
    print(json.dumps({"rss_before_kb": before, "peak_kb": _rss_kb("VmHWM"), "half_peak_kb": half.get("peak_kb", 0),
                      "rows": rows, "failed": failed,
                      "seconds": time.perf_counter() - started,
                      "rows_per_chunk": rows_per_chunk(pq.ParquetFile(args.parquet).metadata, args.chunk,
                                                       DEFAULT_MAX_CHUNK_BYTES)}), flush=True)


def run_m1(world: World, options: Options) -> list[Result]:
    target = options.size(100, 2) * 1024 * 1024
    chunk = 10_000 if not options.quick else 1_000
    with tempfile.TemporaryDirectory(prefix="featureshare-bench-m1-") as tmp:
        path = Path(tmp) / "big.parquet"
        rows = write_big_parquet(path, target)
        size = path.stat().st_size
        group = world.ensure_central(_spec("bench-memory", _head(path), offline=False))
        env = world.child_env(credentials=world.central.boto3_session.get_credentials().get_frozen_credentials())
        read = _run_m1_child(env, group.arn, path, chunk, read_only=True)
        out = _run_m1_child(env, group.arn, path, chunk, read_only=False)
    grew = (out["peak_kb"] - out["rss_before_kb"]) * 1024
    read_grew = (read["peak_kb"] - read["rss_before_kb"]) * 1024
    params = {"file_bytes": size, "rows": rows, "chunk_rows": chunk, "rows_per_chunk": out["rows_per_chunk"],
              "reader": "featureshare.sources.iter_parquet_chunks", "max_in_flight": 8,
              "rss_before_ingest_mb": round(out["rss_before_kb"] / 1024, 1),
              "peak_rss_mb": round(out["peak_kb"] / 1024, 1), "peak_over_file": round(out["peak_kb"] * 1024 / size, 3),
              "ingest_seconds": round(out["seconds"], 1), "target_stores": ["OnlineStore"],
              "read_only_growth_mb": round(read_grew / 2**20, 1), "ingest_growth_mb": round(grew / 2**20, 1),
              "ingest_growth_at_half_file_mb": round((out["half_peak_kb"] - out["rss_before_kb"]) / 1024, 1),
              "pipeline_over_file": round((grew - read_grew) / size, 3),
              "issue_size": "2 GB; scaled down to fit the 10-minute budget: ingestion through the emulator "
                            "runs at ~1-2 thousand 1 kB rows/s on this machine"}
    return [Result("M1", "peak memory ingesting a Parquet file in chunks, over the file size", grew / size,
                   {"name": "file size", "bytes": size}, M1_TARGET, params, unit="x",
                   checks={"every row written": out["failed"] == 0 and out["rows"] == rows},
                   notes=["value = (peak RSS - RSS before ingesting) / file size; the interpreter with pandas, "
                          "pyarrow and boto3 loaded, and one warm-up ingest of the file's first 5 rows (lazy "
                          "imports, the runtime client and its pool: one-time costs), are counted in "
                          "params.peak_rss_mb, not in the value",
                          "rows_per_chunk: chunk_rows capped by the reader to ~2 MiB of uncompressed data "
                          "(featureshare.sources.DEFAULT_MAX_CHUNK_BYTES)",
                          "read_only_growth_mb: the same child only reading the file the same way (pyarrow + "
                          "pandas); pipeline_over_file = (ingest growth - read-only growth) / file size is "
                          "featureshare's own share"])]


def _run_m1_child(env: dict[str, str], arn: str, path: Path, chunk: int, *, read_only: bool) -> dict[str, Any]:
    args = [sys.executable, "-m", "benchmarks.bench_ingest", "m1-child", "--group", arn, "--parquet", str(path),
            "--chunk", str(chunk), *(["--read-only"] if read_only else [])]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"M1 child failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _head(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return next(pq.ParquetFile(path).iter_batches(batch_size=5)).to_pandas()


def run(world: World, options: Options, only: set[str]) -> list[Result]:
    results: list[Result] = []
    if only & {"P1", "P1b"}:
        results += [r for r in run_p1(world, options) if r.id in only]
    if "M1" in only:
        results += run_m1(world, options)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    child = sub.add_parser("m1-child")
    child.add_argument("--group", required=True)
    child.add_argument("--parquet", required=True)
    child.add_argument("--chunk", type=int, required=True)
    child.add_argument("--read-only", action="store_true")
    parsed = parser.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    _m1_child(parsed)

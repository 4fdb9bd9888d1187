"""Processing entrypoint: ingest a folder of csv/parquet files into one feature group, sharded across instances.

``python -m featureshare.jobs.ingest --group users --input /opt/ml/processing/input/data --output DIR``

- In SageMaker, the launcher's ``ShardedByS3Key`` input already gives each instance its own files: every file
  under ``--input`` is ingested.
- Run elsewhere with ``--instance-count N``, the sorted file list is sharded here instead: this instance takes
  the files whose index mod N is its host index. The host comes from ``--current-host`` (a name such as
  ``algo-2`` or a 0-based index), else from ``/opt/ml/config/resourceconfig.json`` (``current_host`` and
  ``hosts``); hosts default to ``algo-1 .. algo-N``.
- Credentials: the container's (default chain) -> the topology's central role, tagged with your team
  (``--account local`` writes to a group of your own account instead). Topology from ``--config`` or
  ``FEATURESHARE_CONFIG``.
- Each instance writes ``report-<host>.json`` to ``--output``; :func:`merge_reports` merges them. Exit code 0
  when every record was written, 11 when some failed, the CLI's code for other errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featureshare.errors import IngestionError, ValidationError
from featureshare.ingest import IngestReport, RowFailure
from featureshare.jobs.runtime import job_sessions, run_main

__all__ = ["RESOURCE_CONFIG", "Shard", "main", "merge_reports", "read_report", "shard_files", "write_report"]

logger = logging.getLogger(__name__)

RESOURCE_CONFIG = Path("/opt/ml/config/resourceconfig.json")
DATA_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class Shard:
    """Which share of the input this instance ingests: host ``index`` (0-based) of ``count``."""

    host: str
    index: int
    count: int


def resolve_shard(instance_count: int | None, current_host: str | None,
                  resource_config: Path = RESOURCE_CONFIG) -> Shard:
    """This instance's shard from the arguments and (if present) SageMaker's resource config."""
    config: dict[str, Any] = {}
    if resource_config.is_file():
        config = json.loads(resource_config.read_text(encoding="utf-8"))
    count = instance_count or 1
    hosts = list(config.get("hosts") or [])
    if len(hosts) != count:
        hosts = [f"algo-{i + 1}" for i in range(count)]
    host = current_host or config.get("current_host") or hosts[0]
    if host in hosts:
        index = hosts.index(host)
    elif host.isdigit():
        index = int(host)
        host = hosts[index] if index < count else host
    else:
        index = -1
    if not 0 <= index < count:
        raise ValidationError(f"current host {host!r} is not one of the {count} hosts {hosts}",
                              field="--current-host", value=host,
                              hint="pass --current-host algo-K (1..N) or a 0-based index")
    return Shard(host=host, index=index, count=count)


def shard_files(input_dir: str | Path, shard: Shard) -> list[Path]:
    """The csv/parquet files under ``input_dir`` (sorted, recursive) whose index mod ``shard.count`` is this
    shard's index."""
    root = Path(input_dir)
    if not root.is_dir():
        raise ValidationError(f"input folder {str(root)!r} does not exist", field="--input", value=str(root))
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
    return [f for i, f in enumerate(files) if i % shard.count == shard.index]


def _frames(files: Sequence[Path], offsets: list[dict[str, Any]]) -> Iterator[Any]:
    """The files' rows as DataFrames of at most ``DEFAULT_CHUNK_SIZE`` rows, streamed (memory does not grow
    with a file's size); records where each file's rows start (failure positions are cumulative)."""
    from featureshare.sources import DEFAULT_CHUNK_SIZE, iter_file_chunks

    position = 0
    for file in files:
        entry: dict[str, Any] = {"file": str(file), "first_position": position, "rows": 0}
        offsets.append(entry)
        logger.info("ingesting %s", file)
        for frame in iter_file_chunks(file, DEFAULT_CHUNK_SIZE):
            entry["rows"] += len(frame)
            position += len(frame)
            yield frame
        logger.info("ingested %s (%d rows)", file, entry["rows"])


def report_dict(report: IngestReport, **extra: Any) -> dict[str, Any]:
    """An :class:`IngestReport` as a JSON-ready dict (what ``report-<host>.json`` holds)."""
    return {"group": report.group, "rows_seen": report.rows_seen, "rows_written": report.rows_written,
            "failed": report.failed, "retries": report.retries, "throttles": report.throttles,
            "calls": report.calls, "elapsed_s": report.elapsed_s,
            "failures": [vars(f) for f in report.failures], **extra}


def write_report(report: IngestReport, output_dir: str | Path, host: str, **extra: Any) -> Path:
    target = Path(output_dir) / f"report-{host}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report_dict(report, host=host, **extra), indent=2, default=str), encoding="utf-8")
    return target


def read_report(path: str | Path) -> IngestReport:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return IngestReport(group=data["group"], rows_seen=data["rows_seen"], rows_written=data["rows_written"],
                        failures=[RowFailure(**f) for f in data.get("failures", [])], retries=data["retries"],
                        throttles=data["throttles"], calls=data.get("calls", 0), elapsed_s=data["elapsed_s"])


def merge_reports(paths: Iterable[str | Path]) -> IngestReport:
    """One report from the per-instance report files: counts and failures summed, elapsed = the slowest
    instance (they run in parallel). Failure positions stay relative to their instance's input."""
    reports = [read_report(p) for p in paths]
    if not reports:
        raise ValidationError("no report files to merge", field="paths", value=[])
    groups = sorted({r.group for r in reports})
    if len(groups) > 1:
        raise ValidationError(f"reports of different groups cannot be merged: {groups}", field="paths",
                              value=groups)
    merged = IngestReport(group=groups[0])
    for report in reports:
        merged.merge(report)
        merged.elapsed_s = max(merged.elapsed_s, report.elapsed_s)
    return merged


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m featureshare.jobs.ingest", description=__doc__.split("\n")[0])
    parser.add_argument("--group", required=True, help="feature group name (or ARN)")
    parser.add_argument("--input", required=True, help="folder of .csv/.parquet files")
    parser.add_argument("--output", help="folder for report-<host>.json")
    parser.add_argument("--account", choices=("central", "local"), default="central")
    parser.add_argument("--config", help="topology file (default: $FEATURESHARE_CONFIG)")
    parser.add_argument("--team", help="team tag for the central role (default: your consumer's team)")
    parser.add_argument("--instance-count", type=int, help="shard the input here across N instances")
    parser.add_argument("--current-host", help="this instance: algo-K or a 0-based index")
    parser.add_argument("--max-in-flight", type=int, default=8)
    parser.add_argument("--timezone", help="time zone of naive timestamps (never guessed)")
    parser.add_argument("--failures", help="write failed records to this .parquet/.jsonl file")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> IngestReport:
    """Ingest this instance's shard; return its report (also written to ``--output``)."""
    from featureshare.groups import FeatureStore

    shard = resolve_shard(args.instance_count, args.current_host)
    files = shard_files(args.input, shard)
    logger.info("host %s (%d of %d): %d file(s)", shard.host, shard.index + 1, shard.count, len(files))
    local, central = job_sessions(args.config, team=args.team, need_central=args.account == "central")
    group = FeatureStore(central if args.account == "central" and central else local).group(args.group)
    offsets: list[dict[str, Any]] = []
    if files:
        report = group.ingest(_frames(files, offsets), max_in_flight=args.max_in_flight, timezone=args.timezone,
                              failures_path=args.failures)
    else:
        report = IngestReport(group=group.name)
    logger.info("%s", report.summary())
    if args.output:
        path = write_report(report, args.output, shard.host, files=offsets, shard=vars(shard))
        logger.info("report written to %s", path)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Entrypoint; returns the process exit code (never raises for featureshare errors)."""
    return run_main("ingest", argv, parse_args, run, _exit_code)


def _exit_code(args: argparse.Namespace, report: IngestReport) -> int:
    from featureshare.cli import exit_code_for

    if report.failed:
        logger.error("%d of %d records failed", report.failed, report.rows_seen)
        return exit_code_for(IngestionError("failed records"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

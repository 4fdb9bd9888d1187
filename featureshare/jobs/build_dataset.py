"""Processing entrypoint: build the training set of a dataset spec.

``python -m featureshare.jobs.build_dataset --spec /opt/ml/processing/input/spec/spec.toml``

Inside a SageMaker Processing container: the container's credentials (the consumer's execution role, found by
the default chain) assume the topology's central role with the consumer's team tag, refreshing by themselves
for as long as the job runs; the training set is written to the spec's ``output`` (default: the consumer's
training prefix from the topology, ``<training_prefix>/<spec name>/``). The topology comes from ``--config`` or
``FEATURESHARE_CONFIG`` (the launcher ships it as an input and sets the variable).

Progress is logged to stderr; a JSON summary (output location, query id, rows, bytes scanned) is printed as the
last line of stdout and written to ``--result`` if given. Exit code 0 on success, else the CLI's code for the
error class (3 config, 4 validation, 6 access denied, 9 query failed, ...), with the reason logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featureshare.config import load_topology
from featureshare.jobs.runtime import central_session, job_sessions, run_main

if TYPE_CHECKING:
    from featureshare.training.result import BuiltTrainingSet

__all__ = ["central_session", "job_sessions", "main", "result_summary"]

logger = logging.getLogger(__name__)


def result_summary(result: BuiltTrainingSet) -> dict[str, Any]:
    """The JSON-ready facts of a training-set build result."""
    return {"location": result.location, "query_execution_id": result.query_execution_id,
            "data_scanned_bytes": result.data_scanned_bytes, "row_count": (result.manifest or {}).get("row_count")}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m featureshare.jobs.build_dataset",
                                     description="Build the training set of a dataset spec.")
    parser.add_argument("--spec", required=True, help="dataset spec (.toml/.json)")
    parser.add_argument("--config", help="topology file (default: $FEATURESHARE_CONFIG)")
    parser.add_argument("--team", help="team tag for the central role (default: your consumer's team)")
    parser.add_argument("--result", help="also write the JSON summary to this file")
    parser.add_argument("--run-id", help="write under <output>/run=<id>/ (scheduled runs pass their time)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from featureshare.dataset_spec import build_dataset, load_spec

    spec = load_spec(args.spec)
    logger.info("spec %s: %d group(s), entities %s", spec.name, len(spec.groups), spec.entities.value)
    topology = load_topology(args.config)
    local, central = job_sessions(topology, team=args.team, need_central=spec.needs_central)
    consumer = topology.consumer_for_account(local.account_id)
    default_root = consumer.training_s3_uri if consumer else None
    if args.run_id:
        run_id = re.sub(r"[^A-Za-z0-9_.=-]+", "", args.run_id) or "run"
        spec = replace(spec, output=f"{spec.output_uri(default_root)}run={run_id}/")
    logger.info("building %s -> %s", spec.name, spec.output_uri(default_root))
    summary = result_summary(build_dataset(spec, central=central, local=local, consumer=consumer))
    logger.info("done: %s", summary)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entrypoint; returns the process exit code (featureshare errors are logged, not raised)."""
    return run_main("build-dataset", argv, parse_args, run, _write_summary)


def _write_summary(args: argparse.Namespace, summary: dict[str, Any]) -> int:
    text = json.dumps(summary, default=str)
    if args.result:
        Path(args.result).write_text(text, encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

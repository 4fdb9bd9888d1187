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
from typing import Any

from featureshare.config import Topology, load_topology
from featureshare.errors import FeatureshareError
from featureshare.session import AccountSession, assume_role

__all__ = ["central_session", "job_sessions", "main", "result_summary"]

logger = logging.getLogger(__name__)


def central_session(topology: Topology, source: AccountSession, *, team: str | None = None) -> AccountSession:
    """``source``'s assumed central role, tagged with ``team`` or the team of ``source``'s consumer account."""
    consumer = topology.consumer_for_account(source.account_id)
    chosen = team or (consumer.team if consumer else None)
    return assume_role(topology.central.access_role_arn, source=source, tags={"team": chosen} if chosen else None,
                       external_id=topology.central.external_id, region=topology.region)


def job_sessions(config: str | None, *, team: str | None = None, need_central: bool = True
                 ) -> tuple[AccountSession, AccountSession | None]:
    """(the container's own session, its assumed central session or ``None``) for a job's topology."""
    topology = load_topology(config)
    local = AccountSession.current(region=topology.region)
    identity = local.whoami()
    logger.info("running as %s (account %s)", identity.arn, identity.account)
    central = central_session(topology, local, team=team) if need_central else None
    if central is not None:
        logger.info("assumed %s (team %s)", topology.central.access_role_arn, central.team)
    return local, central


def result_summary(result: Any) -> dict[str, Any]:
    """The JSON-ready facts of a training-set build result."""
    manifest = getattr(result, "manifest", None) or {}
    return {"location": getattr(result, "location", None), "query_execution_id": getattr(result, "query_execution_id",
                                                                                          None),
            "data_scanned_bytes": getattr(result, "data_scanned_bytes", None),
            "row_count": manifest.get("row_count") if isinstance(manifest, dict) else None}


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
    need_central = any(g.account == "central" for g in spec.groups) or spec.strategy == "central-role"
    local, central = job_sessions(args.config, team=args.team, need_central=need_central)
    consumer = topology.consumer_for_account(local.account_id)
    default_root = consumer.training_s3_uri if consumer else None
    if args.run_id:
        run = re.sub(r"[^A-Za-z0-9_.=-]+", "", args.run_id) or "run"
        spec = replace(spec, output=f"{spec.output_uri(default_root)}run={run}/")
    logger.info("building %s -> %s", spec.name, spec.output_uri(default_root))
    summary = result_summary(build_dataset(spec, central=central, local=local, consumer=consumer))
    logger.info("done: %s", summary)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entrypoint; returns the process exit code (featureshare errors are logged, not raised)."""
    from featureshare.cli import exit_code_for
    from featureshare.jobs.ingest import _configure_logging

    _configure_logging()
    args = parse_args(argv)
    try:
        summary = run(args)
    except FeatureshareError as exc:
        logger.error("build-dataset failed: %s", exc)
        return exit_code_for(exc)
    text = json.dumps(summary, default=str)
    if args.result:
        Path(args.result).write_text(text, encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""What every Processing entrypoint does: log to stderr, find its sessions, map featureshare errors to exit codes.

Inside the container, the default credential chain is the job's execution role; the central session is the
topology's central role assumed from it with the consumer's team tag.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from featureshare.config import Topology, load_topology
from featureshare.errors import FeatureshareError
from featureshare.session import AccountSession, assume_role

__all__ = ["central_session", "configure_logging", "job_sessions", "run_main"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def configure_logging() -> None:
    """INFO to stderr, unless the process already configured logging."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def central_session(topology: Topology, source: AccountSession, *, team: str | None = None) -> AccountSession:
    """``source``'s assumed central role, tagged with ``team`` or the team of ``source``'s consumer account."""
    consumer = topology.consumer_for_account(source.account_id)
    chosen = team or (consumer.team if consumer else None)
    return assume_role(topology.central.access_role_arn, source=source, tags={"team": chosen} if chosen else None,
                       external_id=topology.central.external_id, region=topology.region)


def job_sessions(config: str | os.PathLike[str] | Topology | None, *, team: str | None = None,
                 need_central: bool = True) -> tuple[AccountSession, AccountSession | None]:
    """(the container's own session, its assumed central session or ``None``) for a job's topology (a loaded
    one, or the file ``config`` / ``$FEATURESHARE_CONFIG``)."""
    topology = config if isinstance(config, Topology) else load_topology(config)
    local = AccountSession.current(region=topology.region)
    identity = local.whoami()
    logger.info("running as %s (account %s)", identity.arn, identity.account)
    central = central_session(topology, local, team=team) if need_central else None
    if central is not None:
        logger.info("assumed %s (team %s)", topology.central.access_role_arn, central.team)
    return local, central


def run_main(label: str, argv: Sequence[str] | None, parse_args: Callable[[Sequence[str] | None], argparse.Namespace],
             run: Callable[[argparse.Namespace], T], finish: Callable[[argparse.Namespace, T], int]) -> int:
    """An entrypoint's exit code: ``finish(args, run(args))``, or the CLI's code of the featureshare error
    ``run`` raised (logged as ``<label> failed: <reason>``)."""
    from featureshare.cli import exit_code_for

    configure_logging()
    args = parse_args(argv)
    try:
        result = run(args)
    except FeatureshareError as exc:
        logger.error("%s failed: %s", label, exc)
        return exit_code_for(exc)
    return finish(args, result)

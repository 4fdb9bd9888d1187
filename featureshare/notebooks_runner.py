"""Execute the consumer-account notebooks headless against a server-mode embedded AWS (``make notebooks``).

    python -m featureshare.notebooks_runner notebooks [--config featureshare.example.toml] [--timeout 120]

The notebooks are the ones a team runs in a SageMaker notebook of its consumer account; they take everything
from the environment (``featureshare.toml`` / ``FEATURESHARE_CONFIG``, the default credential chain), so only
the environment differs here:

- an :class:`~featureshare.local.EmbeddedAWS` server on 127.0.0.1, bootstrapped (``bootstrap apply`` as each
  account's administrator, execution roles included) from the topology in ``--config``;
- ``AWS_PROFILE`` names a profile that assumes the consumer's execution role from the consumer's
  administrator (``role_arn`` + ``source_profile``), which is what the default chain yields in SageMaker
  (no session tags: the role's own ``team`` tag, set by bootstrap, is its team);
- ``FEATURESHARE_CONFIG`` points at the topology; access keys of the calling shell are removed so the
  profile is what the kernel uses.

Each notebook runs in its own kernel (``python3``, i.e. this interpreter's ipykernel), in file-name order,
with outputs discarded unless ``--output-dir`` is given. The exit code is non-zero if any cell fails.

IAM: the embedded AWS enforces the bootstrapped policies (as in a real account, the notebooks get only what
the execution role and the central role allow); ``--no-enforce-iam`` switches that off to tell a policy
problem from a notebook bug.

Emulation limit: one consumer account (the topology's first consumer) is wired up.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featureshare.config import Topology, load_topology
from featureshare.errors import ConfigError

__all__ = ["EXECUTION_PROFILE", "NotebookResult", "main", "notebook_environment", "run_notebooks"]

logger = logging.getLogger(__name__)

EXECUTION_PROFILE = "consumer-execution"
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
DEFAULT_CELL_TIMEOUT = 180.0
ENFORCE_IAM_DEFAULT = True
# Credentials and endpoints of the calling shell must not override the profile inside the kernels.
_DROPPED_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "MOTO_ACCOUNT_ID", "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI")


@dataclass(frozen=True)
class NotebookResult:
    """How one notebook ran: ``error`` is None when every cell succeeded."""

    path: Path
    seconds: float
    cells: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _default_config(directory: Path) -> Path:
    configured = os.environ.get("FEATURESHARE_CONFIG")
    if configured:
        return Path(configured)
    return directory.resolve().parent / "featureshare.example.toml"


def notebook_environment(aws: Any, topology: Topology, config_path: Path, workdir: Path,
                         base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The kernels' environment: ``base`` (default ``os.environ``) minus ambient credentials, plus the
    embedded AWS's endpoint and a config file whose ``AWS_PROFILE`` assumes the execution role."""
    consumer = topology.consumers[0]
    embedded = aws.env()
    config_file = workdir / "config"
    profile = [f"[profile {EXECUTION_PROFILE}]", f"role_arn = {consumer.execution_role_arns[0]}",
               "source_profile = consumer-admin", "role_session_name = featureshare-notebook",
               f"region = {topology.region}", f"endpoint_url = {embedded['AWS_ENDPOINT_URL']}", ""]
    # A copy of the embedded AWS's config with one more profile; its own file is left as it is.
    existing = Path(embedded["AWS_CONFIG_FILE"]).read_text()
    config_file.write_text(existing.rstrip("\n") + "\n\n" + "\n".join(profile))
    env = {k: v for k, v in (base if base is not None else os.environ).items() if k not in _DROPPED_ENV}
    env.update(embedded)
    env.update({"AWS_CONFIG_FILE": str(config_file), "AWS_PROFILE": EXECUTION_PROFILE,
                "FEATURESHARE_CONFIG": str(config_path.resolve()), "AWS_EC2_METADATA_DISABLED": "true",
                "PYTHONUNBUFFERED": "1"})
    return env


def _execute(path: Path, env: Mapping[str, str], timeout: float, output_dir: Path | None) -> NotebookResult:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=int(timeout), kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.perf_counter()
    error: str | None = None
    try:
        client.execute(env=dict(env), cwd=str(path.parent))
    except (CellExecutionError, CellTimeoutError) as exc:
        error = _ANSI_RE.sub("", str(exc))  # IPython colours tracebacks; logs and CI want plain text
    except RuntimeError as exc:  # the kernel died or did not start
        error = f"kernel failure: {exc}"
    seconds = time.perf_counter() - started
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, output_dir / path.name)
    cells = sum(1 for cell in notebook.cells if cell.cell_type == "code")
    logger.info("notebook %s: %s in %.1fs", path.name, "ok" if error is None else "FAILED", seconds)
    return NotebookResult(path, seconds, cells, error)


def run_notebooks(directory: str | os.PathLike[str], *, config: str | os.PathLike[str] | None = None,
                  timeout: float = DEFAULT_CELL_TIMEOUT, output_dir: str | os.PathLike[str] | None = None,
                  names: Sequence[str] | None = None, stop_on_failure: bool = False,
                  enforce_iam: bool = ENFORCE_IAM_DEFAULT) -> list[NotebookResult]:
    """Run every ``*.ipynb`` of ``directory`` (or only ``names``) against a fresh embedded AWS server.

    ``config`` defaults to ``$FEATURESHARE_CONFIG``, else ``featureshare.example.toml`` beside the directory;
    its accounts must be the embedded ones. ``timeout`` bounds each cell.
    """
    from featureshare.demo import bootstrap_accounts
    from featureshare.local import EmbeddedAWS

    folder = Path(directory)
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        raise ConfigError(f"no notebooks found in {str(folder)!r}")
    if names:
        wanted = set(names)
        # A misspelt name must not silently shrink the run to the notebooks that did match.
        unknown = sorted(wanted - {p.name for p in paths} - {p.stem for p in paths})
        if unknown:
            raise ConfigError(f"names: no notebook {unknown} in {str(folder)!r} "
                              f"(found: {[p.name for p in paths]})")
        paths = [p for p in paths if p.name in wanted or p.stem in wanted]
    config_path = Path(config) if config else _default_config(folder)
    topology = load_topology(config_path)
    results: list[NotebookResult] = []
    accounts = {"central": topology.central.account_id, "consumer": topology.consumers[0].account_id}
    with EmbeddedAWS(server=True, accounts=accounts, region=topology.region, enforce_iam=enforce_iam) as aws, \
            tempfile.TemporaryDirectory(prefix="featureshare-nb-") as tmp:
        bootstrap_accounts(aws, topology)
        env = notebook_environment(aws, topology, config_path, Path(tmp))
        for path in paths:
            result = _execute(path, env, timeout, Path(output_dir) if output_dir else None)
            results.append(result)
            if stop_on_failure and not result.ok:
                break
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m featureshare.notebooks_runner``: prints one line per notebook; 0 when all passed."""
    parser = argparse.ArgumentParser(prog="python -m featureshare.notebooks_runner",
                                     description="Execute notebooks against the embedded two-account AWS.")
    parser.add_argument("directory", help="folder with the .ipynb files")
    parser.add_argument("--config", help="topology file (default: $FEATURESHARE_CONFIG, else "
                        "featureshare.example.toml beside the folder)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_CELL_TIMEOUT, help="seconds per cell")
    parser.add_argument("--output-dir", help="write the executed notebooks (with outputs) here")
    parser.add_argument("--only", action="append", help="run only this notebook (repeatable)")
    parser.add_argument("--enforce-iam", action=argparse.BooleanOptionalAction, default=ENFORCE_IAM_DEFAULT,
                        help="enforce the bootstrapped IAM policies in the embedded AWS")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        results = run_notebooks(args.directory, config=args.config, timeout=args.timeout,
                                output_dir=args.output_dir, names=args.only, enforce_iam=args.enforce_iam)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    for result in results:
        status = "ok" if result.ok else "FAILED"
        print(f"{status:6} {result.path.name}  ({result.cells} cells, {result.seconds:.1f}s)")
        if result.error:
            print(result.error, file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

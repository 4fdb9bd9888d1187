"""``featureshare build-dataset SPEC`` and ``featureshare sql SPEC``: thin shells over
:mod:`featureshare.dataset_spec` and :mod:`featureshare.training`.

Sessions: your own credentials (``--profile``) are the consumer session; central groups are read through the
central role assumed with your team's tag, or with ``--central-profile`` directly (administrators, tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from featureshare.cli_groups import session_for
from featureshare.config import ConsumerAccount
from featureshare.dataset_spec import DatasetSpec, load_spec
from featureshare.session import AccountSession

if TYPE_CHECKING:
    from featureshare.cli import Context

__all__ = ["build_dataset", "sql"]


def _sessions(obj: Context, spec: DatasetSpec, team: str | None, central_profile: str | None
              ) -> tuple[AccountSession, AccountSession | None]:
    local = obj.source_session()
    if not spec.needs_central:
        return local, None
    return local, session_for(obj, local_account=False, team=team, central_profile=central_profile)


def _consumer(obj: Context, local: AccountSession) -> ConsumerAccount | None:
    """Your consumer account in the topology (catalog name, scratch database, workgroup, default output)."""
    return obj.topology.consumer_for_account(local.account_id)


def _spec_options(func: Any) -> Any:
    func = click.option("--central-profile", metavar="PROFILE",
                        help="Read central groups with this profile directly (no AssumeRole).")(func)
    func = click.option("--team", help="Team tag for the assumed central role (default: your consumer's team).")(func)
    func = click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))(func)
    return func


@click.command("build-dataset")
@_spec_options
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the query, write the manifest and remove the staged entities. --no-wait prints the "
                   "query id and returns: no manifest, and staged entities stay under _featureshare_staging/.")
@click.option("--output", help="Override the spec's output s3:// URI.")
@click.option("--head", type=click.IntRange(min=0), default=5, show_default=True,
              help="Rows of the result to show (human output, with --wait).")
@click.pass_obj
def build_dataset(obj: Context, spec_path: str, team: str | None, central_profile: str | None, wait: bool,
                  output: str | None, head: int) -> None:
    """Build the point-in-time training set described by SPEC (.toml/.json) into your training bucket.

    \b
    Example:
      featureshare build-dataset examples/dataset.example.toml
      featureshare --json build-dataset churn.toml --no-wait
    """
    from dataclasses import replace

    from featureshare.dataset_spec import build_dataset as build
    from featureshare.jobs.build_dataset import result_summary

    spec = load_spec(spec_path)
    if output:
        spec = replace(DatasetSpec.from_dict({**spec.to_dict(), "output": output}), source=spec.source)
    local, central = _sessions(obj, spec, team, central_profile)
    result = build(spec, central=central, local=local, consumer=_consumer(obj, local), wait=wait)
    summary = result_summary(result)
    data = {"name": spec.name, "location": summary["location"],
            "query_execution_id": summary["query_execution_id"], "waited": wait}
    frame = None
    if wait:
        data["data_scanned_bytes"] = summary["data_scanned_bytes"]
        data["row_count"] = summary["row_count"]
        if head and not obj.as_json:
            frame = result.to_dataframe()
            data["row_count"] = data["row_count"] if data["row_count"] is not None else len(frame)

    def human(d: dict[str, Any]) -> str:
        lines = [f"training set {d['name']}: {d['location']}", f"query:    {d['query_execution_id']}"]
        if d["waited"]:
            lines.append(f"rows:     {d.get('row_count')}")
            lines.append(f"scanned:  {d.get('data_scanned_bytes')} bytes")
            if frame is not None:
                lines += ["", frame.head(head).to_string(index=False)]
        else:
            lines.append("not waited for: the query is still running")
        return "\n".join(lines)

    obj.emit(data, human)


@click.command("sql")
@_spec_options
@click.pass_obj
def sql(obj: Context, spec_path: str, team: str | None, central_profile: str | None) -> None:
    """Print the point-in-time SQL of SPEC without running any query.

    Groups are still described (DescribeFeatureGroup) to read their tables and schemas.

    \b
    Example:
      featureshare sql examples/dataset.example.toml > churn.sql
    """
    from featureshare.dataset_spec import render_sql

    spec = load_spec(spec_path)
    local, central = _sessions(obj, spec, team, central_profile)
    text = render_sql(spec, central=central, local=local, consumer=_consumer(obj, local))
    obj.emit({"name": spec.name, "sql": text}, text)

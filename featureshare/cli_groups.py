"""``featureshare groups list|describe|create|delete``, ``ingest``, ``get`` and ``share``: thin shells over
:mod:`featureshare.groups`, :mod:`featureshare.ingest` and :mod:`featureshare.online`.

Where commands act: by default in the **central** account, through the central role assumed from your own
credentials with your team's tag (``Context.central_session``). ``--local`` acts in your own account (local
groups). ``--central-profile PROFILE`` acts in the central account with that profile's credentials directly,
without AssumeRole (platform administrators; the embedded AWS's ``central-admin``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from featureshare import errors
from featureshare.session import AccountSession

if TYPE_CHECKING:
    from featureshare.cli import Context

__all__ = ["RAM_PERMISSIONS", "get", "groups", "ingest", "session_for", "share", "share_request", "spec_from_file",
           "where_options"]

#: AWS managed RAM permissions for SageMaker feature groups ("Enabling cross account access" in the
#: SageMaker developer guide; note AWS's own spelling "Sagemaker" in the read-write name).
RAM_PERMISSIONS = {
    "read-only": "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerFeatureGroupReadOnly",
    "read-write": "arn:aws:ram::aws:permission/AWSRAMPermissionSagemakerFeatureGroupReadWrite",
}
_PRINCIPAL_RE = re.compile(r"^(\d{12}|arn:aws[a-z-]*:(iam::\d{12}:(root|role/.+|user/.+)|organizations::\d{12}:.+))$")
_SPEC_KEYS = {"name", "record_id", "event_time", "features", "description", "tags", "online", "offline",
              "table_format", "ttl", "online_storage", "online_kms_key", "offline_kms_key"}


# ------------------------------------------------------------------------------------- where commands act

def where_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--local``, ``--team`` and ``--central-profile``: which account and credentials a command uses."""
    func = click.option("--central-profile", metavar="PROFILE",
                        help="Act in the central account with this profile directly (no AssumeRole).")(func)
    func = click.option("--team", help="Team tag for the assumed central role (default: your consumer's team).")(func)
    func = click.option("--local", "local_account", is_flag=True,
                        help="Act in your own account (local groups) instead of the central account.")(func)
    return func


def session_for(obj: Context, *, local_account: bool, team: str | None, central_profile: str | None
                ) -> AccountSession:
    """The session a command acts with (see the module docstring)."""
    if local_account and central_profile:
        raise errors.ValidationError("--local and --central-profile exclude each other", field="--local",
                                     hint="drop one of them")
    if local_account:
        return obj.source_session()
    if central_profile:
        region = obj.region or obj.topology.region
        return AccountSession.current(region=region, profile=central_profile)
    return obj.central_session(team)


def _store(obj: Context, **where: Any) -> Any:
    from featureshare.groups import FeatureStore

    return FeatureStore(session_for(obj, **where))


# ------------------------------------------------------------------------------------------------ helpers

def spec_from_file(path: str | Path) -> Any:
    """A :class:`~featureshare.group_spec.GroupSpec` from a ``.toml``/``.json`` file.

    Keys: ``name``, ``record_id``, ``event_time``, ``features`` (a table ``{name = "Integral"}`` or a list of
    ``{name, type}``), and optionally ``description``, ``tags``, ``online``, ``offline``, ``table_format``,
    ``ttl`` (seconds or '7d'), ``online_storage``, ``online_kms_key``, ``offline_kms_key``.
    """
    from featureshare.group_spec import Feature, GroupSpec
    from featureshare.training.sql import parse_ttl

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise errors.ValidationError(f"{file}: cannot read the group spec: {exc}", field="--from-file",
                                     value=str(file)) from exc
    problems = [f"{k}: unknown key (allowed: {', '.join(sorted(_SPEC_KEYS))})" for k in sorted(set(data) - _SPEC_KEYS)]
    problems += [f"{k}: missing" for k in ("name", "record_id", "event_time", "features") if k not in data]
    raw = data.get("features", {})
    pairs = list(raw.items()) if isinstance(raw, Mapping) else [
        (f.get("name"), f.get("type")) if isinstance(f, Mapping) else (f, None) for f in raw or []]
    if problems:
        raise errors.ValidationError(f"{file}: invalid group spec: " + "; ".join(problems), field="--from-file",
                                     value=str(file), problems=problems)
    options = {k: v for k, v in data.items() if k in _SPEC_KEYS - {"name", "record_id", "event_time", "features"}}
    if "ttl" in options:
        options["ttl"] = dt.timedelta(seconds=parse_ttl(options["ttl"]) or 0)
    spec = GroupSpec(name=data["name"], record_id=data["record_id"], event_time=data["event_time"],
                     features=[Feature(str(n), t) for n, t in pairs], **options)
    return spec.validate()


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def _group_dict(group: Any) -> dict[str, Any]:
    return {"name": group.name, "arn": group.arn, "account": group.account_id, "status": group.status,
            "record_id": group.record_id, "event_time": group.event_time, "features": group.features,
            "online": group.online_enabled, "offline": group.offline_enabled, "catalog": group.catalog,
            "database": group.database, "table": group.table, "table_format": group.table_format,
            "offline_s3_uri": group.offline_s3_uri, "tags": group.tags}


def _describe_text(data: Mapping[str, Any]) -> str:
    lines = [f"{data['name']}  ({data['status']}, account {data['account']})", f"arn:         {data['arn']}",
             f"record id:   {data['record_id']}", f"event time:  {data['event_time']}",
             f"stores:      online={'yes' if data['online'] else 'no'} offline={'yes' if data['offline'] else 'no'}"]
    if data["table"]:
        lines.append(f"table:       {data['database']}.{data['table']} ({data['table_format']})")
    lines.append("features:")
    lines += [f"  {name:<32} {ftype}" for name, ftype in data["features"].items()]
    if data["tags"]:
        lines.append("tags:        " + ", ".join(f"{k}={v}" for k, v in sorted(data["tags"].items())))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ groups

@click.group()
def groups() -> None:
    """List, describe, create and delete feature groups (central by default; --local for your own account).

    \b
    Examples:
      featureshare groups list
      featureshare groups describe users
      featureshare groups create --from-file users.group.toml
      featureshare groups delete users --yes
      featureshare groups list --local
    """


@groups.command("list")
@where_options
@click.option("--contains", help="Only groups whose name contains this text.")
@click.option("--status", help="Only groups in this status (e.g. Created).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many groups.")
@click.pass_obj
def groups_list(obj: Context, contains: str | None, status: str | None, limit: int | None, **where: Any) -> None:
    """List feature groups, newest first.

    \b
    Example:
      featureshare --json groups list --contains user
    """
    found = _store(obj, **where).list_groups(name_contains=contains, status=status, limit=limit)
    data = [{"name": g.name, "arn": g.arn, "status": g.status, "offline_status": g.offline_status,
             "created": g.creation_time.isoformat() if g.creation_time else None} for g in found]
    obj.emit(data, lambda rows: _table([[r["name"], r["status"], r["offline_status"] or "-", r["created"]]
                                        for r in rows], ["NAME", "STATUS", "OFFLINE", "CREATED"])
             if rows else "no feature groups")


@groups.command("describe")
@where_options
@click.argument("group")
@click.pass_obj
def groups_describe(obj: Context, group: str, **where: Any) -> None:
    """Show a feature group's schema, stores, table and tags (GROUP: a name, or an ARN of any account).

    \b
    Example:
      featureshare groups describe arn:aws:sagemaker:us-east-1:111111111111:feature-group/users
    """
    obj.emit(_group_dict(_store(obj, **where).group(group)), _describe_text)


@groups.command("create")
@where_options
@click.option("--from-file", "from_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Group spec (.toml or .json): name, record_id, event_time, features, ...")
@click.option("--offline-uri", help="Offline store S3 URI (default: the topology's central offline store; "
                                    "for --local groups s3://<your training bucket>/feature-store).")
@click.option("--role-arn", help="Role Feature Store assumes to write the offline store (default: the "
                                 "topology's; for --local groups your first execution role).")
@click.option("--add-features", is_flag=True, help="If the group exists with fewer features, add the new ones.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the group is Created.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True, help="Seconds to wait.")
@click.pass_obj
def groups_create(obj: Context, from_file: str, offline_uri: str | None, role_arn: str | None, add_features: bool,
                  wait: bool, timeout: float, **where: Any) -> None:
    """Create a feature group from a spec file, or verify the existing one matches it (idempotent).

    \b
    Example spec (users.group.toml):
      name = "users"
      record_id = "user_id"
      event_time = "ts"
      features = { user_id = "String", ts = "String", age = "Integral", score = "Fractional" }
    \b
    Example:
      featureshare groups create --from-file users.group.toml
    """
    spec = spec_from_file(from_file)
    if not where["local_account"]:
        offline_uri = offline_uri or obj.topology.central.offline_s3_uri
        role_arn = role_arn or obj.topology.central.offline_store_role_arn or None
    elif spec.offline and not (offline_uri and role_arn):
        offline_uri, role_arn = _local_offline_defaults(obj, spec.name, offline_uri, role_arn)
    group = _store(obj, **where).ensure_group(spec, offline_s3_uri=offline_uri, role_arn=role_arn,
                                              team=where.get("team"), add_features=add_features, wait=wait,
                                              timeout=timeout)
    obj.emit(_group_dict(group), lambda d: f"{d['name']}: {d['status']} in account {d['account']} ({d['arn']})")


def _local_offline_defaults(obj: Context, name: str, offline_uri: str | None, role_arn: str | None
                            ) -> tuple[str, str]:
    """A local group's offline store defaults to the consumer's training bucket, written with its first
    execution role (``ConsumerAccount.local_offline_s3_uri``)."""
    consumer = obj.topology.consumer_for_account(obj.source_session().account_id)
    if consumer is None:
        raise errors.ValidationError(f"local group {name!r} has an offline store but no --offline-uri/--role-arn, "
                                     "and your account is not a consumer of the topology", field="--offline-uri",
                                     value=offline_uri, hint="pass --offline-uri s3://... --role-arn arn:aws:iam::"
                                                             "...:role/..., or set offline = false in the spec")
    return offline_uri or consumer.local_offline_s3_uri, role_arn or consumer.execution_role_arns[0]


@groups.command("delete")
@where_options
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the group is gone.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True, help="Seconds to wait.")
@click.pass_obj
def groups_delete(obj: Context, name: str, yes: bool, wait: bool, timeout: float, **where: Any) -> None:
    """Delete a feature group and its online records (offline data in S3 is kept, as AWS does).

    \b
    Example:
      featureshare groups delete users --yes
    """
    if not yes:
        click.confirm(f"Delete feature group {name!r} and its online records?", abort=True)
    _store(obj, **where).delete_group(name, confirm=name, wait=wait, timeout=timeout)
    obj.emit({"deleted": name}, f"deleted {name}")


# ------------------------------------------------------------------------------------------------ ingest

@click.command("ingest")
@where_options
@click.argument("group")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--max-in-flight", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Concurrent BatchWriteRecord calls.")
@click.option("--failures", "failures_path", type=click.Path(dir_okay=False),
              help="Write records that failed to this .parquet or .jsonl file.")
@click.option("--timezone", help="Time zone of naive timestamps in the file (e.g. UTC); never guessed.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.pass_obj
def ingest(obj: Context, group: str, file: str, max_in_flight: int, failures_path: str | None,
           timezone: str | None, progress: bool, **where: Any) -> None:
    """Write the rows of a .csv or .parquet FILE (a path or s3://bucket/key) into feature group GROUP (a name
    or an ARN). The file is streamed a chunk at a time, so memory does not grow with its size; an s3:// FILE is
    read with your own account's credentials.

    Exits non-zero (11) with the number of failed records if any record could not be written.

    \b
    Example:
      featureshare ingest users users.parquet --failures failed.jsonl
    """
    from featureshare.sources import DEFAULT_CHUNK_SIZE, iter_file_chunks

    source_session = obj.source_session() if file.startswith("s3://") else None
    chunks = iter_file_chunks(file, DEFAULT_CHUNK_SIZE, session=source_session)
    target = _store(obj, **where).group(group)
    report = target.ingest(chunks, max_in_flight=max_in_flight, failures_path=failures_path, timezone=timezone,
                           progress=progress and not obj.as_json, chunk_size=DEFAULT_CHUNK_SIZE)
    data = {"group": report.group, "rows_seen": report.rows_seen, "rows_written": report.rows_written,
            "failed": report.failed, "retries": report.retries, "throttles": report.throttles,
            "elapsed_s": round(report.elapsed_s, 3), "rows_per_s": round(report.rows_per_s, 1),
            "failures_path": report.failures_path,
            "failures": [vars(f) for f in report.failures[:20]]}
    obj.emit(data, lambda _: report.summary())
    if report.failed:
        where_to = f"; see {report.failures_path}" if report.failures_path else " (use --failures PATH to keep them)"
        first = report.failures[0]
        raise errors.IngestionError(
            f"{report.failed} of {report.rows_seen} records failed (first: row {first.position}: {first.code}: "
            f"{first.message}){where_to}", report=report)


# --------------------------------------------------------------------------------------------------- get

@click.command("get")
@where_options
@click.argument("group")
@click.argument("record_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--features", help="Comma-separated feature names (default: all).")
@click.pass_obj
def get(obj: Context, group: str, record_ids: tuple[str, ...], features: str | None, **where: Any) -> None:
    """Read records from a group's online store (GROUP: a name, or an ARN of a shared group).

    Exits 7 if any ID has no record (the others are still printed).

    \b
    Example:
      featureshare get users u-001 u-002 --features age,score
    """
    wanted = [f.strip() for f in features.split(",") if f.strip()] if features else None
    store = _store(obj, **where)
    target = store.group(group)
    frames = store.get_many({target: list(record_ids)}, features=wanted)
    frame = next(iter(frames.values()))
    records = {str(row[target.record_id]): {k: _plain(v) for k, v in row.items()}
               for row in frame.to_dict(orient="records")}
    data = {rid: records.get(rid) for rid in record_ids}
    obj.emit(data, lambda d: "\n".join(f"{rid}: {json.dumps(rec, default=str) if rec else '(not found)'}"
                                       for rid, rec in d.items()))
    missing = [rid for rid, rec in data.items() if rec is None]
    if missing:
        raise errors.NotFoundError(f"{len(missing)} of {len(record_ids)} record(s) not found in {target.name}: "
                                   + ", ".join(missing[:10]), code="RecordNotFound")


def _plain(value: Any) -> Any:
    """numpy / pandas scalars -> JSON-friendly Python values; missing -> None."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


# ------------------------------------------------------------------------------------------------- share

def share_request(group_arn: str, principals: Sequence[str], permission: str, *, name: str | None = None,
                  ) -> dict[str, Any]:
    """The RAM ``CreateResourceShare`` request sharing one feature group (pure)."""
    problems = [f"--with={p!r}: must be a 12-digit account id or an IAM/organizations ARN"
                for p in principals if not _PRINCIPAL_RE.match(p)]
    if permission not in RAM_PERMISSIONS:
        problems.append(f"--permission={permission!r}: must be one of {', '.join(RAM_PERMISSIONS)}")
    if problems:
        raise errors.ValidationError("cannot share: " + "; ".join(problems), field=problems[0].split("=", 1)[0],
                                     problems=problems)
    group_name = group_arn.rsplit("/", 1)[-1]
    return {"name": name or f"featureshare-{group_name}-{permission}", "resourceArns": [group_arn],
            "principals": list(principals), "permissionArns": [RAM_PERMISSIONS[permission]],
            "allowExternalPrincipals": True,
            "tags": [{"key": "managed-by", "value": "featureshare"}]}


@click.command("share")
@where_options
@click.argument("group")
@click.option("--with", "principals", multiple=True, required=True, metavar="ACCOUNT",
              help="Account id (or IAM role/organization ARN) to share with; repeatable.")
@click.option("--permission", type=click.Choice(sorted(RAM_PERMISSIONS)), default="read-only", show_default=True)
@click.option("--name", help="Resource share name (default: featureshare-<group>-<permission>).")
@click.pass_obj
def share(obj: Context, group: str, principals: tuple[str, ...], permission: str, name: str | None,
          **where: Any) -> None:
    """Share a feature group with other accounts through AWS RAM (runs in the group's own account).

    The consumer then reads it by ARN (describe, get, ingest with read-write); accounts outside your AWS
    Organization first accept the RAM invitation. Creating resource shares usually needs the central
    account's administrator: use --central-profile.

    \b
    Example:
      featureshare share users --with 333333333333 --permission read-only --central-profile org-central
    """
    session = session_for(obj, **where)
    from featureshare.groups import FeatureStore

    target = FeatureStore(session).group(group)
    request = share_request(target.arn, principals, permission, name=name)
    with errors.translate_client_error(action="ram:CreateResourceShare", resource=target.arn):
        reply = session.client("ram").create_resource_share(**request)["resourceShare"]
    data = {"group": target.arn, "share_arn": reply["resourceShareArn"], "status": reply.get("status"),
            "principals": list(principals), "permission": RAM_PERMISSIONS[permission]}
    obj.emit(data, lambda d: f"shared {target.name} ({permission}) with {', '.join(principals)}: {d['share_arn']}")

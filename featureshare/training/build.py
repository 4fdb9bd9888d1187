"""Training sets: describe a point-in-time join, render it (:meth:`TrainingSet.sql`), run it on Athena.

Example::

    ts = (TrainingSet(labels, key="customer_id", event_time="label_time")
          .join(central_store.group("sessions"), ttl="30d", prefix="sessions")
          .join(local_store.group("keywords"), how="inner")
          .as_of("2024-06-01T00:00:00Z"))
    print(ts.sql(consumer=consumer))                       # review before paying for it
    built = ts.build(session=consumer, output_uri="s3://consumer-training/sets/churn-v1/")
    frame = built.to_dataframe()                           # one row per label row, in input order

Execution (``strategy="catalog"``): the entity DataFrame is written as Parquet under
``s3://<output bucket>/_featureshare_staging/<token>/`` and registered as a temporary Glue table in the
scratch database; one Athena query in the consumer account reads central groups through the registered
GLUE data catalog and local groups through ``awsdatacatalog``, and UNLOADs (or CTAS, ``register_as=``) the
result into ``output_uri`` with ``_manifest.json`` and ``_entities.parquet`` beside it (Athena ignores
files starting with ``_``). Staging objects and the temporary table are removed in ``finally``.

``strategy="central-role"`` (the assumed central role runs the central groups' query; ``central_session=``):
a central-only set is one query in the central account, in its workgroup for this consumer, written to
the consumer bucket (``ExpectedBucketOwner``, ``BUCKET_OWNER_FULL_CONTROL``), its entities staged under
``_featureshare_staging/central/<token>/`` (the only staging prefix the central role may read). A set mixing
central and local groups is materialised in two parts, see :mod:`featureshare.training.central_role`.

This module plans a build (every check before anything is written) and starts it; the staging of entity rows
is in :mod:`featureshare.training.staging`, Athena calls in :mod:`featureshare.training.athena`, and the
running or finished set (:class:`BuiltTrainingSet`, manifest) in :mod:`featureshare.training.result`.

Emulation limits: cross-account Glue tables are not checked before running (the consumer usually cannot call
``glue:GetTable`` on the central catalog); a missing central table surfaces as the query's failure reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from featureshare.errors import NotFoundError, UnsupportedError, ValidationError, error_code, translate_client_error
from featureshare.s3uri import split_s3_uri
from featureshare.sqlquote import quote_qualified, s3_uri_literal
from featureshare.training import athena
from featureshare.training.result import ENTITIES_NAME, MANIFEST_NAME, BuiltTrainingSet
from featureshare.training.sql import EntitySource, PointInTimeQuery, SourceTable, make_join, to_epoch_seconds
from featureshare.training.staging import (
    CENTRAL_SCRATCH_DATABASE,
    CENTRAL_STAGING_PREFIX,
    ROW_COLUMN,
    STAGING_PREFIX,
    TIME_COLUMN,
    EntityStaging,
    StagedEntities,
    stage_entities,
)

logger = logging.getLogger(__name__)

# Also importable from here: the names defined in featureshare.training.result and .staging.
__all__ = ["CENTRAL_SCRATCH_DATABASE", "CENTRAL_STAGING_PREFIX", "ENTITIES_NAME", "LOCAL_CATALOG", "MANIFEST_NAME",
           "ROW_COLUMN", "STAGING_PREFIX", "STRATEGIES", "TIME_COLUMN", "BuiltTrainingSet", "StagedEntities",
           "TrainingSet", "stage_entities"]

LOCAL_CATALOG = "awsdatacatalog"
STRATEGIES = ("catalog", "central-role")


@dataclass(frozen=True)
class _Join:
    source: SourceTable
    features: tuple[str, ...] | None
    on: str | None
    ttl: Any
    prefix: str | None
    how: str



@dataclass(frozen=True)
class TrainingSet:
    """An immutable description of a training set; ``join``/``as_of`` return new instances.

    ``entities`` is a DataFrame (uploaded at build time) or an existing table ``"db.table"`` in the account
    the query runs in (its ``columns``, default key and event time; label times of type
    ``entity_time_kind``: ``timestamp``, ``string`` ISO-8601 or ``epoch`` seconds; output in a
    deterministic order, not input order). Naive label times need ``timezone=``; it is never guessed.
    """

    entities: Any
    key: str
    event_time: str
    timezone: str | None = None
    entity_time_kind: str = "timestamp"
    columns: tuple[str, ...] | None = None
    joins: tuple[_Join, ...] = ()
    as_of_time: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.entities, pd.DataFrame):
            missing = [c for c in (self.key, self.event_time) if c not in self.entities.columns]
            if missing:
                raise ValidationError(f"entities have no column(s) {missing}; columns are "
                                      f"{list(self.entities.columns)}", field="entities", value=missing,
                                      hint="pass key= and event_time= naming columns of the entity DataFrame")
        elif not (isinstance(self.entities, str) and 2 <= len(self.entities.split(".")) <= 3):
            raise ValidationError("entities must be a DataFrame or a table name 'database.table'",
                                  field="entities", value=type(self.entities).__name__)

    def join(self, group: Any, *, features: Sequence[str] | None = None, on: str | None = None, ttl: Any = None,
             prefix: str | None = None, how: str = "left") -> TrainingSet:
        """Add a feature group (a ``FeatureGroup``, ``SourceTable`` or DescribeFeatureGroup dict).

        ``on`` is the entity column matched to the group's record id (default: ``key``); ``ttl`` ignores
        versions older than ``label time - ttl``; ``how="inner"`` drops entity rows without a live version.
        """
        if isinstance(features, str):
            raise ValidationError(f"features= must be a list of names, got the string {features!r}",
                                  field="features", value=features, hint=f"write features=[{features!r}]")
        source = SourceTable.from_group(group)
        new = _Join(source, tuple(features) if features is not None else None, on, ttl, prefix, how)
        candidate = replace(self, joins=(*self.joins, new))
        candidate.query(consumer_account=source.account_id)  # validate now, not at build time
        return candidate

    def as_of(self, when: Any) -> TrainingSet:
        """Only use offline rows written at or before ``when`` (reproduce what was known then)."""
        to_epoch_seconds(when, timezone=self.timezone)
        return replace(self, as_of_time=when)

    # --------------------------------------------------------------------------------------- rendering
    @property
    def entity_columns(self) -> tuple[str, ...]:
        if isinstance(self.entities, pd.DataFrame):
            return (*(str(c) for c in self.entities.columns), ROW_COLUMN, TIME_COLUMN)
        return ()

    def query(self, *, consumer_account: str, strategy: str = "catalog", catalog_name: str = "central",
              scratch_database: str = "featureshare_scratch", entity_table: str | None = None,
              entity_columns: Sequence[str] | None = None,
              time_range: tuple[float, float] | None = None) -> PointInTimeQuery:
        """The :class:`PointInTimeQuery` for a query run in ``consumer_account`` with ``strategy``."""
        entities = self._entity_source(scratch_database, entity_table, entity_columns, time_range)
        joins = []
        for join in self.joins:
            catalog = _data_catalog(join.source, consumer_account, strategy, catalog_name)
            joins.append(make_join(join.source, features=join.features, on=join.on or self.key,
                                   entity_columns=entities.columns, data_catalog=catalog, ttl=join.ttl,
                                   prefix=join.prefix, how=join.how))
        as_of = None if self.as_of_time is None else to_epoch_seconds(self.as_of_time, timezone=self.timezone)
        return PointInTimeQuery(entities=entities, joins=tuple(joins), as_of=as_of)

    def _entity_source(self, scratch_database: str, entity_table: str | None,
                       entity_columns: Sequence[str] | None, time_range: tuple[float, float] | None) -> EntitySource:
        if isinstance(self.entities, pd.DataFrame):
            if entity_table is None:
                digest = pd.util.hash_pandas_object(self.entities, index=False).sum()
                entity_table = f"entities_{int(digest) % 16**10:010x}"
            return EntitySource(database=scratch_database, table=entity_table, key=self.key,
                                event_time=self.event_time, columns=self.entity_columns, row_id=ROW_COLUMN,
                                time_column=TIME_COLUMN, time_range=time_range)
        parts = self.entities.split(".")
        catalog, database, table = parts if len(parts) == 3 else [LOCAL_CATALOG, *parts]
        columns = tuple(entity_columns or self.columns or (self.key, self.event_time))
        return EntitySource(database=database, table=table, catalog=catalog, key=self.key,
                            event_time=self.event_time, columns=columns,
                            time_kind=self.entity_time_kind, time_range=time_range)  # type: ignore[arg-type]

    def sql(self, *, consumer: Any = None, strategy: str = "catalog", catalog_name: str = "central",
            scratch_database: str = "featureshare_scratch") -> str:
        """The point-in-time SELECT, without running anything. ``consumer`` is the session (or account id)
        the query would run as; it decides which groups are read through ``catalog_name``."""
        account = _account_of(consumer) if consumer is not None else ""
        time_range = stage_entities(self).time_range if isinstance(self.entities, pd.DataFrame) else None
        others = [j.source.account_id for j in self.joins if j.source.account_id != account]
        if strategy == "central-role" and account and 0 < len(others) < len(self.joins):
            from featureshare.training import central_role

            return central_role.render(self, consumer_account=account, central_account=others[0],
                                       scratch_database=scratch_database, time_range=time_range)
        return self.query(consumer_account=account, strategy=strategy, catalog_name=catalog_name,
                          scratch_database=scratch_database, time_range=time_range).render()

    # --------------------------------------------------------------------------------------- building
    def build(self, *, session: Any, output_uri: str, format: str = "parquet", register_as: str | None = None,
              strategy: str = "catalog", central_session: Any = None, workgroup: str | None = None,
              central_workgroup: str | None = None, catalog_name: str = "central",
              scratch_database: str = "featureshare_scratch", wait: bool = True,
              timeout: float = 1800.0) -> BuiltTrainingSet:
        """Run the query and write the set to ``output_uri`` (a bucket of ``session``'s account).

        Returns a :class:`BuiltTrainingSet`; with ``wait=False`` it is still running: call ``wait()`` (or
        ``cancel()``), which also removes the staging data. Every problem that can be found before running
        (unknown features, collisions, bad TTL / as_of, an output bucket of another account, a strategy
        that cannot see a group) raises before anything is written.

        ``strategy="central-role"`` needs ``central_session`` (the assumed central role); its queries run in
        the central workgroup ``central_workgroup`` (default: ``<workgroup>-<consumer account>``, the one
        bootstrap creates; ``primary`` without ``workgroup``) and register temporary tables in the central
        database ``featureshare_scratch``. Sets mixing central and local groups run the central part first (within
        ``timeout``, also with ``wait=False``), then the consumer part in ``workgroup``.
        """
        plan = _plan(self, session=session, output_uri=output_uri, format=format, register_as=register_as,
                     strategy=strategy, central_session=central_session, workgroup=workgroup,
                     central_workgroup=central_workgroup, catalog_name=catalog_name,
                     scratch_database=scratch_database)
        built = _start(plan, timeout)
        if wait:
            built.wait(timeout=timeout)
        return built

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any] | str, *, session: Any) -> TrainingSet:
        """The training set a manifest (dict or ``s3://.../_manifest.json``) describes, with its entities
        (``_entities.parquet`` beside it) and as-of time: build it again to reproduce the set."""
        if isinstance(manifest, str):
            manifest = json.loads(_get_object(session, manifest, field="manifest"))
        entities = pd.read_parquet(io.BytesIO(_get_object(session, manifest["entities"]["uri"], field="entities.uri")))
        spec = manifest["entities"]
        training = cls(entities, key=spec["key"], event_time=spec["event_time"], timezone="UTC")  # stored as UTC
        for group in manifest["groups"]:
            source = SourceTable(**{**group["source"], "features": tuple(map(tuple, group["source"]["features"]))})
            training = training.join(source, features=group["features"], on=group["on"], ttl=group["ttl_seconds"],
                                     prefix=group["prefix"], how=group["how"])
        as_of = manifest.get("as_of_epoch")
        return training if as_of is None else training.as_of(float(as_of))


# ------------------------------------------------------------------------------------------- pure helpers

def _account_of(session_or_account: Any) -> str:
    if isinstance(session_or_account, str):
        return session_or_account
    account = getattr(session_or_account, "account_id", None)
    if account:
        return str(account)
    with translate_client_error(action="sts:GetCallerIdentity"):
        return str(session_or_account.client("sts").get_caller_identity()["Account"])


def _data_catalog(source: SourceTable, run_account: str, strategy: str, catalog_name: str) -> str:
    """How the account running the query names the group's table, or why it cannot see it."""
    if strategy not in STRATEGIES:
        raise ValidationError(f"unknown strategy {strategy!r}; use one of {list(STRATEGIES)}", field="strategy",
                              value=strategy)
    if not run_account or source.account_id == run_account:
        return LOCAL_CATALOG
    if strategy == "central-role":
        raise UnsupportedError(
            f"strategy 'central-role' runs in account {run_account}, which cannot see feature group "
            f"{source.name!r} (table {source.database}.{source.table} in account {source.account_id})",
            hint="use strategy='catalog' for sets that mix central and local groups")
    return catalog_name


def _statement(query_sql: str, location: str, register_as: tuple[str, str] | None) -> str:
    if register_as is None:
        return f"UNLOAD (\n{query_sql}\n) TO {s3_uri_literal(location)} WITH (format = 'PARQUET')"
    database, table = register_as
    return (f"CREATE TABLE {quote_qualified(LOCAL_CATALOG, database, table)}\n"
            f"WITH (format = 'PARQUET', external_location = {s3_uri_literal(location)})\nAS\n{query_sql}")


def _get_object(session: Any, uri: str, *, field: str) -> bytes:
    bucket, key = split_s3_uri(uri, field=field)
    with translate_client_error(action="s3:GetObject", resource=uri):
        return session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


# ------------------------------------------------------------------------------------------- planning

@dataclass(frozen=True)
class _Plan:
    """Everything a build needs, validated before anything is written."""

    training: TrainingSet
    query: PointInTimeQuery
    sql: str
    statement: str
    session: Any
    run_session: Any
    run_account: str
    consumer_account: str
    output_uri: str
    bucket: str
    register_as: tuple[str, str] | None
    workgroup: str
    scratch_database: str
    token: str
    staged: StagedEntities | None
    strategy: str
    started_at: dt.datetime
    staging_root: str = STAGING_PREFIX
    central: Any = None  # central_role.CentralPart of a set mixing central and local groups

    @property
    def staging_prefix(self) -> str:
        return f"{self.staging_root}/{self.token}/"

    @property
    def entity_table(self) -> str:
        return self.query.entities.table

    def query_request(self) -> dict[str, Any]:
        """The StartQueryExecution arguments of the statement; Athena's own result files go under the staging
        prefix of the consumer's bucket."""
        return athena.query_request(
            self.statement, workgroup=self.workgroup, output_location=f"s3://{self.bucket}/{self.staging_prefix}results/",
            bucket_owner=self.consumer_account if self.run_account != self.consumer_account else None,
            database=self.scratch_database if self.staged is not None else None)


def _plan(training: TrainingSet, *, session: Any, output_uri: str, format: str, register_as: str | None,
          strategy: str, central_session: Any, workgroup: str | None, central_workgroup: str | None,
          catalog_name: str, scratch_database: str) -> _Plan:
    if format.lower() != "parquet":
        raise ValidationError(f"format {format!r} is not supported; use 'parquet'", field="format", value=format)
    if strategy not in STRATEGIES:
        raise ValidationError(f"unknown strategy {strategy!r}; use one of {list(STRATEGIES)}",
                              field="strategy", value=strategy)
    target = None
    if register_as is not None:
        parts = register_as.split(".")
        if len(parts) != 2 or not all(parts):
            raise ValidationError(f"register_as={register_as!r} is not 'database.table'", field="register_as",
                                  value=register_as)
        target = (parts[0], parts[1])
    if not training.joins:
        raise ValidationError("a training set needs at least one joined feature group", field="joins",
                              hint="call .join(group) before .build()")
    output_uri = output_uri if output_uri.endswith("/") else output_uri + "/"
    bucket, prefix = split_s3_uri(output_uri, field="output_uri", require_key=False)
    if not prefix.strip("/"):
        raise ValidationError(f"output_uri {output_uri!r} must name a prefix inside the bucket",
                              field="output_uri", value=output_uri)
    if strategy == "central-role" and central_session is None:
        raise ValidationError("strategy='central-role' needs central_session= (the assumed central role)",
                              field="central_session")
    run_session = central_session if strategy == "central-role" else session
    consumer_account, run_account = _account_of(session), _account_of(run_session)
    if strategy == "central-role":
        central_workgroup = central_workgroup or (f"{workgroup}-{consumer_account}" if workgroup else "primary")
        if any(j.source.account_id != run_account for j in training.joins):
            from featureshare.training import central_role

            return central_role.plan(training, session=session, central_session=central_session,
                                     consumer_account=consumer_account, central_account=run_account,
                                     output_uri=output_uri, register_as=target, workgroup=workgroup or "primary",
                                     central_workgroup=central_workgroup, scratch_database=scratch_database)
        scratch_database = CENTRAL_SCRATCH_DATABASE  # the query and its temporary table are in the central account
    staged = stage_entities(training) if isinstance(training.entities, pd.DataFrame) else None
    token = _token(consumer_account, output_uri, staged)
    query = training.query(consumer_account=run_account, strategy=strategy, catalog_name=catalog_name,
                           scratch_database=scratch_database, entity_table=f"entities_{token}",
                           time_range=staged.time_range if staged else None)
    _check_visibility(run_session, run_account, query)
    _check_output(session, consumer_account, bucket, prefix, output_uri)
    sql = query.render()
    return _Plan(training=training, query=query, sql=sql, statement=_statement(sql, output_uri, target),
                 session=session, run_session=run_session, run_account=run_account,
                 consumer_account=consumer_account, output_uri=output_uri, bucket=bucket, register_as=target,
                 workgroup=(central_workgroup if strategy == "central-role" else workgroup) or "primary",
                 scratch_database=scratch_database, token=token, staged=staged, strategy=strategy,
                 started_at=dt.datetime.now(dt.UTC),
                 staging_root=CENTRAL_STAGING_PREFIX if strategy == "central-role" else STAGING_PREFIX)


def _token(account: str, output_uri: str, staged: StagedEntities | None) -> str:
    """Names the staging prefix and temporary table. Unique per output location (which must be empty, so
    two builds cannot share one) and deterministic, so the SQL of a rebuild reads the same."""
    digest = hashlib.sha256(f"{account}|{output_uri}".encode())
    if staged is not None:
        digest.update(pd.util.hash_pandas_object(staged.frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _check_visibility(run_session: Any, run_account: str, query: PointInTimeQuery) -> None:
    """Each group's table must be reachable from the account running the query: local tables exist in its
    Glue; other accounts' tables go through an Athena data catalog of type GLUE pointing at their account."""
    athena, glue = run_session.client("athena"), run_session.client("glue")
    catalogs: dict[str, dict[str, Any]] = {}
    for join in query.joins:
        source, where = join.source, f"{join.source.database}.{join.source.table}"
        if join.data_catalog == LOCAL_CATALOG:
            try:
                glue.get_table(DatabaseName=source.database, Name=source.table)
            except ClientError as exc:
                raise NotFoundError(
                    f"table {where} of feature group {source.name!r} is not in the Glue catalog of account "
                    f"{run_account}: {error_code(exc)}", code=error_code(exc),
                    hint="check the group's offline store (DescribeFeatureGroup DataCatalogConfig)") from exc
            continue
        if join.data_catalog not in catalogs:
            with translate_client_error(action="athena:GetDataCatalog", resource=join.data_catalog):
                catalogs[join.data_catalog] = athena.get_data_catalog(Name=join.data_catalog).get("DataCatalog") or {}
        catalog = catalogs[join.data_catalog]
        points_at = (catalog.get("Parameters") or {}).get("catalog-id")
        if catalog.get("Type") != "GLUE" or points_at != source.account_id:
            found = f"points at {points_at!r}" if catalog else "does not exist"
            raise ValidationError(
                f"strategy 'catalog' cannot see table {where} of feature group {source.name!r} (account "
                f"{source.account_id}): Athena data catalog {join.data_catalog!r} in account {run_account} {found}",
                field="catalog_name", value=join.data_catalog,
                hint=f"register it: athena.create_data_catalog(Name={join.data_catalog!r}, Type='GLUE', "
                     f"Parameters={{'catalog-id': {source.account_id!r}}}) or pass catalog_name=")


def _check_output(session: Any, account: str, bucket: str, prefix: str, output_uri: str) -> None:
    """The output bucket must belong to the consumer account and the prefix must be empty (UNLOAD/CTAS)."""
    s3 = session.client("s3")
    try:
        owned = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    except ClientError:
        owned = None  # no s3:ListAllMyBuckets: ExpectedBucketOwner below is the check
    if owned is not None and bucket not in owned:
        raise ValidationError(f"output bucket {bucket!r} is not a bucket of the consumer account {account}",
                              field="output_uri", value=output_uri,
                              hint="write training sets to the consumer's training bucket")
    with translate_client_error(action="s3:ListObjectsV2", resource=output_uri, account=account):
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1, ExpectedBucketOwner=account)
    if listing.get("KeyCount", 0):
        raise ValidationError(f"output_uri {output_uri!r} is not empty", field="output_uri", value=output_uri,
                              hint="choose a new prefix for each training set (UNLOAD and CTAS need one)")


# ------------------------------------------------------------------------------------------- execution

def _start(plan: _Plan, timeout: float) -> BuiltTrainingSet:
    if plan.central is not None:
        from featureshare.training import central_role

        return central_role.start(plan, timeout)
    staging = EntityStaging(plan)
    try:
        staging.create()
        request = plan.query_request()
        with translate_client_error(action="athena:StartQueryExecution", account=plan.run_account):
            query_id = plan.run_session.client("athena").start_query_execution(**request)["QueryExecutionId"]
    except BaseException:
        staging.remove()
        raise
    logger.info("training set query %s started in account %s", query_id, plan.run_account)
    return BuiltTrainingSet(plan=plan, query_execution_id=query_id, _cleanup=staging.remove)

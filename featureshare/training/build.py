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

Emulation limits: cross-account Glue tables are not checked before running (the consumer usually cannot call
``glue:GetTable`` on the central catalog); a missing central table surfaces as the query's failure reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from featureshare._version import __version__
from featureshare.errors import (
    NotFoundError,
    QueryFailedError,
    UnsupportedError,
    ValidationError,
    WaitTimeoutError,
    error_code,
    from_client_error,
    translate_client_error,
)
from featureshare.sqlquote import quote_qualified, s3_uri_literal
from featureshare.training.sql import (
    ROW_ID_COLUMN,
    EntitySource,
    PointInTimeQuery,
    SourceTable,
    make_join,
    partition_bounds,
    to_epoch_seconds,
)

logger = logging.getLogger(__name__)

__all__ = ["BuiltTrainingSet", "TrainingSet"]

ROW_COLUMN = "featureshare_row"
TIME_COLUMN = "featureshare_t"
LOCAL_CATALOG = "awsdatacatalog"
STAGING_PREFIX = "_featureshare_staging"
# strategy="central-role": the staging prefix the central role may read and write (bucket policy + its
# identity policy) and its Glue database for temporary tables in the central account; the same literals as
# featureshare.bootstrap.templates (which creates and grants them).
CENTRAL_STAGING_PREFIX = f"{STAGING_PREFIX}/central"
CENTRAL_SCRATCH_DATABASE = "featureshare_scratch"
MANIFEST_NAME = "_manifest.json"
ENTITIES_NAME = "_entities.parquet"
STRATEGIES = ("catalog", "central-role")
_PARQUET_SD = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}
_FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
_FIRST_POLL_S, _MAX_POLL_S = 0.05, 2.0


@dataclass(frozen=True)
class _Join:
    source: SourceTable
    features: tuple[str, ...] | None
    on: str | None
    ttl: Any
    prefix: str | None
    how: str


@dataclass(frozen=True)
class StagedEntities:
    """The entity rows as uploaded: Parquet-ready frame, Glue columns, label-time range (epoch seconds)."""

    frame: pd.DataFrame
    glue_columns: tuple[tuple[str, str], ...]
    time_range: tuple[float, float] | None


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
            manifest = json.loads(_get_object(session, manifest))
        entities = pd.read_parquet(io.BytesIO(_get_object(session, manifest["entities"]["uri"])))
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


def stage_entities(training: TrainingSet) -> StagedEntities:
    """The entity DataFrame as it is uploaded: UTC label times, a row id and the label epoch seconds."""
    frame = training.entities.copy()
    problems = [f"column {c!r} is not a lower-case string (Athena column names are lower case)"
                for c in frame.columns if not isinstance(c, str) or c != c.lower()]
    problems += [f"column {c!r} uses the reserved prefix 'featureshare_'" for c in frame.columns
                 if str(c).startswith("featureshare_")]
    if problems:
        raise ValidationError("entity DataFrame cannot be uploaded: " + "; ".join(problems), field="entities",
                              problems=problems, hint="rename the columns before building")
    labels = _label_times(frame[training.event_time], training.timezone, training.event_time)
    micros = labels.astype("datetime64[us, UTC]").astype("int64")
    epochs = pd.array(micros / 1_000_000, dtype="Float64")
    epochs[labels.isna().to_numpy()] = pd.NA
    frame[training.event_time] = labels.dt.tz_localize(None).astype("datetime64[us]")
    glue = []
    for column in frame.columns:
        frame[column], glue_type = _glue_column(frame[column], column)
        glue.append((column, glue_type))
    frame[ROW_COLUMN] = pd.array(range(len(frame)), dtype="int64")
    frame[TIME_COLUMN] = epochs
    known = epochs.dropna()
    time_range = (float(known.min()), float(known.max())) if len(known) else None
    return StagedEntities(frame=frame.reset_index(drop=True),
                          glue_columns=(*glue, (ROW_COLUMN, "bigint"), (TIME_COLUMN, "double")),
                          time_range=time_range)


def _label_times(series: pd.Series, timezone: str | None, column: str) -> pd.Series:
    """Label times as tz-aware UTC timestamps; naive values need ``timezone``."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return pd.to_datetime(series.astype("Float64"), unit="s", utc=True)
    if pd.api.types.is_datetime64_any_dtype(series):
        if getattr(series.dt, "tz", None) is None:
            if timezone is None:
                raise ValidationError(f"label times in {column!r} are naive", field=column,
                                      hint="pass timezone= (e.g. 'UTC') or make the column tz-aware")
            series = series.dt.tz_localize(timezone)
        return series.dt.tz_convert("UTC")
    text = series.astype("string")
    has_zone = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True).fillna(True).astype(bool)
    if not has_zone.all() and timezone is None:
        raise ValidationError(f"label times in {column!r} have no UTC offset, e.g. {text[~has_zone].iloc[0]!r}",
                              field=column, hint="pass timezone= or use ISO-8601 strings with an offset")
    try:
        out = pd.Series(pd.NaT, index=series.index, dtype="datetime64[us, UTC]")
        out[has_zone] = pd.to_datetime(text[has_zone], format="ISO8601", utc=True)
        if not has_zone.all():
            local = pd.to_datetime(text[~has_zone], format="ISO8601").dt.tz_localize(timezone)
            out[~has_zone] = local.dt.tz_convert("UTC")
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"label times in {column!r} are not ISO-8601: {exc}", field=column) from exc
    return out


def _glue_column(series: pd.Series, name: str) -> tuple[pd.Series, str]:
    types = pd.api.types
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(series.dtype.categories.dtype)
    if types.is_bool_dtype(series):
        return series.astype("boolean"), "boolean"
    if types.is_integer_dtype(series):
        return series.astype("Int64"), "bigint"
    if types.is_float_dtype(series):
        return series.astype("Float64"), "double"
    if types.is_datetime64_any_dtype(series):
        if getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return series.astype("datetime64[us]"), "timestamp"
    if types.is_string_dtype(series) or types.is_object_dtype(series):
        return series.astype("string"), "string"
    raise ValidationError(f"entity column {name!r} has unsupported dtype {series.dtype}", field=name,
                          value=str(series.dtype), hint="use numbers, booleans, strings or datetimes")


def _split_s3(uri: str) -> tuple[str, str]:
    s3_uri_literal(uri)
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def _statement(query_sql: str, location: str, register_as: tuple[str, str] | None) -> str:
    if register_as is None:
        return f"UNLOAD (\n{query_sql}\n) TO {s3_uri_literal(location)} WITH (format = 'PARQUET')"
    database, table = register_as
    return (f"CREATE TABLE {quote_qualified(LOCAL_CATALOG, database, table)}\n"
            f"WITH (format = 'PARQUET', external_location = {s3_uri_literal(location)})\nAS\n{query_sql}")


def _get_object(session: Any, uri: str) -> bytes:
    bucket, key = _split_s3(uri)
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
    bucket, prefix = _split_s3(output_uri)
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
    staging = _Staging(plan)
    try:
        staging.create()
        request = _query_request(plan)
        with translate_client_error(action="athena:StartQueryExecution", account=plan.run_account):
            query_id = plan.run_session.client("athena").start_query_execution(**request)["QueryExecutionId"]
    except BaseException:
        staging.remove()
        raise
    logger.info("training set query %s started in account %s", query_id, plan.run_account)
    return BuiltTrainingSet(plan=plan, query_execution_id=query_id, _cleanup=staging.remove)


def _query_request(plan: _Plan) -> dict[str, Any]:
    results: dict[str, Any] = {"OutputLocation": f"s3://{plan.bucket}/{plan.staging_prefix}results/"}
    if plan.run_account != plan.consumer_account:
        results["ExpectedBucketOwner"] = plan.consumer_account
        results["AclConfiguration"] = {"S3AclOption": "BUCKET_OWNER_FULL_CONTROL"}
    context = {"Catalog": "AwsDataCatalog"}
    if plan.staged is not None:  # every name in the query is fully qualified; this is for the query history
        context["Database"] = plan.scratch_database
    return {"QueryString": plan.statement, "WorkGroup": plan.workgroup, "ResultConfiguration": results,
            "QueryExecutionContext": context}


class _Staging:
    """The uploaded entity Parquet and its temporary Glue table; ``remove`` never raises."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.table_created = False

    def create(self) -> None:
        plan = self.plan
        if plan.staged is None:
            return
        _put_parquet(plan.session, plan.staged.frame, plan.bucket, f"{plan.staging_prefix}entities/part-0.parquet",
                     owner=plan.consumer_account)
        _create_temporary_table(plan.run_session, plan.scratch_database, plan.entity_table, plan.staged.glue_columns,
                                f"s3://{plan.bucket}/{plan.staging_prefix}entities/")
        self.table_created = True

    def remove(self) -> None:
        plan = self.plan
        if self.table_created:
            try:
                plan.run_session.client("glue").delete_table(DatabaseName=plan.scratch_database,
                                                              Name=plan.entity_table)
                self.table_created = False
            except ClientError as exc:
                logger.warning("could not drop temporary table %s.%s: %s", plan.scratch_database,
                               plan.entity_table, exc)
        try:
            _delete_prefix(plan.session.client("s3"), plan.bucket, plan.staging_prefix)
        except ClientError as exc:
            logger.warning("could not delete staging s3://%s/%s: %s", plan.bucket, plan.staging_prefix, exc)


def _put_parquet(session: Any, frame: pd.DataFrame, bucket: str, key: str, *, owner: str) -> None:
    """Upload ``frame`` as one Parquet object to a bucket that must belong to account ``owner``."""
    body = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), body)
    with translate_client_error(action="s3:PutObject", resource=f"s3://{bucket}/{key}"):
        session.client("s3").put_object(Bucket=bucket, Key=key, Body=body.getvalue(), ExpectedBucketOwner=owner)


def _create_temporary_table(session: Any, database: str, table: str, columns: Sequence[tuple[str, str]],
                            location: str, account: str = "") -> None:
    """Register Parquet objects under ``location`` as an external table marked ``featureshare:temporary``."""
    glue = session.client("glue")
    _ensure_database(glue, database)
    with translate_client_error(action="glue:CreateTable", resource=f"{database}.{table}", account=account):
        glue.create_table(DatabaseName=database, TableInput={
            "Name": table, "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "featureshare:temporary": "true"},
            "StorageDescriptor": {"Columns": [{"Name": n, "Type": t} for n, t in columns],
                                  "Location": location, **_PARQUET_SD}})


def _ensure_database(glue: Any, database: str) -> None:
    """Create the scratch database only when missing: bootstrap creates it, and execution roles are usually
    not allowed ``glue:CreateDatabase``."""
    try:
        glue.get_database(Name=database)
        return
    except ClientError as exc:
        if error_code(exc) != "EntityNotFoundException":
            raise from_client_error(exc, action="glue:GetDatabase", resource=database) from exc
    try:
        glue.create_database(DatabaseInput={"Name": database, "Description": "featureshare temporary tables"})
    except ClientError as exc:
        if error_code(exc) != "AlreadyExistsException":
            raise from_client_error(exc, action="glue:CreateDatabase", resource=database) from exc


def _delete_prefix(s3: Any, bucket: str, prefix: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def _wait_for(athena: Any, query_id: str, timeout: float, sleep: Callable[[float], None] = time.sleep
              ) -> dict[str, Any]:
    """Poll with backoff until the query ends; stop it on timeout or Ctrl-C.

    The pause grows with the time already waited (an eighth of it, 50 ms to 2 s), so a result is noticed at
    most ~12% late, with a few dozen polls for a long query."""
    started = time.monotonic()
    deadline = started + timeout
    try:
        while True:
            with translate_client_error(action="athena:GetQueryExecution", resource=query_id):
                execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            status = execution["Status"]
            if status["State"] in _FINAL_STATES:
                break
            if time.monotonic() >= deadline:
                _stop(athena, query_id)
                raise WaitTimeoutError(f"query {query_id} still {status['State']} after {timeout:g}s; stopped it",
                                       hint="raise timeout= or narrow the entity time range")
            now = time.monotonic()
            delay = min(max((now - started) / 8, _FIRST_POLL_S), _MAX_POLL_S)
            sleep(min(delay, max(deadline - now, 0.0)))
    except KeyboardInterrupt:
        _stop(athena, query_id)
        raise
    if status["State"] != "SUCCEEDED":
        reason = status.get("StateChangeReason", "") or (status.get("AthenaError") or {}).get("ErrorMessage", "")
        raise QueryFailedError(f"training set query {query_id} {status['State']}: {reason}", query_id=query_id,
                               state=status["State"], reason=reason)
    return execution


def _stop(athena: Any, query_id: str) -> None:
    try:
        athena.stop_query_execution(QueryExecutionId=query_id)
    except ClientError as exc:
        logger.warning("could not stop query %s: %s", query_id, exc)


@dataclass
class BuiltTrainingSet:
    """A training set being built or built: ``wait()``, then ``to_dataframe()``, ``manifest``, ``location``.

    ``sql`` is the point-in-time SELECT; ``statement`` the UNLOAD/CTAS that ran it.
    """

    plan: _Plan = field(repr=False)
    query_execution_id: str
    _cleanup: Callable[[], None] = field(repr=False)
    state: str = "RUNNING"
    data_scanned_bytes: int | None = None
    manifest: dict[str, Any] | None = None
    central_query_execution_id: str | None = None  # the central part of a combined central-role set
    central_data_scanned_bytes: int | None = None

    @property
    def sql(self) -> str:
        return self.plan.sql

    @property
    def statement(self) -> str:
        return self.plan.statement

    @property
    def location(self) -> str:
        return self.plan.output_uri

    @property
    def done(self) -> bool:
        return self.state in _FINAL_STATES

    def wait(self, timeout: float = 1800.0) -> BuiltTrainingSet:
        """Wait for the query (at most ``timeout`` s), write the manifest, remove the staging data."""
        if self.done:
            return self
        athena = self.plan.run_session.client("athena")
        try:
            execution = _wait_for(athena, self.query_execution_id, timeout)
            scanned = int(execution.get("Statistics", {}).get("DataScannedInBytes", 0))
            self.data_scanned_bytes = scanned + (self.central_data_scanned_bytes or 0)
            self.manifest = _write_outputs(self)
            self.state = "SUCCEEDED"
        except QueryFailedError as exc:
            self.state = exc.state
            raise
        except BaseException:
            self.state = "CANCELLED"
            raise
        finally:
            self._cleanup()
        return self

    def cancel(self) -> None:
        """Stop the query and remove the staging data."""
        if not self.done:
            _stop(self.plan.run_session.client("athena"), self.query_execution_id)
            self.state = "CANCELLED"
            self._cleanup()

    def data_files(self) -> list[str]:
        """The data objects of the set (keys under ``location``; ``_``-prefixed companions excluded)."""
        bucket, prefix = _split_s3(self.location)
        s3, keys = self.plan.session.client("s3"), []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])
                     if not o["Key"].rsplit("/", 1)[-1].startswith(("_", "."))]
        return sorted(keys)

    def to_dataframe(self) -> pd.DataFrame:
        """The set as a DataFrame, one row per kept entity row, in entity order."""
        if self.state != "SUCCEEDED":
            self.wait()
        bucket, _ = _split_s3(self.location)
        s3 = self.plan.session.client("s3")
        tables = [pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
                  for key in self.data_files()]
        columns = list(self.plan.query.output_columns)
        if not tables:
            return pd.DataFrame(columns=[c for c in columns if c != ROW_ID_COLUMN])
        frame = pd.concat([t.to_pandas() for t in tables], ignore_index=True)
        frame = frame.sort_values(ROW_ID_COLUMN, kind="stable").drop(columns=[ROW_ID_COLUMN])
        return _typed(frame.reset_index(drop=True), self.plan)


def _typed(frame: pd.DataFrame, plan: _Plan) -> pd.DataFrame:
    """Entity columns get their input dtypes back (Parquet timestamps lose the zone), and Integral features
    stay integers when some rows have no value (nullable ``Int64``, not float)."""
    entities = plan.training.entities
    if isinstance(entities, pd.DataFrame):
        for column, dtype in entities.dtypes.items():
            zone = getattr(dtype, "tz", None)
            if column in frame and zone is not None and getattr(frame[column].dtype, "tz", None) is None:
                frame[column] = frame[column].dt.tz_localize("UTC").dt.tz_convert(zone)
    for join in plan.query.joins:
        for feature in join.features:
            name = join.output_name(feature)
            if join.source.feature_types.get(feature) == "Integral" and name in frame:
                frame[name] = frame[name].astype("Int64")
    return frame


def _write_outputs(built: BuiltTrainingSet) -> dict[str, Any]:
    """``_entities.parquet`` and ``_manifest.json`` beside the data: enough to reproduce the set."""
    plan = built.plan
    bucket, prefix = _split_s3(plan.output_uri)
    s3 = plan.session.client("s3")
    rows = 0
    for key in built.data_files():
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        rows += pq.read_metadata(io.BytesIO(body)).num_rows
    entities_uri = None
    if plan.staged is not None:
        given = plan.training.entities  # the caller's frame keeps its dtypes (time zones) for a faithful rebuild
        original = given if isinstance(given, pd.DataFrame) else plan.staged.frame.drop(columns=[ROW_COLUMN,
                                                                                                 TIME_COLUMN])
        body = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(original, preserve_index=False), body)
        s3.put_object(Bucket=bucket, Key=prefix + ENTITIES_NAME, Body=body.getvalue(),
                      ExpectedBucketOwner=plan.consumer_account)
        entities_uri = plan.output_uri + ENTITIES_NAME
    manifest = _manifest(built, rows, entities_uri)
    s3.put_object(Bucket=bucket, Key=prefix + MANIFEST_NAME, Body=json.dumps(manifest, indent=2).encode(),
                  ContentType="application/json", ExpectedBucketOwner=plan.consumer_account)
    return manifest


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


def _manifest(built: BuiltTrainingSet, rows: int, entities_uri: str | None) -> dict[str, Any]:
    plan, query = built.plan, built.plan.query
    time_range = query.entities.time_range
    groups = []
    for join in query.joins:
        source = join.source
        groups.append({
            "name": source.name, "arn": source.arn, "account_id": source.account_id,
            "data_catalog": join.data_catalog, "database": source.database, "table": source.table,
            "table_format": source.table_format, "features": list(join.features), "on": join.on,
            "ttl_seconds": join.ttl_seconds, "prefix": join.prefix, "how": join.how,
            "partition_bounds": list(partition_bounds(join, time_range)),
            "source": {**source.__dict__, "features": [list(f) for f in source.features]},
        })
    training = plan.training
    return {
        "featureshare_version": __version__, "built_at": plan.started_at.isoformat(),
        "query_execution_id": built.query_execution_id, "account_id": plan.run_account,
        "consumer_account": plan.consumer_account, "strategy": plan.strategy, "workgroup": plan.workgroup,
        "sql": plan.sql, "statement": plan.statement,
        "output": {"uri": plan.output_uri, "format": "parquet",
                   "register_as": ".".join(plan.register_as) if plan.register_as else None},
        "as_of": _iso(query.as_of), "as_of_epoch": query.as_of,
        "entities": {"uri": entities_uri, "source": "dataframe" if entities_uri else training.entities,
                     "key": training.key, "event_time": training.event_time,
                     "rows": len(plan.staged.frame) if plan.staged is not None else None,
                     "time_range": [_iso(t) for t in time_range] if time_range else None},
        "groups": groups, "columns": [c for c in query.output_columns if c != ROW_ID_COLUMN],
        "row_count": rows, "data_scanned_bytes": built.data_scanned_bytes,
        "central_part": None if plan.central is None else {
            "account_id": plan.central.account, "workgroup": plan.central.workgroup,
            "query_execution_id": built.central_query_execution_id, "sql": plan.central.sql,
            "statement": plan.central.statement, "data_scanned_bytes": built.central_data_scanned_bytes},
    }

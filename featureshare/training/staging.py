"""Staging entity rows for a query: the DataFrame as Parquet under a staging prefix of the output bucket,
registered as a temporary Glue table (``featureshare:temporary``) that the point-in-time query reads.

:func:`stage_entities` prepares the frame (pure); :class:`EntityStaging` uploads and registers it and removes
both again.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from featureshare.errors import ValidationError, error_code, from_client_error, translate_client_error

if TYPE_CHECKING:
    from featureshare.training.build import TrainingSet, _Plan

logger = logging.getLogger(__name__)

__all__ = ["CENTRAL_SCRATCH_DATABASE", "CENTRAL_STAGING_PREFIX", "PARQUET_STORAGE", "ROW_COLUMN", "STAGING_PREFIX",
           "TIME_COLUMN", "EntityStaging", "StagedEntities", "create_temporary_table", "delete_prefix",
           "put_parquet", "stage_entities"]

ROW_COLUMN = "featureshare_row"
TIME_COLUMN = "featureshare_t"
STAGING_PREFIX = "_featureshare_staging"
# strategy="central-role": the staging prefix the central role may read and write (bucket policy + its
# identity policy) and its Glue database for temporary tables in the central account; the same literals as
# featureshare.bootstrap.templates (which creates and grants them).
CENTRAL_STAGING_PREFIX = f"{STAGING_PREFIX}/central"
CENTRAL_SCRATCH_DATABASE = "featureshare_scratch"
#: Glue StorageDescriptor formats of a Parquet table.
PARQUET_STORAGE = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}


@dataclass(frozen=True)
class StagedEntities:
    """The entity rows as uploaded: Parquet-ready frame, Glue columns, label-time range (epoch seconds)."""

    frame: pd.DataFrame
    glue_columns: tuple[tuple[str, str], ...]
    time_range: tuple[float, float] | None



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


class EntityStaging:
    """The uploaded entity Parquet and its temporary Glue table; ``remove`` never raises."""

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.table_created = False

    def create(self) -> None:
        plan = self.plan
        if plan.staged is None:
            return
        put_parquet(plan.session, plan.staged.frame, plan.bucket, f"{plan.staging_prefix}entities/part-0.parquet",
                    owner=plan.consumer_account)
        create_temporary_table(plan.run_session, plan.scratch_database, plan.entity_table, plan.staged.glue_columns,
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
            delete_prefix(plan.session.client("s3"), plan.bucket, plan.staging_prefix)
        except ClientError as exc:
            logger.warning("could not delete staging s3://%s/%s: %s", plan.bucket, plan.staging_prefix, exc)


def put_parquet(session: Any, frame: pd.DataFrame, bucket: str, key: str, *, owner: str) -> None:
    """Upload ``frame`` as one Parquet object to a bucket that must belong to account ``owner``."""
    body = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), body)
    with translate_client_error(action="s3:PutObject", resource=f"s3://{bucket}/{key}"):
        session.client("s3").put_object(Bucket=bucket, Key=key, Body=body.getvalue(), ExpectedBucketOwner=owner)


def create_temporary_table(session: Any, database: str, table: str, columns: Sequence[tuple[str, str]],
                           location: str, account: str = "") -> None:
    """Register Parquet objects under ``location`` as an external table marked ``featureshare:temporary``."""
    glue = session.client("glue")
    _ensure_database(glue, database)
    with translate_client_error(action="glue:CreateTable", resource=f"{database}.{table}", account=account):
        glue.create_table(DatabaseName=database, TableInput={
            "Name": table, "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "featureshare:temporary": "true"},
            "StorageDescriptor": {"Columns": [{"Name": n, "Type": t} for n, t in columns],
                                  "Location": location, **PARQUET_STORAGE}})


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


def delete_prefix(s3: Any, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix`` (``s3`` is a client of the bucket's account)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})

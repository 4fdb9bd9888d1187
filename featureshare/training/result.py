"""The result of a build: :class:`BuiltTrainingSet` (wait, cancel, read the set back) and the files written
beside the data, ``_manifest.json`` and ``_entities.parquet`` (enough to reproduce the set)."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from featureshare._version import __version__
from featureshare.errors import QueryFailedError
from featureshare.s3uri import split_s3_uri
from featureshare.training.athena import FINAL_STATES, stop, wait_for
from featureshare.training.sql import ROW_ID_COLUMN, partition_bounds
from featureshare.training.staging import ROW_COLUMN, TIME_COLUMN

if TYPE_CHECKING:
    from featureshare.training.build import _Plan

__all__ = ["ENTITIES_NAME", "MANIFEST_NAME", "BuiltTrainingSet"]

MANIFEST_NAME = "_manifest.json"
ENTITIES_NAME = "_entities.parquet"


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
        return self.state in FINAL_STATES

    def wait(self, timeout: float = 1800.0) -> BuiltTrainingSet:
        """Wait for the query (at most ``timeout`` s), write the manifest, remove the staging data."""
        if self.done:
            return self
        athena = self.plan.run_session.client("athena")
        try:
            execution = wait_for(athena, self.query_execution_id, timeout)
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
            stop(self.plan.run_session.client("athena"), self.query_execution_id)
            self.state = "CANCELLED"
            self._cleanup()

    def data_files(self) -> list[str]:
        """The data objects of the set (keys under ``location``; ``_``-prefixed companions excluded)."""
        bucket, prefix = split_s3_uri(self.location, field="output_uri", require_key=False)
        s3, keys = self.plan.session.client("s3"), []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])
                     if not o["Key"].rsplit("/", 1)[-1].startswith(("_", "."))]
        return sorted(keys)

    def to_dataframe(self) -> pd.DataFrame:
        """The set as a DataFrame, one row per kept entity row, in entity order."""
        if self.state != "SUCCEEDED":
            self.wait()
        bucket = self.plan.bucket
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
    bucket, prefix = split_s3_uri(plan.output_uri, field="output_uri", require_key=False)
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

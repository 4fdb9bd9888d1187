"""The offline store of the embedded Feature Store: buffered rows written as Parquet in SageMaker's layout.

Each put/delete appends one row to a buffer; :meth:`OfflineStore.flush` (``EmbeddedAWS.flush()``, and
automatically before every Athena query) writes the buffered rows of each feature group and event-time hour
to one object
``<ResolvedOutputS3Uri>/year=YYYY/month=MM/day=DD/hour=HH/<yyyyMMddTHHmmssZ>_<16 alnum>.parquet`` and
registers the hour as a Glue partition.

Emulation limits: AWS makes rows visible "within ~15 minutes" in many files; here they appear exactly on
flush, one file per (group, hour, flush). ``write_time`` is the flush time. Objects are SSE-KMS tagged with
the group's ``S3StorageConfig.KmsKeyId`` but not actually encrypted. Iceberg groups get the same Parquet files
(no Iceberg metadata).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import secrets
import string
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from featureshare.local import moto_internals as mi
from featureshare.local.featurestore import FeatureGroup

logger = logging.getLogger(__name__)

ARROW_TYPES = {"Integral": pa.int64(), "Fractional": pa.float64(), "String": pa.string()}
TIMESTAMP = pa.timestamp("ms", tz="UTC")
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class OfflineRow:
    """One offline-store row: feature values as validated strings (None = null)."""

    group: FeatureGroup
    values: dict[str, str | None]
    event_time: float
    api_invocation_time: dt.datetime
    is_deleted: bool = False


def _typed(value: str | None, feature_type: str) -> object:
    if value is None:
        return None
    if feature_type == "Integral":
        return int(value)
    if feature_type == "Fractional":
        return float(value)
    return value


def parquet_bytes(group: FeatureGroup, rows: list[OfflineRow], write_time: dt.datetime) -> bytes:
    """Parquet of ``rows``: features typed int64/float64/string, then write_time, api_invocation_time, is_deleted."""
    definitions = list(group.definitions)
    fields = [pa.field(d["FeatureName"], ARROW_TYPES[d["FeatureType"]]) for d in definitions]
    fields += [pa.field("write_time", TIMESTAMP), pa.field("api_invocation_time", TIMESTAMP),
               pa.field("is_deleted", pa.bool_())]
    columns: list[list[object]] = [
        [_typed(row.values.get(d["FeatureName"]), d["FeatureType"]) for row in rows] for d in definitions]
    columns.append([write_time] * len(rows))
    columns.append([row.api_invocation_time for row in rows])
    columns.append([row.is_deleted for row in rows])
    table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, fields, strict=True)],
                                 schema=pa.schema(fields))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def partition_values(event_time: float) -> tuple[str, str, str, str]:
    """(year, month, day, hour) of an event time in UTC, zero-padded as SageMaker writes them."""
    moment = dt.datetime.fromtimestamp(event_time, dt.UTC)
    return f"{moment.year:04d}", f"{moment.month:02d}", f"{moment.day:02d}", f"{moment.hour:02d}"


class OfflineStore:
    """Buffer of offline rows for every emulated account, flushed to S3 + Glue on demand. Thread-safe."""

    def __init__(self, clock: Callable[[], dt.datetime] | None = None) -> None:
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._buffer: list[OfflineRow] = []
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    @property
    def pending(self) -> int:
        """Rows waiting for the next flush."""
        with self._lock:
            return len(self._buffer)

    def append(self, rows: list[OfflineRow]) -> None:
        with self._lock:
            self._buffer.extend(rows)

    def flush(self) -> int:
        """Write every buffered row; returns the number of rows written."""
        with self._flush_lock:
            with self._lock:
                rows, self._buffer = self._buffer, []
            if not rows:
                return 0
            write_time = self.clock()
            # keyed by the group object, not its ARN: a group deleted and re-created under the same name is
            # a different FeatureGroup whose rows must not share a file with the old one's
            batches: dict[tuple[int, tuple[str, str, str, str]], list[OfflineRow]] = defaultdict(list)
            for row in rows:
                batches[(id(row.group), partition_values(row.event_time))].append(row)
            for (_, hour), batch in batches.items():
                self._write(batch[0].group, hour, batch, write_time)
            logger.debug("flushed %d offline rows in %d files", len(rows), len(batches))
            return len(rows)

    def _write(self, group: FeatureGroup, hour: tuple[str, str, str, str], rows: list[OfflineRow],
               write_time: dt.datetime) -> None:
        offline = group.offline_config or {}
        s3 = offline["S3StorageConfig"]
        year, month, day, hh = hour
        prefix = f"{s3['ResolvedOutputS3Uri']}/year={year}/month={month}/day={day}/hour={hh}"
        name = f"{write_time:%Y%m%dT%H%M%SZ}_{''.join(secrets.choice(_ALNUM) for _ in range(16))}.parquet"
        bucket, key = mi.split_s3_uri(f"{prefix}/{name}")
        mi.s3_put(bucket, key, parquet_bytes(group, rows, write_time), kms_key_id=s3.get("KmsKeyId"))
        catalog = offline.get("DataCatalogConfig")
        if catalog and not offline.get("DisableGlueTableCreation"):
            mi.glue_add_partition(group.account, group.region, catalog["Database"], catalog["TableName"],
                                  [year, month, day, hh], prefix)

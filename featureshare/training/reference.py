"""A plain-Python reference of the point-in-time join of DESIGN.md §4, for tests and benchmarks.

Deliberately naive (a scan of every version for every entity row) so that it can be read against the
definition line by line:

    for each entity row (key k, time t) and each joined group g, take the rows of g with record id = k,
    event_time <= t, (event_time >= t - ttl if a TTL is given), (write_time <= as_of if given); pick the
    latest by (event_time, api_invocation_time, write_time) descending. If it is a delete marker, or there
    is none, the features are null (left join) or the entity row is dropped (inner join). Exactly one
    output row per entity row, in a stable order, entity columns first.

Times are compared as epoch seconds in float, computed the way the SQL does (microseconds / 1e6), so the two
agree to the last bit; see :func:`epoch_seconds`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from featureshare.errors import ValidationError
from featureshare.sqlquote import quote_identifier, quote_qualified

__all__ = ["ReferenceJoin", "epoch_seconds", "point_in_time_reference", "run_on_duckdb"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ReferenceJoin:
    """One feature group's offline rows (dicts with the record id, event time, ``api_invocation_time``,
    ``write_time``, ``is_deleted`` and features) and how to join them."""

    rows: Sequence[Mapping[str, Any]]
    record_id: str
    event_time: str
    features: Sequence[str]
    on: str
    ttl_seconds: float | None = None
    prefix: str | None = None
    how: str = "left"


def epoch_seconds(value: Any) -> float | None:
    """Epoch seconds of a number, an aware datetime / pandas Timestamp, or an ISO-8601 string with offset."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if hasattr(value, "to_pydatetime"):
        if value != value:  # NaT
            return None
        value = value.to_pydatetime()
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValidationError(f"reference needs aware times, got {value!r}", field="time", value=value)
    delta = value - _EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros / 1_000_000


def _latest(rows: Sequence[Mapping[str, Any]], join: ReferenceJoin, key: Any, t: float,
            as_of: float | None) -> Mapping[str, Any] | None:
    candidates = []
    for row in rows:
        if row[join.record_id] != key:
            continue
        event = epoch_seconds(row[join.event_time])
        if event is None or event > t:
            continue
        if join.ttl_seconds is not None and event < t - join.ttl_seconds:
            continue
        if as_of is not None and epoch_seconds(row["write_time"]) > as_of:
            continue
        candidates.append((event, epoch_seconds(row["api_invocation_time"]), epoch_seconds(row["write_time"]),
                           row))
    if not candidates:
        return None
    latest = max(candidates, key=lambda c: c[:3])[3]
    return None if latest["is_deleted"] else latest


def point_in_time_reference(entities: Sequence[Mapping[str, Any]], *, event_time: str,
                            joins: Sequence[ReferenceJoin], as_of: float | None = None) -> list[dict[str, Any]]:
    """The training set by definition: a list of dicts, entity columns first, in entity order."""
    output = []
    for entity in entities:
        t = epoch_seconds(entity[event_time])
        row = dict(entity)
        keep = True
        for join in joins:
            key = entity[join.on]
            latest = None if key is None or t is None else _latest(join.rows, join, key, t, as_of)
            if latest is None and join.how == "inner":
                keep = False
            for feature in join.features:
                name = f"{join.prefix}_{feature}" if join.prefix else feature
                row[name] = None if latest is None else latest.get(feature)
        if keep:
            output.append(row)
    return output


def run_on_duckdb(sql: str, tables: Mapping[tuple[str, str, str], Any], *, connection: Any = None) -> Any:
    """Run Athena SQL on an in-memory DuckDB the way the embedded AWS does (sqlglot ``athena`` -> ``duckdb``).

    ``tables`` maps ``(catalog, database, table)`` to a pandas DataFrame; each catalog becomes an attached
    in-memory database so three-part names resolve, and is detached afterwards. Pass an open DuckDB
    ``connection`` to reuse it across calls (opening one costs ~30 ms); otherwise one is opened and closed.
    Returns a DataFrame. A test and benchmark harness: it checks the SQL's logic without S3, Glue or
    partition pruning.
    """
    import duckdb
    import sqlglot

    translated = sqlglot.transpile(sql, read="athena", write="duckdb")[0]
    owned = connection is None
    con = duckdb.connect(":memory:") if owned else connection
    catalogs = sorted({catalog for catalog, _, _ in tables})
    attached: list[str] = []
    try:
        con.execute("SET TimeZone = 'UTC'")
        for catalog in catalogs:
            con.execute(f"ATTACH ':memory:' AS {quote_identifier(catalog)}")
            attached.append(catalog)
        for (catalog, database, table), frame in tables.items():
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_qualified(catalog, database)}")
            con.register("fs_frame", frame)
            con.execute(f"CREATE TABLE {quote_qualified(catalog, database, table)} AS SELECT * FROM fs_frame")
            con.unregister("fs_frame")
        return con.execute(translated).df()
    finally:
        for catalog in attached:
            con.execute(f"DETACH {quote_identifier(catalog)}")
        if owned:
            con.close()

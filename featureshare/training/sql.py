"""Point-in-time training-set SQL as data: frozen context dataclasses rendered to one Athena (Trino) query.

Pure code: nothing here talks to AWS. :class:`PointInTimeQuery` holds everything a query depends on and
:meth:`PointInTimeQuery.render` turns it into SQL; :mod:`featureshare.training.build` runs it.

The query implements DESIGN.md §4 without fan-out. For each joined group it takes the UNION ALL of the
entity rows (kind 0) and the group's offline rows (kind 1), and one window per record id ordered by
``(event time, kind DESC, api_invocation_time, write_time)`` carries the latest version to every row after
it; features sort before an entity row at the same instant because ``event_time <= label time`` is
inclusive. The version travels as one ``ROW(t, d, c0, ...)`` value (event time, ``is_deleted``, features),
and ``last_value(...) IGNORE NULLS`` skips only the entity rows, whose ROW is NULL: a version's ROW is never
NULL, so a latest version with null features keeps its nulls. (``max_by`` or ``last_value IGNORE NULLS``
over the feature *values* would be wrong: they skip a null feature of the latest version and return an
older value.) TTL, ``is_deleted`` and the inclusive bound are then checked on the carried ROW; an entity row
gets one output row per group, joined back by the entity row id. Work is one sort over
``entities + versions`` per group and one scan of each feature table: it never grows with
``entities x versions``. (An earlier plan sorted twice: a running count, then ``first_value`` over
``(record id, count)``; the single window is ~1.5-2x faster in DuckDB with the same output. Carrying only the
version's sort key and joining back to the table is as fast in DuckDB but scans each table twice in
Athena and needs a dedup of fully tied rows.)

Times are compared as Unix epoch seconds in DOUBLE (``to_unixtime``), which sidesteps the different
timestamp/timestamp-with-time-zone coercions of Athena and DuckDB. Limits: the TTL bound ``t - ttl`` is
computed in DOUBLE, which is exact for whole-second TTLs and times between 2004 and 2038 (other TTLs may be
off by one ulp, ~0.2 microseconds); rows tied on all of (event time, api_invocation_time, write_time) are
picked in an unspecified order; entity rows with a null key or label time get no features.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from featureshare.errors import UnsupportedError, ValidationError
from featureshare.sqlquote import double_literal, quote_identifier, quote_qualified, quote_string

__all__ = [
    "ROW_ID_COLUMN",
    "EntitySource",
    "JoinSpec",
    "PointInTimeQuery",
    "SourceTable",
    "make_join",
    "parse_ttl",
    "partition_bounds",
    "to_epoch_seconds",
]

#: Trailing output column holding the entity row id (input order); ``to_dataframe`` sorts by it and drops it.
ROW_ID_COLUMN = "featureshare_entity_row"

HowLiteral = Literal["left", "inner"]
EntityTimeKind = Literal["timestamp", "string", "epoch"]

_SQL_TYPES = {"Integral": "bigint", "Fractional": "double", "String": "varchar"}
_TTL_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_TTL_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_ARN_ACCOUNT_RE = re.compile(r"^arn:aws[a-z-]*:sagemaker:([a-z0-9-]*):(\d{12}):feature-group/")


@dataclass(frozen=True)
class SourceTable:
    """What the SQL needs to know about one feature group's offline table (from DescribeFeatureGroup)."""

    name: str
    arn: str
    account_id: str
    region: str
    record_id: str
    event_time: str
    event_time_type: str
    features: tuple[tuple[str, str], ...]
    database: str
    table: str
    catalog: str = "AwsDataCatalog"
    table_format: str = "Glue"
    offline_s3_uri: str = ""

    @property
    def feature_types(self) -> dict[str, str]:
        return dict(self.features)

    @classmethod
    def from_group(cls, group: Any) -> SourceTable:
        """Build from any object with a feature group's attributes (``featureshare.groups.FeatureGroup``)."""
        if isinstance(group, SourceTable):
            return group
        if isinstance(group, Mapping):
            return cls.from_description(group)
        if not getattr(group, "offline_enabled", True) or not getattr(group, "table", None):
            raise ValidationError(
                f"feature group {getattr(group, 'name', group)!r} has no offline store, so it cannot be joined",
                field="group", value=getattr(group, "name", None),
                hint="create the group with an offline store (online-only groups have no history)")
        return cls(
            name=group.name, arn=group.arn, account_id=group.account_id, region=group.region,
            record_id=group.record_id, event_time=group.event_time, event_time_type=group.event_time_type,
            features=tuple(dict(group.features).items()), database=group.database, table=group.table,
            catalog=getattr(group, "catalog", "AwsDataCatalog") or "AwsDataCatalog",
            table_format=getattr(group, "table_format", "Glue") or "Glue",
            offline_s3_uri=getattr(group, "offline_s3_uri", "") or "",
        )

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> SourceTable:
        """Build from a raw DescribeFeatureGroup response; names are read, never guessed."""
        name = description.get("FeatureGroupName", "")
        offline = description.get("OfflineStoreConfig") or {}
        catalog = offline.get("DataCatalogConfig") or {}
        if not catalog.get("TableName"):
            raise ValidationError(f"feature group {name!r} has no offline store table, so it cannot be joined",
                                  field="group", value=name)
        arn = description.get("FeatureGroupArn", "")
        match = _ARN_ACCOUNT_RE.match(arn)
        definitions = description.get("FeatureDefinitions") or []
        event_time = description["EventTimeFeatureName"]
        types = {d["FeatureName"]: d["FeatureType"] for d in definitions}
        return cls(
            name=name, arn=arn, account_id=match.group(2) if match else "",
            region=match.group(1) if match else "", record_id=description["RecordIdentifierFeatureName"],
            event_time=event_time, event_time_type=types.get(event_time, "String"),
            features=tuple(types.items()), database=catalog.get("Database", ""), table=catalog["TableName"],
            catalog=catalog.get("Catalog", "AwsDataCatalog"),
            table_format=offline.get("TableFormat", "Glue") or "Glue",
            offline_s3_uri=(offline.get("S3StorageConfig") or {}).get("ResolvedOutputS3Uri", ""),
        )


@dataclass(frozen=True)
class EntitySource:
    """The entity table: one row per (key, label time) to build a training row for.

    ``time_kind`` says how ``event_time`` is stored: ``timestamp`` (UTC), ``string`` (ISO-8601 with an
    offset) or ``epoch`` (seconds, DOUBLE). ``row_id`` names a BIGINT column giving the output order; without
    one the order is ``row_number()`` over all columns (key, time first). ``time_range`` (epoch seconds,
    min and max label time) enables partition pruning; it is known for uploaded DataFrames.
    """

    database: str
    table: str
    key: str
    event_time: str
    columns: tuple[str, ...]
    catalog: str = "awsdatacatalog"
    time_kind: EntityTimeKind = "timestamp"
    row_id: str | None = None
    time_column: str | None = None
    time_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        missing = [c for c in (self.key, self.event_time) if c not in self.columns]
        if missing:
            raise ValidationError(f"entity columns {missing} not among the entity table's columns "
                                  f"{list(self.columns)}", field="entities", value=missing)


@dataclass(frozen=True)
class JoinSpec:
    """One group joined point-in-time: which features, matched on which entity column, TTL, naming."""

    source: SourceTable
    features: tuple[str, ...]
    on: str
    data_catalog: str = "awsdatacatalog"
    ttl_seconds: float | None = None
    prefix: str | None = None
    how: HowLiteral = "left"

    def output_name(self, feature: str) -> str:
        return f"{self.prefix}_{feature}" if self.prefix else feature

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.output_name(f) for f in self.features)

    @property
    def table_sql(self) -> str:
        return quote_qualified(self.data_catalog, self.source.database, self.source.table)


@dataclass(frozen=True)
class PointInTimeQuery:
    """Everything the point-in-time query depends on; :meth:`render` gives the SQL."""

    entities: EntitySource
    joins: tuple[JoinSpec, ...]
    as_of: float | None = None
    prune_partitions: bool = True
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.joins:
            raise ValidationError("a training set needs at least one joined feature group", field="joins",
                                  hint="call .join(group) before .sql() or .build()")
        object.__setattr__(self, "_names", _check_output_names(self.entities, self.joins))

    @property
    def output_columns(self) -> tuple[str, ...]:
        """Entity columns, then features in join order, then the row id column."""
        return self._names

    def render(self) -> str:
        """The SELECT statement (plain Athena engine v3 SQL), ordered by entity row."""
        ctes = [f"entities AS (\n{_entities_select(self.entities)}\n)"]
        for index, join in enumerate(self.joins):
            ctes.extend(_group_ctes(index, join, self))
        return "WITH\n" + ",\n".join(ctes) + "\n" + _final_select(self)


def _check_output_names(entities: EntitySource, joins: Sequence[JoinSpec]) -> tuple[str, ...]:
    """Output names, case-insensitively unique (Athena lower-cases column names)."""
    seen: dict[str, str] = {}
    problems: list[str] = []
    names = [c for c in entities.columns if c not in (entities.row_id, entities.time_column)]
    for column in names:
        seen[column.lower()] = "the entity table"
    for join in joins:
        for name in join.output_names:
            owner = seen.get(name.lower())
            if owner is not None:
                problems.append(f"feature {name!r} of group {join.source.name!r} collides with a column "
                                f"of {owner}")
            seen[name.lower()] = f"group {join.source.name!r}"
            names.append(name)
    if ROW_ID_COLUMN in seen:
        problems.append(f"column name {ROW_ID_COLUMN!r} is reserved by featureshare")
    if problems:
        raise ValidationError("output column names collide: " + "; ".join(problems), field="features",
                              problems=problems,
                              hint="pass prefix= to .join() (or features=) so that every name is unique")
    return (*names, ROW_ID_COLUMN)


def _time_expr(column_sql: str, kind: str) -> str:
    """An epoch-seconds DOUBLE expression for a time column of the given kind."""
    if kind in ("epoch", "Fractional"):
        return f"CAST({column_sql} AS double)"
    if kind in ("string", "String"):
        return f"to_unixtime(from_iso8601_timestamp({column_sql}))"
    if kind == "timestamp":
        return f"to_unixtime({column_sql})"
    raise ValidationError(f"unknown time kind {kind!r}", field="event_time_type", value=kind)


def _entities_select(entities: EntitySource) -> str:
    columns = [f"{quote_identifier(c)} AS e{i}" for i, c in enumerate(entities.columns)]
    if entities.row_id:
        row = f"CAST({quote_identifier(entities.row_id)} AS bigint)"
    else:
        first = [entities.key, entities.event_time]
        order = first + [c for c in entities.columns if c not in first]
        row = "row_number() OVER (ORDER BY " + ", ".join(quote_identifier(c) for c in order) + ")"
    time_column = entities.time_column or entities.event_time
    time_kind = "epoch" if entities.time_column else entities.time_kind
    table = quote_qualified(entities.catalog, entities.database, entities.table)
    return (f"  SELECT {', '.join(columns)},\n         {row} AS fs_row,\n"
            f"         {_time_expr(quote_identifier(time_column), time_kind)} AS fs_t\n  FROM {table}")


def _group_ctes(index: int, join: JoinSpec, query: PointInTimeQuery) -> list[str]:
    source = join.source
    types = source.feature_types
    key_type = _SQL_TYPES[types.get(source.record_id, "String")]
    entity_key = f"e{query.entities.columns.index(join.on)}"
    g = f"g{index}"
    # The version travels as one ROW value: never null for a feature row even when its features are null.
    row_type = "ROW(t double, d boolean" + "".join(
        f", c{i} {_SQL_TYPES[types[f]]}" for i, f in enumerate(join.features)) + ")"
    time = _time_expr(quote_identifier(source.event_time), source.event_time_type)
    version = ", ".join([time, "is_deleted", *(quote_identifier(f) for f in join.features)])
    where = [f"{quote_identifier(source.record_id)} IS NOT NULL",
             f"{quote_identifier(source.event_time)} IS NOT NULL"]
    if query.as_of is not None:
        where.append(f"to_unixtime(write_time) <= {double_literal(query.as_of)}")
    where.extend(_partition_predicates(join, query))
    union = (
        f"{g}_union AS (\n"
        f"  SELECT CAST({quote_identifier(source.record_id)} AS {key_type}) AS fs_key, {time} AS fs_time,\n"
        f"         1 AS fs_kind, CAST(NULL AS bigint) AS fs_row, api_invocation_time AS fs_api,\n"
        f"         write_time AS fs_write, CAST(ROW({version}) AS {row_type}) AS fs_version\n"
        f"  FROM {join.table_sql}\n  WHERE " + "\n    AND ".join(where) + "\n"
        f"  UNION ALL\n"
        f"  SELECT CAST({entity_key} AS {key_type}), fs_t, 0, fs_row, CAST(NULL AS timestamp),\n"
        f"         CAST(NULL AS timestamp), CAST(NULL AS {row_type})\n"
        f"  FROM entities\n)"
    )
    carried = (
        f"{g}_carried AS (\n"
        f"  SELECT fs_kind, fs_row, fs_time AS fs_t, last_value(fs_version) IGNORE NULLS OVER (\n"
        f"           PARTITION BY fs_key ORDER BY fs_time ASC, fs_kind DESC, fs_api ASC, fs_write ASC\n"
        f"           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS fs_v\n"
        f"  FROM {g}_union\n)"
    )
    live = ["NOT fs_v.d", "fs_v.t <= fs_t"]
    if join.ttl_seconds is not None:
        live.append(f"fs_v.t >= fs_t - {double_literal(join.ttl_seconds)}")
    pick = (
        f"{g} AS (\n"
        f"  SELECT fs_row, COALESCE({' AND '.join(live)}, false) AS fs_live"
        + "".join(f", fs_v.c{i} AS c{i}" for i in range(len(join.features)))
        + f"\n  FROM {g}_carried\n  WHERE fs_kind = 0\n)"
    )
    return [union, carried, pick]


def _final_select(query: PointInTimeQuery) -> str:
    entities = query.entities
    hidden = (entities.row_id, entities.time_column)
    select = [f"e.e{i} AS {quote_identifier(c)}" for i, c in enumerate(entities.columns) if c not in hidden]
    joins, where = [], []
    for index, join in enumerate(query.joins):
        g = f"g{index}"
        for i, name in enumerate(join.output_names):
            select.append(f"CASE WHEN {g}.fs_live THEN {g}.c{i} END AS {quote_identifier(name)}")
        joins.append(f"JOIN {g} ON {g}.fs_row = e.fs_row")
        if join.how == "inner":
            where.append(f"{g}.fs_live")
    select.append(f"e.fs_row AS {quote_identifier(ROW_ID_COLUMN)}")
    text = "SELECT " + ",\n       ".join(select) + "\nFROM entities e\n" + "\n".join(joins)
    if where:
        text += "\nWHERE " + " AND ".join(where)
    return text + "\nORDER BY e.fs_row"


# --- partition pruning ---------------------------------------------------------------------------------------

def partition_bounds(join: JoinSpec, time_range: tuple[float, float] | None) -> tuple[str | None, str | None]:
    """The hourly partitions (``YYYYMMDDHH``, UTC) a Glue-format group can need: upper bound from the latest
    label time, lower bound from the earliest label time minus the TTL (none without a TTL)."""
    if time_range is None or join.source.table_format.lower() != "glue":
        return None, None
    low, high = time_range
    upper = _hour_key(high)
    lower = _hour_key(low - join.ttl_seconds) if join.ttl_seconds is not None else None
    return lower, upper


def _hour_key(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(math.floor(epoch), tz=dt.UTC)
    return moment.strftime("%Y%m%d%H")


def _partition_predicates(join: JoinSpec, query: PointInTimeQuery) -> list[str]:
    if not query.prune_partitions:
        return []
    lower, upper = partition_bounds(join, query.entities.time_range)
    predicates = []
    if upper is not None:
        predicates.append(_lexical_compare(upper, "<"))
    if lower is not None:
        predicates.append(_lexical_compare(lower, ">"))
    return predicates


def _lexical_compare(hour_key: str, direction: str) -> str:
    """``(year, month, day, hour) <= key`` (or ``>=``) over the zero-padded string partition columns,
    written as a nested disjunction so that each column is compared on its own (prunable everywhere)."""
    parts = [("year", hour_key[:4]), ("month", hour_key[4:6]), ("day", hour_key[6:8]), ("hour", hour_key[8:])]
    column, value = parts[-1]
    text = f"{column} {direction}= {quote_string(value)}"
    for column, value in reversed(parts[:-1]):
        literal = quote_string(value)
        text = f"({column} {direction} {literal} OR ({column} = {literal} AND {text}))"
    return text


# --- validation and conversion helpers ---------------------------------------------------------------------

def parse_ttl(ttl: Any) -> float | None:
    """TTL in seconds from ``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"500ms"``, a timedelta or seconds."""
    if ttl is None:
        return None
    if isinstance(ttl, dt.timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, bool):
        seconds = math.nan
    elif isinstance(ttl, int | float):
        seconds = float(ttl)
    elif isinstance(ttl, str) and (match := _TTL_RE.fullmatch(ttl)):
        seconds = float(match.group(1)) * _TTL_UNITS[match.group(2)]
    else:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValidationError(f"invalid ttl {ttl!r}", field="ttl", value=ttl,
                              hint="use a positive duration such as '30d', '12h', '90m', a timedelta or seconds")
    return seconds


def to_epoch_seconds(value: Any, *, timezone: str | dt.tzinfo | None = None, field_name: str = "as_of") -> float:
    """Epoch seconds of a datetime / pandas Timestamp / ISO-8601 string / number; naive times need a timezone."""
    import pandas as pd

    if isinstance(value, bool):
        raise ValidationError(f"invalid {field_name} {value!r}", field=field_name, value=value)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValidationError(f"invalid {field_name} {value!r}", field=field_name, value=value)
        return float(value)
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"invalid {field_name} {value!r}: {exc}", field=field_name, value=value,
                              hint="pass a tz-aware datetime or an ISO-8601 string with an offset") from exc
    if stamp is pd.NaT:
        raise ValidationError(f"invalid {field_name} {value!r}", field=field_name, value=value)
    if stamp.tzinfo is None:
        if timezone is None:
            raise ValidationError(f"{field_name} {value!r} has no timezone", field=field_name, value=value,
                                  hint="pass a tz-aware time, an ISO string with an offset, or timezone=")
        stamp = stamp.tz_localize(timezone)
    # micros / 1e6 (one correctly rounded division) is what DuckDB's epoch() and Python compute; pandas'
    # Timestamp.timestamp() rounds differently and could disagree by an ulp.
    return (stamp.value // 1000) / 1_000_000


def make_join(source: SourceTable, *, features: Sequence[str] | None, on: str, entity_columns: Sequence[str],
              data_catalog: str = "awsdatacatalog", ttl: Any = None, prefix: str | None = None,
              how: str = "left") -> JoinSpec:
    """Validate one join against the group's schema and the entity columns; every problem at once."""
    problems: list[str] = []
    types = source.feature_types
    if how not in ("left", "inner"):
        problems.append(f"how={how!r} is not 'left' or 'inner'")
    if on not in entity_columns:
        problems.append(f"entity column {on!r} (on=) not found; entity columns are {list(entity_columns)}")
    if source.table_format.lower() == "iceberg" and source.event_time_type != "String":
        problems.append(f"group {source.name!r} is Iceberg with a non-String event time")
    if isinstance(features, str):
        problems.append(f"features= must be a list of names, not the string {features!r}")
        features = ()
    chosen = tuple(features) if features is not None else tuple(
        f for f in types if f not in (source.record_id, source.event_time))
    unknown = [f for f in chosen if f not in types]
    if unknown:
        problems.append(f"group {source.name!r} has no feature(s) {unknown}; it has {sorted(types)}")
    if len(set(chosen)) != len(chosen):
        problems.append(f"features {list(chosen)} list a feature twice")
    if prefix is not None and not re.fullmatch(r"[A-Za-z0-9_]{1,64}", prefix):
        problems.append(f"prefix {prefix!r} is not 1-64 characters of [A-Za-z0-9_]")
    ttl_seconds = None
    try:
        ttl_seconds = parse_ttl(ttl)
    except ValidationError as exc:
        problems.append(str(exc))
    if problems:
        raise ValidationError(f"cannot join feature group {source.name!r}: " + "; ".join(problems),
                              field="join", value=source.name, problems=problems)
    if not chosen:
        raise UnsupportedError(f"feature group {source.name!r} has no features to join besides its keys")
    return JoinSpec(source=source, features=chosen, on=on, data_catalog=data_catalog,
                    ttl_seconds=ttl_seconds, prefix=prefix, how=how)  # type: ignore[arg-type]

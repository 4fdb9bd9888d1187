"""The data model shared by the embedded Athena's engine modules.

What the engine reads through a :class:`Resolver` (Glue tables, S3 objects), what it returns
(:class:`StatementResult`, rendered by :func:`athena_text`), its errors and :class:`CancelToken`, the
Athena / Hive / DuckDB type mapping and the one-statement parser. The entry point that runs a statement is
:func:`featureshare.local.athena_engine.run_statement`.

Emulation limits: types DuckDB has and Athena lacks map to the nearest Athena name
(``hugeint`` -> ``bigint``); doubles print as Java's ``Double.toString``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from featureshare.errors import FeatureshareError, UnsupportedError

__all__ = [
    "DEFAULT_CATALOG",
    "AthenaQueryError",
    "CancelToken",
    "Column",
    "Partition",
    "QueryCancelledError",
    "QueryContext",
    "Resolver",
    "ResultColumn",
    "S3Object",
    "StatementResult",
    "TableMeta",
    "UnsupportedStatementError",
    "athena_text",
    "identifier",
    "parse_sql",
    "result_column",
    "table_parts",
    "to_duckdb_type",
    "to_glue_type",
]

DEFAULT_CATALOG = "awsdatacatalog"


# ------------------------------------------------------------------------------------------------ data model

@dataclass(frozen=True)
class Column:
    """A Glue column: name and Hive type name (``string``, ``bigint``, ``timestamp``, ...)."""

    name: str
    type: str
    comment: str = ""


@dataclass(frozen=True)
class Partition:
    """One Glue partition: its values (in partition-key order) and S3 location."""

    values: tuple[str, ...]
    location: str


@dataclass(frozen=True)
class TableMeta:
    """What the engine needs to know about a Glue table."""

    database: str
    name: str
    columns: tuple[Column, ...]
    location: str
    partition_keys: tuple[Column, ...] = ()
    partitions: tuple[Partition, ...] = ()
    format: str = "parquet"
    table_type: str = "EXTERNAL_TABLE"


@dataclass(frozen=True)
class S3Object:
    """An object listed under a location: its ``s3://`` URI and size in bytes."""

    uri: str
    size: int


@dataclass(frozen=True)
class QueryContext:
    """Who runs the statement and with which defaults (Athena's QueryExecutionContext)."""

    account_id: str
    region: str
    catalog: str = DEFAULT_CATALOG
    database: str = "default"
    query_id: str = ""
    #: where a CTAS without ``external_location`` writes (Athena: ``<result location>/tables/<query id>/``)
    default_table_location: str | None = None


@dataclass(frozen=True)
class ResultColumn:
    """A result column with its Athena type name (``varchar``, ``bigint``, ``timestamp``, ...)."""

    name: str
    type: str
    precision: int = 0
    scale: int = 0


@dataclass
class StatementResult:
    """The outcome of one statement. ``rows`` hold Python values; :func:`athena_text` renders them."""

    statement_type: str  # DML | DDL | UTILITY, as Athena's StatementType
    substatement_type: str  # SELECT, CREATE_TABLE_AS_SELECT, UNLOAD, CREATE_TABLE, DROP_TABLE, ...
    columns: list[ResultColumn] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    data_scanned_bytes: int = 0
    written_objects: list[str] = field(default_factory=list)


class Resolver(Protocol):
    """The engine's view of Glue and S3. Catalog names arrive lower-cased; ``awsdatacatalog`` is the
    caller's own Glue, any other name a registered data catalog. Raise :class:`AthenaQueryError`
    (``CATALOG_NOT_FOUND``) for an unknown catalog."""

    def get_table(self, catalog: str, database: str, table: str) -> TableMeta | None: ...

    def database_exists(self, catalog: str, database: str) -> bool: ...

    def list_databases(self, catalog: str) -> list[str]: ...

    def list_tables(self, catalog: str, database: str) -> list[str]: ...

    def list_objects(self, location: str) -> list[S3Object]: ...

    def read_object(self, uri: str) -> bytes: ...

    def write_object(self, uri: str, body: bytes) -> None: ...

    def create_database(self, catalog: str, database: str) -> None: ...

    def create_table(self, catalog: str, table: TableMeta) -> None: ...

    def drop_table(self, catalog: str, database: str, table: str) -> None: ...


class AthenaQueryError(FeatureshareError):
    """Raised when a statement fails; ``str()`` reads like Athena's StateChangeReason
    (``TABLE_NOT_FOUND: Table 'awsdatacatalog.db.t' does not exist``)."""

    def __init__(self, error_type: str, message: str) -> None:
        self.error_type = error_type
        super().__init__(f"{error_type}: {message}")


class UnsupportedStatementError(AthenaQueryError, UnsupportedError):
    """Raised for a statement or construct the embedded Athena does not run; the message names it."""

    def __init__(self, construct: str) -> None:
        super().__init__("NOT_SUPPORTED", f"the embedded Athena does not support {construct}")


class QueryCancelledError(AthenaQueryError):
    """Raised when :meth:`CancelToken.cancel` stops a running statement."""

    def __init__(self) -> None:
        super().__init__("USER_CANCELLED", "Query cancelled by user")


class CancelToken:
    """Lets another thread stop a statement: checked between phases, and interrupts DuckDB mid-query."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._connection: duckdb.DuckDBPyConnection | None = None

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        self._event.set()
        with self._lock:
            if self._connection is not None:
                self._connection.interrupt()

    def check(self) -> None:
        if self._event.is_set():
            raise QueryCancelledError()

    def _attach(self, connection: duckdb.DuckDBPyConnection | None) -> None:
        with self._lock:
            self._connection = connection


# ------------------------------------------------------------------------------------------------ types

_ATHENA_TYPES = {
    "varchar": "varchar", "bigint": "bigint", "hugeint": "bigint", "ubigint": "bigint", "integer": "integer",
    "uinteger": "bigint", "smallint": "smallint", "usmallint": "integer", "tinyint": "tinyint",
    "utinyint": "smallint", "double": "double", "float": "real", "boolean": "boolean",
    "timestamp": "timestamp", "timestamp_ms": "timestamp", "timestamp_ns": "timestamp", "timestamp_s": "timestamp",
    "timestamp with time zone": "timestamp with time zone", "date": "date", "time": "time",
    "blob": "varbinary", "list": "array", "array": "array", "struct": "row", "map": "map",
    "interval": "interval day to second", "uuid": "uuid", "decimal": "decimal", '"null"': "unknown",
}


def _athena_type(duck_type: Any) -> str:
    return _ATHENA_TYPES.get(str(duck_type.id).lower(), str(duck_type).lower())


def result_column(name: str, duck_type: Any) -> ResultColumn:
    athena = _athena_type(duck_type)
    if athena == "decimal":
        precision, scale = (int(x) for x in re.findall(r"\d+", str(duck_type))[:2])
        return ResultColumn(name, athena, precision, scale)
    return ResultColumn(name, athena, _PRECISION.get(athena, 0))


_PRECISION = {"varchar": 2147483647, "bigint": 19, "integer": 10, "smallint": 5, "tinyint": 3, "double": 17,
              "real": 24, "timestamp": 3, "timestamp with time zone": 3}


def to_glue_type(duck_type: Any) -> str:
    """Hive type for a DuckDB result column (used when CTAS registers a table)."""
    tid = str(duck_type.id).lower()
    if tid == "timestamp with time zone":
        raise AthenaQueryError("NOT_SUPPORTED", "Unsupported Hive type: timestamp(3) with time zone "
                                                "(CAST the column AS timestamp)")
    if tid in ("hugeint", "ubigint", "uinteger"):
        return "bigint"
    if tid.startswith("timestamp"):
        return "timestamp"
    return exp.DataType.build(str(duck_type), dialect="duckdb").sql("hive").lower()


def to_duckdb_type(glue_type: str) -> str:
    return exp.DataType.build(glue_type, dialect="hive").sql("duckdb")


def _java_double(value: float) -> str:
    """A double as Java's ``Double.toString`` (what Athena prints): 1.0, 0.001, 1.0E7, 1.0E-4."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    mantissa = text[0] + "." + (text[1:] or "0")
    return f"{'-' if sign else ''}{mantissa}E{len(digits) - 1 + int(exponent)}"


def athena_text(value: Any) -> str | None:
    """Render a result value as Athena's text (GetQueryResults ``VarCharValue`` and the CSV)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, datetime):
        text = f"{value:%Y-%m-%d %H:%M:%S}.{value.microsecond // 1000:03d}"
        return f"{text} UTC" if value.tzinfo is not None else text
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        seconds = value.seconds
        return (f"{value.days} {seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}."
                f"{value.microseconds // 1000:03d}")
    if isinstance(value, bytes):
        return value.hex(" ")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(athena_text(v)) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{athena_text(k)}={athena_text(v)}" for k, v in value.items()) + "}"
    return str(value)


# ------------------------------------------------------------------------------------------------ parsing

def parse_sql(sql: str) -> exp.Expression:
    try:
        statements = [s for s in sqlglot.parse(sql, read="athena") if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f"line {first.get('line', 1)}:{first.get('col', 1)}: " if first else ""
        description = first.get("description") or str(exc)
        raise AthenaQueryError("SYNTAX_ERROR", f"{where}{description}") from exc
    except TokenError as exc:
        raise AthenaQueryError("SYNTAX_ERROR", str(exc)) from exc
    if not statements:
        raise AthenaQueryError("SYNTAX_ERROR", "empty query")
    if len(statements) > 1:
        raise AthenaQueryError("INVALID_INPUT", "Only one sql statement is allowed")
    return statements[0]


def identifier(node: exp.Expression | None) -> str:
    return node.name.lower() if node is not None else ""


def table_parts(table: exp.Table, ctx: QueryContext) -> tuple[str, str, str]:
    return (identifier(table.args.get("catalog")) or ctx.catalog.lower(),
            identifier(table.args.get("db")) or ctx.database.lower(), table.name.lower())

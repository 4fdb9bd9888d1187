"""The SQL engine of the embedded Athena: one Athena (Trino) statement -> sqlglot -> DuckDB over Parquet.

Pure: it knows nothing about moto. Everything it needs from "AWS" (Glue tables, S3 objects) comes through a
:class:`Resolver`. :func:`run_statement` parses one statement with ``sqlglot`` (``read="athena"``), replaces
every Glue table reference by a DuckDB relation over the table's Parquet objects (read as bytes through the
resolver, so no DuckDB extension and no download), generates DuckDB SQL and runs it on a private
connection whose ``TimeZone`` is UTC.

Supported: SELECT / WITH (joins, UNION, window functions, the Trino date functions sqlglot maps), CTAS
(``WITH (external_location, format='PARQUET', partitioned_by=ARRAY[...])``), ``UNLOAD (...) TO ... WITH
(format='PARQUET')``, ``CREATE EXTERNAL TABLE ... STORED AS PARQUET LOCATION``, ``DROP TABLE``,
``CREATE DATABASE|SCHEMA``, ``SHOW TABLES|DATABASES|SCHEMAS``, ``DESCRIBE``. Anything else raises
:class:`UnsupportedStatementError` naming the construct.

Emulation limits:
- Functions sqlglot does not translate (e.g. Joda-format ``parse_datetime``/``format_datetime``) fail with
  ``FUNCTION_NOT_FOUND``; casting a ``timestamp with time zone`` carrying a non-UTC offset to ``timestamp``
  gives the UTC wall time (Trino keeps the zone's local time).
- Only Parquet tables; Glue partitions are read from their registered locations (no partition projection).
- Partition pruning uses the WHERE conjuncts of the SELECT that reads the table directly (also inside CTEs
  and subqueries) that reference only partition columns; predicates are not pushed through CTEs.
- ``DataScannedInBytes`` is the size of the objects read (Athena counts the Parquet bytes actually read).
- CTAS and UNLOAD refuse ``timestamp with time zone`` columns as Athena's Hive writer does
  (``CAST(... AS timestamp)`` first), refuse a non-empty target, and write extension-less Parquet files.
"""

from __future__ import annotations

import atexit
import contextlib
import fnmatch
import io
import logging
import re
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from featureshare.errors import FeatureshareError, UnsupportedError

logger = logging.getLogger(__name__)

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
    "bind_parameters",
    "classify_statement",
    "run_statement",
]

DEFAULT_CATALOG = "awsdatacatalog"
_MAX_CTAS_PARTITIONS = 100
_HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


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


# ------------------------------------------------------------------------------------------------ DuckDB

def _close_default_connection() -> None:
    # DuckDB 2.0 + pyarrow aborts at interpreter exit unless the default connection is closed.
    with contextlib.suppress(Exception):  # best effort at exit; nothing useful to report
        duckdb.default_connection().close()


atexit.register(_close_default_connection)


def _connect() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(":memory:")
    # Trino compares timestamp with timestamptz in UTC semantics here only if the session zone is UTC.
    conn.execute("SET TimeZone='UTC'")
    conn.execute("SET threads=2")
    return conn


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


def _result_column(name: str, duck_type: Any) -> ResultColumn:
    athena = _athena_type(duck_type)
    if athena == "decimal":
        precision, scale = (int(x) for x in re.findall(r"\d+", str(duck_type))[:2])
        return ResultColumn(name, athena, precision, scale)
    return ResultColumn(name, athena, _PRECISION.get(athena, 0))


_PRECISION = {"varchar": 2147483647, "bigint": 19, "integer": 10, "smallint": 5, "tinyint": 3, "double": 17,
              "real": 24, "timestamp": 3, "timestamp with time zone": 3}


def _glue_type(duck_type: Any) -> str:
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


def _duck_type(glue_type: str) -> str:
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

def _parse(sql: str) -> exp.Expression:
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


def _ident(node: exp.Expression | None) -> str:
    return node.name.lower() if node is not None else ""


def _table_parts(table: exp.Table, ctx: QueryContext) -> tuple[str, str, str]:
    return (_ident(table.args.get("catalog")) or ctx.catalog.lower(),
            _ident(table.args.get("db")) or ctx.database.lower(), table.name.lower())


_UNLOAD = re.compile(r"^\s*UNLOAD\s*\((?P<query>.*)\)\s*TO\s*'(?P<target>(?:[^']|'')*)'\s*"
                     r"(?:WITH\s*\((?P<props>.*)\))?\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_SHOW = re.compile(r"^\s*SHOW\s+(?P<what>TABLES|DATABASES|SCHEMAS)(?:\s+(?:IN|FROM)\s+(?P<db>[\w`\".]+))?"
                   r"(?:\s+(?:LIKE\s+)?'(?P<pattern>[^']*)')?\s*;?\s*$", re.IGNORECASE)


def classify_statement(sql: str) -> tuple[str, str]:
    """(StatementType, SubstatementType) from the statement's first words, for a query still running."""
    words = re.sub(r"\s+", " ", re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL)).strip().upper()
    prefixes = [("SELECT", "DML", "SELECT"), ("WITH", "DML", "SELECT"), ("(", "DML", "SELECT"),
                ("VALUES", "DML", "SELECT"), ("UNLOAD", "DML", "UNLOAD"), ("INSERT", "DML", "INSERT"),
                ("SHOW TABLES", "UTILITY", "SHOW_TABLES"), ("SHOW", "UTILITY", "SHOW"),
                ("DESCRIBE", "UTILITY", "DESCRIBE_TABLE"), ("DESC ", "UTILITY", "DESCRIBE_TABLE"),
                ("DROP TABLE", "DDL", "DROP_TABLE"), ("CREATE DATABASE", "DDL", "CREATE_DATABASE"),
                ("CREATE SCHEMA", "DDL", "CREATE_DATABASE"), ("CREATE EXTERNAL", "DDL", "CREATE_TABLE")]
    if words.startswith("CREATE TABLE"):
        return ("DDL", "CREATE_TABLE_AS_SELECT") if " AS " in f" {words} " else ("DDL", "CREATE_TABLE")
    for prefix, statement_type, sub in prefixes:
        if words.startswith(prefix):
            return statement_type, sub
    return "DDL", words.split(" ", 1)[0] if words else "UNKNOWN"


# ------------------------------------------------------------------------------------------------ entry

def bind_parameters(sql: str, values: Sequence[str]) -> str:
    """Athena's ``ExecutionParameters``: each ``?`` in order replaced by a SQL literal given as text."""
    tree = _parse(sql)
    placeholders = [p for p in tree.find_all(exp.Placeholder) if not p.args.get("this")]
    if len(placeholders) != len(values):
        raise AthenaQueryError("INVALID_PARAMETER_USAGE", f"Incorrect number of parameters: expected "
                                                          f"{len(placeholders)} but found {len(values)}")
    for placeholder, value in zip(placeholders, values, strict=True):
        placeholder.replace(_parse(f"SELECT {value}").expressions[0])
    return tree.sql(dialect="athena")


def run_statement(sql: str, context: QueryContext, resolver: Resolver,
                  cancel: CancelToken | None = None) -> StatementResult:
    """Run one Athena statement and return its result.

    Raises :class:`AthenaQueryError` (syntax, missing table, runtime error, ...) with an Athena-like
    message, :class:`UnsupportedStatementError` for constructs the emulation does not run, and
    :class:`QueryCancelledError` when ``cancel`` fires.
    """
    token = cancel or CancelToken()
    token.check()
    unload = _UNLOAD.match(sql)
    if unload:
        return _run_unload(unload, context, resolver, token)
    if re.match(r"\s*UNLOAD\b", sql, re.IGNORECASE):
        raise AthenaQueryError("SYNTAX_ERROR", "expected UNLOAD (<select>) TO 's3://...' WITH (format = ...)")
    show = _SHOW.match(sql)
    if show:
        return _run_show(show, context, resolver)
    tree = _parse(sql)
    if isinstance(tree, exp.Query):
        return _run_select(tree, context, resolver, token)
    if isinstance(tree, exp.Create):
        return _run_create(tree, context, resolver, token)
    if isinstance(tree, exp.Drop):
        return _run_drop(tree, context, resolver)
    if isinstance(tree, exp.Describe):
        return _run_describe(tree, context, resolver)
    raise UnsupportedStatementError(f"{_construct_name(tree)} statements")


def _construct_name(tree: exp.Expression) -> str:
    if isinstance(tree, exp.Command):
        rest = tree.expression.name.split() if tree.expression is not None else []
        return " ".join([str(tree.this).upper(), *(w.upper() for w in rest[:1])])
    if isinstance(tree, exp.Create):
        return f"CREATE {tree.args.get('kind') or ''}".strip()
    return tree.key.upper()


# ------------------------------------------------------------------------------------------------ SELECT

class _Session:
    """One DuckDB connection plus the relations registered for one statement."""

    def __init__(self, context: QueryContext, resolver: Resolver, token: CancelToken) -> None:
        self.context = context
        self.resolver = resolver
        self.token = token
        self.conn = _connect()
        self.scanned = 0
        self._counter = 0
        self._relations: dict[tuple[str, str, str, tuple[int, ...] | None], str] = {}
        self._names: dict[str, str] = {}
        self._metas: dict[tuple[str, str, str], TableMeta] = {}
        token._attach(self.conn)

    def close(self) -> None:
        self.token._attach(None)
        self.conn.close()

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def internal_name(self) -> str:
        self._counter += 1
        return f"__fs_rel_{self._counter}_{uuid.uuid4().hex[:8]}"

    def meta(self, catalog: str, database: str, table: str) -> TableMeta:
        key = (catalog, database, table)
        if key not in self._metas:
            meta = self.resolver.get_table(catalog, database, table)
            if meta is None:
                if not self.resolver.database_exists(catalog, database):
                    raise AthenaQueryError("SCHEMA_NOT_FOUND", f"Schema '{catalog}.{database}' does not exist")
                raise AthenaQueryError("TABLE_NOT_FOUND", f"Table '{catalog}.{database}.{table}' does not exist")
            if meta.format.lower() != "parquet":
                raise UnsupportedStatementError(f"reading {meta.format} tables ({catalog}.{database}.{table})")
            self._metas[key] = meta
        return self._metas[key]

    def relation(self, parts: tuple[str, str, str], partitions: tuple[int, ...] | None) -> str:
        """Register (once) a DuckDB view over the table's Parquet objects; returns its unique name."""
        key = (*parts, partitions)
        if key not in self._relations:
            name = self.internal_name()
            _register_table(self, name, self.meta(*parts), partitions)
            self._relations[key] = name
            self._names[name] = ".".join(parts)
        return self._relations[key]

    def readable(self, message: str) -> str:
        for internal, original in self._names.items():
            message = message.replace(internal, original)
        return message


def _object_uris(resolver: Resolver, location: str) -> list[S3Object]:
    prefix = location if location.endswith("/") else location + "/"
    hidden = ("_", ".")
    return [o for o in resolver.list_objects(prefix)
            if o.size > 0 and not o.uri.rsplit("/", 1)[-1].startswith(hidden) and not o.uri.endswith("$folder$")]


def _read_parquet(session: _Session, obj: S3Object, meta: TableMeta,
                  partition_values: dict[str, str]) -> pa.Table:
    session.token.check()
    try:
        data = pq.read_table(pa.BufferReader(session.resolver.read_object(obj.uri)))
    except (pa.ArrowInvalid, OSError) as exc:
        raise AthenaQueryError("HIVE_BAD_DATA", f"Error reading {obj.uri}: not a Parquet file ({exc})") from exc
    session.scanned += obj.size
    by_lower = {name.lower(): i for i, name in enumerate(data.column_names)}
    arrays, names = [], []
    for column in meta.columns:
        index = by_lower.get(column.name.lower())
        arrays.append(data.column(index) if index is not None else pa.nulls(data.num_rows))
        names.append(column.name)
    for key in meta.partition_keys:
        arrays.append(pa.repeat(pa.scalar(partition_values.get(key.name), pa.string()), data.num_rows))
        names.append(key.name)
    return pa.table(arrays, names=names)


def _register_table(session: _Session, name: str, meta: TableMeta, partitions: tuple[int, ...] | None) -> None:
    sources: list[tuple[str, dict[str, str]]] = []
    if meta.partition_keys:
        chosen = range(len(meta.partitions)) if partitions is None else partitions
        for index in chosen:
            part = meta.partitions[index]
            sources.append((part.location, dict(zip([k.name for k in meta.partition_keys], part.values,
                                                    strict=False))))
    else:
        sources.append((meta.location, {}))
    pieces = [_read_parquet(session, obj, meta, values)
              for location, values in sources for obj in _object_uris(session.resolver, location)]
    all_columns = [*meta.columns, *meta.partition_keys]
    casts = ", ".join(f'CAST("{c.name}" AS {_duck_type(c.type)}) AS "{c.name}"' for c in all_columns)
    if pieces:
        raw = f"{name}_raw"
        session.conn.register(raw, pa.concat_tables(pieces, promote_options="permissive"))
        session.conn.execute(f'CREATE TEMP VIEW "{name}" AS SELECT {casts} FROM "{raw}"')
    else:
        nulls = ", ".join(f'CAST(NULL AS {_duck_type(c.type)}) AS "{c.name}"' for c in all_columns)
        session.conn.execute(f'CREATE TEMP VIEW "{name}" AS SELECT {nulls} WHERE false')


def _cte_names(tree: exp.Expression) -> set[str]:
    return {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}


def _to_duckdb(tree: exp.Expression) -> str:
    def rewrite(node: exp.Expression) -> exp.Expression:
        # Trino's date_diff counts whole units elapsed; DuckDB's date_diff counts boundaries crossed.
        if isinstance(node, exp.DateDiff):
            unit = node.args.get("unit")
            return exp.Anonymous(this="DATE_SUB", expressions=[
                exp.Literal.string(unit.name.lower() if unit is not None else "day"),
                node.expression, node.this])
        return node

    return tree.transform(rewrite, copy=True).sql(dialect="duckdb")


def _bind_tables(session: _Session, tree: exp.Expression) -> exp.Expression:
    """Replace every Glue table reference by a uniquely named DuckDB relation (pruned when possible)."""
    tree = tree.copy()
    ctes = _cte_names(tree)
    for table in list(tree.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise UnsupportedStatementError(f"the table expression {table.sql(dialect='athena')}")
        if not table.args.get("db") and table.name.lower() in ctes:
            continue
        parts = _table_parts(table, session.context)
        meta = session.meta(*parts)
        chosen = _prune(session, table, meta) if meta.partition_keys else None
        internal = session.relation(parts, chosen)
        alias = table.alias or table.name
        table.replace(exp.Table(this=exp.to_identifier(internal, quoted=True),
                                alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))))
    return tree


def _execute(session: _Session, tree: exp.Expression) -> duckdb.DuckDBPyRelation:
    bound = _bind_tables(session, tree)
    session.token.check()
    sql = _to_duckdb(bound)
    logger.debug("embedded Athena runs DuckDB SQL: %s", sql)
    try:
        return session.conn.sql(sql)
    except duckdb.Error as exc:
        raise _duck_error(session, exc) from exc


def _duck_error(session: _Session, exc: duckdb.Error) -> AthenaQueryError:
    if session.token.cancelled or isinstance(exc, duckdb.InterruptException):
        return QueryCancelledError()
    text = session.readable(str(exc).split("\n\nLINE", 1)[0].strip())
    kind = "GENERIC_USER_ERROR"
    if "Scalar Function" in text or "Table Function" in text or "Aggregate Function" in text:
        kind = "FUNCTION_NOT_FOUND"
    elif isinstance(exc, duckdb.BinderException) and "column" in text.lower():
        kind = "COLUMN_NOT_FOUND"
    elif isinstance(exc, duckdb.ConversionException):
        kind = "INVALID_CAST_ARGUMENT"
    elif isinstance(exc, duckdb.ParserException):
        kind = "SYNTAX_ERROR"
    return AthenaQueryError(kind, f"{text} (embedded Athena runs DuckDB)")


def _fetch(session: _Session, relation: duckdb.DuckDBPyRelation) -> list[tuple[Any, ...]]:
    try:
        return relation.fetchall()
    except duckdb.Error as exc:
        raise _duck_error(session, exc) from exc


def _run_select(tree: exp.Query, ctx: QueryContext, resolver: Resolver, token: CancelToken) -> StatementResult:
    with _Session(ctx, resolver, token) as session:
        relation = _execute(session, tree)
        columns = [_result_column(n, t) for n, t in zip(relation.columns, relation.types, strict=True)]
        rows = _fetch(session, relation)
        token.check()
        return StatementResult("DML", "SELECT", columns, rows, session.scanned)


# ------------------------------------------------------------------------------------------------ pruning

def _conjuncts(condition: exp.Expression) -> list[exp.Expression]:
    node = condition.unnest()
    if isinstance(node, exp.And):
        return [*_conjuncts(node.left), *_conjuncts(node.right)]
    return [node]


def _pruning_conjuncts(table: exp.Table, keys: set[str]) -> list[exp.Expression]:
    """WHERE and ON conjuncts of the SELECT reading ``table`` that filter its rows on partition columns alone."""
    parent = table.parent
    select = parent.parent if isinstance(parent, exp.From | exp.Join) else None
    if not isinstance(select, exp.Select):
        return []
    names = {table.name.lower(), (table.alias or "").lower()} - {""}
    joins = select.args.get("joins") or []
    sides = {str(j.side or "").upper() for j in joins}
    own_side = str(parent.side or "").upper() if isinstance(parent, exp.Join) else ""
    found = []
    # WHERE does not filter the rows of a table an outer join may null-extend (`t.k IS NULL` keeps them).
    nullable = "FULL" in sides or own_side == "LEFT" or (isinstance(parent, exp.From) and "RIGHT" in sides)
    where = select.args.get("where")
    if where is not None and not nullable:
        found += [c for c in _conjuncts(where.this) if _usable_conjunct(c, names, keys, not joins)]
    # The ON clause of an inner or left join drops the joined table's rows that fail it.
    on = parent.args.get("on") if isinstance(parent, exp.Join) and own_side in ("", "LEFT") else None
    if on is not None:
        found += [c for c in _conjuncts(on) if _usable_conjunct(c, names, keys, False)]
    return found


def _usable_conjunct(conjunct: exp.Expression, names: set[str], keys: set[str], single_source: bool) -> bool:
    if conjunct.find(exp.Select, exp.Subquery, exp.Star, exp.AggFunc, exp.Window):
        return False
    columns = list(conjunct.find_all(exp.Column))
    if not columns:
        return False
    for column in columns:
        qualifier = column.table.lower()
        if column.name.lower() not in keys:
            return False
        if qualifier and qualifier not in names:
            return False
        if not qualifier and not single_source:
            return False
    return True


def _prune(session: _Session, table: exp.Table, meta: TableMeta) -> tuple[int, ...] | None:
    """Indices of the partitions the WHERE/ON clauses can match (``None``: read all)."""
    usable = _pruning_conjuncts(table, {k.name.lower() for k in meta.partition_keys})
    if not usable:
        return None
    values = {k.name: pa.array([p.values[i] if i < len(p.values) else None for p in meta.partitions], pa.string())
              for i, k in enumerate(meta.partition_keys)}
    values["__fs_index"] = pa.array(range(len(meta.partitions)), pa.int64())
    raw = session.internal_name()
    session.conn.register(raw, pa.table(values))
    casts = ", ".join(f'CAST("{k.name}" AS {_duck_type(k.type)}) AS "{k.name}"' for k in meta.partition_keys)
    keep = set(range(len(meta.partitions)))
    for conjunct in usable:
        condition = conjunct.copy()
        for column in condition.find_all(exp.Column):
            column.set("table", None)
        sql = f'SELECT __fs_index FROM (SELECT {casts}, __fs_index FROM "{raw}") WHERE {_to_duckdb(condition)}'
        try:
            keep &= {row[0] for row in session.conn.execute(sql).fetchall()}
        except duckdb.Error:
            logger.debug("partition predicate not evaluable, not pruning on it: %s", conjunct.sql())
    session.conn.unregister(raw)
    return tuple(sorted(keep))


# ------------------------------------------------------------------------------------------------ writes

def _literal_value(node: exp.Expression | None) -> Any:
    if node is None:
        return None
    if isinstance(node, exp.Array):
        return [_literal_value(e) for e in node.expressions]
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else node.to_py()
    return node.name


def _with_properties(props: exp.Properties | None) -> dict[str, Any]:
    """CTAS/UNLOAD ``WITH (...)`` properties as lower-cased names -> Python values."""
    out: dict[str, Any] = {}
    for prop in props.expressions if props is not None else []:
        if isinstance(prop, exp.FileFormatProperty):
            out["format"] = str(_literal_value(prop.this))
        elif isinstance(prop, exp.PartitionedByProperty):
            out["partitioned_by"] = _literal_value(prop.this)
        elif isinstance(prop, exp.LocationProperty):
            out["external_location"] = _literal_value(prop.this)
        elif isinstance(prop, exp.Property):
            out[str(_literal_value(prop.this)).lower()] = _literal_value(prop.args.get("value"))
        else:
            raise UnsupportedStatementError(f"the table property {prop.sql(dialect='athena')}")
    return out


def _prefix(location: str) -> str:
    if not location.lower().startswith("s3://"):
        raise AthenaQueryError("INVALID_TABLE_PROPERTY", f"location must be an s3:// URI, got '{location}'")
    return location if location.endswith("/") else location + "/"


def _arrow_result(session: _Session, relation: duckdb.DuckDBPyRelation) -> tuple[pa.Table, list[str]]:
    """The result as Arrow with Hive-compatible types, and the Glue type of every column."""
    names = [n.lower() for n in relation.columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AthenaQueryError("HIVE_INVALID_METADATA", f"Duplicate column names: {', '.join(duplicates)} "
                                                        "(give every output column a distinct alias)")
    glue_types = [_glue_type(t) for t in relation.types]
    try:
        table = relation.to_arrow_table()
    except duckdb.Error as exc:
        raise _duck_error(session, exc) from exc
    for i, (name, duck_type) in enumerate(zip(relation.columns, relation.types, strict=True)):
        if str(duck_type.id).lower() == "hugeint":  # sum(bigint) is bigint in Trino, int128 in DuckDB
            table = table.set_column(i, name, pc.cast(table.column(i), pa.int64()))
    return table.rename_columns(names), glue_types


def _write_files(session: _Session, table: pa.Table, prefix: str, partitioned_by: Sequence[str]) -> tuple[
        list[str], list[Partition]]:
    """Write ``table`` as Parquet under ``prefix`` (Hive-style ``key=value/`` folders when partitioned)."""
    stem = session.context.query_id or uuid.uuid4().hex
    if not partitioned_by:
        uri = f"{prefix}{stem}_{uuid.uuid4()}"
        _put_parquet(session, uri, table)
        return [uri], []
    data_columns = [c for c in table.column_names if c not in partitioned_by]
    groups = table.select(list(partitioned_by)).group_by(list(partitioned_by), use_threads=False).aggregate([])
    if groups.num_rows > _MAX_CTAS_PARTITIONS:
        raise AthenaQueryError("HIVE_TOO_MANY_OPEN_PARTITIONS", f"Exceeded limit of {_MAX_CTAS_PARTITIONS} "
                                                                f"open writers for partitions/buckets")
    written, partitions = [], []
    for row in groups.to_pylist():
        mask = None
        for key in partitioned_by:
            test = pc.is_null(table[key]) if row[key] is None else pc.equal(table[key], row[key])
            mask = test if mask is None else pc.and_(mask, test)
        values = tuple(_HIVE_NULL_PARTITION if row[k] is None else str(athena_text(row[k])) for k in partitioned_by)
        folder = prefix + "/".join(f"{k}={v}" for k, v in zip(partitioned_by, values, strict=True)) + "/"
        uri = f"{folder}{stem}_{uuid.uuid4()}"
        _put_parquet(session, uri, table.filter(mask).select(data_columns))
        written.append(uri)
        partitions.append(Partition(values, folder))
    return written, partitions


def _put_parquet(session: _Session, uri: str, table: pa.Table) -> None:
    session.token.check()
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    session.resolver.write_object(uri, sink.getvalue())


def _ensure_empty(resolver: Resolver, prefix: str, what: str) -> None:
    if resolver.list_objects(prefix):
        raise AthenaQueryError("HIVE_PATH_ALREADY_EXISTS", f"Target directory for {what} already exists: {prefix}")


def _check_format(props: dict[str, Any], default: str) -> None:
    fmt = str(props.get("format") or default).upper()
    if fmt != "PARQUET":
        raise UnsupportedStatementError(f"format='{fmt}' (only PARQUET is emulated)")


def _partition_columns(props: dict[str, Any], columns: list[str]) -> list[str]:
    keys = [str(k).lower() for k in props.get("partitioned_by") or []]
    if keys and columns[-len(keys):] != keys:
        raise AthenaQueryError("HIVE_COLUMN_ORDER_MISMATCH", "Partition keys must be the last columns in the "
                                                             f"table and in the same order: {', '.join(keys)}")
    return keys


def _run_unload(match: re.Match[str], ctx: QueryContext, resolver: Resolver, token: CancelToken) -> StatementResult:
    query = _parse(match["query"])
    if not isinstance(query, exp.Query):
        raise AthenaQueryError("SYNTAX_ERROR", "UNLOAD needs a SELECT statement")
    props = _with_properties(_parse_properties(match["props"] or ""))
    _check_format(props, "TEXTFILE")
    prefix = _prefix(match["target"].replace("''", "'"))
    _ensure_empty(resolver, prefix, "UNLOAD")
    with _Session(ctx, resolver, token) as session:
        table, _ = _arrow_result(session, _execute(session, query))
        keys = _partition_columns(props, table.column_names)
        written, _ = _write_files(session, table, prefix, keys)
        return StatementResult("DML", "UNLOAD", data_scanned_bytes=session.scanned, written_objects=written)


def _parse_properties(text: str) -> exp.Properties | None:
    if not text.strip():
        return None
    create = _parse(f"CREATE TABLE __fs_props WITH ({text}) AS SELECT 1")
    return create.args.get("properties")


def _run_create(tree: exp.Create, ctx: QueryContext, resolver: Resolver, token: CancelToken) -> StatementResult:
    kind = str(tree.args.get("kind") or "").upper()
    if kind in ("DATABASE", "SCHEMA"):
        return _run_create_database(tree, ctx, resolver)
    if kind != "TABLE":
        raise UnsupportedStatementError(f"CREATE {kind} statements")
    if isinstance(tree.expression, exp.Query):
        return _run_ctas(tree, ctx, resolver, token)
    return _run_create_external(tree, ctx, resolver)


def _run_create_database(tree: exp.Create, ctx: QueryContext, resolver: Resolver) -> StatementResult:
    target = tree.this
    catalog = _ident(target.args.get("catalog")) or ctx.catalog.lower()
    name = target.name.lower() if target.name else _ident(target.args.get("db"))
    if resolver.database_exists(catalog, name):
        if not tree.args.get("exists"):
            raise AthenaQueryError("ALREADY_EXISTS", f"Database {name} already exists")
    else:
        resolver.create_database(catalog, name)
    return StatementResult("DDL", "CREATE_DATABASE")


def _new_table_target(tree: exp.Create, ctx: QueryContext, resolver: Resolver) -> tuple[str, str, str] | None:
    """(catalog, database, table) to create, or None when it exists and IF NOT EXISTS was given."""
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    catalog, database, name = _table_parts(target, ctx)
    if not resolver.database_exists(catalog, database):
        raise AthenaQueryError("SCHEMA_NOT_FOUND", f"Schema '{catalog}.{database}' does not exist")
    if resolver.get_table(catalog, database, name) is not None:
        if tree.args.get("exists"):
            return None
        raise AthenaQueryError("ALREADY_EXISTS", f"Table '{catalog}.{database}.{name}' already exists")
    return catalog, database, name


def _run_ctas(tree: exp.Create, ctx: QueryContext, resolver: Resolver, token: CancelToken) -> StatementResult:
    props = _with_properties(tree.args.get("properties"))
    _check_format(props, "PARQUET")
    unknown = set(props) - {"external_location", "format", "partitioned_by", "write_compression",
                            "parquet_compression", "bucketed_by", "bucket_count"}
    if props.get("bucketed_by") or unknown:
        raise UnsupportedStatementError(f"the CTAS properties {sorted(unknown | ({'bucketed_by'} & set(props)))}")
    target = _new_table_target(tree, ctx, resolver)
    if target is None:
        return StatementResult("DDL", "CREATE_TABLE_AS_SELECT")
    catalog, database, name = target
    location = props.get("external_location") or ctx.default_table_location
    if not location:
        raise AthenaQueryError("INVALID_TABLE_PROPERTY", "CTAS needs external_location or a result location")
    prefix = _prefix(location)
    _ensure_empty(resolver, prefix, f"table '{database}.{name}'")
    with _Session(ctx, resolver, token) as session:
        table, glue_types = _arrow_result(session, _execute(session, tree.expression))
        keys = _partition_columns(props, table.column_names)
        written, partitions = _write_files(session, table, prefix, keys)
        typed = dict(zip(table.column_names, glue_types, strict=True))
        meta = TableMeta(database=database, name=name, location=prefix,
                         columns=tuple(Column(c, typed[c]) for c in table.column_names if c not in keys),
                         partition_keys=tuple(Column(k, typed[k]) for k in keys), partitions=tuple(partitions))
        resolver.create_table(catalog, meta)
        return StatementResult("DDL", "CREATE_TABLE_AS_SELECT", data_scanned_bytes=session.scanned,
                               written_objects=written)


def _column_defs(nodes: Iterable[exp.Expression]) -> tuple[Column, ...]:
    columns = []
    for node in nodes:
        if not isinstance(node, exp.ColumnDef) or node.args.get("kind") is None:
            raise AthenaQueryError("SYNTAX_ERROR", f"expected a column definition, got {node.sql()}")
        comment = next((c.this.name for c in node.constraints
                        if isinstance(c.args.get("kind"), exp.CommentColumnConstraint)), "")
        columns.append(Column(node.name.lower(), node.args["kind"].sql(dialect="hive").lower(), comment))
    return tuple(columns)


def _run_create_external(tree: exp.Create, ctx: QueryContext, resolver: Resolver) -> StatementResult:
    props = tree.args.get("properties")
    entries = props.expressions if props is not None else []
    if not any(isinstance(p, exp.ExternalProperty) for p in entries):
        raise UnsupportedStatementError("CREATE TABLE without EXTERNAL or AS SELECT (only Hive EXTERNAL tables)")
    location = fmt = None
    partition_keys: tuple[Column, ...] = ()
    for prop in entries:
        if isinstance(prop, exp.LocationProperty):
            location = _literal_value(prop.this)
        elif isinstance(prop, exp.FileFormatProperty):
            fmt = str(_literal_value(prop.this)).upper()
        elif isinstance(prop, exp.PartitionedByProperty) and isinstance(prop.this, exp.Schema):
            partition_keys = _column_defs(prop.this.expressions)
        elif isinstance(prop, exp.RowFormatSerdeProperty) and "parquet" in prop.sql().lower():
            fmt = "PARQUET"
        elif not isinstance(prop, exp.ExternalProperty | exp.Property):
            raise UnsupportedStatementError(f"the table clause {prop.sql(dialect='athena')}")
    if fmt not in ("PARQUET", "PARQUETFILE"):
        raise UnsupportedStatementError(f"CREATE EXTERNAL TABLE stored as {fmt or 'TEXTFILE'} (only PARQUET)")
    if not location:
        raise AthenaQueryError("SYNTAX_ERROR", "CREATE EXTERNAL TABLE needs LOCATION 's3://...'")
    target = _new_table_target(tree, ctx, resolver)
    if target is not None:
        catalog, database, name = target
        resolver.create_table(catalog, TableMeta(database=database, name=name, columns=_column_defs(
            tree.this.expressions), location=_prefix(location), partition_keys=partition_keys))
    return StatementResult("DDL", "CREATE_TABLE")


def _run_drop(tree: exp.Drop, ctx: QueryContext, resolver: Resolver) -> StatementResult:
    if str(tree.args.get("kind") or "").upper() != "TABLE":
        raise UnsupportedStatementError(f"DROP {tree.args.get('kind') or ''} statements".replace("  ", " "))
    for table in tree.args.get("tables") or [tree.this]:
        catalog, database, name = _table_parts(table, ctx)
        if resolver.get_table(catalog, database, name) is None:
            if tree.args.get("exists"):
                continue
            raise AthenaQueryError("TABLE_NOT_FOUND", f"Table '{catalog}.{database}.{name}' does not exist")
        resolver.drop_table(catalog, database, name)
    return StatementResult("DDL", "DROP_TABLE")


# ------------------------------------------------------------------------------------------------ utility

def _unquote(name: str) -> str:
    return name.strip("`\"").lower()


def _matches(name: str, pattern: str | None) -> bool:
    # Athena's SHOW patterns: '*' any characters, '|' alternatives.
    return pattern is None or any(fnmatch.fnmatchcase(name, p.strip().lower()) for p in pattern.split("|"))


def _run_show(match: re.Match[str], ctx: QueryContext, resolver: Resolver) -> StatementResult:
    pattern = match["pattern"]
    if match["what"].upper() == "TABLES":
        parts = [_unquote(p) for p in (match["db"] or "").split(".") if p]
        catalog, database = (parts[0], parts[1]) if len(parts) == 2 else (ctx.catalog.lower(),
                                                                         parts[0] if parts else ctx.database)
        if not resolver.database_exists(catalog, database):
            raise AthenaQueryError("SCHEMA_NOT_FOUND", f"Schema '{catalog}.{database}' does not exist")
        names = sorted(n for n in resolver.list_tables(catalog, database) if _matches(n, pattern))
        return StatementResult("UTILITY", "SHOW_TABLES", [ResultColumn("tab_name", "varchar")],
                               [(n,) for n in names])
    catalog = _unquote(match["db"]) if match["db"] else ctx.catalog.lower()
    names = sorted(n for n in resolver.list_databases(catalog) if _matches(n, pattern))
    return StatementResult("UTILITY", "SHOW_DATABASES", [ResultColumn("database_name", "varchar")],
                           [(n,) for n in names])


def _run_describe(tree: exp.Describe, ctx: QueryContext, resolver: Resolver) -> StatementResult:
    if not isinstance(tree.this, exp.Table):
        raise UnsupportedStatementError(f"DESCRIBE {tree.this.sql(dialect='athena')}")
    catalog, database, name = _table_parts(tree.this, ctx)
    meta = resolver.get_table(catalog, database, name)
    if meta is None:
        raise AthenaQueryError("TABLE_NOT_FOUND", f"Table '{catalog}.{database}.{name}' does not exist")
    rows: list[tuple[Any, ...]] = [(c.name, c.type, c.comment) for c in meta.columns]
    rows += [(k.name, k.type, k.comment) for k in meta.partition_keys]
    if meta.partition_keys:
        rows += [("", None, None), ("# Partition Information", None, None), ("# col_name", "data_type", "comment")]
        rows += [(k.name, k.type, k.comment) for k in meta.partition_keys]
    columns = [ResultColumn("col_name", "varchar"), ResultColumn("data_type", "varchar"),
               ResultColumn("comment", "varchar")]
    return StatementResult("UTILITY", "DESCRIBE_TABLE", columns, rows)

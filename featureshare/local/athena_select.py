"""SELECT in the embedded Athena: one DuckDB session per statement over the Parquet of Glue tables.

:class:`Session` owns a private DuckDB connection (``TimeZone`` UTC) and registers every Glue table a query
reads as a view over its Parquet objects, read as bytes through the :class:`~.athena_model.Resolver`;
:func:`execute` binds the tables, translates the Athena SQL to DuckDB and runs it. CTAS and UNLOAD
(:mod:`featureshare.local.athena_statements`) run their query through the same session.

Emulation limits:
- Only Parquet tables; Glue partitions are read from their registered locations (no partition projection).
- Partition pruning uses the WHERE conjuncts of the SELECT that reads the table directly (also inside CTEs
  and subqueries) that reference only partition columns; predicates are not pushed through CTEs.
- ``DataScannedInBytes`` is the size of the objects read (Athena counts the Parquet bytes actually read).
- Decoded objects are kept across queries in :data:`PARQUET_CACHE` (see :class:`ParquetCache`): the bytes
  are still fetched and checked on every read, only the Parquet decoding is saved; the result and
  ``DataScannedInBytes`` are the same with or without it.
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import hashlib
import logging
import threading
import uuid
from collections import OrderedDict
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from featureshare.local.athena_model import (
    AthenaQueryError,
    CancelToken,
    QueryCancelledError,
    QueryContext,
    Resolver,
    S3Object,
    StatementResult,
    TableMeta,
    UnsupportedStatementError,
    result_column,
    table_parts,
    to_duckdb_type,
)

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_CACHE_BYTES", "PARQUET_CACHE", "ParquetCache", "Session", "duck_error", "execute", "run_select"]

#: Memory for decoded Parquet kept across queries (Arrow buffer bytes); ~3x the Parquet size of the data.
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024


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


# ------------------------------------------------------------------------------------------------ SELECT

class Session:
    """One DuckDB connection plus the relations registered for one statement."""

    def __init__(self, context: QueryContext, resolver: Resolver, token: CancelToken,
                 cache: ParquetCache | None = None) -> None:
        self.context = context
        self.resolver = resolver
        self.token = token
        self.cache = PARQUET_CACHE if cache is None else cache
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

    def __enter__(self) -> Session:
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


# ------------------------------------------------------------------------------------------------ reading

class ParquetCache:
    """Decoded Parquet objects kept across queries, least recently used first out, within ``max_bytes``.

    An entry is keyed by the object's URI, size and a digest of its bytes plus the table columns it was
    projected to, so an overwritten object (even one of the same size) is a miss and its old entry is
    dropped on the spot; objects no longer listed under a location a query reads are dropped then.
    The bytes are still fetched through the :class:`~.athena_model.Resolver` on every read: that is where
    access is checked, and the digest is what makes a stale hit impossible. Thread-safe.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[pa.Table, int]] = OrderedDict()
        self._by_uri: dict[str, set[tuple[Any, ...]]] = {}
        self.bytes = 0
        self.hits = self.misses = self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[Any, ...]) -> pa.Table | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                self._forget(key[0], keep=key[1:3])
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: tuple[Any, ...], table: pa.Table) -> None:
        size = table.get_total_buffer_size()
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (table, size)
            self._by_uri.setdefault(key[0], set()).add(key)
            self.bytes += size
            while self.bytes > self.max_bytes:
                old, (_, old_size) = self._entries.popitem(last=False)
                self._unlink(old, old_size)
                self.evictions += 1

    def retain(self, prefix: str, uris: set[str]) -> None:
        """Drop entries of objects under ``prefix`` that are not in ``uris`` (deleted since cached)."""
        with self._lock:
            for uri in [u for u in self._by_uri if u.startswith(prefix) and u not in uris]:
                self._forget(uri)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_uri.clear()
            self.bytes = 0

    def _forget(self, uri: str, keep: tuple[Any, ...] | None = None) -> None:
        for key in list(self._by_uri.get(uri, ())):
            if keep is None or key[1:3] != keep:
                self._unlink(key, self._entries.pop(key)[1])

    def _unlink(self, key: tuple[Any, ...], size: int) -> None:
        self.bytes -= size
        keys = self._by_uri.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_uri[key[0]]


#: The cache every :class:`Session` uses unless given its own (the embedded AWS is one per process).
PARQUET_CACHE = ParquetCache()


def _list_sources(resolver: Resolver, meta: TableMeta, partitions: tuple[int, ...] | None,
                  cache: ParquetCache) -> list[tuple[S3Object, dict[str, str]]]:
    """The objects to read with their partition values. One listing of the table location serves every
    partition under it (listing per partition costs partitions x objects)."""
    if not meta.partition_keys:
        return [(o, {}) for o in _object_uris(resolver, meta.location, cache)]
    names = [k.name for k in meta.partition_keys]
    chosen = [meta.partitions[i] for i in (range(len(meta.partitions)) if partitions is None else partitions)]
    root = _as_prefix(meta.location)
    if not meta.location or not all(_as_prefix(p.location).startswith(root) for p in chosen):
        return [(o, dict(zip(names, p.values, strict=False)))
                for p in chosen for o in _object_uris(resolver, p.location, cache)]
    listed = _object_uris(resolver, meta.location, cache)
    uris = [o.uri for o in listed]
    out = []
    for part in chosen:
        prefix = _as_prefix(part.location)
        start = bisect.bisect_left(uris, prefix)
        end = start
        while end < len(uris) and uris[end].startswith(prefix):
            end += 1
        out += [(o, dict(zip(names, part.values, strict=False))) for o in listed[start:end]]
    return out


def _as_prefix(location: str) -> str:
    return location if location.endswith("/") else location + "/"


def _object_uris(resolver: Resolver, location: str, cache: ParquetCache) -> list[S3Object]:
    prefix = _as_prefix(location)
    hidden = ("_", ".")
    found = sorted((o for o in resolver.list_objects(prefix)
                    if o.size > 0 and not o.uri.rsplit("/", 1)[-1].startswith(hidden)
                    and not o.uri.endswith("$folder$")), key=lambda o: o.uri)
    cache.retain(prefix, {o.uri for o in found})
    return found


def _read_parquet(session: Session, obj: S3Object, meta: TableMeta,
                  partition_values: dict[str, str]) -> pa.Table:
    session.token.check()
    body = session.resolver.read_object(obj.uri)  # also where the caller's access to the object is checked
    session.scanned += obj.size
    shape = (tuple(c.name.lower() for c in meta.columns),
             tuple((k.name, partition_values.get(k.name)) for k in meta.partition_keys))
    key = (obj.uri, len(body), hashlib.sha1(body, usedforsecurity=False).digest(), shape)
    cached = session.cache.get(key)
    if cached is not None:
        return cached
    try:
        data = pq.ParquetFile(pa.BufferReader(body)).read(use_threads=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise AthenaQueryError("HIVE_BAD_DATA", f"Error reading {obj.uri}: not a Parquet file ({exc})") from exc
    by_lower = {name.lower(): i for i, name in enumerate(data.column_names)}
    arrays, names = [], []
    for column in meta.columns:
        index = by_lower.get(column.name.lower())
        arrays.append(data.column(index) if index is not None else pa.nulls(data.num_rows))
        names.append(column.name)
    for key_column in meta.partition_keys:
        value = pa.scalar(partition_values.get(key_column.name), pa.string())
        arrays.append(pa.repeat(value, data.num_rows))
        names.append(key_column.name)
    table = pa.table(arrays, names=names)
    session.cache.put(key, table)
    return table


def _register_table(session: Session, name: str, meta: TableMeta, partitions: tuple[int, ...] | None) -> None:
    sources = _list_sources(session.resolver, meta, partitions, session.cache)
    pieces = [_read_parquet(session, obj, meta, values) for obj, values in sources]
    all_columns = [*meta.columns, *meta.partition_keys]
    casts = ", ".join(f'CAST("{c.name}" AS {to_duckdb_type(c.type)}) AS "{c.name}"' for c in all_columns)
    if pieces:
        raw = f"{name}_raw"
        session.conn.register(raw, pa.concat_tables(pieces, promote_options="permissive").combine_chunks())
        session.conn.execute(f'CREATE TEMP VIEW "{name}" AS SELECT {casts} FROM "{raw}"')
    else:
        nulls = ", ".join(f'CAST(NULL AS {to_duckdb_type(c.type)}) AS "{c.name}"' for c in all_columns)
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


def _bind_tables(session: Session, tree: exp.Expression) -> exp.Expression:
    """Replace every Glue table reference by a uniquely named DuckDB relation (pruned when possible)."""
    tree = tree.copy()
    ctes = _cte_names(tree)
    for table in list(tree.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise UnsupportedStatementError(f"the table expression {table.sql(dialect='athena')}")
        if not table.args.get("db") and table.name.lower() in ctes:
            continue
        parts = table_parts(table, session.context)
        meta = session.meta(*parts)
        chosen = _prune(session, table, meta) if meta.partition_keys else None
        internal = session.relation(parts, chosen)
        alias = table.alias or table.name
        table.replace(exp.Table(this=exp.to_identifier(internal, quoted=True),
                                alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))))
    return tree


def execute(session: Session, tree: exp.Expression) -> duckdb.DuckDBPyRelation:
    bound = _bind_tables(session, tree)
    session.token.check()
    sql = _to_duckdb(bound)
    logger.debug("embedded Athena runs DuckDB SQL: %s", sql)
    try:
        return session.conn.sql(sql)
    except duckdb.Error as exc:
        raise duck_error(session, exc) from exc


def duck_error(session: Session, exc: duckdb.Error) -> AthenaQueryError:
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


def _fetch(session: Session, relation: duckdb.DuckDBPyRelation) -> list[tuple[Any, ...]]:
    try:
        return relation.fetchall()
    except duckdb.Error as exc:
        raise duck_error(session, exc) from exc


def run_select(tree: exp.Query, ctx: QueryContext, resolver: Resolver, token: CancelToken) -> StatementResult:
    with Session(ctx, resolver, token) as session:
        relation = execute(session, tree)
        columns = [result_column(n, t) for n, t in zip(relation.columns, relation.types, strict=True)]
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


def _prune(session: Session, table: exp.Table, meta: TableMeta) -> tuple[int, ...] | None:
    """Indices of the partitions the WHERE/ON clauses can match (``None``: read all)."""
    usable = _pruning_conjuncts(table, {k.name.lower() for k in meta.partition_keys})
    if not usable:
        return None
    values = {k.name: pa.array([p.values[i] if i < len(p.values) else None for p in meta.partitions], pa.string())
              for i, k in enumerate(meta.partition_keys)}
    values["__fs_index"] = pa.array(range(len(meta.partitions)), pa.int64())
    raw = session.internal_name()
    session.conn.register(raw, pa.table(values))
    casts = ", ".join(f'CAST("{k.name}" AS {to_duckdb_type(k.type)}) AS "{k.name}"' for k in meta.partition_keys)
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

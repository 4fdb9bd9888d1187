"""The statements of the embedded Athena besides SELECT: CTAS, UNLOAD, DDL, SHOW and DESCRIBE.

CTAS (``WITH (external_location, format='PARQUET', partitioned_by=ARRAY[...])``) and ``UNLOAD (...) TO ...
WITH (format='PARQUET')`` run their query through :mod:`featureshare.local.athena_select` and write
Parquet through the :class:`~.athena_model.Resolver`; ``CREATE EXTERNAL TABLE ... STORED AS PARQUET
LOCATION``, ``DROP TABLE``, ``CREATE DATABASE|SCHEMA``, ``SHOW TABLES|DATABASES|SCHEMAS`` and ``DESCRIBE``
change or read the Glue catalog only. :func:`featureshare.local.athena_engine.run_statement` dispatches here.

Emulation limits: CTAS and UNLOAD refuse ``timestamp with time zone`` columns as Athena's Hive writer does
(``CAST(... AS timestamp)`` first), refuse a non-empty target, write extension-less snappy Parquet files only,
and stop at 100 partitions as Athena does; bucketing is not emulated.
"""

from __future__ import annotations

import fnmatch
import io
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

from featureshare.local.athena_model import (
    AthenaQueryError,
    CancelToken,
    Column,
    Partition,
    QueryContext,
    Resolver,
    ResultColumn,
    StatementResult,
    TableMeta,
    UnsupportedStatementError,
    athena_text,
    identifier,
    parse_sql,
    table_parts,
    to_glue_type,
)
from featureshare.local.athena_select import Session, duck_error, execute

__all__ = ["run_create", "run_describe", "run_drop", "run_show", "run_unload"]

_MAX_CTAS_PARTITIONS = 100
_HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


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


def _arrow_result(session: Session, relation: duckdb.DuckDBPyRelation) -> tuple[pa.Table, list[str]]:
    """The result as Arrow with Hive-compatible types, and the Glue type of every column."""
    names = [n.lower() for n in relation.columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AthenaQueryError("HIVE_INVALID_METADATA", f"Duplicate column names: {', '.join(duplicates)} "
                                                        "(give every output column a distinct alias)")
    glue_types = [to_glue_type(t) for t in relation.types]
    try:
        table = relation.to_arrow_table()
    except duckdb.Error as exc:
        raise duck_error(session, exc) from exc
    for i, (name, duck_type) in enumerate(zip(relation.columns, relation.types, strict=True)):
        if str(duck_type.id).lower() == "hugeint":  # sum(bigint) is bigint in Trino, int128 in DuckDB
            table = table.set_column(i, name, pc.cast(table.column(i), pa.int64()))
    return table.rename_columns(names), glue_types


def _write_files(session: Session, table: pa.Table, prefix: str, partitioned_by: Sequence[str]) -> tuple[
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


def _put_parquet(session: Session, uri: str, table: pa.Table) -> None:
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


def run_unload(match: re.Match[str], ctx: QueryContext, resolver: Resolver, token: CancelToken) -> StatementResult:
    query = parse_sql(match["query"])
    if not isinstance(query, exp.Query):
        raise AthenaQueryError("SYNTAX_ERROR", "UNLOAD needs a SELECT statement")
    props = _with_properties(_parse_properties(match["props"] or ""))
    _check_format(props, "TEXTFILE")
    prefix = _prefix(match["target"].replace("''", "'"))
    _ensure_empty(resolver, prefix, "UNLOAD")
    with Session(ctx, resolver, token) as session:
        table, _ = _arrow_result(session, execute(session, query))
        keys = _partition_columns(props, table.column_names)
        written, _ = _write_files(session, table, prefix, keys)
        return StatementResult("DML", "UNLOAD", data_scanned_bytes=session.scanned, written_objects=written)


def _parse_properties(text: str) -> exp.Properties | None:
    if not text.strip():
        return None
    create = parse_sql(f"CREATE TABLE __fs_props WITH ({text}) AS SELECT 1")
    return create.args.get("properties")


def run_create(tree: exp.Create, ctx: QueryContext, resolver: Resolver, token: CancelToken) -> StatementResult:
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
    catalog = identifier(target.args.get("catalog")) or ctx.catalog.lower()
    name = target.name.lower() if target.name else identifier(target.args.get("db"))
    if resolver.database_exists(catalog, name):
        if not tree.args.get("exists"):
            raise AthenaQueryError("ALREADY_EXISTS", f"Database {name} already exists")
    else:
        resolver.create_database(catalog, name)
    return StatementResult("DDL", "CREATE_DATABASE")


def _new_table_target(tree: exp.Create, ctx: QueryContext, resolver: Resolver) -> tuple[str, str, str] | None:
    """(catalog, database, table) to create, or None when it exists and IF NOT EXISTS was given."""
    target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    catalog, database, name = table_parts(target, ctx)
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
    with Session(ctx, resolver, token) as session:
        table, glue_types = _arrow_result(session, execute(session, tree.expression))
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


def run_drop(tree: exp.Drop, ctx: QueryContext, resolver: Resolver) -> StatementResult:
    if str(tree.args.get("kind") or "").upper() != "TABLE":
        raise UnsupportedStatementError(f"DROP {tree.args.get('kind') or ''} statements".replace("  ", " "))
    for table in tree.args.get("tables") or [tree.this]:
        catalog, database, name = table_parts(table, ctx)
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


def run_show(match: re.Match[str], ctx: QueryContext, resolver: Resolver) -> StatementResult:
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


def run_describe(tree: exp.Describe, ctx: QueryContext, resolver: Resolver) -> StatementResult:
    if not isinstance(tree.this, exp.Table):
        raise UnsupportedStatementError(f"DESCRIBE {tree.this.sql(dialect='athena')}")
    catalog, database, name = table_parts(tree.this, ctx)
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

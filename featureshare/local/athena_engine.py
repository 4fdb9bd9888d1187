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

This module is the entry point; the work is split by concept:
:mod:`~featureshare.local.athena_model` (data model, errors, types, parsing: import those names from there),
:mod:`~featureshare.local.athena_select` (DuckDB session, SELECT, partition pruning) and
:mod:`~featureshare.local.athena_statements` (CTAS, UNLOAD, DDL, SHOW, DESCRIBE).

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

import re
from collections.abc import Sequence

from sqlglot import exp

from featureshare.local.athena_model import (
    AthenaQueryError,
    CancelToken,
    QueryContext,
    Resolver,
    StatementResult,
    UnsupportedStatementError,
    parse_sql,
)
from featureshare.local.athena_select import run_select
from featureshare.local.athena_statements import run_create, run_describe, run_drop, run_show, run_unload

__all__ = ["bind_parameters", "classify_statement", "run_statement"]


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
    tree = parse_sql(sql)
    placeholders = [p for p in tree.find_all(exp.Placeholder) if not p.args.get("this")]
    if len(placeholders) != len(values):
        raise AthenaQueryError("INVALID_PARAMETER_USAGE", f"Incorrect number of parameters: expected "
                                                          f"{len(placeholders)} but found {len(values)}")
    for placeholder, value in zip(placeholders, values, strict=True):
        placeholder.replace(parse_sql(f"SELECT {value}").expressions[0])
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
        return run_unload(unload, context, resolver, token)
    if re.match(r"\s*UNLOAD\b", sql, re.IGNORECASE):
        raise AthenaQueryError("SYNTAX_ERROR", "expected UNLOAD (<select>) TO 's3://...' WITH (format = ...)")
    show = _SHOW.match(sql)
    if show:
        return run_show(show, context, resolver)
    tree = parse_sql(sql)
    if isinstance(tree, exp.Query):
        return run_select(tree, context, resolver, token)
    if isinstance(tree, exp.Create):
        return run_create(tree, context, resolver, token)
    if isinstance(tree, exp.Drop):
        return run_drop(tree, context, resolver)
    if isinstance(tree, exp.Describe):
        return run_describe(tree, context, resolver)
    raise UnsupportedStatementError(f"{_construct_name(tree)} statements")


def _construct_name(tree: exp.Expression) -> str:
    if isinstance(tree, exp.Command):
        rest = tree.expression.name.split() if tree.expression is not None else []
        return " ".join([str(tree.this).upper(), *(w.upper() for w in rest[:1])])
    if isinstance(tree, exp.Create):
        return f"CREATE {tree.args.get('kind') or ''}".strip()
    return tree.key.upper()

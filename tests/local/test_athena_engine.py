"""The embedded Athena's SQL engine, over an in-memory Glue + S3 (no moto)."""

from __future__ import annotations

import io
import threading
import time as time_module
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featureshare.local.athena_engine import classify_statement, run_statement
from featureshare.local.athena_model import (
    AthenaQueryError,
    CancelToken,
    Column,
    Partition,
    QueryCancelledError,
    QueryContext,
    S3Object,
    TableMeta,
    UnsupportedStatementError,
    athena_text,
)

CONSUMER, CENTRAL = "222222222222", "111111111111"
FS_DB = "sagemaker_featurestore"


class MemoryResolver:
    """Glue catalogs and S3 objects in dicts; ``catalogs`` maps a catalog name to its tables."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.catalogs: dict[str, dict[str, dict[str, TableMeta]]] = {"awsdatacatalog": {}, "central": {}}
        self.reads: list[str] = []

    def _catalog(self, catalog: str) -> dict[str, dict[str, TableMeta]]:
        if catalog not in self.catalogs:
            raise AthenaQueryError("CATALOG_NOT_FOUND", f"Catalog '{catalog}' does not exist")
        return self.catalogs[catalog]

    def get_table(self, catalog: str, database: str, table: str) -> TableMeta | None:
        return self._catalog(catalog).get(database, {}).get(table)

    def database_exists(self, catalog: str, database: str) -> bool:
        return database in self._catalog(catalog)

    def list_databases(self, catalog: str) -> list[str]:
        return list(self._catalog(catalog))

    def list_tables(self, catalog: str, database: str) -> list[str]:
        return list(self._catalog(catalog).get(database, {}))

    def list_objects(self, location: str) -> list[S3Object]:
        return [S3Object(uri, len(body)) for uri, body in sorted(self.objects.items()) if uri.startswith(location)]

    def read_object(self, uri: str) -> bytes:
        self.reads.append(uri)
        return self.objects[uri]

    def write_object(self, uri: str, body: bytes) -> None:
        self.objects[uri] = body

    def create_database(self, catalog: str, database: str) -> None:
        self._catalog(catalog)[database] = {}

    def create_table(self, catalog: str, table: TableMeta) -> None:
        self._catalog(catalog)[table.database][table.name] = table

    def drop_table(self, catalog: str, database: str, table: str) -> None:
        del self._catalog(catalog)[database][table]

    # ---- test helpers
    def add_table(self, catalog: str, database: str, name: str, frame: pd.DataFrame, types: dict[str, str],
                  partition_by: list[str] | None = None) -> TableMeta:
        location = f"s3://bucket-{catalog}/{database}/{name}/"
        keys = partition_by or []
        partitions = []
        groups = frame.groupby(keys, sort=True) if keys else [((), frame)]
        for values, part in groups:
            values = tuple(str(v) for v in (values if isinstance(values, tuple) else (values,)))
            folder = location + "".join(f"{k}={v}/" for k, v in zip(keys, values, strict=True))
            body = io.BytesIO()
            pq.write_table(pa.Table.from_pandas(part.drop(columns=keys), preserve_index=False), body)
            self.objects[f"{folder}part-0.parquet"] = body.getvalue()
            partitions.append(Partition(values, folder))
        meta = TableMeta(database=database, name=name, location=location,
                         columns=tuple(Column(c, types[c]) for c in frame.columns if c not in keys),
                         partition_keys=tuple(Column(k, "string") for k in keys),
                         partitions=tuple(partitions) if keys else ())
        self.catalogs[catalog].setdefault(database, {})[name] = meta
        return meta


@pytest.fixture
def resolver() -> MemoryResolver:
    return MemoryResolver()


@pytest.fixture
def ctx() -> QueryContext:
    return QueryContext(account_id=CONSUMER, region="us-east-1", database=FS_DB, query_id="q-1")


def run(sql: str, ctx: QueryContext, resolver: MemoryResolver) -> pd.DataFrame:
    result = run_statement(sql, ctx, resolver)
    return pd.DataFrame(result.rows, columns=[c.name for c in result.columns])


def hourly_features(hours: int = 6) -> pd.DataFrame:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    rows = []
    for h in range(hours):
        for key in ("a", "b"):
            event = start + timedelta(hours=h)
            rows.append({"customer_id": key, "spend": float(h), "event_time": event.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "year": f"{event:%Y}", "month": f"{event:%m}", "day": f"{event:%d}", "hour": f"{event:%H}"})
    return pd.DataFrame(rows)


FEATURE_TYPES = {"customer_id": "string", "spend": "double", "event_time": "string"}


def test_select_reads_parquet_of_a_partitioned_glue_table_with_partition_columns(resolver, ctx):
    resolver.add_table("awsdatacatalog", FS_DB, "sessions", hourly_features(3), FEATURE_TYPES,
                       ["year", "month", "day", "hour"])
    out = run("SELECT customer_id, spend, hour FROM sessions ORDER BY hour, customer_id", ctx, resolver)
    assert out.to_dict("list") == {"customer_id": ["a", "b"] * 3, "spend": [0.0, 0.0, 1.0, 1.0, 2.0, 2.0],
                                   "hour": ["00", "00", "01", "01", "02", "02"]}


def test_three_part_names_join_tables_across_two_catalogs(resolver, ctx):
    resolver.add_table("central", FS_DB, "t1", pd.DataFrame({"id": ["a", "b"], "x": [1, 2]}),
                       {"id": "string", "x": "bigint"})
    resolver.add_table("awsdatacatalog", FS_DB, "t1", pd.DataFrame({"id": ["a", "b"], "x": [10, 20]}),
                       {"id": "string", "x": "bigint"})
    result = run_statement('SELECT c.id, c.x AS central_x, l.x AS local_x FROM "central"."sagemaker_featurestore"'
                           '."t1" c JOIN "awsdatacatalog"."sagemaker_featurestore"."t1" l ON c.id = l.id '
                           'ORDER BY c.id', ctx, resolver)
    assert result.rows == [("a", 1, 10), ("b", 2, 20)]
    assert [(c.name, c.type) for c in result.columns] == [("id", "varchar"), ("central_x", "bigint"),
                                                          ("local_x", "bigint")]


def test_unqualified_three_part_table_name_qualifies_columns_by_table_name(resolver, ctx):
    resolver.add_table("central", "other", "t2", pd.DataFrame({"id": ["a"]}), {"id": "string"})
    assert run_statement("SELECT t2.id FROM central.other.t2", ctx, resolver).rows == [("a",)]


def test_two_part_names_use_the_default_catalog_and_one_part_names_the_default_database(resolver, ctx):
    resolver.add_table("awsdatacatalog", "db2", "t", pd.DataFrame({"v": [1]}), {"v": "bigint"})
    resolver.add_table("central", "db2", "t", pd.DataFrame({"v": [2]}), {"v": "bigint"})
    assert run_statement("SELECT v FROM db2.t", ctx, resolver).rows == [(1,)]
    central = replace(ctx, catalog="central", database="db2")
    assert run_statement("SELECT v FROM t", central, resolver).rows == [(2,)]


def test_unknown_catalog_missing_schema_and_missing_table_fail_with_athena_error_types(resolver, ctx):
    with pytest.raises(AthenaQueryError, match=r"CATALOG_NOT_FOUND: Catalog 'nope'"):
        run_statement("SELECT * FROM nope.db.t", ctx, resolver)
    with pytest.raises(AthenaQueryError, match=r"SCHEMA_NOT_FOUND: Schema 'awsdatacatalog.nodb'"):
        run_statement("SELECT * FROM nodb.t", ctx, resolver)
    resolver.create_database("awsdatacatalog", "db")
    with pytest.raises(AthenaQueryError, match=r"TABLE_NOT_FOUND: Table 'awsdatacatalog.db.missing'"):
        run_statement("SELECT * FROM db.missing", ctx, resolver)


def test_ctes_union_all_and_row_number_window_pick_the_latest_version_per_key(resolver, ctx):
    frame = pd.DataFrame({"id": ["a", "a", "b", "b", "c"], "v": [1, 2, 3, 4, 5], "ts": [1, 3, 2, 1, 7]})
    resolver.add_table("awsdatacatalog", FS_DB, "h", frame, {"id": "string", "v": "bigint", "ts": "bigint"})
    sql = """
        WITH everything AS (SELECT id, v, ts FROM h UNION ALL SELECT 'z' AS id, 0 AS v, 0 AS ts),
             ranked AS (SELECT id, v, ROW_NUMBER() OVER (PARTITION BY id ORDER BY ts DESC) AS rn FROM everything)
        SELECT id, v FROM ranked WHERE rn = 1 ORDER BY id"""
    expected = (pd.concat([frame, pd.DataFrame({"id": ["z"], "v": [0], "ts": [0]})])
                .sort_values("ts").groupby("id").tail(1).sort_values("id")[["id", "v"]])
    assert run(sql, ctx, resolver).values.tolist() == expected.values.tolist()


def test_last_value_ignore_nulls_carries_the_last_non_null_value_forward(resolver, ctx):
    frame = pd.DataFrame({"k": ["a"] * 4, "t": [1, 2, 3, 4], "x": [1.0, None, 3.0, None]})
    resolver.add_table("awsdatacatalog", FS_DB, "w", frame, {"k": "string", "t": "bigint", "x": "double"})
    out = run("SELECT t, LAST_VALUE(x) IGNORE NULLS OVER (PARTITION BY k ORDER BY t ROWS BETWEEN UNBOUNDED "
              "PRECEDING AND CURRENT ROW) AS x, MAX(x) IGNORE NULLS OVER (PARTITION BY k) AS m FROM w ORDER BY t",
              ctx, resolver)
    assert out["x"].tolist() == frame["x"].ffill().tolist()
    assert set(out["m"]) == {frame["x"].max()}


def test_trino_date_functions_and_casts_follow_trino_semantics(resolver, ctx):
    result = run_statement("""
        SELECT from_iso8601_timestamp('2024-03-01T10:00:00.250Z') AS iso,
               from_unixtime(1709287200) AS unix,
               to_unixtime(TIMESTAMP '2024-03-01 10:00:00') AS epoch,
               date_diff('day', TIMESTAMP '2024-03-01 23:00:00', TIMESTAMP '2024-03-02 01:00:00') AS partial_day,
               date_diff('hour', TIMESTAMP '2024-03-01 00:00:00', TIMESTAMP '2024-03-02 01:00:00') AS hours,
               date_add('day', -1, TIMESTAMP '2024-03-01 00:00:00') AS yesterday,
               TIMESTAMP '2024-03-01 00:00:00' + INTERVAL '90' MINUTE AS later,
               CAST('42' AS BIGINT) AS big, CAST(1.5 AS VARCHAR) AS text, CAST(2 AS DOUBLE) AS dbl,
               CAST('2024-03-01 10:00:00' AS TIMESTAMP) AS ts, coalesce(NULL, 'x') AS filled,
               CASE WHEN 1 > 2 THEN 'no' ELSE 'yes' END AS branch""", ctx, resolver)
    values = dict(zip([c.name for c in result.columns], result.rows[0], strict=True))
    types = {c.name: c.type for c in result.columns}
    ten = datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert values["iso"] == ten + timedelta(milliseconds=250)
    assert types["iso"] == types["unix"] == "timestamp with time zone"
    assert values["unix"] == ten
    assert values["epoch"] == ten.timestamp() and types["epoch"] == "double"
    assert (values["partial_day"], values["hours"]) == (0, 25)  # Trino counts whole units elapsed
    assert values["yesterday"] == datetime(2024, 2, 29)
    assert values["later"] == datetime(2024, 3, 1, 1, 30) and types["later"] == "timestamp"
    assert (values["big"], types["big"]) == (42, "bigint")
    assert (values["text"], types["text"]) == ("1.5", "varchar")
    assert (values["dbl"], types["dbl"]) == (2.0, "double")
    assert values["ts"] == datetime(2024, 3, 1, 10)
    assert (values["filled"], values["branch"]) == ("x", "yes")


def test_timestamps_compare_in_utc_whatever_the_machine_time_zone(resolver, ctx, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time_module.tzset()
    try:
        result = run_statement("""
            SELECT from_iso8601_timestamp('2024-03-01T10:00:00Z') = TIMESTAMP '2024-03-01 10:00:00' AS same,
                   from_iso8601_timestamp('2024-03-01T10:00:00Z') < TIMESTAMP '2024-03-01 10:00:01' AS before,
                   CAST(from_iso8601_timestamp('2024-03-01T12:00:00+02:00') AS TIMESTAMP) AS as_utc""",
                               ctx, resolver)
    finally:
        monkeypatch.delenv("TZ")
        time_module.tzset()
    assert result.rows == [(True, True, datetime(2024, 3, 1, 10))]


def test_current_timestamp_is_now_as_timestamp_with_time_zone(resolver, ctx):
    before = datetime.now(UTC)
    result = run_statement("SELECT current_timestamp AS now", ctx, resolver)
    assert result.columns[0].type == "timestamp with time zone"
    assert before - timedelta(seconds=1) <= result.rows[0][0] <= datetime.now(UTC) + timedelta(seconds=1)


def test_sum_of_bigint_is_reported_as_bigint_like_trino(resolver, ctx):
    resolver.add_table("awsdatacatalog", FS_DB, "n", pd.DataFrame({"v": [1, 2]}), {"v": "bigint"})
    result = run_statement("SELECT sum(v) AS s, count(*) AS c FROM n", ctx, resolver)
    assert [(c.type, v) for c, v in zip(result.columns, result.rows[0], strict=True)] == [("bigint", 3),
                                                                                        ("bigint", 2)]


def _bytes_under(resolver: MemoryResolver, *folders: str) -> int:
    return sum(len(b) for uri, b in resolver.objects.items() if uri.startswith(folders))


def test_partition_predicates_prune_reads_and_lower_bytes_scanned(resolver, ctx):
    meta = resolver.add_table("awsdatacatalog", FS_DB, "sessions", hourly_features(6), FEATURE_TYPES,
                              ["year", "month", "day", "hour"])
    full = run_statement("SELECT count(*) FROM sessions", ctx, resolver)
    pruned = run_statement("SELECT count(*) FROM sessions WHERE hour >= '04' AND year = '2024' AND spend >= 0",
                           ctx, resolver)
    assert full.rows == [(12,)] and pruned.rows == [(4,)]
    assert full.data_scanned_bytes == _bytes_under(resolver, meta.location)
    kept = [p.location for p in meta.partitions if p.values[3] >= "04"]
    assert pruned.data_scanned_bytes == _bytes_under(resolver, *kept) < full.data_scanned_bytes


def test_partition_predicates_inside_a_cte_prune_the_feature_table(resolver, ctx):
    meta = resolver.add_table("central", FS_DB, "sessions", hourly_features(6), FEATURE_TYPES,
                              ["year", "month", "day", "hour"])
    result = run_statement("""
        WITH f AS (SELECT customer_id, spend FROM "central"."sagemaker_featurestore"."sessions" s
                   WHERE s.year = '2024' AND s.month = '03' AND (s.hour < '02' OR s.hour = '05'))
        SELECT e.id, f.spend FROM (VALUES ('a')) AS e(id) LEFT JOIN f ON f.customer_id = e.id ORDER BY spend""",
                           ctx, resolver)
    assert [r[1] for r in result.rows] == [0.0, 1.0, 5.0]
    kept = [p.location for p in meta.partitions if p.values[3] in ("00", "01", "05")]
    assert result.data_scanned_bytes == _bytes_under(resolver, *kept)


def test_left_joined_table_is_not_pruned_by_a_null_accepting_predicate(resolver, ctx):
    resolver.add_table("awsdatacatalog", FS_DB, "sessions", hourly_features(2), FEATURE_TYPES,
                       ["year", "month", "day", "hour"])
    sql = ("SELECT e.id, s.hour FROM (VALUES ('a'), ('q')) AS e(id) LEFT JOIN sessions s ON s.customer_id = e.id "
           "WHERE s.hour IS NULL OR s.hour = '01' ORDER BY e.id")
    assert run_statement(sql, ctx, resolver).rows == [("a", "01"), ("q", None)]


def test_ctas_writes_partitioned_parquet_and_registers_a_queryable_table(resolver, ctx):
    resolver.add_table("awsdatacatalog", FS_DB, "sessions", hourly_features(3), FEATURE_TYPES,
                       ["year", "month", "day", "hour"])
    result = run_statement("""CREATE TABLE sagemaker_featurestore.snap
        WITH (external_location = 's3://out/snap', format = 'PARQUET', partitioned_by = ARRAY['hour'])
        AS SELECT customer_id, spend, CAST(from_iso8601_timestamp(event_time) AS TIMESTAMP) AS ts, hour
        FROM sessions""", ctx, resolver)
    assert (result.statement_type, result.substatement_type) == ("DDL", "CREATE_TABLE_AS_SELECT")
    assert all(uri.startswith("s3://out/snap/hour=") for uri in result.written_objects)
    meta = resolver.get_table("awsdatacatalog", FS_DB, "snap")
    assert [(c.name, c.type) for c in meta.columns] == [("customer_id", "string"), ("spend", "double"),
                                                        ("ts", "timestamp")]
    assert [p.values for p in meta.partitions] == [("00",), ("01",), ("02",)]
    back = run("SELECT customer_id, spend, ts, hour FROM snap ORDER BY hour, customer_id", ctx, resolver)
    original = run("SELECT customer_id, spend, CAST(from_iso8601_timestamp(event_time) AS TIMESTAMP) AS ts, hour "
                   "FROM sessions ORDER BY hour, customer_id", ctx, resolver)
    pd.testing.assert_frame_equal(back, original)


def test_ctas_refuses_an_existing_table_a_non_empty_location_and_timestamp_with_time_zone(resolver, ctx):
    resolver.add_table("awsdatacatalog", FS_DB, "t", pd.DataFrame({"v": [1]}), {"v": "bigint"})
    with pytest.raises(AthenaQueryError, match=r"ALREADY_EXISTS: Table 'awsdatacatalog.sagemaker_featurestore.t'"):
        run_statement("CREATE TABLE t WITH (external_location='s3://o/x/') AS SELECT 1 AS v", ctx, resolver)
    run_statement("CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS v", ctx, resolver)  # no-op, no error
    resolver.objects["s3://o/busy/old"] = b"x"
    with pytest.raises(AthenaQueryError, match="HIVE_PATH_ALREADY_EXISTS"):
        run_statement("CREATE TABLE t2 WITH (external_location='s3://o/busy/') AS SELECT 1 AS v", ctx, resolver)
    with pytest.raises(AthenaQueryError, match=r"timestamp.3. with time zone"):
        run_statement("CREATE TABLE t3 WITH (external_location='s3://o/t3/') AS SELECT current_timestamp AS n",
                      ctx, resolver)
    assert resolver.get_table("awsdatacatalog", FS_DB, "t3") is None


def test_ctas_without_external_location_writes_under_the_result_location(resolver, ctx):
    ctx = replace(ctx, default_table_location="s3://results/tables/q-1/")
    resolver.create_database("awsdatacatalog", FS_DB)
    run_statement("CREATE TABLE made AS SELECT 1 AS v", ctx, resolver)
    assert resolver.get_table("awsdatacatalog", FS_DB, "made").location == "s3://results/tables/q-1/"
    assert run_statement("SELECT v FROM made", ctx, resolver).rows == [(1,)]


def test_unload_writes_parquet_under_the_prefix_and_refuses_a_non_empty_target(resolver, ctx):
    resolver.add_table("awsdatacatalog", FS_DB, "n", pd.DataFrame({"v": [1, 2, 3]}), {"v": "bigint"})
    result = run_statement("UNLOAD (SELECT v, v * 2 AS w FROM n WHERE v > 1) TO 's3://out/unl/' "
                           "WITH (format = 'PARQUET')", ctx, resolver)
    assert result.substatement_type == "UNLOAD" and result.data_scanned_bytes > 0
    tables = [pq.read_table(pa.BufferReader(resolver.objects[uri])) for uri in result.written_objects]
    assert pa.concat_tables(tables).to_pydict() == {"v": [2, 3], "w": [4, 6]}
    with pytest.raises(AthenaQueryError, match=r"HIVE_PATH_ALREADY_EXISTS.*s3://out/unl/"):
        run_statement("UNLOAD (SELECT 1 AS v) TO 's3://out/unl/' WITH (format = 'PARQUET')", ctx, resolver)
    with pytest.raises(UnsupportedStatementError, match="format='JSON'"):
        run_statement("UNLOAD (SELECT 1 AS v) TO 's3://out/j/' WITH (format = 'JSON')", ctx, resolver)


def test_create_external_table_then_select_and_drop_it(resolver, ctx):
    body = io.BytesIO()
    pq.write_table(pa.table({"id": ["a"], "score": [0.5]}), body)
    resolver.objects["s3://ext/data/dt=2024-01-01/f.parquet"] = body.getvalue()
    resolver.create_database("awsdatacatalog", FS_DB)
    run_statement("CREATE EXTERNAL TABLE IF NOT EXISTS sagemaker_featurestore.ext (id string, score double) "
                  "PARTITIONED BY (dt string) STORED AS PARQUET LOCATION 's3://ext/data/'", ctx, resolver)
    meta = resolver.get_table("awsdatacatalog", FS_DB, "ext")
    assert [c.name for c in meta.partition_keys] == ["dt"]
    assert run_statement("SELECT count(*) FROM ext", ctx, resolver).rows == [(0,)]  # no partitions registered
    resolver.create_table("awsdatacatalog", replace(meta, partitions=(Partition(("2024-01-01",),
                                                                                "s3://ext/data/dt=2024-01-01/"),)))
    assert run_statement("SELECT id, score, dt FROM ext", ctx, resolver).rows == [("a", 0.5, "2024-01-01")]
    run_statement("DROP TABLE ext", ctx, resolver)
    assert resolver.get_table("awsdatacatalog", FS_DB, "ext") is None
    assert "s3://ext/data/dt=2024-01-01/f.parquet" in resolver.objects  # external data survives
    run_statement("DROP TABLE IF EXISTS ext", ctx, resolver)
    with pytest.raises(AthenaQueryError, match="TABLE_NOT_FOUND"):
        run_statement("DROP TABLE ext", ctx, resolver)


def test_create_external_table_that_is_not_parquet_is_unsupported(resolver, ctx):
    with pytest.raises(UnsupportedStatementError, match="stored as TEXTFILE"):
        run_statement("CREATE EXTERNAL TABLE sagemaker_featurestore.c (a bigint) LOCATION 's3://x/'", ctx, resolver)


def test_create_database_show_databases_show_tables_and_describe(resolver, ctx):
    run_statement("CREATE DATABASE IF NOT EXISTS scratch", ctx, resolver)
    run_statement("CREATE SCHEMA IF NOT EXISTS scratch", ctx, resolver)
    with pytest.raises(AthenaQueryError, match="ALREADY_EXISTS: Database scratch"):
        run_statement("CREATE DATABASE scratch", ctx, resolver)
    resolver.add_table("awsdatacatalog", "scratch", "tab_one", pd.DataFrame({"v": [1]}), {"v": "bigint"})
    resolver.add_table("awsdatacatalog", "scratch", "other", pd.DataFrame({"v": [1]}), {"v": "bigint"})
    databases = run_statement("SHOW DATABASES", ctx, resolver)
    assert ("scratch",) in databases.rows and databases.statement_type == "UTILITY"
    assert run_statement("SHOW TABLES IN scratch", ctx, resolver).rows == [("other",), ("tab_one",)]
    assert run_statement("SHOW TABLES IN scratch 'tab*'", ctx, resolver).rows == [("tab_one",)]
    features = hourly_features(1).drop(columns=["month", "day"])
    resolver.add_table("awsdatacatalog", FS_DB, "sessions", features, FEATURE_TYPES, ["year", "hour"])
    described = run_statement("DESCRIBE sessions", ctx, resolver)
    assert described.rows[:5] == [("customer_id", "string", ""), ("spend", "double", ""),
                                  ("event_time", "string", ""), ("year", "string", ""), ("hour", "string", "")]


@pytest.mark.parametrize(("sql", "construct"), [
    ("INSERT INTO t VALUES (1)", "INSERT"),
    ("MSCK REPAIR TABLE t", "MSCK REPAIR"),
    ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
    ("ALTER TABLE t ADD COLUMNS (c int)", "ALTER"),
    ("CREATE TABLE plain (a bigint)", "CREATE TABLE without EXTERNAL"),
    ("SHOW PARTITIONS t", "SHOW PARTITIONS"),
])
def test_unsupported_statements_fail_naming_the_construct(resolver, ctx, sql, construct):
    with pytest.raises(UnsupportedStatementError, match=f"NOT_SUPPORTED: .*{construct}"):
        run_statement(sql, ctx, resolver)


def test_syntax_error_reports_line_and_column(resolver, ctx):
    with pytest.raises(AthenaQueryError, match=r"SYNTAX_ERROR: line 2:\d+"):
        run_statement("SELECT 1\nFROM WHERE", ctx, resolver)
    with pytest.raises(AthenaQueryError, match="SYNTAX_ERROR: expected UNLOAD"):
        run_statement("UNLOAD SELECT 1 TO 's3://x/'", ctx, resolver)


def test_unknown_function_fails_with_function_not_found(resolver, ctx):
    with pytest.raises(AthenaQueryError, match=r"FUNCTION_NOT_FOUND.*no_such_fn"):
        run_statement("SELECT no_such_fn(1)", ctx, resolver)


def test_unknown_column_error_names_the_table_not_the_internal_relation(resolver, ctx):
    resolver.add_table("awsdatacatalog", FS_DB, "n", pd.DataFrame({"v": [1]}), {"v": "bigint"})
    with pytest.raises(AthenaQueryError, match="COLUMN_NOT_FOUND") as caught:
        run_statement("SELECT nope FROM n", ctx, resolver)
    assert "__fs_rel" not in str(caught.value)


def test_cancel_token_stops_a_running_query(resolver, ctx):
    token = CancelToken()
    errors: list[Exception] = []

    def work() -> None:
        try:
            run_statement("WITH a AS (SELECT x FROM UNNEST(sequence(1, 3000)) AS t(x)) SELECT count(*) "
                          "FROM a a1, a a2, a a3 WHERE a1.x * a2.x * a3.x = -1", ctx, resolver, token)
        except Exception as exc:
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    time_module.sleep(0.3)
    token.cancel()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], QueryCancelledError)


def test_athena_text_renders_values_as_athena_prints_them():
    assert [athena_text(v) for v in (None, True, 3, 1.0, 0.1, 1e7, 1.5e-5, -2.5e20, float("nan"))] == [
        None, "true", "3", "1.0", "0.1", "1.0E7", "1.5E-5", "-2.5E20", "NaN"]
    assert athena_text(datetime(2024, 3, 1, 10, 0, 0, 250_000)) == "2024-03-01 10:00:00.250"
    assert athena_text(datetime(2024, 3, 1, 10, tzinfo=UTC)) == "2024-03-01 10:00:00.000 UTC"


@pytest.mark.parametrize(("sql", "kind"), [
    ("  -- note\n select 1", ("DML", "SELECT")), ("WITH a AS (SELECT 1) SELECT * FROM a", ("DML", "SELECT")),
    ("UNLOAD (SELECT 1) TO 's3://x/'", ("DML", "UNLOAD")),
    ("CREATE TABLE t WITH (format='PARQUET') AS SELECT 1", ("DDL", "CREATE_TABLE_AS_SELECT")),
    ("SHOW TABLES", ("UTILITY", "SHOW_TABLES")), ("DROP TABLE t", ("DDL", "DROP_TABLE")),
])
def test_classify_statement_gives_athena_statement_types(sql, kind):
    assert classify_statement(sql) == kind



def test_partition_predicates_in_a_left_join_on_clause_prune_the_joined_table(resolver, ctx):
    meta = resolver.add_table("awsdatacatalog", FS_DB, "sessions", hourly_features(4), FEATURE_TYPES,
                              ["year", "month", "day", "hour"])
    result = run_statement("SELECT e.id, s.spend FROM (VALUES ('a'), ('q')) AS e(id) LEFT JOIN sessions s "
                           "ON s.customer_id = e.id AND s.hour = '03' ORDER BY e.id", ctx, resolver)
    assert result.rows == [("a", 3.0), ("q", None)]
    assert result.data_scanned_bytes == _bytes_under(resolver, meta.partitions[3].location)


def test_point_in_time_window_over_entities_and_features_matches_an_as_of_join(resolver, ctx):
    features = hourly_features(6)
    resolver.add_table("central", FS_DB, "sessions", features, FEATURE_TYPES, ["year", "month", "day", "hour"])
    labels = pd.to_datetime(["2024-03-01T02:30:00Z", "2024-03-01T00:00:00Z", "2024-02-28T00:00:00Z",
                             "2024-03-01T05:00:00Z"]).as_unit("us")
    entities = pd.DataFrame({"customer_id": ["a", "b", "a", "b"], "label_time": labels})
    resolver.add_table("awsdatacatalog", "scratch", "entities", entities,
                       {"customer_id": "string", "label_time": "timestamp"})
    out = run("""
        WITH entity AS (SELECT customer_id, label_time,
                               row_number() OVER (ORDER BY label_time, customer_id) AS entity_row
                        FROM scratch.entities),
             feature AS (SELECT customer_id, spend, from_iso8601_timestamp(event_time) AS event_ts
                         FROM "central"."sagemaker_featurestore"."sessions" WHERE year = '2024'),
             unioned AS (SELECT customer_id, label_time AS ts, 1 AS side, entity_row, CAST(NULL AS DOUBLE) AS spend
                          FROM entity
                          UNION ALL
                          SELECT customer_id, CAST(event_ts AS TIMESTAMP), 0, NULL, spend FROM feature),
             filled AS (SELECT *, LAST_VALUE(CASE WHEN side = 0 THEN spend END) IGNORE NULLS OVER (
                                  PARTITION BY customer_id ORDER BY ts, side
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS latest_spend
                        FROM unioned)
        SELECT customer_id, ts AS label_time, latest_spend FROM filled WHERE side = 1 ORDER BY entity_row""",
              ctx, resolver)
    feature_frame = features.assign(event_ts=pd.to_datetime(features["event_time"]).dt.tz_localize(None)
                                    .astype("datetime64[us]")).sort_values("event_ts")
    expected = pd.merge_asof(entities.assign(label_time=entities["label_time"].dt.tz_localize(None))
                             .sort_values(["label_time", "customer_id"]), feature_frame,
                             left_on="label_time", right_on="event_ts", by="customer_id", direction="backward")
    assert out["latest_spend"].tolist() == pytest.approx(expected["spend"].tolist(), nan_ok=True)
    assert out["label_time"].tolist() == expected["label_time"].tolist()

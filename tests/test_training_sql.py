"""The point-in-time SQL as data: rendering, validation, quoting and partition pruning (no AWS needed)."""

from __future__ import annotations

import datetime as dt
import itertools

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from featureshare.errors import ValidationError
from featureshare.sqlquote import double_literal, quote_identifier, quote_qualified, quote_string, s3_uri_literal
from featureshare.training.sql import (
    ROW_ID_COLUMN,
    EntitySource,
    PointInTimeQuery,
    SourceTable,
    make_join,
    parse_ttl,
    partition_bounds,
    to_epoch_seconds,
)

CENTRAL = "111111111111"
CONSUMER = "222222222222"


def _describe(name: str, account: str, *, event_type: str = "String", table_format: str = "Glue") -> dict:
    return {
        "FeatureGroupName": name,
        "FeatureGroupArn": f"arn:aws:sagemaker:us-east-1:{account}:feature-group/{name}",
        "RecordIdentifierFeatureName": "customer_id",
        "EventTimeFeatureName": "event_time",
        "FeatureDefinitions": [
            {"FeatureName": "customer_id", "FeatureType": "String"},
            {"FeatureName": "event_time", "FeatureType": event_type},
            {"FeatureName": "clicks", "FeatureType": "Integral"},
            {"FeatureName": "score", "FeatureType": "Fractional"},
        ],
        "OfflineStoreConfig": {
            "S3StorageConfig": {"S3Uri": "s3://offline/fs",
                                "ResolvedOutputS3Uri": f"s3://offline/fs/{account}/sagemaker/us-east-1/x"},
            "DataCatalogConfig": {"TableName": f"{name}_1700000000", "Catalog": "AwsDataCatalog",
                                  "Database": "sagemaker_featurestore"},
            "TableFormat": table_format,
        },
    }


ENTITIES = EntitySource(database="featureshare_scratch", table="entities_x", key="customer_id",
                        event_time="label_time", columns=("customer_id", "label_time", "label"),
                        time_range=(1_709_251_200.0, 1_709_337_600.0))


def _query(*joins_args: dict, as_of: float | None = None, entities: EntitySource = ENTITIES) -> PointInTimeQuery:
    joins = []
    for args in joins_args:
        args = dict(args)
        source = SourceTable.from_description(args.pop("describe"))
        joins.append(make_join(source, entity_columns=entities.columns, on=args.pop("on", "customer_id"),
                               features=args.pop("features", None), **args))
    return PointInTimeQuery(entities=entities, joins=tuple(joins), as_of=as_of)


def _tables(sql: str) -> list[str]:
    tree = sqlglot.parse_one(sql, read="athena")
    return [".".join(p for p in (t.catalog, t.db, t.name) if p) for t in tree.find_all(exp.Table)]


def test_source_table_reads_names_from_describe_feature_group_instead_of_building_them() -> None:
    source = SourceTable.from_description(_describe("sessions", CENTRAL, event_type="Fractional"))
    assert (source.account_id, source.region, source.table) == (CENTRAL, "us-east-1", "sessions_1700000000")
    assert source.database == "sagemaker_featurestore"
    assert source.event_time_type == "Fractional"
    assert source.feature_types["clicks"] == "Integral"


def test_group_without_offline_store_cannot_be_joined() -> None:
    description = _describe("online_only", CENTRAL)
    del description["OfflineStoreConfig"]
    with pytest.raises(ValidationError, match="no offline store"):
        SourceTable.from_description(description)


def test_one_query_names_central_and_local_tables_through_their_own_catalogs() -> None:
    sql = _query({"describe": _describe("sessions", CENTRAL), "data_catalog": "central", "prefix": "s"},
                 {"describe": _describe("keywords", CONSUMER), "prefix": "k"}).render()
    assert '"central"."sagemaker_featurestore"."sessions_1700000000"' in sql
    assert '"awsdatacatalog"."sagemaker_featurestore"."keywords_1700000000"' in sql


def test_each_feature_table_is_scanned_once_and_never_joined_to_the_entities() -> None:
    sql = _query({"describe": _describe("sessions", CENTRAL), "data_catalog": "central", "prefix": "s"},
                 {"describe": _describe("keywords", CONSUMER), "prefix": "k"}).render()
    tables = _tables(sql)
    assert tables.count("central.sagemaker_featurestore.sessions_1700000000") == 1
    assert tables.count("awsdatacatalog.sagemaker_featurestore.keywords_1700000000") == 1
    tree = sqlglot.parse_one(sql, read="athena")
    for join in tree.find_all(exp.Join):
        # the only joins are the 1:1 join-back of per-group results on the entity row id
        assert join.args["on"].sql() .endswith("fs_row = e.fs_row")


def test_rendered_sql_is_valid_athena_and_transpiles_to_trino_and_duckdb_unchanged_in_meaning() -> None:
    sql = _query({"describe": _describe("sessions", CENTRAL), "ttl": "2h", "data_catalog": "central"},
                 as_of=1_709_300_000.5).render()
    for dialect in ("trino", "duckdb"):
        assert sqlglot.transpile(sql, read="athena", write=dialect)
    assert "to_unixtime(write_time) <= 1709300000.5E0" in sql


def test_output_columns_are_entity_columns_then_features_then_the_row_id() -> None:
    query = _query({"describe": _describe("sessions", CENTRAL), "features": ["score"], "prefix": "s"},
                   {"describe": _describe("keywords", CONSUMER), "features": ["clicks", "score"]})
    assert query.output_columns == ("customer_id", "label_time", "label", "s_score", "clicks", "score",
                                    ROW_ID_COLUMN)


def test_feature_name_collision_without_prefix_is_an_error_naming_both_sides() -> None:
    with pytest.raises(ValidationError, match=r"'clicks' of group 'keywords' collides.*group 'sessions'"):
        _query({"describe": _describe("sessions", CENTRAL)}, {"describe": _describe("keywords", CONSUMER)})


def test_feature_colliding_with_an_entity_column_case_insensitively_is_an_error() -> None:
    entities = EntitySource(database="d", table="t", key="customer_id", event_time="label_time",
                            columns=("customer_id", "label_time", "Score"))
    with pytest.raises(ValidationError, match=r"'score' of group 'sessions' collides.*entity table"):
        _query({"describe": _describe("sessions", CENTRAL)}, entities=entities)


def test_unknown_feature_and_unknown_join_column_are_reported_together() -> None:
    with pytest.raises(ValidationError, match=r"not found.*no feature") as info:
        _query({"describe": _describe("sessions", CENTRAL), "features": ["nope"], "on": "user"})
    assert len(info.value.problems) == 2


def test_an_invalid_ttl_is_reported_with_the_other_join_problems() -> None:
    with pytest.raises(ValidationError, match=r"no feature.*invalid ttl 'soon'.*'30d'") as info:
        _query({"describe": _describe("sessions", CENTRAL), "features": ["nope"], "ttl": "soon"})
    assert len(info.value.problems) == 2


def test_bad_how_is_rejected() -> None:
    with pytest.raises(ValidationError, match="how='outer'"):
        _query({"describe": _describe("sessions", CENTRAL), "how": "outer"})


@pytest.mark.parametrize("ttl", ["30 days", "-1h", 0, "", True, float("inf")])
def test_invalid_ttl_is_rejected_with_the_accepted_forms(ttl: object) -> None:
    with pytest.raises(ValidationError, match=r"invalid ttl.*'30d'"):
        parse_ttl(ttl)


@pytest.mark.parametrize(("ttl", "seconds"), [("30d", 2_592_000.0), ("12h", 43_200.0), ("90m", 5_400.0),
                                              ("45s", 45.0), ("500ms", 0.5), ("1w", 604_800.0),
                                              (dt.timedelta(hours=1), 3600.0), (7, 7.0)])
def test_ttl_forms_convert_to_seconds(ttl: object, seconds: float) -> None:
    assert parse_ttl(ttl) == seconds


def test_naive_as_of_without_timezone_is_rejected_but_accepted_with_one() -> None:
    with pytest.raises(ValidationError, match="has no timezone"):
        to_epoch_seconds(dt.datetime(2024, 3, 1))
    naive = to_epoch_seconds(dt.datetime(2024, 3, 1, 1), timezone="Europe/Paris")
    assert naive == to_epoch_seconds("2024-03-01T00:00:00Z")


def test_as_of_that_is_not_a_time_is_rejected() -> None:
    with pytest.raises(ValidationError, match="invalid as_of"):
        to_epoch_seconds("yesterday-ish")


def test_string_and_fractional_event_times_are_both_read_as_epoch_seconds() -> None:
    sql = _query({"describe": _describe("sessions", CENTRAL), "prefix": "s"},
                 {"describe": _describe("keywords", CONSUMER, event_type="Fractional"), "prefix": "k"}).render()
    assert 'to_unixtime(from_iso8601_timestamp("event_time"))' in sql
    assert 'CAST("event_time" AS double)' in sql


def test_partition_bounds_have_an_upper_bound_always_and_a_lower_bound_only_with_a_ttl() -> None:
    low, high = 1_709_251_200.0, 1_709_337_600.0  # 2024-03-01T00 .. 2024-03-02T00 UTC
    plain = _query({"describe": _describe("sessions", CENTRAL)}).joins[0]
    with_ttl = _query({"describe": _describe("sessions", CENTRAL), "ttl": "90m"}).joins[0]
    assert partition_bounds(plain, (low, high)) == (None, "2024030200")
    assert partition_bounds(with_ttl, (low, high)) == ("2024022922", "2024030200")


def test_iceberg_groups_and_unknown_entity_ranges_get_no_partition_predicates() -> None:
    iceberg = _query({"describe": _describe("sessions", CENTRAL, table_format="Iceberg"), "ttl": "1h"})
    assert "year" not in iceberg.render()
    unknown = EntitySource(database="d", table="t", key="customer_id", event_time="label_time",
                           columns=("customer_id", "label_time"))
    assert "year" not in _query({"describe": _describe("sessions", CENTRAL), "ttl": "1h"},
                                entities=unknown).render()


def test_lexical_partition_predicates_select_exactly_the_hours_inside_the_bounds() -> None:
    query = _query({"describe": _describe("sessions", CENTRAL), "ttl": "25h"})
    sql = query.render()
    where = sql[sql.index("WHERE") + len("WHERE"):sql.index("UNION ALL")]
    predicate = " AND ".join(line.strip().removeprefix("AND ") for line in where.splitlines()
                             if "year" in line)
    lower, upper = partition_bounds(query.joins[0], ENTITIES.time_range)
    start = dt.datetime(2024, 2, 27, tzinfo=dt.UTC)
    hours = [start + dt.timedelta(hours=h) for h in range(24 * 5)]
    rows = [(h.strftime("%Y"), h.strftime("%m"), h.strftime("%d"), h.strftime("%H")) for h in hours]
    with duckdb.connect(":memory:") as con:
        con.execute("CREATE TABLE p (year VARCHAR, month VARCHAR, day VARCHAR, hour VARCHAR)")
        con.executemany("INSERT INTO p VALUES (?, ?, ?, ?)", rows)
        selected = con.execute(f"SELECT year || month || day || hour FROM p WHERE {predicate} ORDER BY 1").fetchall()
    expected = [key for key in ("".join(r) for r in rows) if lower <= key <= upper]
    assert [k for (k,) in selected] == expected
    assert expected[0] == "2024022823" and expected[-1] == "2024030200"


def test_identifiers_and_literals_are_escaped_in_one_place() -> None:
    assert quote_identifier('we"ird') == '"we""ird"'
    assert quote_qualified("central", "db", "t") == '"central"."db"."t"'
    assert quote_string("it's") == "'it''s'"
    with pytest.raises(ValidationError, match="invalid SQL identifier"):
        quote_identifier("")
    with pytest.raises(ValidationError, match="not an s3://"):
        s3_uri_literal("https://example.com/x")


@pytest.mark.parametrize("value", [0.1, 1_709_251_200.123, 1e-7, 3.0, 2.5e20])
def test_double_literals_parse_back_to_the_same_float_in_duckdb(value: float) -> None:
    with duckdb.connect(":memory:") as con:
        assert con.execute(f"SELECT {double_literal(value)}").fetchone()[0] == value
        assert con.execute(f"SELECT typeof({double_literal(value)})").fetchone()[0] == "DOUBLE"


def test_entity_table_without_row_id_orders_rows_by_key_time_and_columns() -> None:
    entities = EntitySource(database="d", table="t", key="customer_id", event_time="label_time",
                            columns=("customer_id", "label_time", "label"), time_kind="string")
    sql = _query({"describe": _describe("sessions", CENTRAL)}, entities=entities).render()
    assert 'row_number() OVER (ORDER BY "customer_id", "label_time", "label")' in sql
    assert 'to_unixtime(from_iso8601_timestamp("label_time")) AS fs_t' in sql


def test_entity_columns_missing_key_or_time_are_rejected() -> None:
    with pytest.raises(ValidationError, match="not among the entity table's columns"):
        EntitySource(database="d", table="t", key="id", event_time="ts", columns=("customer_id", "ts"))


def test_join_without_groups_is_rejected_with_the_next_step() -> None:
    with pytest.raises(ValidationError, match=r"at least one joined feature group.*\.join"):
        PointInTimeQuery(entities=ENTITIES, joins=())


def test_all_combinations_of_how_render() -> None:
    for how_a, how_b in itertools.product(["left", "inner"], repeat=2):
        sql = _query({"describe": _describe("a", CENTRAL), "prefix": "a", "how": how_a},
                     {"describe": _describe("b", CONSUMER), "prefix": "b", "how": how_b}).render()
        where = sql.rsplit("WHERE", 1)[-1] if "inner" in (how_a, how_b) else ""
        assert ("g0.fs_live" in where) == (how_a == "inner")
        assert ("g1.fs_live" in where) == (how_b == "inner")

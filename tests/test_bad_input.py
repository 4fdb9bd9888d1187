"""Bad input (R3): every malformed input gets one clear error naming its field and value, and nothing is written.

"Nothing is written" is proven at the AWS boundary, not assumed: the module's embedded AWS starts after a
``before-call`` hook is added to botocore's built-in handlers, so every session and client made in this module
(the test's own, the assumed role's, the CLI's) reports each operation; a test fails if any write operation
(Put*, Create*, BatchWrite*, Delete*, Update*, Tag*, StartQueryExecution, ...) was called, and it also compares
a snapshot of the accounts (S3 objects, feature groups, Glue tables) taken before and after.

SQL injection: crafted names are rendered into the point-in-time SQL and parsed back with sqlglot (the engine's
own parser): the statement stays one SELECT over exactly the intended tables and columns, and the crafted text
survives only inside quoted identifiers / string literals -- never as SQL.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import botocore.handlers
import numpy as np
import pandas as pd
import pytest
import sqlglot
from click.testing import CliRunner
from ingest_fixtures import Setup, build_setup, customers, customers_spec
from sqlglot import exp

from featureshare.cli import cli
from featureshare.config import Topology
from featureshare.dataset_spec import DatasetSpec
from featureshare.errors import ConfigError, FeatureshareError, IngestionError, NotFoundError, ValidationError
from featureshare.groups import Feature, FeatureGroup, GroupSpec
from featureshare.local import EmbeddedAWS
from featureshare.session import AccountSession
from featureshare.sqlquote import quote_string, s3_uri_literal
from featureshare.training.build import TrainingSet
from featureshare.training.sql import EntitySource, PointInTimeQuery, SourceTable, make_join

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_TOPOLOGY = ROOT / "featureshare.example.toml"
WRITE_PREFIXES = ("Put", "Create", "BatchWrite", "Delete", "Update", "Tag", "Untag", "Copy", "Upload",
                  "CompleteMultipartUpload", "StartQueryExecution", "Associate", "Attach", "Import")
BASE_GROUP = "bad_input_base"


class WriteSpy:
    """A botocore ``before-call`` handler that records every write operation, from any session or thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.writes: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        if model.name.startswith(WRITE_PREFIXES):
            with self._lock:
                self.writes.append(f"{model.service_model.service_name}:{model.name}")

    def reset(self) -> None:
        with self._lock:
            self.writes.clear()


@dataclass
class World:
    setup: Setup
    group: FeatureGroup
    spy: WriteSpy
    admins: dict[str, dict[str, Any]]  # account -> service -> admin client (made once: clients are slow to make)

    def snapshot(self) -> dict[str, Any]:
        """Everything a write could leave behind, in both accounts (read-only calls)."""
        state: dict[str, Any] = {}
        for account, clients in self.admins.items():
            s3 = clients["s3"]
            for bucket in s3.list_buckets()["Buckets"]:
                pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"])
                state[f"{account}:s3:{bucket['Name']}"] = sorted(o["Key"] for p in pages for o in p.get("Contents", []))
            groups = clients["sagemaker"].list_feature_groups()["FeatureGroupSummaries"]
            state[f"{account}:groups"] = sorted(g["FeatureGroupName"] for g in groups)
            glue = clients["glue"]
            state[f"{account}:glue"] = sorted(
                (d["Name"], t["Name"]) for d in glue.get_databases()["DatabaseList"]
                for t in glue.get_tables(DatabaseName=d["Name"])["TableList"])
        return state


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    spy = WriteSpy()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.handlers, "BUILTIN_HANDLERS",
                      [*botocore.handlers.BUILTIN_HANDLERS, ("before-call", spy)])
        with EmbeddedAWS() as aws:
            setup = build_setup(aws)
            group = setup.ensure(customers_spec(BASE_GROUP))
            group.ingest(customers(2).assign(customer_id=["existing-1", "existing-2"]))
            consumer = aws.admin_session("consumer")
            consumer.client("athena").create_data_catalog(
                Name="central", Type="GLUE", Parameters={"catalog-id": aws.account_ids["central"]})
            consumer.client("s3").create_bucket(Bucket="consumer-training")
            aws.flush()
            admins = {account: {service: aws.admin_session(account).client(service)
                                for service in ("s3", "sagemaker", "glue")} for account in ("central", "consumer")}
            yield World(setup, group, spy, admins)


@pytest.fixture
def nothing_written(world: World) -> Iterator[World]:
    """Yields the world; afterwards, proves that no write call happened and no state changed."""
    world.setup.aws.clear_faults()
    world.setup.aws.flush()  # rows buffered by earlier tests must not count as this test's writes
    before = world.snapshot()
    world.spy.reset()
    yield world
    writes = list(world.spy.writes)
    world.setup.aws.flush()
    assert writes == [], f"write calls happened: {writes}"
    assert world.snapshot() == before


def assert_names(error: FeatureshareError, field: str, value: Any) -> None:
    """One clear error: the field is set and the message names the field and the offending value."""
    text = str(error)
    assert getattr(error, "field", field) == field
    assert field.split("[")[0].split(".")[0] in text or field in text, text
    assert str(value) in text or repr(value) in text, text


# ------------------------------------------------------------------------------------------ configuration

def example_config() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE_TOPOLOGY.read_text())


def with_change(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(example_config())
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    return data


@pytest.mark.parametrize(("path", "value", "field"), [
    ("central.account_id", "12345", "central.account_id"),
    ("central.account_id", "1111111111112", "central.account_id"),
    ("consumers.0.account_id", "22222222222x", "consumers[0].account_id"),
    ("central.access_role_arn", "arn:aws:iam::111111111111:user/FeatureShareAccess", "central.access_role_arn"),
    ("central.access_role_arn", "arn:aws:iam::333333333333:role/FeatureShareAccess", "central.access_role_arn"),
    ("region", "us-east", "region"),
    ("region", "US-EAST-1", "region"),
    ("central.offline_bucket", "Central_Offline", "central.offline_bucket"),
    ("consumers.0.training_bucket", "bucket'; DROP TABLE x; --", "consumers[0].training_bucket"),
    ("consumers.0.athena_workgroup", "wg; DROP", "consumers[0].athena_workgroup"),
])
def test_a_malformed_configuration_value_is_named_with_its_field(path: str, value: str, field: str) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as info:
        Topology.from_dict(with_change(path, value))
    assert len(info.value.problems) == 1, info.value.problems
    assert info.value.problems[0].startswith(f"{field}:")
    assert repr(value) in info.value.problems[0] or value in info.value.problems[0]


@pytest.mark.parametrize(("path", "value", "field"), [
    ("region", "us-east-1\n", "region"),
    ("central.account_id", "111111111111\n", "central.account_id"),
])
def test_a_trailing_newline_in_a_configuration_value_is_rejected(path: str, value: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        Topology.from_dict(with_change(path, value))
    assert [p.split(":")[0] for p in info.value.problems] == [field]


def test_an_unknown_configuration_key_is_named_with_the_allowed_keys() -> None:
    data = example_config()
    data["central"]["acount_id"] = "111111111111"
    with pytest.raises(ConfigError, match=r"central\.acount_id: unknown key \(allowed: .*account_id"):
        Topology.from_dict(data)


def test_a_consumer_in_the_central_account_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"consumers\[0\]\.account_id: 111111111111 is the central account"):
        Topology.from_dict(with_change("consumers.0.account_id", "111111111111")
                           | {"consumers": [{**example_config()["consumers"][0], "account_id": "111111111111",
                                             "execution_role_arns": ["arn:aws:iam::111111111111:role/x"]}]})


# -------------------------------------------------------------------------------------------- group specs

def spec_with(**changes: Any) -> GroupSpec:
    return replace(customers_spec("customers_v2"), **changes)


def features_plus(*extra: Feature) -> tuple[Feature, ...]:
    return (*customers_spec().features, *extra)


@pytest.mark.parametrize(("spec", "field", "value"), [
    (spec_with(name="customers v2"), "name", "customers v2"),
    (spec_with(name="customers'; DROP TABLE x; --"), "name", "customers'; DROP TABLE x; --"),
    (spec_with(name="x" * 65), "name", "x" * 65),
    (spec_with(features=features_plus(Feature("write_time", "String"))), "features[5].name", "write_time"),
    (spec_with(features=features_plus(Feature("Hour", "Integral"))), "features[5].name", "Hour"),
    (spec_with(features=features_plus(Feature("Spend", "Fractional"))), "features[5].name", "Spend"),
    (spec_with(features=features_plus(Feature('spend"x', "Fractional"))), "features[5].name", 'spend"x'),
    (spec_with(features=features_plus(Feature("blob", "Binary"))), "features[5].type", "Binary"),
    (spec_with(features=features_plus(*(Feature(f"f{i}", "Integral") for i in range(2496)))), "features", 2501),
    (spec_with(tags={f"k{i}": "v" for i in range(50)}), "tags", 51),  # the team tag counts too
    (spec_with(tags={"owner": "x'; --"}), "tags['owner']", "x'; --"),
    (spec_with(record_id="spend"), "record_id", "spend"),
    (spec_with(event_time="visits"), "event_time", "visits"),
    (spec_with(event_time="nope"), "event_time", "nope"),
    (spec_with(features=(Feature("customer_id", "String"), Feature("ts", "Fractional")), table_format="Iceberg"),
     "event_time", "ts"),
    (spec_with(online=False, ttl=dt.timedelta(days=1)), "ttl", dt.timedelta(days=1)),
], ids=["space-in-name", "sql-in-name", "name-too-long", "reserved-write_time", "reserved-partition-hour",
        "duplicate-case-insensitive", "quote-in-feature", "unknown-type",
        "too-many-features", "too-many-tags", "bad-tag-value", "fractional-record-id", "integral-event-time",
        "event-time-not-a-feature", "iceberg-fractional-time", "ttl-without-online"])
def test_an_invalid_group_spec_is_rejected_before_any_aws_call(nothing_written: World, spec: GroupSpec,
                                                                 field: str, value: Any) -> None:
    with pytest.raises(ValidationError, match="cannot ensure feature group") as info:
        nothing_written.setup.ensure(spec)
    assert info.value.field == field
    assert_names(info.value, field, value)


def test_an_offline_store_outside_s3_is_rejected_before_any_aws_call(nothing_written: World) -> None:
    with pytest.raises(ValidationError, match=r"offline_s3_uri='/tmp/features'") as info:
        nothing_written.setup.ensure(customers_spec("customers_v3"), offline_s3_uri="/tmp/features")
    assert info.value.field == "offline_s3_uri"


def test_an_existing_group_with_a_different_schema_is_not_changed(nothing_written: World) -> None:
    from featureshare.errors import SchemaDriftError

    changed = replace(customers_spec(BASE_GROUP), features=[Feature("customer_id", "String"),
                                                            Feature("ts", "String"), Feature("visits", "String")])
    with pytest.raises(SchemaDriftError, match="feature 'visits': group type Integral, spec type String"):
        nothing_written.setup.ensure(changed)


# --------------------------------------------------------------------------------------------- DataFrames

def good_rows(n: int = 4) -> pd.DataFrame:
    return customers(n).assign(customer_id=[f"new-{i}" for i in range(n)])


def text_times() -> pd.DataFrame:
    rows = good_rows()
    return rows.assign(ts=rows["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").astype(object))


def object_column(df: pd.DataFrame, column: str, row: int, value: Any) -> pd.DataFrame:
    values = df[column].astype(object).tolist()
    values[row] = value
    return df.assign(**{column: pd.Series(values, index=df.index, dtype=object)})


ROW_CASES = [
    (object_column(good_rows(), "customer_id", 2, None), 2, "MissingRecordIdentifier", "record id is missing"),
    (object_column(good_rows(), "customer_id", 1, ""), 1, "MissingRecordIdentifier", "record id is missing"),
    (object_column(good_rows(), "ts", 3, pd.NaT), 3, "MissingEventTime", "event time is missing"),
    (object_column(good_rows(), "ts", 0, "yesterday"), 0, "InvalidValue", "'yesterday' is not an ISO-8601"),
    (object_column(text_times(), "ts", 1, "2024-05-01T10:00:00"), 1, "InvalidValue", "has no UTC offset"),
    (object_column(good_rows(), "ts", 2, dt.datetime(2024, 5, 1, 10)), 2, "InvalidValue", "is naive"),
    (object_column(good_rows(), "visits", 3, "seven"), 3, "InvalidValue", "visits: 'seven' is not an integer"),
    (object_column(good_rows(), "visits", 0, 3.5), 0, "InvalidValue", "visits: 3.5 is not an integer"),
    (object_column(good_rows(), "visits", 1, 2**70), 1, "InvalidValue", "does not fit a 64-bit Integral"),
    (object_column(good_rows(), "spend", 2, float("inf")), 2, "InvalidValue", "spend: inf is not finite"),
    (object_column(good_rows(), "spend", 0, "1.5; DROP"), 0, "InvalidValue", "spend: could not convert"),
    (object_column(good_rows(), "segment", 1, {"nested": 1}), 1, "InvalidValue", "not a scalar"),
    (object_column(good_rows(), "segment", 3, "x" * 400_000), 3, "RecordTooLarge", "at most 358400 bytes"),
]


@pytest.mark.parametrize(("df", "position", "code", "message"), ROW_CASES,
                         ids=["missing-id", "empty-id", "missing-time", "unparseable-time", "offsetless-time",
                              "naive-datetime", "text-in-integral", "fraction-in-integral", "integral-overflow",
                              "infinite-fractional", "text-in-fractional", "dict-in-string", "record-too-large"])
def test_an_invalid_row_stops_the_whole_ingest_and_is_named_with_its_position(
        nothing_written: World, df: pd.DataFrame, position: int, code: str, message: str) -> None:
    with pytest.raises(IngestionError, match=f"1 of {len(df)} rows are invalid; nothing was sent") as info:
        nothing_written.group.ingest(df, on_error="raise")
    (failure,) = info.value.report.failures
    assert (failure.position, failure.code) == (position, code)
    assert message in failure.message
    assert all(nothing_written.group.get(rid) is None for rid in good_rows()["customer_id"] if rid)


@pytest.mark.parametrize(("df", "field", "match"), [
    (good_rows().assign(**{"extra; DROP TABLE x": 1}), "columns", "'extra; DROP TABLE x' is not a feature"),
    (good_rows().drop(columns=["ts"]), "columns", "'ts' .the event time. is missing"),
    (good_rows().assign(ts=lambda d: d["ts"].dt.tz_localize(None)), "ts", "naive datetimes"),
    (good_rows().assign(ts=np.arange(4) * 1.7e9), "ts", "holds numbers but the event time feature is a String"),
    (good_rows().assign(ts=[True, False, True, False]), "ts", "holds booleans"),
], ids=["unknown-column", "missing-event-time-column", "naive-column", "numbers-for-string-time",
        "booleans-for-time"])
def test_a_dataframe_whose_columns_do_not_fit_the_group_is_rejected(nothing_written: World, df: pd.DataFrame,
                                                                      field: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as info:
        nothing_written.group.ingest(df)
    assert info.value.field == field


def test_data_that_is_not_a_table_is_rejected(nothing_written: World) -> None:
    with pytest.raises(ValidationError, match="cannot ingest a str") as info:
        nothing_written.group.ingest("customers.csv")
    assert (info.value.field, info.value.value) == ("data", "str")


# ---------------------------------------------------------------------------------------- training specs

def labels() -> pd.DataFrame:
    return pd.DataFrame({"customer_id": ["existing-1", "existing-2"],
                         "label_time": pd.to_datetime(["2024-06-01", "2024-06-02"], utc=True),
                         "label": [1, 0]})


def test_an_unknown_feature_group_is_not_found(nothing_written: World) -> None:
    with pytest.raises(NotFoundError, match="no feature group 'no_such_group'"):
        nothing_written.setup.store.group("no_such_group")


@pytest.mark.parametrize(("join", "match"), [
    ({"features": ["spend", "no_such_feature"]}, r"has no feature\(s\) \['no_such_feature'\]"),
    ({"on": "user_id"}, r"entity column 'user_id' \(on=\) not found"),
    ({"how": "outer"}, "how='outer' is not 'left' or 'inner'"),
    ({"prefix": "p; DROP"}, "prefix 'p; DROP' is not 1-64 characters"),
    ({"ttl": "-3d"}, "invalid ttl '-3d'"),
    ({"ttl": "soon"}, "invalid ttl 'soon'"),
], ids=["unknown-feature", "unknown-on-column", "bad-how", "sql-in-prefix", "negative-ttl",
        "unparseable-ttl"])
def test_an_invalid_join_is_rejected_when_it_is_declared(nothing_written: World, join: dict[str, Any],
                                                         match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        TrainingSet(labels(), key="customer_id", event_time="label_time").join(nothing_written.group, **join)


def test_features_given_as_one_string_are_rejected_as_such(nothing_written: World) -> None:
    with pytest.raises(ValidationError, match="features= must be a list of names"):
        TrainingSet(labels(), key="customer_id", event_time="label_time").join(nothing_written.group,
                                                                               features="spend")


def test_a_feature_that_collides_with_an_entity_column_needs_a_prefix(nothing_written: World) -> None:
    entities = labels().assign(spend=1.0)
    with pytest.raises(ValidationError, match="feature 'spend' of group 'bad_input_base' collides") as info:
        TrainingSet(entities, key="customer_id", event_time="label_time").join(nothing_written.group)
    assert info.value.field == "features"


@pytest.mark.parametrize(("when", "match"), [
    ("2024-06-01 00:00:00", "has no timezone"),
    ("the day before yesterday", "invalid as_of 'the day before yesterday'"),
    (float("nan"), "invalid as_of nan"),
])
def test_an_invalid_as_of_is_rejected(nothing_written: World, when: Any, match: str) -> None:
    training = TrainingSet(labels(), key="customer_id", event_time="label_time").join(nothing_written.group)
    with pytest.raises(ValidationError, match=match) as info:
        training.as_of(when)
    assert info.value.field == "as_of"


def test_entities_without_the_key_column_are_rejected() -> None:
    with pytest.raises(ValidationError, match=r"entities have no column\(s\) \['user_id'\]") as info:
        TrainingSet(labels(), key="user_id", event_time="label_time")
    assert info.value.field == "entities"


def test_a_training_set_written_outside_the_consumers_account_is_refused(nothing_written: World) -> None:
    consumer = nothing_written.setup.aws.admin_session("consumer")
    training = TrainingSet(labels(), key="customer_id", event_time="label_time").join(
        nothing_written.setup.store.group(nothing_written.group.arn))
    outside = "s3://central-offline-store/stolen/"
    with pytest.raises(ValidationError, match="'central-offline-store' is not a bucket of the consumer") as info:
        training.build(session=AccountSession(consumer), output_uri=outside)
    assert info.value.field == "output_uri"


# ------------------------------------------------------------------------------------------ SQL injection

EVIL_TABLE = 'customers"; DROP TABLE users; --'
EVIL_DATABASE = "sagemaker_featurestore'--"
EVIL_FEATURE = "spend\"/* x */; DELETE FROM t; --"
EVIL_KEY = 'customer"id'
EVIL_ENTITY_COLUMN = "label'); DROP TABLE labels; --"


def evil_source() -> SourceTable:
    return SourceTable(name="customers", arn="arn:aws:sagemaker:us-east-1:111111111111:feature-group/customers",
                       account_id="111111111111", region="us-east-1", record_id=EVIL_KEY, event_time="ts",
                       event_time_type="String",
                       features=((EVIL_KEY, "String"), ("ts", "String"), (EVIL_FEATURE, "Fractional")),
                       database=EVIL_DATABASE, table=EVIL_TABLE)


def evil_query(**join: Any) -> PointInTimeQuery:
    entities = EntitySource(database="scratch", table="labels; DROP", key="customer_id", event_time="label_time",
                            columns=("customer_id", "label_time", EVIL_ENTITY_COLUMN))
    joined = make_join(evil_source(), features=None, on="customer_id", entity_columns=entities.columns,
                       data_catalog="central", **join)
    return PointInTimeQuery(entities=entities, joins=(joined,), as_of=1.7e9)


def parse_one(sql: str) -> exp.Expression:
    statements = [s for s in sqlglot.parse(sql, read="athena") if s is not None]
    assert len(statements) == 1, f"{len(statements)} statements"
    return statements[0]


def test_crafted_group_feature_and_column_names_stay_quoted_identifiers_in_the_sql() -> None:
    tree = parse_one(evil_query(ttl="1d").render())

    assert isinstance(tree, exp.Select)
    assert not list(tree.find_all(exp.Drop, exp.Delete, exp.Command, exp.Insert))
    assert all(not node.comments for node in tree.walk()), "text became a SQL comment"
    tables = {(t.catalog, t.db, t.name) for t in tree.find_all(exp.Table)
              if t.name not in {"entities", "g0_union", "g0_ordinal", "g0_carried", "g0"}}
    assert tables == {("central", EVIL_DATABASE, EVIL_TABLE), ("awsdatacatalog", "scratch", "labels; DROP")}
    columns = {c.name for c in tree.find_all(exp.Column)}
    assert {EVIL_FEATURE, EVIL_KEY, EVIL_ENTITY_COLUMN} <= columns
    for evil in (EVIL_FEATURE, EVIL_KEY, EVIL_ENTITY_COLUMN, EVIL_TABLE):
        identifiers = [i for i in tree.find_all(exp.Identifier) if i.name == evil]
        assert identifiers and all(i.quoted for i in identifiers)


def test_crafted_text_in_an_output_uri_is_only_an_escaped_string_literal() -> None:
    uri = "s3://consumer-training/sets/x'; DROP TABLE t; --/"
    # sqlglot has no UNLOAD grammar (it falls back to an opaque Command), so the literal is checked in a SELECT.
    tree = parse_one(f"SELECT {s3_uri_literal(uri)} AS location")
    literals = [lit.this for lit in tree.find_all(exp.Literal) if lit.is_string]
    assert uri in literals
    assert not list(tree.find_all(exp.Drop))
    assert all(not node.comments for node in tree.walk())


@pytest.mark.parametrize("value", ["o'brien", "'; DROP TABLE t; --", "a\\'b", "/* x */", "\u2019 unicode quote"])
def test_crafted_string_values_round_trip_through_the_quoting_module(value: str) -> None:
    (literal,) = [lit for lit in parse_one(f"SELECT {quote_string(value)} AS v").find_all(exp.Literal)]
    assert literal.is_string and literal.this == value


def test_a_nul_byte_cannot_reach_the_sql() -> None:
    with pytest.raises(ValidationError, match="invalid SQL string literal") as info:
        quote_string("a\x00b")
    assert info.value.field == "literal"


def test_crafted_values_are_stored_as_data_not_interpreted(world: World) -> None:
    evil = {"customer_id": "x'); DROP TABLE customers; --", "segment": "\"; DELETE FROM t; /*"}
    df = good_rows(1).assign(**evil)
    report = world.group.ingest(df)
    assert report.ok
    stored = world.group.get(evil["customer_id"])
    assert stored is not None and stored["segment"] == evil["segment"]


# ------------------------------------------------------------------------------------------------ the CLI

@pytest.fixture
def cli_env(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The CLI acts as the consumer's administrator (in-process: the embedded AWS intercepts its calls)."""
    key, secret = world.setup.aws.credentials("consumer")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", world.setup.aws.region)
    return world


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(EXAMPLE_TOPOLOGY), *args])


def data_file(tmp_path: Path, df: pd.DataFrame) -> str:
    path = tmp_path / "rows.csv"
    df.to_csv(path, index=False)
    return str(path)


def test_cli_ingest_of_a_missing_file_names_the_file(cli_env: World, nothing_written: World, tmp_path) -> None:
    result = run_cli("ingest", BASE_GROUP, str(tmp_path / "missing.csv"))
    assert result.exit_code == 4
    assert "missing.csv: no such file" in result.output


def test_cli_ingest_of_columns_the_group_lacks_names_the_column(cli_env: World, nothing_written: World,
                                                              tmp_path) -> None:
    path = data_file(tmp_path, good_rows().assign(favourite_colour="red"))
    result = run_cli("ingest", BASE_GROUP, path, "--no-progress")
    assert result.exit_code == 4, result.output
    assert "'favourite_colour' is not a feature of bad_input_base" in result.output


def test_cli_local_and_central_profile_together_are_refused(cli_env: World, nothing_written: World,
                                                            tmp_path) -> None:
    path = data_file(tmp_path, good_rows())
    result = run_cli("ingest", BASE_GROUP, path, "--local", "--central-profile", "central-admin")
    assert result.exit_code == 4
    assert "--local and --central-profile exclude each other" in result.output


def test_cli_out_of_range_concurrency_is_a_usage_error(cli_env: World, nothing_written: World, tmp_path) -> None:
    result = run_cli("ingest", BASE_GROUP, data_file(tmp_path, good_rows()), "--max-in-flight", "0")
    assert result.exit_code == 2
    assert "--max-in-flight" in result.output and "0" in result.output


def test_cli_group_spec_with_a_crafted_name_is_refused(cli_env: World, nothing_written: World, tmp_path) -> None:
    spec = tmp_path / "group.json"
    spec.write_text(json.dumps({"name": "x; DROP TABLE y", "record_id": "id", "event_time": "ts",
                                "features": {"id": "String", "ts": "String"}}))
    result = run_cli("groups", "create", "--from-file", str(spec))
    assert result.exit_code == 4, result.output
    assert "name='x; DROP TABLE y'" in result.output


def test_cli_group_spec_with_an_unknown_key_is_refused(cli_env: World, nothing_written: World, tmp_path) -> None:
    spec = tmp_path / "group.toml"
    spec.write_text('name = "g"\nrecord_id = "id"\nevent_time = "ts"\nfeatures = { id = "String", ts = "String" }\n'
                    'offline_uri = "s3://x/y"\n')
    result = run_cli("groups", "create", "--from-file", str(spec))
    assert result.exit_code == 4
    assert "offline_uri: unknown key" in result.output


def test_cli_invalid_configuration_file_exits_with_the_config_code(cli_env: World, nothing_written: World,
                                                                   tmp_path) -> None:
    bad = tmp_path / "featureshare.toml"
    bad.write_text(EXAMPLE_TOPOLOGY.read_text().replace('region = "us-east-1"', 'region = "moon-1"'))
    result = CliRunner().invoke(cli, ["--config", str(bad), "groups", "list"])
    assert result.exit_code == 3
    assert "region: 'moon-1' is not an AWS region" in result.output


def test_cli_get_without_record_ids_is_a_usage_error(cli_env: World, nothing_written: World) -> None:
    result = run_cli("get", BASE_GROUP)
    assert result.exit_code == 2
    assert "Missing argument 'ID...'" in result.output


def test_cli_dataset_spec_with_a_crafted_group_name_is_refused(cli_env: World, nothing_written: World,
                                                               tmp_path) -> None:
    spec = tmp_path / "dataset.toml"
    spec.write_text('entities = "db.labels"\nkey = "id"\nevent_time = "t"\n'
                    '[[groups]]\nname = "users\\"; DROP TABLE x; --"\n')
    result = run_cli("build-dataset", str(spec))
    assert result.exit_code == 4, result.output
    assert "groups[0].name" in result.output and "DROP TABLE x" in result.output


def test_dataset_spec_problems_are_all_reported_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        DatasetSpec.from_dict({"entities": "db.labels", "key": "id", "event_time": "t", "format": "xlsx",
                               "groups": [{"name": "users", "ttl": "forever"}]})
    text = "; ".join(info.value.problems or [])
    assert "format" in text and "xlsx" in text and "ttl" in text and "forever" in text

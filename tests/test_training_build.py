"""Building training sets on the embedded two-account AWS: one Athena query over both catalogs, staging
cleanup, manifest, partition pruning and the errors raised before anything runs."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber
from training_fixtures import create_customer_group, offline_rows
from training_fixtures import put_customer_record as _put

from featureshare.errors import QueryFailedError, ValidationError, WaitTimeoutError
from featureshare.local import EmbeddedAWS
from featureshare.session import AccountSession
from featureshare.training import SourceTable, TrainingSet
from featureshare.training.athena import wait_for
from featureshare.training.build import STAGING_PREFIX, stage_entities
from featureshare.training.reference import ReferenceJoin, epoch_seconds, point_in_time_reference
from featureshare.training.staging import PARQUET_STORAGE

CENTRAL_OFFLINE, LOCAL_OFFLINE, TRAINING = "central-offline", "consumer-offline", "consumer-training"
SCRATCH = "featureshare_scratch"
START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
_prefixes = itertools.count()


@dataclass
class World:
    aws: EmbeddedAWS
    consumer: AccountSession
    central: AccountSession
    sessions: dict[str, Any]      # DescribeFeatureGroup of the central group (String event time)
    keywords: dict[str, Any]      # DescribeFeatureGroup of the consumer's local group (Fractional event time)
    as_of: dt.datetime            # between the first and the second batch of writes

    def output(self) -> str:
        return f"s3://{TRAINING}/sets/t{next(_prefixes)}/"


def _offline_role(session: AccountSession) -> str:
    return f"arn:aws:iam::{session.account_id}:role/FeatureStoreOfflineRole"


def _seed(aws: EmbeddedAWS, central: AccountSession, consumer: AccountSession) -> tuple[dict, dict, dt.datetime]:
    central.client("s3").create_bucket(Bucket=CENTRAL_OFFLINE)
    consumer.client("s3").create_bucket(Bucket=LOCAL_OFFLINE)
    consumer.client("s3").create_bucket(Bucket=TRAINING)
    consumer.client("athena").create_data_catalog(Name="central", Type="GLUE",
                                                  Parameters={"catalog-id": aws.account_ids["central"]})
    sessions = create_customer_group(central, "sessions", event_type="String", feature=("spend", "Fractional"),
                                     s3_config={"S3Uri": f"s3://{CENTRAL_OFFLINE}/fs"}, role=_offline_role(central))
    keywords = create_customer_group(consumer, "keywords", event_type="Fractional", feature=("keyword", "String"),
                                     s3_config={"S3Uri": f"s3://{LOCAL_OFFLINE}/fs"}, role=_offline_role(consumer))
    for hour in range(0, 48, 3):  # two days of history, several versions per customer
        for k in range(4):
            _put(central, "sessions", f"c{k}", START + dt.timedelta(hours=hour), "String", "spend", hour * 10 + k)
    for k in range(3):
        _put(consumer, "keywords", f"c{k}", START + dt.timedelta(hours=5 * k), "Fractional", "keyword", f"kw{k}")
    _put(central, "sessions", "c1", START + dt.timedelta(hours=30), "String", "spend", 999)   # same event time
    aws.flush()
    as_of = dt.datetime.now(dt.UTC)
    _put(central, "sessions", "c0", START + dt.timedelta(hours=1), "String", "spend", -1)     # late backfill
    aws.flush()
    return sessions, keywords, as_of


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with EmbeddedAWS() as aws:
        central = AccountSession(aws.admin_session("central"))
        consumer = AccountSession(aws.admin_session("consumer"))
        sessions, keywords, as_of = _seed(aws, central, consumer)
        yield World(aws, consumer, central, sessions, keywords, as_of)


def _labels(hours: list[float], customers: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": pd.Series(customers, dtype="str"),
        "label_time": pd.Series([START + dt.timedelta(hours=h) for h in hours], dtype="datetime64[us, UTC]"),
        "churned": pd.array([i % 2 == 0 for i in range(len(hours))], dtype="boolean"),
    })


LABELS = _labels([1, 2, 7, 30, 30, 47, 12, 3], ["c0", "c1", "c2", "c1", "c9", "c3", "c0", "c2"])


def _reference(world: World, labels: pd.DataFrame, *, ttl: float | None = None, how: str = "left",
               as_of: float | None = None) -> pd.DataFrame:
    joins = [
        ReferenceJoin(rows=offline_rows(world.sessions, world.central), record_id="customer_id",
                      event_time="event_time", features=["spend"], on="customer_id", ttl_seconds=ttl),
        ReferenceJoin(rows=offline_rows(world.keywords, world.consumer), record_id="customer_id",
                      event_time="event_time", features=["keyword"], on="customer_id", how=how),
    ]
    rows = point_in_time_reference(labels.to_dict("records"), event_time="label_time", joins=joins, as_of=as_of)
    return pd.DataFrame(rows, columns=[*labels.columns, "spend", "keyword"])


def _same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected)
    for column in actual.columns:
        left, right = actual[column].tolist(), expected[column].tolist()
        if column == "label_time":
            left, right = [_instant(v) for v in left], [_instant(v) for v in right]
        assert [None if pd.isna(v) else v for v in left] == [None if pd.isna(v) else v for v in right], column


def _instant(value: Any) -> float | None:
    """Epoch seconds of a label time as Athena returns it (naive UTC timestamp or ISO string) or as given."""
    if isinstance(value, str):
        return epoch_seconds(value)
    stamp = pd.Timestamp(value)
    return epoch_seconds(stamp if stamp.tzinfo else stamp.tz_localize("UTC"))


def _training(world: World, labels: pd.DataFrame = LABELS, **join: Any) -> TrainingSet:
    how = join.pop("how", "left")
    return (TrainingSet(labels, key="customer_id", event_time="label_time")
            .join(world.sessions, features=["spend"], **join)
            .join(world.keywords, features=["keyword"], how=how))


def _leftovers(world: World) -> tuple[list[str], list[str]]:
    listing = world.consumer.client("s3").list_objects_v2(Bucket=TRAINING, Prefix=STAGING_PREFIX)
    tables = world.consumer.client("glue").get_tables(DatabaseName=SCRATCH)["TableList"]
    return [o["Key"] for o in listing.get("Contents", [])], [t["Name"] for t in tables]


def test_one_query_joins_central_and_local_groups_point_in_time_like_the_reference(world: World) -> None:
    built = _training(world).build(session=world.consumer, output_uri=world.output(), timeout=60)
    assert '"central"."sagemaker_featurestore"."sessions' in built.statement
    assert '"awsdatacatalog"."sagemaker_featurestore"."keywords' in built.statement
    _same(built.to_dataframe(), _reference(world, LABELS))
    assert built.state == "SUCCEEDED" and built.data_scanned_bytes > 0


def test_inner_join_ttl_and_as_of_match_the_reference(world: World) -> None:
    built = (_training(world, ttl="6h", how="inner").as_of(world.as_of)
             .build(session=world.consumer, output_uri=world.output(), timeout=60))
    expected = _reference(world, LABELS, ttl=6 * 3600.0, how="inner", as_of=epoch_seconds(world.as_of))
    _same(built.to_dataframe(), expected)
    assert 0 < len(expected) < len(LABELS)


def test_staging_data_and_temporary_table_are_gone_after_success(world: World) -> None:
    _training(world).build(session=world.consumer, output_uri=world.output(), timeout=60)
    assert _leftovers(world) == ([], [])


def test_staging_data_and_temporary_table_are_gone_after_a_failed_query(world: World) -> None:
    missing = {**SourceTable.from_description(world.sessions).__dict__, "table": "no_such_table", "name": "gone"}
    training = TrainingSet(LABELS, key="customer_id", event_time="label_time").join(SourceTable(**missing))
    with pytest.raises(QueryFailedError, match="no_such_table") as info:
        training.build(session=world.consumer, output_uri=world.output(), timeout=60)
    assert info.value.state == "FAILED" and info.value.query_id
    assert _leftovers(world) == ([], [])


def test_manifest_describes_the_set_and_reproduces_it_after_newer_writes(world: World) -> None:
    first = _training(world).as_of(world.as_of).build(session=world.consumer, output_uri=world.output(),
                                                       timeout=60)
    manifest = first.manifest
    assert manifest["row_count"] == len(LABELS)
    assert manifest["query_execution_id"] == first.query_execution_id
    assert [g["data_catalog"] for g in manifest["groups"]] == ["central", "awsdatacatalog"]
    assert manifest["groups"][0]["account_id"] == world.aws.account_ids["central"]
    assert manifest["as_of_epoch"] == epoch_seconds(world.as_of)
    _put(world.central, "sessions", "c2", START + dt.timedelta(hours=6), "String", "spend", 12345)
    world.aws.flush()
    again = TrainingSet.from_manifest(first.location + "_manifest.json", session=world.consumer)
    second = again.build(session=world.consumer, output_uri=world.output(), timeout=60)
    pd.testing.assert_frame_equal(second.to_dataframe(), first.to_dataframe())


def test_narrow_entity_window_scans_fewer_bytes_than_a_wide_one(world: World) -> None:
    narrow = _labels([40, 41, 42], ["c0", "c1", "c2"])
    wide = _labels([4, 20, 42], ["c0", "c1", "c2"])
    scanned = {}
    for name, labels in (("narrow", narrow), ("wide", wide)):
        built = (TrainingSet(labels, key="customer_id", event_time="label_time")
                 .join(world.sessions, features=["spend"], ttl="3h")
                 .build(session=world.consumer, output_uri=world.output(), timeout=60))
        scanned[name] = built.data_scanned_bytes
        assert built.manifest["groups"][0]["partition_bounds"][0] is not None
    assert scanned["narrow"] < scanned["wide"]


def test_wait_false_returns_a_handle_that_finishes_and_cleans_up_on_wait(world: World) -> None:
    built = _training(world).build(session=world.consumer, output_uri=world.output(), wait=False)
    assert built.query_execution_id and built.manifest is None
    built.wait(timeout=60)
    assert built.done and built.manifest is not None
    assert _leftovers(world) == ([], [])


def test_register_as_creates_a_table_over_the_output(world: World) -> None:
    built = _training(world).build(session=world.consumer, output_uri=world.output(),
                                   register_as=f"{SCRATCH}.churn_v1", timeout=60)
    table = world.consumer.client("glue").get_table(DatabaseName=SCRATCH, Name="churn_v1")["Table"]
    assert table["StorageDescriptor"]["Location"].rstrip("/") == built.location.rstrip("/")
    _same(built.to_dataframe(), _reference(world, LABELS))
    world.consumer.client("glue").delete_table(DatabaseName=SCRATCH, Name="churn_v1")


def test_output_bucket_of_another_account_is_rejected_before_running(world: World) -> None:
    with pytest.raises(ValidationError, match="not a bucket of the consumer account"):
        _training(world).build(session=world.consumer, output_uri=f"s3://{CENTRAL_OFFLINE}/sets/x/")


def test_non_empty_output_prefix_is_rejected(world: World) -> None:
    built = _training(world).build(session=world.consumer, output_uri=world.output(), timeout=60)
    with pytest.raises(ValidationError, match="is not empty"):
        _training(world).build(session=world.consumer, output_uri=built.location)


def test_catalog_that_does_not_point_at_the_central_account_fails_naming_the_table(world: World) -> None:
    with pytest.raises(ValidationError, match=r"cannot see table sagemaker_featurestore\.sessions.*does not"):
        _training(world).build(session=world.consumer, output_uri=world.output(), catalog_name="elsewhere")


@pytest.mark.parametrize(("change", "message"), [
    ({"features": ["nope"]}, "has no feature"),
    ({"ttl": "soon"}, "invalid ttl"),
])
def test_invalid_joins_fail_when_declared(world: World, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainingSet(LABELS, key="customer_id", event_time="label_time").join(world.sessions, **change)


def test_feature_collision_without_prefix_fails_and_prefix_resolves_it(world: World) -> None:
    training = TrainingSet(LABELS, key="customer_id", event_time="label_time").join(world.sessions)
    with pytest.raises(ValidationError, match="collide"):
        training.join(world.sessions)
    assert "sessions_spend" in training.join(world.sessions, prefix="sessions").sql(consumer=world.consumer)


def test_naive_as_of_and_naive_label_times_need_a_timezone(world: World) -> None:
    with pytest.raises(ValidationError, match="has no timezone"):
        _training(world).as_of(dt.datetime(2024, 3, 2))
    naive = LABELS.assign(label_time=LABELS["label_time"].dt.tz_localize(None))
    with pytest.raises(ValidationError, match="naive"):
        _training(world, naive).build(session=world.consumer, output_uri=world.output())


@contextlib.contextmanager
def _running_query_then_stopped(query_id: str) -> Iterator[Any]:
    """An Athena client stubbed to answer one GetQueryExecution (RUNNING) and then expect StopQueryExecution."""
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
    athena = AccountSession(session).client("athena")
    with Stubber(athena) as stub:
        stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "RUNNING"}}},
                          {"QueryExecutionId": query_id})
        stub.add_response("stop_query_execution", {}, {"QueryExecutionId": query_id})
        yield athena
        stub.assert_no_pending_responses()


def test_ctrl_c_while_waiting_stops_the_query() -> None:
    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    with _running_query_then_stopped("q1") as athena, pytest.raises(KeyboardInterrupt):
        wait_for(athena, "q1", timeout=60, sleep=interrupted)


def test_wait_times_out_and_stops_the_query() -> None:
    with _running_query_then_stopped("q2") as athena, pytest.raises(WaitTimeoutError, match="still RUNNING after 0s"):
        wait_for(athena, "q2", timeout=0)


def test_central_role_strategy_runs_central_only_sets_in_the_central_account(world: World) -> None:
    training = TrainingSet(LABELS, key="customer_id", event_time="label_time").join(world.sessions,
                                                                                    features=["spend"])
    built = training.build(session=world.consumer, output_uri=world.output(), strategy="central-role",
                           central_session=world.central, timeout=60)
    assert built.manifest["account_id"] == world.aws.account_ids["central"]
    assert '"awsdatacatalog"."sagemaker_featurestore"."sessions' in built.statement
    expected = _reference(world, LABELS).drop(columns=["keyword"])
    _same(built.to_dataframe(), expected)
    assert world.central.client("glue").get_tables(DatabaseName=SCRATCH)["TableList"] == []


def test_label_times_as_iso_strings_with_offsets_or_naive_with_a_timezone_stage_as_the_same_instants() -> None:
    instants = [START, START + dt.timedelta(hours=5, milliseconds=250)]
    as_strings = pd.DataFrame({"k": ["a", "b"], "t": ["2024-03-01T01:00:00+01:00", "2024-03-01T05:00:00.250Z"]})
    naive = pd.DataFrame({"k": ["a", "b"], "t": [pd.Timestamp(i).tz_convert("Europe/Paris").tz_localize(None)
                                                 for i in instants]})
    for frame, timezone in ((as_strings, None), (naive, "Europe/Paris")):
        staged = stage_entities(TrainingSet(frame, key="k", event_time="t", timezone=timezone))
        assert list(staged.frame["featureshare_t"]) == [epoch_seconds(i) for i in instants]
        assert staged.time_range == (epoch_seconds(instants[0]), epoch_seconds(instants[1]))
    with pytest.raises(ValidationError, match="no UTC offset"):
        stage_entities(TrainingSet(as_strings.assign(t=["2024-03-01T01:00:00", None]), key="k", event_time="t"))


def test_entities_from_an_existing_table_are_joined_in_a_deterministic_order(world: World) -> None:
    labels = LABELS.assign(label_time=LABELS["label_time"].map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")))
    body = io.BytesIO()
    labels.drop(columns=["churned"]).to_parquet(body, index=False)
    world.consumer.client("s3").put_object(Bucket=TRAINING, Key="labels/part-0.parquet", Body=body.getvalue())
    glue = world.consumer.client("glue")
    glue.create_database(DatabaseInput={"Name": "labels_db"})
    glue.create_table(DatabaseName="labels_db", TableInput={
        "Name": "labels", "TableType": "EXTERNAL_TABLE", "StorageDescriptor": {
            "Columns": [{"Name": "customer_id", "Type": "string"}, {"Name": "label_time", "Type": "string"}],
            "Location": f"s3://{TRAINING}/labels/", **PARQUET_STORAGE}})
    try:
        training = (TrainingSet("labels_db.labels", key="customer_id", event_time="label_time",
                                entity_time_kind="string")
                    .join(world.sessions, features=["spend"]).join(world.keywords, features=["keyword"]))
        built = training.build(session=world.consumer, output_uri=world.output(), timeout=60)
    finally:
        glue.delete_table(DatabaseName="labels_db", Name="labels")
    expected = _reference(world, LABELS.drop(columns=["churned"]))
    expected = expected.assign(label_time=labels["label_time"]).sort_values(["customer_id", "label_time"])
    _same(built.to_dataframe(), expected.reset_index(drop=True))

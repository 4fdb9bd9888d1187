"""Online reads and deletes on the embedded AWS: typed values, BatchGetRecord chunking and retries,
cross-account reads by ARN, soft and hard deletes."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_fixtures import Setup, customers, customers_spec

from featureshare.errors import ValidationError
from featureshare.groups import Feature, FeatureGroup, FeatureStore, GroupSpec
from featureshare.online import batch_requests
from featureshare.session import AccountSession
from featureshare.values import format_event_times


def offline_rows(setup: Setup, group: FeatureGroup) -> pd.DataFrame:
    setup.aws.flush()
    s3 = setup.central_admin.client("s3")
    bucket, _, prefix = group.offline_s3_uri.removeprefix("s3://").partition("/")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    tables = [pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in keys]
    return pa.concat_tables(tables).to_pandas()


def batch_get_sizes(store: FeatureStore) -> list[tuple[int, int]]:
    """(identifiers, ids) of every BatchGetRecord call the store sends (hook at the AWS boundary)."""
    sizes: list[tuple[int, int]] = []
    client = store.session.client("sagemaker-featurestore-runtime", max_pool_connections=10,
                                  retries={"total_max_attempts": 1, "mode": "standard"})
    client.meta.events.register("before-parameter-build.*.BatchGetRecord", lambda params, **_: sizes.append(
        (len(params["Identifiers"]), sum(len(i["RecordIdentifiersValueAsString"]) for i in params["Identifiers"]))))
    return sizes


@pytest.fixture
def loaded(setup: Setup, name: str) -> tuple[FeatureGroup, pd.DataFrame]:
    group = setup.ensure(customers_spec(name))
    df = customers(250)
    assert group.ingest(df).ok
    return group, df


def test_get_returns_typed_values(loaded):
    group, df = loaded
    record = group.get("c-000007")
    row = df.iloc[7]
    assert record == {"customer_id": "c-000007", "ts": format_event_times(df["ts"]).values[7],
                      "visits": int(row["visits"]), "spend": float(row["spend"]), "segment": row["segment"]}
    assert type(record["visits"]) is int and type(record["spend"]) is float


def test_get_of_an_unknown_record_is_none_and_features_can_be_selected(loaded):
    group, _ = loaded
    assert group.get("nobody") is None
    assert group.get("c-000001", features=["spend"]).keys() == {"spend"}
    with pytest.raises(ValidationError, match="no feature"):
        group.get("c-000001", features=["nope"])


def test_get_many_chunks_to_100_ids_per_identifier_and_keeps_request_order(setup: Setup, loaded):
    group, df = loaded
    sizes = batch_get_sizes(setup.store)
    ids = [f"c-{i:06d}" for i in reversed(range(250))] + ["missing"]

    frames = setup.store.get_many({group: ids})

    frame = frames[group.name]
    assert frame["customer_id"].tolist() == ids[:-1]
    assert str(frame["visits"].dtype) == "Int64" and str(frame["spend"].dtype) == "Float64"
    assert frame["spend"].tolist() == df["spend"].iloc[::-1].tolist()
    assert sizes == [(3, 251)]  # one call: the 251 ids split into identifiers of 100, 100 and 51


def test_get_many_retries_unprocessed_identifiers(setup: Setup, loaded):
    group, df = loaded
    setup.aws.inject_faults(unprocessed_rate=0.2, throttle_rate=0.2, seed=5)

    frame = setup.store.get_many({group.name: df["customer_id"].tolist()}, features=["spend"])[group.name]

    assert frame.columns.tolist() == ["customer_id", "spend"]
    assert frame["spend"].tolist() == df["spend"].tolist()
    assert setup.aws.fault_counts["Unprocessed"] > 0


def test_get_many_reads_several_groups_and_a_central_group_by_arn_from_the_consumer(setup: Setup, loaded, name):
    group, df = loaded
    other = setup.ensure(GroupSpec(f"{name}-scores", record_id="user", event_time="t", features=[
        Feature("user", "Integral"), Feature("t", "Fractional"), Feature("score", "Fractional")]))
    other.ingest(pd.DataFrame({"user": [1, 2], "t": [1.7e9, 1.7e9], "score": [0.5, None]}))
    consumer = FeatureStore(AccountSession(setup.consumer_admin))

    frames = consumer.get_many({group.arn: ["c-000001"], other.arn: [2, 1]},
                               features={group.name: ["segment"]})

    assert frames[group.name].to_dict("list") == {"customer_id": ["c-000001"], "segment": [df["segment"][1]]}
    scores = frames[other.name]
    assert scores["user"].tolist() == [2, 1] and str(scores["user"].dtype) == "Int64"
    assert scores["score"].isna().tolist() == [True, False]


def test_batch_requests_split_ids_and_identifiers_at_100():
    idents = [{"FeatureGroupName": f"g{i}", "RecordIdentifiersValueAsString": [str(j) for j in range(150)]}
              for i in range(60)]
    calls = batch_requests(idents)
    assert [len(c) for c in calls] == [100, 20]
    assert all(len(i["RecordIdentifiersValueAsString"]) <= 100 for c in calls for i in c)
    assert sum(len(i["RecordIdentifiersValueAsString"]) for c in calls for i in c) == 60 * 150


def test_soft_delete_hides_the_record_online_and_appends_an_is_deleted_row_offline(setup: Setup, loaded):
    group, df = loaded
    deleted_at = df["ts"].iloc[3] + pd.Timedelta(minutes=1)

    group.delete_record("c-000003", deleted_at.to_pydatetime())

    assert group.get("c-000003") is None
    rows = offline_rows(setup, group)
    mine = rows[rows["customer_id"] == "c-000003"].sort_values("ts")
    assert mine["is_deleted"].tolist() == [False, True]
    assert mine["ts"].iloc[1] == format_event_times(pd.Series([deleted_at])).values[0]
    assert mine[["visits", "spend", "segment"]].iloc[1].isna().all()
    assert group.get("c-000004") is not None


def test_hard_delete_removes_the_record_online(loaded):
    group, df = loaded
    group.delete_record("c-000009", format_event_times(df["ts"]).values[9], mode="hard")
    assert group.get("c-000009") is None


def test_delete_validates_mode_and_event_time_before_calling_aws(loaded):
    group, _ = loaded
    with pytest.raises(ValidationError, match="'soft' or 'hard'"):
        group.delete_record("c-000001", "2024-01-01T00:00:00Z", mode="purge")
    with pytest.raises(ValidationError, match="never guessed"):
        group.delete_record("c-000001", dt.datetime(2024, 1, 1))
    with pytest.raises(ValidationError, match="event time"):
        group.delete_record("c-000001", "yesterday")


def test_integral_record_ids_accept_ints_and_reject_fractions(setup: Setup, name: str):
    group = setup.ensure(GroupSpec(name, record_id="user", event_time="t", features=[
        Feature("user", "Integral"), Feature("t", "Fractional")]))
    group.ingest([{"user": 7, "t": 1.7e9}])
    assert group.get(7) == {"user": 7, "t": 1.7e9}
    assert group.get("7") == {"user": 7, "t": 1.7e9}
    with pytest.raises(ValidationError, match="record id"):
        group.get(7.5)


def test_get_many_sends_nothing_for_empty_requests(setup: Setup, loaded):
    group, _ = loaded
    sizes = batch_get_sizes(setup.store)
    frame = setup.store.get_many({group: []})[group.name]
    assert frame.empty and frame.columns[0] == "customer_id"
    assert sizes == []

"""Feature Store runtime of the embedded AWS: records, online semantics, batches, TTL, validation."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def runtime(central, group_request):
    """A runtime client plus a central group ``users`` (online + offline)."""
    central.client("sagemaker").create_feature_group(**group_request("users"))
    return central.client("sagemaker-featurestore-runtime")


def _values(response):
    return {f["FeatureName"]: f["ValueAsString"] for f in response.get("Record", [])}


def test_put_then_get_returns_the_record(runtime, make_record):
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-02T03:04:05Z", age=41))

    got = runtime.get_record(FeatureGroupName="users", RecordIdentifierValueAsString="u1")

    assert _values(got) == {"user_id": "u1", "event_time": "2024-01-02T03:04:05Z", "age": "41", "score": "0.5"}


def test_get_accepts_the_group_arn_and_filters_feature_names(central, runtime, make_record):
    arn = central.client("sagemaker").describe_feature_group(FeatureGroupName="users")["FeatureGroupArn"]
    runtime.put_record(FeatureGroupName=arn, Record=make_record("u1", "2024-01-02T03:04:05Z"))

    got = runtime.get_record(FeatureGroupName=arn, RecordIdentifierValueAsString="u1", FeatureNames=["age"])

    assert got["Record"] == [{"FeatureName": "age", "ValueAsString": "30"}]


def test_get_of_a_missing_record_returns_no_record(runtime):
    assert "Record" not in runtime.get_record(FeatureGroupName="users", RecordIdentifierValueAsString="nobody")


def test_newer_event_time_replaces_the_online_record(runtime, make_record):
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-01T00:00:00Z", age=1))
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-02T00:00:00Z", age=2))

    assert _values(runtime.get_record(FeatureGroupName="users", RecordIdentifierValueAsString="u1"))["age"] == "2"


def test_older_event_time_goes_to_the_offline_store_only(embedded_aws, runtime, make_record):
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-02T00:00:00Z", age=2))
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-01T00:00:00Z", age=1))

    assert _values(runtime.get_record(FeatureGroupName="users", RecordIdentifierValueAsString="u1"))["age"] == "2"
    assert embedded_aws.flush() == 2


def test_equal_event_time_overwrites_the_online_record(runtime, make_record):
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-02T00:00:00.000Z", age=1))
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-02T00:00:00Z", age=9))

    assert _values(runtime.get_record(FeatureGroupName="users", RecordIdentifierValueAsString="u1"))["age"] == "9"


def test_target_stores_offline_only_leaves_the_online_store_untouched(embedded_aws, runtime, make_record):
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-02T00:00:00Z"),
                       TargetStores=["OfflineStore"])

    assert "Record" not in runtime.get_record(FeatureGroupName="users", RecordIdentifierValueAsString="u1")
    assert embedded_aws.flush() == 1


def test_records_expire_after_their_ttl(central, group_request, make_record):
    now = dt.datetime.now(dt.UTC)
    fresh, stale = (now - dt.timedelta(minutes=5)), (now - dt.timedelta(hours=3))
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    central.client("sagemaker").create_feature_group(**group_request(
        "ttl", offline=False, OnlineStoreConfig={"EnableOnlineStore": True,
                                                 "TtlDuration": {"Unit": "Hours", "Value": 1}}))
    runtime = central.client("sagemaker-featurestore-runtime")
    runtime.put_record(FeatureGroupName="ttl", Record=make_record("fresh", fresh.strftime(fmt)))
    runtime.put_record(FeatureGroupName="ttl", Record=make_record("stale", stale.strftime(fmt)))
    runtime.put_record(FeatureGroupName="ttl", Record=make_record("long", stale.strftime(fmt)),
                       TtlDuration={"Unit": "Days", "Value": 1})

    got = runtime.get_record(FeatureGroupName="ttl", RecordIdentifierValueAsString="fresh",
                             ExpirationTimeResponse="Enabled")

    assert got["ExpiresAt"] == (fresh + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert "Record" not in runtime.get_record(FeatureGroupName="ttl", RecordIdentifierValueAsString="stale")
    assert "Record" in runtime.get_record(FeatureGroupName="ttl", RecordIdentifierValueAsString="long")


def test_soft_delete_hides_the_record_and_list_records_can_still_show_it(runtime, make_record):
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-02T00:00:00Z"))
    runtime.put_record(FeatureGroupName="users", Record=make_record("u2", "2024-01-02T00:00:00Z"))

    runtime.delete_record(FeatureGroupName="users", RecordIdentifierValueAsString="u1",
                          EventTime="2024-01-03T00:00:00Z")

    assert "Record" not in runtime.get_record(FeatureGroupName="users", RecordIdentifierValueAsString="u1")
    assert runtime.list_records(FeatureGroupName="users")["RecordIdentifiers"] == ["u2"]
    assert runtime.list_records(FeatureGroupName="users",
                                IncludeSoftDeletedRecords=True)["RecordIdentifiers"] == ["u1", "u2"]


def test_list_records_pages_with_next_token_and_rejects_a_forged_one(runtime, make_record):
    for rid in ("u1", "u2", "u3"):
        runtime.put_record(FeatureGroupName="users", Record=make_record(rid, "2024-01-02T00:00:00Z"))

    first = runtime.list_records(FeatureGroupName="users", MaxResults=2)
    second = runtime.list_records(FeatureGroupName="users", MaxResults=2, NextToken=first["NextToken"])

    assert first["RecordIdentifiers"] + second["RecordIdentifiers"] == ["u1", "u2", "u3"]
    assert "NextToken" not in second
    with pytest.raises(ClientError, match="Invalid NextToken 'page-2'") as info:
        runtime.list_records(FeatureGroupName="users", NextToken="page-2")
    assert info.value.response["Error"]["Code"] == "ValidationError"


def test_hard_delete_removes_the_record_entirely(runtime, make_record):
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-02T00:00:00Z"))

    runtime.delete_record(FeatureGroupName="users", RecordIdentifierValueAsString="u1",
                          EventTime="2024-01-03T00:00:00Z", DeletionMode="HardDelete")

    assert runtime.list_records(FeatureGroupName="users", IncludeSoftDeletedRecords=True)["RecordIdentifiers"] == []


def test_delete_older_than_the_online_record_does_not_delete_it(runtime, make_record):
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-02T00:00:00Z"))

    runtime.delete_record(FeatureGroupName="users", RecordIdentifierValueAsString="u1",
                          EventTime="2024-01-01T00:00:00Z")

    assert "Record" in runtime.get_record(FeatureGroupName="users", RecordIdentifierValueAsString="u1")


def test_batch_write_spans_groups_and_reports_errors_per_entry(central, runtime, group_request, make_record):
    central.client("sagemaker").create_feature_group(**group_request("other", offline=False))
    good = {"FeatureGroupName": "users", "Record": make_record("u1", "2024-01-02T00:00:00Z")}
    other = {"FeatureGroupName": "other", "Record": make_record("o1", "2024-01-02T00:00:00Z")}
    bad = {"FeatureGroupName": "users", "Record": make_record("u2", "not-a-time")}
    missing = {"FeatureGroupName": "missing", "Record": make_record("m1", "2024-01-02T00:00:00Z")}

    response = runtime.batch_write_record(Entries=[good, other, bad, missing])

    assert [(e["Entry"]["Record"][0]["ValueAsString"], e["ErrorCode"]) for e in response["Errors"]] == [
        ("u2", "ValidationError"), ("m1", "ResourceNotFound")]
    assert response["UnprocessedEntries"] == []
    assert "Record" in runtime.get_record(FeatureGroupName="other", RecordIdentifierValueAsString="o1")


def test_batch_write_of_more_than_25_entries_is_rejected(runtime, make_record):
    entries = [{"FeatureGroupName": "users", "Record": make_record(f"u{i}", "2024-01-02T00:00:00Z")}
               for i in range(26)]

    with pytest.raises(ClientError, match=r"Entries must hold 1\.\.25") as info:
        runtime.batch_write_record(Entries=entries)

    assert info.value.response["Error"]["Code"] == "ValidationError"


def test_batch_get_returns_found_records_and_errors_for_unknown_groups(runtime, make_record):
    runtime.put_record(FeatureGroupName="users", Record=make_record("u1", "2024-01-02T00:00:00Z"))

    response = runtime.batch_get_record(Identifiers=[
        {"FeatureGroupName": "users", "RecordIdentifiersValueAsString": ["u1", "nobody"], "FeatureNames": ["age"]},
        {"FeatureGroupName": "missing", "RecordIdentifiersValueAsString": ["x"]},
    ])

    assert response["Records"] == [{"FeatureGroupName": "users", "RecordIdentifierValueAsString": "u1",
                                    "Record": [{"FeatureName": "age", "ValueAsString": "30"}]}]
    assert [(e["FeatureGroupName"], e["ErrorCode"]) for e in response["Errors"]] == [("missing", "ResourceNotFound")]
    assert response["UnprocessedIdentifiers"] == []


@pytest.mark.parametrize(("groups", "ids"), [(101, 1), (1, 101)])
def test_batch_get_beyond_100_by_100_is_rejected(runtime, groups, ids):
    identifiers = [{"FeatureGroupName": "users", "RecordIdentifiersValueAsString": [str(i) for i in range(ids)]}
                   for _ in range(groups)]

    with pytest.raises(ClientError, match=r"must hold 1\.\.100"):
        runtime.batch_get_record(Identifiers=identifiers)


def _rec(*pairs):
    return [{"FeatureName": name, "ValueAsString": value} for name, value in pairs]


ID, TS = ("user_id", "u1"), ("event_time", "2024-01-02T00:00:00Z")


@pytest.mark.parametrize(("record", "message"), [
    (_rec(ID, TS, ("nope", "1")), "Unknown feature name 'nope'"),
    (_rec(TS), "Record identifier feature 'user_id'"),
    (_rec(ID), "Event time feature 'event_time' is missing"),
    (_rec(ID, TS, ("age", "4.5")), "Invalid value '4.5' for Integral feature 'age'"),
    (_rec(ID, TS, ("score", "high")), "Invalid value 'high' for Fractional feature 'score'"),
    (_rec(ID, ("event_time", "2024-01-02T00:00:00.123456Z")), "Invalid EventTime"),
    (_rec(ID, ("event_time", "2024-01-02T00:00:00+00:00")), "Invalid EventTime"),
    (_rec(ID, TS, ("user_id", "u2")), "appears more than once"),
    (_rec(ID, TS, ("age", "9" * 400_000)), "Integral feature"),
    (_rec(("user_id", "x" * 400_000), TS), "exceeds the limit"),
])
def test_invalid_records_are_validation_errors(runtime, record, message):
    with pytest.raises(ClientError, match=message) as info:
        runtime.put_record(FeatureGroupName="users", Record=record)

    assert info.value.response["Error"]["Code"] == "ValidationError"


def test_fractional_event_time_is_unix_epoch_seconds(central, runtime, make_record):
    central.client("sagemaker").create_feature_group(
        FeatureGroupName="epoch", RecordIdentifierFeatureName="id", EventTimeFeatureName="ts",
        FeatureDefinitions=[{"FeatureName": "id", "FeatureType": "Integral"},
                            {"FeatureName": "ts", "FeatureType": "Fractional"}],
        OnlineStoreConfig={"EnableOnlineStore": True})
    runtime.put_record(FeatureGroupName="epoch", Record=[{"FeatureName": "id", "ValueAsString": "7"},
                                                         {"FeatureName": "ts", "ValueAsString": "1704164645.25"}])

    with pytest.raises(ClientError, match="for Fractional feature 'ts'"):
        runtime.put_record(FeatureGroupName="epoch", Record=_rec(("id", "7"), ("ts", "2024-01-02T00:00:00Z")))
    assert "Record" in runtime.get_record(FeatureGroupName="epoch", RecordIdentifierValueAsString="7")


def test_get_on_an_offline_only_group_is_a_validation_error(central, runtime, group_request, make_record):
    central.client("sagemaker").create_feature_group(**group_request("cold", online=False))

    with pytest.raises(ClientError, match="has no online store"):
        runtime.get_record(FeatureGroupName="cold", RecordIdentifierValueAsString="u1")


def test_put_into_a_missing_group_is_resource_not_found(runtime, make_record):
    with pytest.raises(ClientError, match="not found") as info:
        runtime.put_record(FeatureGroupName="missing", Record=make_record("u1", "2024-01-02T00:00:00Z"))

    assert info.value.response["Error"]["Code"] == "ResourceNotFound"

"""GroupSpec: validation (every problem, with field and value), inference from DataFrames, request building."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from featureshare.errors import ValidationError
from featureshare.groups import Feature, FeatureType, GroupSpec, Throughput, ttl_duration

INT, F, S = FeatureType.INTEGRAL, FeatureType.FRACTIONAL, FeatureType.STRING


def spec(**changes) -> GroupSpec:
    base = dict(name="customers", record_id="customer_id", event_time="ts",
                features=[Feature("customer_id", S), Feature("ts", S), Feature("spend", F)])
    return GroupSpec(**{**base, **changes})


def problem_fields(s: GroupSpec) -> list[str]:
    return [p.field for p in s.problems()]


def test_a_valid_spec_has_no_problems_and_validates_to_itself():
    s = spec()
    assert s.problems() == []
    assert s.validate() is s


@pytest.mark.parametrize("name", ["", "-leading", "trailing_", "has space", "a" * 65, "ünï"])
def test_invalid_group_names_are_reported_with_the_value(name):
    with pytest.raises(ValidationError, match="group names are") as info:
        spec(name=name).validate()
    assert info.value.field == "name"
    assert info.value.value == name


def test_invalid_feature_names_are_reported_per_feature():
    s = spec(features=[Feature("customer_id", S), Feature("ts", S), Feature("bad name", INT)])
    assert problem_fields(s) == ["features[2].name"]


@pytest.mark.parametrize("reserved", ["is_deleted", "write_time", "api_invocation_time", "year", "month", "day",
                                      "hour", "Year"])
def test_reserved_feature_names_are_rejected(reserved):
    s = spec(features=[Feature("customer_id", S), Feature("ts", S), Feature(reserved, INT)])
    with pytest.raises(ValidationError, match="reserved") as info:
        s.validate()
    assert info.value.value == reserved


def test_duplicate_features_are_rejected_case_insensitively():
    s = spec(features=[Feature("customer_id", S), Feature("ts", S), Feature("spend", F), Feature("Spend", INT)])
    with pytest.raises(ValidationError, match="duplicates feature 'spend'") as info:
        s.validate()
    assert info.value.field == "features[3].name"


def test_record_id_and_event_time_must_be_features():
    s = spec(record_id="nope", event_time="missing")
    assert problem_fields(s) == ["record_id", "event_time"]


def test_record_id_must_be_integral_or_string_and_event_time_string_or_fractional():
    s = spec(features=[Feature("customer_id", F), Feature("ts", INT), Feature("spend", F)])
    problems = s.problems()
    assert [(p.field, p.value) for p in problems] == [("record_id", "customer_id"), ("event_time", "ts")]
    assert "allowed: Integral or String" in problems[0].message
    assert "allowed: String or Fractional" in problems[1].message


def test_unknown_feature_type_is_rejected():
    s = spec(features=[Feature("customer_id", S), Feature("ts", S), Feature("x", "Vector")])
    assert problem_fields(s) == ["features[2].type"]


def test_more_than_2500_features_is_rejected():
    many = [Feature("customer_id", S), Feature("ts", S)] + [Feature(f"f{i}", F) for i in range(2499)]
    with pytest.raises(ValidationError, match="at most 2500 features") as info:
        spec(features=many).validate()
    assert info.value.value == 2501


def test_more_than_50_tags_is_rejected():
    with pytest.raises(ValidationError, match="at most 50 tags"):
        spec(tags={f"k{i}": "v" for i in range(51)}).validate()


def test_invalid_tag_keys_and_values_are_rejected():
    s = spec(tags={"aws:reserved": "x", "ok": "bad\nvalue"})
    assert problem_fields(s) == ["tags['aws:reserved']", "tags['ok']"]


def test_iceberg_needs_a_string_event_time():
    s = spec(table_format="Iceberg", features=[Feature("customer_id", S), Feature("ts", F)])
    with pytest.raises(ValidationError, match="Iceberg tables need a String event time"):
        s.validate()


def test_unknown_table_format_is_rejected():
    assert problem_fields(spec(table_format="Delta")) == ["table_format"]


def test_ttl_needs_an_online_store():
    with pytest.raises(ValidationError, match="TTL needs the online store") as info:
        spec(online=False, ttl=dt.timedelta(days=1)).validate()
    assert info.value.field == "ttl"


def test_ttl_must_be_whole_seconds():
    assert problem_fields(spec(ttl=dt.timedelta(milliseconds=1500))) == ["ttl"]


def test_a_group_needs_some_store():
    assert problem_fields(spec(online=False, offline=False)) == ["online"]


def test_in_memory_tier_has_no_offline_store():
    assert problem_fields(spec(online_storage="InMemory")) == ["online_storage"]
    assert spec(online_storage="InMemory", offline=False).problems() == []


def test_provisioned_throughput_needs_capacity_units_and_kms_keys_need_their_store():
    s = spec(throughput=Throughput("Provisioned"), offline=False, offline_kms_key="alias/x")
    assert problem_fields(s) == ["offline_kms_key", "throughput"]


def test_description_is_limited_to_128_characters():
    assert problem_fields(spec(description="x" * 129)) == ["description"]


def test_all_problems_are_reported_at_once_each_with_field_and_value():
    s = GroupSpec(name="bad name", record_id="id", event_time="ts", table_format="Iceberg",
                  features=[Feature("id", F), Feature("ts", F), Feature("is_deleted", S), Feature("ts", S)],
                  online=False, ttl=dt.timedelta(hours=1))
    with pytest.raises(ValidationError) as info:
        s.validate()
    assert len(info.value.problems) == 6
    for text in ("name='bad name'", "is_deleted", "duplicates feature 'ts'", "record_id='id'",
                 "Iceberg", "ttl="):
        assert any(text in p for p in info.value.problems), text


def test_spec_copies_its_inputs_so_later_changes_do_not_leak_in():
    features = [Feature("customer_id", S), Feature("ts", S)]
    tags = {"team": "search"}
    s = spec(features=features, tags=tags)
    features.append(Feature("late", INT))
    tags["team"] = "other"
    assert len(s.features) == 2
    assert s.tags == {"team": "search"}


def test_feature_type_accepts_its_string_value():
    assert Feature("x", "Integral").type is FeatureType.INTEGRAL


# ------------------------------------------------------------------------------------------- inference

def pandas3_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": pd.Series(["a", "b"], dtype="str"),
        "ts": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 10:00"]).tz_localize("Europe/Paris"),
        "visits": pd.Series([1, None], dtype="Int64"),
        "spend": pd.Series([1.5, None], dtype="Float64"),
        "vip": pd.Series([True, None], dtype="boolean"),
        "segment": pd.Series(["x", "y"], dtype="category"),
        "score": [0.25, 0.5],
        "count": [1, 2],
        "signup": pd.to_datetime(["2023-01-01", "2023-06-01"]),
    })


def test_spec_is_inferred_from_pandas3_dtypes():
    s = GroupSpec.from_dataframe("customers", pandas3_frame(), record_id="customer_id", event_time="ts")
    assert s.feature_types == {"customer_id": S, "ts": S, "visits": INT, "spend": F, "vip": INT, "segment": S,
                               "score": F, "count": INT, "signup": S}


def test_numeric_event_time_is_inferred_as_fractional_epoch_seconds():
    df = pd.DataFrame({"id": [1, 2], "ts": [1.7e9, 1.8e9]})
    s = GroupSpec.from_dataframe("g", df, record_id="id", event_time="ts")
    assert s.feature_types == {"id": INT, "ts": F}


def test_inference_explains_every_column_it_cannot_infer_and_overrides_fill_in():
    df = pandas3_frame().assign(empty=[None, None], lists=[[1], [2]], wait=pd.to_timedelta(["1s", "2s"]))
    with pytest.raises(ValidationError, match="cannot build a spec") as info:
        GroupSpec.from_dataframe("customers", df, record_id="customer_id", event_time="ts")
    assert len(info.value.problems) == 3
    assert any("entirely missing" in p for p in info.value.problems)
    assert any("durations" in p for p in info.value.problems)
    assert "types=" in str(info.value)
    s = GroupSpec.from_dataframe("customers", df, record_id="customer_id", event_time="ts",
                                 types={"empty": "String"}, exclude=["lists", "wait"])
    assert s.feature_types["empty"] is S


def test_inference_reports_missing_key_columns_and_spec_problems_together():
    df = pd.DataFrame({"id": ["a"], "is_deleted": [1]})
    with pytest.raises(ValidationError) as info:
        GroupSpec.from_dataframe("g", df, record_id="id", event_time="ts")
    text = " ".join(info.value.problems)
    assert "'ts' is not in the DataFrame" in text
    assert "reserved" in text


def test_inference_passes_spec_options_through():
    s = GroupSpec.from_dataframe("customers", pandas3_frame(), record_id="customer_id", event_time="ts",
                                 description="d", online=False, tags={"team": "search"})
    assert (s.description, s.online, s.tags) == ("d", False, {"team": "search"})


# -------------------------------------------------------------------------------------------- requests

def test_create_request_contains_stores_ttl_kms_and_tags():
    s = spec(ttl=dt.timedelta(days=14), online_kms_key="alias/online", offline_kms_key="alias/off",
             description="customers", throughput=Throughput("Provisioned", 5, 10))
    request = s.create_request(offline_s3_uri="s3://b/p", role_arn="arn:aws:iam::111111111111:role/r",
                               tags={"team": "search"})
    assert request["OnlineStoreConfig"] == {"EnableOnlineStore": True, "SecurityConfig": {"KmsKeyId": "alias/online"},
                                            "TtlDuration": {"Unit": "Weeks", "Value": 2}}
    assert request["OfflineStoreConfig"] == {"S3StorageConfig": {"S3Uri": "s3://b/p", "KmsKeyId": "alias/off"},
                                             "TableFormat": "Glue"}
    assert request["Tags"] == [{"Key": "team", "Value": "search"}]
    assert request["ThroughputConfig"] == {"ThroughputMode": "Provisioned", "ProvisionedReadCapacityUnits": 5,
                                           "ProvisionedWriteCapacityUnits": 10}
    assert [d["FeatureName"] for d in request["FeatureDefinitions"]] == ["customer_id", "ts", "spend"]


def test_online_only_request_has_no_offline_config_or_role():
    request = spec(offline=False).create_request(offline_s3_uri=None, role_arn=None, tags={})
    assert "OfflineStoreConfig" not in request and "RoleArn" not in request


@pytest.mark.parametrize(("ttl", "expected"), [
    (dt.timedelta(seconds=90), {"Unit": "Seconds", "Value": 90}),
    (dt.timedelta(hours=3), {"Unit": "Hours", "Value": 3}),
    (dt.timedelta(days=8), {"Unit": "Days", "Value": 8}),
])
def test_ttl_uses_the_largest_exact_unit(ttl, expected):
    assert ttl_duration(ttl) == expected


def describe_of(s: GroupSpec, **changes) -> dict:
    reply = {"RecordIdentifierFeatureName": s.record_id, "EventTimeFeatureName": s.event_time,
             "FeatureDefinitions": [{"FeatureName": f.name, "FeatureType": str(f.type)} for f in s.features],
             "OnlineStoreConfig": {"EnableOnlineStore": s.online},
             "OfflineStoreConfig": {"TableFormat": "Glue"}}
    reply.update(changes)
    return reply


def test_differences_are_empty_for_the_same_schema():
    assert spec().differences(describe_of(spec())) == []


def test_differences_list_added_removed_and_retyped_features():
    existing = describe_of(spec(), FeatureDefinitions=[
        {"FeatureName": "customer_id", "FeatureType": "String"}, {"FeatureName": "ts", "FeatureType": "String"},
        {"FeatureName": "spend", "FeatureType": "Integral"}, {"FeatureName": "old", "FeatureType": "String"}])
    wanted = spec(features=[*spec().features, Feature("new", INT)])
    diffs = wanted.differences(existing)
    assert diffs == ["feature 'spend': group type Integral, spec type Fractional",
                     "feature 'new' (Integral) is in the spec but not in the group",
                     "feature 'old' (String) is in the group but not in the spec"]
    assert [f.name for f in wanted.additions(existing)] == ["new"]

"""The dataset spec file: forms accepted, every problem reported up front with its field, round trips."""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featureshare.dataset_spec import DatasetSpec, EntitiesRef, load_entities, load_spec
from featureshare.errors import ConfigError, ValidationError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "dataset.example.toml"


def minimal(**overrides: object) -> dict:
    data: dict = {"entities": "analytics.labels", "key": "customer_id", "event_time": "label_time",
                  "groups": [{"name": "users"}]}
    data.update(overrides)
    return data


def test_the_example_spec_is_valid_and_resolves_its_entities_file_next_to_itself() -> None:
    spec = load_spec(EXAMPLE)

    assert spec.name == "churn-v1"
    assert spec.entities == EntitiesRef("file", str(EXAMPLE.parent / "labels.parquet"))
    assert [(g.name, g.account, g.on) for g in spec.groups] == [("sessions", "central", "customer_id"),
                                                                 ("keywords", "local", "customer_id")]
    assert spec.groups[0].features == ("session_count", "avg_session_minutes")
    assert spec.output_uri("s3://featureshare-training-222222222222/training-sets/") == \
        "s3://featureshare-training-222222222222/training-sets/churn-v1/"


@pytest.mark.parametrize(("overrides", "needs_central"), [
    ({}, True),
    ({"groups": [{"name": "users", "account": "local"}]}, False),
    ({"groups": [{"name": "users", "account": "local"}], "strategy": "central-role"}, True),
])
def test_a_spec_needs_a_central_session_for_a_central_group_or_the_central_role_strategy(
        overrides: dict, needs_central: bool) -> None:
    assert DatasetSpec.from_dict(minimal(**overrides)).needs_central is needs_central


@pytest.mark.parametrize(("entities", "kind"), [
    ("labels.csv", "file"), ("data/labels.parquet", "file"), ("s3://my-bucket/labels/2024.parquet", "s3"),
    ("analytics.labels", "table"), ("central.analytics.labels", "table"), ({"table": "db.t"}, "table"),
    ({"uri": "s3://my-bucket/x.csv"}, "s3"), ({"path": "x.pq"}, "file"),
])
def test_entities_can_be_a_file_an_s3_object_or_a_table(entities: object, kind: str) -> None:
    assert DatasetSpec.from_dict(minimal(entities=entities)).entities.kind == kind


@pytest.mark.parametrize("entities", ["labels.txt", "s3://my-bucket/labels.json", {"path": "a.csv", "table": "d.t"},
                                      "no_dot_here", 42])
def test_unreadable_entity_sources_are_rejected_naming_the_field(entities: object) -> None:
    with pytest.raises(ValidationError, match="entities") as info:
        DatasetSpec.from_dict(minimal(entities=entities))
    assert info.value.field.startswith("entities")


def test_s3_uris_of_entities_and_output_are_checked_by_the_one_s3_rule_naming_field_and_value() -> None:
    with pytest.raises(ValidationError) as info:
        DatasetSpec.from_dict(minimal(entities={"uri": "s3://My_Bucket/labels.csv"}, output="gs://bucket/sets/"))
    assert info.value.problems == [
        "entities.uri='s3://My_Bucket/labels.csv' is not an s3://bucket/key URI: 'My_Bucket' is not a bucket name "
        "(3-63 lower-case letters, digits, dots and hyphens)",
        "output='gs://bucket/sets/' is not an s3://bucket/prefix URI: it does not start with s3://"]


def test_every_problem_is_reported_at_once_with_its_field_name() -> None:
    bad = {"entities": "labels.csv", "key": "customer id", "format": "xlsx", "strategy": "magic",
           "as_of": "2024-06-01T00:00:00", "colour": "blue",
           "groups": [{"name": "users", "arn": "arn:aws:sagemaker:us-east-1:111111111111:feature-group/users"},
                      {"name": "bad name!", "how": "outer", "ttl": "forever", "account": "other"}]}

    with pytest.raises(ValidationError, match="invalid dataset spec") as info:
        DatasetSpec.from_dict(bad, source="bad.toml")

    fields = {p.split("=", 1)[0] for p in info.value.problems}
    assert {"colour", "key", "event_time", "format", "strategy", "as_of", "groups[0]", "groups[1].name",
            "groups[1].how", "groups[1].ttl", "groups[1].account"} <= fields
    assert str(info.value).startswith("bad.toml: invalid dataset spec (")


def test_a_naive_as_of_needs_the_spec_timezone() -> None:
    with pytest.raises(ValidationError, match="as_of"):
        DatasetSpec.from_dict(minimal(as_of="2024-06-01T02:00:00"))

    spec = DatasetSpec.from_dict(minimal(as_of="2024-06-01T02:00:00", timezone="Europe/Berlin"))

    assert spec.as_of == dt.datetime(2024, 6, 1, 0, 0, tzinfo=dt.UTC)


def test_groups_join_on_the_key_unless_told_otherwise_and_default_to_central_left_joins() -> None:
    spec = DatasetSpec.from_dict(minimal(groups=[{"name": "users"}, {"name": "orders", "on": "order_id",
                                                                    "account": "local", "how": "inner"}]))
    assert [(g.on, g.account, g.how) for g in spec.groups] == [("customer_id", "central", "left"),
                                                               ("order_id", "local", "inner")]


def test_without_output_and_default_location_the_user_is_told_what_to_set() -> None:
    with pytest.raises(ValidationError, match="no output") as info:
        DatasetSpec.from_dict(minimal()).output_uri(None)
    assert info.value.field == "output"


def test_a_missing_spec_file_is_a_config_error_and_bad_toml_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_spec(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("entities = [unclosed")
    with pytest.raises(ValidationError, match="not valid TOML"):
        load_spec(tmp_path / "bad.toml")


def test_a_json_spec_reads_like_the_toml_one(tmp_path: Path) -> None:
    toml_spec = load_spec(EXAMPLE)
    (tmp_path / "spec.json").write_text(json.dumps(tomllib.loads(EXAMPLE.read_text())))
    (tmp_path / "labels.parquet").write_bytes(b"")
    json_spec = load_spec(tmp_path / "spec.json")
    assert json_spec.groups == toml_spec.groups
    assert json_spec.entities == EntitiesRef("file", str(tmp_path / "labels.parquet"))


names = st.from_regex(r"[a-z](_?[a-z0-9]){0,8}", fullmatch=True)


@settings(max_examples=40, deadline=None)
@given(key=names, ttl=st.one_of(st.none(), st.sampled_from(["30d", "12h", "90m", 3600]), ),
       features=st.one_of(st.none(), st.lists(names, min_size=1, max_size=3, unique=True)),
       how=st.sampled_from(["left", "inner"]), account=st.sampled_from(["central", "local"]),
       as_of=st.one_of(st.none(), st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2037, 1, 1),
                                               timezones=st.just(dt.UTC))),
       output=st.one_of(st.none(), st.just("s3://my-bucket/sets/a/")))
def test_to_toml_reads_back_to_an_equal_spec(key, ttl, features, how, account, as_of, output) -> None:
    group = {"name": "users", "how": how, "account": account}
    if ttl is not None:
        group["ttl"] = ttl
    if features is not None:
        group["features"] = features
    data = minimal(key=key, groups=[group, {"arn": "arn:aws:sagemaker:us-east-1:111111111111:feature-group/x"}])
    if as_of is not None:
        data["as_of"] = as_of.isoformat()
    if output:
        data["output"] = output
    spec = DatasetSpec.from_dict(data)

    assert DatasetSpec.from_dict(tomllib.loads(spec.to_toml())) == spec


def test_csv_entities_get_the_join_key_type_of_the_group_and_localised_label_times(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("customer_id,account,label_time,label\n"
                                         "7,007,2024-06-01 10:00:00,1\n8,008,2024-06-02 11:30:00,0\n")
    spec = DatasetSpec.from_dict(minimal(entities="labels.csv", timezone="Europe/Berlin",
                                         groups=[{"name": "users"}, {"name": "accounts", "on": "account"}]),
                                 base_dir=tmp_path)

    frame = load_entities(spec, session=None, record_id_types={"customer_id": "Integral", "account": "String"})

    assert frame["customer_id"].tolist() == [7, 8] and str(frame["customer_id"].dtype) == "Int64"
    assert frame["account"].tolist() == ["007", "008"]
    assert frame["label_time"].iloc[0] == pd.Timestamp("2024-06-01 08:00:00", tz="UTC")
    assert frame["label"].tolist() == [1, 0]


def test_entities_missing_a_named_column_fail_with_the_columns_found(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a"], "label_time": [pd.Timestamp("2024-01-01", tz="UTC")]}).to_parquet(tmp_path / "e.parquet")
    spec = DatasetSpec.from_dict(minimal(entities="e.parquet"), base_dir=tmp_path)
    with pytest.raises(ValidationError, match=r"\['customer_id'\] are not in"):
        load_entities(spec, session=None)

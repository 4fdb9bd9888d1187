"""Topology loading and its up-front validation."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from featureshare.config import CONFIG_ENV, Topology, load_topology
from featureshare.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "featureshare.example.toml"


def example() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


def test_the_shipped_example_loads() -> None:
    topology = load_topology(EXAMPLE)
    assert topology.region == "us-east-1"
    assert topology.central.account_id == "111111111111"
    assert topology.central.offline_s3_uri == "s3://featureshare-offline-111111111111/feature-store"
    consumer = topology.consumer("search")
    assert consumer is topology.consumer("222222222222")
    assert consumer.execution_role_arns == ("arn:aws:iam::222222222222:role/SearchSageMakerExecution",)
    assert consumer.training_s3_uri == "s3://featureshare-training-222222222222/training-sets/"
    assert topology.teams == ("search", "reviews")


def test_the_path_comes_from_the_environment_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(EXAMPLE))
    assert load_topology().source == str(EXAMPLE)


def test_a_missing_file_says_how_to_provide_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found.*featureshare\.example\.toml"):
        load_topology(tmp_path / "nope.toml")


def test_invalid_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("region = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_topology(bad)


def _with(path: str, value: object) -> dict:
    data = example()
    target = data
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    target[parts[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("region", "us-east", "region: 'us-east' is not an AWS region"),
        ("region", 5, "region: must be a string"),
        ("central.account_id", "11111111111", "central.account_id: '11111111111' is not a 12-digit account id"),
        ("central.account_id", "abcdefghijkl", "is not a 12-digit account id"),
        ("central.access_role_arn", "arn:aws:iam::111111111111:user/x", "is not an IAM role ARN"),
        ("central.access_role_arn", "arn:aws:iam::111111111111:role/Zugriffsrolle-ä", "is not an IAM role ARN"),
        ("central.access_role_arn", "arn:aws:iam::333333333333:role/FeatureShareAccess",
         "is in account 333333333333, expected 111111111111"),
        ("central.offline_bucket", "Bad_Bucket", "central.offline_bucket: 'Bad_Bucket' is not a valid S3 bucket"),
        ("central.offline_bucket", "ab", "is not a valid S3 bucket name"),
        ("central.kms_key", "my-key", "central.kms_key: 'my-key' is not a KMS key ARN"),
        ("central.colour", "blue", "central.colour: unknown key"),
        ("consumers.0.account_id", "111111111111", "is the central account"),
        ("consumers.0.execution_role_arns", [], "must be a non-empty list of role ARNs"),
        ("consumers.0.execution_role_arns", ["arn:aws:iam::999999999999:role/x"], "expected 222222222222"),
        ("consumers.0.training_bucket", "UPPER", "consumers[0].training_bucket: 'UPPER'"),
        ("consumers.0.team", "reviewers", "'reviewers' is not one of teams"),
        ("consumers.0.athena_workgroup", "bad workgroup", "is not an Athena workgroup name"),
        ("consumers.0.extra", 1, "consumers[0].extra: unknown key"),
        ("teams", "search", "teams: must be a list"),
        ("unknown_top", 1, "unknown_top: unknown key"),
    ],
)
def test_each_invalid_value_is_reported_with_its_field_and_value(path: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Topology.from_dict(_with(path, value))


def test_every_problem_is_reported_at_once() -> None:
    data = _with("region", "mars")
    data["central"]["account_id"] = "12"
    data["consumers"][0]["training_bucket"] = "X"
    with pytest.raises(ConfigError) as info:
        Topology.from_dict(data)
    assert len(info.value.problems) == 3
    assert "3 problems" in str(info.value)


def test_missing_tables_are_named() -> None:
    with pytest.raises(ConfigError, match="missing \\[central\\] table") as info:
        Topology.from_dict({"region": "us-east-1"})
    assert any("consumers" in p for p in info.value.problems)


def test_an_unknown_consumer_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known: search \\(222222222222\\)"):
        load_topology(EXAMPLE).consumer("ranking")

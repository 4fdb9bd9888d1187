"""The refreshable cross-account session layer, on moto's STS with real botocore."""

from __future__ import annotations

import datetime as dt
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import botocore.session
import pytest
import time_machine
from moto import mock_aws

from featureshare.errors import ConfigError, ValidationError
from featureshare.session import AccountSession, SessionSpec, assume_role

CENTRAL_ROLE = "arn:aws:iam::111111111111:role/FeatureShareAccess"
START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MOTO_ACCOUNT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


class AssumeRoleSpy:
    """Counts AssumeRole requests and keeps their parameters, through botocore's public event hooks."""

    def __init__(self, session: boto3.Session) -> None:
        self.calls: list[dict] = []
        self._lock = threading.Lock()
        session.events.register("provide-client-params.sts.AssumeRole", self._record)

    def _record(self, params: dict, **_: object) -> None:
        with self._lock:
            self.calls.append(dict(params))


def test_assumed_session_acts_in_the_central_account_and_the_source_in_its_own(aws: None) -> None:
    source = boto3.Session(region_name="us-east-1")
    central = assume_role(CENTRAL_ROLE, source=source)

    assert AccountSession(source).account_id == "123456789012"
    assert central.account_id == "111111111111"
    assert central.whoami().arn.startswith("arn:aws:sts::111111111111:assumed-role/FeatureShareAccess/")
    central.client("s3").create_bucket(Bucket="central-only-bucket")
    assert [b["Name"] for b in central.client("s3").list_buckets()["Buckets"]] == ["central-only-bucket"]
    assert source.client("s3").list_buckets()["Buckets"] == []


def test_credentials_are_fetched_on_first_use_and_refreshed_fifteen_minutes_before_expiry(aws: None) -> None:
    source = boto3.Session(region_name="us-east-1")
    spy = AssumeRoleSpy(source)
    with time_machine.travel(START, tick=False) as clock:
        central = assume_role(CENTRAL_ROLE, source=source, duration_seconds=3600)
        assert len(spy.calls) == 0
        central.client("sts").get_caller_identity()
        assert len(spy.calls) == 1
        clock.shift(dt.timedelta(minutes=40))
        central.client("sts").get_caller_identity()
        assert len(spy.calls) == 1
        clock.shift(dt.timedelta(minutes=6))
        central.client("sts").get_caller_identity()
        assert len(spy.calls) == 2


def test_sixty_four_threads_in_the_mandatory_window_cause_exactly_one_assume_role(aws: None) -> None:
    source = boto3.Session(region_name="us-east-1")
    spy = AssumeRoleSpy(source)
    with time_machine.travel(START, tick=False) as clock:
        central = assume_role(CENTRAL_ROLE, source=source)
        sts = central.client("sts", max_pool_connections=64)
        sts.get_caller_identity()
        clock.shift(dt.timedelta(minutes=52))  # 8 minutes left: inside botocore's 10-minute mandatory window
        barrier = threading.Barrier(64)

        def call(_: int) -> str:
            barrier.wait(timeout=30)
            return sts.get_caller_identity()["Account"]

        with ThreadPoolExecutor(64) as pool:
            accounts = list(pool.map(call, range(64)))
    assert accounts == ["111111111111"] * 64
    assert len(spy.calls) == 2


def test_an_eight_hour_job_with_sixty_four_threads_needs_one_assume_role_per_refresh_window(aws: None) -> None:
    source = boto3.Session(region_name="us-east-1")
    spy = AssumeRoleSpy(source)
    failures: list[BaseException] = []
    with time_machine.travel(START, tick=False) as clock:
        central = assume_role(CENTRAL_ROLE, source=source)
        sts = central.client("sts", max_pool_connections=64)

        def call(_: int) -> None:
            try:
                sts.get_caller_identity()
            except BaseException as exc:  # counted, not swallowed: the assertion below reports them
                failures.append(exc)

        with ThreadPoolExecutor(64) as pool:
            for _step in range(8 * 60 // 10 + 1):  # every 10 simulated minutes, 64 concurrent calls
                list(pool.map(call, range(64)))
                clock.shift(dt.timedelta(minutes=10))
    assert failures == []
    assert len(spy.calls) <= 11  # ceil(8 h / (60 min - 15 min))


def test_role_chaining_assumes_from_an_assumed_session(aws: None) -> None:
    source = boto3.Session(region_name="us-east-1")
    first = assume_role("arn:aws:iam::222222222222:role/SageMakerExecution", source=source)
    spy = AssumeRoleSpy(first.boto3_session)
    second = assume_role(CENTRAL_ROLE, source=first)
    assert second.account_id == "111111111111"
    assert len(spy.calls) == 1


def test_tags_transitive_keys_source_identity_external_id_and_policy_reach_sts(aws: None) -> None:
    source = boto3.Session(region_name="us-east-1")
    spy = AssumeRoleSpy(source)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    central = assume_role(
        CENTRAL_ROLE, source=source, session_name="nightly-build", tags={"team": "search", "job": "churn"},
        transitive_tag_keys=["team"], source_identity="alice", external_id="ext-123", policy=policy,
        duration_seconds=1800,
    )
    central.whoami()
    (call,) = spy.calls
    assert call["RoleArn"] == CENTRAL_ROLE
    assert call["RoleSessionName"] == "nightly-build"
    assert call["Tags"] == [{"Key": "team", "Value": "search"}, {"Key": "job", "Value": "churn"}]
    assert call["TransitiveTagKeys"] == ["team"]
    assert call["SourceIdentity"] == "alice"
    assert call["ExternalId"] == "ext-123"
    assert call["DurationSeconds"] == 1800
    assert '"s3:GetObject"' in call["Policy"]
    assert central.team == "search"


def test_the_sts_client_always_gets_an_explicit_region(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    source = boto3.Session()
    regions: list[str] = []
    source.events.register("provide-client-params.sts.AssumeRole",
                           lambda params, context, **_: regions.append(context["client_region"]))
    central = assume_role(CENTRAL_ROLE, source=source, region="eu-west-1")
    assert central.region == "eu-west-1"
    assert central.account_id == "111111111111"
    assert regions == ["eu-west-1"]


@pytest.mark.parametrize(
    ("kwargs", "field", "match"),
    [
        ({"duration_seconds": 900}, "duration_seconds", "15 minutes before expiry"),
        ({"duration_seconds": 50000}, "duration_seconds", "12 hours"),
        ({"session_name": "x"}, "session_name", "2-64 characters"),
        ({"session_name": "has space"}, "session_name", "2-64 characters"),
        ({"tags": {f"k{i}": "v" for i in range(51)}}, "tags", "at most 50"),
        ({"tags": {"team": "a*b"}}, "tags['team']", "tag values"),
        ({"tags": {"team": "x"}, "transitive_tag_keys": ["owner"]}, "transitive_tag_keys", "not in tags"),
        ({"external_id": "x"}, "external_id", "2-1224"),
        ({"source_identity": "aws:me"}, "source_identity", "not start with 'aws:'"),
        ({"policy": "x" * 3000}, "policy", "2048"),
    ],
)
def test_invalid_arguments_are_rejected_before_calling_sts(aws: None, kwargs: dict, field: str, match: str) -> None:
    source = boto3.Session(region_name="us-east-1")
    spy = AssumeRoleSpy(source)
    with pytest.raises(ValidationError, match=match) as info:
        assume_role(CENTRAL_ROLE, source=source, **kwargs)
    assert info.value.field == field
    assert spy.calls == []


def test_a_malformed_role_arn_names_the_field(aws: None) -> None:
    with pytest.raises(ValidationError, match="role_arn='arn:aws:iam::1:role/x' is not an IAM role ARN"):
        assume_role("arn:aws:iam::1:role/x", region="us-east-1")


def test_no_credentials_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for var in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    from featureshare.errors import CredentialsError

    with pytest.raises(CredentialsError, match="no AWS credentials found"):
        assume_role(CENTRAL_ROLE, region="us-east-1")


def test_client_cache_returns_the_same_client_for_the_same_service_and_config(aws: None) -> None:
    session = AccountSession(boto3.Session(region_name="us-east-1"))
    assert session.client("s3") is session.client("s3")
    assert session.client("s3", max_pool_connections=32) is not session.client("s3")
    assert session.client("s3", max_pool_connections=32).meta.config.max_pool_connections == 32


def test_sessions_share_one_service_model_loader(aws: None) -> None:
    current = AccountSession.current(region="us-east-1").boto3_session._session
    assumed = assume_role(CENTRAL_ROLE, source=AccountSession.current(region="us-east-1")).boto3_session._session

    assert current.get_component("data_loader") is assumed.get_component("data_loader")
    assert current.get_component("data_loader") is not botocore.session.Session().get_component("data_loader")


def test_the_spec_of_a_profile_session_pickles_and_rebuilds_in_a_subprocess(tmp_path) -> None:
    config = tmp_path / "config"
    config.write_text("[profile consumer]\nregion = us-east-1\n")
    credentials = tmp_path / "credentials"
    credentials.write_text("[consumer]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    env = {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}
    import os

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        source = AccountSession(boto3.Session(profile_name="consumer"))
        central = assume_role(CENTRAL_ROLE, source=source, tags={"team": "search"}, session_name="worker")
        spec = central.to_spec()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert isinstance(spec, SessionSpec)
    assert spec.source == SessionSpec(region="us-east-1", profile="consumer")
    blob = pickle.dumps(spec)
    assert b"testing" not in blob  # no secrets in a spec
    script = (
        "import pickle, sys\n"
        "from moto import mock_aws\n"
        "from featureshare.session import AccountSession\n"
        "with mock_aws():\n"
        "    s = AccountSession.from_spec(pickle.loads(sys.stdin.buffer.read()))\n"
        "    print(s.account_id, s.team, s.whoami().arn)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], input=blob, capture_output=True, check=True,
                         env={**os.environ, **env}, timeout=60).stdout.decode()
    account, team, arn = out.split()
    assert (account, team) == ("111111111111", "search")
    assert arn.endswith("assumed-role/FeatureShareAccess/worker")


def test_a_session_built_from_explicit_keys_refuses_to_ship_its_spec(aws: None) -> None:
    session = AccountSession(boto3.Session(aws_access_key_id="AKIA", aws_secret_access_key="x",
                                           region_name="us-east-1"))
    with pytest.raises(ConfigError, match="explicit access keys"):
        session.to_spec()


def test_a_session_without_region_asks_for_one(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for var in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="no AWS region"):
        AccountSession(boto3.Session())

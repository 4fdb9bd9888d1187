"""Assumed-role credentials expire in the embedded AWS as on AWS: refused once the clock reaches their Expiration."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import time_machine
from botocore.exceptions import ClientError

from featureshare.local import EmbeddedAWS
from featureshare.session import assume_role

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
DURATION = dt.timedelta(minutes=15)
ROLE = "ExpiringRole"
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                                                 "Principal": {"AWS": "arn:aws:iam::222222222222:root"}}]}
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
JSON_EXPIRED = ("ExpiredTokenException", 400, "The security token included in the request is expired")
QUERY_EXPIRED = ("ExpiredToken", 403, "The security token included in the request is expired")
S3_EXPIRED = ("ExpiredToken", 400, "The provided token has expired.")

#: (service, call, expected refusal): one read-only call per protocol featureshare uses.
CALLS: list[tuple[str, Callable[[Any], Any], tuple[str, int, str]]] = [
    ("sagemaker", lambda c: c.list_feature_groups(), JSON_EXPIRED),
    ("sagemaker-featurestore-runtime",
     lambda c: c.batch_get_record(Identifiers=[{"FeatureGroupName": "users", "RecordIdentifiersValueAsString": ["u"]}]),
     JSON_EXPIRED),
    ("athena", lambda c: c.list_work_groups(), JSON_EXPIRED),
    ("glue", lambda c: c.get_databases(), JSON_EXPIRED),
    ("kms", lambda c: c.list_keys(), JSON_EXPIRED),
    ("sts", lambda c: c.get_caller_identity(), QUERY_EXPIRED),
    ("iam", lambda c: c.list_roles(), QUERY_EXPIRED),
    ("s3", lambda c: c.list_buckets(), S3_EXPIRED),
]


def _create_role(aws: EmbeddedAWS) -> str:
    iam = aws.admin_session("central").client("iam")
    arn = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    iam.put_role_policy(RoleName=ROLE, PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL))
    return arn


def _static_session(aws: EmbeddedAWS, role_arn: str) -> tuple[boto3.Session, dt.datetime]:
    """A session on the raw AssumeRole credentials (never refreshed) and their Expiration."""
    creds = aws.admin_session("consumer").client("sts").assume_role(
        RoleArn=role_arn, RoleSessionName="static", DurationSeconds=int(DURATION.total_seconds()))["Credentials"]
    session = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"], region_name=aws.region)
    return session, creds["Expiration"]


def _client(aws: EmbeddedAWS, session: boto3.Session, service: str) -> Any:
    return session.client(service, endpoint_url=aws.endpoint_url)


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


@pytest.fixture(params=["enforced", "not enforced", "audit"])
def aws(request: pytest.FixtureRequest) -> Iterator[EmbeddedAWS]:
    """An in-process EmbeddedAWS in each IAM mode: expiry is authentication, so every mode refuses."""
    with EmbeddedAWS(enforce_iam=request.param != "not enforced") as embedded:
        embedded.policy.audit = request.param == "audit"
        yield embedded


@pytest.mark.parametrize(("service", "call", "refusal"), CALLS, ids=[c[0] for c in CALLS])
def test_assumed_role_keys_work_until_their_expiration_and_are_refused_from_then_on(
        aws: EmbeddedAWS, service: str, call: Callable[[Any], Any], refusal: tuple[str, int, str]) -> None:
    role_arn = _create_role(aws)
    with time_machine.travel(START, tick=False) as clock:
        session, expiration = _static_session(aws, role_arn)
        client = _client(aws, session, service)
        assert expiration == START + DURATION
        clock.move_to(expiration - dt.timedelta(seconds=1))
        assert call(client)["ResponseMetadata"]["HTTPStatusCode"] == 200
        clock.move_to(expiration)
        with pytest.raises(ClientError) as refused:
            call(client)
    assert _error(refused) == refusal


def test_expired_keys_are_refused_in_server_mode_and_for_head_requests(embedded_server: EmbeddedAWS) -> None:
    role_arn = _create_role(embedded_server)
    embedded_server.admin_session("central").client("s3").create_bucket(Bucket="expiry-bucket")
    with time_machine.travel(START, tick=False) as clock:
        session, expiration = _static_session(embedded_server, role_arn)
        s3 = _client(embedded_server, session, "s3")
        s3.head_bucket(Bucket="expiry-bucket")
        clock.move_to(expiration + dt.timedelta(hours=1))
        with pytest.raises(ClientError) as head:
            s3.head_bucket(Bucket="expiry-bucket")  # no body on HEAD: botocore sees only the status
        with pytest.raises(ClientError) as listing:
            s3.list_objects_v2(Bucket="expiry-bucket")
        with pytest.raises(ClientError) as sagemaker:
            _client(embedded_server, session, "sagemaker").list_feature_groups()
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _error(listing) == S3_EXPIRED
    assert _error(sagemaker) == JSON_EXPIRED


def test_an_expired_session_cannot_assume_another_role(embedded_aws: EmbeddedAWS) -> None:
    role_arn = _create_role(embedded_aws)
    with time_machine.travel(START, tick=False) as clock:
        session, expiration = _static_session(embedded_aws, role_arn)
        clock.move_to(expiration + dt.timedelta(seconds=5))
        with pytest.raises(ClientError) as refused:
            session.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="chained")
    assert _error(refused) == QUERY_EXPIRED


@pytest.mark.parametrize("jump", [dt.timedelta(hours=2), dt.timedelta(days=400)], ids=["2h", "400d"])
def test_admin_user_keys_never_expire(embedded_aws: EmbeddedAWS, jump: dt.timedelta) -> None:
    admin = embedded_aws.admin_session("central")
    with time_machine.travel(START, tick=False) as clock:
        admin.client("s3").create_bucket(Bucket="admin-bucket")
        clock.shift(jump)
        assert admin.client("sts").get_caller_identity()["Arn"].endswith(":user/admin")
        assert [b["Name"] for b in admin.client("s3").list_buckets()["Buckets"]] == ["admin-bucket"]
        assert admin.client("sagemaker").list_feature_groups()["FeatureGroupSummaries"] == []


def test_a_refreshing_session_keeps_working_across_the_expiry_its_static_keys_do_not(
        embedded_aws: EmbeddedAWS) -> None:
    role_arn = _create_role(embedded_aws)
    central = assume_role(role_arn, source=embedded_aws.admin_session("consumer"), session_name="refreshing",
                          region=embedded_aws.region)  # one-hour credentials
    with time_machine.travel(START, tick=False) as clock:
        sts = central.client("sts")
        first = sts.get_caller_identity()["Arn"]
        frozen = central.boto3_session.get_credentials().get_frozen_credentials()
        static = boto3.Session(aws_access_key_id=frozen.access_key, aws_secret_access_key=frozen.secret_key,
                               aws_session_token=frozen.token, region_name=embedded_aws.region)
        clock.shift(dt.timedelta(hours=3))
        with pytest.raises(ClientError) as refused:
            static.client("sts").get_caller_identity()
        assert sts.get_caller_identity()["Arn"] == first
        renewed = central.boto3_session.get_credentials().get_frozen_credentials().access_key
    assert _error(refused) == QUERY_EXPIRED
    assert renewed != frozen.access_key

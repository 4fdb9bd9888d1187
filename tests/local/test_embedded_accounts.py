"""Accounts, sessions and lifecycle of the embedded AWS (in-process mode)."""

from __future__ import annotations

import json
import os

import boto3
import pytest

from featureshare.errors import ConfigError, UnsupportedError
from featureshare.local import EmbeddedAWS

TRUST_CONSUMER = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
                   "Action": ["sts:AssumeRole", "sts:TagSession"]}],
}


def test_admin_sessions_act_in_their_own_accounts(embedded_aws):
    for name, account_id in embedded_aws.account_ids.items():
        identity = embedded_aws.admin_session(name).client("sts").get_caller_identity()
        assert identity["Account"] == account_id
        assert identity["Arn"] == f"arn:aws:iam::{account_id}:user/admin"


def test_assumed_role_credentials_route_calls_to_the_roles_account(embedded_aws):
    central, consumer = embedded_aws.admin_session("central"), embedded_aws.admin_session("consumer")
    role = central.client("iam").create_role(RoleName="FeatureShareAccess",
                                             AssumeRolePolicyDocument=json.dumps(TRUST_CONSUMER))["Role"]
    may_create_buckets = {"Version": "2012-10-17",
                          "Statement": [{"Effect": "Allow", "Action": "s3:CreateBucket", "Resource": "*"}]}
    central.client("iam").put_role_policy(RoleName="FeatureShareAccess", PolicyName="buckets",
                                          PolicyDocument=json.dumps(may_create_buckets))
    creds = consumer.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName="nb")["Credentials"]
    assumed = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"], region_name=embedded_aws.region)

    identity = assumed.client("sts").get_caller_identity()
    assumed.client("s3").create_bucket(Bucket="made-by-assumed-role")

    assert identity["Account"] == "111111111111"
    assert identity["Arn"].startswith("arn:aws:sts::111111111111:assumed-role/FeatureShareAccess/")
    central_buckets = [b["Name"] for b in central.client("s3").list_buckets()["Buckets"]]
    consumer_buckets = [b["Name"] for b in consumer.client("s3").list_buckets()["Buckets"]]
    assert "made-by-assumed-role" in central_buckets
    assert "made-by-assumed-role" not in consumer_buckets


def test_each_account_has_its_own_state(embedded_aws):
    embedded_aws.admin_session("central").client("glue").create_database(DatabaseInput={"Name": "only_central"})

    consumer_dbs = embedded_aws.admin_session("consumer").client("glue").get_databases()["DatabaseList"]

    assert "only_central" not in [d["Name"] for d in consumer_dbs]


def test_unknown_account_name_is_a_config_error(embedded_aws):
    with pytest.raises(ConfigError, match="unknown account 'reviews'"):
        embedded_aws.admin_session("reviews")


def test_invalid_account_ids_are_rejected_before_starting():
    with pytest.raises(ConfigError, match="not 12 digits"):
        EmbeddedAWS(accounts={"central": "123"})


def test_in_process_mode_has_no_env_for_child_processes(embedded_aws):
    with pytest.raises(UnsupportedError, match="server=True"):
        embedded_aws.env()


def test_two_embedded_aws_in_sequence_both_work_and_start_empty():
    with EmbeddedAWS() as first:
        first.admin_session("central").client("s3").create_bucket(Bucket="first-run")
    with EmbeddedAWS(accounts={"central": "333333333333", "consumer": "444444444444"}) as second:
        session = second.admin_session("central")
        assert session.client("sts").get_caller_identity()["Account"] == "333333333333"
        assert session.client("s3").list_buckets()["Buckets"] == []


def test_environment_is_restored_after_exit():
    before = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "MOTO_"))}
    with EmbeddedAWS():
        assert "MOTO_ACCOUNT_ID" not in os.environ
    after = {k: v for k, v in os.environ.items() if k.startswith(("AWS_", "MOTO_"))}
    assert after == before


def test_startup_takes_well_under_two_seconds():
    with EmbeddedAWS() as aws:
        assert aws.startup_seconds is not None
        assert aws.startup_seconds < 2.0

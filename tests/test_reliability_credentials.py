"""R2: assumed-role credentials forced into expiry three times during a long ingest and during a training-set
build: every call succeeds, each expiry costs exactly one AssumeRole, and nothing is lost.

The embedded AWS refuses requests signed with assumed-role keys past their expiry (``ExpiredToken`` /
``ExpiredTokenException``, as AWS does); :class:`benchmarks.reliability.CredentialWatch` counts the calls,
keys and AssumeRoles. The first test proves the refusal bites, so "0 failed calls" means something.
time-machine moves the clock of client and in-process server together (STS computes expiries from it).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import time_machine
from botocore.exceptions import ClientError
from ingest_fixtures import TEAM, Setup

from benchmarks.reliability import (
    CredentialWatch,
    compare_offline,
    expire_at_calls,
    group_spec,
    offline_frame,
    records,
    runtime_client,
)
from featureshare.groups import FeatureStore
from featureshare.session import AccountSession, assume_role
from featureshare.training.build import STAGING_PREFIX, TrainingSet

TRAINING_BUCKET = "r2-training"
EXPIRIES = 3


def central_role(setup: Setup, watch: CredentialWatch, name: str) -> AccountSession:
    """A fresh assumed central role watched by ``watch`` (attached before any of its clients exist)."""
    session = assume_role(setup.access_role_arn, source=setup.consumer_admin, tags={"team": TEAM},
                          session_name=name, region=setup.aws.region)
    watch.attach(setup.consumer_admin.events, session.boto3_session.events)
    return session


@pytest.fixture
def watch(setup: Setup) -> Iterator[CredentialWatch]:
    watcher = CredentialWatch()
    yield watcher
    setup.consumer_admin.events.unregister("after-call.sts.AssumeRole", unique_id="reliability-watch-assume")


def test_the_embedded_aws_refuses_a_request_signed_with_expired_keys(setup: Setup, watch: CredentialWatch) -> None:
    session = central_role(setup, watch, "control")
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=True) as clock:
        frozen = session.boto3_session.get_credentials().get_frozen_credentials()
        static = boto3.Session(aws_access_key_id=frozen.access_key, aws_secret_access_key=frozen.secret_key,
                               aws_session_token=frozen.token, region_name=setup.aws.region)
        watch.attach(setup.consumer_admin.events, static.events)  # static keys: never refreshed
        sts = static.client("sts")
        assert sts.get_caller_identity()["Account"] == setup.aws.account_ids["central"]
        clock.shift(dt.timedelta(hours=2))
        with pytest.raises(ClientError, match=r"\(ExpiredToken\)"):
            sts.get_caller_identity()
    assert watch.rejected == 1


def test_three_forced_expiries_during_a_long_ingest_cost_no_failed_call_and_no_record(
        setup: Setup, name: str, watch: CredentialWatch) -> None:
    setup.ensure(group_spec(name))
    session = central_role(setup, watch, "r2-ingest")
    frame = records(6_000, seed=21)
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=True) as clock:
        group = FeatureStore(session).group(name)
        # 52 minutes on 1-hour keys leaves 8: inside botocore's mandatory refresh window, so the next signature
        # needs new keys, while requests other threads signed a moment ago are still valid (as in real life).
        with expire_at_calls(runtime_client(group).meta.events, "BatchWriteRecord", {40, 110, 180},
                             lambda: clock.shift(dt.timedelta(minutes=52))) as shifted:
            report = group.ingest(frame, max_in_flight=8, seed=21)

    assert shifted == [40, 110, 180]
    assert watch.failed_calls == [] and watch.rejected == 0
    assert watch.assume_role_calls == 1 + EXPIRIES
    assert len(watch.keys_used) == 1 + EXPIRIES
    assert (report.rows_written, report.failed, report.retries) == (len(frame), 0, 0)
    setup.aws.flush()
    assert compare_offline(frame, offline_frame(setup.central_admin.client("s3"), group.offline_s3_uri)).exact


def test_keys_already_past_expiry_are_replaced_before_the_next_call(setup: Setup, name: str,
                                                                    watch: CredentialWatch) -> None:
    setup.ensure(group_spec(name))
    session = central_role(setup, watch, "r2-hard")
    frame = records(1_000, seed=22)
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=True) as clock:
        group = FeatureStore(session).group(name)
        # One thread: no request is in flight while the clock jumps past the expiry itself.
        with expire_at_calls(runtime_client(group, 1).meta.events, "BatchWriteRecord", {5, 15, 30},
                             lambda: clock.shift(dt.timedelta(hours=2))):
            report = group.ingest(frame, max_in_flight=1)
    assert (report.rows_written, report.failed) == (len(frame), 0)
    assert watch.failed_calls == [] and watch.assume_role_calls == 1 + EXPIRIES


# ------------------------------------------------------------------------------------------ training set

@pytest.fixture(scope="module")
def training_world(shared_setup: Setup) -> dict[str, Any]:
    """A consumer-account job role (what a SageMaker job runs as), a central group with history, and what
    bootstrap gives the consumer: its training bucket, the scratch database and the ``central`` catalog."""
    aws = shared_setup.aws
    consumer_id = aws.account_ids["consumer"]
    iam = shared_setup.consumer_admin.client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": f"arn:aws:iam::{consumer_id}:root"}}]}
    role = iam.create_role(RoleName="TrainingJob", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="TrainingJob", PolicyName="all", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    shared_setup.consumer_admin.client("s3").create_bucket(Bucket=TRAINING_BUCKET)
    shared_setup.consumer_admin.client("glue").create_database(DatabaseInput={"Name": "featureshare_scratch"})
    shared_setup.consumer_admin.client("athena").create_data_catalog(
        Name="central", Type="GLUE", Parameters={"catalog-id": aws.account_ids["central"]})
    group = shared_setup.ensure(group_spec("r2_training"))
    frame = records(400, seed=23)
    assert group.ingest(frame).ok
    aws.flush()
    labels = frame[["customer_id", "ts"]].rename(columns={"ts": "label_time"}).head(60)
    return {"role": role, "group": group, "labels": labels}


def test_three_forced_expiries_during_a_training_set_build_cost_no_failed_call(
        setup: Setup, training_world: dict[str, Any], watch: CredentialWatch) -> None:
    job = assume_role(training_world["role"], source=setup.consumer_admin, session_name="r2-training",
                      region=setup.aws.region)
    watch.attach(setup.consumer_admin.events, job.boto3_session.events)
    ts = TrainingSet(training_world["labels"], key="customer_id", event_time="label_time").join(
        training_world["group"])
    output = f"s3://{TRAINING_BUCKET}/sets/r2/"
    # Cross-account policies are proven by test_least_privilege_job; here they must simply not be the cause.
    setup.aws.enforce_iam = False
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=True) as clock:
        def expire() -> None:
            clock.shift(dt.timedelta(hours=2))

        events = job.boto3_session.events
        with expire_at_calls(events, "PutObject", {1}, expire) as first, \
                expire_at_calls(events, "StartQueryExecution", {1}, expire) as second, \
                expire_at_calls(events, "GetQueryExecution", {1}, expire) as third:
            try:
                built = ts.build(session=job, output_uri=output, timeout=60)
            finally:
                setup.aws.enforce_iam = True
        frame = built.to_dataframe()

    assert (first, second, third) == ([1], [1], [1])
    assert watch.failed_calls == [] and watch.rejected == 0
    assert watch.assume_role_calls == 1 + EXPIRIES
    assert len(frame) == len(training_world["labels"])
    keys = [o["Key"] for o in setup.consumer_admin.client("s3").list_objects_v2(
        Bucket=TRAINING_BUCKET).get("Contents", [])]
    assert not [k for k in keys if k.startswith(STAGING_PREFIX)]

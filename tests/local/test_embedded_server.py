"""Server mode of the embedded AWS: a real HTTP endpoint, profiles and env for child processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from featureshare.local import serve

CHILD = ("import boto3; print(boto3.Session(profile_name='consumer-admin')"
         ".client('sts').get_caller_identity()['Account'])")


def test_a_child_process_with_env_acts_as_the_consumer_admin(embedded_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(embedded_server.env())

    result = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60,
                            check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "222222222222"


def test_env_points_at_a_local_endpoint_and_profile_files(embedded_server):
    env = embedded_server.env()

    assert env["AWS_ENDPOINT_URL"] == embedded_server.endpoint_url
    assert embedded_server.endpoint_url.startswith("http://127.0.0.1:")
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert "[profile central-admin]" in Path(env["AWS_CONFIG_FILE"]).read_text()
    assert "[consumer-admin]" in Path(env["AWS_SHARED_CREDENTIALS_FILE"]).read_text()


def test_feature_store_runtime_works_over_http_by_arn(embedded_server, group_request, make_record):
    central = embedded_server.admin_session("central")
    central.client("s3").create_bucket(Bucket="central-offline-store")
    arn = central.client("sagemaker").create_feature_group(**group_request("served"))["FeatureGroupArn"]
    runtime = central.client("sagemaker-featurestore-runtime")

    runtime.put_record(FeatureGroupName=arn, Record=make_record("u1", "2024-01-02T03:04:05Z", age=5))
    runtime.batch_write_record(Entries=[{"FeatureGroupName": arn,
                                         "Record": make_record("u2", "2024-01-02T03:04:05Z")}])
    got = runtime.get_record(FeatureGroupName=arn, RecordIdentifierValueAsString="u1", FeatureNames=["age"])
    listed = runtime.list_records(FeatureGroupName=arn)

    assert got["Record"] == [{"FeatureName": "age", "ValueAsString": "5"}]
    assert listed["RecordIdentifiers"] == ["u1", "u2"]
    assert embedded_server.flush() == 2
    assert central.client("s3").list_objects_v2(Bucket="central-offline-store")["KeyCount"] == 1


def test_serve_starts_quickly_on_a_free_port_and_stops_cleanly():
    aws = serve()
    try:
        assert aws.startup_seconds is not None and aws.startup_seconds < 2.0
        assert aws.admin_session("central").client("sts").get_caller_identity()["Account"] == "111111111111"
        config_file = aws.env()["AWS_CONFIG_FILE"]
    finally:
        aws.stop()
    assert not os.path.exists(config_file)

"""Offline store of the embedded AWS, driven end to end from a consumer account through an assumed role."""

from __future__ import annotations

import io
import json
import re

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.local.conftest import OFFLINE_BUCKET

CENTRAL, CONSUMER = "111111111111", "222222222222"
LAYOUT = re.compile(
    rf"^features/{CENTRAL}/sagemaker/us-east-1/offline-store/(?P<group>[\w-]+)-(?P<epoch>\d+)/data/"
    r"year=(?P<year>\d{4})/month=(?P<month>\d{2})/day=(?P<day>\d{2})/hour=(?P<hour>\d{2})/"
    r"\d{8}T\d{6}Z_[A-Za-z0-9]{16}\.parquet$")


@pytest.fixture
def assumed_central(embedded_aws, central):
    """A consumer-side session that assumed the central FeatureShareAccess role."""
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{CONSUMER}:root"}, "Action": "sts:AssumeRole"}]}
    role = central.client("iam").create_role(RoleName="FeatureShareAccess",
                                             AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    # This round trip is about the Feature Store emulation, not least privilege (tests/test_least_privilege_job.py).
    broad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
        "sagemaker:*", "s3:GetObject", "s3:ListBucket", "glue:Get*", "iam:PassRole"], "Resource": "*"}]}
    central.client("iam").put_role_policy(RoleName="FeatureShareAccess", PolicyName="feature-store",
                                          PolicyDocument=json.dumps(broad))
    sts = embedded_aws.admin_session("consumer").client("sts")
    creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="consumer-notebook")["Credentials"]
    return boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"], region_name="us-east-1")


def _objects(session):
    return [o["Key"] for o in session.client("s3").list_objects_v2(Bucket=OFFLINE_BUCKET).get("Contents", [])]


def _read(session, key):
    body = session.client("s3").get_object(Bucket=OFFLINE_BUCKET, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def test_two_account_round_trip_lands_in_the_central_offline_store(
        embedded_aws, central, assumed_central, group_request, make_record):
    sm = assumed_central.client("sagemaker")
    runtime = assumed_central.client("sagemaker-featurestore-runtime")
    arn = sm.create_feature_group(**group_request("clicks"))["FeatureGroupArn"]
    runtime.put_record(FeatureGroupName=arn, Record=make_record("u1", "2024-01-02T03:04:05Z", age=1))
    runtime.batch_write_record(Entries=[
        {"FeatureGroupName": "clicks", "Record": make_record("u2", "2024-01-02T03:59:59.999Z", age=2)},
        {"FeatureGroupName": "clicks", "Record": make_record("u3", "2024-01-02T04:00:00Z", age=3)}])
    runtime.delete_record(FeatureGroupName="clicks", RecordIdentifierValueAsString="u1",
                          EventTime="2024-01-02T05:00:00Z")
    got = runtime.get_record(FeatureGroupName=arn, RecordIdentifierValueAsString="u2")

    assert _objects(central) == []  # buffered until flush
    assert embedded_aws.flush() == 4

    assert arn.startswith(f"arn:aws:sagemaker:us-east-1:{CENTRAL}:")
    assert got["Record"][2] == {"FeatureName": "age", "ValueAsString": "2"}
    keys = _objects(central)
    hours = sorted(LAYOUT.match(k)["hour"] for k in keys)
    assert hours == ["03", "04", "05"]
    assert all(LAYOUT.match(k)["group"] == "clicks" for k in keys)
    glue = central.client("glue")
    catalog = sm.describe_feature_group(FeatureGroupName="clicks")["OfflineStoreConfig"]["DataCatalogConfig"]
    partitions = glue.get_partitions(DatabaseName=catalog["Database"], TableName=catalog["TableName"])["Partitions"]
    assert sorted(p["Values"] for p in partitions) == [["2024", "01", "02", h] for h in ("03", "04", "05")]
    assert all(p["StorageDescriptor"]["Location"].startswith(f"s3://{OFFLINE_BUCKET}/features/{CENTRAL}/sagemaker/")
               for p in partitions)


def test_parquet_columns_are_typed_features_then_offline_metadata(embedded_aws, central, group_request,
                                                                  make_record):
    central.client("sagemaker").create_feature_group(**group_request("typed"))
    runtime = central.client("sagemaker-featurestore-runtime")
    runtime.put_record(FeatureGroupName="typed", Record=make_record("u1", "2024-01-02T03:04:05Z", age=7,
                                                                    score=1.25))
    embedded_aws.flush()

    table = _read(central, _objects(central)[0])

    assert table.schema.names == ["user_id", "event_time", "age", "score", "write_time", "api_invocation_time",
                                  "is_deleted"]
    assert [str(t) for t in table.schema.types] == ["string", "string", "int64", "double",
                                                    "timestamp[ms, tz=UTC]", "timestamp[ms, tz=UTC]", "bool"]
    row = table.to_pylist()[0]
    assert (row["user_id"], row["age"], row["score"], row["is_deleted"]) == ("u1", 7, 1.25, False)
    assert row["write_time"] >= row["api_invocation_time"]


def test_delete_appends_a_marker_row_with_null_features(embedded_aws, central, group_request, make_record):
    central.client("sagemaker").create_feature_group(**group_request("marked"))
    runtime = central.client("sagemaker-featurestore-runtime")
    runtime.put_record(FeatureGroupName="marked", Record=make_record("u1", "2024-01-02T03:04:05Z"))
    runtime.delete_record(FeatureGroupName="marked", RecordIdentifierValueAsString="u1",
                          EventTime="2024-01-02T03:30:00Z", DeletionMode="HardDelete")
    embedded_aws.flush()

    rows = pa.concat_tables([_read(central, k) for k in _objects(central)]).to_pylist()

    marker = next(r for r in rows if r["is_deleted"])
    assert (marker["user_id"], marker["event_time"], marker["age"], marker["score"]) == (
        "u1", "2024-01-02T03:30:00Z", None, None)
    assert len(rows) == 2


def test_offline_objects_record_the_groups_kms_key(embedded_aws, central, group_request, make_record):
    request = group_request("encrypted")
    request["OfflineStoreConfig"]["S3StorageConfig"]["KmsKeyId"] = "arn:aws:kms:us-east-1:111111111111:key/abc"
    central.client("sagemaker").create_feature_group(**request)
    central.client("sagemaker-featurestore-runtime").put_record(
        FeatureGroupName="encrypted", Record=make_record("u1", "2024-01-02T03:04:05Z"))
    embedded_aws.flush()

    head = central.client("s3").head_object(Bucket=OFFLINE_BUCKET, Key=_objects(central)[0])

    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == "arn:aws:kms:us-east-1:111111111111:key/abc"


def test_flush_with_nothing_buffered_writes_nothing(embedded_aws, central):
    assert embedded_aws.flush() == 0
    assert _objects(central) == []


def test_rows_of_a_group_deleted_before_flush_are_still_written(embedded_aws, central, group_request,
                                                                make_record):
    sm = central.client("sagemaker")
    sm.create_feature_group(**group_request("short-lived"))
    central.client("sagemaker-featurestore-runtime").put_record(
        FeatureGroupName="short-lived", Record=make_record("u1", "2024-01-02T03:04:05Z"))
    sm.delete_feature_group(FeatureGroupName="short-lived")

    assert embedded_aws.flush() == 1
    assert len(_objects(central)) == 1

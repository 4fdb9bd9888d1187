"""Helpers for the training-set tests on the embedded AWS: customer feature groups (``customer_id``,
``event_time`` and one feature), their records, and their offline rows read back from S3."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from featureshare.session import AccountSession


def create_customer_group(session: AccountSession, name: str, *, event_type: str, feature: tuple[str, str],
                          s3_config: dict[str, Any], role: str, tags: dict[str, str] | None = None
                          ) -> dict[str, Any]:
    """Create the group and return its DescribeFeatureGroup."""
    sagemaker = session.client("sagemaker")
    sagemaker.create_feature_group(
        FeatureGroupName=name, RecordIdentifierFeatureName="customer_id", EventTimeFeatureName="event_time",
        FeatureDefinitions=[{"FeatureName": "customer_id", "FeatureType": "String"},
                            {"FeatureName": "event_time", "FeatureType": event_type},
                            {"FeatureName": feature[0], "FeatureType": feature[1]}],
        OfflineStoreConfig={"S3StorageConfig": s3_config}, RoleArn=role,
        **({"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]} if tags else {}))
    return sagemaker.describe_feature_group(FeatureGroupName=name)


def put_customer_record(session: AccountSession, group: str, customer: str, when: dt.datetime, event_type: str,
                        feature: str, value: Any) -> None:
    """PutRecord with ``when`` as a Fractional or String event time; ``value=None`` leaves the feature out."""
    event = str(when.timestamp()) if event_type == "Fractional" else when.strftime("%Y-%m-%dT%H:%M:%SZ")
    record = [{"FeatureName": "customer_id", "ValueAsString": customer},
              {"FeatureName": "event_time", "ValueAsString": event}]
    if value is not None:
        record.append({"FeatureName": feature, "ValueAsString": str(value)})
    session.client("sagemaker-featurestore-runtime").put_record(FeatureGroupName=group, Record=record)


def offline_rows(description: dict[str, Any], session: AccountSession) -> list[dict[str, Any]]:
    """Every row of the group's offline store files, read with ``session``."""
    uri = description["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    s3, frames = session.client("s3"), []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            frames.append(pq.read_table(io.BytesIO(body)).to_pandas())
    return pd.concat(frames, ignore_index=True).to_dict("records")

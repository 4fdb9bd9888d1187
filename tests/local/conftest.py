"""Fixtures for the embedded AWS tests: the EmbeddedAWS fixtures plus small Feature Store helpers."""

from __future__ import annotations

from typing import Any

import pytest

from featureshare.local.pytest_plugin import embedded_aws, embedded_server

__all__ = ["embedded_aws", "embedded_server"]

OFFLINE_BUCKET = "central-offline-store"


def feature_group_request(name: str, *, online: bool = True, offline: bool = True,
                          bucket: str = OFFLINE_BUCKET, **extra: Any) -> dict[str, Any]:
    """A CreateFeatureGroup request for a small users group (id String, event_time String, age, score)."""
    request: dict[str, Any] = {
        "FeatureGroupName": name,
        "RecordIdentifierFeatureName": "user_id",
        "EventTimeFeatureName": "event_time",
        "FeatureDefinitions": [
            {"FeatureName": "user_id", "FeatureType": "String"},
            {"FeatureName": "event_time", "FeatureType": "String"},
            {"FeatureName": "age", "FeatureType": "Integral"},
            {"FeatureName": "score", "FeatureType": "Fractional"},
        ],
    }
    if online:
        request["OnlineStoreConfig"] = {"EnableOnlineStore": True}
    if offline:
        request["OfflineStoreConfig"] = {"S3StorageConfig": {"S3Uri": f"s3://{bucket}/features"}}
        request["RoleArn"] = "arn:aws:iam::111111111111:role/FeatureStoreOfflineRole"
    request.update(extra)
    return request


def record(user_id: str, event_time: str, age: int | None = 30, score: float | None = 0.5) -> list[dict[str, str]]:
    """A Record for ``feature_group_request`` groups (None leaves a feature out)."""
    values = {"user_id": user_id, "event_time": event_time, "age": age, "score": score}
    return [{"FeatureName": k, "ValueAsString": str(v)} for k, v in values.items() if v is not None]


@pytest.fixture
def central(embedded_aws: Any) -> Any:
    """The central admin session, with the offline-store bucket created."""
    session = embedded_aws.admin_session("central")
    session.client("s3").create_bucket(Bucket=OFFLINE_BUCKET)
    return session


@pytest.fixture
def group_request() -> Any:
    """``feature_group_request(name, online=, offline=, **extra)`` as a fixture."""
    return feature_group_request


@pytest.fixture
def make_record() -> Any:
    """``record(user_id, event_time, age=, score=)`` as a fixture."""
    return record

"""Fixtures for the feature store / ingestion / online tests: the embedded AWS, a consumer that assumes the
central role, and a seeded customers DataFrame (pandas 3 dtypes)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from featureshare.bootstrap.templates import DEFAULT_ALLOWED_TAG_KEYS, render
from featureshare.groups import FeatureStore, GroupSpec
from featureshare.local import EmbeddedAWS
from featureshare.session import AccountSession, assume_role

OFFLINE_BUCKET = "central-offline-store"
OFFLINE_URI = f"s3://{OFFLINE_BUCKET}/features"
TEAM = "search"


def trust_account(account_id: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}]})


def access_permissions(aws: EmbeddedAWS, offline_role_arn: str) -> dict[str, Any]:
    """The central access role's ABAC permissions, rendered from the real iam/ template."""
    central = aws.account_ids["central"]
    return render(
        "central-access-role-permissions", partition="aws", region=aws.region, central_account=central,
        allowed_tag_keys=list(DEFAULT_ALLOWED_TAG_KEYS), offline_store_role_arn=offline_role_arn,
        central_workgroup_arns=[f"arn:aws:athena:{aws.region}:{central}:workgroup/primary"],
        offline_object_arn=f"arn:aws:s3:::{OFFLINE_BUCKET}/features/*", offline_bucket=OFFLINE_BUCKET,
        offline_list_prefixes=["features", "features/*"], located_bucket_arns=[f"arn:aws:s3:::{OFFLINE_BUCKET}"],
        consumer_result_object_arns=["arn:aws:s3:::consumer-training/results/*"],
        central_kms_key_arn=f"arn:aws:kms:{aws.region}:{central}:key/unused")


@dataclass
class Setup:
    aws: EmbeddedAWS
    central_admin: Any          # boto3.Session
    consumer_admin: Any         # boto3.Session
    central: AccountSession     # the consumer's assumed-role session in the central account
    store: FeatureStore
    offline_role_arn: str
    access_role_arn: str

    def ensure(self, spec: GroupSpec, **kwargs: Any) -> Any:
        kwargs.setdefault("offline_s3_uri", OFFLINE_URI)
        kwargs.setdefault("role_arn", self.offline_role_arn)
        return self.store.ensure_group(spec, **kwargs)


def build_setup(aws: EmbeddedAWS) -> Setup:
    """The central admin creates the offline bucket and roles; the consumer assumes FeatureShareAccess."""
    central_admin, consumer_admin = aws.admin_session("central"), aws.admin_session("consumer")
    central_admin.client("s3").create_bucket(Bucket=OFFLINE_BUCKET)
    iam = central_admin.client("iam")
    offline_role = iam.create_role(RoleName="FeatureStoreOfflineRole", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    access_role = iam.create_role(RoleName="FeatureShareAccess",
                                  AssumeRolePolicyDocument=trust_account(aws.account_ids["consumer"]))["Role"]["Arn"]
    iam.put_role_policy(RoleName="FeatureShareAccess", PolicyName="featureshare",
                        PolicyDocument=json.dumps(access_permissions(aws, offline_role)))
    central = assume_role(access_role, source=consumer_admin, tags={"team": TEAM}, session_name="tests",
                          region=aws.region)
    return Setup(aws, central_admin, consumer_admin, central, FeatureStore(central), offline_role, access_role)


@pytest.fixture(scope="module", name="shared_setup")
def shared_setup_fixture() -> Iterator[Setup]:
    """One in-process embedded AWS per test module (start-up and role setup cost ~1 s); tests use unique
    group names (the ``name`` fixture)."""
    with EmbeddedAWS() as aws:
        yield build_setup(aws)


@pytest.fixture(scope="module", name="shared_server_setup")
def shared_server_setup_fixture() -> Iterator[Setup]:
    """The same in server mode, with ``aws.env()`` exported for the module so worker processes reach it."""
    with EmbeddedAWS(server=True) as aws, pytest.MonkeyPatch.context() as env:
        for key, value in aws.env().items():
            env.setenv(key, value)
        yield build_setup(aws)


@pytest.fixture(name="setup")
def setup_fixture(shared_setup: Setup) -> Iterator[Setup]:
    """The module's Setup, with no faults injected before or after the test."""
    shared_setup.aws.clear_faults()
    yield shared_setup
    shared_setup.aws.clear_faults()


_names = itertools.count()


@pytest.fixture(name="name")
def name_fixture() -> str:
    """A feature group name no other test in the session uses."""
    return f"g{next(_names)}"


def customers(n: int, *, seed: int = 7, start: str = "2024-05-01") -> pd.DataFrame:
    """``n`` customers with pandas 3 dtypes: str ids, tz-aware event times, nullable ints/floats, categories."""
    rng = np.random.default_rng(seed)
    visits = pd.array(rng.integers(0, 1000, n), dtype="Int64")
    visits[rng.random(n) < 0.05] = pd.NA
    return pd.DataFrame({
        "customer_id": pd.Series([f"c-{i:06d}" for i in range(n)], dtype="str"),
        "ts": pd.date_range(start, periods=n, freq="37s", tz="UTC") + pd.to_timedelta(rng.integers(0, 999, n),
                                                                                        unit="ms"),
        "visits": visits,
        "spend": rng.normal(100, 30, n),
        "segment": pd.Series(rng.choice(["gold", "silver", "bronze"], n), dtype="category"),
    })


def customers_spec(name: str = "customers", df: pd.DataFrame | None = None, **options: Any) -> GroupSpec:
    return GroupSpec.from_dataframe(name, customers(3) if df is None else df, record_id="customer_id",
                                    event_time="ts", **options)

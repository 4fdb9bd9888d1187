"""FeatureStore on the embedded AWS (server mode, so worker processes reach it too): a consumer assumes the
central role and ensures, describes, lists and deletes central feature groups, and ingests from processes."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from ingest_fixtures import OFFLINE_URI, TEAM, Setup, customers, customers_spec

from featureshare.errors import (
    AccessDeniedError,
    AWSError,
    NotFoundError,
    SchemaDriftError,
    ValidationError,
    WaitTimeoutError,
)
from featureshare.groups import Feature, FeatureStore, FeatureType, GroupSpec
from featureshare.session import AccountSession, assume_role


@pytest.fixture(scope="module", name="shared_setup")
def server_mode(shared_server_setup: Setup) -> Setup:
    return shared_server_setup


def count_calls(session: AccountSession, service: str = "sagemaker") -> Counter:
    """Count the API operations the session's client sends (a hook at the AWS boundary)."""
    calls: Counter = Counter()
    session.client(service).meta.events.register("before-call.*.*",
                                                  lambda model, **_: calls.update([model.name]))
    return calls


def test_consumer_creates_a_central_group_tagged_with_its_team(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))

    assert group.account_id == setup.aws.account_ids["central"]
    assert group.status == "Created"
    assert group.features == {"customer_id": "String", "ts": "String", "visits": "Integral",
                              "spend": "Fractional", "segment": "String"}
    assert (group.record_id, group.event_time, group.event_time_type) == ("customer_id", "ts", "String")
    assert group.tags["team"] == TEAM
    assert group.online_enabled and group.offline_enabled
    assert group.table_format == "Glue"
    assert group.catalog == "AwsDataCatalog" and group.database and group.table
    assert group.offline_s3_uri.startswith(f"{OFFLINE_URI}/{group.account_id}/sagemaker/")
    listed = setup.central_admin.client("sagemaker").list_feature_groups()["FeatureGroupSummaries"]
    assert name in [s["FeatureGroupName"] for s in listed]


def test_ensure_group_twice_is_a_no_op(setup: Setup, name: str):
    first = setup.ensure(customers_spec(name))
    calls = count_calls(setup.central)

    second = setup.ensure(customers_spec(name))

    assert second.arn == first.arn
    assert second.description["CreationTime"] == first.description["CreationTime"]
    assert "CreateFeatureGroup" not in calls and "UpdateFeatureGroup" not in calls


def test_schema_drift_lists_every_difference_and_changes_nothing(setup: Setup, name: str):
    setup.ensure(customers_spec(name))
    drifted = GroupSpec(name=name, record_id="customer_id", event_time="ts", features=[
        Feature("customer_id", "String"), Feature("ts", "String"), Feature("visits", "Fractional"),
        Feature("spend", "Fractional"), Feature("loyalty", "Integral")])

    with pytest.raises(SchemaDriftError, match="differs from the spec") as info:
        setup.ensure(drifted, add_features=True)

    assert info.value.differences == [
        "feature 'visits': group type Integral, spec type Fractional",
        "feature 'loyalty' (Integral) is in the spec but not in the group",
        "feature 'segment' (String) is in the group but not in the spec"]
    assert "loyalty" not in setup.store.group(name, refresh=True).features


def test_added_features_need_add_features_true(setup: Setup, name: str):
    setup.ensure(customers_spec(name))
    wider = customers_spec(name, df=customers(3).assign(loyalty=[1, 2, 3]))

    with pytest.raises(SchemaDriftError, match="add_features=True"):
        setup.ensure(wider)
    group = setup.ensure(wider, add_features=True)

    assert group.features["loyalty"] == "Integral"
    assert setup.ensure(wider).features == group.features


def test_team_comes_from_the_argument_when_the_session_has_none(setup: Setup, name: str):
    local = FeatureStore(AccountSession(setup.consumer_admin))
    with pytest.raises(ValidationError, match="no owning team") as info:
        local.ensure_group(customers_spec(name, offline=False))
    assert info.value.field == "team"

    group = local.ensure_group(customers_spec(name, offline=False), team="reviews")

    assert group.account_id == setup.aws.account_ids["consumer"]
    assert group.tags == {"team": "reviews"}
    assert not group.offline_enabled and group.table is None


def test_conflicting_team_argument_and_tag_is_rejected(setup: Setup, name: str):
    with pytest.raises(ValidationError, match="conflicts"):
        setup.ensure(customers_spec(name, tags={"team": "other"}), team="search")


def test_invalid_spec_and_arguments_fail_before_any_aws_call(setup: Setup, name: str):
    calls = count_calls(setup.central)
    bad = GroupSpec(name="bad name", record_id="id", event_time="ts", features=[Feature("id", "String")])

    with pytest.raises(ValidationError) as info:
        setup.store.ensure_group(bad, offline_s3_uri="not-a-uri", role_arn="role")

    fields = {p.split("=")[0] for p in info.value.problems}
    assert {"name", "event_time", "offline_s3_uri", "role_arn"} <= fields
    assert sum(calls.values()) == 0


@pytest.mark.parametrize("role_arn", [
    "arn:aws:iam::111111111111:roleX",  # no slash after 'role'
    "arn:aws:iam::111111111111:role/",  # no role name
    "arn:aws:iam::111111111111:role/" + "r" * 513,  # longer than IAM allows
    "arn:aws:iam::11111111111:role/FeatureStoreOffline",  # 11-digit account
])
def test_offline_role_must_be_an_iam_role_arn(setup: Setup, name: str, role_arn: str):
    calls = count_calls(setup.central)

    with pytest.raises(ValidationError, match="role_arn=") as info:
        setup.ensure(customers_spec(name), role_arn=role_arn)

    assert info.value.field == "role_arn"
    assert sum(calls.values()) == 0


def other_teams_group(setup: Setup, name: str, *, shared: bool) -> str:
    """A group the central admin creates for team 'reviews' (optionally tagged shared=true)."""
    tags = {"team": "reviews", **({"shared": "true"} if shared else {})}
    spec = customers_spec(name, tags=tags)
    FeatureStore(AccountSession(setup.central_admin)).ensure_group(
        spec, offline_s3_uri=OFFLINE_URI, role_arn=setup.offline_role_arn)
    return spec.name


def test_another_teams_unshared_group_is_access_denied_not_missing(setup: Setup, name: str):
    other_teams_group(setup, name, shared=False)

    with pytest.raises(AccessDeniedError, match="owned by another team"):
        setup.store.group(name)
    with pytest.raises(AccessDeniedError, match="owned by another team"):
        setup.ensure(customers_spec(name))


def test_writes_to_another_teams_shared_group_are_reported_as_failures(setup: Setup, name: str):
    other_teams_group(setup, name, shared=True)
    group = setup.store.group(name)  # shared: readable by every team

    report = group.ingest(customers(30))

    assert (report.rows_written, report.failed) == (0, 30)
    assert {f.code for f in report.failures} == {"AccessDeniedException"}
    assert group.get("c-000001") is None


def test_group_by_name_or_arn_is_cached_until_refresh(setup: Setup, name: str):
    created = setup.ensure(customers_spec(name))
    calls = count_calls(setup.central)

    by_name, by_arn = setup.store.group(name), setup.store.group(created.arn)

    assert by_name is by_arn
    assert calls["DescribeFeatureGroup"] == 0
    setup.store.group(name, refresh=True)
    assert calls["DescribeFeatureGroup"] == 1


def test_consumer_reads_a_central_group_by_arn_from_its_own_account(setup: Setup, name: str):
    created = setup.ensure(customers_spec(name))
    consumer_store = FeatureStore(AccountSession(setup.consumer_admin))

    group = consumer_store.group(created.arn)

    assert group.account_id == setup.aws.account_ids["central"]
    assert group.record_id == "customer_id"


def test_unknown_group_is_not_found(setup: Setup, name: str):
    with pytest.raises(NotFoundError, match="nope"):
        setup.store.group("nope")


def test_list_groups_filters_by_name(setup: Setup, name: str):
    setup.ensure(customers_spec(f"{name}-customers"))
    setup.ensure(customers_spec(f"{name}-orders"))

    assert [g.name for g in setup.store.list_groups(name_contains=f"{name}-cust")] == [f"{name}-customers"]
    assert {f"{name}-customers", f"{name}-orders"} <= {g.name for g in setup.store.list_groups()}
    assert len(setup.store.list_groups(limit=1)) == 1


def test_delete_group_needs_the_name_confirmed(setup: Setup, name: str):
    setup.ensure(customers_spec(name))
    with pytest.raises(ValidationError, match="does not match"):
        setup.store.delete_group(name, confirm=name[:-1])

    setup.store.delete_group(name, confirm=name, timeout=10)

    with pytest.raises(NotFoundError):
        setup.store.group(name)


def test_worker_processes_rebuild_the_assumed_role_session_and_keep_global_row_positions(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    df = customers(600)
    df["customer_id"] = df["customer_id"].astype(object)
    df.loc[[5, 450], "customer_id"] = None
    # A profile-based source session (the module exports aws.env()): its spec, without secrets, is what the
    # spawned workers receive and assume the role from again.
    central = assume_role(setup.access_role_arn, profile="consumer-admin", tags={"team": TEAM},
                          session_name="workers", region=setup.aws.region)
    in_central = FeatureStore(central).group(group.arn)

    report = in_central.ingest(df, processes=2, chunk_size=200, max_in_flight=2)

    assert central.to_spec().role_arn == setup.access_role_arn
    assert (report.rows_seen, report.rows_written) == (600, 598)
    assert [f.position for f in report.failures] == [5, 450]
    assert group.get("c-000599")["visits"] == int(df["visits"].iloc[599])


# ------------------------------------------------------------------------ waits (stubbed at the AWS boundary)

_CORE = botocore.session.get_session()  # shared so service models are loaded once, not per test


def stubbed_store(replies: list[dict[str, Any]]) -> tuple[FeatureStore, Stubber]:
    session = AccountSession(boto3.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1",
                                           botocore_session=_CORE))
    stubber = Stubber(session.client("sagemaker"))
    for reply in replies:
        stubber.add_response("describe_feature_group", reply)
    stubber.activate()
    return FeatureStore(session), stubber


def describe(status: str, offline: str | None = "Active", **extra: Any) -> dict[str, Any]:
    reply = {"FeatureGroupArn": "arn:aws:sagemaker:us-east-1:111111111111:feature-group/g", "FeatureGroupName": "g",
             "RecordIdentifierFeatureName": "id", "EventTimeFeatureName": "ts", "CreationTime": "2024-01-01",
             "FeatureDefinitions": [{"FeatureName": "id", "FeatureType": "String"},
                                    {"FeatureName": "ts", "FeatureType": "String"}],
             "FeatureGroupStatus": status,
             "OfflineStoreConfig": {"S3StorageConfig": {"S3Uri": "s3://b/p"}}, "NextToken": ""}
    if offline:
        reply["OfflineStoreStatus"] = {"Status": offline}
    reply.update(extra)
    return reply


def test_wait_polls_until_created_and_offline_store_active():
    store, stubber = stubbed_store([describe("Creating", None), describe("Created", "Disabled"),
                                    describe("Created", "Active")])
    description = store.wait_for_group("g", timeout=5)
    assert description["OfflineStoreStatus"]["Status"] == "Active"
    stubber.assert_no_pending_responses()


def test_create_failed_surfaces_the_failure_reason():
    store, _ = stubbed_store([describe("CreateFailed", None, FailureReason="KMS key is disabled")])
    with pytest.raises(AWSError, match="KMS key is disabled"):
        store.wait_for_group("g", timeout=5)


def test_wait_times_out_with_a_hint():
    store, _ = stubbed_store([describe("Creating", None)] * 10)
    with pytest.raises(WaitTimeoutError, match=r"after 0\.1s"):
        store.wait_for_group("g", timeout=0.1)


def test_feature_type_enum_values_are_the_api_strings():
    assert [t.value for t in FeatureType] == ["Integral", "Fractional", "String"]

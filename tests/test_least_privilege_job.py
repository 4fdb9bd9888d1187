"""The cross-account job under the bootstrapped least-privilege roles, on the embedded AWS enforcing IAM.

One embedded AWS per module is bootstrapped from featureshare.example.toml; the consumer's admin plays
SageMaker and assumes the execution role, which assumes the central FeatureShareAccess role with its team
tag. Tests that remove a grant put it back (``without_statement``), so each sees the bootstrapped policies.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from featureshare.config import Topology, load_topology
from featureshare.demo import bootstrap_accounts
from featureshare.errors import AccessDeniedError, QueryFailedError, translate_client_error
from featureshare.local import EmbeddedAWS
from featureshare.local.policy_enforcement import Actor, authorize_reads
from featureshare.session import AccountSession, assume_role
from featureshare.training.athena import wait_for

EXAMPLE = Path(__file__).resolve().parent.parent / "featureshare.example.toml"
TEAM = "search"
GROUP = "search_users"
EVENT_TIME = "2026-01-01T00:00:00Z"


class World:
    """The bootstrapped accounts and the job's two sessions."""

    def __init__(self, aws: EmbeddedAWS, topology: Topology) -> None:
        self.aws = aws
        self.topology = topology
        self.consumer = topology.consumer(TEAM)
        self.execution_role_arn = self.consumer.execution_role_arns[0]
        self.central_role_arn = topology.central.access_role_arn
        self.consumer_admin = aws.admin_session("consumer")
        self.central_admin = aws.admin_session("central")
        self.execution = self.assume_execution_role()
        self.central = self.assume_central(self.execution)

    def assume_execution_role(self) -> AccountSession:
        return assume_role(self.execution_role_arn, source=self.consumer_admin, session_name="job",
                           region=self.aws.region)

    def assume_central(self, source: AccountSession, tags: dict[str, str] | None = None) -> AccountSession:
        return assume_role(self.central_role_arn, source=source, tags=tags or {"team": TEAM}, session_name="job",
                           region=self.aws.region)

    def create_group(self, session: AccountSession, name: str, team: str = TEAM) -> dict[str, Any]:
        central = self.topology.central
        return session.client("sagemaker").create_feature_group(
            FeatureGroupName=name, RecordIdentifierFeatureName="user_id", EventTimeFeatureName="event_time",
            FeatureDefinitions=[{"FeatureName": "user_id", "FeatureType": "String"},
                                {"FeatureName": "event_time", "FeatureType": "String"},
                                {"FeatureName": "clicks", "FeatureType": "Integral"}],
            OnlineStoreConfig={"EnableOnlineStore": True},
            OfflineStoreConfig={"S3StorageConfig": {"S3Uri": f"s3://{central.offline_bucket}/{central.offline_prefix}",
                                                    "KmsKeyId": central.kms_key}},
            RoleArn=central.offline_store_role_arn, Tags=[{"Key": "team", "Value": team}])

    def offline_objects(self) -> tuple[str, list[str]]:
        described = self.central.client("sagemaker").describe_feature_group(FeatureGroupName=GROUP)
        uri = described["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        listed = self.execution.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
        return bucket, [o["Key"] for o in listed.get("Contents", [])]


def _record(user_id: str, clicks: int) -> list[dict[str, str]]:
    return [{"FeatureName": "user_id", "ValueAsString": user_id},
            {"FeatureName": "event_time", "ValueAsString": EVENT_TIME},
            {"FeatureName": "clicks", "ValueAsString": str(clicks)}]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    topology = load_topology(EXAMPLE)
    with EmbeddedAWS() as aws:
        bootstrap_accounts(aws, topology)
        job = World(aws, topology)
        job.create_group(job.central, GROUP)
        job.central.client("sagemaker-featurestore-runtime").put_record(FeatureGroupName=GROUP,
                                                                        Record=_record("u1", 7))
        aws.flush()
        yield job


# --------------------------------------------------------------------------------------------- helpers

def _without(document: dict[str, Any], sid: str, action: str | None) -> dict[str, Any]:
    """``document`` without statement ``sid`` (or, with ``action``, without that action in it)."""
    changed = copy.deepcopy(document)
    statements = []
    for statement in changed["Statement"]:
        if statement.get("Sid") == sid:
            if action is None:
                continue
            actions = [a for a in statement["Action"] if a != action]
            assert len(actions) < len(statement["Action"]), f"{action} is not in {sid}"
            statement["Action"] = actions
        statements.append(statement)
    assert len(statements) < len(changed["Statement"]) or action, f"no statement {sid}"
    changed["Statement"] = statements
    return changed


@contextlib.contextmanager
def without_statement(read: Callable[[], dict[str, Any]], write: Callable[[dict[str, Any]], Any], sid: str,
                      action: str | None = None) -> Iterator[None]:
    """Remove one grant for the duration of the block, then restore the bootstrapped document."""
    original = read()
    write(_without(original, sid, action))
    try:
        yield
    finally:
        write(original)


def role_policy(world: World, account: str, role: str, name: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    iam = (world.central_admin if account == "central" else world.consumer_admin).client("iam")
    return (lambda: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"],
            lambda doc: iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=json.dumps(doc)))


def trust_policy(world: World, role: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    iam = world.central_admin.client("iam")
    return (lambda: iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"],
            lambda doc: iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(doc)))


def bucket_policy(world: World) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    s3, bucket = world.central_admin.client("s3"), world.topology.central.offline_bucket
    return (lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]),
            lambda doc: s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc)))


def key_policy(world: World) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    kms = world.central_admin.client("kms")
    key = kms.describe_key(KeyId=world.topology.central.kms_key)["KeyMetadata"]["KeyId"]
    return (lambda: json.loads(kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]),
            lambda doc: kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(doc)))


def denied(call: Callable[[], Any], action: str) -> str:
    """Run ``call``; it must fail with AccessDenied naming ``action``; returns the message."""
    with pytest.raises((ClientError, AccessDeniedError)) as caught:
        call()
    # featureshare.session raises AccessDeniedError from the STS ClientError when a refresh is refused.
    cause = caught.value if isinstance(caught.value, ClientError) else caught.value.__cause__
    assert isinstance(cause, ClientError), caught.value
    error = cause.response["Error"]
    assert error["Code"] in ("AccessDenied", "AccessDeniedException"), error
    assert f"not authorized to perform: {action} " in error["Message"], error["Message"]
    return str(error["Message"])


def run_query(session: AccountSession, sql: str, workgroup: str, timeout: float = 30.0) -> dict[str, Any]:
    athena = session.client("athena")
    query_id = athena.start_query_execution(QueryString=sql, WorkGroup=workgroup)["QueryExecutionId"]
    wait_for(athena, query_id, timeout=timeout)
    return athena.get_query_results(QueryExecutionId=query_id)["ResultSet"]


# --------------------------------------------------------------------------------------------- the job

def test_the_job_runs_end_to_end_under_the_bootstrapped_roles(world: World) -> None:
    assert world.execution.client("sts").get_caller_identity()["Arn"] == \
        "arn:aws:sts::222222222222:assumed-role/SearchSageMakerExecution/job"
    assert world.central.client("sts").get_caller_identity()["Arn"] == \
        "arn:aws:sts::111111111111:assumed-role/FeatureShareAccess/job"
    runtime = world.central.client("sagemaker-featurestore-runtime")
    runtime.put_record(FeatureGroupName=GROUP, Record=_record("u2", 3))
    record = runtime.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="u2")["Record"]
    assert {f["FeatureName"]: f["ValueAsString"] for f in record}["clicks"] == "3"
    world.aws.flush()

    bucket, keys = world.offline_objects()
    assert keys, "the offline store wrote no Parquet file"
    assert world.execution.client("s3").get_object(Bucket=bucket, Key=keys[0])["Body"].read()[:4] == b"PAR1"

    table = world.central.client("sagemaker").describe_feature_group(
        FeatureGroupName=GROUP)["OfflineStoreConfig"]["DataCatalogConfig"]["TableName"]
    rows = run_query(world.execution, f'SELECT user_id, clicks FROM "{world.consumer.central_catalog}".'
                     f'"sagemaker_featurestore"."{table}" ORDER BY user_id', world.consumer.athena_workgroup)["Rows"]
    assert [[c.get("VarCharValue") for c in r["Data"]] for r in rows[1:]] == [["u1", "7"], ["u2", "3"]]


def test_the_execution_role_carries_the_team_tag_the_trust_policy_compares(world: World) -> None:
    tags = world.consumer_admin.client("iam").list_role_tags(RoleName="SearchSageMakerExecution")["Tags"]
    assert {"Key": "team", "Value": TEAM} in tags
    access_key = world.central.boto3_session.get_credentials().get_frozen_credentials().access_key
    assert world.aws.policy.principal(access_key).tags["team"] == TEAM


# --------------------------------------------------------------------------------------------- trust

def test_without_tag_session_for_the_team_assume_role_with_tags_fails_and_untagged_still_works(world: World) -> None:
    read, write = trust_policy(world, "FeatureShareAccess")
    sid = next(s["Sid"] for s in read()["Statement"] if s["Action"] == "sts:TagSession")
    with without_statement(read, write, sid):
        message = denied(lambda: world.assume_central(world.execution).whoami(), "sts:TagSession")
        assert "SearchSageMakerExecution" in message and "FeatureShareAccess" in message
        untagged = assume_role(world.central_role_arn, source=world.execution, region=world.aws.region)
        assert untagged.whoami().account == "111111111111"
    assert world.assume_central(world.execution).whoami().account == "111111111111"


def test_a_session_cannot_be_tagged_with_another_team(world: World) -> None:
    denied(lambda: world.assume_central(world.execution, tags={"team": "reviews"}).whoami(), "sts:TagSession")


def test_a_consumer_role_not_named_in_the_trust_cannot_assume_the_central_role(world: World) -> None:
    iam = world.consumer_admin.client("iam")
    trust = iam.get_role(RoleName="SearchSageMakerExecution")["Role"]["AssumeRolePolicyDocument"]
    iam.create_role(RoleName="SearchOtherJob", AssumeRolePolicyDocument=json.dumps(trust),
                    Tags=[{"Key": "team", "Value": TEAM}])
    policy = iam.get_role_policy(RoleName="SearchSageMakerExecution", PolicyName="featureshare-consumer")
    iam.put_role_policy(RoleName="SearchOtherJob", PolicyName="same-as-execution",
                        PolicyDocument=json.dumps(policy["PolicyDocument"]))
    other = assume_role("arn:aws:iam::222222222222:role/SearchOtherJob", source=world.consumer_admin,
                        region=world.aws.region)
    message = denied(lambda: world.assume_central(other).whoami(), "sts:AssumeRole")
    assert "assumed-role/SearchOtherJob" in message and "trust policy" in message


def test_the_execution_role_needs_its_own_grant_to_assume_the_central_role(world: World) -> None:
    read, write = role_policy(world, "consumer", "SearchSageMakerExecution", "featureshare-consumer")
    with without_statement(read, write, "AssumeCentralAccessRoleWithTagsAndSourceIdentity"):
        message = denied(lambda: world.assume_central(world.execution).whoami(), "sts:AssumeRole")
        assert "no identity-based policy allows" in message


# --------------------------------------------------------------------------------------------- feature groups

def test_without_the_put_record_grant_put_record_fails_while_describe_and_get_record_work(world: World) -> None:
    read, write = role_policy(world, "central", "FeatureShareAccess", "featureshare-access")
    runtime = world.central.client("sagemaker-featurestore-runtime")
    with without_statement(read, write, "WriteOwnTeamFeatureGroups", "sagemaker:PutRecord"):
        denied(lambda: runtime.put_record(FeatureGroupName=GROUP, Record=_record("u3", 1)), "sagemaker:PutRecord")
        with pytest.raises(AccessDeniedError, match="sagemaker:PutRecord"), \
                translate_client_error(action="sagemaker:PutRecord", resource=GROUP):
            runtime.put_record(FeatureGroupName=GROUP, Record=_record("u3", 1))
        assert world.central.client("sagemaker").describe_feature_group(FeatureGroupName=GROUP)["FeatureGroupName"]
        assert runtime.get_record(FeatureGroupName=GROUP, RecordIdentifierValueAsString="u1")["Record"]
    runtime.put_record(FeatureGroupName=GROUP, Record=_record("u3", 1))


def test_a_group_tagged_with_another_team_cannot_be_created(world: World) -> None:
    message = denied(lambda: world.create_group(world.central, "reviews_users", team="reviews"),
                     "sagemaker:CreateFeatureGroup")
    assert "feature-group/reviews_users" in message


def test_creating_a_group_needs_pass_role_on_the_offline_store_role(world: World) -> None:
    read, write = role_policy(world, "central", "FeatureShareAccess", "featureshare-access")
    with without_statement(read, write, "PassOfflineStoreRoleToSageMakerOnly"):
        message = denied(lambda: world.create_group(world.central, "needs_pass_role"), "iam:PassRole")
        assert "role/FeatureShareOfflineStore" in message


def test_another_teams_group_cannot_be_written_even_by_arn(world: World) -> None:
    arn = world.create_group(AccountSession(world.central_admin), "reviews_owned", team="reviews")["FeatureGroupArn"]
    runtime = world.central.client("sagemaker-featurestore-runtime")
    denied(lambda: runtime.put_record(FeatureGroupName=arn, Record=_record("u1", 1)), "sagemaker:PutRecord")
    denied(lambda: world.central.client("sagemaker").delete_feature_group(FeatureGroupName="reviews_owned"),
           "sagemaker:DeleteFeatureGroup")


def test_a_central_group_by_arn_from_the_consumer_account_needs_a_ram_share(world: World) -> None:
    arn = world.central.client("sagemaker").describe_feature_group(FeatureGroupName=GROUP)["FeatureGroupArn"]
    iam = world.consumer_admin.client("iam")
    iam.put_role_policy(RoleName="SearchSageMakerExecution", PolicyName="describe-central-groups",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                            "Effect": "Allow", "Action": "sagemaker:DescribeFeatureGroup", "Resource": arn}]}))
    try:
        message = denied(lambda: world.execution.client("sagemaker").describe_feature_group(FeatureGroupName=arn),
                         "sagemaker:DescribeFeatureGroup")
        assert "RAM" in message
    finally:
        iam.delete_role_policy(RoleName="SearchSageMakerExecution", PolicyName="describe-central-groups")


# --------------------------------------------------------------------------------------------- offline store

def test_the_consumer_can_read_but_not_write_or_delete_the_central_offline_prefix(world: World) -> None:
    bucket, keys = world.offline_objects()
    s3 = world.execution.client("s3")
    assert s3.head_object(Bucket=bucket, Key=keys[0])["ContentLength"] > 0
    prefix = keys[0].rsplit("/", 1)[0]
    denied(lambda: s3.put_object(Bucket=bucket, Key=f"{prefix}/forged.parquet", Body=b"PAR1"), "s3:PutObject")
    denied(lambda: s3.delete_object(Bucket=bucket, Key=keys[0]), "s3:DeleteObject")
    denied(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="elsewhere/"), "s3:ListBucket")


def test_without_the_bucket_policy_grant_the_consumer_cannot_read_the_offline_store(world: World) -> None:
    bucket, keys = world.offline_objects()
    read, write = bucket_policy(world)
    with without_statement(read, write, "ConsumersReadOfflinePrefix"):
        message = denied(lambda: world.execution.client("s3").get_object(Bucket=bucket, Key=keys[0]),
                         "s3:GetObject")
        assert "no resource-based policy allows" in message
    assert world.execution.client("s3").get_object(Bucket=bucket, Key=keys[0])["Body"].read()


def test_a_query_reading_the_central_offline_store_fails_without_the_bucket_policy_grant(world: World) -> None:
    world.aws.flush()
    table = world.central.client("sagemaker").describe_feature_group(
        FeatureGroupName=GROUP)["OfflineStoreConfig"]["DataCatalogConfig"]["TableName"]
    sql = f'SELECT count(*) FROM "{world.consumer.central_catalog}"."sagemaker_featurestore"."{table}"'
    read, write = bucket_policy(world)
    athena = world.execution.client("athena")
    with without_statement(read, write, "ConsumersReadOfflinePrefix"):
        query_id = athena.start_query_execution(QueryString=sql, WorkGroup=world.consumer.athena_workgroup)[
            "QueryExecutionId"]
        with pytest.raises(QueryFailedError) as failed:
            wait_for(athena, query_id, timeout=30)
        assert failed.value.state == "FAILED"
        assert "not authorized to perform: s3:GetObject" in failed.value.reason
    assert run_query(world.execution, sql, world.consumer.athena_workgroup)["Rows"][1:]


def test_without_the_key_policy_grant_reading_encrypted_offline_files_fails_on_kms_decrypt(world: World) -> None:
    bucket, keys = world.offline_objects()
    read, write = key_policy(world)
    with without_statement(read, write, "ConsumersDecryptViaS3Only"):
        denied(lambda: world.execution.client("s3").get_object(Bucket=bucket, Key=keys[0]), "kms:Decrypt")


def test_the_central_catalog_is_readable_across_accounts_only_through_the_glue_resource_policy(world: World) -> None:
    glue = world.execution.client("glue")

    def get_database() -> Any:
        return glue.get_database(CatalogId="111111111111", Name="sagemaker_featurestore")

    with contextlib.suppress(ClientError):  # moto's Glue ignores CatalogId: past IAM it answers for its own account
        get_database()
    glue_admin = world.central_admin.client("glue")
    saved = glue_admin.get_resource_policy()["PolicyInJson"]
    glue_admin.delete_resource_policy()
    try:
        message = denied(get_database, "glue:GetDatabase")
        assert "arn:aws:glue:us-east-1:111111111111:catalog" in message
    finally:
        glue_admin.put_resource_policy(PolicyInJson=saved, EnableHybrid="TRUE")


def test_the_athena_engine_hook_judges_the_tables_and_files_a_query_reads(world: World) -> None:
    access_key = world.execution.boto3_session.get_credentials().get_frozen_credentials().access_key
    actor = Actor(world.aws.policy.principal(access_key), world.aws.policy, world.aws.region)
    bucket, keys = world.offline_objects()
    table = world.central.client("sagemaker").describe_feature_group(
        FeatureGroupName=GROUP)["OfflineStoreConfig"]["DataCatalogConfig"]["TableName"]
    reads = {"tables": [("111111111111", "sagemaker_featurestore", table)], "objects": [(bucket, keys[0])]}
    assert authorize_reads(actor, **reads, writes=[(world.consumer.training_bucket, "athena-results/q.csv")]) is None
    assert "s3:PutObject" in authorize_reads(actor, writes=[(bucket, keys[0])])
    glue_admin = world.central_admin.client("glue")
    saved = glue_admin.get_resource_policy()["PolicyInJson"]
    glue_admin.delete_resource_policy()
    try:
        assert "glue:GetTable" in authorize_reads(actor, **reads)
    finally:
        glue_admin.put_resource_policy(PolicyInJson=saved, EnableHybrid="TRUE")
    assert authorize_reads(None, **reads) is None  # admins and enforcement off: no actor


def test_athena_queries_only_run_in_the_workgroups_the_role_is_granted(world: World) -> None:
    denied(lambda: world.execution.client("athena").start_query_execution(QueryString="SELECT 1",
                                                                          WorkGroup="primary"),
           "athena:StartQueryExecution")


def test_switching_enforcement_off_lets_a_refused_call_through(world: World) -> None:
    bucket, keys = world.offline_objects()
    s3 = world.execution.client("s3")
    key = keys[0].rsplit("/", 1)[0] + "/while-off.txt"
    world.aws.enforce_iam = False
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    finally:
        world.aws.enforce_iam = True
    denied(lambda: s3.delete_object(Bucket=bucket, Key=key), "s3:DeleteObject")
    world.central_admin.client("s3").delete_object(Bucket=bucket, Key=key)

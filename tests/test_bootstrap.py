"""`bootstrap plan | apply | destroy` on the embedded two-account AWS."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from featureshare.bootstrap.plan import Action, Bootstrap
from featureshare.bootstrap.resources import unless_missing
from featureshare.config import Topology, load_topology
from featureshare.errors import ConfigError, ValidationError
from featureshare.local import EmbeddedAWS
from featureshare.session import AccountSession

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "featureshare.example.toml"


@pytest.fixture
def topology() -> Topology:
    return load_topology(EXAMPLE)


@pytest.fixture
def aws() -> EmbeddedAWS:
    with EmbeddedAWS() as embedded:
        yield embedded


def sessions(aws: EmbeddedAWS) -> dict[str, AccountSession]:
    return {"central": AccountSession(aws.admin_session("central")),
            "search": AccountSession(aws.admin_session("consumer"))}


def booted(aws: EmbeddedAWS, topology: Topology) -> Bootstrap:
    return Bootstrap(topology, sessions(aws), create_execution_roles=True)


def test_plan_on_empty_accounts_lists_every_resource_to_create_and_changes_nothing(aws, topology) -> None:
    plan = booted(aws, topology).plan()
    assert {c.action for c in plan.changes} == {Action.CREATE}
    addresses = [c.address for c in plan.changes]
    assert addresses[:2] == ["central:kms-key:alias/featureshare-offline", "central:iam-role:FeatureShareAccess"]
    for expected in ("central:s3-bucket:featureshare-offline-111111111111",
                     "central:glue-resource-policy:catalog",
                     "search:iam-role-policy:SearchSageMakerExecution/featureshare-consumer",
                     "search:athena-workgroup:featureshare", "search:athena-data-catalog:central",
                     "search:glue-database:featureshare_scratch"):
        assert expected in addresses
    assert booted(aws, topology).plan() == plan
    assert aws.admin_session("central").client("iam").list_roles()["Roles"] == []


def test_apply_creates_least_privilege_resources_and_a_second_plan_is_empty(aws, topology) -> None:
    applied = booted(aws, topology).apply()
    assert len(applied.pending) == len(applied.changes)
    assert booted(aws, topology).plan().empty

    central = aws.admin_session("central")
    trust = central.client("iam").get_role(RoleName="FeatureShareAccess")["Role"]["AssumeRolePolicyDocument"]
    principals = json.dumps(trust)
    assert "arn:aws:iam::222222222222:root" in principals
    assert "SearchSageMakerExecution" in principals  # narrowed with aws:PrincipalArn
    key_arn = central.client("kms").describe_key(KeyId="alias/featureshare-offline")["KeyMetadata"]["Arn"]
    encryption = central.client("s3").get_bucket_encryption(Bucket="featureshare-offline-111111111111")
    default = encryption["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert default == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
    consumer = aws.admin_session("consumer")
    catalog = consumer.client("athena").get_data_catalog(Name="central")["DataCatalog"]
    assert catalog["Type"] == "GLUE" and catalog["Parameters"]["catalog-id"] == "111111111111"
    workgroup = consumer.client("athena").get_work_group(WorkGroup="featureshare")["WorkGroup"]
    assert workgroup["Configuration"]["ResultConfiguration"]["OutputLocation"] == \
        "s3://featureshare-training-222222222222/athena-results/"
    for document in (central.client("s3").get_bucket_policy(Bucket="featureshare-offline-111111111111")["Policy"],
                     json.dumps(central.client("iam").get_role_policy(
                         RoleName="FeatureShareAccess", PolicyName="featureshare-access")["PolicyDocument"])):
        assert '"s3:*"' not in document and "FullAccess" not in document


def test_drift_is_shown_as_an_update_with_a_diff_and_apply_repairs_it(aws, topology) -> None:
    booted(aws, topology).apply()
    s3 = aws.admin_session("central").client("s3")
    s3.put_bucket_policy(Bucket="featureshare-offline-111111111111", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Sid": "Open", "Effect": "Allow", "Principal": "*",
                                               "Action": "s3:GetObject",
                                               "Resource": "arn:aws:s3:::featureshare-offline-111111111111/*"}]}))
    plan = booted(aws, topology).plan()
    (change,) = plan.pending
    assert change.action is Action.UPDATE
    assert change.address == "central:s3-bucket-policy:featureshare-offline-111111111111"
    assert any(line.startswith("-") and '"Open"' in line for line in change.diff)
    booted(aws, topology).apply()
    assert booted(aws, topology).plan().empty


def test_destroy_removes_only_what_bootstrap_created(aws, topology) -> None:
    booted(aws, topology).apply()
    iam = aws.admin_session("central").client("iam")
    iam.create_role(RoleName="SomeoneElses", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                               "Action": "sts:AssumeRole"}]}))
    destroyed = booted(aws, topology).destroy()
    assert {c.action for c in destroyed.changes} == {Action.DELETE}
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["SomeoneElses"]
    assert {c.action for c in booted(aws, topology).plan().changes} == {Action.CREATE}


def test_destroy_refuses_a_non_empty_bucket_unless_forced(aws, topology) -> None:
    booted(aws, topology).apply()
    consumer = aws.admin_session("consumer").client("s3")
    consumer.put_object(Bucket="featureshare-training-222222222222", Key="sets/a.parquet", Body=b"x")
    with pytest.raises(ValidationError, match="featureshare-training-222222222222 is not empty"):
        booted(aws, topology).destroy()
    booted(aws, topology).destroy(force=True)
    assert consumer.list_buckets()["Buckets"] == []


def test_credentials_of_the_wrong_account_are_refused_before_anything_is_done(aws, topology) -> None:
    wrong = {"central": AccountSession(aws.admin_session("consumer")),
             "search": AccountSession(aws.admin_session("consumer"))}
    with pytest.raises(ConfigError, match="credentials for central act in account 222222222222, expected 111"):
        Bootstrap(topology, wrong)
    with pytest.raises(ConfigError, match="missing: search"):
        Bootstrap(topology, {"central": AccountSession(aws.admin_session("central"))})


def test_make_bootstrap_roles_local_plans_applies_and_then_plans_nothing() -> None:
    with EmbeddedAWS(server=True) as aws:
        env = {**os.environ, **aws.env(), "FEATURESHARE_CONFIG": ""}

        def make(*args: str) -> str:
            done = subprocess.run(["make", "-s", "bootstrap-roles", "LOCAL=1", *args], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        first = make()
        assert "+ create  central:iam-role:FeatureShareAccess" in first
        assert "plan: 18 to create" in first
        assert "applied: 17 created, 1 updated" in make("APPLY=1")  # the key policy replaces the default one
        assert "no changes: the accounts match the topology" in make()


def _many_consumers(count: int) -> Topology:
    data = tomllib.loads(EXAMPLE.read_text())
    template = data["consumers"][0]
    data["teams"] = [f"team{i}" for i in range(count)]
    data["consumers"] = [{**template, "name": f"c{i}", "team": f"team{i}", "account_id": f"{222222222222 + i}",
                          "execution_role_arns": [f"arn:aws:iam::{222222222222 + i}:role/Exec"],
                          "training_bucket": f"training-{i}-bucket"} for i in range(count)]
    return Topology.from_dict(data)


def test_a_trust_policy_over_the_quota_is_refused_at_plan_time_with_the_ways_out() -> None:
    topology = _many_consumers(4)
    accounts = {"central": topology.central.account_id, **{c.name: c.account_id for c in topology.consumers}}
    with EmbeddedAWS(accounts=accounts) as aws:
        sessions = {name: AccountSession(aws.admin_session(name)) for name in accounts}
        with pytest.raises(ConfigError, match=r"renders to \d+ characters for 4 consumers, over .* quota of 2048"):
            Bootstrap(topology, sessions).plan()
        assert Bootstrap(topology, sessions, trust_policy_quota=4096).plan().pending
        assert Bootstrap(topology, sessions, bind_teams_in_trust=False).plan().pending


@pytest.mark.parametrize("region, partition", [("us-gov-west-1", "aws-us-gov"), ("cn-north-1", "aws-cn")])
def test_apply_outside_the_aws_partition_is_idempotent_and_names_the_region_s_partition(region: str,
                                                                                       partition: str) -> None:
    text = EXAMPLE.read_text().replace('region = "us-east-1"', f'region = "{region}"')
    topology = Topology.from_dict(tomllib.loads(text.replace("arn:aws:", f"arn:{partition}:")))
    with EmbeddedAWS(region=region) as aws:
        booted(aws, topology).apply()
        again = booted(aws, topology).plan()
        assert again.empty, [c.render() for c in again.pending]
        tags = aws.admin_session("consumer").client("athena").list_tags_for_resource(
            ResourceARN=f"arn:{partition}:athena:{region}:222222222222:workgroup/featureshare")["Tags"]
        assert {"Key": "managed-by", "Value": "featureshare"} in tags
        trust = aws.admin_session("consumer").client("iam").get_role(
            RoleName="SearchSageMakerExecution")["Role"]["AssumeRolePolicyDocument"]
        assert f"arn:{partition}:iam::222222222222:root" in json.dumps(trust)


# ---------------------------------------------------------------------------------------------------------
# What bootstrap did not create: never taken over, never destroyed

OFFLINE_BUCKET = "featureshare-offline-111111111111"
TRAINING_BUCKET = "featureshare-training-222222222222"
OTHER_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
OWNER = [{"Key": "owner", "Value": "data-platform"}]


def test_an_offline_key_alias_naming_a_key_bootstrap_did_not_create_is_refused_and_its_arn_is_checked_instead(
        aws, topology) -> None:
    kms = aws.admin_session("central").client("kms")
    key = kms.create_key(Description="the offline store's data key", Tags=[
        {"TagKey": "owner", "TagValue": "data-platform"}])["KeyMetadata"]
    kms.create_alias(AliasName="alias/featureshare-offline", TargetKeyId=key["KeyId"])
    policy = kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]
    for attempt in (booted(aws, topology).plan, booted(aws, topology).apply):
        with pytest.raises(ConfigError, match=rf"central\.kms_key: alias/featureshare-offline names key "
                                              rf"{key['KeyId']} in account 111111111111, .*set central\.kms_key = "
                                              rf"\"{key['Arn']}\".* choose another alias") as refused:
            attempt()
        assert len(refused.value.problems) == 1
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [{"TagKey": "owner", "TagValue": "data-platform"}]
    assert kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"] == policy
    assert aws.admin_session("central").client("iam").list_roles()["Roles"] == []

    as_is = replace(topology, central=replace(topology.central, kms_key=key["Arn"]))
    (needed,) = booted(aws, as_is).plan().actions_needed
    assert (needed.key_arn, needed.documents) == (key["Arn"], ("offline-key-policy",))
    booted(aws, as_is).apply()
    booted(aws, topology).destroy()
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_existing_buckets_execution_roles_and_databases_are_used_and_never_destroyed(aws, topology) -> None:
    consumer = aws.admin_session("consumer")
    s3, iam, glue = consumer.client("s3"), consumer.client("iam"), consumer.client("glue")
    s3.create_bucket(Bucket=TRAINING_BUCKET)
    s3.put_bucket_tagging(Bucket=TRAINING_BUCKET, Tagging={"TagSet": [{"Key": "cost-center", "Value": "ml"}]})
    s3.put_object(Bucket=TRAINING_BUCKET, Key="models/model.tar.gz", Body=b"weights")
    iam.create_role(RoleName="SearchSageMakerExecution", AssumeRolePolicyDocument=json.dumps(OTHER_TRUST),
                    Tags=[{"Key": "team", "Value": "search"}])
    glue.create_database(DatabaseInput={"Name": "featureshare_scratch", "Parameters": {"owner": "search"}})

    plan = booted(aws, topology).plan()
    actions = {c.address: c.action for c in plan.changes}
    assert actions[f"search:s3-bucket:{TRAINING_BUCKET}"] is Action.UPDATE  # encryption, versioning, ...
    assert actions["search:iam-role:SearchSageMakerExecution"] is Action.NOOP
    assert actions["search:glue-database:featureshare_scratch"] is Action.NOOP
    booted(aws, topology).apply()
    assert booted(aws, topology).plan().empty
    assert s3.get_bucket_tagging(Bucket=TRAINING_BUCKET)["TagSet"] == [{"Key": "cost-center", "Value": "ml"}]
    assert s3.get_bucket_versioning(Bucket=TRAINING_BUCKET)["Status"] == "Enabled"
    assert iam.list_role_policies(RoleName="SearchSageMakerExecution")["PolicyNames"] == ["featureshare-consumer"]

    booted(aws, topology).destroy(force=True)
    assert s3.get_object(Bucket=TRAINING_BUCKET, Key="models/model.tar.gz")["Body"].read() == b"weights"
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):  # only bootstrap's statements were in it
        s3.get_bucket_policy(Bucket=TRAINING_BUCKET)
    role = iam.get_role(RoleName="SearchSageMakerExecution")["Role"]
    assert role["AssumeRolePolicyDocument"] == OTHER_TRUST
    assert iam.list_role_policies(RoleName="SearchSageMakerExecution")["PolicyNames"] == []
    assert glue.get_database(Name="featureshare_scratch")["Database"]["Parameters"] == {"owner": "search"}
    assert [b["Name"] for b in aws.admin_session("central").client("s3").list_buckets()["Buckets"]] == []


def _foreign_workgroup_and_catalog(aws: EmbeddedAWS, output: str, catalog_id: str) -> None:
    athena = aws.admin_session("consumer").client("athena")
    athena.create_work_group(Name="featureshare", Tags=OWNER, Configuration={
        "ResultConfiguration": {"OutputLocation": output, "ExpectedBucketOwner": "222222222222"},
        "EnforceWorkGroupConfiguration": True})
    athena.create_data_catalog(Name="central", Type="GLUE", Parameters={"catalog-id": catalog_id}, Tags=OWNER)


def test_a_role_workgroup_or_catalog_bootstrap_did_not_create_is_refused_unless_it_is_what_bootstrap_would_make(
        aws, topology) -> None:
    iam = aws.admin_session("central").client("iam")
    iam.create_role(RoleName="FeatureShareAccess", AssumeRolePolicyDocument=json.dumps(OTHER_TRUST))
    _foreign_workgroup_and_catalog(aws, "s3://analytics-results/", "999999999999")
    for attempt in (booted(aws, topology).plan, booted(aws, topology).apply):
        with pytest.raises(ConfigError, match="bootstrap does not take over what it did not create") as refused:
            attempt()
        assert [problem.split(": ")[0] for problem in refused.value.problems] == [
            "central.access_role_arn", "consumers[0].athena_workgroup", "consumers[0].central_catalog"]
        assert "differs from what bootstrap would make it (catalog-id)" in refused.value.problems[2]
        assert "tag it managed-by=featureshare to hand it to bootstrap" in refused.value.problems[0]
    athena = aws.admin_session("consumer").client("athena")
    assert athena.get_data_catalog(Name="central")["DataCatalog"]["Parameters"] == {"catalog-id": "999999999999"}
    assert iam.get_role(RoleName="FeatureShareAccess")["Role"]["AssumeRolePolicyDocument"] == OTHER_TRUST
    assert aws.admin_session("consumer").client("s3").list_buckets()["Buckets"] == []

    # The same names, already what bootstrap would make them: used as they are, and left by destroy.
    iam.delete_role(RoleName="FeatureShareAccess")
    athena.delete_work_group(WorkGroup="featureshare")
    athena.delete_data_catalog(Name="central")
    _foreign_workgroup_and_catalog(aws, f"s3://{TRAINING_BUCKET}/athena-results/", "111111111111")
    booted(aws, topology).apply()
    assert booted(aws, topology).plan().empty
    booted(aws, topology).destroy()
    assert athena.get_work_group(WorkGroup="featureshare")["WorkGroup"]["Name"] == "featureshare"
    assert athena.get_data_catalog(Name="central")["DataCatalog"]["Parameters"] == {"catalog-id": "111111111111"}


def test_destroy_leaves_the_statements_others_added_to_the_glue_catalog_policy(aws, topology) -> None:
    booted(aws, topology).apply()
    glue = aws.admin_session("central").client("glue")
    policy = json.loads(glue.get_resource_policy()["PolicyInJson"])
    theirs = {"Sid": "AnalyticsReadsCatalog", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
              "Action": "glue:GetDatabase", "Resource": "arn:aws:glue:us-east-1:111111111111:catalog"}
    glue.put_resource_policy(PolicyInJson=json.dumps({**policy, "Statement": [*policy["Statement"], theirs]}),
                             EnableHybrid="TRUE")
    assert booted(aws, topology).plan().empty
    booted(aws, topology).destroy()
    assert json.loads(glue.get_resource_policy()["PolicyInJson"])["Statement"] == [theirs]


def _sids(policy: str) -> list[str]:
    return [statement["Sid"] for statement in json.loads(policy)["Statement"]]


def _removed_lines(diff: tuple[str, ...]) -> list[str]:
    return [line for line in diff if line.startswith("-")]


def test_apply_merges_its_statements_into_the_policy_of_an_existing_bucket_and_destroy_leaves_the_others(
        aws, topology) -> None:
    s3 = aws.admin_session("consumer").client("s3")
    s3.create_bucket(Bucket=TRAINING_BUCKET)
    theirs = [
        {"Sid": "ModelTeamReadsModels", "Effect": "Allow",
         "Principal": {"AWS": "arn:aws:iam::222222222222:role/ModelTeam"}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{TRAINING_BUCKET}/models/*"},
        {"Sid": "DenyOutsideVpcEndpoint", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
         "Resource": f"arn:aws:s3:::{TRAINING_BUCKET}/models/*",
         "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-0a1b2c3d"}}},
        {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": f"arn:aws:s3:::{TRAINING_BUCKET}/*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]
    s3.put_bucket_policy(Bucket=TRAINING_BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": theirs}))

    plan = booted(aws, topology).plan()
    (change,) = [c for c in plan.changes if c.address == f"search:s3-bucket-policy:{TRAINING_BUCKET}"]
    assert change.action is Action.UPDATE
    assert _removed_lines(change.diff) == []  # only bootstrap's statements are added
    assert any('"CentralAccessRoleReadsResults"' in line for line in change.diff if line.startswith("+"))

    booted(aws, topology).apply()
    assert _sids(s3.get_bucket_policy(Bucket=TRAINING_BUCKET)["Policy"]) == [
        "ModelTeamReadsModels", "DenyOutsideVpcEndpoint", "DenyInsecureTransport", "FeatureShareDenyInsecureTransport",
        "CentralAccessRoleWritesResultsOwnedByBucketOwner", "CentralAccessRoleReadsResults",
        "CentralAccessRoleListsCentralStagingPrefix", "CentralAccessRoleLocatesBucket"]
    assert booted(aws, topology).plan().empty

    booted(aws, topology).destroy(force=True)
    assert json.loads(s3.get_bucket_policy(Bucket=TRAINING_BUCKET)["Policy"])["Statement"] == theirs


def test_apply_merges_its_statement_into_an_existing_glue_catalog_policy_and_destroy_leaves_the_others(
        aws, topology) -> None:
    glue = aws.admin_session("central").client("glue")
    theirs = {"Sid": "AnalyticsReadsCatalog", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::333333333333:root"},
              "Action": "glue:GetDatabase", "Resource": "arn:aws:glue:us-east-1:111111111111:catalog"}
    glue.put_resource_policy(PolicyInJson=json.dumps({"Version": "2012-10-17", "Statement": [theirs]}))

    plan = booted(aws, topology).plan()
    (change,) = [c for c in plan.changes if c.address == "central:glue-resource-policy:catalog"]
    assert change.action is Action.UPDATE
    assert _removed_lines(change.diff) == []

    booted(aws, topology).apply()
    assert _sids(glue.get_resource_policy()["PolicyInJson"]) == [
        "AnalyticsReadsCatalog", "ConsumerExecutionRolesReadFeatureStoreTables"]
    assert booted(aws, topology).plan().empty

    booted(aws, topology).destroy()
    assert json.loads(glue.get_resource_policy()["PolicyInJson"])["Statement"] == [theirs]


def _fails(code: str, status: int = 400):
    def read():
        raise ClientError({"Error": {"Code": code, "Message": code},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, "Get")
    return read


@pytest.mark.parametrize("code, status", [("NoSuchEntity", 404), ("NoSuchTagSet", 404),
                                          ("ServerSideEncryptionConfigurationNotFoundError", 404),
                                          ("SomethingUnlisted", 404)])
def test_a_read_of_something_missing_gives_the_default(code: str, status: int) -> None:
    assert unless_missing(_fails(code, status), {}) == {}
    assert unless_missing(_fails(code, status)) is None


def test_a_read_refused_for_another_reason_raises() -> None:
    with pytest.raises(ClientError, match="AccessDenied"):
        unless_missing(_fails("AccessDenied", 403), {})

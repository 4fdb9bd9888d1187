"""`bootstrap plan | apply | destroy` on the embedded two-account AWS."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from featureshare.bootstrap.plan import Action, Bootstrap
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

"""Policies of KMS keys bootstrap does not own: checked against the rendered documents with the policy evaluator,
reported as actions needed, or merged by Sid with --merge-key-policies (and unmerged by destroy).

The embedded AWS enforces key policies across accounts with the same evaluator, so a consumer training key whose
policy lacks the central role's grant really breaks a ``central-role`` training-set build.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from featureshare.bootstrap.key_policies import (
    MERGED_TAG,
    ForeignKey,
    KeyPolicyCheck,
    KeyPolicyState,
    check_key,
    foreign_keys,
    missing_statements,
)
from featureshare.bootstrap.plan import Action, Bootstrap
from featureshare.bootstrap.statements import merge_statements, remove_statements
from featureshare.bootstrap.templates import policy_documents
from featureshare.cli import ACTION_NEEDED_EXIT_CODE, cli
from featureshare.config import Topology
from featureshare.errors import QueryFailedError, ValidationError
from featureshare.local import EmbeddedAWS
from featureshare.session import AccountSession, assume_role
from featureshare.training import TrainingSet

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "featureshare.example.toml"
CENTRAL, SEARCH = "111111111111", "222222222222"
CENTRAL_ROLE = f"arn:aws:iam::{CENTRAL}:role/FeatureShareAccess"
TRAINING_ALIAS = "alias/search-training"
CENTRAL_GRANT = "CentralAccessRoleEncryptsResultsViaS3"
START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def example(central: dict[str, Any] | None = None, search: dict[str, Any] | None = None) -> Topology:
    data = tomllib.loads(EXAMPLE.read_text())
    data["central"].update(central or {})
    data["consumers"][0].update(search or {})
    return Topology.from_dict(data)


def statement(sid: str, **fields: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{SEARCH}:root"}, "Action": "kms:*",
            "Resource": "*", **fields}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Id": "team-policy", "Statement": list(statements)}


def the_key(topology: Topology, key_arn: str) -> ForeignKey:
    documents = policy_documents(topology, resolved_keys={"central": "arn:aws:kms:us-east-1:111111111111:key/c"})
    (key,) = [k for k in foreign_keys(documents.values(), owned={"offline-key-policy"},
                                      accounts={CENTRAL: "central", SEARCH: "search"}) if k.key_arn == key_arn]
    return key


# ---------------------------------------------------------------------------------------------------------
# Merging (pure)


def test_merging_replaces_the_statement_of_the_same_sid_appends_the_others_and_keeps_the_rest_in_place() -> None:
    current = policy(statement("Admins"), statement(CENTRAL_GRANT, Action="kms:Decrypt"), statement("Audit"))
    wanted = [statement(CENTRAL_GRANT, Action=["kms:GenerateDataKey", "kms:Decrypt"]), statement("New")]
    merged = merge_statements(current, wanted)
    assert [s["Sid"] for s in merged["Statement"]] == ["Admins", CENTRAL_GRANT, "Audit", "New"]
    assert merged["Statement"][1] == wanted[0]
    assert merged["Statement"][0] == current["Statement"][0] and merged["Statement"][2] == current["Statement"][2]
    assert merged["Id"] == "team-policy"


def test_merging_is_idempotent_and_leaves_its_arguments_alone() -> None:
    current = policy(statement("Admins"))
    before = copy.deepcopy(current)
    once = merge_statements(current, [statement(CENTRAL_GRANT)])
    assert merge_statements(once, [statement(CENTRAL_GRANT)]) == once
    assert current == before


def test_removing_by_sid_keeps_every_other_statement() -> None:
    current = policy(statement("Admins"), statement(CENTRAL_GRANT), statement("Audit"))
    assert remove_statements(current, {CENTRAL_GRANT, "Unknown"}) == policy(statement("Admins"), statement("Audit"))


# ---------------------------------------------------------------------------------------------------------
# Deciding with the evaluator (pure)

KEY = f"arn:aws:kms:us-east-1:{SEARCH}:key/aaaaaaaa-2222-3333-4444-555555555555"
DEFAULT_POLICY = policy(statement("EnableIamUserPermissions"))


def test_a_default_key_policy_lacks_only_the_central_roles_grant_and_says_who_may_not_do_what() -> None:
    key = the_key(example(search={"kms_key": KEY}), KEY)
    (missing,) = missing_statements(DEFAULT_POLICY, key.statements, KEY, key.identities)
    grant, why = missing
    assert grant["Sid"] == CENTRAL_GRANT
    assert why[0] == (f"{CENTRAL_ROLE} may not kms:GenerateDataKey (kms:ViaService=s3.us-east-1.amazonaws.com): "
                      f"cross-account: the resource policy of account {SEARCH} does not allow it")


def test_a_key_policy_granting_the_same_in_other_words_needs_nothing() -> None:
    key = the_key(example(search={"kms_key": KEY}), KEY)
    delegation = statement("CentralAccountUsesKeyThroughS3", Principal={"AWS": CENTRAL},
                           Action=["kms:Decrypt", "kms:GenerateDataKey*"],
                           Condition={"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}})
    assert missing_statements(policy(statement("Admins"), delegation), key.statements, KEY, key.identities) == []


def test_delegation_to_the_account_does_not_grant_what_the_roles_identity_policy_lacks() -> None:
    central_key = f"arn:aws:kms:us-east-1:{CENTRAL}:key/bbbbbbbb-2222-3333-4444-555555555555"
    documents = policy_documents(example(central={"kms_key": central_key}))
    (key,) = foreign_keys(documents.values(), owned=(), accounts={CENTRAL: "central"})
    delegating = policy(statement("EnableIamUserPermissions", Principal={"AWS": f"arn:aws:iam::{CENTRAL}:root"}))
    missing = dict((s["Sid"], why) for s, why in missing_statements(delegating, key.statements, central_key,
                                                                     key.identities))
    # The offline store role's own policy grants GenerateDataKey and Decrypt, not DescribeKey.
    assert missing["OfflineStoreRoleEncrypts"] == (
        f"arn:aws:iam::{CENTRAL}:role/FeatureShareOfflineStore may not kms:DescribeKey: the resource policy "
        "delegates to the account, but no identity policy allows it",)
    assert set(missing) == {"OfflineStoreRoleEncrypts", "ConsumersDecryptViaS3Only"}


def with_ads(search: dict[str, Any], ads: dict[str, Any]) -> Topology:
    """The example topology plus a second consumer, ``ads``, in the search account (or another)."""
    data = tomllib.loads(EXAMPLE.read_text())
    data["consumers"][0].update(search)
    data["consumers"].append({"name": "ads", "account_id": SEARCH, "team": "search",
                              "execution_role_arns": [f"arn:aws:iam::{SEARCH}:role/AdsExec"],
                              "training_bucket": "ads-training", **ads})
    return Topology.from_dict(data)


def test_consumers_sharing_a_replica_key_each_need_the_grant_for_their_own_replica_bucket() -> None:
    shared = {"replicate_offline_store": True, "replica_kms_key": KEY}
    key = the_key(with_ads(shared, {**shared, "replica_bucket": "ads-replica"}), KEY)
    search_grant = next(s for s in key.statements if "featureshare-offline-replica-" in json.dumps(s))
    missing = missing_statements(policy(statement("Admins"), search_grant), key.statements, KEY, key.identities)
    (grant, why), = missing
    assert grant["Sid"] == "CentralReplicationRoleEncryptsReplicasViaS3Ads"
    assert "kms:EncryptionContext:aws:s3:arn=arn:aws:s3:::ads-replica" in why[0]
    assert missing_statements(merge_statements(policy(statement("Admins")), key.statements), key.statements, KEY,
                              key.identities) == []


def test_a_key_shared_by_consumers_of_different_accounts_is_refused_rather_than_checked_for_one_of_them() -> None:
    other = "333333333333"
    topology = with_ads({"kms_key": KEY}, {"account_id": other, "kms_key": KEY,
                                           "execution_role_arns": [f"arn:aws:iam::{other}:role/AdsExec"]})
    documents = policy_documents(topology, resolved_keys={"central": "arn:aws:kms:us-east-1:111111111111:key/c"})
    conflict = (r"training-key-policy\[search\] and training-key-policy\[ads\] both constrain the policy of .* Sid "
                r"'ConsumerAccountAdministersKey'")
    with pytest.raises(ValidationError, match=conflict) as error:
        foreign_keys(documents.values(), owned={"offline-key-policy"}, accounts={SEARCH: "search"})
    assert (error.value.field, error.value.value) == ("Sid", "ConsumerAccountAdministersKey")


def test_an_explicit_deny_in_the_key_policy_is_not_something_merging_fixes() -> None:
    key = the_key(example(search={"kms_key": KEY}), KEY)
    deny = {"Sid": "NoOtherAccounts", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:PrincipalAccount": SEARCH}}}
    current = policy(statement("Admins"), deny)
    missing = missing_statements(current, key.statements, KEY, key.identities)
    check = KeyPolicyCheck(key, KeyPolicyState.MISSING, current, statements=tuple(s for s, _ in missing))
    assert not check.mergeable
    assert "explicitly denied by key-policy:NoOtherAccounts" in missing_statements(
        merge_statements(current, check.statements), key.statements, KEY, key.identities)[0][1][0]


def test_a_key_in_an_account_without_credentials_cannot_be_verified_and_lists_every_statement() -> None:
    key = the_key(example(search={"kms_key": KEY}), KEY)
    check = check_key(ForeignKey(KEY, None, key.documents, key.identities), None)
    assert check.state is KeyPolicyState.UNVERIFIED
    assert check.problems == (f"bootstrap has no credentials for account {SEARCH}, which owns the key",)
    assert [s["Sid"] for s in check.statements] == ["ConsumerAccountAdministersKey", CENTRAL_GRANT]


# ---------------------------------------------------------------------------------------------------------
# plan / apply / destroy on the embedded AWS


@pytest.fixture
def aws() -> Iterator[EmbeddedAWS]:
    with EmbeddedAWS() as embedded:
        yield embedded


def admins(aws: EmbeddedAWS) -> dict[str, AccountSession]:
    return {"central": AccountSession(aws.admin_session("central")),
            "search": AccountSession(aws.admin_session("consumer"))}


def training_key(aws: EmbeddedAWS) -> dict[str, Any]:
    """The consumer's own key, made by its administrator with KMS's default key policy."""
    kms = aws.admin_session("consumer").client("kms")
    key = kms.create_key(Description="search training sets")["KeyMetadata"]
    kms.create_alias(AliasName=TRAINING_ALIAS, TargetKeyId=key["KeyId"])
    return key


def key_policy(aws: EmbeddedAWS, key: dict[str, Any]) -> dict[str, Any]:
    kms = aws.admin_session("consumer").client("kms")
    return json.loads(kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"])


def booted(aws: EmbeddedAWS, topology: Topology, *, merge: bool = False,
           sessions: dict[str, AccountSession] | None = None) -> Bootstrap:
    return Bootstrap(topology, sessions or admins(aws), create_execution_roles=True, merge_key_policies=merge)


def _group(session: AccountSession, name: str, feature: tuple[str, str], uri: str, role: str,
           **extra: Any) -> dict[str, Any]:
    sagemaker = session.client("sagemaker")
    sagemaker.create_feature_group(
        FeatureGroupName=name, RecordIdentifierFeatureName="customer_id", EventTimeFeatureName="event_time",
        FeatureDefinitions=[{"FeatureName": "customer_id", "FeatureType": "String"},
                            {"FeatureName": "event_time", "FeatureType": "String"},
                            {"FeatureName": feature[0], "FeatureType": feature[1]}],
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": uri}}, RoleArn=role, **extra)
    return sagemaker.describe_feature_group(FeatureGroupName=name)


def _put(session: AccountSession, group: str, customer: str, feature: str, value: Any) -> None:
    session.client("sagemaker-featurestore-runtime").put_record(FeatureGroupName=group, Record=[
        {"FeatureName": "customer_id", "ValueAsString": customer},
        {"FeatureName": "event_time", "ValueAsString": START.strftime("%Y-%m-%dT%H:%M:%SZ")},
        {"FeatureName": feature, "ValueAsString": str(value)}])


def central_role_build(aws: EmbeddedAWS, topology: Topology) -> Any:
    """A combined set (a central group and a local one) built with strategy="central-role" as the consumer's
    execution role and the central role it assumes: the central role reads the staged entity keys from, and
    writes the central part into, the consumer's training bucket."""
    consumer, hub = topology.consumer("search"), topology.central
    execution = assume_role(consumer.execution_role_arns[0], source=admins(aws)["search"], session_name="job",
                            region=aws.region)
    central = assume_role(hub.access_role_arn, source=execution, tags={"team": "search"}, session_name="job",
                          region=aws.region)
    spend = _group(central, "kp_spend", ("spend", "Fractional"), hub.offline_s3_uri, hub.offline_store_role_arn,
                   Tags=[{"Key": "team", "Value": "search"}])
    keywords = _group(admins(aws)["search"], "kp_keywords", ("keyword", "String"),
                      f"s3://{consumer.training_bucket}/local-store", consumer.execution_role_arns[0])
    for k in range(3):
        _put(central, "kp_spend", f"c{k}", "spend", k)
        _put(execution, "kp_keywords", f"c{k}", "keyword", f"kw{k}")
    aws.flush()
    labels = pd.DataFrame({"customer_id": ["c0", "c1", "c2"], "label_time": [START + dt.timedelta(hours=1)] * 3})
    training = (TrainingSet(labels, key="customer_id", event_time="label_time")
                .join(spend, features=["spend"]).join(keywords, features=["keyword"]))
    return lambda: training.build(
        session=execution, output_uri=f"{consumer.training_s3_uri}kp/", central_session=central,
        strategy="central-role", workgroup=consumer.athena_workgroup, catalog_name=consumer.central_catalog,
        scratch_database=consumer.scratch_database, timeout=60)


def test_without_merging_the_missing_grant_is_reported_the_policy_is_untouched_and_the_build_fails(aws) -> None:
    key = training_key(aws)
    original = key_policy(aws, key)
    topology = example(search={"kms_key": TRAINING_ALIAS})
    address = f"search:kms-key-policy:{key['Arn']}"

    plan = booted(aws, topology).plan()
    (needed,) = plan.actions_needed
    assert (needed.address, needed.state, needed.documents) == (address, KeyPolicyState.MISSING,
                                                                ("training-key-policy[search]",))
    assert [s["Sid"] for s in needed.statements] == [CENTRAL_GRANT]
    assert needed.statements[0]["Principal"] == {"AWS": CENTRAL_ROLE}
    assert address not in [c.address for c in plan.changes]

    applied = booted(aws, topology).apply()
    assert applied.actions_needed == plan.actions_needed
    assert key_policy(aws, key) == original
    encryption = aws.admin_session("consumer").client("s3").get_bucket_encryption(Bucket="featureshare-training-"
                                                                                         "222222222222")
    assert encryption["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"][
        "KMSMasterKeyID"] == key["Arn"]
    with pytest.raises(QueryFailedError, match=rf"FeatureShareAccess/job is not authorized to perform: "
                                               rf"kms:(Decrypt|GenerateDataKey) on resource: {key['Arn']}"):
        central_role_build(aws, topology)()


def test_merging_adds_only_the_missing_statement_the_build_works_and_destroy_removes_only_that(aws) -> None:
    key = training_key(aws)
    original = key_policy(aws, key)
    topology = example(search={"kms_key": TRAINING_ALIAS})
    address = f"search:kms-key-policy:{key['Arn']}"

    plan = booted(aws, topology, merge=True).plan()
    assert plan.actions_needed == ()
    (update,) = [c for c in plan.changes if c.address == address]
    assert update.action is Action.UPDATE
    assert f'+        "Sid": "{CENTRAL_GRANT}"' in update.diff
    assert not any(line.startswith("-") for line in update.diff)

    booted(aws, topology, merge=True).apply()
    for merge in (False, True):
        again = booted(aws, topology, merge=merge).plan()
        assert again.empty and again.actions_needed == ()
    merged = key_policy(aws, key)
    assert merged["Statement"][:-1] == original["Statement"]
    assert {k: v for k, v in merged.items() if k != "Statement"} == \
        {k: v for k, v in original.items() if k != "Statement"}
    assert merged["Statement"][-1]["Sid"] == CENTRAL_GRANT

    built = central_role_build(aws, topology)()
    assert built.to_dataframe()[["customer_id", "spend", "keyword"]].to_dict("records") == [
        {"customer_id": f"c{k}", "spend": float(k), "keyword": f"kw{k}"} for k in range(3)]

    kms = aws.admin_session("consumer").client("kms")
    theirs = statement("TeamAudit", Action="kms:DescribeKey")
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default", Policy=json.dumps(merge_statements(merged, [theirs])))
    destroyed = booted(aws, topology).destroy(force=True)
    assert destroyed.changes[0].address == address
    assert key_policy(aws, key)["Statement"] == [*original["Statement"], theirs]
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert MERGED_TAG not in {t["TagKey"] for t in kms.list_resource_tags(KeyId=key["KeyId"])["Tags"]}


def test_destroy_leaves_statements_a_person_added_even_with_bootstraps_sid(aws) -> None:
    key = training_key(aws)
    topology = example(search={"kms_key": TRAINING_ALIAS})
    (needed,) = booted(aws, topology).plan().actions_needed
    pasted = merge_statements(key_policy(aws, key), needed.statements)
    aws.admin_session("consumer").client("kms").put_key_policy(KeyId=key["KeyId"], PolicyName="default",
                                                               Policy=json.dumps(pasted))
    assert booted(aws, topology).apply().actions_needed == ()
    booted(aws, topology).destroy(force=True)
    assert key_policy(aws, key) == pasted


def test_a_central_key_given_as_an_arn_is_checked_the_same_way(aws) -> None:
    kms = aws.admin_session("central").client("kms")
    key = kms.create_key(Description="offline store")["KeyMetadata"]
    topology = example(central={"kms_key": key["Arn"]})
    (needed,) = booted(aws, topology).plan().actions_needed
    assert (needed.address, needed.documents) == (f"central:kms-key-policy:{key['Arn']}", ("offline-key-policy",))
    assert [s["Sid"] for s in needed.statements] == ["OfflineStoreRoleEncrypts", "ConsumersDecryptViaS3Only"]
    booted(aws, topology, merge=True).apply()
    assert booted(aws, topology).plan().actions_needed == ()


def test_a_key_that_is_both_training_and_replica_key_gets_one_entry_with_the_grants_of_both_documents(aws) -> None:
    key = training_key(aws)
    topology = example(search={"kms_key": TRAINING_ALIAS, "replicate_offline_store": True,
                               "replica_kms_key": key["Arn"]})
    (needed,) = booted(aws, topology).plan().actions_needed
    assert needed.documents == ("training-key-policy[search]", "replica-key-policy[search]")
    assert [s["Sid"] for s in needed.statements] == [CENTRAL_GRANT, "CentralReplicationRoleEncryptsReplicasViaS3Search"]
    booted(aws, topology, merge=True).apply()
    assert booted(aws, topology).plan().actions_needed == ()


def test_a_key_policy_bootstrap_may_not_read_is_reported_as_cannot_verify_without_failing_the_plan(aws) -> None:
    key = training_key(aws)
    iam = aws.admin_session("consumer").client("iam")
    iam.create_role(RoleName="Bootstrapper", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{SEARCH}:root"},
                                               "Action": "sts:AssumeRole"}]}))
    iam.put_role_policy(RoleName="Bootstrapper", PolicyName="all-but-key-policies", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"},
                                               {"Effect": "Deny", "Action": "kms:GetKeyPolicy", "Resource": "*"}]}))
    bootstrapper = assume_role(f"arn:aws:iam::{SEARCH}:role/Bootstrapper", source=admins(aws)["search"],
                               region=aws.region)
    sessions = {**admins(aws), "search": bootstrapper}
    topology = example(search={"kms_key": TRAINING_ALIAS})
    for merge in (False, True):
        plan = booted(aws, topology, merge=merge, sessions=sessions).plan()
        (needed,) = plan.actions_needed
        assert needed.state is KeyPolicyState.UNVERIFIED
        assert "kms:GetKeyPolicy was refused (AccessDeniedException" in needed.problems[0]
        assert [s["Sid"] for s in needed.statements] == ["ConsumerAccountAdministersKey", CENTRAL_GRANT]
        assert f"search:kms-key-policy:{key['Arn']}" not in [c.address for c in plan.changes]


def test_merging_does_not_touch_a_key_policy_whose_deny_would_still_refuse_the_grant(aws) -> None:
    key = training_key(aws)
    deny = {"Sid": "NoOtherAccounts", "Effect": "Deny", "Principal": "*", "Action": ["kms:Decrypt",
            "kms:GenerateDataKey"], "Resource": "*", "Condition": {"StringNotEquals": {"aws:PrincipalAccount": SEARCH}}}
    guarded = merge_statements(key_policy(aws, key), [deny])
    aws.admin_session("consumer").client("kms").put_key_policy(KeyId=key["KeyId"], PolicyName="default",
                                                               Policy=json.dumps(guarded))
    topology = example(search={"kms_key": TRAINING_ALIAS})
    applied = booted(aws, topology, merge=True).apply()
    (needed,) = applied.actions_needed
    assert needed.state is KeyPolicyState.MISSING
    assert key_policy(aws, key) == guarded


# ---------------------------------------------------------------------------------------------------------
# The CLI


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[EmbeddedAWS, Path]]:
    """A server-mode embedded AWS (profiles central-admin and consumer-admin) and a topology whose consumer
    encrypts its training bucket with a key of its own."""
    with EmbeddedAWS(server=True) as embedded:
        for name, value in embedded.env().items():
            monkeypatch.setenv(name, value)
        training_key(embedded)
        config = tmp_path / "featureshare.toml"
        config.write_text(EXAMPLE.read_text().replace('profile = "consumer-admin"',
                                                      f'profile = "consumer-admin"\nkms_key = "{TRAINING_ALIAS}"'))
        yield embedded, config


def bootstrap(config: Path, *args: str, as_json: bool = False) -> Result:
    options = ["--config", str(config), *(["--json"] if as_json else [])]
    return CliRunner().invoke(cli, [*options, "bootstrap", *args, "--create-execution-roles"])


def test_plan_prints_the_action_needed_on_stderr_and_exits_0_or_13_with_strict(served) -> None:
    _, config = served
    plain = bootstrap(config, "plan")
    assert plain.exit_code == 0, plain.output
    assert "plan: " in plain.stdout and "ACTION NEEDED" not in plain.stdout
    assert "ACTION NEEDED: 1 key policy that bootstrap does not write" in plain.stderr
    assert f'"Sid": "{CENTRAL_GRANT}"' in plain.stderr
    assert "training-key-policy[search]): grants missing" in plain.stderr

    assert bootstrap(config, "plan", "--strict").exit_code == ACTION_NEEDED_EXIT_CODE
    as_json = bootstrap(config, "plan", as_json=True)
    assert as_json.exit_code == 0
    (needed,) = json.loads(as_json.stdout)["actions_needed"]
    assert needed["state"] == "missing" and needed["statements"][0]["Sid"] == CENTRAL_GRANT


def test_apply_ends_with_the_action_needed_and_merging_clears_it(served) -> None:
    _, config = served
    applied = bootstrap(config, "apply")
    assert applied.exit_code == 0, applied.output
    assert "applied: " in applied.stdout and "ACTION NEEDED" in applied.stderr
    assert bootstrap(config, "apply", "--strict").exit_code == ACTION_NEEDED_EXIT_CODE

    merged = bootstrap(config, "apply", "--merge-key-policies", "--strict")
    assert merged.exit_code == 0, merged.output
    assert "~ update  search:kms-key-policy:arn:aws:kms:us-east-1:222222222222:key/" in merged.stdout
    assert "ACTION NEEDED" not in merged.stderr
    again = bootstrap(config, "plan", "--strict")
    assert again.exit_code == 0
    assert "no changes: the accounts match the topology" in again.stdout

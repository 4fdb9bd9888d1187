"""S3 replication of the central offline store into consumer replica buckets: configuration, rendered
documents, proofs over them, and plan / apply / destroy on the embedded AWS (which records the replication
configuration but never copies objects)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from featureshare.bootstrap.plan import Action, Bootstrap
from featureshare.bootstrap.replication import replication_configuration
from featureshare.bootstrap.templates import PolicyDocument, policy_documents
from featureshare.config import Topology
from featureshare.errors import ConfigError
from featureshare.iampolicy import Outcome, Request, evaluate, evaluate_assume_role
from featureshare.local import EmbeddedAWS
from featureshare.session import AccountSession

A, D = Outcome.ALLOW, Outcome.IMPLICIT_DENY

REGION = "eu-west-1"
CENTRAL, SEARCH, REVIEWS, OUTSIDER = "111111111111", "222222222222", "333333333333", "444444444444"
CENTRAL_KEY = f"arn:aws:kms:{REGION}:{CENTRAL}:key/11111111-2222-3333-4444-555555555555"
SEARCH_REPLICA_KEY = f"arn:aws:kms:{REGION}:{SEARCH}:key/bbbbbbbb-2222-3333-4444-555555555555"
REVIEWS_REPLICA_KEY = f"arn:aws:kms:{REGION}:{REVIEWS}:key/cccccccc-2222-3333-4444-555555555555"
SEARCH_REPLICA = f"featureshare-offline-replica-{SEARCH}"
REVIEWS_PREFIX = f"feature-store/{CENTRAL}/sagemaker"
REPLICATION_ROLE = f"arn:aws:iam::{CENTRAL}:role/featureshare-offline-replication"
REPLICATION = f"arn:aws:sts::{CENTRAL}:assumed-role/featureshare-offline-replication/s3-replication"
ACCESS_SESSION = f"arn:aws:sts::{CENTRAL}:assumed-role/FeatureShareAccess/search-job"
SEARCH_EXEC = f"arn:aws:iam::{SEARCH}:role/SearchExec"
OUTSIDER_ROLE = f"arn:aws:iam::{OUTSIDER}:role/Replicator"
EXAMPLE = Path(__file__).resolve().parent.parent / "featureshare.example.toml"
OFFLINE_BUCKET = "featureshare-offline-111111111111"
EMBEDDED_REPLICA = "featureshare-offline-replica-222222222222"


def topology_data(search: dict[str, Any] | None = None, reviews: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "region": REGION,
        "central": {"account_id": CENTRAL, "access_role_arn": f"arn:aws:iam::{CENTRAL}:role/FeatureShareAccess",
                    "offline_bucket": "central-offline", "offline_prefix": "feature-store", "kms_key": CENTRAL_KEY},
        "consumers": [
            {"name": "search", "account_id": SEARCH, "team": "search", "training_bucket": "search-training",
             "execution_role_arns": [SEARCH_EXEC], **(search or {})},
            {"name": "reviews", "account_id": REVIEWS, "team": "reviews", "training_bucket": "reviews-training",
             "execution_role_arns": [f"arn:aws:iam::{REVIEWS}:role/ReviewsExec"], **(reviews or {})},
        ],
    }


TOPOLOGY = Topology.from_dict(topology_data(
    {"replicate_offline_store": True},
    {"replicate_offline_store": True, "replica_bucket": "reviews-replica", "replica_prefix": f"{REVIEWS_PREFIX}/",
     "replica_kms_key": REVIEWS_REPLICA_KEY}))
DOCS: dict[str, PolicyDocument] = policy_documents(TOPOLOGY, resolved_keys={"replica:search": SEARCH_REPLICA_KEY})


def doc(name: str) -> tuple[str, dict[str, Any]]:
    return name, DOCS[name].document


# ---------------------------------------------------------------------------------------------------------
# Configuration


def test_opting_in_defaults_the_replica_bucket_prefix_and_key() -> None:
    search, reviews = TOPOLOGY.consumers
    assert (search.replica_bucket, search.replica_prefix, search.replica_kms_key) == (
        SEARCH_REPLICA, "feature-store", "alias/featureshare-offline-replica")
    assert (reviews.replica_bucket, reviews.replica_prefix) == ("reviews-replica", REVIEWS_PREFIX)


def test_consumers_that_do_not_opt_in_replicate_nothing() -> None:
    consumer = Topology.from_dict(topology_data()).consumers[0]
    assert not consumer.replicate_offline_store and consumer.replica_bucket == ""


@pytest.mark.parametrize("search, problem", [
    ({"replicate_offline_store": "yes"}, r"consumers\[0\]\.replicate_offline_store: must be true or false, got 'yes'"),
    ({"replica_bucket": "my-replica"},
     r"consumers\[0\]\.replica_bucket: 'my-replica' is set, but replicate_offline_store is not true"),
    ({"replicate_offline_store": True, "replica_prefix": "elsewhere"},
     r"consumers\[0\]\.replica_prefix: 'elsewhere' is outside central\.offline_prefix 'feature-store'"),
    ({"replicate_offline_store": True, "replica_prefix": "feature-storeX"}, r"'feature-storeX' is outside"),
    ({"replicate_offline_store": True, "replica_bucket": "search-training"},
     r"consumers\[0\]\.replica_bucket: 'search-training' is already the training_bucket of consumer 'search'"),
    ({"replicate_offline_store": True, "replica_bucket": "reviews-training"},
     r"'reviews-training' is already the training_bucket of consumer 'reviews'"),
    ({"replicate_offline_store": True, "replica_bucket": "central-offline"}, r"'central-offline' is central\."),
    ({"replicate_offline_store": True, "replica_bucket": "Bad_Bucket"},
     r"consumers\[0\]\.replica_bucket: 'Bad_Bucket' is not a valid S3 bucket name"),
    ({"replicate_offline_store": True, "replica_kms_key": "my-key"}, r"consumers\[0\]\.replica_kms_key: 'my-key'"),
])
def test_replica_settings_are_checked_up_front_naming_field_and_value(search: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Topology.from_dict(topology_data(search))


def test_the_replica_settings_documented_in_the_example_configuration_are_valid() -> None:
    text = EXAMPLE.read_text()
    uncommented = "\n".join(line.removeprefix("# ") if line.startswith(("# replica_", "# replicate_")) else line
                             for line in text.splitlines())
    assert uncommented != text
    consumer = Topology.from_dict(tomllib.loads(uncommented)).consumers[0]
    assert consumer.replicate_offline_store
    assert (consumer.replica_bucket, consumer.replica_prefix) == (EMBEDDED_REPLICA, "feature-store")


def test_two_consumers_cannot_share_a_replica_bucket() -> None:
    opt_in = {"replicate_offline_store": True, "replica_bucket": "shared-replica"}
    with pytest.raises(ConfigError, match=r"consumers\[1\]\.replica_bucket: 'shared-replica' is already the "
                                          r"replica_bucket of consumer 'search'"):
        Topology.from_dict(topology_data(opt_in, opt_in))


SAME_ACCOUNT = {"account_id": SEARCH, "execution_role_arns": [f"arn:aws:iam::{SEARCH}:role/ReviewsExec"],
                "replicate_offline_store": True, "replica_bucket": "reviews-replica"}


@pytest.mark.parametrize("search, reviews, problem", [
    ({"replicate_offline_store": True}, SAME_ACCOUNT,
     r"consumers\[1\]\.replica_kms_key: 'alias/featureshare-offline-replica' is already the replica_kms_key of "
     rf"consumer 'search' in account {SEARCH}"),
    ({"replicate_offline_store": True, "replica_kms_key": "alias/replicas"},
     {**SAME_ACCOUNT, "replica_kms_key": f"arn:aws:kms:{REGION}:{SEARCH}:alias/replicas"},
     r"consumers\[1\]\.replica_kms_key: 'arn:aws:kms:.*:alias/replicas' is already the replica_kms_key of consumer "
     r"'search'"),
    ({"kms_key": "alias/search-training", "replicate_offline_store": True, "replica_kms_key": "alias/search-training"},
     None, r"consumers\[0\]\.replica_kms_key: 'alias/search-training' is already the kms_key of consumer 'search'"),
    ({"kms_key": "alias/team"}, {**SAME_ACCOUNT, "replica_kms_key": "alias/team"},
     r"consumers\[1\]\.replica_kms_key: 'alias/team' is already the kms_key of consumer 'search'"),
])
def test_a_replica_key_bootstrap_creates_is_no_other_key_of_the_account(search: dict[str, Any],
                                                                         reviews: dict[str, Any] | None,
                                                                         problem: str) -> None:
    # Bootstrap writes the whole policy of the key it creates for an alias, and deletes that key on destroy.
    with pytest.raises(ConfigError, match=problem):
        Topology.from_dict(topology_data(search, reviews))


def test_replica_key_aliases_may_repeat_across_accounts_and_key_arns_may_be_shared() -> None:
    opt_in = {"replicate_offline_store": True}
    assert Topology.from_dict(topology_data(opt_in, {**opt_in, "replica_bucket": "reviews-replica"}))
    shared = {"replicate_offline_store": True, "replica_kms_key": SEARCH_REPLICA_KEY}
    assert Topology.from_dict(topology_data(shared, {**SAME_ACCOUNT, **shared}))


# ---------------------------------------------------------------------------------------------------------
# Rendering


def test_the_offline_bucket_gets_one_v2_rule_per_replicating_consumer() -> None:
    configuration = replication_configuration(TOPOLOGY, {"search": SEARCH_REPLICA_KEY,
                                                         "reviews": REVIEWS_REPLICA_KEY})
    assert configuration["Role"] == REPLICATION_ROLE
    search, reviews = configuration["Rules"]
    assert search == {
        "ID": "featureshare-search", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": "feature-store/"},
        "DeleteMarkerReplication": {"Status": "Enabled"},
        "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
        "Destination": {"Bucket": f"arn:aws:s3:::{SEARCH_REPLICA}", "Account": SEARCH,
                        "AccessControlTranslation": {"Owner": "Destination"},
                        "EncryptionConfiguration": {"ReplicaKmsKeyID": SEARCH_REPLICA_KEY}},
    }
    assert (reviews["ID"], reviews["Priority"], reviews["Filter"]) == (
        "featureshare-reviews", 2, {"Prefix": f"{REVIEWS_PREFIX}/"})
    assert reviews["Destination"]["EncryptionConfiguration"] == {"ReplicaKmsKeyID": REVIEWS_REPLICA_KEY}


def test_bootstrap_s_rules_follow_the_rules_of_others_and_take_the_priorities_they_leave_free() -> None:
    theirs = [{"ID": "to-archive", "Priority": 2, "Status": "Enabled", "Filter": {"Prefix": "exports/"},
               "Destination": {"Bucket": "arn:aws:s3:::archive"}}, {"ID": "to-audit", "Priority": 1}]
    configuration = replication_configuration(TOPOLOGY, {"search": SEARCH_REPLICA_KEY,
                                                         "reviews": REVIEWS_REPLICA_KEY}, kept_rules=theirs)
    assert configuration["Rules"][:2] == theirs
    assert [(rule["ID"], rule["Priority"]) for rule in configuration["Rules"][2:]] == [
        ("featureshare-search", 3), ("featureshare-reviews", 4)]


def test_replication_documents_exist_only_for_consumers_that_opt_in() -> None:
    assert not [name for name in policy_documents(Topology.from_dict(topology_data())) if "replica" in name]
    only_reviews = policy_documents(Topology.from_dict(topology_data(reviews={
        "replicate_offline_store": True, "replica_kms_key": REVIEWS_REPLICA_KEY})))
    assert sorted(name for name in only_reviews if "replica" in name) == [
        "offline-replication-role-permissions", "offline-replication-role-trust",
        "replica-bucket-policy[reviews]", "replica-key-policy[reviews]"]
    assert DOCS["replica-bucket-policy[search]"].account == SEARCH
    assert DOCS["replica-key-policy[reviews]"].attached_to == (REVIEWS_REPLICA_KEY,)
    assert DOCS["offline-replication-role-permissions"].attached_to == (REPLICATION_ROLE,)


def test_a_replica_key_alias_needs_its_arn_before_policies_can_name_it() -> None:
    with pytest.raises(ConfigError, match=r"consumers\.search\.replica_kms_key is alias/featureshare-offline-"
                                          r"replica.*resolved_keys=\{'replica:search'"):
        policy_documents(TOPOLOGY)


# ---------------------------------------------------------------------------------------------------------
# Proofs: the replication role replicates into the replica buckets and nowhere else; nobody else does


def replica_object(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


SEARCH_OBJECT = replica_object(SEARCH_REPLICA, f"feature-store/{CENTRAL}/sagemaker/{REGION}/offline-store/"
                                               "clicks-1700000000/data/year=2026/month=01/day=02/hour=03/x.parquet")
REVIEWS_OBJECT = replica_object("reviews-replica", f"{REVIEWS_PREFIX}/{REGION}/offline-store/r-1/data/x.parquet")
BUCKETS = {SEARCH_REPLICA: (SEARCH, "replica-bucket-policy[search]"),
           "reviews-replica": (REVIEWS, "replica-bucket-policy[reviews]"),
           "search-training": (SEARCH, "consumer-training-bucket-policy[search]"),
           "someone-elses-bucket": (OUTSIDER, None)}
IDENTITIES = {REPLICATION: ["offline-replication-role-permissions"],
              ACCESS_SESSION: ["central-access-role-permissions"],
              SEARCH_EXEC: ["consumer-execution-role-policy[search]"],
              OUTSIDER_ROLE: []}


@pytest.mark.parametrize("principal, action, resource, expected", [
    (REPLICATION, "s3:ReplicateObject", SEARCH_OBJECT, A),
    (REPLICATION, "s3:ReplicateDelete", SEARCH_OBJECT, A),
    (REPLICATION, "s3:ReplicateTags", SEARCH_OBJECT, A),
    (REPLICATION, "s3:ObjectOwnerOverrideToBucketOwner", SEARCH_OBJECT, A),
    (REPLICATION, "s3:ReplicateObject", REVIEWS_OBJECT, A),
    # The replica bucket policy names the role for the bucket-level actions of AWS's documented destination
    # policy, but the role's own policy grants none, so the central account cannot re-version a consumer bucket.
    (REPLICATION, "s3:PutBucketVersioning", f"arn:aws:s3:::{SEARCH_REPLICA}", D),
    # only the replication actions, only under the replicated prefix, only in the replica buckets
    (REPLICATION, "s3:PutObject", SEARCH_OBJECT, D),
    (REPLICATION, "s3:GetObject", SEARCH_OBJECT, D),
    (REPLICATION, "s3:DeleteObject", SEARCH_OBJECT, D),
    (REPLICATION, "s3:PutBucketPolicy", f"arn:aws:s3:::{SEARCH_REPLICA}", D),
    (REPLICATION, "s3:ReplicateObject", replica_object(SEARCH_REPLICA, "models/m.tar.gz"), D),
    (REPLICATION, "s3:ReplicateObject", replica_object(SEARCH_REPLICA, "feature-storeX/a"), D),
    (REPLICATION, "s3:ReplicateObject", replica_object("reviews-replica", "feature-store/other/x.parquet"), D),
    (REPLICATION, "s3:ReplicateObject", replica_object("search-training", "training-sets/x.parquet"), D),
    (REPLICATION, "s3:ReplicateObject", replica_object("someone-elses-bucket", "feature-store/x.parquet"), D),
    # other principals
    (ACCESS_SESSION, "s3:ReplicateObject", SEARCH_OBJECT, D),
    (SEARCH_EXEC, "s3:ReplicateObject", SEARCH_OBJECT, D),
    (SEARCH_EXEC, "s3:ObjectOwnerOverrideToBucketOwner", SEARCH_OBJECT, D),
    (OUTSIDER_ROLE, "s3:ReplicateObject", SEARCH_OBJECT, D),
    (OUTSIDER_ROLE, "s3:PutBucketVersioning", f"arn:aws:s3:::{SEARCH_REPLICA}", D),
])
def test_the_replication_role_replicates_into_replica_prefixes_only_and_nobody_else_does(
        principal: str, action: str, resource: str, expected: Outcome) -> None:
    account, policy = BUCKETS[resource.split(":::")[1].split("/")[0]]
    request = Request(principal, action, resource, {"aws:SecureTransport": True})
    decision = evaluate(request, [doc(name) for name in IDENTITIES[principal]],
                        doc(policy) if policy else None, resource_account=account)
    assert decision.outcome is expected, decision.explain()


OFFLINE_OBJECT = f"arn:aws:s3:::central-offline/feature-store/{CENTRAL}/sagemaker/{REGION}/offline-store/x.parquet"


@pytest.mark.parametrize("action, resource, expected", [
    ("s3:GetReplicationConfiguration", "arn:aws:s3:::central-offline", A),
    ("s3:ListBucket", "arn:aws:s3:::central-offline", A),
    ("s3:GetObjectVersionForReplication", OFFLINE_OBJECT, A),
    ("s3:GetObjectVersionAcl", OFFLINE_OBJECT, A),
    ("s3:GetObjectVersionTagging", OFFLINE_OBJECT, A),
    ("s3:GetObjectVersionForReplication", "arn:aws:s3:::central-offline/secrets/keys.csv", D),
    ("s3:GetObject", OFFLINE_OBJECT, D),
    ("s3:PutObject", OFFLINE_OBJECT, D),
    ("s3:DeleteObjectVersion", OFFLINE_OBJECT, D),
    ("s3:PutReplicationConfiguration", "arn:aws:s3:::central-offline", D),
])
def test_the_replication_role_reads_only_object_versions_of_the_offline_prefix(
        action: str, resource: str, expected: Outcome) -> None:
    request = Request(REPLICATION, action, resource, {"aws:SecureTransport": True})
    decision = evaluate(request, [doc("offline-replication-role-permissions")], doc("offline-bucket-policy"),
                        resource_account=CENTRAL)
    assert decision.outcome is expected, decision.explain()


VIA_S3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}


def context_of(arn: str, **extra: Any) -> dict[str, Any]:
    return {**VIA_S3, "kms:EncryptionContext:aws:s3:arn": arn, **extra}


@pytest.mark.parametrize("principal, action, key, context, expected", [
    # the source key: decrypt, through S3, for the offline bucket (bucket key) or its objects
    (REPLICATION, "kms:Decrypt", CENTRAL_KEY, context_of("arn:aws:s3:::central-offline"), A),
    (REPLICATION, "kms:Decrypt", CENTRAL_KEY, context_of(OFFLINE_OBJECT), A),
    (REPLICATION, "kms:Decrypt", CENTRAL_KEY, context_of("arn:aws:s3:::search-training"), D),
    (REPLICATION, "kms:Decrypt", CENTRAL_KEY, {"kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::central-offline"},
     D),
    (REPLICATION, "kms:Encrypt", CENTRAL_KEY, context_of("arn:aws:s3:::central-offline"), D),
    # the replica keys: encrypt (and verify bucket keys), through S3, for that consumer's replica bucket only
    (REPLICATION, "kms:Encrypt", SEARCH_REPLICA_KEY, context_of(f"arn:aws:s3:::{SEARCH_REPLICA}"), A),
    (REPLICATION, "kms:GenerateDataKey", SEARCH_REPLICA_KEY, context_of(SEARCH_OBJECT), A),
    (REPLICATION, "kms:Decrypt", SEARCH_REPLICA_KEY, context_of(f"arn:aws:s3:::{SEARCH_REPLICA}"), A),
    (REPLICATION, "kms:Encrypt", REVIEWS_REPLICA_KEY, context_of(REVIEWS_OBJECT), A),
    (REPLICATION, "kms:Encrypt", REVIEWS_REPLICA_KEY, context_of(f"arn:aws:s3:::{SEARCH_REPLICA}"), D),
    (REPLICATION, "kms:Encrypt", SEARCH_REPLICA_KEY, context_of("arn:aws:s3:::search-training"), D),
    (REPLICATION, "kms:Encrypt", SEARCH_REPLICA_KEY,
     {"kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{SEARCH_REPLICA}"}, D),
    (REPLICATION, "kms:ReEncryptTo", SEARCH_REPLICA_KEY, context_of(f"arn:aws:s3:::{SEARCH_REPLICA}"), D),
    (REPLICATION, "kms:ScheduleKeyDeletion", SEARCH_REPLICA_KEY, {}, D),
    # other principals may not use a replica key for the replica bucket
    (ACCESS_SESSION, "kms:Encrypt", SEARCH_REPLICA_KEY, context_of(f"arn:aws:s3:::{SEARCH_REPLICA}"), D),
    (SEARCH_EXEC, "kms:GenerateDataKey", SEARCH_REPLICA_KEY, context_of(f"arn:aws:s3:::{SEARCH_REPLICA}"), D),
    (OUTSIDER_ROLE, "kms:Encrypt", SEARCH_REPLICA_KEY, context_of(f"arn:aws:s3:::{SEARCH_REPLICA}"), D),
])
def test_keys_are_used_through_s3_for_the_offline_and_replica_buckets_only(
        principal: str, action: str, key: str, context: dict[str, Any], expected: Outcome) -> None:
    key_policy = {CENTRAL_KEY: "offline-key-policy", SEARCH_REPLICA_KEY: "replica-key-policy[search]",
                  REVIEWS_REPLICA_KEY: "replica-key-policy[reviews]"}[key]
    decision = evaluate(Request(principal, action, key, context), [doc(n) for n in IDENTITIES[principal]],
                        doc(key_policy), require_resource_allow=True)
    assert decision.outcome is expected, decision.explain()


@pytest.mark.parametrize("principal, source_account, source_arn, expected", [
    ("s3.amazonaws.com", CENTRAL, "arn:aws:s3:::central-offline", A),
    ("s3.amazonaws.com", OUTSIDER, "arn:aws:s3:::central-offline", D),
    ("s3.amazonaws.com", CENTRAL, "arn:aws:s3:::search-training", D),
    ("s3.amazonaws.com", OUTSIDER, "arn:aws:s3:::outsiders-bucket", D),
    ("s3.amazonaws.com", None, None, D),
    ("sagemaker.amazonaws.com", CENTRAL, "arn:aws:s3:::central-offline", D),
    (SEARCH_EXEC, CENTRAL, "arn:aws:s3:::central-offline", D),
])
def test_only_s3_replicating_the_central_offline_bucket_may_assume_the_replication_role(
        principal: str, source_account: str | None, source_arn: str | None, expected: Outcome) -> None:
    context = {} if source_account is None else {"aws:SourceAccount": source_account, "aws:SourceArn": source_arn}
    decision = evaluate_assume_role(principal, REPLICATION_ROLE, DOCS["offline-replication-role-trust"].document,
                                    context=context)
    assert decision.outcome is expected, decision.explain()


# ---------------------------------------------------------------------------------------------------------
# plan / apply / destroy on the embedded AWS

def example(**search: Any) -> Topology:
    data = tomllib.loads(EXAMPLE.read_text())
    data["consumers"][0].update(search)
    return Topology.from_dict(data)


@pytest.fixture
def aws() -> EmbeddedAWS:
    with EmbeddedAWS() as embedded:
        yield embedded


def booted(aws: EmbeddedAWS, topology: Topology) -> Bootstrap:
    sessions = {"central": AccountSession(aws.admin_session("central")),
                "search": AccountSession(aws.admin_session("consumer"))}
    return Bootstrap(topology, sessions, create_execution_roles=True)


def test_plan_shows_the_replication_resources_only_when_a_consumer_opts_in(aws) -> None:
    without = [c.address for c in booted(aws, example()).plan().changes]
    with_replication = booted(aws, example(replicate_offline_store=True)).plan()
    assert {c.action for c in with_replication.changes} == {Action.CREATE}
    added = [c.address for c in with_replication.changes if c.address not in without]
    assert added == [
        "search:kms-key:alias/featureshare-offline-replica",
        "central:iam-role:featureshare-offline-replication",
        "central:iam-role-policy:featureshare-offline-replication/featureshare-offline-replication",
        f"search:s3-bucket:{EMBEDDED_REPLICA}",
        f"search:s3-bucket-policy:{EMBEDDED_REPLICA}",
        "search:kms-key-policy:alias/featureshare-offline-replica",
        f"central:s3-bucket-replication:{OFFLINE_BUCKET}",
    ]
    assert [c.address for c in with_replication.changes if c.address in without] == without
    rule = next(c for c in with_replication.changes if c.address.startswith("central:s3-bucket-replication"))
    assert any('"Prefix": "feature-store/"' in line for line in rule.diff)


def test_apply_configures_replication_and_a_second_plan_is_empty(aws) -> None:
    topology = example(replicate_offline_store=True)
    booted(aws, topology).apply()
    assert booted(aws, topology).plan().empty

    central, consumer = aws.admin_session("central").client("s3"), aws.admin_session("consumer")
    replica_key = consumer.client("kms").describe_key(KeyId="alias/featureshare-offline-replica")["KeyMetadata"]
    configuration = central.get_bucket_replication(Bucket=OFFLINE_BUCKET)["ReplicationConfiguration"]
    assert configuration == {"Role": "arn:aws:iam::111111111111:role/featureshare-offline-replication", "Rules": [{
        "ID": "featureshare-search", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": "feature-store/"},
        "DeleteMarkerReplication": {"Status": "Enabled"},
        "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
        "Destination": {"Bucket": f"arn:aws:s3:::{EMBEDDED_REPLICA}", "Account": "222222222222",
                        "AccessControlTranslation": {"Owner": "Destination"},
                        "EncryptionConfiguration": {"ReplicaKmsKeyID": replica_key["Arn"]}}}]}

    s3 = consumer.client("s3")
    assert s3.get_bucket_versioning(Bucket=EMBEDDED_REPLICA)["Status"] == "Enabled"
    encryption = s3.get_bucket_encryption(Bucket=EMBEDDED_REPLICA)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert encryption["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms",
                                                                "KMSMasterKeyID": replica_key["Arn"]}
    assert s3.get_bucket_ownership_controls(Bucket=EMBEDDED_REPLICA)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    assert all(s3.get_public_access_block(Bucket=EMBEDDED_REPLICA)["PublicAccessBlockConfiguration"].values())
    policy = json.loads(s3.get_bucket_policy(Bucket=EMBEDDED_REPLICA)["Policy"])
    principals = {json.dumps(s.get("Principal")) for s in policy["Statement"] if s["Effect"] == "Allow"}
    assert principals == {json.dumps({"AWS": "arn:aws:iam::111111111111:role/featureshare-offline-replication"})}
    key_policy = json.loads(consumer.client("kms").get_key_policy(KeyId=replica_key["KeyId"],
                                                                  PolicyName="default")["Policy"])
    assert "arn:aws:iam::111111111111:role/featureshare-offline-replication" in json.dumps(key_policy)
    trust = aws.admin_session("central").client("iam").get_role(
        RoleName="featureshare-offline-replication")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Condition"]["ArnEquals"] == {"aws:SourceArn": f"arn:aws:s3:::{OFFLINE_BUCKET}"}


def test_a_changed_replication_configuration_is_planned_as_an_update_and_apply_restores_it(aws) -> None:
    topology = example(replicate_offline_store=True)
    booted(aws, topology).apply()
    s3 = aws.admin_session("central").client("s3")
    configuration = s3.get_bucket_replication(Bucket=OFFLINE_BUCKET)["ReplicationConfiguration"]
    configuration["Rules"][0]["Filter"] = {"Prefix": ""}
    s3.put_bucket_replication(Bucket=OFFLINE_BUCKET, ReplicationConfiguration=configuration)
    (change,) = booted(aws, topology).plan().pending
    assert (change.action, change.address) == (Action.UPDATE, f"central:s3-bucket-replication:{OFFLINE_BUCKET}")
    assert any(line.startswith("+") and '"Prefix": "feature-store/"' in line for line in change.diff)
    booted(aws, topology).apply()
    assert booted(aws, topology).plan().empty


def test_destroy_removes_the_replication_configuration_the_replica_bucket_and_key(aws) -> None:
    topology = example(replicate_offline_store=True)
    booted(aws, topology).apply()
    destroyed = [c.address for c in booted(aws, topology).destroy().changes]
    assert destroyed[0] == f"central:s3-bucket-replication:{OFFLINE_BUCKET}"
    assert "central:iam-role:featureshare-offline-replication" in destroyed
    consumer = aws.admin_session("consumer")
    assert EMBEDDED_REPLICA not in [b["Name"] for b in consumer.client("s3").list_buckets()["Buckets"]]
    with pytest.raises(ClientError, match="NotFound"):
        consumer.client("kms").describe_key(KeyId="alias/featureshare-offline-replica")
    plan = booted(aws, topology).plan()
    assert {c.action for c in plan.changes} == {Action.CREATE}


REPLICATION_ROLE_NAME = "featureshare-offline-replication"
CENTRAL_REPLICATION_ROLE = f"arn:aws:iam::111111111111:role/{REPLICATION_ROLE_NAME}"


def their_rule(rule_id: str, priority: int) -> dict[str, Any]:
    return {"ID": rule_id, "Priority": priority, "Status": "Enabled", "Filter": {"Prefix": "exports/"},
            "DeleteMarkerReplication": {"Status": "Disabled"},
            "Destination": {"Bucket": "arn:aws:s3:::analytics-archive"}}


def replication_of(aws: EmbeddedAWS) -> dict[str, Any]:
    return aws.admin_session("central").client("s3").get_bucket_replication(Bucket=OFFLINE_BUCKET)[
        "ReplicationConfiguration"]


def test_a_replica_key_alias_naming_a_key_bootstrap_did_not_create_is_refused(aws) -> None:
    kms = aws.admin_session("consumer").client("kms")
    key = kms.create_key(Description="search's own key", Tags=[{"TagKey": "team", "TagValue": "search"}])[
        "KeyMetadata"]
    kms.create_alias(AliasName="alias/featureshare-offline-replica", TargetKeyId=key["KeyId"])
    policy = kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"]
    topology = example(replicate_offline_store=True)
    for attempt in (booted(aws, topology).plan, booted(aws, topology).apply):
        with pytest.raises(ConfigError, match=rf"consumers\[0\]\.replica_kms_key: alias/featureshare-offline-replica "
                                              rf"names key {key['KeyId']} in account 222222222222, .*set "
                                              rf"consumers\[0\]\.replica_kms_key = \"{key['Arn']}\""):
            attempt()
    assert kms.get_key_policy(KeyId=key["KeyId"], PolicyName="default")["Policy"] == policy
    assert kms.list_resource_tags(KeyId=key["KeyId"])["Tags"] == [{"TagKey": "team", "TagValue": "search"}]
    assert aws.admin_session("central").client("iam").list_roles()["Roles"] == []


def test_a_replication_configuration_with_another_role_is_refused_and_left_as_it_is(aws) -> None:
    booted(aws, example()).apply()
    theirs = {"Role": "arn:aws:iam::111111111111:role/analytics-replication", "Rules": [their_rule("to-archive", 1)]}
    aws.admin_session("central").client("s3").put_bucket_replication(Bucket=OFFLINE_BUCKET,
                                                                     ReplicationConfiguration=theirs)
    assert booted(aws, example()).plan().empty  # without opting in, bootstrap has nothing to say about it
    topology = example(replicate_offline_store=True)
    for attempt in (booted(aws, topology).plan, booted(aws, topology).apply):
        with pytest.raises(ConfigError, match=rf"central\.offline_bucket: bucket {OFFLINE_BUCKET} has a replication "
                                              r"configuration that bootstrap did not write, with role "
                                              r"arn:aws:iam::111111111111:role/analytics-replication \(rules: "
                                              r"to-archive\)\. S3 keeps one replication configuration per bucket"):
            attempt()
    assert replication_of(aws) == theirs
    assert REPLICATION_ROLE_NAME not in [r["RoleName"] for r in aws.admin_session("central").client(
        "iam").list_roles()["Roles"]]


def test_rules_of_others_under_bootstrap_s_role_are_kept_and_priorities_stay_unique(aws) -> None:
    aws.admin_session("central").client("s3").create_bucket(Bucket=OFFLINE_BUCKET)  # an existing offline store
    topology = example(replicate_offline_store=True)
    booted(aws, topology).apply()
    theirs = their_rule("to-archive", 1)
    aws.admin_session("central").client("s3").put_bucket_replication(
        Bucket=OFFLINE_BUCKET, ReplicationConfiguration={"Role": CENTRAL_REPLICATION_ROLE, "Rules": [theirs]})
    (change,) = booted(aws, topology).plan().pending
    assert (change.action, change.address) == (Action.UPDATE, f"central:s3-bucket-replication:{OFFLINE_BUCKET}")
    assert not any(line.startswith("-") for line in change.diff)
    booted(aws, topology).apply()
    assert booted(aws, topology).plan().empty
    rules = replication_of(aws)["Rules"]
    assert [(rule["ID"], rule["Priority"]) for rule in rules] == [("to-archive", 1), ("featureshare-search", 2)]
    assert rules[0] == theirs

    # Opting out removes bootstrap's rule and the role's policy; the role stays, since their rule uses it.
    opted_out = example()
    plan = booted(aws, opted_out).plan()
    assert [(c.action, c.address) for c in plan.pending] == [
        (Action.UPDATE, f"central:s3-bucket-replication:{OFFLINE_BUCKET}"),
        (Action.DELETE, f"central:iam-role-policy:{REPLICATION_ROLE_NAME}/{REPLICATION_ROLE_NAME}")]
    booted(aws, opted_out).apply()
    assert booted(aws, opted_out).plan().empty
    assert replication_of(aws) == {"Role": CENTRAL_REPLICATION_ROLE, "Rules": [theirs]}
    # destroy removes bootstrap's rules only, and leaves the role their rule uses (and the bucket it did not create)
    booted(aws, topology).apply()
    booted(aws, topology).destroy()
    assert replication_of(aws) == {"Role": CENTRAL_REPLICATION_ROLE, "Rules": [theirs]}
    iam = aws.admin_session("central").client("iam")
    assert iam.get_role(RoleName=REPLICATION_ROLE_NAME)["Role"]["Arn"] == CENTRAL_REPLICATION_ROLE
    assert iam.list_role_policies(RoleName=REPLICATION_ROLE_NAME)["PolicyNames"] == []


def test_opting_out_the_last_consumer_removes_the_configuration_the_replication_role_and_its_policy(aws) -> None:
    booted(aws, example(replicate_offline_store=True)).apply()
    opted_out = example()
    plan = booted(aws, opted_out).plan()
    assert [(c.action, c.address) for c in plan.pending] == [
        (Action.DELETE, f"central:s3-bucket-replication:{OFFLINE_BUCKET}"),
        (Action.DELETE, f"central:iam-role-policy:{REPLICATION_ROLE_NAME}/{REPLICATION_ROLE_NAME}"),
        (Action.DELETE, f"central:iam-role:{REPLICATION_ROLE_NAME}")]
    assert any(line.startswith("-") and '"ID": "featureshare-search"' in line for line in plan.pending[0].diff)
    applied = booted(aws, opted_out).apply()
    assert [c.action for c in applied.pending] == [Action.DELETE] * 3
    assert booted(aws, opted_out).plan().empty
    with pytest.raises(ClientError, match="ReplicationConfigurationNotFoundError"):
        replication_of(aws)
    assert REPLICATION_ROLE_NAME not in [r["RoleName"] for r in aws.admin_session("central").client(
        "iam").list_roles()["Roles"]]
    # The replica bucket keeps the consumer's replicas.
    assert EMBEDDED_REPLICA in [b["Name"] for b in aws.admin_session("consumer").client("s3").list_buckets()[
        "Buckets"]]

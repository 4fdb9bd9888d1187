"""Proofs over the RENDERED iam/ templates: who may do what, where, from which account.

One central account and two consumer accounts (teams search and reviews). Every row states its expected
outcome explicitly; nothing here is recomputed from the templates.
"""

from __future__ import annotations

from typing import Any

import pytest

from featureshare.bootstrap.templates import PolicyDocument, policy_documents
from featureshare.config import Topology
from featureshare.iampolicy import Outcome, Request, evaluate, evaluate_assume_role

A, D, X = Outcome.ALLOW, Outcome.IMPLICIT_DENY, Outcome.DENY  # X: explicitly denied

REGION = "eu-west-1"
CENTRAL, SEARCH, REVIEWS, OUTSIDER = "111111111111", "222222222222", "333333333333", "444444444444"
CENTRAL_ROLE = f"arn:aws:iam::{CENTRAL}:role/FeatureShareAccess"
STORE_ROLE = f"arn:aws:iam::{CENTRAL}:role/FeatureStoreOffline"
CENTRAL_KEY = f"arn:aws:kms:{REGION}:{CENTRAL}:key/11111111-2222-3333-4444-555555555555"
REVIEWS_KEY = f"arn:aws:kms:{REGION}:{REVIEWS}:key/aaaaaaaa-2222-3333-4444-555555555555"
EXTERNAL_ID = "featureshare-ext-7"

ROLES = {
    "search": f"arn:aws:iam::{SEARCH}:role/SearchExec",
    "search-other": f"arn:aws:iam::{SEARCH}:role/SearchNotebookUnlisted",
    "reviews": f"arn:aws:iam::{REVIEWS}:role/ReviewsExec",
    "reviews-session": f"arn:aws:sts::{REVIEWS}:assumed-role/ReviewsExec/processing-job",
    "outsider": f"arn:aws:iam::{OUTSIDER}:role/SearchExec",
}
TOPOLOGY = Topology.from_dict({
    "region": REGION,
    "central": {"account_id": CENTRAL, "access_role_arn": CENTRAL_ROLE, "offline_bucket": "central-offline",
                "offline_prefix": "feature-store", "offline_store_role_arn": STORE_ROLE, "kms_key": CENTRAL_KEY,
                "external_id": EXTERNAL_ID},
    "consumers": [
        {"name": "search", "account_id": SEARCH, "team": "search", "training_bucket": "search-training",
         "execution_role_arns": [ROLES["search"]], "athena_workgroup": "search-wg"},
        {"name": "reviews", "account_id": REVIEWS, "team": "reviews", "training_bucket": "reviews-training",
         "execution_role_arns": [ROLES["reviews"]], "kms_key": REVIEWS_KEY},
    ],
})
DOCS: dict[str, PolicyDocument] = policy_documents(TOPOLOGY)


def doc(name: str) -> tuple[str, dict[str, Any]]:
    return name, DOCS[name].document


def central_session(team: str) -> str:
    return f"arn:aws:sts::{CENTRAL}:assumed-role/FeatureShareAccess/{team}-job"


CENTRAL_IDENTITY = [doc("central-access-role-permissions"), doc("central-access-role-consumer-keys")]


def consumer_identity(actor: str) -> list[tuple[str, dict[str, Any]]]:
    """The execution-role policy of the actor's account (an unlisted role is given the same policy)."""
    consumer = "reviews" if actor.startswith("reviews") else "search"
    return [doc(f"consumer-execution-role-policy[{consumer}]")]


# ---------------------------------------------------------------------------------------------------------
# Feature groups in the central account, through the central access role (ABAC on the session's team tag)

GROUPS = {  # name -> resource tags
    "search-clicks": {"team": "search"},
    "reviews-ratings": {"team": "reviews"},
    "reviews-geo-shared": {"team": "reviews", "shared": "true"},
}
# action -> {team: expected outcome per group, in GROUPS order}
GROUP_GRID: dict[str, dict[str, tuple[Outcome, Outcome, Outcome]]] = {
    "PutRecord":             {"search": (A, D, D), "reviews": (D, A, A)},
    "BatchWriteRecord":      {"search": (A, D, D), "reviews": (D, A, A)},
    "DeleteRecord":          {"search": (A, D, D), "reviews": (D, A, A)},
    "UpdateFeatureGroup":    {"search": (A, D, D), "reviews": (D, A, A)},
    "UpdateFeatureMetadata": {"search": (A, D, D), "reviews": (D, A, A)},
    "DeleteFeatureGroup":    {"search": (A, D, D), "reviews": (D, A, A)},
    "GetRecord":             {"search": (A, D, A), "reviews": (D, A, A)},
    "BatchGetRecord":        {"search": (A, D, A), "reviews": (D, A, A)},
    "DescribeFeatureGroup":  {"search": (A, D, A), "reviews": (D, A, A)},
    "ListTags":              {"search": (A, D, A), "reviews": (D, A, A)},
}
GROUP_CASES = [(action, team, group, expected)
               for action, by_team in GROUP_GRID.items()
               for team, row in by_team.items()
               for group, expected in zip(GROUPS, row, strict=True)]


def fg_arn(group: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{CENTRAL}:feature-group/{group}"


@pytest.mark.parametrize("action, team, group, expected", GROUP_CASES)
def test_team_may_write_only_its_own_groups_and_read_its_own_and_shared_ones(
        action: str, team: str, group: str, expected: Outcome) -> None:
    context = {f"aws:ResourceTag/{k}": v for k, v in GROUPS[group].items()}
    request = Request(central_session(team), f"sagemaker:{action}", fg_arn(group),
                      {"aws:PrincipalTag/team": team, **context}, resource_account=CENTRAL)
    assert evaluate(request, CENTRAL_IDENTITY).outcome is expected


def create_request(team: str, tags: dict[str, str], action: str = "sagemaker:CreateFeatureGroup",
                   **context: Any) -> Outcome:
    ctx = {"aws:PrincipalTag/team": team, "aws:TagKeys": list(tags), **context}
    ctx.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
    request = Request(central_session(team), action, fg_arn("new-group"), ctx, resource_account=CENTRAL)
    return evaluate(request, CENTRAL_IDENTITY).outcome


@pytest.mark.parametrize("team, tags, expected", [
    ("search", {"team": "search"}, A),
    ("search", {"team": "search", "shared": "true", "owner": "ana"}, A),
    ("search", {"team": "reviews"}, D),
    ("search", {}, D),
    ("search", {"shared": "true"}, D),
    ("search", {"team": "search", "cost-center": "42"}, D),
    ("reviews", {"team": "reviews"}, A),
    ("reviews", {"team": "search"}, D),
    ("reviews", {"team": "reviews", "Team": "search"}, D),
])
def test_create_feature_group_only_with_own_team_tag_and_allowed_tag_keys(
        team: str, tags: dict[str, str], expected: Outcome) -> None:
    assert create_request(team, tags) is expected


@pytest.mark.parametrize("team, tags, tagging_action, expected", [
    ("search", {"team": "search"}, "CreateFeatureGroup", A),
    ("search", {"team": "reviews"}, "CreateFeatureGroup", D),
    ("reviews", {"team": "reviews", "shared": "true"}, "CreateFeatureGroup", A),
])
def test_tags_passed_at_creation_follow_the_same_team_rule(
        team: str, tags: dict[str, str], tagging_action: str, expected: Outcome) -> None:
    outcome = create_request(team, tags, action="sagemaker:AddTags", **{"sagemaker:TaggingAction": tagging_action})
    assert outcome is expected


@pytest.mark.parametrize("team, action, group, tags, expected", [
    ("search", "AddTags", "search-clicks", {"shared": "true"}, A),
    ("search", "AddTags", "search-clicks", {"team": "reviews"}, D),
    ("search", "AddTags", "search-clicks", {"team": "search"}, A),
    ("search", "AddTags", "search-clicks", {"cost-center": "1"}, D),
    ("search", "AddTags", "reviews-ratings", {"shared": "true"}, D),
    ("search", "DeleteTags", "search-clicks", {"shared": ""}, A),
    ("search", "DeleteTags", "search-clicks", {"team": ""}, X),
    ("reviews", "DeleteTags", "reviews-geo-shared", {"team": "", "shared": ""}, X),
    ("reviews", "DeleteTags", "search-clicks", {"shared": ""}, D),
])
def test_tags_of_existing_groups_cannot_move_a_group_to_another_team(
        team: str, action: str, group: str, tags: dict[str, str], expected: Outcome) -> None:
    ctx: dict[str, Any] = {"aws:PrincipalTag/team": team, "aws:TagKeys": list(tags)}
    ctx.update({f"aws:ResourceTag/{k}": v for k, v in GROUPS[group].items()})
    if action == "AddTags":
        ctx.update({f"aws:RequestTag/{k}": v for k, v in tags.items()})
    request = Request(central_session(team), f"sagemaker:{action}", fg_arn(group), ctx, resource_account=CENTRAL)
    assert evaluate(request, CENTRAL_IDENTITY).outcome is expected


@pytest.mark.parametrize("team, action, expected", [
    ("search", "sagemaker:ListFeatureGroups", A),
    ("reviews", "sagemaker:Search", A),
    ("search", "sagemaker:CreateTrainingJob", D),
    ("reviews", "sagemaker:CreateEndpoint", D),
])
def test_listing_and_search_are_open_but_other_sagemaker_actions_are_not(
        team: str, action: str, expected: Outcome) -> None:
    request = Request(central_session(team), action, "*", {"aws:PrincipalTag/team": team}, resource_account=CENTRAL)
    assert evaluate(request, CENTRAL_IDENTITY).outcome is expected


@pytest.mark.parametrize("role, service, expected", [
    (STORE_ROLE, "sagemaker.amazonaws.com", A),
    (STORE_ROLE, "glue.amazonaws.com", D),
    (CENTRAL_ROLE, "sagemaker.amazonaws.com", D),
    (f"arn:aws:iam::{CENTRAL}:role/Admin", "sagemaker.amazonaws.com", D),
])
def test_only_the_offline_store_role_may_be_passed_and_only_to_sagemaker(role: str, service: str,
                                                                          expected: Outcome) -> None:
    request = Request(central_session("search"), "iam:PassRole", role,
                      {"aws:PrincipalTag/team": "search", "iam:PassedToService": service})
    assert evaluate(request, CENTRAL_IDENTITY).outcome is expected


@pytest.mark.parametrize("actor, action, group, expected", [
    ("search", "sagemaker:PutRecord", "search-clicks", D),
    ("search", "sagemaker:GetRecord", "reviews-geo-shared", D),
    ("reviews", "sagemaker:DeleteFeatureGroup", "reviews-ratings", D),
])
def test_consumer_roles_cannot_touch_central_groups_without_assuming_the_central_role(
        actor: str, action: str, group: str, expected: Outcome) -> None:
    request = Request(ROLES[actor], action, fg_arn(group), {"aws:ResourceTag/team": GROUPS[group]["team"]})
    assert evaluate(request, consumer_identity(actor)).outcome is expected


def local_fg_arn(account: str, group: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{account}:feature-group/{group}"


@pytest.mark.parametrize("actor, action, account, expected", [
    ("search", "sagemaker:CreateFeatureGroup", SEARCH, A),
    ("search", "sagemaker:PutRecord", SEARCH, A),
    ("search", "sagemaker:BatchGetRecord", SEARCH, A),
    ("search", "sagemaker:DeleteFeatureGroup", SEARCH, A),
    ("search", "sagemaker:CreateFeatureGroup", REVIEWS, D),  # another consumer's account
    ("search", "sagemaker:PutRecord", CENTRAL, D),  # central groups only through the central role
    ("reviews", "sagemaker:GetRecord", SEARCH, D),
    ("reviews", "sagemaker:PutRecord", REVIEWS, A),
])
def test_consumer_roles_manage_local_groups_in_their_own_account_only(
        actor: str, action: str, account: str, expected: Outcome) -> None:
    request = Request(ROLES[actor], action, local_fg_arn(account, "local-keywords"), {})
    assert evaluate(request, consumer_identity(actor)).outcome is expected


@pytest.mark.parametrize("actor, role, service, expected", [
    ("search", ROLES["search"], "sagemaker.amazonaws.com", A),
    ("search", ROLES["search"], "glue.amazonaws.com", D),
    ("search", ROLES["search-other"], "sagemaker.amazonaws.com", D),
    ("search", STORE_ROLE, "sagemaker.amazonaws.com", D),
])
def test_consumer_roles_pass_only_themselves_and_only_to_sagemaker_for_local_offline_stores(
        actor: str, role: str, service: str, expected: Outcome) -> None:
    request = Request(ROLES[actor], "iam:PassRole", role, {"iam:PassedToService": service})
    assert evaluate(request, consumer_identity(actor)).outcome is expected


# ---------------------------------------------------------------------------------------------------------
# Trust: who may become the central access role, and with which team


@pytest.mark.parametrize("actor, principal_team, session_team, extra_tags, external_id, expected", [
    ("search", "search", "search", {}, EXTERNAL_ID, A),
    ("search", "search", None, {}, EXTERNAL_ID, A),
    ("search", "search", "reviews", {}, EXTERNAL_ID, D),
    ("search", "reviews", "reviews", {}, EXTERNAL_ID, D),  # a re-tagged role still cannot claim another team
    ("search", "search", "search", {"project": "x"}, EXTERNAL_ID, D),
    ("search", "search", "search", {}, None, D),
    ("search", "search", "search", {}, "wrong", D),
    ("search-other", "search", "search", {}, EXTERNAL_ID, D),
    ("search-other", "search", None, {}, EXTERNAL_ID, D),
    ("reviews", "reviews", "reviews", {}, EXTERNAL_ID, A),
    ("reviews", "reviews", "search", {}, EXTERNAL_ID, D),
    ("reviews-session", "reviews", "reviews", {}, EXTERNAL_ID, A),
    ("outsider", "search", "search", {}, EXTERNAL_ID, D),
])
def test_only_configured_execution_roles_assume_the_central_role_and_only_as_their_own_team(
        actor: str, principal_team: str, session_team: str | None, extra_tags: dict[str, str],
        external_id: str | None, expected: Outcome) -> None:
    tags = ({"team": session_team} if session_team else {}) | extra_tags
    decision = evaluate_assume_role(
        ROLES[actor], CENTRAL_ROLE, DOCS["central-access-role-trust"].document,
        identity_policies=consumer_identity(actor), session_tags=tags or None, external_id=external_id,
        context={"aws:PrincipalTag/team": principal_team})
    assert decision.outcome is expected, decision.explain()


@pytest.mark.parametrize("actor, source_identity, with_identity_policy, expected", [
    ("search", "ana@example.com", True, A),
    ("search-other", "ana@example.com", True, D),
    ("search", "ana@example.com", False, D),
])
def test_source_identity_is_allowed_for_configured_roles_that_hold_the_identity_grant(
        actor: str, source_identity: str, with_identity_policy: bool, expected: Outcome) -> None:
    identity = consumer_identity(actor) if with_identity_policy else []
    decision = evaluate_assume_role(ROLES[actor], CENTRAL_ROLE, DOCS["central-access-role-trust"].document,
                                    identity_policies=identity, session_tags={"team": "search"},
                                    source_identity=source_identity, external_id=EXTERNAL_ID,
                                    context={"aws:PrincipalTag/team": "search"})
    assert decision.outcome is expected, decision.explain()


@pytest.mark.parametrize("principal, source_account, source_arn, expected", [
    ("sagemaker.amazonaws.com", CENTRAL, fg_arn("search-clicks"), A),
    ("sagemaker.amazonaws.com", OUTSIDER, f"arn:aws:sagemaker:{REGION}:{OUTSIDER}:feature-group/x", D),
    ("sagemaker.amazonaws.com", OUTSIDER, fg_arn("search-clicks"), D),
    ("sagemaker.amazonaws.com", CENTRAL, f"arn:aws:sagemaker:{REGION}:{CENTRAL}:training-job/x", D),
    ("athena.amazonaws.com", CENTRAL, fg_arn("search-clicks"), D),
])
def test_offline_store_role_trusts_sagemaker_of_the_central_account_only(
        principal: str, source_account: str, source_arn: str, expected: Outcome) -> None:
    decision = evaluate_assume_role(principal, STORE_ROLE, DOCS["offline-store-role-trust"].document,
                                    context={"aws:SourceAccount": source_account, "aws:SourceArn": source_arn})
    assert decision.outcome is expected


def test_consumer_roles_cannot_assume_the_offline_store_role() -> None:
    decision = evaluate_assume_role(ROLES["search"], STORE_ROLE, DOCS["offline-store-role-trust"].document,
                                    identity_policies=consumer_identity("search"))
    assert decision.outcome is D


# ---------------------------------------------------------------------------------------------------------
# The offline store in S3, its key, and its Glue catalog, from consumer accounts (cross-account)

OFFLINE_OBJECT = (f"arn:aws:s3:::central-offline/feature-store/{CENTRAL}/sagemaker/{REGION}/offline-store/"
                  "search-clicks-1700000000/data/year=2026/month=01/day=02/hour=03/x.parquet")


@pytest.mark.parametrize("actor, action, resource, context, expected", [
    ("search", "s3:GetObject", OFFLINE_OBJECT, {}, A),
    ("reviews", "s3:GetObject", OFFLINE_OBJECT, {}, A),
    ("reviews-session", "s3:GetObject", OFFLINE_OBJECT, {}, A),
    ("search", "s3:PutObject", OFFLINE_OBJECT, {}, D),
    ("search", "s3:DeleteObject", OFFLINE_OBJECT, {}, D),
    ("reviews", "s3:PutObjectAcl", OFFLINE_OBJECT, {}, D),
    ("search", "s3:GetObject", "arn:aws:s3:::central-offline/secrets/keys.csv", {}, D),
    ("search", "s3:GetObject", "arn:aws:s3:::central-offline/feature-storeX/a", {}, D),
    ("search", "s3:ListBucket", "arn:aws:s3:::central-offline", {"s3:prefix": "feature-store/111111111111/"}, A),
    ("search", "s3:ListBucket", "arn:aws:s3:::central-offline", {"s3:prefix": "secrets/"}, D),
    ("search", "s3:ListBucket", "arn:aws:s3:::central-offline", {}, D),
    ("search", "s3:GetBucketLocation", "arn:aws:s3:::central-offline", {}, A),
    ("search", "s3:GetBucketPolicy", "arn:aws:s3:::central-offline", {}, D),
    ("search", "s3:GetObject", OFFLINE_OBJECT, {"aws:SecureTransport": False}, X),
    ("search-other", "s3:GetObject", OFFLINE_OBJECT, {}, D),
    ("outsider", "s3:GetObject", OFFLINE_OBJECT, {}, D),
])
def test_consumers_read_the_offline_prefix_but_cannot_write_it_or_read_outside_it(
        actor: str, action: str, resource: str, context: dict[str, Any], expected: Outcome) -> None:
    request = Request(ROLES[actor], action, resource, {"aws:SecureTransport": True, **context})
    decision = evaluate(request, consumer_identity(actor), doc("offline-bucket-policy"), resource_account=CENTRAL)
    assert decision.outcome is expected, decision.explain()


@pytest.mark.parametrize("principal, action, context, identity, expected", [
    (ROLES["search"], "kms:Decrypt", {"kms:ViaService": f"s3.{REGION}.amazonaws.com",
                                      "kms:CallerAccount": SEARCH}, "search", A),
    (ROLES["reviews"], "kms:Decrypt", {"kms:ViaService": f"s3.{REGION}.amazonaws.com",
                                       "kms:CallerAccount": REVIEWS}, "reviews", A),
    (ROLES["search"], "kms:Decrypt", {"kms:CallerAccount": SEARCH}, "search", D),
    (ROLES["search"], "kms:Decrypt", {"kms:ViaService": "athena.eu-west-1.amazonaws.com",
                                      "kms:CallerAccount": SEARCH}, "search", D),
    (ROLES["search"], "kms:GenerateDataKey", {"kms:ViaService": f"s3.{REGION}.amazonaws.com",
                                              "kms:CallerAccount": SEARCH}, "search", D),
    (ROLES["search-other"], "kms:Decrypt", {"kms:ViaService": f"s3.{REGION}.amazonaws.com",
                                            "kms:CallerAccount": SEARCH}, "search", D),
    (STORE_ROLE, "kms:GenerateDataKey", {}, "store", A),
    (STORE_ROLE, "kms:ScheduleKeyDeletion", {}, "store", D),
    (central_session("search"), "kms:Decrypt", {}, "central", A),
    (central_session("search"), "kms:PutKeyPolicy", {}, "central", D),
])
def test_offline_key_is_used_by_the_store_role_and_by_consumers_only_through_s3(
        principal: str, action: str, context: dict[str, Any], identity: str, expected: Outcome) -> None:
    identities = {"search": consumer_identity("search"), "reviews": consumer_identity("reviews"),
                  "store": [doc("offline-store-role-permissions")], "central": CENTRAL_IDENTITY}[identity]
    request = Request(principal, action, CENTRAL_KEY, context)
    decision = evaluate(request, identities, doc("offline-key-policy"), require_resource_allow=True)
    assert decision.outcome is expected, decision.explain()


GLUE_TABLE = f"arn:aws:glue:{REGION}:{CENTRAL}:table/sagemaker_featurestore/search_clicks_1700000000"


@pytest.mark.parametrize("actor, action, resource, expected", [
    ("search", "glue:GetTable", GLUE_TABLE, A),
    ("reviews", "glue:GetPartitions", GLUE_TABLE, A),
    ("search", "glue:GetDatabase", f"arn:aws:glue:{REGION}:{CENTRAL}:database/sagemaker_featurestore", A),
    ("search", "glue:GetTable", f"arn:aws:glue:{REGION}:{CENTRAL}:table/finance/ledger", D),
    ("search", "glue:DeleteTable", GLUE_TABLE, D),
    ("reviews", "glue:CreateTable", GLUE_TABLE, D),
    ("search-other", "glue:GetTable", GLUE_TABLE, D),
    ("outsider", "glue:GetTable", GLUE_TABLE, D),
])
def test_consumers_read_only_the_feature_store_tables_of_the_central_catalog(
        actor: str, action: str, resource: str, expected: Outcome) -> None:
    request = Request(ROLES[actor], action, resource)
    decision = evaluate(request, consumer_identity(actor), doc("glue-catalog-resource-policy"))
    assert decision.outcome is expected, decision.explain()


# ---------------------------------------------------------------------------------------------------------
# Results written by the central role into consumer training buckets (assumed-role query strategy)


@pytest.mark.parametrize("team, action, resource, acl, expected", [
    ("search", "s3:PutObject", "arn:aws:s3:::search-training/training-sets/run-1/part-0.parquet",
     "bucket-owner-full-control", A),
    ("search", "s3:PutObject", "arn:aws:s3:::search-training/athena-results/q-1.csv", "bucket-owner-full-control", A),
    ("search", "s3:PutObject", "arn:aws:s3:::search-training/training-sets/run-1/part-0.parquet", None, D),
    ("search", "s3:PutObject", "arn:aws:s3:::search-training/training-sets/run-1/part-0.parquet", "private", D),
    ("search", "s3:PutObject", "arn:aws:s3:::search-training/models/model.tar.gz", "bucket-owner-full-control", D),
    ("search", "s3:PutObject", "arn:aws:s3:::reviews-training/training-sets/x.parquet",
     "bucket-owner-full-control", D),
    ("reviews", "s3:PutObject", "arn:aws:s3:::reviews-training/training-sets/x.parquet",
     "bucket-owner-full-control", A),
    ("search", "s3:GetObject", "arn:aws:s3:::search-training/athena-results/q-1.csv", None, A),
    ("search", "s3:GetObject", "arn:aws:s3:::search-training/private/notes.txt", None, D),
    ("search", "s3:DeleteObject", "arn:aws:s3:::search-training/training-sets/run-1/part-0.parquet", None, D),
])
def test_central_role_writes_results_only_under_its_teams_result_prefixes(
        team: str, action: str, resource: str, acl: str | None, expected: Outcome) -> None:
    bucket_owner = resource.split(":::")[1].split("-")[0]
    context: dict[str, Any] = {"aws:PrincipalTag/team": team, "aws:SecureTransport": True}
    if acl:
        context["s3:x-amz-acl"] = acl
    request = Request(central_session(team), action, resource, context)
    owner_account = {"search": SEARCH, "reviews": REVIEWS}[bucket_owner]
    decision = evaluate(request, CENTRAL_IDENTITY, doc(f"consumer-training-bucket-policy[{bucket_owner}]"),
                        resource_account=owner_account)
    assert decision.outcome is expected, decision.explain()


@pytest.mark.parametrize("actor, action, resource, expected", [
    ("search", "s3:PutObject", "arn:aws:s3:::search-training/training-sets/x.parquet", A),
    ("search", "s3:GetObject", "arn:aws:s3:::search-training/anything", A),
    ("search", "s3:PutObject", "arn:aws:s3:::reviews-training/training-sets/x.parquet", D),
    ("reviews", "s3:GetObject", "arn:aws:s3:::search-training/training-sets/x.parquet", D),
    ("search", "s3:PutBucketPolicy", "arn:aws:s3:::search-training", D),
])
def test_consumers_read_and_write_only_their_own_training_bucket(actor: str, action: str, resource: str,
                                                                 expected: Outcome) -> None:
    owner = resource.split(":::")[1].split("-")[0]
    owner_account = {"search": SEARCH, "reviews": REVIEWS}[owner]
    request = Request(ROLES[actor], action, resource, {"aws:SecureTransport": True})
    decision = evaluate(request, consumer_identity(actor), doc(f"consumer-training-bucket-policy[{owner}]"),
                        resource_account=owner_account)
    assert decision.outcome is expected, decision.explain()


@pytest.mark.parametrize("actor, action, resource, expected", [
    ("search", "athena:StartQueryExecution", f"arn:aws:athena:{REGION}:{SEARCH}:workgroup/search-wg", A),
    ("search", "athena:StartQueryExecution", f"arn:aws:athena:{REGION}:{SEARCH}:workgroup/primary", D),
    ("reviews", "athena:StartQueryExecution", f"arn:aws:athena:{REGION}:{REVIEWS}:workgroup/featureshare", A),
    ("search", "athena:GetDataCatalog", f"arn:aws:athena:{REGION}:{SEARCH}:datacatalog/central", A),
    ("search", "athena:DeleteWorkGroup", f"arn:aws:athena:{REGION}:{SEARCH}:workgroup/search-wg", D),
    ("search", "glue:CreateTable", f"arn:aws:glue:{REGION}:{SEARCH}:table/featureshare_scratch/tmp_1", A),
    ("search", "glue:CreateTable", f"arn:aws:glue:{REGION}:{SEARCH}:table/sagemaker_featurestore/t", D),
    ("search", "sts:AssumeRole", f"arn:aws:iam::{CENTRAL}:role/Admin", D),
])
def test_consumer_execution_role_is_limited_to_its_workgroup_catalogs_and_scratch_database(
        actor: str, action: str, resource: str, expected: Outcome) -> None:
    request = Request(ROLES[actor], action, resource)
    assert evaluate(request, consumer_identity(actor)).outcome is expected


@pytest.mark.parametrize("principal, action, context, identity, expected", [
    (central_session("reviews"), "kms:GenerateDataKey", {"kms:ViaService": f"s3.{REGION}.amazonaws.com"},
     CENTRAL_IDENTITY, A),
    (central_session("reviews"), "kms:GenerateDataKey", {}, CENTRAL_IDENTITY, D),
    (ROLES["reviews"], "kms:Decrypt", {"kms:ViaService": f"s3.{REGION}.amazonaws.com"},
     [doc("consumer-execution-role-training-key[reviews]")], A),
    (ROLES["search"], "kms:Decrypt", {"kms:ViaService": f"s3.{REGION}.amazonaws.com"},
     consumer_identity("search"), D),
])
def test_consumer_training_key_is_used_via_s3_by_its_own_roles_and_the_central_role(
        principal: str, action: str, context: dict[str, Any], identity: Any, expected: Outcome) -> None:
    request = Request(principal, action, REVIEWS_KEY, context)
    decision = evaluate(request, identity, doc("training-key-policy[reviews]"), require_resource_allow=True)
    assert decision.outcome is expected, decision.explain()


def test_the_proof_table_has_at_least_a_hundred_cases(request: pytest.FixtureRequest) -> None:
    proofs = [item for item in request.session.items
              if item.module is request.module and item.name.startswith("test_") and "[" in item.name]
    assert len(proofs) >= 100


UNBOUND_TRUST = policy_documents(TOPOLOGY, bind_teams_in_trust=False)["central-access-role-trust"].document


@pytest.mark.parametrize("actor, principal_team, session_team, expected", [
    ("search", "search", "search", A),
    ("search", "search", "reviews", D),
    ("search-other", "search", "search", D),
    ("reviews", "reviews", "reviews", A),
    # The documented price of the compact trust policy: the consumer account's own tags are trusted.
    ("search", "reviews", "reviews", A),
])
def test_compact_trust_still_ties_the_session_team_to_the_callers_team_tag(
        actor: str, principal_team: str, session_team: str, expected: Outcome) -> None:
    decision = evaluate_assume_role(ROLES[actor], CENTRAL_ROLE, UNBOUND_TRUST,
                                    identity_policies=consumer_identity(actor), session_tags={"team": session_team},
                                    external_id=EXTERNAL_ID, context={"aws:PrincipalTag/team": principal_team})
    assert decision.outcome is expected, decision.explain()


# ---------------------------------------------------------------------------------------------------------
# strategy="central-role" for combined sets: the central role stages entity keys under the consumer's
# _featureshare_staging/central/ prefix, registers them in a central scratch database, runs the central part in
# its per-consumer central workgroup and UNLOADs it back under that prefix.

STAGING = "_featureshare_staging/central"
SCRATCH_TABLE = f"arn:aws:glue:{REGION}:{CENTRAL}:table/featureshare_scratch/entities_0123456789abcdef"


@pytest.mark.parametrize("team, action, resource, expected", [
    # the per-consumer central workgroups (results in that consumer's bucket)
    ("search", "athena:StartQueryExecution", f"arn:aws:athena:{REGION}:{CENTRAL}:workgroup/search-wg-{SEARCH}", A),
    ("search", "athena:GetQueryExecution", f"arn:aws:athena:{REGION}:{CENTRAL}:workgroup/search-wg-{SEARCH}", A),
    ("search", "athena:StopQueryExecution", f"arn:aws:athena:{REGION}:{CENTRAL}:workgroup/search-wg-{SEARCH}", A),
    ("reviews", "athena:StartQueryExecution",
     f"arn:aws:athena:{REGION}:{CENTRAL}:workgroup/featureshare-{REVIEWS}", A),
    ("search", "athena:StartQueryExecution", f"arn:aws:athena:{REGION}:{CENTRAL}:workgroup/primary", D),
    ("search", "athena:StartQueryExecution", f"arn:aws:athena:{REGION}:{CENTRAL}:workgroup/search-wg", D),
    ("search", "athena:UpdateWorkGroup", f"arn:aws:athena:{REGION}:{CENTRAL}:workgroup/search-wg-{SEARCH}", D),
    ("search", "athena:DeleteWorkGroup", f"arn:aws:athena:{REGION}:{CENTRAL}:workgroup/search-wg-{SEARCH}", D),
    # temporary entity tables in the central scratch database
    ("search", "glue:CreateTable", SCRATCH_TABLE, A),
    ("search", "glue:DeleteTable", SCRATCH_TABLE, A),
    ("search", "glue:GetTable", SCRATCH_TABLE, A),
    ("search", "glue:GetPartitions", SCRATCH_TABLE, A),
    ("reviews", "glue:CreateTable", SCRATCH_TABLE, A),
    ("search", "glue:GetDatabase", f"arn:aws:glue:{REGION}:{CENTRAL}:database/featureshare_scratch", A),
    ("search", "glue:CreateTable", f"arn:aws:glue:{REGION}:{CENTRAL}:catalog", A),
    ("search", "glue:UpdateTable", SCRATCH_TABLE, D),
    ("search", "glue:DeleteDatabase", f"arn:aws:glue:{REGION}:{CENTRAL}:database/featureshare_scratch", D),
    ("search", "glue:CreateDatabase", f"arn:aws:glue:{REGION}:{CENTRAL}:database/featureshare_scratch", D),
    ("search", "glue:DeleteTable", f"arn:aws:glue:{REGION}:{CENTRAL}:table/sagemaker_featurestore/search-clicks", D),
    ("search", "glue:DeleteTable", f"arn:aws:glue:{REGION}:{CENTRAL}:table/other_db/t", D),
    ("search", "glue:CreateTable", f"arn:aws:glue:{REGION}:{SEARCH}:table/featureshare_scratch/t", D),
])
def test_central_role_runs_the_central_part_only_in_central_workgroups_and_scratch_databases(
        team: str, action: str, resource: str, expected: Outcome) -> None:
    request = Request(central_session(team), action, resource, {"aws:PrincipalTag/team": team})
    decision = evaluate(request, CENTRAL_IDENTITY)
    assert decision.outcome is expected, decision.explain()


@pytest.mark.parametrize("team, action, key, acl, expected", [
    # reads the staged entity keys, writes the central part's result (owned by the bucket owner)
    ("search", "s3:GetObject", f"{STAGING}/0123/entities/part-0.parquet", None, A),
    ("search", "s3:PutObject", f"{STAGING}/0123/result/q_1.parquet", "bucket-owner-full-control", A),
    ("search", "s3:PutObject", f"{STAGING}/0123/results/q-manifest.csv", "bucket-owner-full-control", A),
    ("search", "s3:AbortMultipartUpload", f"{STAGING}/0123/result/q_1.parquet", None, A),
    ("search", "s3:PutObject", f"{STAGING}/0123/result/q_1.parquet", None, D),
    ("search", "s3:PutObject", f"{STAGING}/0123/result/q_1.parquet", "private", D),
    ("search", "s3:DeleteObject", f"{STAGING}/0123/entities/part-0.parquet", None, D),
    # the catalog strategy's staging (full entity rows with labels) stays private to the consumer
    ("search", "s3:GetObject", "_featureshare_staging/0123/entities/part-0.parquet", None, D),
    ("search", "s3:PutObject", "_featureshare_staging/0123/x.parquet", "bucket-owner-full-control", D),
    # another team's session may not read or write this consumer's staging
    ("reviews", "s3:GetObject", f"{STAGING}/0123/entities/part-0.parquet", None, D),
    ("reviews", "s3:PutObject", f"{STAGING}/0123/result/q_1.parquet", "bucket-owner-full-control", D),
])
def test_central_role_reads_staged_entities_and_writes_the_central_part_only_under_the_central_staging_prefix(
        team: str, action: str, key: str, acl: str | None, expected: Outcome) -> None:
    context: dict[str, Any] = {"aws:PrincipalTag/team": team, "aws:SecureTransport": True}
    if acl:
        context["s3:x-amz-acl"] = acl
    request = Request(central_session(team), action, f"arn:aws:s3:::search-training/{key}", context)
    decision = evaluate(request, CENTRAL_IDENTITY, doc("consumer-training-bucket-policy[search]"),
                        resource_account=SEARCH)
    assert decision.outcome is expected, decision.explain()


@pytest.mark.parametrize("team, bucket, prefix, expected", [
    ("search", "search-training", f"{STAGING}/0123/result/", A),
    ("search", "search-training", STAGING, A),
    ("reviews", "reviews-training", f"{STAGING}/0123/entities/", A),
    ("search", "search-training", "_featureshare_staging/0123/", D),
    ("search", "search-training", "training-sets/", D),
    ("search", "search-training", "", D),
    ("reviews", "search-training", f"{STAGING}/0123/", D),
])
def test_central_role_lists_only_the_central_staging_prefix_of_its_own_teams_bucket(
        team: str, bucket: str, prefix: str, expected: Outcome) -> None:
    context = {"aws:PrincipalTag/team": team, "aws:SecureTransport": True, "s3:prefix": prefix}
    owner = bucket.split("-")[0]
    request = Request(central_session(team), "s3:ListBucket", f"arn:aws:s3:::{bucket}", context)
    decision = evaluate(request, CENTRAL_IDENTITY, doc(f"consumer-training-bucket-policy[{owner}]"),
                        resource_account={"search": SEARCH, "reviews": REVIEWS}[owner])
    assert decision.outcome is expected, decision.explain()

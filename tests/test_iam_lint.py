"""Lint of every rendered policy: parliament offline, plus our own least-privilege rules."""

from __future__ import annotations

import json
from typing import Any

import parliament
import pytest

from featureshare.bootstrap.templates import DocumentKind, PolicyDocument, policy_documents
from featureshare.config import Topology

CENTRAL, SEARCH, REVIEWS = "111111111111", "222222222222", "333333333333"
TOPOLOGY = Topology.from_dict({
    "region": "eu-west-1",
    "central": {"account_id": CENTRAL, "access_role_arn": f"arn:aws:iam::{CENTRAL}:role/FeatureShareAccess",
                "offline_bucket": "central-offline", "external_id": "ext-1",
                "kms_key": f"arn:aws:kms:eu-west-1:{CENTRAL}:key/11111111-2222-3333-4444-555555555555"},
    "consumers": [
        {"name": "search", "account_id": SEARCH, "team": "search", "training_bucket": "search-training",
         "execution_role_arns": [f"arn:aws:iam::{SEARCH}:role/SearchExec"], "replicate_offline_store": True},
        {"name": "reviews", "account_id": REVIEWS, "team": "reviews", "training_bucket": "reviews-training",
         "execution_role_arns": [f"arn:aws:iam::{REVIEWS}:role/ReviewsExec"],
         "kms_key": f"arn:aws:kms:eu-west-1:{REVIEWS}:key/aaaaaaaa-2222-3333-4444-555555555555",
         "replicate_offline_store": True, "replica_bucket": "reviews-replica",
         "replica_kms_key": f"arn:aws:kms:eu-west-1:{REVIEWS}:key/cccccccc-2222-3333-4444-555555555555"},
    ],
})
SEARCH_REPLICA_KEY = f"arn:aws:kms:eu-west-1:{SEARCH}:key/bbbbbbbb-2222-3333-4444-555555555555"
DOCS = list(policy_documents(TOPOLOGY, resolved_keys={"replica:search": SEARCH_REPLICA_KEY}).values())
SEVERITY_RANK = {"INFO": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}

# Findings we accept, each with its reason: (issue, document kind or None for any, detail fragment).
ACCEPTED = {
    # parliament 1.6's bundled IAM definitions predate these Feature Store runtime actions; AWS documents them
    # ("BatchWriteRecord requires sagemaker:BatchWriteRecord and sagemaker:PutRecord", "ListRecords requires
    # sagemaker:ListRecords") in the Feature Store security guide.
    ("UNKNOWN_ACTION", DocumentKind.IDENTITY, "sagemaker:BatchWriteRecord"),
    ("UNKNOWN_ACTION", DocumentKind.IDENTITY, "sagemaker:ListRecords"),
    # In a key policy "Resource": "*" means "this key"; it is the only valid value.
    ("RESOURCE_STAR", DocumentKind.KEY, ""),
    # parliament reads trust policies as identity policies; a trust policy has no Resource (the role is it).
    ("MALFORMED", DocumentKind.TRUST, "neither Resource nor NotResource"),
}
# Community auditors (MEDIUM) flag two grants that are the point of the design.
ACCEPTED_COMMUNITY = {
    # The account root administers its own CMK (kms:* incl. PutKeyPolicy); without it the key is unmanageable.
    ("PERMISSIONS_MANAGEMENT_ACTIONS", DocumentKind.KEY, ""),
    # The execution role must call sts:AssumeRole on the central role: that returns credentials by design.
    ("CREDENTIALS_EXPOSURE", DocumentKind.IDENTITY, ""),
    # Cross-account replication with AccessControlTranslation: the replication role and the replica bucket
    # policy need s3:ObjectOwnerOverrideToBucketOwner (AWS's "Changing the replica owner"); it hands the
    # replicas to the consumer account, nothing more.
    ("PERMISSIONS_MANAGEMENT_ACTIONS", None, "s3:objectowneroverridetobucketowner"),
}


def findings(document: PolicyDocument, *, community: bool = False) -> list[Any]:
    policy = parliament.analyze_policy_string(json.dumps(document.document),
                                              include_community_auditors=community)
    if community:
        # Community findings are not in parliament's base severity table (enhance_finding would raise);
        # we judge them by issue name instead.
        return list(policy.findings)
    return [parliament.enhance_finding(f) for f in policy.findings]


def accepted(finding: Any, kind: DocumentKind, table: set[tuple[str, DocumentKind | None, str]]) -> bool:
    detail = json.dumps(finding.detail) + json.dumps(finding.location, default=str)
    return any(finding.issue == issue and want_kind in (None, kind) and fragment in detail
               for issue, want_kind, fragment in table)


@pytest.mark.parametrize("document", DOCS, ids=[d.name for d in DOCS])
def test_parliament_finds_nothing_above_low_and_nothing_unexplained(document: PolicyDocument) -> None:
    found = findings(document)
    above_low = [(f.issue, f.severity) for f in found
                 if SEVERITY_RANK.get(f.severity, 9) > SEVERITY_RANK["LOW"]
                 and not accepted(f, document.kind, ACCEPTED)]
    assert above_low == []
    unexplained = [(f.issue, f.detail) for f in found if not accepted(f, document.kind, ACCEPTED)]
    assert unexplained == []


@pytest.mark.parametrize("document", DOCS, ids=[d.name for d in DOCS])
def test_parliament_community_auditors_flag_only_the_intended_grants(document: PolicyDocument) -> None:
    found = findings(document, community=True)
    unexplained = [f.issue for f in found if not accepted(f, document.kind, ACCEPTED | ACCEPTED_COMMUNITY)]
    assert unexplained == []


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allow_statements() -> list[tuple[str, dict[str, Any]]]:
    return [(d.name, s) for d in DOCS for s in d.document["Statement"]]


def test_no_statement_grants_every_action_on_every_resource() -> None:
    offenders = [name for name, s in allow_statements()
                 if "*" in as_list(s.get("Action", [])) or "NotAction" in s
                 or ("*" in as_list(s.get("Resource", [])) and any(a.endswith(":*") for a in as_list(s["Action"]))
                     and s["Effect"] == "Allow" and not _is_key_admin(name, s))]
    assert offenders == []


def _is_key_admin(name: str, statement: dict[str, Any]) -> bool:
    """The key owner's root administers its key: the one kms:* grant, scoped to the key by the key policy."""
    principal = statement.get("Principal", {})
    roots = [p for p in as_list(principal.get("AWS", [])) if isinstance(principal, dict) and p.endswith(":root")]
    return name.startswith(("offline-key-policy", "training-key-policy", "replica-key-policy")) \
        and statement["Action"] == "kms:*" \
        and len(roots) == 1


def test_no_s3_star_and_no_full_access_anywhere() -> None:
    text = "\n".join(d.to_json() for d in DOCS)
    assert '"s3:*"' not in text
    assert "FullAccess" not in text
    assert not [name for name, s in allow_statements() if any(a.lower() == "s3:*" for a in as_list(s["Action"]))]


def test_resource_star_appears_only_for_actions_without_resource_level_permissions() -> None:
    allowed_star_actions = {"sagemaker:ListFeatureGroups", "sagemaker:Search"}
    offenders = [(name, s.get("Sid")) for name, s in allow_statements()
                 if s["Effect"] == "Allow" and "*" in as_list(s.get("Resource", []))
                 and DocumentKind.KEY not in {d.kind for d in DOCS if d.name == name}
                 and not set(as_list(s["Action"])) <= allowed_star_actions]
    assert offenders == []


def test_no_trust_policy_trusts_a_service_without_a_source_account_condition() -> None:
    for document in (d for d in DOCS if d.kind is DocumentKind.TRUST):
        for statement in document.document["Statement"]:
            if "Service" in statement["Principal"]:
                assert "aws:SourceAccount" in json.dumps(statement.get("Condition", {})), document.name


def test_no_wildcard_principal_is_allowed_anything() -> None:
    offenders = [name for name, s in allow_statements() if s["Effect"] == "Allow" and s.get("Principal") == "*"]
    assert offenders == []

"""Semantics of the IAM policy evaluator, rule by rule."""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featureshare.errors import UnsupportedError, ValidationError
from featureshare.iampolicy import (
    Outcome,
    Request,
    evaluate,
    evaluate_assume_role,
    is_allowed_cross_account,
    policy_problems,
)

ACCOUNT_A = "111122223333"
ACCOUNT_B = "444455556666"
ROLE_A = f"arn:aws:iam::{ACCOUNT_A}:role/team/Producer"
SESSION_A = f"arn:aws:sts::{ACCOUNT_A}:assumed-role/Producer/job-42"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/Consumer"
BUCKET_OBJ = "arn:aws:s3:::data-bucket/prefix/file.parquet"


def policy(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


def allow(action: Any = "s3:GetObject", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "s3:GetObject", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def decide(statement: dict[str, Any], context: dict[str, Any] | None = None, *, action: str = "s3:GetObject",
           resource: str = BUCKET_OBJ, principal: str = ROLE_A) -> Outcome:
    request = Request(principal, action, resource, context or {}, resource_account=ACCOUNT_A)
    return evaluate(request, [policy(statement)]).outcome


# ---------------------------------------------------------------------------------------------------------
# Effects, actions, resources


def test_explicit_deny_in_one_policy_wins_over_allow_in_another() -> None:
    request = Request(ROLE_A, "s3:GetObject", BUCKET_OBJ, resource_account=ACCOUNT_A)
    decision = evaluate(request, [policy(allow(Sid="Read")), ("guard", policy(deny(Sid="NoReads")))])
    assert decision.outcome is Outcome.DENY
    assert [str(m) for m in decision.denies] == ["guard:NoReads"]
    assert "guard:NoReads" in decision.explain()


def test_explicit_deny_in_resource_policy_wins_over_identity_allow() -> None:
    request = Request(ROLE_A, "s3:GetObject", BUCKET_OBJ, resource_account=ACCOUNT_A)
    bucket = policy(deny(Principal="*", Sid="Lockdown"))
    assert evaluate(request, [policy(allow())], bucket).outcome is Outcome.DENY


def test_request_that_no_statement_matches_is_an_implicit_deny() -> None:
    assert decide(allow("s3:PutObject")) is Outcome.IMPLICIT_DENY


def test_not_action_applies_to_every_action_except_the_listed_ones() -> None:
    statement = {"Effect": "Allow", "NotAction": ["s3:Delete*"], "Resource": "*"}
    assert decide(statement, action="s3:GetObject") is Outcome.ALLOW
    assert decide(statement, action="s3:DeleteObject") is Outcome.IMPLICIT_DENY


def test_not_resource_applies_to_every_resource_except_the_listed_ones() -> None:
    statement = {"Effect": "Allow", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::data-bucket/secret/*"}
    assert decide(statement) is Outcome.ALLOW
    assert decide(statement, resource="arn:aws:s3:::data-bucket/secret/x") is Outcome.IMPLICIT_DENY


def test_action_match_ignores_case_but_resource_match_does_not() -> None:
    assert decide(allow("S3:getobject", BUCKET_OBJ)) is Outcome.ALLOW
    assert decide(allow("s3:GetObject", BUCKET_OBJ.upper())) is Outcome.IMPLICIT_DENY


def test_question_mark_matches_exactly_one_character() -> None:
    assert decide(allow(resource="arn:aws:s3:::data-bucket/prefix/file.parque?")) is Outcome.ALLOW
    assert decide(allow(resource="arn:aws:s3:::data-bucket/prefix/file.parq?")) is Outcome.IMPLICIT_DENY


def test_star_in_resource_spans_slashes() -> None:
    assert decide(allow(resource="arn:aws:s3:::data-bucket/*")) is Outcome.ALLOW
    assert decide(allow(resource="arn:aws:s3:::other-bucket/*")) is Outcome.IMPLICIT_DENY


_GLOB_TEXT = st.text(alphabet="ab/:.*?", max_size=8)


@settings(max_examples=200, deadline=None)
@given(pattern=_GLOB_TEXT, value=st.text(alphabet="ab/:.", max_size=8))
def test_resource_wildcards_agree_with_shell_globbing(pattern: str, value: str) -> None:
    expected = Outcome.ALLOW if fnmatch.fnmatchcase(value, pattern) else Outcome.IMPLICIT_DENY
    assert decide(allow(resource=pattern), resource=value) is expected


# ---------------------------------------------------------------------------------------------------------
# Conditions


def test_if_exists_passes_when_the_key_is_missing() -> None:
    statement = allow(Condition={"StringEqualsIfExists": {"aws:RequestTag/team": "search"}})
    assert decide(statement) is Outcome.ALLOW
    assert decide(statement, {"aws:RequestTag/team": "search"}) is Outcome.ALLOW
    assert decide(statement, {"aws:RequestTag/team": "reviews"}) is Outcome.IMPLICIT_DENY


def test_positive_operator_fails_when_the_key_is_missing() -> None:
    assert decide(allow(Condition={"StringEquals": {"aws:RequestTag/team": "search"}})) is Outcome.IMPLICIT_DENY


def test_negated_operator_holds_when_the_key_is_missing() -> None:
    assert decide(allow(Condition={"StringNotEquals": {"aws:RequestTag/team": "search"}})) is Outcome.ALLOW


@pytest.mark.parametrize("context", [{}, {"aws:TagKeys": []}], ids=["missing", "empty"])
def test_for_all_values_is_vacuously_true_for_a_missing_or_empty_set(context: dict[str, Any]) -> None:
    statement = allow(Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}})
    assert decide(statement, context) is Outcome.ALLOW


def test_for_all_values_requires_every_request_value_to_be_listed() -> None:
    statement = allow(Condition={"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "shared"]}})
    assert decide(statement, {"aws:TagKeys": ["team", "shared"]}) is Outcome.ALLOW
    assert decide(statement, {"aws:TagKeys": ["team", "cost-center"]}) is Outcome.IMPLICIT_DENY


def test_for_any_value_needs_one_listed_value_and_fails_on_a_missing_set() -> None:
    statement = allow(Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}})
    assert decide(statement, {"aws:TagKeys": ["owner", "team"]}) is Outcome.ALLOW
    assert decide(statement, {"aws:TagKeys": ["owner"]}) is Outcome.IMPLICIT_DENY
    assert decide(statement, {}) is Outcome.IMPLICIT_DENY


def test_for_all_values_with_negated_operator_rejects_any_listed_value() -> None:
    statement = allow(Condition={"ForAllValues:StringNotEquals": {"aws:TagKeys": ["team"]}})
    assert decide(statement, {"aws:TagKeys": ["owner"]}) is Outcome.ALLOW
    assert decide(statement, {"aws:TagKeys": ["owner", "team"]}) is Outcome.IMPLICIT_DENY


def test_several_values_of_one_key_are_alternatives_and_several_keys_must_all_hold() -> None:
    statement = allow(Condition={"StringEquals": {"aws:RequestTag/team": ["search", "reviews"],
                                                  "aws:RequestTag/env": "prod"}})
    assert decide(statement, {"aws:RequestTag/team": "reviews", "aws:RequestTag/env": "prod"}) is Outcome.ALLOW
    assert decide(statement, {"aws:RequestTag/team": "reviews", "aws:RequestTag/env": "dev"}) \
        is Outcome.IMPLICIT_DENY


def test_several_operators_must_all_hold() -> None:
    statement = allow(Condition={"StringEquals": {"aws:RequestTag/team": "search"},
                                 "Bool": {"aws:SecureTransport": "true"}})
    assert decide(statement, {"aws:RequestTag/team": "search", "aws:SecureTransport": True}) is Outcome.ALLOW
    assert decide(statement, {"aws:RequestTag/team": "search", "aws:SecureTransport": False}) \
        is Outcome.IMPLICIT_DENY


def test_condition_key_names_ignore_case_but_values_do_not() -> None:
    statement = allow(Condition={"StringEquals": {"AWS:requesttag/Team": "search"}})
    assert decide(statement, {"aws:RequestTag/team": "search"}) is Outcome.ALLOW
    assert decide(statement, {"aws:RequestTag/team": "Search"}) is Outcome.IMPLICIT_DENY


def test_string_equals_ignore_case_compares_values_without_case() -> None:
    statement = allow(Condition={"StringEqualsIgnoreCase": {"aws:RequestTag/team": "SEARCH"}})
    assert decide(statement, {"aws:RequestTag/team": "search"}) is Outcome.ALLOW


def test_string_like_uses_wildcards_but_string_equals_does_not() -> None:
    like = allow(Condition={"StringLike": {"s3:prefix": "feature-store/*"}})
    equals = allow(Condition={"StringEquals": {"s3:prefix": "feature-store/*"}})
    assert decide(like, {"s3:prefix": "feature-store/a/b"}) is Outcome.ALLOW
    assert decide(equals, {"s3:prefix": "feature-store/a/b"}) is Outcome.IMPLICIT_DENY
    assert decide(equals, {"s3:prefix": "feature-store/*"}) is Outcome.ALLOW


@pytest.mark.parametrize("operator, pattern, value, expected", [
    ("ArnLike", "arn:aws:iam::*:role/Consumer", ROLE_B, Outcome.ALLOW),
    ("ArnEquals", "arn:aws:iam::*:role/Consumer", ROLE_B, Outcome.ALLOW),
    ("ArnLike", "arn:aws:iam::111122223333:role/*", ROLE_B, Outcome.IMPLICIT_DENY),
    ("ArnNotLike", "arn:aws:iam::111122223333:role/*", ROLE_B, Outcome.ALLOW),
    ("ArnNotEquals", ROLE_B, ROLE_B, Outcome.IMPLICIT_DENY),
    ("ArnLike", "not-an-arn", ROLE_B, Outcome.IMPLICIT_DENY),
])
def test_arn_operators_match_component_by_component(operator: str, pattern: str, value: str,
                                                    expected: Outcome) -> None:
    statement = allow(Condition={operator: {"aws:SourceArn": pattern}})
    assert decide(statement, {"aws:SourceArn": value}) is expected


@pytest.mark.parametrize("condition, context, expected", [
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": False}, Outcome.ALLOW),
    ({"Bool": {"aws:SecureTransport": False}}, {"aws:SecureTransport": "FALSE"}, Outcome.ALLOW),
    ({"Bool": {"aws:SecureTransport": "false"}}, {}, Outcome.IMPLICIT_DENY),
    ({"Null": {"aws:RequestTag/team": "true"}}, {}, Outcome.ALLOW),
    ({"Null": {"aws:RequestTag/team": "false"}}, {}, Outcome.IMPLICIT_DENY),
    ({"Null": {"aws:RequestTag/team": "false"}}, {"aws:RequestTag/team": "x"}, Outcome.ALLOW),
    ({"NumericLessThanEquals": {"s3:max-keys": "10"}}, {"s3:max-keys": 10}, Outcome.ALLOW),
    ({"NumericLessThan": {"s3:max-keys": "10"}}, {"s3:max-keys": "10"}, Outcome.IMPLICIT_DENY),
    ({"NumericGreaterThan": {"s3:max-keys": 5}}, {"s3:max-keys": "6.5"}, Outcome.ALLOW),
    ({"NumericNotEquals": {"s3:max-keys": "5"}}, {"s3:max-keys": "5"}, Outcome.IMPLICIT_DENY),
    ({"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}},
     {"aws:CurrentTime": "2025-12-31T23:59:59Z"}, Outcome.ALLOW),
    ({"DateGreaterThanEquals": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}},
     {"aws:CurrentTime": "1767225600"}, Outcome.ALLOW),
    ({"DateEquals": {"aws:CurrentTime": "2026-01-01T00:00:00+00:00"}},
     {"aws:CurrentTime": "2026-01-01T01:00:00+01:00"}, Outcome.ALLOW),
])
def test_bool_null_numeric_and_date_operators(condition: dict[str, Any], context: dict[str, Any],
                                              expected: Outcome) -> None:
    assert decide(allow(Condition=condition), context) is expected


@pytest.mark.parametrize("operator", ["IpAddress", "BinaryEquals", "StringMatches", "ForSomeValues:StringEquals",
                                      "NullIfExists"])
def test_unsupported_operator_raises_instead_of_allowing(operator: str) -> None:
    with pytest.raises(UnsupportedError, match=r"not supported|unknown set prefix|Null takes"):
        decide(allow(Condition={operator: {"aws:SourceIp": "10.0.0.0/8"}}), {"aws:SourceIp": "10.1.2.3"})


def test_unsupported_operator_in_a_deny_statement_also_raises() -> None:
    with pytest.raises(UnsupportedError, match="IpAddress"):
        decide(deny(Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}))


# ---------------------------------------------------------------------------------------------------------
# Policy variables


def test_principal_tag_variable_is_substituted_in_resource_and_condition() -> None:
    statement = allow("sagemaker:PutRecord", "arn:aws:sagemaker:*:*:feature-group/${aws:PrincipalTag/team}-*",
                      Condition={"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}})
    own = {"aws:PrincipalTag/team": "search", "aws:ResourceTag/team": "search"}
    fg = f"arn:aws:sagemaker:eu-west-1:{ACCOUNT_A}:feature-group/search-clicks"
    assert decide(statement, own, action="sagemaker:PutRecord", resource=fg) is Outcome.ALLOW
    other = {"aws:PrincipalTag/team": "search", "aws:ResourceTag/team": "reviews"}
    assert decide(statement, other, action="sagemaker:PutRecord", resource=fg) is Outcome.IMPLICIT_DENY


def test_missing_policy_variable_makes_the_element_false() -> None:
    statement = allow(Condition={"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}})
    assert decide(statement, {"aws:ResourceTag/team": ""}) is Outcome.IMPLICIT_DENY
    assert decide(allow(resource="arn:aws:s3:::data-bucket/${aws:PrincipalTag/team}/*")) is Outcome.IMPLICIT_DENY


def test_variable_default_is_used_when_the_key_is_missing() -> None:
    statement = allow(resource="arn:aws:s3:::data-bucket/${aws:PrincipalTag/team, 'prefix'}/*")
    assert decide(statement) is Outcome.ALLOW


def test_escape_variables_are_literal_even_in_string_like() -> None:
    statement = allow(Condition={"StringLike": {"s3:prefix": "a${*}b${?}c${$}"}})
    assert decide(statement, {"s3:prefix": "a*b?c$"}) is Outcome.ALLOW
    assert decide(statement, {"s3:prefix": "axxbyc$"}) is Outcome.IMPLICIT_DENY


def test_variables_are_plain_text_in_2008_version_policies() -> None:
    statement = allow(resource="arn:aws:s3:::data-bucket/${aws:username}/*")
    request = Request(f"arn:aws:iam::{ACCOUNT_A}:user/alice", "s3:GetObject",
                      "arn:aws:s3:::data-bucket/alice/x", resource_account=ACCOUNT_A)
    assert evaluate(request, [policy(statement)]).outcome is Outcome.ALLOW
    assert evaluate(request, [policy(statement, version="2008-10-17")]).outcome is Outcome.IMPLICIT_DENY


def test_principal_account_and_userid_variables_come_from_the_request() -> None:
    statement = allow(resource="arn:aws:s3:::data-bucket/${aws:PrincipalAccount}/${aws:userid}/*")
    obj = f"arn:aws:s3:::data-bucket/{ACCOUNT_A}/AROAEXAMPLE:job-42/x"
    assert decide(statement, {"aws:userid": "AROAEXAMPLE:job-42"}, resource=obj, principal=SESSION_A) \
        is Outcome.ALLOW


def test_variable_is_not_a_wildcard_even_if_its_value_contains_one() -> None:
    statement = allow(resource="arn:aws:s3:::data-bucket/${aws:PrincipalTag/team}/*")
    assert decide(statement, {"aws:PrincipalTag/team": "*"}, resource="arn:aws:s3:::data-bucket/x/y") \
        is Outcome.IMPLICIT_DENY


# ---------------------------------------------------------------------------------------------------------
# Principals, accounts, trust


def test_cross_account_access_needs_both_identity_and_resource_policy() -> None:
    request = Request(ROLE_B, "s3:GetObject", BUCKET_OBJ)
    identity = [policy(allow())]
    bucket = policy(allow(Principal={"AWS": ROLE_B}))
    assert is_allowed_cross_account(request, identity, bucket, ACCOUNT_A)
    assert not is_allowed_cross_account(request, identity, None, ACCOUNT_A)
    assert not is_allowed_cross_account(request, [], bucket, ACCOUNT_A)
    reason = evaluate(request, [], bucket, resource_account=ACCOUNT_A).reason
    assert "identity policy" in reason and ACCOUNT_B in reason


def test_same_account_access_needs_either_side() -> None:
    request = Request(ROLE_A, "s3:GetObject", BUCKET_OBJ)
    bucket = policy(allow(Principal={"AWS": ROLE_A}))
    assert is_allowed_cross_account(request, [policy(allow())], None, ACCOUNT_A)
    assert is_allowed_cross_account(request, [], bucket, ACCOUNT_A)
    assert not is_allowed_cross_account(request, [], None, ACCOUNT_A)


@pytest.mark.parametrize("root", [ACCOUNT_A, f"arn:aws:iam::{ACCOUNT_A}:root"])
def test_resource_policy_naming_the_account_delegates_to_identity_policies(root: str) -> None:
    request = Request(ROLE_A, "s3:GetObject", BUCKET_OBJ, resource_account=ACCOUNT_A)
    bucket = policy(allow(Principal={"AWS": root}))
    key_policy_mode = {"require_resource_allow": True}
    assert evaluate(request, [], bucket, **key_policy_mode).outcome is Outcome.IMPLICIT_DENY
    assert evaluate(request, [policy(allow())], bucket, **key_policy_mode).outcome is Outcome.ALLOW
    assert evaluate(request, [], bucket).outcome is Outcome.IMPLICIT_DENY


def test_role_arn_in_a_resource_policy_matches_the_roles_sessions_but_not_other_roles() -> None:
    bucket = policy(allow(Principal={"AWS": ROLE_A}))
    session = Request(SESSION_A, "s3:GetObject", BUCKET_OBJ, resource_account=ACCOUNT_A)
    other = Request(f"arn:aws:iam::{ACCOUNT_A}:role/Other", "s3:GetObject", BUCKET_OBJ,
                    resource_account=ACCOUNT_A)
    assert evaluate(session, [], bucket).outcome is Outcome.ALLOW
    assert evaluate(other, [], bucket).outcome is Outcome.IMPLICIT_DENY


def test_principal_arn_of_a_session_is_its_role() -> None:
    statement = allow(Condition={"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT_A}:role/Producer"}})
    assert decide(statement, principal=SESSION_A) is Outcome.ALLOW


def test_service_principal_is_judged_by_the_resource_policy_alone() -> None:
    trust = policy({"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                    "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_A}}})
    assert evaluate_assume_role("sagemaker.amazonaws.com", ROLE_A, trust,
                                context={"aws:SourceAccount": ACCOUNT_A}).allowed
    assert not evaluate_assume_role("sagemaker.amazonaws.com", ROLE_A, trust,
                                    context={"aws:SourceAccount": ACCOUNT_B}).allowed
    assert not evaluate_assume_role("athena.amazonaws.com", ROLE_A, trust,
                                    context={"aws:SourceAccount": ACCOUNT_A}).allowed


def test_trust_policy_must_allow_even_for_a_same_account_principal_with_identity_allow() -> None:
    trust = policy({"Effect": "Allow", "Principal": {"AWS": ROLE_B}, "Action": "sts:AssumeRole"})
    identity = [policy(allow("sts:AssumeRole"))]
    caller = f"arn:aws:iam::{ACCOUNT_A}:role/Caller"
    assert not evaluate_assume_role(caller, ROLE_A, trust, identity_policies=identity).allowed


def test_assume_role_with_session_tags_also_needs_tag_session() -> None:
    trust = policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT_B}, "Action": "sts:AssumeRole"})
    identity = [policy(allow(["sts:AssumeRole", "sts:TagSession"]))]
    assert evaluate_assume_role(ROLE_B, ROLE_A, trust, identity_policies=identity).allowed
    refused = evaluate_assume_role(ROLE_B, ROLE_A, trust, identity_policies=identity,
                                   session_tags={"team": "search"})
    assert refused.outcome is Outcome.IMPLICIT_DENY and refused.action == "sts:TagSession"


def test_assume_role_with_source_identity_also_needs_set_source_identity() -> None:
    trust = policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT_B}, "Action": "sts:AssumeRole"})
    identity = [policy(allow(["sts:*"]))]
    refused = evaluate_assume_role(ROLE_B, ROLE_A, trust, identity_policies=identity, source_identity="alice")
    assert refused.action == "sts:SetSourceIdentity" and not refused.allowed


def test_external_id_must_match_when_the_trust_policy_requires_it() -> None:
    trust = policy({"Effect": "Allow", "Principal": {"AWS": ACCOUNT_B}, "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"sts:ExternalId": "ext-1"}}})
    identity = [policy(allow("sts:AssumeRole"))]
    assert evaluate_assume_role(ROLE_B, ROLE_A, trust, identity_policies=identity, external_id="ext-1").allowed
    assert not evaluate_assume_role(ROLE_B, ROLE_A, trust, identity_policies=identity, external_id="x").allowed
    assert not evaluate_assume_role(ROLE_B, ROLE_A, trust, identity_policies=identity).allowed


def test_statement_ids_of_every_allowing_statement_are_reported() -> None:
    request = Request(ROLE_A, "s3:GetObject", BUCKET_OBJ, resource_account=ACCOUNT_A)
    decision = evaluate(request, [("mine", policy(allow(Sid="A"), allow(), allow("s3:PutObject", Sid="C")))])
    assert [str(m) for m in decision.allows] == ["mine:A", "mine:#1"]


def test_request_context_of_the_caller_is_not_modified() -> None:
    context = {"aws:RequestTag/team": "search"}
    Request(ROLE_A, "s3:GetObject", BUCKET_OBJ, context).condition_context()
    assert context == {"aws:RequestTag/team": "search"}


def test_resource_policy_statement_without_principal_is_rejected() -> None:
    request = Request(ROLE_A, "s3:GetObject", BUCKET_OBJ, resource_account=ACCOUNT_A)
    with pytest.raises(ValidationError, match="needs Principal"):
        evaluate(request, [], policy(allow()))


def test_not_principal_is_refused_rather_than_misread() -> None:
    request = Request(ROLE_A, "s3:GetObject", BUCKET_OBJ, resource_account=ACCOUNT_A)
    with pytest.raises(UnsupportedError, match="NotPrincipal"):
        evaluate(request, [], policy(deny(NotPrincipal={"AWS": ROLE_A})))


def test_policy_problems_names_each_structural_problem() -> None:
    bad = {"Version": "2008-10-17", "Statement": [
        {"Sid": "a-b", "Effect": "allow", "Action": "s3:GetObject"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Principal": "*", "Condition":
         {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
    ]}
    problems = policy_problems(bad, kind="identity")
    assert any("Version" in p for p in problems)
    assert any("Sid 'a-b'" in p for p in problems)
    assert any("Effect" in p for p in problems)
    assert any("Resource" in p for p in problems)
    assert any("cannot have a Principal" in p for p in problems)
    assert any("IpAddress" in p for p in problems)
    assert policy_problems(policy(allow()), kind="identity") == []

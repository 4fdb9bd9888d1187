"""A small IAM policy decision engine for the subset of IAM that featureshare's policies use.

One evaluator serves two callers: the bootstrap proofs (table-driven tests over the rendered ``iam/``
templates) and the embedded AWS, which enforces trust, bucket, Glue and key policies with it.

What it implements:

- ``Effect`` Allow/Deny, explicit deny wins; ``Action``/``NotAction`` (case-insensitive, ``*``/``?``
  wildcards); ``Resource``/``NotResource`` (case-sensitive wildcards, policy variables); a statement without
  ``Resource`` (trust policies) applies to any resource.
- ``Principal`` in resource policies: ``"*"``, ``{"AWS": account id | account root ARN | role ARN | user ARN |
  assumed-role session ARN | "*"}`` and ``{"Service": ...}``. A role ARN matches the role itself and every
  session of it. Naming an account (id or root ARN) *delegates* to that account: it grants nothing by itself,
  the principal's identity policy must allow as well.
- Condition operators String*, StringEqualsIgnoreCase, Arn* (component-wise, as IAM does), Bool, Null,
  Numeric*, Date* (ISO 8601 or epoch seconds), the ``IfExists`` suffix and the ``ForAnyValue:`` /
  ``ForAllValues:`` set prefixes. Several values of one key are OR-ed, several keys and operators AND-ed.
  Condition key names are case-insensitive, values case-sensitive.
- Policy variables (``Version`` 2012-10-17 only) in ``Resource`` and condition values: ``${aws:PrincipalTag/x}``,
  ``${aws:username}``, any context key, ``${key, 'default'}``, and the escapes ``${*}`` ``${?}`` ``${$}``
  (which stay literal even in ``StringLike``).
- Decision rules: same account -> an allow in either the identity or the resource policy suffices (unless
  ``require_resource_allow``, used for role trust and KMS key policies); different accounts -> both sides must
  allow. Service principals are judged by the resource policy alone.

Limits (by design, documented so nobody relies on them): no SCPs, RCPs, permission boundaries, session
policies, ACLs, ``NotPrincipal``, ``Federated``/``CanonicalUser`` principals, IP/Binary operators, or
service-specific implicit context; the caller supplies every condition key (``aws:PrincipalArn`` and
``aws:PrincipalAccount`` are filled in from the principal when absent). A missing policy variable makes the
element it appears in evaluate false. An unknown operator raises :class:`UnsupportedError` -- never a silent
allow. A plain (non-set) operator applied to a multivalued key matches if any value matches.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from featureshare.errors import UnsupportedError, ValidationError

__all__ = [
    "Decision",
    "Outcome",
    "Principal",
    "Request",
    "StatementMatch",
    "evaluate",
    "evaluate_assume_role",
    "is_allowed_cross_account",
    "policy_problems",
]

logger = logging.getLogger(__name__)

PolicyInput = Mapping[str, Any] | tuple[str, Mapping[str, Any]]

_VERSION_WITH_VARIABLES = "2012-10-17"
_VAR_RE = re.compile(r"\$\{([^}]*)\}")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_ARN_ACCOUNT_RE = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:(\d{12}):")


class Outcome(StrEnum):
    """The three results of an IAM evaluation."""

    ALLOW = "Allow"
    DENY = "Deny"
    IMPLICIT_DENY = "ImplicitDeny"


@dataclass(frozen=True)
class StatementMatch:
    """One statement that applied to a request: which policy, its Sid (or index) and its effect."""

    policy: str
    sid: str
    effect: str

    def __str__(self) -> str:
        return f"{self.policy}:{self.sid}"


@dataclass(frozen=True)
class Decision:
    """The result of :func:`evaluate`; ``allows``/``denies`` name the statements that applied."""

    outcome: Outcome
    action: str
    resource: str
    principal: str
    allows: tuple[StatementMatch, ...] = ()
    denies: tuple[StatementMatch, ...] = ()
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW

    def explain(self) -> str:
        """One line for humans: outcome, principal, action, resource and why."""
        return f"{self.outcome.value}: {self.principal} {self.action} on {self.resource}: {self.reason}"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an IAM user/role, an assumed-role session, an account root, or an AWS service."""

    arn: str
    account: str
    kind: str  # "aws" or "service"
    role_name: str = ""
    user_name: str = ""

    @classmethod
    def parse(cls, text: str, account: str = "") -> Principal:
        """Parse ``arn:aws:sts::111122223333:assumed-role/Role/session``, a role/user ARN or a service name.

        Assumed-role sessions lose the role path (STS drops it from the session ARN), so a policy naming
        ``role/path/Role`` matches a session of ``Role`` by account and name.
        """
        if not text.startswith("arn:"):
            if "." not in text:
                raise ValidationError(f"principal {text!r} is neither an ARN nor a service name",
                                      field="principal_arn", value=text)
            return cls(arn=text, account="", kind="service")
        parts = text.split(":", 5)
        if len(parts) != 6:
            raise ValidationError(f"principal {text!r} is not a valid ARN", field="principal_arn", value=text)
        arn_account = parts[4]
        resource = parts[5]
        role_name = user_name = ""
        if parts[2] == "sts" and resource.startswith("assumed-role/"):
            role_name = resource.split("/")[1]
        elif parts[2] == "iam" and resource.startswith("role/"):
            role_name = resource.rsplit("/", 1)[-1]
        elif parts[2] == "iam" and resource.startswith("user/"):
            user_name = resource.rsplit("/", 1)[-1]
        return cls(arn=text, account=account or arn_account, kind="aws", role_name=role_name,
                   user_name=user_name)

    @property
    def partition(self) -> str:
        return self.arn.split(":")[1] if self.arn.startswith("arn:") else "aws"

    @property
    def is_session(self) -> bool:
        return ":assumed-role/" in self.arn

    @property
    def principal_arn(self) -> str:
        """``aws:PrincipalArn``: the role ARN for an assumed-role session, otherwise the ARN itself."""
        if self.is_session:
            return f"arn:{self.partition}:iam::{self.account}:role/{self.role_name}"
        return self.arn


@dataclass(frozen=True)
class Request:
    """One authorization question: may ``principal_arn`` do ``action`` on ``resource`` given ``context``?

    ``context`` maps condition keys (``aws:PrincipalTag/team``, ``aws:RequestTag/team``, ``aws:TagKeys``,
    ``aws:SourceAccount``, ``aws:SecureTransport``, ``kms:ViaService``, ``s3:x-amz-acl``, ``s3:prefix``, ...)
    to a string, bool, number or list of strings (multivalued keys). ``principal_account`` defaults to the
    principal ARN's account; ``resource_account`` to the resource ARN's account (S3 ARNs have none: pass it).
    The caller's mapping is copied, never modified.
    """

    principal_arn: str
    action: str
    resource: str = "*"
    context: Mapping[str, Any] = field(default_factory=dict)
    principal_account: str = ""
    resource_account: str = ""

    @property
    def principal(self) -> Principal:
        return Principal.parse(self.principal_arn, self.principal_account)

    def effective_resource_account(self) -> str:
        if self.resource_account:
            return self.resource_account
        match = _ARN_ACCOUNT_RE.match(self.resource)
        return match.group(1) if match else ""

    def condition_context(self) -> dict[str, str | tuple[str, ...]]:
        """The context with lower-cased keys and string values, plus keys derived from the principal."""
        principal = self.principal
        ctx: dict[str, str | tuple[str, ...]] = {}
        if principal.kind == "aws":
            ctx["aws:principalarn"] = principal.principal_arn
            ctx["aws:principalaccount"] = principal.account
            if principal.user_name:
                ctx["aws:username"] = principal.user_name
        for key, value in self.context.items():
            ctx[key.lower()] = _normalise_value(key, value)
        return ctx


def _normalise_value(key: str, value: Any) -> str | tuple[str, ...]:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, Iterable):
        return tuple(_normalise_value(key, item) for item in value)  # type: ignore[misc]
    raise ValidationError(f"context value for {key!r} must be a string, bool, number or list, got {value!r}",
                          field=key, value=value)


# ---------------------------------------------------------------------------------------------------------
# Patterns and policy variables


def _glob_to_regex(text: str, wildcards: bool) -> str:
    if not wildcards:
        return re.escape(text)
    return "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text)


def _resolve_variable(body: str, ctx: Mapping[str, str | tuple[str, ...]]) -> str | None:
    if body in ("*", "?", "$"):
        return body
    key, _, default = body.partition(",")
    value = ctx.get(key.strip().lower())
    if isinstance(value, str):
        return value
    default = default.strip()
    if len(default) >= 2 and default[0] == default[-1] == "'":
        return default[1:-1]
    return None  # missing, or multivalued: IAM cannot substitute either


def _compile(text: str, ctx: Mapping[str, str | tuple[str, ...]] | None, *, wildcards: bool,
             ignore_case: bool = False) -> re.Pattern[str] | None:
    """A full-match regex for a policy string; None when it uses a policy variable that is missing.

    ``ctx`` None means variables are not substituted (policy Version 2008-10-17): ``${...}`` is literal.
    """
    if ctx is None or "${" not in text:
        return _compile_plain(text, wildcards, ignore_case)
    parts: list[str] = []
    pos = 0
    if ctx is not None:
        for match in _VAR_RE.finditer(text):
            parts.append(_glob_to_regex(text[pos:match.start()], wildcards))
            value = _resolve_variable(match.group(1), ctx)
            if value is None:
                return None
            parts.append(re.escape(value))
            pos = match.end()
    parts.append(_glob_to_regex(text[pos:], wildcards))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@functools.lru_cache(maxsize=4096)
def _compile_plain(text: str, wildcards: bool, ignore_case: bool) -> re.Pattern[str]:
    """Patterns without policy variables depend on nothing but their text: compile each once."""
    return re.compile(_glob_to_regex(text, wildcards), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _glob_match(pattern: str, value: str, ctx: Mapping[str, str | tuple[str, ...]] | None, *,
                wildcards: bool = True, ignore_case: bool = False) -> bool:
    compiled = _compile(pattern, ctx, wildcards=wildcards, ignore_case=ignore_case)
    return compiled is not None and compiled.fullmatch(value) is not None


def _arn_match(pattern: str, value: str, ctx: Mapping[str, str | tuple[str, ...]] | None) -> bool:
    """IAM's Arn* semantics: the six colon-separated components are matched one by one, with wildcards."""
    pattern_parts = pattern.split(":", 5)
    value_parts = value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    return all(_glob_match(p, v, ctx) for p, v in zip(pattern_parts, value_parts, strict=True))


# ---------------------------------------------------------------------------------------------------------
# Condition operators


def _parse_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not a number", value=text) from None


def _parse_date(text: str) -> dt.datetime:
    try:
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return dt.datetime.fromtimestamp(float(text), tz=dt.UTC)
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{text!r} is not an ISO 8601 date or epoch seconds", value=text) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


Matcher = Callable[[str, str, Mapping[str, str | tuple[str, ...]] | None], bool]


def _numeric(compare: Callable[[float, float], bool]) -> Matcher:
    return lambda policy, request, ctx: compare(_parse_number(request), _parse_number(policy))


def _date(compare: Callable[[dt.datetime, dt.datetime], bool]) -> Matcher:
    return lambda policy, request, ctx: compare(_parse_date(request), _parse_date(policy))


def _string_equals(policy: str, request: str, ctx: Mapping[str, str | tuple[str, ...]] | None) -> bool:
    return _glob_match(policy, request, ctx, wildcards=False)


def _string_equals_ic(policy: str, request: str, ctx: Mapping[str, str | tuple[str, ...]] | None) -> bool:
    return _glob_match(policy, request, ctx, wildcards=False, ignore_case=True)


def _string_like(policy: str, request: str, ctx: Mapping[str, str | tuple[str, ...]] | None) -> bool:
    return _glob_match(policy, request, ctx, wildcards=True)


def _bool_equals(policy: str, request: str, ctx: Mapping[str, str | tuple[str, ...]] | None) -> bool:
    return policy.lower() == request.lower()


# operator -> (matcher, negated)
_OPERATORS: dict[str, tuple[Matcher, bool]] = {
    "stringequals": (_string_equals, False),
    "stringnotequals": (_string_equals, True),
    "stringequalsignorecase": (_string_equals_ic, False),
    "stringnotequalsignorecase": (_string_equals_ic, True),
    "stringlike": (_string_like, False),
    "stringnotlike": (_string_like, True),
    "arnequals": (_arn_match, False),
    "arnlike": (_arn_match, False),
    "arnnotequals": (_arn_match, True),
    "arnnotlike": (_arn_match, True),
    "bool": (_bool_equals, False),
    "numericequals": (_numeric(lambda a, b: a == b), False),
    "numericnotequals": (_numeric(lambda a, b: a == b), True),
    "numericlessthan": (_numeric(lambda a, b: a < b), False),
    "numericlessthanequals": (_numeric(lambda a, b: a <= b), False),
    "numericgreaterthan": (_numeric(lambda a, b: a > b), False),
    "numericgreaterthanequals": (_numeric(lambda a, b: a >= b), False),
    "dateequals": (_date(lambda a, b: a == b), False),
    "datenotequals": (_date(lambda a, b: a == b), True),
    "datelessthan": (_date(lambda a, b: a < b), False),
    "datelessthanequals": (_date(lambda a, b: a <= b), False),
    "dategreaterthan": (_date(lambda a, b: a > b), False),
    "dategreaterthanequals": (_date(lambda a, b: a >= b), False),
}


def _as_strings(values: Any) -> list[str]:
    items = values if isinstance(values, list) else [values]
    return ["true" if v is True else "false" if v is False else str(v) for v in items]


def _parse_operator(name: str) -> tuple[str, str, bool]:
    """Split ``ForAllValues:StringLikeIfExists`` into (set prefix, base operator, if_exists)."""
    prefix, sep, base = name.partition(":")
    if not sep:
        prefix, base = "", name
    prefix = prefix.lower()
    if prefix not in ("", "foranyvalue", "forallvalues"):
        raise UnsupportedError(f"condition operator {name!r}: unknown set prefix {prefix!r}")
    if_exists = base.lower().endswith("ifexists") and base.lower() != "ifexists"
    if if_exists:
        base = base[: -len("IfExists")]
    base = base.lower()
    if base != "null" and base not in _OPERATORS:
        raise UnsupportedError(
            f"condition operator {name!r} is not supported by featureshare.iampolicy",
            hint="supported: String*, Arn*, Bool, Null, Numeric*, Date*, with IfExists/ForAnyValue/ForAllValues",
        )
    if base == "null" and (if_exists or prefix):
        raise UnsupportedError(f"condition operator {name!r}: Null takes no IfExists or set prefix")
    return prefix, base, if_exists


def _condition_holds(operator: str, key: str, policy_values: Any,
                     ctx: Mapping[str, str | tuple[str, ...]], variables: bool) -> bool:
    prefix, base, if_exists = _parse_operator(operator)
    raw = ctx.get(key.lower())
    present = raw is not None and raw != ()
    wanted = _as_strings(policy_values)
    if base == "null":
        return all((v.lower() == "true") != present for v in wanted)
    if raw is None:
        # Missing key: IfExists and ForAllValues pass vacuously; negated operators pass (nothing equals).
        return if_exists or prefix == "forallvalues" or (prefix == "" and _OPERATORS[base][1])
    request_values = list(raw) if isinstance(raw, tuple) else [raw]
    matcher, negated = _OPERATORS[base]
    var_ctx = ctx if variables else None

    def one(value: str) -> bool:
        hit = any(matcher(p, value, var_ctx) for p in wanted)
        return not hit if negated else hit

    if prefix == "forallvalues":
        return all(one(v) for v in request_values)
    if prefix == "foranyvalue" or not negated:
        return any(one(v) for v in request_values)
    return all(one(v) for v in request_values)


def _conditions_hold(condition: Any, ctx: Mapping[str, str | tuple[str, ...]], variables: bool) -> bool:
    if condition is None:
        return True
    if not isinstance(condition, Mapping):
        raise ValidationError(f"Condition must be an object, got {condition!r}", field="Condition", value=condition)
    for operator, body in condition.items():
        if not isinstance(body, Mapping):
            raise ValidationError(f"Condition operator {operator!r} must map keys to values",
                                  field="Condition", value=body)
        for key, values in body.items():
            if not _condition_holds(operator, key, values, ctx, variables):
                return False
    return True


# ---------------------------------------------------------------------------------------------------------
# Statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    if not isinstance(document, Mapping) or "Statement" not in document:
        raise ValidationError(f"policy {name!r} has no Statement", field=name, value=document)
    statements = _as_list(document["Statement"])
    for i, statement in enumerate(statements):
        if not isinstance(statement, Mapping) or statement.get("Effect") not in ("Allow", "Deny"):
            raise ValidationError(f"policy {name!r} statement {i}: Effect must be 'Allow' or 'Deny'",
                                  field=f"{name}.Statement[{i}]", value=statement)
    return statements


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(_glob_match(p, action, None, ignore_case=True) for p in _as_list(statement["Action"]))
    if "NotAction" in statement:
        return not any(_glob_match(p, action, None, ignore_case=True) for p in _as_list(statement["NotAction"]))
    raise ValidationError("statement has neither Action nor NotAction", field="Action", value=statement)


def _resource_matches(statement: Mapping[str, Any], resource: str,
                      ctx: Mapping[str, str | tuple[str, ...]] | None) -> bool:
    if "Resource" in statement:
        return any(_glob_match(p, resource, ctx) for p in _as_list(statement["Resource"]))
    if "NotResource" in statement:
        return not any(_glob_match(p, resource, ctx) for p in _as_list(statement["NotResource"]))
    return True  # trust policies: the role itself is the resource


def _principal_match(spec: Any, principal: Principal) -> str | None:
    """How a Principal element matches: "direct", "account" (delegation to the account), or None."""
    if spec == "*":
        return "direct"
    if not isinstance(spec, Mapping):
        raise ValidationError(f"Principal must be '*' or an object, got {spec!r}", field="Principal", value=spec)
    best: str | None = None
    for kind, values in spec.items():
        if kind not in ("AWS", "Service"):
            raise UnsupportedError(f"Principal type {kind!r} is not supported by featureshare.iampolicy")
        for value in _as_list(values):
            how = _match_one_principal(kind, str(value), principal)
            if how == "direct":
                return how
            best = best or how
    return best


def _match_one_principal(kind: str, value: str, principal: Principal) -> str | None:
    if kind == "Service":
        return "direct" if principal.kind == "service" and value == principal.arn else None
    if principal.kind != "aws":
        return None
    if value == "*":
        return "direct"
    if _ACCOUNT_RE.match(value) or re.fullmatch(r"arn:[^:]+:iam::\d{12}:root", value):
        account = value if _ACCOUNT_RE.match(value) else value.split(":")[4]
        return "account" if account == principal.account else None
    if value == principal.arn:
        return "direct"
    parts = value.split(":", 5)
    if len(parts) == 6 and parts[2] == "iam" and parts[5].startswith("role/") and principal.role_name:
        same_role = parts[4] == principal.account and parts[5].rsplit("/", 1)[-1] == principal.role_name
        if same_role and (principal.is_session or value == principal.arn):
            return "direct"
    return None


@dataclass(frozen=True)
class _Applied:
    match: StatementMatch
    delegated: bool


def _applied_statements(document: Mapping[str, Any], name: str, request: Request,
                        ctx: Mapping[str, str | tuple[str, ...]], *, resource_policy: bool) -> list[_Applied]:
    variables = document.get("Version") == _VERSION_WITH_VARIABLES
    var_ctx = ctx if variables else None
    principal = request.principal
    applied: list[_Applied] = []
    for index, statement in enumerate(_statements(document, name)):
        delegated = False
        if resource_policy:
            if "NotPrincipal" in statement:
                raise UnsupportedError(f"policy {name!r}: NotPrincipal is not supported")
            if "Principal" not in statement:
                raise ValidationError(f"policy {name!r} statement {index}: a resource policy needs Principal",
                                      field=f"{name}.Statement[{index}]", value=statement)
            how = _principal_match(statement["Principal"], principal)
            if how is None:
                continue
            delegated = how == "account"
        if not _action_matches(statement, request.action):
            continue
        if not _resource_matches(statement, request.resource, var_ctx):
            continue
        if not _conditions_hold(statement.get("Condition"), ctx, variables):
            continue
        sid = str(statement.get("Sid") or f"#{index}")
        applied.append(_Applied(StatementMatch(name, sid, statement["Effect"]), delegated))
    return applied


def _named(policies: Sequence[PolicyInput]) -> list[tuple[str, Mapping[str, Any]]]:
    named: list[tuple[str, Mapping[str, Any]]] = []
    for i, policy in enumerate(policies):
        if isinstance(policy, tuple):
            named.append(policy)
        else:
            named.append((f"identity[{i}]", policy))
    return named


# ---------------------------------------------------------------------------------------------------------
# Decisions


def evaluate(
    request: Request,
    identity_policies: Sequence[PolicyInput] = (),
    resource_policy: PolicyInput | None = None,
    *,
    resource_account: str | None = None,
    require_resource_allow: bool = False,
) -> Decision:
    """Decide ``request`` against the principal's identity policies and the resource's policy.

    Policies are dicts or ``(name, dict)`` pairs; names appear in the decision's statement matches.
    ``resource_account`` overrides the account derived from the request; when neither names one (S3 ARNs carry
    no account) the resource is taken to be in the principal's account. ``require_resource_allow`` makes the
    resource policy mandatory even in the same account (role trust policies, KMS key policies); a statement
    that names the account root then delegates to the identity policy, as with KMS's "Enable IAM policies".

    >>> policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
    ...           "Resource": "arn:aws:s3:::b/${aws:PrincipalTag/team}/*"}]}
    >>> evaluate(Request("arn:aws:iam::111122223333:role/r", "s3:GetObject", "arn:aws:s3:::b/search/x",
    ...                  {"aws:PrincipalTag/team": "search"}), [policy]).outcome
    <Outcome.ALLOW: 'Allow'>
    """
    principal = request.principal
    ctx = request.condition_context()
    identity = [] if principal.kind == "service" else _named(identity_policies)
    applied_identity = [a for name, doc in identity
                        for a in _applied_statements(doc, name, request, ctx, resource_policy=False)]
    applied_resource: list[_Applied] = []
    if resource_policy is not None:
        name, doc = resource_policy if isinstance(resource_policy, tuple) else ("resource", resource_policy)
        applied_resource = _applied_statements(doc, name, request, ctx, resource_policy=True)

    def decision(outcome: Outcome, reason: str) -> Decision:
        return Decision(outcome, request.action, request.resource, principal.arn,
                        allows=tuple(a.match for a in applied_identity + applied_resource if a.match.effect == "Allow"),
                        denies=tuple(a.match for a in applied_identity + applied_resource if a.match.effect == "Deny"),
                        reason=reason)

    denies = [a.match for a in applied_identity + applied_resource if a.match.effect == "Deny"]
    if denies:
        return decision(Outcome.DENY, "explicitly denied by " + ", ".join(map(str, denies)))
    identity_allows = any(a.match.effect == "Allow" for a in applied_identity)
    direct = any(a.match.effect == "Allow" and not a.delegated for a in applied_resource)
    delegated = any(a.match.effect == "Allow" and a.delegated for a in applied_resource)
    owner = resource_account or request.effective_resource_account() or principal.account
    if principal.kind == "service":
        allowed, why = direct, "no resource policy statement allows the service"
    elif principal.account != owner:
        allowed = identity_allows and (direct or delegated)
        why = ("cross-account: " + ("the identity policy" if not identity_allows else "the resource policy")
               + f" of account {principal.account if not identity_allows else owner} does not allow it")
    elif require_resource_allow:
        allowed = direct or (delegated and identity_allows)
        why = "the resource policy does not allow it" if not (direct or delegated) else \
            "the resource policy delegates to the account, but no identity policy allows it"
    else:
        allowed = identity_allows or direct
        why = "no statement allows it"
    if allowed:
        return decision(Outcome.ALLOW, "allowed by " + ", ".join(
            str(a.match) for a in applied_identity + applied_resource if a.match.effect == "Allow"))
    return decision(Outcome.IMPLICIT_DENY, why)


def is_allowed_cross_account(
    request: Request,
    identity_policies: Sequence[PolicyInput],
    resource_policy: PolicyInput | None,
    resource_account: str,
) -> bool:
    """True when the request is allowed given the resource's owning account.

    Different accounts: both the identity policy and the resource policy must allow. Same account: either
    side suffices (a resource policy naming only the account root delegates to the identity side).
    """
    return evaluate(request, identity_policies, resource_policy, resource_account=resource_account).allowed


def evaluate_assume_role(
    principal_arn: str,
    role_arn: str,
    trust_policy: Mapping[str, Any],
    *,
    identity_policies: Sequence[PolicyInput] = (),
    session_tags: Mapping[str, str] | None = None,
    source_identity: str | None = None,
    external_id: str | None = None,
    context: Mapping[str, Any] | None = None,
) -> Decision:
    """Decide an ``sts:AssumeRole`` call, with ``sts:TagSession`` when tags are passed and
    ``sts:SetSourceIdentity`` when a source identity is set; every one of them must be allowed.

    The request context carries ``aws:RequestTag/<k>``, ``aws:TagKeys``, ``sts:ExternalId`` and
    ``sts:SourceIdentity`` plus ``context`` (e.g. ``aws:PrincipalTag/team`` of the caller, or
    ``aws:SourceAccount`` for a service). Returns the first decision that is not ALLOW, else an ALLOW that
    lists every statement used. Limits: transitive tags and role-chaining session duration are not checked.
    """
    ctx: dict[str, Any] = dict(context or {})
    actions = ["sts:AssumeRole"]
    if session_tags:
        actions.append("sts:TagSession")
        for key, value in session_tags.items():
            ctx[f"aws:RequestTag/{key}"] = value
        ctx["aws:TagKeys"] = list(session_tags)
    if source_identity is not None:
        actions.append("sts:SetSourceIdentity")
        ctx["sts:SourceIdentity"] = source_identity
    if external_id is not None:
        ctx["sts:ExternalId"] = external_id
    role_account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    allows: list[StatementMatch] = []
    for action in actions:
        request = Request(principal_arn, action, role_arn, ctx, resource_account=role_account)
        decision = evaluate(request, identity_policies, ("trust", trust_policy), require_resource_allow=True)
        if not decision.allowed:
            logger.debug("assume role refused: %s", decision.explain())
            return decision
        allows.extend(decision.allows)
    return Decision(Outcome.ALLOW, "+".join(actions), role_arn, principal_arn, allows=tuple(allows),
                    reason="allowed by " + ", ".join(map(str, allows)))


# ---------------------------------------------------------------------------------------------------------
# Shape checks


_STATEMENT_KEYS = {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource",
                   "NotResource", "Condition"}


def policy_problems(document: Any, *, kind: str) -> list[str]:
    """Every structural problem of a policy document; ``kind`` is identity, resource, trust or key.

    Checks: Version 2012-10-17, a non-empty Statement, known statement keys, Effect, exactly one of
    Action/NotAction with non-empty string values, Resource present except in trust policies, Principal
    present exactly in resource/trust/key policies, unique Sids of letters and digits, supported condition
    operators with string/bool/number (or list) values.
    """
    problems: list[str] = []
    if not isinstance(document, Mapping):
        return [f"document must be an object, got {type(document).__name__}"]
    if document.get("Version") != _VERSION_WITH_VARIABLES:
        problems.append(f"Version must be {_VERSION_WITH_VARIABLES!r}")
    statements = document.get("Statement")
    if not isinstance(statements, list) or not statements:
        return [*problems, "Statement must be a non-empty list"]
    sids: set[str] = set()
    for i, statement in enumerate(statements):
        problems.extend(f"Statement[{i}]: {p}" for p in _statement_problems(statement, kind, sids))
    return problems


def _statement_problems(statement: Any, kind: str, sids: set[str]) -> list[str]:
    if not isinstance(statement, Mapping):
        return ["must be an object"]
    problems = [f"unknown key {k!r}" for k in statement if k not in _STATEMENT_KEYS]
    sid = statement.get("Sid")
    if sid is not None:
        if not isinstance(sid, str) or not re.fullmatch(r"[A-Za-z0-9]+", sid):
            problems.append(f"Sid {sid!r} must be letters and digits")
        elif sid in sids:
            problems.append(f"duplicate Sid {sid!r}")
        else:
            sids.add(sid)
    if statement.get("Effect") not in ("Allow", "Deny"):
        problems.append("Effect must be 'Allow' or 'Deny'")
    if ("Action" in statement) == ("NotAction" in statement):
        problems.append("needs exactly one of Action/NotAction")
    for key in ("Action", "NotAction", "Resource", "NotResource"):
        if key in statement:
            values = _as_list(statement[key])
            if not values or not all(isinstance(v, str) and v for v in values):
                problems.append(f"{key} must be a non-empty string or list of strings")
    if kind != "trust" and "Resource" not in statement and "NotResource" not in statement:
        problems.append("needs Resource or NotResource")
    wants_principal = kind in ("resource", "trust", "key")
    if wants_principal != ("Principal" in statement):
        problems.append("needs a Principal" if wants_principal else "an identity policy cannot have a Principal")
    condition = statement.get("Condition", {})
    if not isinstance(condition, Mapping):
        return [*problems, "Condition must be an object"]
    for operator, body in condition.items():
        try:
            _parse_operator(operator)
        except UnsupportedError as exc:
            problems.append(str(exc))
        if not isinstance(body, Mapping) or not body:
            problems.append(f"Condition {operator!r} must be a non-empty object")
            continue
        for key, values in body.items():
            if not all(isinstance(v, str | bool | int | float) for v in _as_list(values)) or values == []:
                problems.append(f"Condition {operator} {key}: values must be strings, bools or numbers")
    return problems

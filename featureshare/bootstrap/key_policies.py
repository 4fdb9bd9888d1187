"""Policies of KMS keys bootstrap does not own: do they grant what the rendered documents require?

Bootstrap writes the whole policy of a key it creates (:class:`~featureshare.bootstrap.resources.KmsKeyPolicy`)
and never rewrites the policy of a key it did not create: every consumer ``kms_key`` (its training bucket key),
and ``central.kms_key`` or a ``replica_kms_key`` given as a key ARN. Their rendered documents
(``training-key-policy[name]``, ``offline-key-policy``, ``replica-key-policy[name]``) still say what those
policies must grant -- e.g. the central access role may ``kms:GenerateDataKey`` through S3 on a consumer's key,
without which a ``central-role`` training-set build fails with AccessDenied.

:func:`check_key` reads such a policy (``kms:GetKeyPolicy``, policy ``default``) and decides, with
:mod:`featureshare.iampolicy`, whether each Allow statement of the rendered documents is granted. A statement
becomes probe requests -- each of its principals (an account root narrowed by ``aws:PrincipalArn`` stands for
the ARNs it names) times each of its actions, with condition values it names -- judged against the key policy
together with the identity policies bootstrap renders for that principal (any identity policy for a principal
it writes none for, such as an account root). So a policy that grants the same thing in other words counts, and
so does delegation to the principal's account where the rendered identity policy allows the action. Statements
without ``Action`` or a ``Principal`` of AWS or Service type must be present verbatim.

A key whose policy lacks grants becomes an :class:`ActionNeeded` naming what is refused and the statements to
add; a policy that cannot be read (AccessDenied) or evaluated is "cannot verify", with every statement. With
``merge_key_policies`` bootstrap merges the missing statements instead (:class:`MergedKeyPolicy`: by Sid, every
other statement untouched) and records their Sids in the key tag ``featureshare-merged-statements``, so that
``destroy`` removes exactly those statements and never the key.

Example::

    check = check_key(key, session)
    if check.state is not KeyPolicyState.GRANTED:
        print(check.action_needed().render())
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from featureshare.bootstrap.resources import Resource, Unowned, canonical
from featureshare.bootstrap.statements import merge_statements, remove_statements, statements_of
from featureshare.bootstrap.templates import DocumentKind, PolicyDocument
from featureshare.errors import UnsupportedError, ValidationError, error_code, from_client_error
from featureshare.iampolicy import Decision, Request, evaluate
from featureshare.session import AccountSession

__all__ = [
    "MERGED_TAG",
    "ActionNeeded",
    "ForeignKey",
    "KeyPolicyCheck",
    "KeyPolicyState",
    "MergedKeyPolicy",
    "check_key",
    "foreign_keys",
    "missing_statements",
    "read_key_policy",
]

#: Key tag listing (space-separated) the Sids bootstrap merged into the policy of a key it does not own.
MERGED_TAG = "featureshare-merged-statements"
_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
_ABSENT = frozenset({"NotFoundException", "KMSInvalidStateException"})
# The identity side of a probe whose principal has no rendered identity policy (an account root, say).
_ANY_IDENTITY = ("any-identity-policy", {"Version": "2012-10-17",
                                         "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})

Statement = dict[str, Any]
#: Rendered identity policies by the principal (role ARN) they are attached to, as ``(name, document)`` pairs.
Identities = Mapping[str, tuple[tuple[str, dict[str, Any]], ...]]


class KeyPolicyState(StrEnum):
    GRANTED = "granted"
    MISSING = "missing"
    UNVERIFIED = "cannot verify"


@dataclass(frozen=True)
class ForeignKey:
    """A key bootstrap does not own and the rendered key policy documents its policy must satisfy."""

    key_arn: str
    #: the session (``"central"`` or a consumer name) of the key's account; ``None`` when bootstrap has none
    account: str | None
    documents: tuple[PolicyDocument, ...]
    #: the identity policies bootstrap renders for the principals the documents name
    identities: Identities = field(default_factory=dict)

    @property
    def account_id(self) -> str:
        return self.key_arn.split(":")[4]

    @property
    def address(self) -> str:
        return f"{self.account or self.account_id}:kms-key-policy:{self.key_arn}"

    @property
    def statements(self) -> tuple[Statement, ...]:
        """The Allow statements of its documents, the first of each Sid."""
        by_sid: dict[str, Statement] = {}
        for document in self.documents:
            for statement in document.document["Statement"]:
                if statement.get("Effect") == "Allow":
                    by_sid.setdefault(statement["Sid"], statement)
        return tuple(by_sid.values())


def foreign_keys(documents: Iterable[PolicyDocument], *, owned: Collection[str],
                 accounts: Mapping[str, str]) -> list[ForeignKey]:
    """The keys of the KEY documents not named in ``owned``, one per key ARN, in document order, with the
    IDENTITY documents by principal.

    ``accounts`` maps account ids to session names. Every statement needs a Sid, and documents constraining one
    key must agree on what each Sid says (checking and merging go by Sid); raises ValidationError otherwise.
    """
    documents = list(documents)
    identities: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {}
    for document in documents:
        if document.kind is DocumentKind.IDENTITY:
            for arn in document.attached_to:
                identities[arn] = (*identities.get(arn, ()), (document.name, document.document))
    found: dict[str, list[PolicyDocument]] = {}
    for document in documents:
        if document.kind is not DocumentKind.KEY or document.name in owned:
            continue
        unnamed = [i for i, s in enumerate(document.document["Statement"]) if not s.get("Sid")]
        if unnamed:
            raise ValidationError(f"{document.name}: statements {unnamed} have no Sid; bootstrap merges key policy "
                                  "statements by Sid", field="Sid", value=document.name)
        for key_arn in document.attached_to:
            found.setdefault(key_arn, []).append(document)
    for key_arn, docs in found.items():
        _one_statement_per_sid(key_arn, docs)
    return [ForeignKey(arn, accounts.get(arn.split(":")[4]), tuple(docs), identities) for arn, docs in found.items()]


def _one_statement_per_sid(key_arn: str, documents: Sequence[PolicyDocument]) -> None:
    """Statements are checked and merged by Sid, so documents constraining one key must agree on what each Sid
    says (two consumers of different accounts sharing a key do not: each wants its own root to administer it)."""
    first: dict[str, tuple[str, Any]] = {}
    for document in documents:
        for statement in document.document["Statement"]:
            name, seen = first.setdefault(statement["Sid"], (document.name, canonical(statement)))
            if seen != canonical(statement):
                raise ValidationError(
                    f"{name} and {document.name} both constrain the policy of {key_arn} with different statements "
                    f"of Sid {statement['Sid']!r}; bootstrap checks and merges key policy statements by Sid",
                    field="Sid", value=statement["Sid"], hint="give those consumers keys of their own")


# ---------------------------------------------------------------------------------------------------------
# Deciding with the evaluator (pure)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def _root_account(value: str) -> str | None:
    if value.isdigit() and len(value) == 12:
        return value
    parts = value.split(":")
    return parts[4] if len(parts) == 6 and parts[2] == "iam" and parts[5] == "root" else None


def _probe_principals(statement: Mapping[str, Any], key_arn: str) -> list[str] | None:
    """Who must be allowed: role/user ARNs, service names, account roots (or the ARNs that narrow them)."""
    spec = statement.get("Principal")
    if not isinstance(spec, Mapping):
        return None
    narrowed = [str(arn) for operator, body in (statement.get("Condition") or {}).items()
                if operator.lower().startswith(("arnequals", "arnlike")) for key, values in body.items()
                if key.lower() == "aws:principalarn" for arn in _as_list(values)]
    partition = key_arn.split(":")[1]
    principals: list[str] = []
    for kind, values in spec.items():
        if kind not in ("AWS", "Service"):
            return None
        for value in map(str, _as_list(values)):
            account = _root_account(value) if kind == "AWS" else None
            if account is None:
                principals.append(value)
            else:
                inside = [arn for arn in narrowed if arn.count(":") >= 5 and arn.split(":")[4] == account]
                principals.extend(inside or [f"arn:{partition}:iam::{account}:root"])
    return principals


def _probe_context(statement: Mapping[str, Any], principal_account: str) -> dict[str, Any]:
    """Values that satisfy the statement's own conditions (absent keys satisfy negated and IfExists ones)."""
    context: dict[str, Any] = {}
    for operator, body in (statement.get("Condition") or {}).items():
        name = operator.lower()
        base = name.rsplit(":", 1)[-1]
        for key, values in body.items():
            options = [_text(v) for v in _as_list(values)]
            if key.lower() == "aws:principalarn" or "not" in base or base.endswith("ifexists"):
                continue
            if base == "null":
                if "false" in (o.lower() for o in options):
                    context[key] = "present"
                continue
            plain = [o for o in options if "*" not in o and "?" not in o]
            value = principal_account if principal_account in options else \
                (plain[0] if plain else options[0].replace("*", "x").replace("?", "x"))
            context[key] = [value] if name.startswith("for") else value
    return context


def _probes(statement: Mapping[str, Any], key_arn: str) -> list[Request] | None:
    principals = _probe_principals(statement, key_arn)
    if principals is None or "Action" not in statement:
        return None
    return [Request(principal, str(action), key_arn,
                    _probe_context(statement, principal.split(":")[4] if principal.startswith("arn:") else ""))
            for principal in principals for action in _as_list(statement["Action"])]


def _describe(request: Request, decision: Decision) -> str:
    where = ", ".join(f"{k}={v}" for k, v in request.context.items())
    return f"{request.principal_arn} may not {request.action}{f' ({where})' if where else ''}: {decision.reason}"


def missing_statements(policy: Mapping[str, Any], statements: Sequence[Statement], key_arn: str,
                       identities: Identities | None = None) -> list[tuple[Statement, tuple[str, ...]]]:
    """Each statement ``policy`` does not grant, with why (one line per refused probe); ``identities`` are the
    identity policies of the principals (any identity policy for a principal not in it).

    Raises UnsupportedError / ValidationError when the policy uses what :mod:`featureshare.iampolicy` cannot
    evaluate.

    >>> root = {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
    ...         "Action": "kms:*", "Resource": "*"}
    >>> policy = {"Version": "2012-10-17", "Statement": [root]}
    >>> central = {"Sid": "Central", "Effect": "Allow", "Resource": "*", "Action": "kms:Decrypt",
    ...            "Principal": {"AWS": "arn:aws:iam::111111111111:role/FeatureShareAccess"}}
    >>> [s["Sid"] for s, _ in missing_statements(policy, [root, central],
    ...                                             "arn:aws:kms:us-east-1:222222222222:key/k")]
    ['Central']
    """
    missing: list[tuple[Statement, tuple[str, ...]]] = []
    present = [canonical(s) for s in statements_of(policy)]
    for statement in statements:
        requests = _probes(statement, key_arn)
        if requests is None:
            if canonical(statement) not in present:
                missing.append((statement, ("the key policy has no statement equal to it",)))
            continue
        refused = []
        for request in requests:
            identity = (identities or {}).get(request.principal_arn) or (_ANY_IDENTITY,)
            decision = evaluate(request, identity, ("key-policy", policy), require_resource_allow=True)
            if not decision.allowed:
                refused.append(_describe(request, decision))
        if refused:
            missing.append((statement, tuple(refused)))
    return missing


# ---------------------------------------------------------------------------------------------------------
# Checking a key


@dataclass(frozen=True)
class ActionNeeded:
    """A key policy bootstrap does not write that lacks (or may lack) grants: what, and the statements to add."""

    address: str
    key_arn: str
    documents: tuple[str, ...]
    state: KeyPolicyState
    problems: tuple[str, ...]
    statements: tuple[Statement, ...]

    def render(self) -> str:
        what = "grants missing" if self.state is KeyPolicyState.MISSING else self.state.value
        lines = [f"! {self.address} ({', '.join(self.documents)}): {what}",
                 *(f"      {problem}" for problem in self.problems),
                 "      add to the Statement list of the key policy:"]
        lines += [f"      {line}" for line in json.dumps(list(self.statements), indent=2).splitlines()]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "key_arn": self.key_arn, "documents": list(self.documents),
                "state": self.state.value, "problems": list(self.problems), "statements": list(self.statements)}


@dataclass(frozen=True)
class KeyPolicyCheck:
    """What :func:`check_key` found: the policy as read, and the statements missing from it (all of them when
    it could not be verified)."""

    key: ForeignKey
    state: KeyPolicyState
    policy: dict[str, Any] | None = None
    problems: tuple[str, ...] = ()
    statements: tuple[Statement, ...] = ()

    @property
    def mergeable(self) -> bool:
        """Whether merging the missing statements grants everything (not when an explicit Deny refuses it)."""
        if self.state is not KeyPolicyState.MISSING or self.policy is None:
            return False
        merged = merge_statements(self.policy, self.statements)
        return not missing_statements(merged, self.key.statements, self.key.key_arn, self.key.identities)

    def action_needed(self) -> ActionNeeded:
        return ActionNeeded(self.key.address, self.key.key_arn, tuple(d.name for d in self.key.documents),
                            self.state, self.problems, self.statements)


def read_key_policy(session: AccountSession, key_arn: str) -> dict[str, Any]:
    """The parsed ``default`` policy of ``key_arn`` (botocore errors propagate)."""
    return json.loads(session.client("kms").get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"])


def check_key(key: ForeignKey, session: AccountSession | None) -> KeyPolicyCheck:
    """Read ``key``'s policy with ``session`` (of the key's account) and decide which statements it lacks.

    Refused reads (AccessDenied), policies the evaluator cannot judge and keys in an account without a session
    are "cannot verify"; a key that does not exist raises NotFoundError.
    """
    every = key.statements
    if session is None:
        return KeyPolicyCheck(key, KeyPolicyState.UNVERIFIED, problems=(
            f"bootstrap has no credentials for account {key.account_id}, which owns the key",), statements=every)
    try:
        policy = read_key_policy(session, key.key_arn)
    except ClientError as exc:
        if error_code(exc) in _DENIED:
            message = exc.response.get("Error", {}).get("Message", "")
            return KeyPolicyCheck(key, KeyPolicyState.UNVERIFIED, problems=(
                f"kms:GetKeyPolicy was refused ({error_code(exc)}: {message})",), statements=every)
        raise from_client_error(exc, action="kms:GetKeyPolicy", resource=key.key_arn) from exc
    try:
        missing = missing_statements(policy, every, key.key_arn, key.identities)
    except (UnsupportedError, ValidationError) as exc:
        return KeyPolicyCheck(key, KeyPolicyState.UNVERIFIED, policy, (
            f"featureshare's policy evaluator cannot judge this key policy: {exc}",), every)
    if not missing:
        return KeyPolicyCheck(key, KeyPolicyState.GRANTED, policy)
    return KeyPolicyCheck(key, KeyPolicyState.MISSING, policy,
                          tuple(problem for _, problems in missing for problem in problems),
                          tuple(statement for statement, _ in missing))


# ---------------------------------------------------------------------------------------------------------
# Merging


@dataclass
class MergedKeyPolicy(Resource):
    """``statements`` merged by Sid into the ``default`` policy of the key ``name`` (a key ARN bootstrap does
    not own); every other statement is left as it is and the key is never deleted.

    Each write re-reads the policy first, so it never replaces a policy it could not read. The merged Sids are
    recorded in the key tag :data:`MERGED_TAG`; ``delete`` removes exactly those statements and the tag.
    ``read`` returns ``None`` when the key is gone or its policy cannot be read.
    """

    statements: tuple[Statement, ...] = ()
    unowned: Unowned = field(default=Unowned.CONFIGURE, kw_only=True)
    _policy: dict[str, Any] | None = field(default=None, init=False, repr=False)
    _recorded: tuple[str, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        self.kind = "kms-key-policy"

    def desired(self) -> dict[str, Any]:
        return {"policy": canonical(merge_statements(self._policy or {}, self.statements))}

    def read(self, session: AccountSession) -> dict[str, Any] | None:
        try:
            self._policy = read_key_policy(session, self.name)
            self._recorded = _recorded_sids(session, self.name)
        except ClientError as exc:
            if error_code(exc) in _DENIED | _ABSENT:
                return None
            raise
        return {"policy": canonical(self._policy)}

    def create(self, session: AccountSession) -> None:
        self.update(session, {})

    def update(self, session: AccountSession, current: dict[str, Any]) -> None:
        kms = session.client("kms")
        policy = merge_statements(read_key_policy(session, self.name), self.statements)
        kms.put_key_policy(KeyId=self.name, PolicyName="default", Policy=json.dumps(policy))
        recorded = sorted({*_recorded_sids(session, self.name), *(s["Sid"] for s in self.statements)})
        kms.tag_resource(KeyId=self.name, Tags=[{"TagKey": MERGED_TAG, "TagValue": " ".join(recorded)}])

    def delete(self, session: AccountSession) -> None:
        kms = session.client("kms")
        policy = read_key_policy(session, self.name)
        kept = remove_statements(policy, _recorded_sids(session, self.name))
        if kept["Statement"] and kept != policy:
            kms.put_key_policy(KeyId=self.name, PolicyName="default", Policy=json.dumps(kept))
        kms.untag_resource(KeyId=self.name, TagKeys=[MERGED_TAG])

    def managed(self, current: dict[str, Any]) -> bool:
        """Whether bootstrap merged statements into this policy (its tag says which)."""
        return bool(self._recorded)


def _recorded_sids(session: AccountSession, key_arn: str) -> tuple[str, ...]:
    tags = session.client("kms").list_resource_tags(KeyId=key_arn).get("Tags", [])
    return tuple(next((t["TagValue"] for t in tags if t["TagKey"] == MERGED_TAG), "").split())

"""Render the ``iam/`` policy templates, and assemble every policy document a Topology needs.

Templates are JSON documents with ``{{placeholder}}`` markers. Rendering is *structural*: the JSON is parsed
and walked, and placeholders are replaced inside string values only, so IAM's own policy variables such as
``${aws:PrincipalTag/team}`` pass through untouched (``string.Template`` would eat them).

Rules of a placeholder value:

- a ``str`` replaces the marker wherever it appears inside a string;
- a list of strings is allowed only where a string is exactly ``"{{name}}"``; inside a JSON list it is
  spliced into that list, elsewhere the string becomes the list;
- ``None`` means "not configured": a dict entry whose value is exactly ``"{{name}}"`` is dropped, and a dict
  or list left empty by such drops is dropped from its parent in turn (so an unset ``external_id`` removes
  the whole ``StringEquals`` block that held it, and nothing else);
- every placeholder a template uses must be given (possibly ``None``), and no other value may be given.

Every document produced by :func:`policy_documents` is checked with
:func:`featureshare.iampolicy.policy_problems`, so a template that renders into a broken policy fails here,
not in AWS.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import botocore.session
from botocore.exceptions import UnknownRegionError

from featureshare.config import ConsumerAccount, Topology
from featureshare.errors import ConfigError, ValidationError
from featureshare.iampolicy import policy_problems

__all__ = [
    "CENTRAL_SCRATCH_DATABASE",
    "CENTRAL_STAGING_PREFIX",
    "DEFAULT_ALLOWED_TAG_KEYS",
    "DEFAULT_OFFLINE_STORE_ROLE_NAME",
    "DEFAULT_REPLICATION_ROLE_NAME",
    "TEMPLATE_DIR",
    "DocumentKind",
    "PolicyDocument",
    "central_workgroup_name",
    "load_template",
    "offline_store_role_arn",
    "placeholders",
    "policy_documents",
    "render",
    "render_template",
    "replica_key_owner",
    "replication_role_arn",
    "result_prefixes",
    "template_names",
]

logger = logging.getLogger(__name__)

def _template_dir() -> Path:
    """``iam/`` of a source checkout, else the copy a wheel installs under ``<prefix>/share/featureshare/iam``."""
    checkout = Path(__file__).resolve().parents[2] / "iam"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "featureshare" / "iam"


TEMPLATE_DIR = _template_dir()
DEFAULT_OFFLINE_STORE_ROLE_NAME = "featureshare-offline-store"
#: The central role S3 assumes to replicate the offline store into consumers' replica buckets.
DEFAULT_REPLICATION_ROLE_NAME = "featureshare-offline-replication"
# Tag keys a producer may set on a central feature group; "team" is mandatory, "shared" opens reads to all.
DEFAULT_ALLOWED_TAG_KEYS = ("team", "shared", "owner", "description", "data-classification")
ATHENA_RESULTS_PREFIX = "athena-results"
# strategy="central-role": where the central role reads staged entity keys and writes the central part of a
# combined set in a consumer's training bucket, and the central-account Glue database of its temporary tables.
# The same literals are in featureshare.training.staging and in iam/central-access-role-permissions.json and
# iam/consumer-training-bucket-policy.json (fixed names, so no placeholders; tests assert they agree).
CENTRAL_STAGING_PREFIX = "_featureshare_staging/central"
CENTRAL_SCRATCH_DATABASE = "featureshare_scratch"

_PLACEHOLDER_RE = re.compile(r"\{\{\s*([a-z][a-z0-9_]*)\s*\}\}")
_DROPPED = object()  # sentinel: this node disappears from its parent

Value = str | Sequence[str] | None


class DocumentKind(StrEnum):
    """What a document is attached as."""

    TRUST = "trust"  # a role's trust policy
    IDENTITY = "identity"  # an inline/managed policy attached to a role
    RESOURCE = "resource"  # a bucket policy or Glue catalog resource policy
    KEY = "key"  # a KMS key policy


@dataclass(frozen=True)
class PolicyDocument:
    """One rendered document and where it goes."""

    name: str  # unique within a set, e.g. "consumer-execution-role-policy[search]"
    templates: tuple[str, ...]  # template files it was rendered from
    account: str  # the account it lives in
    kind: DocumentKind
    attached_to: tuple[str, ...]  # role, bucket, key or catalog ARNs
    document: dict[str, Any]
    consumer: str | None = None  # the consumer name for per-consumer documents

    def to_json(self) -> str:
        return json.dumps(self.document, indent=2, sort_keys=False)

    @property
    def size(self) -> int:
        """Characters as IAM counts them against its quotas (whitespace outside strings excluded)."""
        return len(json.dumps(self.document, separators=(",", ":")))


# ---------------------------------------------------------------------------------------------------------
# Templates


def _template_path(name: str, template_dir: Path | None) -> Path:
    file = name if name.endswith(".json") else f"{name}.json"
    if "/" in file or "\\" in file:
        raise ValidationError(f"template name {name!r} must be a bare file name", field="template", value=name)
    return (template_dir or TEMPLATE_DIR) / file


def template_names(template_dir: Path | None = None) -> list[str]:
    """Names (without ``.json``) of every template in the directory."""
    return sorted(p.stem for p in (template_dir or TEMPLATE_DIR).glob("*.json"))


def load_template(name: str, template_dir: Path | None = None) -> dict[str, Any]:
    """The parsed template (a fresh copy each call), placeholders still in place."""
    path = _template_path(name, template_dir)
    if not path.is_file():
        known = ", ".join(template_names(template_dir)) or "none"
        raise ValidationError(f"no IAM template {path.name!r} in {path.parent}; known: {known}",
                              field="template", value=name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError(f"IAM template {path.name} is not valid JSON: {exc}", field="template",
                              value=name) from exc


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, Mapping):
        return [s for key, value in node.items() for s in (*_strings(key), *_strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def placeholders(name: str, template_dir: Path | None = None) -> set[str]:
    """Every placeholder the template uses."""
    return _placeholders_of(load_template(name, template_dir))


def _placeholders_of(template: Any) -> set[str]:
    return {m.group(1) for text in _strings(template) for m in _PLACEHOLDER_RE.finditer(text)}


def render(template_name: str, /, *, template_dir: Path | None = None, **values: Value) -> dict[str, Any]:
    """Render a template file with ``values``; see the module docstring for the value rules.

    >>> doc = render("offline-store-role-trust", partition="aws", region="eu-west-1",
    ...              central_account="111122223333")
    >>> doc["Statement"][0]["Condition"]["StringEquals"]
    {'aws:SourceAccount': '111122223333'}
    """
    return render_template(load_template(template_name, template_dir), values, name=f"{template_name}")


def render_template(template: Mapping[str, Any], values: Mapping[str, Value], *, name: str = "template"
                    ) -> dict[str, Any]:
    """Render an already-loaded template (pure: neither argument is modified)."""
    used = _placeholders_of(template)
    missing = sorted(used - set(values))
    unknown = sorted(set(values) - used)
    problems = [f"{name}: missing value for placeholder {{{{{p}}}}}" for p in missing]
    problems += [f"{name}: unknown placeholder {p!r} (the template uses: {', '.join(sorted(used))})"
                 for p in unknown]
    for key, value in values.items():
        problem = _value_problem(value)
        if problem:
            problems.append(f"{name}: placeholder {{{{{key}}}}} {problem}")
    if problems:
        raise ValidationError("; ".join(problems), field=(missing or unknown or [name])[0], value=name,
                              problems=problems)
    rendered = _render_node(template, values, name)
    if rendered is _DROPPED or not isinstance(rendered, dict):
        raise ValidationError(f"{name}: rendering removed the whole document", field=name, value=name)
    return rendered


def _value_problem(value: Value) -> str | None:
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return "got an empty list (pass None to drop it)" if len(value) == 0 else None
    return f"must be a string, a list of strings or None, got {value!r}"


def _render_node(node: Any, values: Mapping[str, Value], name: str) -> Any:
    if isinstance(node, str):
        return _render_string(node, values, name)
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        dropped = False
        for key, child in node.items():
            rendered = _render_node(child, values, name)
            if rendered is _DROPPED:
                dropped = True
            else:
                out[key] = rendered
        return _DROPPED if dropped and not out else out
    if isinstance(node, list):
        items: list[Any] = []
        dropped = False
        for child in node:
            rendered = _render_node(child, values, name)
            if rendered is _DROPPED:
                dropped = True
            elif isinstance(child, str) and isinstance(rendered, list):
                items.extend(rendered)  # a list placeholder is spliced into the enclosing list
            else:
                items.append(rendered)
        return _DROPPED if dropped and not items else items
    return node


def _render_string(text: str, values: Mapping[str, Value], name: str) -> Any:
    whole = _PLACEHOLDER_RE.fullmatch(text)
    if whole:
        value = values[whole.group(1)]
        if value is None:
            return _DROPPED
        return value if isinstance(value, str) else list(value)

    def substitute(match: re.Match[str]) -> str:
        value = values[match.group(1)]
        if not isinstance(value, str):
            raise ValidationError(
                f"{name}: placeholder {{{{{match.group(1)}}}}} is embedded in {text!r} and needs a string, "
                f"got {value!r}", field=match.group(1), value=value)
        return value

    return _PLACEHOLDER_RE.sub(substitute, text)


# ---------------------------------------------------------------------------------------------------------
# The documents of a Topology


@functools.lru_cache(maxsize=32)
def partition_of(region: str) -> str:
    """The ARN partition of ``region`` from botocore's endpoint data (``aws``, ``aws-cn``, ``aws-us-gov``, ...);
    ``aws`` for a region botocore does not know yet."""
    try:
        return str(botocore.session.get_session().get_partition_for_region(region))
    except UnknownRegionError:
        return "aws"


def offline_store_role_arn(topology: Topology) -> str:
    """The configured offline store role, else ``role/featureshare-offline-store`` in the central account."""
    central = topology.central
    if central.offline_store_role_arn:
        return central.offline_store_role_arn
    return f"arn:{partition_of(topology.region)}:iam::{central.account_id}:role/{DEFAULT_OFFLINE_STORE_ROLE_NAME}"


def replication_role_arn(topology: Topology) -> str:
    """``role/featureshare-offline-replication`` in the central account (one role for every replica rule)."""
    central = topology.central.account_id
    return f"arn:{partition_of(topology.region)}:iam::{central}:role/{DEFAULT_REPLICATION_ROLE_NAME}"


def replica_key_owner(consumer: ConsumerAccount) -> str:
    """The ``resolved_keys`` entry of a consumer's replica key: ``"replica:<consumer name>"``."""
    return f"replica:{consumer.name}"


def result_prefixes(consumer: ConsumerAccount) -> tuple[str, ...]:
    """Key prefixes of a consumer's training bucket that the central access role may write results under (and
    read back): training sets, Athena results, and the central-role staging prefix (the staged entity keys it
    reads and the central part of a combined set it UNLOADs)."""
    return tuple(dict.fromkeys((consumer.training_prefix.strip("/"), ATHENA_RESULTS_PREFIX,
                                CENTRAL_STAGING_PREFIX)))


def central_workgroup_name(consumer: ConsumerAccount) -> str:
    """The Athena workgroup in the CENTRAL account that runs strategy="central-role" queries for ``consumer``
    (results in that consumer's bucket): ``<consumer workgroup>-<consumer account>``, unique per consumer.
    ``TrainingSet.build`` derives the same name from ``workgroup=`` and the consumer account."""
    return f"{consumer.athena_workgroup}-{consumer.account_id}"


def _key_arn(configured: str, owner: str, resolved: Mapping[str, str]) -> str:
    if owner in resolved:
        return resolved[owner]
    if re.fullmatch(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-fA-F-]+", configured or ""):
        return configured
    if owner == "central":
        what = "central.kms_key"
    elif owner.startswith("replica:"):
        what = f"consumers.{owner.removeprefix('replica:')}.replica_kms_key"
    else:
        what = f"consumers.{owner}.kms_key"
    raise ConfigError(
        f"{what} is {configured or 'not set'}: IAM policies need the key ARN, not an alias",
        hint=f"configure the key ARN, or pass resolved_keys={{{owner!r}: 'arn:aws:kms:...:key/...'}}",
    )


def _object_arn(partition: str, bucket: str, prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"arn:{partition}:s3:::{bucket}/{prefix}/*" if prefix else f"arn:{partition}:s3:::{bucket}/*"


def _list_prefixes(prefix: str) -> list[str]:
    prefix = prefix.strip("/")
    return [prefix, f"{prefix}/*"] if prefix else ["*"]


def _common_values(topology: Topology, resolved: Mapping[str, str]) -> dict[str, Value]:
    central = topology.central
    partition = partition_of(topology.region)
    return {
        "partition": partition,
        "region": topology.region,
        "central_account": central.account_id,
        "central_access_role_arn": central.access_role_arn,
        "offline_store_role_arn": offline_store_role_arn(topology),
        "offline_bucket": central.offline_bucket,
        "offline_object_arn": _object_arn(partition, central.offline_bucket, central.offline_prefix),
        "offline_list_prefixes": _list_prefixes(central.offline_prefix),
        "central_kms_key_arn": _key_arn(central.kms_key, "central", resolved),
        "consumer_account_roots": [f"arn:{partition}:iam::{c.account_id}:root" for c in topology.consumers],
        "consumer_accounts": [c.account_id for c in topology.consumers],
        "execution_role_arns": [arn for c in topology.consumers for arn in c.execution_role_arns],
    }


def _pick(values: Mapping[str, Value], template: str, template_dir: Path | None, **extra: Value
          ) -> dict[str, Any]:
    """Render ``template`` with exactly the placeholders it uses, from ``values`` and ``extra``."""
    wanted = placeholders(template, template_dir)
    merged = {**values, **extra}
    return render(template, template_dir=template_dir, **{k: merged[k] for k in wanted if k in merged})


def _sid_suffix(name: str, index: int) -> str:
    return "".join(ch for ch in name.title() if ch.isalnum()) or f"Consumer{index}"


def _central_documents(topology: Topology, values: Mapping[str, Value], allowed_tag_keys: Sequence[str],
                       template_dir: Path | None, bind_teams_in_trust: bool) -> list[PolicyDocument]:
    central = topology.central
    partition = str(values["partition"])
    store_role = str(values["offline_store_role_arn"])
    trust = _pick(values, "central-access-role-trust", template_dir, external_id=central.external_id)
    if bind_teams_in_trust:
        for index, consumer in enumerate(topology.consumers):
            team_trust = _pick(values, "central-access-role-trust-tag-session", template_dir,
                               sid_suffix=_sid_suffix(consumer.name, index),
                               consumer_account_root=f"arn:{partition}:iam::{consumer.account_id}:root",
                               execution_role_arns=list(consumer.execution_role_arns), team=consumer.team)
            trust["Statement"].extend(team_trust["Statement"])
    else:
        # One statement for all consumers: the session's team must equal the caller's own team tag, which the
        # consumer account's administrators control (see policy_documents).
        team_trust = _pick(values, "central-access-role-trust-tag-session", template_dir, sid_suffix="",
                           consumer_account_root=values["consumer_account_roots"], team=None)
        trust["Statement"].extend(team_trust["Statement"])
    result_arns = [_object_arn(partition, c.training_bucket, prefix)
                   for c in topology.consumers for prefix in result_prefixes(c)]
    workgroups = dict.fromkeys(central_workgroup_name(c) for c in topology.consumers)
    permissions = _pick(
        values, "central-access-role-permissions", template_dir,
        allowed_tag_keys=list(allowed_tag_keys),
        central_workgroup_arns=[f"arn:{partition}:athena:{topology.region}:{central.account_id}:workgroup/{w}"
                                for w in workgroups],
        located_bucket_arns=list(dict.fromkeys(
            [f"arn:{partition}:s3:::{central.offline_bucket}"]
            + [f"arn:{partition}:s3:::{c.training_bucket}" for c in topology.consumers])),
        consumer_result_object_arns=result_arns,
    )
    role = (central.access_role_arn,)
    docs = [
        PolicyDocument("central-access-role-trust", ("central-access-role-trust.json",
                                                     "central-access-role-trust-tag-session.json"),
                       central.account_id, DocumentKind.TRUST, role, trust),
        PolicyDocument("central-access-role-permissions", ("central-access-role-permissions.json",),
                       central.account_id, DocumentKind.IDENTITY, role, permissions),
        PolicyDocument("offline-store-role-trust", ("offline-store-role-trust.json",), central.account_id,
                       DocumentKind.TRUST, (store_role,), _pick(values, "offline-store-role-trust", template_dir)),
        PolicyDocument("offline-store-role-permissions", ("offline-store-role-permissions.json",),
                       central.account_id, DocumentKind.IDENTITY, (store_role,),
                       _pick(values, "offline-store-role-permissions", template_dir)),
        PolicyDocument("offline-bucket-policy", ("offline-bucket-policy.json",), central.account_id,
                       DocumentKind.RESOURCE, (f"arn:{partition}:s3:::{central.offline_bucket}",),
                       _pick(values, "offline-bucket-policy", template_dir)),
        PolicyDocument("offline-key-policy", ("offline-key-policy.json",), central.account_id, DocumentKind.KEY,
                       (str(values["central_kms_key_arn"]),), _pick(values, "offline-key-policy", template_dir)),
        PolicyDocument("glue-catalog-resource-policy", ("glue-catalog-resource-policy.json",),
                       central.account_id, DocumentKind.RESOURCE,
                       (f"arn:{partition}:glue:{topology.region}:{central.account_id}:catalog",),
                       _pick(values, "glue-catalog-resource-policy", template_dir)),
    ]
    return docs


def _consumer_documents(consumer: ConsumerAccount, values: Mapping[str, Value], resolved: Mapping[str, str],
                        template_dir: Path | None) -> list[PolicyDocument]:
    partition = str(values["partition"])
    extra: dict[str, Value] = {
        "consumer_account": consumer.account_id,
        "athena_workgroup": consumer.athena_workgroup,
        "central_catalog": consumer.central_catalog,
        "scratch_database": consumer.scratch_database,
        "training_bucket": consumer.training_bucket,
        "team": consumer.team,
        "execution_role_arns": list(consumer.execution_role_arns),
        "result_object_arns": [_object_arn(partition, consumer.training_bucket, p)
                               for p in result_prefixes(consumer)],
    }
    roles = consumer.execution_role_arns
    bucket_arn = f"arn:{partition}:s3:::{consumer.training_bucket}"
    name = consumer.name
    docs = [
        PolicyDocument(f"consumer-execution-role-policy[{name}]", ("consumer-execution-role-policy.json",),
                       consumer.account_id, DocumentKind.IDENTITY, roles,
                       _pick(values, "consumer-execution-role-policy", template_dir, **extra), consumer=name),
        PolicyDocument(f"consumer-training-bucket-policy[{name}]", ("consumer-training-bucket-policy.json",),
                       consumer.account_id, DocumentKind.RESOURCE, (bucket_arn,),
                       _pick(values, "consumer-training-bucket-policy", template_dir, **extra), consumer=name),
    ]
    if consumer.kms_key or name in resolved:
        key_arn = _key_arn(consumer.kms_key, name, resolved)
        docs.append(PolicyDocument(
            f"consumer-execution-role-training-key[{name}]", ("consumer-execution-role-training-key.json",),
            consumer.account_id, DocumentKind.IDENTITY, roles,
            _pick(values, "consumer-execution-role-training-key", template_dir, training_kms_key_arn=key_arn,
                  **extra), consumer=name))
        docs.append(PolicyDocument(
            f"training-key-policy[{name}]", ("training-key-policy.json",), consumer.account_id,
            DocumentKind.KEY, (key_arn,), _pick(values, "training-key-policy", template_dir, **extra),
            consumer=name))
    return docs


def _replication_documents(topology: Topology, values: Mapping[str, Value], resolved: Mapping[str, str],
                           template_dir: Path | None) -> list[PolicyDocument]:
    """The central replication role and, per replicating consumer, its replica bucket and key policies."""
    replicating = topology.replicating_consumers
    if not replicating:
        return []
    central = topology.central.account_id
    partition = str(values["partition"])
    role = replication_role_arn(topology)
    permissions = _pick(values, "offline-replication-role-permissions", template_dir)
    docs: list[PolicyDocument] = []
    for index, consumer in enumerate(replicating):
        key_arn = _key_arn(consumer.replica_kms_key, replica_key_owner(consumer), resolved)
        extra: dict[str, Value] = {
            "consumer_account": consumer.account_id,
            "replica_bucket": consumer.replica_bucket,
            "replica_object_arn": _object_arn(partition, consumer.replica_bucket, consumer.replica_prefix),
            "replica_kms_key_arn": key_arn,
            "replication_role_arn": role,
            "sid_suffix": _sid_suffix(consumer.name, index),
        }
        statements = _pick(values, "offline-replication-role-replica", template_dir, **extra)["Statement"]
        permissions["Statement"].extend(statements)
        name = consumer.name
        docs.append(PolicyDocument(
            f"replica-bucket-policy[{name}]", ("replica-bucket-policy.json",), consumer.account_id,
            DocumentKind.RESOURCE, (f"arn:{partition}:s3:::{consumer.replica_bucket}",),
            _pick(values, "replica-bucket-policy", template_dir, **extra), consumer=name))
        docs.append(PolicyDocument(
            f"replica-key-policy[{name}]", ("replica-key-policy.json",), consumer.account_id, DocumentKind.KEY,
            (key_arn,), _pick(values, "replica-key-policy", template_dir, **extra), consumer=name))
    return [
        PolicyDocument("offline-replication-role-trust", ("offline-replication-role-trust.json",), central,
                       DocumentKind.TRUST, (role,), _pick(values, "offline-replication-role-trust", template_dir)),
        PolicyDocument("offline-replication-role-permissions", ("offline-replication-role-permissions.json",
                                                                "offline-replication-role-replica.json"),
                       central, DocumentKind.IDENTITY, (role,), permissions),
        *docs,
    ]


def policy_documents(
    topology: Topology,
    *,
    resolved_keys: Mapping[str, str] | None = None,
    allowed_tag_keys: Sequence[str] = DEFAULT_ALLOWED_TAG_KEYS,
    bind_teams_in_trust: bool = True,
    template_dir: Path | None = None,
) -> dict[str, PolicyDocument]:
    """Every policy document of ``topology``, rendered and shape-checked, by document name.

    Central: the access role's trust (one TagSession statement per consumer binds its execution roles to its
    team) and permissions, the offline store role's trust and permissions, the offline bucket policy, the
    offline key policy and the Glue catalog resource policy; plus ``central-access-role-consumer-keys`` when a
    consumer has a CMK. Per consumer ``[name]``: the execution role policy and the training bucket policy;
    with a consumer CMK also ``consumer-execution-role-training-key`` and ``training-key-policy``.
    When consumers set ``replicate_offline_store``: ``offline-replication-role-trust`` and
    ``offline-replication-role-permissions`` (one role, statements per replicating consumer) in the central
    account, and ``replica-bucket-policy[name]`` and ``replica-key-policy[name]`` in each replicating consumer.

    ``bind_teams_in_trust`` (default) gives every consumer its own TagSession statement that also pins the
    caller's ``team`` principal tag to the consumer's configured team, so a consumer administrator who re-tags
    an execution role still cannot claim another team. It costs ~520 characters of trust policy per consumer
    (AWS quota: 2,048 by default, 4,096 at most); with False one statement checks only
    ``aws:RequestTag/team == ${aws:PrincipalTag/team}`` and the size stays flat. Check ``PolicyDocument.size``.

    ``resolved_keys`` maps ``"central"``, a consumer name, or ``"replica:<consumer name>"`` (its replica key) to
    a KMS key ARN, for keys configured as aliases or created by bootstrap (IAM resources must name key ARNs).
    Raises ConfigError when a key ARN is unknown.
    """
    if "team" not in allowed_tag_keys:
        raise ValidationError("allowed_tag_keys must include 'team'", field="allowed_tag_keys",
                              value=list(allowed_tag_keys))
    resolved = dict(resolved_keys or {})
    values = _common_values(topology, resolved)
    docs = _central_documents(topology, values, allowed_tag_keys, template_dir, bind_teams_in_trust)
    consumer_keys = [_key_arn(c.kms_key, c.name, resolved) for c in topology.consumers
                     if c.kms_key or c.name in resolved]
    if consumer_keys:
        docs.append(PolicyDocument(
            "central-access-role-consumer-keys", ("central-access-role-consumer-keys.json",),
            topology.central.account_id, DocumentKind.IDENTITY, (topology.central.access_role_arn,),
            _pick(values, "central-access-role-consumer-keys", template_dir, consumer_kms_key_arns=consumer_keys)))
    for consumer in topology.consumers:
        docs.extend(_consumer_documents(consumer, values, resolved, template_dir))
    docs.extend(_replication_documents(topology, values, resolved, template_dir))
    problems = [f"{d.name}: {p}" for d in docs for p in policy_problems(d.document, kind=d.kind.value)]
    if problems:
        raise ValidationError("rendered IAM policies are malformed: " + "; ".join(problems),
                              field="iam", problems=problems)
    logger.debug("rendered %d policy documents for %d consumers", len(docs), len(topology.consumers))
    return {d.name: d for d in docs}

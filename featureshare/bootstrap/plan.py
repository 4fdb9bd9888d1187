"""``bootstrap plan | apply | destroy``: the desired resources of a Topology, diffed against what exists.

``plan`` changes nothing; ``apply`` makes the accounts match and is idempotent (a second ``plan`` is empty);
``destroy`` removes only what bootstrap created (tagged ``managed-by=featureshare``), refusing non-empty
buckets unless ``force``.

Bootstrap takes over nothing it did not create: ``plan`` and ``apply`` raise ConfigError, before anything is
written, when a key alias bootstrap would create names another key, when a role, workgroup or data catalog of
the topology exists without the tag and differs from what bootstrap would make it, or when the offline bucket
replicates with a role other than bootstrap's (see :class:`~featureshare.bootstrap.resources.Unowned`). Once no
consumer replicates, ``apply`` removes bootstrap's replication rules, role and role policy. The policy of a bucket
bootstrap did not create and the Glue Data Catalog resource policy are shared: bootstrap merges its statements in
by Sid and ``destroy`` removes only them.

Keys bootstrap does not own (every consumer ``kms_key``; ``central.kms_key`` and ``replica_kms_key`` given as key
ARNs) keep their policies: ``plan`` and ``apply`` check them and list what they lack in ``Plan.actions_needed``
(see :mod:`featureshare.bootstrap.key_policies`), or, with ``merge_key_policies``, merge the missing statements
in as an update of that key policy; ``destroy`` then removes only the merged statements.

Example::

    boot = Bootstrap(topology, {"central": central_admin, "search": search_admin})
    for change in boot.plan().changes:
        print(change.render())
    boot.apply()
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from featureshare.bootstrap.key_policies import (
    ActionNeeded,
    ForeignKey,
    KeyPolicyCheck,
    KeyPolicyState,
    MergedKeyPolicy,
    check_key,
    foreign_keys,
)
from featureshare.bootstrap.replication import S3BucketReplication, replication_configuration
from featureshare.bootstrap.resources import (
    MANAGED_TAG,
    AthenaDataCatalog,
    AthenaWorkGroup,
    GlueDatabase,
    GlueResourcePolicy,
    IamRole,
    IamRolePolicy,
    KmsKey,
    KmsKeyPolicy,
    Resource,
    S3Bucket,
    S3BucketPolicy,
    Unowned,
)
from featureshare.bootstrap.templates import (
    CENTRAL_SCRATCH_DATABASE,
    DEFAULT_REPLICATION_ROLE_NAME,
    PolicyDocument,
    central_workgroup_name,
    offline_store_role_arn,
    partition_of,
    policy_documents,
    replica_key_owner,
)
from featureshare.config import ConsumerAccount, Topology, kms_alias
from featureshare.errors import ConfigError, from_client_error, translate_client_error
from featureshare.session import AccountSession

__all__ = ["DEFAULT_OFFLINE_KEY_ALIAS", "Action", "Bootstrap", "Change", "Plan"]

logger = logging.getLogger(__name__)

DEFAULT_OFFLINE_KEY_ALIAS = "alias/featureshare-offline"
UNKNOWN_KEY = "key/00000000-0000-0000-0000-000000000000"  # stands for a key ARN known only after apply


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    NOOP = "no-op"


@dataclass(frozen=True)
class Change:
    """One resource's planned (or applied) change."""

    action: Action
    address: str
    diff: tuple[str, ...] = ()

    def render(self) -> str:
        mark = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-", Action.NOOP: " "}[self.action]
        head = f"{mark} {self.action.value:7} {self.address}"
        return "\n".join([head, *(f"      {line}" for line in self.diff)])


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    #: policies of keys bootstrap does not own that lack grants (or could not be verified): for you to add
    actions_needed: tuple[ActionNeeded, ...] = ()

    @property
    def pending(self) -> tuple[Change, ...]:
        """The changes that would do something (everything but no-ops)."""
        return tuple(c for c in self.changes if c.action is not Action.NOOP)

    @property
    def empty(self) -> bool:
        return not self.pending

    def to_dict(self) -> dict[str, Any]:
        return {"changes": [{"action": c.action.value, "address": c.address, "diff": list(c.diff)}
                            for c in self.changes],
                "actions_needed": [a.to_dict() for a in self.actions_needed]}


def _diff(current: Mapping[str, Any] | None, desired: Mapping[str, Any] | None) -> tuple[str, ...]:
    before = json.dumps(current, indent=2, sort_keys=True).splitlines() if current is not None else []
    after = json.dumps(desired, indent=2, sort_keys=True).splitlines() if desired is not None else []
    return tuple(line for line in difflib.unified_diff(before, after, "current", "desired", lineterm="", n=2)
                 if not line.startswith(("---", "+++")))


def _role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


@dataclass
class Bootstrap:
    """The resources of ``topology`` in every account, with one admin session per account.

    ``sessions`` maps ``"central"`` and each consumer name to an AccountSession allowed to administer that
    account. ``create_execution_roles`` also creates the consumers' execution roles (for a fresh sandbox or
    the embedded AWS; in a real account they are your existing SageMaker execution roles).
    """

    topology: Topology
    sessions: Mapping[str, AccountSession]
    create_execution_roles: bool = False
    #: The account's quota for role trust policies (IAM: 2,048 characters by default, 4,096 after an increase).
    trust_policy_quota: int = 2048
    #: False: one TagSession statement for all consumers (flat size, but the team is not pinned per consumer).
    bind_teams_in_trust: bool = True
    #: Merge the statements missing from policies of keys bootstrap does not own into them (by Sid), instead of
    #: listing them in ``Plan.actions_needed``.
    merge_key_policies: bool = False
    _central_key: KmsKey | None = field(default=None, init=False, repr=False)
    #: the replica keys bootstrap creates, by consumer name
    _replica_keys: dict[str, KmsKey] = field(default_factory=dict, init=False, repr=False)
    _documents: dict[str, PolicyDocument] = field(default_factory=dict, init=False, repr=False)
    _documents_keys: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _replication: S3BucketReplication | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        missing = [name for name in ("central", *(c.name for c in self.topology.consumers))
                   if name not in self.sessions]
        if missing:
            raise ConfigError(f"bootstrap needs credentials for every account; missing: {', '.join(missing)}",
                              hint="set `profile` per account in the topology or pass --central-profile/"
                                   "--consumer-profile NAME=PROFILE")
        for name, session in self.sessions.items():
            expected = (self.topology.central.account_id if name == "central"
                        else self.topology.consumer(name).account_id)
            if session.account_id != expected:
                raise ConfigError(f"credentials for {name} act in account {session.account_id}, expected {expected}",
                                  hint="check the profile given for that account")

    # -- documents -----------------------------------------------------------------------------------------

    def _key_alias(self) -> str | None:
        return kms_alias(self.topology.central.kms_key or DEFAULT_OFFLINE_KEY_ALIAS)

    def _central_key_arn(self) -> str:
        kms = self.topology.central.kms_key
        if kms and self._key_alias() is None:
            return kms
        if self._central_key is not None and self._central_key.arn:
            return self._central_key.arn
        return self._unknown_key_arn(self.topology.central.account_id)

    def _replica_key_arn(self, consumer: ConsumerAccount) -> str:
        """The key ARN of ``consumer``'s replicas: configured, or of the key bootstrap created (once known)."""
        if kms_alias(consumer.replica_kms_key) is None:
            return consumer.replica_kms_key
        key = self._replica_keys.get(consumer.name)
        if key is not None and key.arn:
            return key.arn
        return self._unknown_key_arn(consumer.account_id)

    def _unknown_key_arn(self, account: str) -> str:
        region = self.topology.region
        return f"arn:{partition_of(region)}:kms:{region}:{account}:{UNKNOWN_KEY}"

    def _keys(self) -> list[KmsKey]:
        """The keys bootstrap creates (their ARNs are learned by reading them)."""
        central = [self._central_key] if self._central_key is not None else []
        return [*central, *self._replica_keys.values()]

    def documents(self) -> dict[str, PolicyDocument]:
        """The rendered documents (re-rendered once the key ARNs are known)."""
        resolved = {"central": self._central_key_arn()}
        for consumer in self.topology.replicating_consumers:
            resolved[replica_key_owner(consumer)] = self._replica_key_arn(consumer)
        if not self._documents or self._documents_keys != resolved:
            keys = dict(resolved)
            for consumer in self.topology.consumers:
                if consumer.kms_key:
                    resolved[consumer.name] = self._consumer_key_arn(consumer)
            self._documents = policy_documents(self.topology, resolved_keys=resolved,
                                               bind_teams_in_trust=self.bind_teams_in_trust)
            self._documents_keys = keys
            self._check_trust_size()
        return self._documents

    def _check_trust_size(self) -> None:
        """IAM refuses a trust policy over the account's quota at apply time (LimitExceeded): say so in plan."""
        trust = self._documents["central-access-role-trust"]
        if trust.size > self.trust_policy_quota:
            raise ConfigError(
                f"the central role's trust policy renders to {trust.size} characters for "
                f"{len(self.topology.consumers)} consumers, over the trust policy quota of "
                f"{self.trust_policy_quota}",
                hint="request the IAM quota increase (up to 4,096) and pass --trust-policy-quota 4096, or use "
                     "--compact-trust (one statement: the session's team must equal the caller's team tag)")

    def _document(self, name: str) -> dict[str, Any]:
        return self.documents()[name].document

    def _consumer_key_arn(self, consumer: ConsumerAccount) -> str:
        if consumer.kms_key.startswith("arn:") and ":key/" in consumer.kms_key:
            return consumer.kms_key
        kms = self.sessions[consumer.name].client("kms")
        alias = consumer.kms_key if consumer.kms_key.startswith("alias/") else \
            "alias/" + consumer.kms_key.split(":alias/", 1)[1]
        try:
            return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
        except ClientError as exc:
            raise from_client_error(exc, action="kms:DescribeKey", resource=alias) from exc

    # -- resources -----------------------------------------------------------------------------------------

    def resources(self) -> list[Resource]:
        """Every managed resource, in apply order (destroy runs it backwards); once no consumer replicates, with
        the replication role and policy to remove."""
        central = self.topology.central
        access_role = _role_name(central.access_role_arn)
        store_role = _role_name(offline_store_role_arn(self.topology))
        items: list[Resource] = []
        alias = self._key_alias()
        if alias is not None:
            if self._central_key is None:
                self._central_key = KmsKey("central", alias, description="featureshare offline store",
                                           setting="central.kms_key")
            items.append(self._central_key)
        items += self._replica_key_resources()
        items += [
            IamRole("central", access_role, trust=lambda: self._document("central-access-role-trust"),
                    description="featureshare: assumed by consumer execution roles", setting="central.access_role_arn"),
            IamRole("central", store_role, trust=lambda: self._document("offline-store-role-trust"),
                    description="featureshare: SageMaker writes the offline store with it",
                    setting="central.offline_store_role_arn"),
            IamRolePolicy("central", "featureshare-access", role=access_role,
                          document=lambda: self._document("central-access-role-permissions")),
            IamRolePolicy("central", "featureshare-offline-store", role=store_role,
                          document=lambda: self._document("offline-store-role-permissions")),
        ]
        if "central-access-role-consumer-keys" in self.documents():
            items.append(IamRolePolicy("central", "featureshare-consumer-keys", role=access_role,
                                       document=lambda: self._document("central-access-role-consumer-keys")))
        items += self._replication_role_resources()
        if alias is not None:
            items.append(KmsKeyPolicy("central", alias, document=lambda: self._document("offline-key-policy")))
        items += [
            S3Bucket("central", central.offline_bucket, region=self.topology.region,
                     kms_key=self._central_key_arn, setting="central.offline_bucket"),
            S3BucketPolicy("central", central.offline_bucket,
                           document=lambda: self._document("offline-bucket-policy"), setting="central.offline_bucket"),
            GlueResourcePolicy("central", "catalog",
                               document=lambda: self._document("glue-catalog-resource-policy")),
        ]
        # strategy="central-role": temporary entity tables of the central role, one workgroup per consumer.
        items.append(GlueDatabase("central", CENTRAL_SCRATCH_DATABASE))
        items += [AthenaWorkGroup("central", central_workgroup_name(consumer),
                                  output_location=f"{consumer.athena_results_uri}central/",
                                  expected_bucket_owner=consumer.account_id, acl="BUCKET_OWNER_FULL_CONTROL",
                                  setting=self._setting(consumer, "athena_workgroup"))
                  for consumer in self.topology.consumers]
        for consumer in self.topology.consumers:
            items += self._consumer_resources(consumer)
        # Last: the configuration names the replication role and the replica buckets (versioned), made above.
        # Always there: once no consumer replicates, bootstrap's rules are removed (and then its role).
        items.append(self._replication_configuration())
        if not self.topology.replicating_consumers:
            items += self._replication_role_resources(retired=True)
        return items

    def _setting(self, consumer: ConsumerAccount, name: str) -> str:
        return f"consumers[{self.topology.consumers.index(consumer)}].{name}"

    def _replication_configuration(self) -> S3BucketReplication:
        if self._replication is None:
            replicating = self.topology.replicating_consumers
            self._replication = S3BucketReplication(
                "central", self.topology.central.offline_bucket, setting="central.offline_bucket",
                configuration=lambda kept: replication_configuration(
                    self.topology, {c.name: self._replica_key_arn(c) for c in replicating}, kept_rules=kept))
        return self._replication

    def _replication_role_in_use(self) -> bool:
        """Whether replication rules bootstrap did not write use its replication role: the role then stays."""
        return self._replication_configuration().others_use_role(self.sessions["central"])

    def _replica_key_resources(self) -> list[Resource]:
        """The replica keys to create, first of all: the central replication role's policy names their ARNs.
        Their policies (naming that role) are put later, once the role exists."""
        for consumer in self.topology.replicating_consumers:
            alias = kms_alias(consumer.replica_kms_key)
            if alias is not None and consumer.name not in self._replica_keys:
                self._replica_keys[consumer.name] = KmsKey(consumer.name, alias,
                                                           description="featureshare offline store replicas",
                                                           setting=self._setting(consumer, "replica_kms_key"))
        return list(self._replica_keys.values())

    def _replication_role_resources(self, *, retired: bool = False) -> list[Resource]:
        """The central replication role and its policy while a consumer replicates; ``retired`` (once none does),
        the same to remove, policy first -- the role stays while rules of others use it."""
        if not retired and not self.topology.replicating_consumers:
            return []
        role = DEFAULT_REPLICATION_ROLE_NAME
        items: list[Resource] = [
            IamRole("central", role, trust=lambda: self._document("offline-replication-role-trust"),
                    description="featureshare: S3 replicates the offline store to consumer replica buckets",
                    retired=retired, needed_by_others=self._replication_role_in_use),
            IamRolePolicy("central", "featureshare-offline-replication", role=role, retired=retired,
                          document=lambda: self._document("offline-replication-role-permissions")),
        ]
        return items[::-1] if retired else items

    def _replica_resources(self, consumer: ConsumerAccount) -> list[Resource]:
        name = consumer.name
        setting = self._setting(consumer, "replica_bucket")
        items: list[Resource] = [
            S3Bucket(name, consumer.replica_bucket, region=self.topology.region,
                     kms_key=lambda c=consumer: self._replica_key_arn(c), setting=setting),
            S3BucketPolicy(name, consumer.replica_bucket, setting=setting,
                           document=lambda: self._document(f"replica-bucket-policy[{name}]")),
        ]
        key = self._replica_keys.get(name)
        if key is not None:
            items.append(KmsKeyPolicy(name, key.name, document=lambda: self._document(f"replica-key-policy[{name}]")))
        return items

    def _consumer_resources(self, consumer: ConsumerAccount) -> list[Resource]:
        name = consumer.name
        items: list[Resource] = []
        for arn in consumer.execution_role_arns:
            if self.create_execution_roles:
                trust = _execution_role_trust(consumer.account_id, partition_of(self.topology.region))
                # An execution role that exists already is yours: its trust policy and tags stay as they are.
                items.append(IamRole(name, _role_name(arn), trust=trust,
                                     description="featureshare: consumer execution role (created by bootstrap)",
                                     role_tags={"team": consumer.team}, unowned=Unowned.USE,
                                     setting=self._setting(consumer, "execution_role_arns")))
            items.append(IamRolePolicy(name, "featureshare-consumer", role=_role_name(arn),
                                       document=lambda n=name: self._document(f"consumer-execution-role-policy[{n}]")))
            if f"consumer-execution-role-training-key[{name}]" in self.documents():
                items.append(IamRolePolicy(
                    name, "featureshare-training-key", role=_role_name(arn),
                    document=lambda n=name: self._document(f"consumer-execution-role-training-key[{n}]")))
        key = self._consumer_key_arn(consumer) if consumer.kms_key else None
        bucket = self._setting(consumer, "training_bucket")
        items += [
            S3Bucket(name, consumer.training_bucket, region=self.topology.region, kms_key=lambda k=key: k,
                     setting=bucket),
            S3BucketPolicy(name, consumer.training_bucket, setting=bucket,
                           document=lambda n=name: self._document(f"consumer-training-bucket-policy[{n}]")),
            AthenaWorkGroup(name, consumer.athena_workgroup, output_location=consumer.athena_results_uri,
                            expected_bucket_owner=consumer.account_id,
                            setting=self._setting(consumer, "athena_workgroup")),
            AthenaDataCatalog(name, consumer.central_catalog, catalog_id=self.topology.central.account_id,
                              setting=self._setting(consumer, "central_catalog")),
            GlueDatabase(name, consumer.scratch_database, setting=self._setting(consumer, "scratch_database")),
        ]
        if consumer.replicate_offline_store:
            items += self._replica_resources(consumer)
        return items

    # -- keys bootstrap does not own ------------------------------------------------------------------------

    def _foreign_keys(self) -> list[ForeignKey]:
        """The keys whose policies a rendered document constrains but bootstrap does not write."""
        owned = {f"replica-key-policy[{c.name}]" for c in self.topology.replicating_consumers
                 if kms_alias(c.replica_kms_key) is not None}
        if self._key_alias() is not None:
            owned.add("offline-key-policy")
        accounts: dict[str, str] = {}
        for name, session in self.sessions.items():
            accounts.setdefault(session.account_id, name)
        return foreign_keys(self.documents().values(), owned=owned, accounts=accounts)

    def _check_key_policies(self) -> list[KeyPolicyCheck]:
        return [check_key(key, self.sessions.get(key.account) if key.account else None)
                for key in self._foreign_keys()]

    def _key_policy_merges(self, checks: list[KeyPolicyCheck]) -> list[Resource]:
        """With ``merge_key_policies``: an update of each key policy that merging makes complete."""
        if not self.merge_key_policies:
            return []
        return [MergedKeyPolicy(str(c.key.account), c.key.key_arn, statements=c.statements)
                for c in checks if c.mergeable]

    def _actions_needed(self, checks: list[KeyPolicyCheck], merging: list[Resource]) -> tuple[ActionNeeded, ...]:
        merged = {resource.name for resource in merging}
        return tuple(c.action_needed() for c in checks
                     if c.state is not KeyPolicyState.GRANTED and c.key.key_arn not in merged)

    # -- plan / apply / destroy ----------------------------------------------------------------------------

    def _change(self, resource: Resource) -> tuple[Change | None, dict[str, Any] | None]:
        """What apply would do to ``resource`` (``None``: nothing to show, it is gone or not bootstrap's to
        remove), and its current state."""
        session = self.sessions[resource.account]
        with _aws_errors(resource):
            current = resource.read(session)
            wanted = resource.wanted()
            if wanted is None:
                if current is None or not resource.managed(current) or resource.in_use():
                    return None, current
                return Change(Action.DELETE, resource.address, _diff(current, None)), current
        if current is None:
            return Change(Action.CREATE, resource.address, _diff(None, wanted)), None
        if not resource.managed(current) and resource.unowned is Unowned.USE:
            return Change(Action.NOOP, resource.address), current
        before, after = resource.comparable(current, wanted)
        if before != after:
            return Change(Action.UPDATE, resource.address, _diff(before, after)), current
        return Change(Action.NOOP, resource.address), current

    def _refuse_takeovers(self, resources: list[Resource]) -> None:
        """Raise ConfigError naming every resource that exists, was not created by bootstrap and may not be
        written by it; reads only."""
        problems: list[str] = []
        for resource in resources:
            with _aws_errors(resource):
                current = resource.read(self.sessions[resource.account])
                why = None if current is None or resource.wanted() is None else resource.takeover(current)
            if why:
                problems.append(f"{resource.setting}: {why}" if resource.setting else why)
        if problems:
            count = len(problems)
            raise ConfigError(
                f"bootstrap does not take over what it did not create ({count} problem{'s' if count > 1 else ''}): "
                + "; ".join(problems), problems=problems,
                hint=f"nothing was changed: bootstrap writes and deletes only what it created, tagged "
                     f"{MANAGED_TAG[0]}={MANAGED_TAG[1]}")

    def plan(self) -> Plan:
        """What apply would change, and the key policies that need action; changes nothing. Raises ConfigError
        when apply would take over something bootstrap did not create."""
        resources = self.resources()
        self._refuse_takeovers(resources)
        for key in self._keys():  # learn the key ARNs first so documents render with them
            self._change(key)
        checks = self._check_key_policies()
        merges = self._key_policy_merges(checks)
        changes = (self._change(resource)[0] for resource in [*resources, *merges])
        return Plan(tuple(change for change in changes if change is not None), self._actions_needed(checks, merges))

    def apply(self) -> Plan:
        """Create, update or remove every resource that differs, then (with ``merge_key_policies``) merge what
        policies of keys bootstrap does not own lack; returns what was done and the key policies still needing
        action. Raises ConfigError, before anything is written, where :meth:`plan` does."""
        resources = self.resources()
        self._refuse_takeovers(resources)
        done = [self._apply(resource) for resource in resources]
        # Last: merged statements name roles, which KMS wants to exist when the policy is put.
        checks = self._check_key_policies()
        merges = self._key_policy_merges(checks)
        if merges:
            done += [self._apply(resource) for resource in merges]
            checks = self._check_key_policies()
        return Plan(tuple(change for change in done if change is not None), self._actions_needed(checks, []))

    def _apply(self, resource: Resource) -> Change | None:
        change, current = self._change(resource)
        if change is not None and change.action is not Action.NOOP:
            logger.info("bootstrap %s %s", change.action.value, change.address)
            with _aws_errors(resource):
                session = self.sessions[resource.account]
                if change.action is Action.CREATE:
                    resource.create(session)
                elif change.action is Action.DELETE:
                    resource.delete(session)
                else:
                    resource.update(session, current or {})
        return change

    def destroy(self, *, force: bool = False) -> Plan:
        """Delete, in reverse order, every resource bootstrap created, and the statements it merged into policies
        of keys it does not own (never those keys); non-empty buckets need ``force``. What it did not create is
        left alone, and so is what something else still needs (its replication role, while replication rules
        of others use it)."""
        done: list[Change] = []
        resources = self.resources()
        for key in self._keys():
            self._change(key)
        resources += [MergedKeyPolicy(key.account, key.key_arn) for key in self._foreign_keys() if key.account]
        for resource in reversed(resources):
            session = self.sessions[resource.account]
            with _aws_errors(resource):
                current = resource.read(session)
                if current is None or not resource.managed(current) or resource.in_use():
                    continue
                if isinstance(resource, S3Bucket):
                    resource.delete(session, force=force)
                else:
                    resource.delete(session)
            logger.info("bootstrap delete %s", resource.address)
            done.append(Change(Action.DELETE, resource.address))
        return Plan(tuple(done))


def _execution_role_trust(account: str, partition: str) -> dict[str, Any]:
    """SageMaker (confined to this account) and the account's own principals may assume the role."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "SageMaker", "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
         "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"aws:SourceAccount": account}}},
        {"Sid": "AccountPrincipals", "Effect": "Allow", "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
         "Action": ["sts:AssumeRole", "sts:TagSession"]},
    ]}


def _aws_errors(resource: Resource) -> AbstractContextManager[None]:
    return translate_client_error(resource=resource.address)

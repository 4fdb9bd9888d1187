"""S3 replication of the central offline store into consumers' replica buckets: the bucket's configuration.

Consumers opt in with ``replicate_offline_store = true``. The offline bucket then gets one replication rule per
such consumer (V2 schema: ``Filter``, ``Priority``, ``DeleteMarkerReplication``), assumed by one central role
(``offline-replication-role-*`` templates). Replication keeps object keys, so a consumer's replicas appear
under its ``replica_prefix`` in its replica bucket, owned by the consumer account
(``AccessControlTranslation``) and re-encrypted with its replica key; SSE-KMS objects are replicated only
because ``SourceSelectionCriteria`` opts them in. Delete markers are replicated too, so a replica mirrors
what is current in the offline store; deletes of object versions are never replicated by S3.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from featureshare.bootstrap.resources import Document, Resource, Unowned, canonical, unless_missing
from featureshare.bootstrap.templates import partition_of, replication_role_arn
from featureshare.config import ConsumerAccount, Topology
from featureshare.session import AccountSession

__all__ = ["RULE_ID_PREFIX", "S3BucketReplication", "is_bootstrap_rule", "replication_configuration",
           "replication_rule"]

#: Rule ids are ``featureshare-<consumer name>``; bootstrap manages every rule whose ID starts with it.
RULE_ID_PREFIX = "featureshare-"


def is_bootstrap_rule(rule: Mapping[str, Any]) -> bool:
    """Whether bootstrap manages this replication rule (its ID starts with :data:`RULE_ID_PREFIX`)."""
    return str(rule.get("ID", "")).startswith(RULE_ID_PREFIX)


def replication_rule(consumer: ConsumerAccount, priority: int, replica_key_arn: str, *, partition: str = "aws"
                     ) -> dict[str, Any]:
    """The rule replicating ``consumer.replica_prefix`` of the offline bucket into its replica bucket.

    >>> from featureshare.config import ConsumerAccount
    >>> rule = replication_rule(ConsumerAccount("search", "222222222222", (), "search", "training",
    ...                                         replica_bucket="replica", replica_prefix="feature-store"),
    ...                         1, "arn:aws:kms:us-east-1:222222222222:key/k")
    >>> rule["Filter"], rule["Destination"]["Bucket"]
    ({'Prefix': 'feature-store/'}, 'arn:aws:s3:::replica')
    """
    prefix = consumer.replica_prefix.strip("/")
    return {
        "ID": f"{RULE_ID_PREFIX}{consumer.name}",
        "Priority": priority,
        "Status": "Enabled",
        # "feature-store/" and not "feature-store": S3 prefixes match characters, not path segments.
        "Filter": {"Prefix": f"{prefix}/" if prefix else ""},
        "DeleteMarkerReplication": {"Status": "Enabled"},
        "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
        "Destination": {
            "Bucket": f"arn:{partition}:s3:::{consumer.replica_bucket}",
            "Account": consumer.account_id,
            "AccessControlTranslation": {"Owner": "Destination"},
            "EncryptionConfiguration": {"ReplicaKmsKeyID": replica_key_arn},
        },
    }


def replication_configuration(topology: Topology, replica_key_arns: Mapping[str, str], *,
                              kept_rules: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The ``ReplicationConfiguration`` of the offline bucket: the central replication role and one rule per
    replicating consumer, prioritised in topology order. ``replica_key_arns`` maps each replicating consumer's
    name to the ARN of the key its replicas are encrypted with (S3 wants an ARN: an alias would resolve in
    the central account).

    ``kept_rules`` are rules bootstrap did not write (on a configuration with its role): they come first, as
    they are, and bootstrap's rules take the lowest priorities they leave free, so that priorities stay unique.

    >>> from featureshare.config import Topology
    >>> consumer = {"name": "search", "account_id": "222222222222", "team": "search", "training_bucket": "training",
    ...             "execution_role_arns": ["arn:aws:iam::222222222222:role/Exec"], "replicate_offline_store": True}
    >>> topology = Topology.from_dict({"region": "us-east-1", "consumers": [consumer], "central": {
    ...     "account_id": "111111111111", "offline_bucket": "offline-store",
    ...     "access_role_arn": "arn:aws:iam::111111111111:role/FeatureShareAccess"}})
    >>> rules = replication_configuration(topology, {"search": "arn:aws:kms:us-east-1:222222222222:key/k"},
    ...                                   kept_rules=[{"ID": "analytics", "Priority": 1}])["Rules"]
    >>> [(rule["ID"], rule["Priority"]) for rule in rules]
    [('analytics', 1), ('featureshare-search', 2)]
    """
    partition = partition_of(topology.region)
    taken = {rule.get("Priority") for rule in kept_rules}
    free = (priority for priority in itertools.count(1) if priority not in taken)
    rules = [replication_rule(consumer, next(free), replica_key_arns[consumer.name], partition=partition)
             for consumer in topology.replicating_consumers]
    return {"Role": replication_role_arn(topology), "Rules": [*(dict(rule) for rule in kept_rules), *rules]}


@dataclass
class S3BucketReplication(Resource):
    """The replication configuration of bucket ``name``: bootstrap's rules (IDs ``featureshare-...``) under its role.

    ``configuration(kept)`` renders the ``ReplicationConfiguration`` request shape (``Role`` and ``Rules``) with
    ``kept``, the rules bootstrap did not write, as they are; it is called at apply time, since replica key ARNs
    may be known only then. S3 keeps one configuration per bucket, with one role: on one with bootstrap's role
    the rules of others are kept, one with another role is refused (bootstrap could add its rules only by
    replacing it), and with no rule left the configuration is deleted.
    """

    configuration: Callable[[Sequence[Document]], Document] = field(
        default=lambda kept: {"Role": "", "Rules": list(kept)})
    unowned: Unowned = field(default=Unowned.CONFIGURE, kw_only=True)
    _current: Document | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.kind = "s3-bucket-replication"

    def _role(self) -> str:
        return str(self.configuration(())["Role"])

    def _kept(self) -> list[Document]:
        """The rules of the current configuration bootstrap did not write (none under another role)."""
        current = self._current or {}
        if current.get("Role") != self._role():
            return []
        return [rule for rule in current.get("Rules", []) if not is_bootstrap_rule(rule)]

    def desired(self) -> Document:
        configuration = canonical(self.configuration(self._kept()))
        return {"configuration": {**configuration, "Rules": _by_priority(configuration["Rules"])}}

    def wanted(self) -> Document | None:
        desired = super().wanted()
        return desired if desired is not None and desired["configuration"]["Rules"] else None

    def read(self, session: AccountSession) -> Document | None:
        reply = unless_missing(lambda: session.client("s3").get_bucket_replication(Bucket=self.name))
        if reply is None:
            self._current = None
            return None
        self._current = canonical(reply["ReplicationConfiguration"])
        return {"configuration": {**self._current, "Rules": _by_priority(self._current.get("Rules", []))}}

    def create(self, session: AccountSession) -> None:
        session.client("s3").put_bucket_replication(Bucket=self.name,
                                                    ReplicationConfiguration=self.desired()["configuration"])

    def delete(self, session: AccountSession) -> None:
        """Remove bootstrap's rules; the configuration goes with them unless rules of others are left."""
        current = self.read(session)
        if current is None or not self.managed(current):
            return
        s3, kept = session.client("s3"), self._kept()
        if kept:
            s3.put_bucket_replication(Bucket=self.name, ReplicationConfiguration={"Role": self._role(),
                                                                                  "Rules": kept})
        else:
            s3.delete_bucket_replication(Bucket=self.name)

    def managed(self, current: Document) -> bool:
        """Whether it holds bootstrap's rules under bootstrap's role."""
        configuration = current.get("configuration", {})
        return configuration.get("Role") == self._role() and any(
            is_bootstrap_rule(rule) for rule in configuration.get("Rules", []))

    def others_use_role(self, session: AccountSession) -> bool:
        """Whether rules bootstrap did not write use bootstrap's role (they stop replicating without it)."""
        self.read(session)
        return bool(self._kept())

    def takeover(self, current: Document) -> str | None:
        configuration = current.get("configuration", {})
        role, ours = configuration.get("Role"), self.configuration(())["Rules"]
        if role == self._role() or not ours:
            return None
        theirs = ", ".join(str(rule.get("ID", "?")) for rule in configuration.get("Rules", [])) or "none"
        return (f"bucket {self.name} has a replication configuration that bootstrap did not write, with role "
                f"{role} (rules: {theirs}). S3 keeps one replication configuration per bucket, with one role, so "
                f"bootstrap cannot add its rules ({', '.join(str(rule['ID']) for rule in ours)}) without replacing "
                f"that configuration. Delete it (aws s3api delete-bucket-replication --bucket {self.name}), apply, "
                f"then put those rules back with bootstrap's role {self._role()} (bootstrap keeps rules whose ID "
                f"does not start with {RULE_ID_PREFIX!r}); or set replicate_offline_store = false for every consumer")


def _by_priority(rules: Sequence[Document]) -> list[Document]:
    return sorted(rules, key=lambda rule: (rule.get("Priority", 0), str(rule.get("ID", ""))))

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
from collections.abc import Mapping, Sequence
from typing import Any

from featureshare.bootstrap.templates import partition_of, replication_role_arn
from featureshare.config import ConsumerAccount, Topology

__all__ = ["RULE_ID_PREFIX", "is_bootstrap_rule", "replicating_consumers", "replication_configuration",
           "replication_rule"]

#: Rule ids are ``featureshare-<consumer name>``; bootstrap manages every rule whose ID starts with it.
RULE_ID_PREFIX = "featureshare-"


def is_bootstrap_rule(rule: Mapping[str, Any]) -> bool:
    """Whether bootstrap manages this replication rule (its ID starts with :data:`RULE_ID_PREFIX`)."""
    return str(rule.get("ID", "")).startswith(RULE_ID_PREFIX)


def replicating_consumers(topology: Topology) -> tuple[ConsumerAccount, ...]:
    """The consumers with ``replicate_offline_store``, in topology order."""
    return tuple(c for c in topology.consumers if c.replicate_offline_store)


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
             for consumer in replicating_consumers(topology)]
    return {"Role": replication_role_arn(topology), "Rules": [*(dict(rule) for rule in kept_rules), *rules]}

"""The Topology: which accounts, roles, buckets, keys, workgroups and teams make up a featureshare setup.

Loaded from a TOML file (``featureshare.toml``; path from the argument or ``FEATURESHARE_CONFIG``) and validated
up front: every problem is collected and reported at once, each naming its field and value.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from featureshare.errors import ConfigError
from featureshare.s3uri import BUCKET_RE

__all__ = ["CONFIG_ENV", "DEFAULT_REPLICA_KEY_ALIAS", "ROLE_ARN_RE", "CentralAccount", "ConsumerAccount", "Topology",
           "kms_alias", "load_topology"]

CONFIG_ENV = "FEATURESHARE_CONFIG"
DEFAULT_CONFIG_FILE = "featureshare.toml"

_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
#: An IAM role ARN; group 1 is its account id. The one role-ARN check of featureshare.
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$", re.ASCII)
_KMS_RE = re.compile(r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key/[0-9a-fA-F-]+|alias/[\w/-]+)|alias/[\w/-]+)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_TEAM_RE = re.compile(r"^[\w+=,.@-]{1,256}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9!_.*'()/-]*$")
#: Alias of the consumer key bootstrap creates for a replica bucket when ``replica_kms_key`` is not set.
DEFAULT_REPLICA_KEY_ALIAS = "alias/featureshare-offline-replica"


@dataclass(frozen=True)
class CentralAccount:
    """The account that holds the shared Feature Store."""

    account_id: str
    access_role_arn: str
    offline_bucket: str
    offline_prefix: str = "feature-store"
    offline_store_role_arn: str = ""
    kms_key: str = ""
    profile: str | None = None
    external_id: str | None = None

    @property
    def offline_s3_uri(self) -> str:
        prefix = self.offline_prefix.strip("/")
        return f"s3://{self.offline_bucket}/{prefix}" if prefix else f"s3://{self.offline_bucket}"


@dataclass(frozen=True)
class ConsumerAccount:
    """A team's account that uses the central store and keeps its own local groups."""

    name: str
    account_id: str
    execution_role_arns: tuple[str, ...]
    team: str
    training_bucket: str
    training_prefix: str = "training-sets"
    athena_workgroup: str = "featureshare"
    central_catalog: str = "central"
    scratch_database: str = "featureshare_scratch"
    kms_key: str = ""
    profile: str | None = None
    #: S3 replication of the central offline store into ``replica_bucket`` in this account (opt-in).
    replicate_offline_store: bool = False
    replica_bucket: str = ""
    #: The part of the central offline prefix that is replicated; replicas keep their keys, so they appear
    #: under the same prefix in ``replica_bucket``.
    replica_prefix: str = ""
    #: The key replicas are encrypted with: an alias bootstrap creates, or the ARN of an existing key.
    replica_kms_key: str = ""

    @property
    def training_s3_uri(self) -> str:
        return f"s3://{self.training_bucket}/{self.training_prefix.strip('/')}/"

    @property
    def athena_results_uri(self) -> str:
        return f"s3://{self.training_bucket}/athena-results/"

    @property
    def local_offline_s3_uri(self) -> str:
        """Where this account's local (own-account) feature groups keep their offline store."""
        return f"s3://{self.training_bucket}/feature-store"


@dataclass(frozen=True)
class Topology:
    """The whole setup: one central account and its consumers, in one region."""

    region: str
    central: CentralAccount
    consumers: tuple[ConsumerAccount, ...]
    teams: tuple[str, ...] = field(default=())
    source: str | None = None

    def consumer(self, name_or_account: str) -> ConsumerAccount:
        """The consumer with this name or account id."""
        for consumer in self.consumers:
            if name_or_account in (consumer.name, consumer.account_id):
                return consumer
        known = ", ".join(f"{c.name} ({c.account_id})" for c in self.consumers) or "none"
        raise ConfigError(f"no consumer named {name_or_account!r} in the topology; known: {known}")

    @property
    def replicating_consumers(self) -> tuple[ConsumerAccount, ...]:
        """The consumers with ``replicate_offline_store``, in topology order."""
        return tuple(c for c in self.consumers if c.replicate_offline_store)

    def consumer_for_account(self, account_id: str) -> ConsumerAccount | None:
        return next((c for c in self.consumers if c.account_id == account_id), None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Topology:
        """Build and validate a Topology; raises one ConfigError listing every problem."""
        return _TopologyParser(data, source).parse()


def load_topology(path: str | os.PathLike[str] | None = None) -> Topology:
    """Load a Topology from ``path``, else ``$FEATURESHARE_CONFIG``, else ``./featureshare.toml``."""
    chosen = path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE
    file = Path(chosen)
    if not file.is_file():
        raise ConfigError(
            f"configuration file {str(file)!r} not found",
            hint=f"pass --config, set {CONFIG_ENV}, or copy featureshare.example.toml to featureshare.toml",
        )
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    return Topology.from_dict(data, source=str(file))


_CENTRAL_KEYS = {"account_id", "access_role_arn", "offline_bucket", "offline_prefix", "offline_store_role_arn",
                 "kms_key", "profile", "external_id"}
_REPLICA_KEYS = ("replica_bucket", "replica_prefix", "replica_kms_key")
_CONSUMER_KEYS = {"name", "account_id", "execution_role_arns", "team", "training_bucket", "training_prefix",
                  "athena_workgroup", "central_catalog", "scratch_database", "kms_key", "profile",
                  "replicate_offline_store", *_REPLICA_KEYS}
_TOP_KEYS = {"region", "central", "consumers", "teams"}


class _TopologyParser:
    """Collects every problem instead of stopping at the first."""

    def __init__(self, data: Mapping[str, Any], source: str | None) -> None:
        self.data = data
        self.source = source
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def unknown_keys(self, where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
        for key in sorted(set(table) - allowed):
            self.problem(f"{where}.{key}" if where else key,
                         f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def text(self, where: str, table: Mapping[str, Any], key: str, pattern: re.Pattern[str] | None,
             expected: str, *, required: bool = True, default: str = "") -> str:
        value = table.get(key, None)
        path = f"{where}.{key}" if where else key
        if value is None:
            if required:
                self.problem(path, f"missing (expected {expected})")
            return default
        if not isinstance(value, str):
            self.problem(path, f"must be a string, got {value!r}")
            return default
        if pattern is not None and not pattern.fullmatch(value):
            self.problem(path, f"{value!r} is not {expected}")
        return value

    def flag(self, where: str, table: Mapping[str, Any], key: str) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            self.problem(f"{where}.{key}", f"must be true or false, got {value!r}")
            return False
        return value

    def parse(self) -> Topology:
        data = self.data
        self.unknown_keys("", data, _TOP_KEYS)
        region = self.text("", data, "region", _REGION_RE, "an AWS region such as 'us-east-1'")
        central = self.parse_central(data.get("central"))
        consumers = self.parse_consumers(data.get("consumers"), central)
        teams_raw = data.get("teams", [])
        teams: list[str] = []
        if not isinstance(teams_raw, list):
            self.problem("teams", f"must be a list of team names, got {teams_raw!r}")
        else:
            for i, team in enumerate(teams_raw):
                if not isinstance(team, str) or not _TEAM_RE.fullmatch(team):
                    self.problem(f"teams[{i}]", f"{team!r} is not a valid tag value")
                else:
                    teams.append(team)
        for consumer in consumers:
            if teams and consumer.team not in teams:
                self.problem(f"consumers.{consumer.name}.team",
                             f"{consumer.team!r} is not one of teams {teams}")
        if self.problems:
            where = f"{self.source}: " if self.source else ""
            count = len(self.problems)
            raise ConfigError(
                f"{where}invalid configuration ({count} problem{'s' if count > 1 else ''}): "
                + "; ".join(self.problems),
                problems=self.problems,
            )
        all_teams = tuple(teams) or tuple(dict.fromkeys(c.team for c in consumers))
        return Topology(region=region, central=central, consumers=tuple(consumers), teams=all_teams,
                        source=self.source)

    def parse_central(self, table: Any) -> CentralAccount:
        if not isinstance(table, Mapping):
            self.problem("central", "missing [central] table")
            return CentralAccount("", "", "")
        self.unknown_keys("central", table, _CENTRAL_KEYS)
        account = self.text("central", table, "account_id", _ACCOUNT_RE, "a 12-digit account id")
        role = self.text("central", table, "access_role_arn", ROLE_ARN_RE, "an IAM role ARN")
        self.same_account("central.access_role_arn", role, account)
        bucket = self.text("central", table, "offline_bucket", BUCKET_RE, "a valid S3 bucket name")
        prefix = self.text("central", table, "offline_prefix", _PREFIX_RE, "an S3 key prefix",
                           required=False, default="feature-store")
        store_role = self.text("central", table, "offline_store_role_arn", ROLE_ARN_RE, "an IAM role ARN",
                               required=False)
        self.same_account("central.offline_store_role_arn", store_role, account)
        kms = self.text("central", table, "kms_key", _KMS_RE, "a KMS key ARN, alias ARN or 'alias/name'",
                        required=False)
        profile = self.text("central", table, "profile", None, "a profile name", required=False) or None
        external_id = self.text("central", table, "external_id", re.compile(r"^[\w+=,.@:/-]{2,1224}$"),
                                "2-1224 characters of [\\w+=,.@:/-]", required=False) or None
        return CentralAccount(account_id=account, access_role_arn=role, offline_bucket=bucket,
                              offline_prefix=prefix, offline_store_role_arn=store_role, kms_key=kms,
                              profile=profile, external_id=external_id)

    def same_account(self, where: str, arn: str, account: str) -> None:
        match = ROLE_ARN_RE.fullmatch(arn or "")
        if match and _ACCOUNT_RE.fullmatch(account) and match.group(1) != account:
            self.problem(where, f"{arn!r} is in account {match.group(1)}, expected {account}")

    def parse_consumers(self, tables: Any, central: CentralAccount | None) -> list[ConsumerAccount]:
        if tables is None:
            self.problem("consumers", "missing: add at least one [[consumers]] table")
            return []
        if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
            self.problem("consumers", "must be an array of tables ([[consumers]])")
            return []
        consumers: list[ConsumerAccount] = []
        for i, table in enumerate(tables):
            where = f"consumers[{i}]"
            self.unknown_keys(where, table, _CONSUMER_KEYS)
            name = self.text(where, table, "name", _NAME_RE, "a name of [A-Za-z0-9_-]")
            account = self.text(where, table, "account_id", _ACCOUNT_RE, "a 12-digit account id")
            roles_raw = table.get("execution_role_arns")
            roles: list[str] = []
            if not isinstance(roles_raw, list) or not roles_raw:
                self.problem(f"{where}.execution_role_arns",
                             f"must be a non-empty list of role ARNs, got {roles_raw!r}")
            else:
                for j, role in enumerate(roles_raw):
                    if not isinstance(role, str) or not ROLE_ARN_RE.fullmatch(role):
                        self.problem(f"{where}.execution_role_arns[{j}]", f"{role!r} is not an IAM role ARN")
                    else:
                        self.same_account(f"{where}.execution_role_arns[{j}]", role, account)
                        roles.append(role)
            if central is not None and account and account == central.account_id:
                self.problem(f"{where}.account_id", f"{account} is the central account; consumers are other accounts")
            consumer = ConsumerAccount(
                name=name,
                account_id=account,
                execution_role_arns=tuple(roles),
                team=self.text(where, table, "team", _TEAM_RE, "a team tag value"),
                training_bucket=self.text(where, table, "training_bucket", BUCKET_RE, "a valid S3 bucket name"),
                training_prefix=self.text(where, table, "training_prefix", _PREFIX_RE, "an S3 key prefix",
                                          required=False, default="training-sets"),
                athena_workgroup=self.text(where, table, "athena_workgroup", re.compile(r"^[a-zA-Z0-9._-]{1,128}$"),
                                           "an Athena workgroup name", required=False, default="featureshare"),
                central_catalog=self.text(where, table, "central_catalog", re.compile(r"^[a-zA-Z0-9_@-]{1,127}$"),
                                          "a data catalog name", required=False, default="central"),
                scratch_database=self.text(where, table, "scratch_database", re.compile(r"^[a-z0-9_]{1,255}$"),
                                           "a lower-case Glue database name", required=False,
                                           default="featureshare_scratch"),
                kms_key=self.text(where, table, "kms_key", _KMS_RE, "a KMS key ARN, alias ARN or 'alias/name'",
                                  required=False),
                profile=self.text(where, table, "profile", None, "a profile name", required=False) or None,
            )
            consumer = self.replication(where, table, consumer, central)
            if any(c.name == consumer.name for c in consumers):
                self.problem(f"{where}.name", f"duplicate consumer name {consumer.name!r}")
            consumers.append(consumer)
        self.replica_buckets_unique(consumers)
        self.replica_keys_unique(consumers)
        return consumers

    def replication(self, where: str, table: Mapping[str, Any], consumer: ConsumerAccount,
                    central: CentralAccount | None) -> ConsumerAccount:
        """The replica settings of ``consumer``, defaulted and checked against the central offline store."""
        if not self.flag(where, table, "replicate_offline_store"):
            for key in _REPLICA_KEYS:
                if key in table:
                    self.problem(f"{where}.{key}", f"{table[key]!r} is set, but replicate_offline_store is not true")
            return consumer
        offline_prefix = central.offline_prefix.strip("/") if central is not None else ""
        bucket = self.text(where, table, "replica_bucket", BUCKET_RE, "a valid S3 bucket name", required=False,
                           default=f"featureshare-offline-replica-{consumer.account_id}")
        prefix = self.text(where, table, "replica_prefix", _PREFIX_RE, "an S3 key prefix", required=False,
                           default=offline_prefix).strip("/")
        if offline_prefix and prefix != offline_prefix and not prefix.startswith(f"{offline_prefix}/"):
            self.problem(f"{where}.replica_prefix",
                         f"{prefix!r} is outside central.offline_prefix {offline_prefix!r}: replication keeps "
                         f"object keys, so replicate {offline_prefix!r} or a prefix under it")
        if central is not None and bucket == central.offline_bucket:
            self.problem(f"{where}.replica_bucket", f"{bucket!r} is central.offline_bucket; replicas need their own")
        kms = self.text(where, table, "replica_kms_key", _KMS_RE, "a KMS key ARN, alias ARN or 'alias/name'",
                        required=False, default=DEFAULT_REPLICA_KEY_ALIAS)
        return replace(consumer, replicate_offline_store=True, replica_bucket=bucket, replica_prefix=prefix,
                       replica_kms_key=kms)

    def replica_buckets_unique(self, consumers: list[ConsumerAccount]) -> None:
        """A replica bucket is nobody else's bucket: each bucket has one bucket policy, and bootstrap writes it."""
        owners: dict[str, str] = {}
        for consumer in consumers:
            owners.setdefault(consumer.training_bucket, f"the training_bucket of consumer {consumer.name!r}")
        for i, consumer in enumerate(consumers):
            if not consumer.replicate_offline_store:
                continue
            if consumer.replica_bucket in owners:
                self.problem(f"consumers[{i}].replica_bucket",
                             f"{consumer.replica_bucket!r} is already {owners[consumer.replica_bucket]}")
            owners[consumer.replica_bucket] = f"the replica_bucket of consumer {consumer.name!r}"

    def replica_keys_unique(self, consumers: list[ConsumerAccount]) -> None:
        """A replica key given by alias is created by bootstrap for one consumer: it writes the key's whole policy
        for that consumer's replica bucket and deletes the key on destroy, so the alias may name no other key of
        the account that the topology uses (another replica key, or a ``kms_key``, which bootstrap does not own)."""
        owners: dict[tuple[str, str], str] = {}
        for consumer in consumers:
            alias = kms_alias(consumer.kms_key)
            if alias is not None:
                owners.setdefault((consumer.account_id, alias), f"the kms_key of consumer {consumer.name!r}")
        for i, consumer in enumerate(consumers):
            alias = kms_alias(consumer.replica_kms_key) if consumer.replicate_offline_store else None
            if alias is None:
                continue
            owner = owners.get((consumer.account_id, alias))
            if owner is not None:
                self.problem(f"consumers[{i}].replica_kms_key",
                             f"{consumer.replica_kms_key!r} is already {owner} in account {consumer.account_id}; "
                             "bootstrap creates the key of a replica_kms_key alias and writes its whole policy, so "
                             "give this consumer an alias of its own, or the ARN of an existing key")
            owners[(consumer.account_id, alias)] = f"the replica_kms_key of consumer {consumer.name!r}"


def kms_alias(kms: str) -> str | None:
    """``alias/<name>`` of a KMS key configured by alias (``alias/<name>`` or an alias ARN); ``None`` for a key
    ARN or nothing.

    >>> kms_alias("arn:aws:kms:us-east-1:222222222222:alias/team"), kms_alias("alias/team")
    ('alias/team', 'alias/team')
    """
    if kms.startswith("alias/"):
        return kms
    if ":alias/" in kms:
        return "alias/" + kms.split(":alias/", 1)[1]
    return None

"""The AWS resources bootstrap manages, each able to read its current state, create, update and delete itself.

A resource's state is a plain, normalised dict (policies parsed and key-sorted) so that plan = diff of
``read()`` against ``wanted()``. Everything bootstrap creates carries the tag ``managed-by=featureshare``;
``destroy`` deletes only what carries it (inline policies are recognised by their ``featureshare-`` name).

A resource that exists without that tag was not created by bootstrap: bootstrap never tags it and never deletes
it, and what ``plan`` and ``apply`` do with it depends on its kind (:class:`Unowned`): keys, central roles,
workgroups and data catalogs are refused unless they already are what bootstrap would make them, buckets are
configured, databases and execution roles are used as they are.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from featureshare.bootstrap.statements import merge_statements, remove_statements, statements_of
from featureshare.bootstrap.templates import partition_of
from featureshare.errors import ValidationError, error_code, http_status
from featureshare.session import AccountSession

__all__ = [
    "MANAGED_TAG",
    "AthenaDataCatalog",
    "AthenaWorkGroup",
    "GlueDatabase",
    "GlueResourcePolicy",
    "IamRole",
    "IamRolePolicy",
    "KmsKey",
    "KmsKeyPolicy",
    "Resource",
    "S3Bucket",
    "S3BucketPolicy",
    "Unowned",
    "canonical",
    "unless_missing",
]

MANAGED_TAG = ("managed-by", "featureshare")
_MISSING = {"NoSuchEntity", "NoSuchBucket", "NoSuchBucketPolicy", "NotFoundException", "EntityNotFoundException",
            "ResourceNotFoundException", "InvalidRequestException", "404", "NoSuchPublicAccessBlockConfiguration",
            "ReplicationConfigurationNotFoundError", "ServerSideEncryptionConfigurationNotFoundError",
            "OwnershipControlsNotFoundError", "NoSuchTagSet"}

Document = dict[str, Any]
#: A document that may depend on values known only during apply (a KMS key ARN created earlier).
Deferred = Callable[[], Document]


def canonical(document: Any) -> Any:
    """Parse JSON strings and sort keys, so equal policies compare equal whatever their source."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError:
            return document
    return json.loads(json.dumps(document, sort_keys=True))


def unless_missing(read: Callable[[], Any], default: Any = None) -> Any:
    """What ``read()`` returns, or ``default`` when AWS says the thing read (a resource, or its policy or
    configuration) does not exist."""
    try:
        return read()
    except ClientError as exc:
        if error_code(exc) in _MISSING or http_status(exc) == 404:
            return default
        raise


def _athena_arn(session: AccountSession, resource: str) -> str:
    """The ARN of an Athena ``resource`` (``workgroup/<name>``, ...) in the session's account, region and partition."""
    region = session.region
    return f"arn:{partition_of(region)}:athena:{region}:{session.account_id}:{resource}"


def _tags(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {MANAGED_TAG[0]: MANAGED_TAG[1], **(extra or {})}


def _tag_list(tags: Mapping[str, str], key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    """``tags`` in the request shape of AWS (KMS names the fields ``TagKey`` and ``TagValue``)."""
    return [{key: k, value: v} for k, v in tags.items()]


def _tag_dict(tags: list[dict[str, str]], key: str = "Key", value: str = "Value") -> dict[str, str]:
    """The tags of an AWS reply as a dict (the inverse of :func:`_tag_list`)."""
    return {t[key]: t[value] for t in tags}


def _bucket_tags(s3: Any, bucket: str) -> dict[str, str]:
    return unless_missing(lambda: _tag_dict(s3.get_bucket_tagging(Bucket=bucket)["TagSet"]), {})


def _untagged(state: Document) -> Document:
    return {key: value for key, value in state.items() if key != "tags"}


_UNMANAGED = f"has no tag {MANAGED_TAG[0]}={MANAGED_TAG[1]}, so bootstrap did not create it"
_HAND_OVER = (f"choose another name in the topology, or tag it {MANAGED_TAG[0]}={MANAGED_TAG[1]} to hand it to "
              "bootstrap (apply then rewrites it and destroy deletes it)")


class Unowned(StrEnum):
    """What ``plan`` and ``apply`` do with a resource that exists without the managed-by tag (one bootstrap did
    not create). Whichever it is, bootstrap never tags such a resource and ``destroy`` never deletes it."""

    #: refused: plan and apply raise ConfigError before anything is written
    REFUSE = "refuse"
    #: used as it is when it already is what bootstrap would make it (tags aside); refused otherwise
    USE_IF_EQUAL = "use if equal"
    #: used as it is, whatever its settings
    USE = "use"
    #: bootstrap sets what featureshare needs (plan shows it as an update); its tags stay as they are
    CONFIGURE = "configure"


@dataclass
class Resource(ABC):
    """One managed resource in one account (``account`` is "central" or a consumer name)."""

    account: str
    name: str
    kind: str = field(init=False, default="resource")
    #: the topology setting that names it, for messages (e.g. ``consumers[0].athena_workgroup``)
    setting: str = field(default="", kw_only=True)
    #: bootstrap no longer wants it: plan and apply remove it when bootstrap created it
    retired: bool = field(default=False, kw_only=True)
    #: asked before it is removed: whether something bootstrap did not create still needs it (it then stays)
    needed_by_others: Callable[[], bool] | None = field(default=None, kw_only=True, repr=False, compare=False)
    #: what plan and apply do when it exists without the managed-by tag
    unowned: Unowned = field(default=Unowned.REFUSE, kw_only=True)

    @abstractmethod
    def read(self, session: AccountSession) -> Document | None:
        """Current normalised state, ``None`` if absent."""

    @abstractmethod
    def desired(self) -> Document:
        """Normalised desired state."""

    @abstractmethod
    def create(self, session: AccountSession) -> None: ...

    def update(self, session: AccountSession, current: Document) -> None:
        self.create(session)

    @abstractmethod
    def delete(self, session: AccountSession) -> None: ...

    def wanted(self) -> Document | None:
        """The desired state, or ``None`` when bootstrap wants it gone."""
        return None if self.retired else self.desired()

    def in_use(self) -> bool:
        """Whether something bootstrap did not create still needs it, so that it stays."""
        return self.needed_by_others is not None and self.needed_by_others()

    def managed(self, current: Document) -> bool:
        """Whether bootstrap created this resource (only those are destroyed)."""
        return current.get("tags", {}).get(MANAGED_TAG[0]) == MANAGED_TAG[1]

    def comparable(self, current: Document, desired: Document) -> tuple[Document, Document]:
        """The two states plan compares: whole for what bootstrap created, tags aside for what it did not."""
        if self.managed(current):
            return current, desired
        return _untagged(current), _untagged(desired)

    def takeover(self, current: Document) -> str | None:
        """Why bootstrap may not write this resource as it exists (``current``), or ``None`` when it may."""
        if self.managed(current) or self.unowned in (Unowned.USE, Unowned.CONFIGURE):
            return None
        if self.unowned is Unowned.USE_IF_EQUAL:
            mine, theirs = _untagged(self.desired()), _untagged(current)
            differing = sorted(key for key in {*mine, *theirs} if mine.get(key) != theirs.get(key))
            if not differing:
                return None
            return (f"{self.address} exists and {_UNMANAGED}; it differs from what bootstrap would make it "
                    f"({', '.join(differing)}) and bootstrap does not change what it did not create: {_HAND_OVER}")
        return f"{self.address} exists and {_UNMANAGED}; bootstrap does not take it over: {_HAND_OVER}"

    @property
    def address(self) -> str:
        return f"{self.account}:{self.kind}:{self.name}"


@dataclass
class IamRole(Resource):
    """A role with its trust policy. One bootstrap did not create is used when its trust policy and session
    duration already are bootstrap's (refused otherwise); an execution role is passed ``unowned=Unowned.USE``:
    its trust policy and tags are its owner's."""

    trust: Document | Deferred = field(default_factory=dict)
    description: str = ""
    max_session_seconds: int = 3600
    #: extra role tags (principal tags of its sessions, e.g. ``team`` for the central trust's TagSession rule)
    role_tags: Mapping[str, str] = field(default_factory=dict)
    unowned: Unowned = field(default=Unowned.USE_IF_EQUAL, kw_only=True)

    def __post_init__(self) -> None:
        self.kind = "iam-role"

    def _all_tags(self) -> dict[str, str]:
        return {**self.role_tags, **_tags()}

    def desired(self) -> Document:
        trust = self.trust() if callable(self.trust) else self.trust
        return {"trust": canonical(trust), "max_session_seconds": self.max_session_seconds,
                "tags": self._all_tags()}

    def read(self, session: AccountSession) -> Document | None:
        iam = session.client("iam")
        role = unless_missing(lambda: iam.get_role(RoleName=self.name)["Role"])
        if role is None:
            return None
        tags = _tag_dict(iam.list_role_tags(RoleName=self.name).get("Tags", []))
        return {"trust": canonical(role["AssumeRolePolicyDocument"]),
                "max_session_seconds": role.get("MaxSessionDuration", 3600), "tags": tags}

    def create(self, session: AccountSession) -> None:
        state = self.desired()
        session.client("iam").create_role(
            RoleName=self.name, AssumeRolePolicyDocument=json.dumps(state["trust"]), Description=self.description,
            MaxSessionDuration=self.max_session_seconds,
            Tags=_tag_list(self._all_tags()))

    def update(self, session: AccountSession, current: Document) -> None:
        iam = session.client("iam")
        state = self.desired()
        iam.update_assume_role_policy(RoleName=self.name, PolicyDocument=json.dumps(state["trust"]))
        iam.update_role(RoleName=self.name, MaxSessionDuration=self.max_session_seconds)
        iam.tag_role(RoleName=self.name, Tags=_tag_list(self._all_tags()))

    def delete(self, session: AccountSession) -> None:
        iam = session.client("iam")
        for policy in iam.list_role_policies(RoleName=self.name).get("PolicyNames", []):
            iam.delete_role_policy(RoleName=self.name, PolicyName=policy)
        iam.delete_role(RoleName=self.name)


@dataclass
class _PolicyResource(Resource):
    """A resource whose whole state is one policy document (rendered at apply time when ``Deferred``)."""

    document: Document | Deferred = field(default_factory=dict)

    def desired(self) -> Document:
        document = self.document() if callable(self.document) else self.document
        return {"policy": canonical(document)}


@dataclass
class _SharedPolicy(_PolicyResource):
    """A policy bootstrap may share with others: while :meth:`_shared` holds, its statements are merged in by Sid
    (:func:`~featureshare.bootstrap.statements.merge_statements`: each replaces the statement of the same Sid or
    is appended, every other statement is kept in its place) and ``delete`` removes only them, deleting the
    policy when nothing else is left. Otherwise the policy is bootstrap's, written and deleted whole.

    The merge starts from the policy as last read, so ``apply`` (which reads each resource just before writing
    it) never drops a statement added since ``plan``.
    """

    _current: Document | None = field(default=None, init=False, repr=False)

    @abstractmethod
    def _shared(self) -> bool:
        """Whether others may hold statements in this policy."""

    @abstractmethod
    def _put(self, session: AccountSession, policy: Document) -> None: ...

    @abstractmethod
    def _remove(self, session: AccountSession) -> None: ...

    def _template(self) -> Document:
        return super().desired()["policy"]

    def _ours(self, statement: Mapping[str, Any]) -> bool:
        """Whether ``statement`` is bootstrap's: it has the Sid of a statement of the rendered template."""
        return statement.get("Sid") in {s.get("Sid") for s in self._template()["Statement"]} - {None, ""}

    def _remember(self, policy: Document | None) -> Document | None:
        self._current = policy
        return None if policy is None else {"policy": policy}

    def desired(self) -> Document:
        template = self._template()
        if self._current is None or not self._shared():
            return {"policy": template}
        return {"policy": canonical(merge_statements(self._current, template["Statement"]))}

    def create(self, session: AccountSession) -> None:
        self._put(session, self.desired()["policy"])

    def delete(self, session: AccountSession) -> None:
        current = self.read(session)
        if current is None:
            return
        ours = {str(s.get("Sid")) for s in statements_of(current["policy"]) if self._ours(s)}
        kept = remove_statements(current["policy"], ours) if self._shared() else {"Statement": []}
        if kept["Statement"]:
            self._put(session, kept)
        else:
            self._remove(session)

    def managed(self, current: Document) -> bool:
        """Whether it holds bootstrap's statements (``destroy`` removes those)."""
        return any(self._ours(s) for s in statements_of(current.get("policy", {})))


@dataclass
class IamRolePolicy(_PolicyResource):
    """An inline policy ``name`` (always ``featureshare-...``) on ``role``."""

    role: str = ""

    def __post_init__(self) -> None:
        self.kind = "iam-role-policy"

    @property
    def address(self) -> str:
        return f"{self.account}:{self.kind}:{self.role}/{self.name}"

    def read(self, session: AccountSession) -> Document | None:
        reply = unless_missing(lambda: session.client("iam").get_role_policy(RoleName=self.role,
                                                                              PolicyName=self.name))
        return None if reply is None else {"policy": canonical(reply["PolicyDocument"])}

    def create(self, session: AccountSession) -> None:
        session.client("iam").put_role_policy(RoleName=self.role, PolicyName=self.name,
                                              PolicyDocument=json.dumps(self.desired()["policy"]))

    def delete(self, session: AccountSession) -> None:
        session.client("iam").delete_role_policy(RoleName=self.role, PolicyName=self.name)

    def managed(self, current: Document) -> bool:
        return self.name.startswith("featureshare-")


@dataclass
class KmsKey(Resource):
    """A customer managed key found by its alias (``name`` is ``alias/...``); its policy is :class:`KmsKeyPolicy`.

    The key policy names roles that must exist first, so the key is created with the account-root default
    policy and the real policy is put later in the same apply.

    An alias that names a key bootstrap did not create is refused: bootstrap would replace that key's policy and
    ``destroy`` would delete it.
    """

    description: str = ""
    arn: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.kind = "kms-key"

    def desired(self) -> Document:
        return {"alias": self.name, "tags": _tags()}

    def read(self, session: AccountSession) -> Document | None:
        kms = session.client("kms")
        meta = unless_missing(lambda: kms.describe_key(KeyId=self.name)["KeyMetadata"])
        if meta is None:
            return None
        tags = _tag_dict(kms.list_resource_tags(KeyId=meta["KeyId"]).get("Tags", []), "TagKey", "TagValue")
        state = {"alias": self.name, "tags": tags}
        if meta.get("KeyState") in ("PendingDeletion", "Disabled") and self.managed(state):
            return None
        self.arn = meta["Arn"]
        return state

    def takeover(self, current: Document) -> str | None:
        if self.managed(current):
            return None
        setting = self.setting or "the key setting"
        key_id = str(self.arn).rsplit("/", 1)[-1]
        return (f"{self.name} names key {key_id} in account {str(self.arn).split(':')[4]}, which {_UNMANAGED}; "
                "bootstrap never takes over a key it did not create (it would replace the key's policy, and "
                f"destroy would delete the key). To use that key as it is, set {setting} = \"{self.arn}\": "
                "bootstrap then checks its policy and lists what is missing under ACTION NEEDED. Otherwise "
                f"choose another alias for {setting}")

    def create(self, session: AccountSession) -> None:
        kms = session.client("kms")
        key = kms.create_key(Description=self.description, KeyUsage="ENCRYPT_DECRYPT",
                             Tags=_tag_list(_tags(), "TagKey", "TagValue"))["KeyMetadata"]
        kms.create_alias(AliasName=self.name, TargetKeyId=key["KeyId"])
        self.arn = key["Arn"]

    def update(self, session: AccountSession, current: Document) -> None:
        key_id = session.client("kms").describe_key(KeyId=self.name)["KeyMetadata"]["KeyId"]
        session.client("kms").tag_resource(KeyId=key_id, Tags=_tag_list(_tags(), "TagKey", "TagValue"))

    def delete(self, session: AccountSession) -> None:
        kms = session.client("kms")
        key_id = kms.describe_key(KeyId=self.name)["KeyMetadata"]["KeyId"]
        kms.delete_alias(AliasName=self.name)
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)


@dataclass
class KmsKeyPolicy(_PolicyResource):
    """The ``default`` key policy of the key with alias ``name`` (bootstrap's when the key is)."""

    _key_managed: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.kind = "kms-key-policy"

    def read(self, session: AccountSession) -> Document | None:
        kms = session.client("kms")
        key_id = unless_missing(lambda: kms.describe_key(KeyId=self.name)["KeyMetadata"]["KeyId"])
        if key_id is None:
            return None
        tags = _tag_dict(kms.list_resource_tags(KeyId=key_id).get("Tags", []), "TagKey", "TagValue")
        self._key_managed = tags.get(MANAGED_TAG[0]) == MANAGED_TAG[1]
        return {"policy": canonical(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])}

    def create(self, session: AccountSession) -> None:
        key_id = session.client("kms").describe_key(KeyId=self.name)["KeyMetadata"]["KeyId"]
        session.client("kms").put_key_policy(KeyId=key_id, PolicyName="default",
                                             Policy=json.dumps(self.desired()["policy"]))

    def delete(self, session: AccountSession) -> None:
        """The policy goes with its key (scheduled for deletion by :class:`KmsKey`)."""

    def managed(self, current: Document) -> bool:
        return self._key_managed

    def takeover(self, current: Document) -> str | None:
        return None  # its key's (KmsKey) to refuse


@dataclass
class S3Bucket(Resource):
    """A private bucket: SSE (KMS when ``kms_key`` is given), versioning, public access block, owner-enforced.

    A bucket of the topology may exist already (a consumer's training bucket, an existing offline store): one
    bootstrap did not create gets those settings but keeps its tags, and is never deleted.
    """

    region: str = "us-east-1"
    kms_key: Callable[[], str | None] | None = None
    versioning: bool = True
    unowned: Unowned = field(default=Unowned.CONFIGURE, kw_only=True)

    def __post_init__(self) -> None:
        self.kind = "s3-bucket"

    def desired(self) -> Document:
        key = self.kms_key() if self.kms_key else None
        encryption = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key} if key else {"SSEAlgorithm": "AES256"}
        return {"encryption": encryption, "versioning": "Enabled" if self.versioning else "Suspended",
                "public_access_block": dict.fromkeys(
                    ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True),
                "ownership": "BucketOwnerEnforced", "tags": _tags()}

    def read(self, session: AccountSession) -> Document | None:
        s3 = session.client("s3")
        if unless_missing(lambda: s3.head_bucket(Bucket=self.name)) is None:
            return None
        return {
            "encryption": unless_missing(lambda: s3.get_bucket_encryption(Bucket=self.name)[
                "ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"], {}),
            "versioning": s3.get_bucket_versioning(Bucket=self.name).get("Status", "Suspended"),
            "public_access_block": unless_missing(lambda: s3.get_public_access_block(Bucket=self.name)[
                "PublicAccessBlockConfiguration"], {}),
            "ownership": unless_missing(lambda: s3.get_bucket_ownership_controls(Bucket=self.name)[
                "OwnershipControls"]["Rules"][0]["ObjectOwnership"], ""),
            "tags": _bucket_tags(s3, self.name),
        }

    def create(self, session: AccountSession) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.name}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        session.client("s3").create_bucket(**kwargs)
        self._configure(session, tag=True)

    def update(self, session: AccountSession, current: Document) -> None:
        self._configure(session, tag=self.managed(current))

    def _configure(self, session: AccountSession, *, tag: bool) -> None:
        s3 = session.client("s3")
        state = self.desired()
        rule: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": state["encryption"]}
        if state["encryption"]["SSEAlgorithm"] == "aws:kms":
            rule["BucketKeyEnabled"] = True
        s3.put_bucket_encryption(Bucket=self.name, ServerSideEncryptionConfiguration={"Rules": [rule]})
        s3.put_bucket_versioning(Bucket=self.name, VersioningConfiguration={"Status": state["versioning"]})
        s3.put_public_access_block(Bucket=self.name, PublicAccessBlockConfiguration=state["public_access_block"])
        s3.put_bucket_ownership_controls(Bucket=self.name, OwnershipControls={
            "Rules": [{"ObjectOwnership": state["ownership"]}]})
        if tag:
            s3.put_bucket_tagging(Bucket=self.name, Tagging={
                "TagSet": _tag_list(state["tags"])})

    def delete(self, session: AccountSession, *, force: bool = False) -> None:
        s3 = session.client("s3")
        objects = _all_versions(s3, self.name)
        if objects and not force:
            raise ValidationError(f"bucket {self.name} is not empty ({len(objects)} objects or versions)",
                                  field="bucket", value=self.name, hint="pass --force to delete its contents")
        for start in range(0, len(objects), 1000):
            s3.delete_objects(Bucket=self.name, Delete={"Objects": objects[start:start + 1000], "Quiet": True})
        s3.delete_bucket(Bucket=self.name)


def _all_versions(s3: Any, bucket: str) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            found.append({"Key": item["Key"], "VersionId": item["VersionId"]})
    return found


@dataclass
class S3BucketPolicy(_SharedPolicy):
    """The policy of bucket ``name``. On a bucket bootstrap created (tagged managed-by) the policy is bootstrap's:
    written whole (a statement added by hand is drift that ``apply`` removes) and deleted with the bucket. On a
    bucket it did not create (a consumer's existing training bucket, say) bootstrap's statements are merged in
    by Sid and ``destroy`` removes only them (the policy too when nothing else is left)."""

    unowned: Unowned = field(default=Unowned.CONFIGURE, kw_only=True)
    _bucket_managed: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.kind = "s3-bucket-policy"

    def read(self, session: AccountSession) -> Document | None:
        s3 = session.client("s3")
        reply = unless_missing(lambda: s3.get_bucket_policy(Bucket=self.name))
        if reply is None:
            return self._remember(None)
        policy = canonical(reply["Policy"])
        tags = _bucket_tags(s3, self.name)
        self._bucket_managed = tags.get(MANAGED_TAG[0]) == MANAGED_TAG[1]
        return self._remember(policy)

    def _shared(self) -> bool:
        return not self._bucket_managed

    def _put(self, session: AccountSession, policy: Document) -> None:
        session.client("s3").put_bucket_policy(Bucket=self.name, Policy=json.dumps(policy))

    def _remove(self, session: AccountSession) -> None:
        session.client("s3").delete_bucket_policy(Bucket=self.name)

    def managed(self, current: Document) -> bool:
        return self._bucket_managed or super().managed(current)


@dataclass
class GlueResourcePolicy(_SharedPolicy):
    """The account's Glue Data Catalog resource policy (one per account and region, shared with whatever else the
    account does): bootstrap's statements are merged in by Sid and ``delete`` removes only them."""

    unowned: Unowned = field(default=Unowned.CONFIGURE, kw_only=True)

    def __post_init__(self) -> None:
        self.kind = "glue-resource-policy"

    def read(self, session: AccountSession) -> Document | None:
        reply = unless_missing(lambda: session.client("glue").get_resource_policy(), {})
        return self._remember(canonical(reply["PolicyInJson"]) if reply.get("PolicyInJson") else None)

    def _shared(self) -> bool:
        return True

    def _put(self, session: AccountSession, policy: Document) -> None:
        session.client("glue").put_resource_policy(PolicyInJson=json.dumps(policy), EnableHybrid="TRUE")

    def _remove(self, session: AccountSession) -> None:
        session.client("glue").delete_resource_policy()

    def _ours(self, statement: Mapping[str, Any]) -> bool:
        # Also the statements bootstrap wrote from earlier templates, whose Sids started with FeatureShare.
        return super()._ours(statement) or str(statement.get("Sid", "")).startswith("FeatureShare")


@dataclass
class GlueDatabase(Resource):
    """A scratch database; one bootstrap did not create (training-set builds create it when missing) is used as
    it is."""

    description: str = "featureshare scratch tables (staged entity tables of training-set builds)"
    unowned: Unowned = field(default=Unowned.USE, kw_only=True)

    def __post_init__(self) -> None:
        self.kind = "glue-database"

    def desired(self) -> Document:
        return {"description": self.description, "tags": _tags()}

    def read(self, session: AccountSession) -> Document | None:
        database = unless_missing(lambda: session.client("glue").get_database(Name=self.name)["Database"])
        if database is None:
            return None
        # Glue databases take no tags on this path; bootstrap marks its own in Parameters.
        return {"description": database.get("Description", ""), "tags": dict(database.get("Parameters", {}))}

    def _input(self) -> dict[str, Any]:
        return {"Name": self.name, "Description": self.description, "Parameters": _tags()}

    def create(self, session: AccountSession) -> None:
        session.client("glue").create_database(DatabaseInput=self._input())

    def update(self, session: AccountSession, current: Document) -> None:
        session.client("glue").update_database(Name=self.name, DatabaseInput=self._input())

    def delete(self, session: AccountSession) -> None:
        session.client("glue").delete_database(Name=self.name)


@dataclass
class AthenaWorkGroup(Resource):
    """A workgroup whose result configuration is enforced; ``acl`` (e.g. ``BUCKET_OWNER_FULL_CONTROL``) is the
    canned ACL of every object it writes, needed when results land in another account's bucket."""

    output_location: str = ""
    expected_bucket_owner: str = ""
    acl: str = ""
    unowned: Unowned = field(default=Unowned.USE_IF_EQUAL, kw_only=True)

    def __post_init__(self) -> None:
        self.kind = "athena-workgroup"

    def desired(self) -> Document:
        state = {"output_location": self.output_location, "enforce": True,
                 "expected_bucket_owner": self.expected_bucket_owner, "tags": _tags()}
        return {**state, "acl": self.acl} if self.acl else state

    def read(self, session: AccountSession) -> Document | None:
        athena = session.client("athena")
        group = unless_missing(lambda: athena.get_work_group(WorkGroup=self.name).get("WorkGroup"))
        if not group:
            return None
        config = group.get("Configuration", {})
        result = config.get("ResultConfiguration", {})
        tags = _tag_dict(athena.list_tags_for_resource(ResourceARN=self._arn(session)).get("Tags", []))
        state = {"output_location": result.get("OutputLocation", ""),
                 "enforce": bool(config.get("EnforceWorkGroupConfiguration", False)),
                 "expected_bucket_owner": result.get("ExpectedBucketOwner", ""), "tags": tags}
        acl = (result.get("AclConfiguration") or {}).get("S3AclOption", "")
        return {**state, "acl": acl} if acl or self.acl else state

    def _arn(self, session: AccountSession) -> str:
        return _athena_arn(session, f"workgroup/{self.name}")

    def _configuration(self) -> dict[str, Any]:
        result: dict[str, Any] = {"OutputLocation": self.output_location}
        if self.expected_bucket_owner:
            result["ExpectedBucketOwner"] = self.expected_bucket_owner
        if self.acl:
            result["AclConfiguration"] = {"S3AclOption": self.acl}
        return {"ResultConfiguration": result, "EnforceWorkGroupConfiguration": True,
                "PublishCloudWatchMetricsEnabled": True}

    def create(self, session: AccountSession) -> None:
        session.client("athena").create_work_group(
            Name=self.name, Configuration=self._configuration(), Description="featureshare training-set queries",
            Tags=_tag_list(_tags()))

    def update(self, session: AccountSession, current: Document) -> None:
        config = self._configuration()
        session.client("athena").update_work_group(WorkGroup=self.name, ConfigurationUpdates={
            "ResultConfigurationUpdates": config["ResultConfiguration"],
            "EnforceWorkGroupConfiguration": True})

    def delete(self, session: AccountSession) -> None:
        session.client("athena").delete_work_group(WorkGroup=self.name, RecursiveDeleteOption=True)


@dataclass
class AthenaDataCatalog(Resource):
    """A GLUE data catalog registering another account's Glue catalog (``catalog-id``)."""

    catalog_id: str = ""
    unowned: Unowned = field(default=Unowned.USE_IF_EQUAL, kw_only=True)

    def __post_init__(self) -> None:
        self.kind = "athena-data-catalog"

    def desired(self) -> Document:
        return {"type": "GLUE", "catalog-id": self.catalog_id, "tags": _tags()}

    def read(self, session: AccountSession) -> Document | None:
        athena = session.client("athena")
        catalog = unless_missing(lambda: athena.get_data_catalog(Name=self.name).get("DataCatalog"))
        if not catalog:
            return None
        arn = _athena_arn(session, f"datacatalog/{self.name}")
        tags = _tag_dict(athena.list_tags_for_resource(ResourceARN=arn).get("Tags", []))
        return {"type": catalog.get("Type"), "catalog-id": catalog.get("Parameters", {}).get("catalog-id", ""),
                "tags": tags}

    def create(self, session: AccountSession) -> None:
        session.client("athena").create_data_catalog(
            Name=self.name, Type="GLUE", Parameters={"catalog-id": self.catalog_id},
            Description="featureshare: the central account's Glue Data Catalog",
            Tags=_tag_list(_tags()))

    def update(self, session: AccountSession, current: Document) -> None:
        session.client("athena").update_data_catalog(Name=self.name, Type="GLUE",
                                                     Parameters={"catalog-id": self.catalog_id})

    def delete(self, session: AccountSession) -> None:
        session.client("athena").delete_data_catalog(Name=self.name)

"""The AWS resources bootstrap manages, each able to read its current state, create, update and delete itself.

A resource's state is a plain, normalised dict (policies parsed and key-sorted) so that plan = diff of
``read()`` against ``desired()``. Everything bootstrap creates carries the tag ``managed-by=featureshare``;
``destroy`` deletes only what carries it (inline policies are recognised by their ``featureshare-`` name).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from featureshare.bootstrap.templates import partition_of
from featureshare.errors import error_code, http_status
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
    "S3BucketReplication",
    "canonical",
]

MANAGED_TAG = ("managed-by", "featureshare")
_MISSING = {"NoSuchEntity", "NoSuchBucket", "NoSuchBucketPolicy", "NotFoundException", "EntityNotFoundException",
            "ResourceNotFoundException", "InvalidRequestException", "404", "NoSuchPublicAccessBlockConfiguration",
            "ReplicationConfigurationNotFoundError"}

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


def _missing(exc: ClientError) -> bool:
    return error_code(exc) in _MISSING or http_status(exc) == 404


def _athena_arn(session: AccountSession, resource: str) -> str:
    """The ARN of an Athena ``resource`` (``workgroup/<name>``, ...) in the session's account, region and partition."""
    region = session.region
    return f"arn:{partition_of(region)}:athena:{region}:{session.account_id}:{resource}"


def _tags(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {MANAGED_TAG[0]: MANAGED_TAG[1], **(extra or {})}


@dataclass
class Resource(ABC):
    """One managed resource in one account (``account`` is "central" or a consumer name)."""

    account: str
    name: str
    kind: str = field(init=False, default="resource")

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

    def managed(self, current: Document) -> bool:
        """Whether bootstrap created this resource (only those are destroyed)."""
        return current.get("tags", {}).get(MANAGED_TAG[0]) == MANAGED_TAG[1]

    @property
    def address(self) -> str:
        return f"{self.account}:{self.kind}:{self.name}"


@dataclass
class IamRole(Resource):
    trust: Document | Deferred = field(default_factory=dict)
    description: str = ""
    max_session_seconds: int = 3600
    #: extra role tags (principal tags of its sessions, e.g. ``team`` for the central trust's TagSession rule)
    role_tags: Mapping[str, str] = field(default_factory=dict)

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
        try:
            role = iam.get_role(RoleName=self.name)["Role"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=self.name).get("Tags", [])}
        return {"trust": canonical(role["AssumeRolePolicyDocument"]),
                "max_session_seconds": role.get("MaxSessionDuration", 3600), "tags": tags}

    def create(self, session: AccountSession) -> None:
        state = self.desired()
        session.client("iam").create_role(
            RoleName=self.name, AssumeRolePolicyDocument=json.dumps(state["trust"]), Description=self.description,
            MaxSessionDuration=self.max_session_seconds,
            Tags=[{"Key": k, "Value": v} for k, v in self._all_tags().items()])

    def update(self, session: AccountSession, current: Document) -> None:
        iam = session.client("iam")
        state = self.desired()
        iam.update_assume_role_policy(RoleName=self.name, PolicyDocument=json.dumps(state["trust"]))
        iam.update_role(RoleName=self.name, MaxSessionDuration=self.max_session_seconds)
        iam.tag_role(RoleName=self.name, Tags=[{"Key": k, "Value": v} for k, v in self._all_tags().items()])

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
class IamRolePolicy(_PolicyResource):
    """An inline policy ``name`` (always ``featureshare-...``) on ``role``."""

    role: str = ""

    def __post_init__(self) -> None:
        self.kind = "iam-role-policy"

    @property
    def address(self) -> str:
        return f"{self.account}:{self.kind}:{self.role}/{self.name}"

    def read(self, session: AccountSession) -> Document | None:
        try:
            reply = session.client("iam").get_role_policy(RoleName=self.role, PolicyName=self.name)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return {"policy": canonical(reply["PolicyDocument"])}

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
    """

    description: str = ""
    arn: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.kind = "kms-key"

    def desired(self) -> Document:
        return {"alias": self.name, "tags": _tags()}

    def read(self, session: AccountSession) -> Document | None:
        kms = session.client("kms")
        try:
            meta = kms.describe_key(KeyId=self.name)["KeyMetadata"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        if meta.get("KeyState") in ("PendingDeletion", "Disabled"):
            return None
        self.arn = meta["Arn"]
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=meta["KeyId"]).get("Tags", [])}
        return {"alias": self.name, "tags": tags}

    def create(self, session: AccountSession) -> None:
        kms = session.client("kms")
        key = kms.create_key(Description=self.description, KeyUsage="ENCRYPT_DECRYPT",
                             Tags=[{"TagKey": k, "TagValue": v} for k, v in _tags().items()])["KeyMetadata"]
        kms.create_alias(AliasName=self.name, TargetKeyId=key["KeyId"])
        self.arn = key["Arn"]

    def update(self, session: AccountSession, current: Document) -> None:
        key_id = session.client("kms").describe_key(KeyId=self.name)["KeyMetadata"]["KeyId"]
        session.client("kms").tag_resource(KeyId=key_id, Tags=[{"TagKey": k, "TagValue": v}
                                                                 for k, v in _tags().items()])

    def delete(self, session: AccountSession) -> None:
        kms = session.client("kms")
        key_id = kms.describe_key(KeyId=self.name)["KeyMetadata"]["KeyId"]
        kms.delete_alias(AliasName=self.name)
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)


@dataclass
class KmsKeyPolicy(_PolicyResource):
    """The ``default`` key policy of the key with alias ``name``."""


    def __post_init__(self) -> None:
        self.kind = "kms-key-policy"

    def read(self, session: AccountSession) -> Document | None:
        try:
            key_id = session.client("kms").describe_key(KeyId=self.name)["KeyMetadata"]["KeyId"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return {"policy": canonical(session.client("kms").get_key_policy(KeyId=key_id, PolicyName="default")[
            "Policy"])}

    def create(self, session: AccountSession) -> None:
        key_id = session.client("kms").describe_key(KeyId=self.name)["KeyMetadata"]["KeyId"]
        session.client("kms").put_key_policy(KeyId=key_id, PolicyName="default",
                                             Policy=json.dumps(self.desired()["policy"]))

    def delete(self, session: AccountSession) -> None:
        """The policy goes with its key (scheduled for deletion by :class:`KmsKey`)."""

    def managed(self, current: Document) -> bool:
        return True


@dataclass
class S3Bucket(Resource):
    """A private bucket: SSE (KMS when ``kms_key`` is given), versioning, public access block, owner-enforced."""

    region: str = "us-east-1"
    kms_key: Callable[[], str | None] | None = None
    versioning: bool = True

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
        try:
            s3.head_bucket(Bucket=self.name)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return {
            "encryption": _try(lambda: s3.get_bucket_encryption(Bucket=self.name)[
                "ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"], {}),
            "versioning": s3.get_bucket_versioning(Bucket=self.name).get("Status", "Suspended"),
            "public_access_block": _try(lambda: s3.get_public_access_block(Bucket=self.name)[
                "PublicAccessBlockConfiguration"], {}),
            "ownership": _try(lambda: s3.get_bucket_ownership_controls(Bucket=self.name)[
                "OwnershipControls"]["Rules"][0]["ObjectOwnership"], ""),
            "tags": _try(lambda: {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=self.name)["TagSet"]},
                         {}),
        }

    def create(self, session: AccountSession) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.name}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        session.client("s3").create_bucket(**kwargs)
        self.update(session, {})

    def update(self, session: AccountSession, current: Document) -> None:
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
        s3.put_bucket_tagging(Bucket=self.name, Tagging={
            "TagSet": [{"Key": k, "Value": v} for k, v in state["tags"].items()]})

    def delete(self, session: AccountSession, *, force: bool = False) -> None:
        s3 = session.client("s3")
        objects = _all_versions(s3, self.name)
        if objects and not force:
            from featureshare.errors import ValidationError

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


def _try(read: Callable[[], Any], default: Any) -> Any:
    try:
        return read()
    except ClientError as exc:
        if _missing(exc) or error_code(exc) in ("ServerSideEncryptionConfigurationNotFoundError",
                                                "OwnershipControlsNotFoundError", "NoSuchTagSet"):
            return default
        raise


@dataclass
class S3BucketPolicy(_PolicyResource):

    def __post_init__(self) -> None:
        self.kind = "s3-bucket-policy"

    def read(self, session: AccountSession) -> Document | None:
        try:
            return {"policy": canonical(session.client("s3").get_bucket_policy(Bucket=self.name)["Policy"])}
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def create(self, session: AccountSession) -> None:
        session.client("s3").put_bucket_policy(Bucket=self.name, Policy=json.dumps(self.desired()["policy"]))

    def delete(self, session: AccountSession) -> None:
        session.client("s3").delete_bucket_policy(Bucket=self.name)

    def managed(self, current: Document) -> bool:
        return True  # the bucket is ours; its policy goes with it


@dataclass
class S3BucketReplication(Resource):
    """The replication configuration of bucket ``name``, replaced whole on every change.

    ``configuration`` is the ``ReplicationConfiguration`` request shape (``Role`` and ``Rules``); rendered at
    apply time when ``Deferred``, since replica key ARNs may be known only then.
    """

    configuration: Document | Deferred = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = "s3-bucket-replication"

    def desired(self) -> Document:
        configuration = self.configuration() if callable(self.configuration) else self.configuration
        return {"configuration": canonical(configuration)}

    def read(self, session: AccountSession) -> Document | None:
        try:
            reply = session.client("s3").get_bucket_replication(Bucket=self.name)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return {"configuration": canonical(reply["ReplicationConfiguration"])}

    def create(self, session: AccountSession) -> None:
        session.client("s3").put_bucket_replication(Bucket=self.name,
                                                    ReplicationConfiguration=self.desired()["configuration"])

    def delete(self, session: AccountSession) -> None:
        session.client("s3").delete_bucket_replication(Bucket=self.name)

    def managed(self, current: Document) -> bool:
        """Ours when it replicates with the role bootstrap renders into it."""
        return bool(current.get("configuration", {}).get("Role") == self.desired()["configuration"].get("Role"))


@dataclass
class GlueResourcePolicy(_PolicyResource):
    """The account's Glue Data Catalog resource policy (one per account and region)."""


    def __post_init__(self) -> None:
        self.kind = "glue-resource-policy"

    def read(self, session: AccountSession) -> Document | None:
        try:
            reply = session.client("glue").get_resource_policy()
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return {"policy": canonical(reply["PolicyInJson"])} if reply.get("PolicyInJson") else None

    def create(self, session: AccountSession) -> None:
        session.client("glue").put_resource_policy(PolicyInJson=json.dumps(self.desired()["policy"]),
                                                    EnableHybrid="TRUE")

    def delete(self, session: AccountSession) -> None:
        session.client("glue").delete_resource_policy()

    def managed(self, current: Document) -> bool:
        # Ours when it carries a statement of the rendered template (its Sids do not share a prefix).
        ours = {str(s.get("Sid", "")) for s in self.desired()["policy"].get("Statement", [])} - {""}
        return any(str(s.get("Sid", "")) in ours or str(s.get("Sid", "")).startswith("FeatureShare")
                   for s in current.get("policy", {}).get("Statement", []))


@dataclass
class GlueDatabase(Resource):
    description: str = "featureshare scratch tables (staged entity tables of training-set builds)"

    def __post_init__(self) -> None:
        self.kind = "glue-database"

    def desired(self) -> Document:
        return {"description": self.description, "tags": _tags()}

    def read(self, session: AccountSession) -> Document | None:
        try:
            database = session.client("glue").get_database(Name=self.name)["Database"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
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

    def __post_init__(self) -> None:
        self.kind = "athena-workgroup"

    def desired(self) -> Document:
        state = {"output_location": self.output_location, "enforce": True,
                 "expected_bucket_owner": self.expected_bucket_owner, "tags": _tags()}
        return {**state, "acl": self.acl} if self.acl else state

    def read(self, session: AccountSession) -> Document | None:
        athena = session.client("athena")
        try:
            group = athena.get_work_group(WorkGroup=self.name).get("WorkGroup")
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        if not group:
            return None
        config = group.get("Configuration", {})
        result = config.get("ResultConfiguration", {})
        tags = {t["Key"]: t["Value"] for t in athena.list_tags_for_resource(ResourceARN=self._arn(session))
                .get("Tags", [])}
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
            Tags=[{"Key": k, "Value": v} for k, v in _tags().items()])

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

    def __post_init__(self) -> None:
        self.kind = "athena-data-catalog"

    def desired(self) -> Document:
        return {"type": "GLUE", "catalog-id": self.catalog_id, "tags": _tags()}

    def read(self, session: AccountSession) -> Document | None:
        athena = session.client("athena")
        try:
            catalog = athena.get_data_catalog(Name=self.name).get("DataCatalog")
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        if not catalog:
            return None
        arn = _athena_arn(session, f"datacatalog/{self.name}")
        tags = {t["Key"]: t["Value"] for t in athena.list_tags_for_resource(ResourceARN=arn).get("Tags", [])}
        return {"type": catalog.get("Type"), "catalog-id": catalog.get("Parameters", {}).get("catalog-id", ""),
                "tags": tags}

    def create(self, session: AccountSession) -> None:
        session.client("athena").create_data_catalog(
            Name=self.name, Type="GLUE", Parameters={"catalog-id": self.catalog_id},
            Description="featureshare: the central account's Glue Data Catalog",
            Tags=[{"Key": k, "Value": v} for k, v in _tags().items()])

    def update(self, session: AccountSession, current: Document) -> None:
        session.client("athena").update_data_catalog(Name=self.name, Type="GLUE",
                                                     Parameters={"catalog-id": self.catalog_id})

    def delete(self, session: AccountSession) -> None:
        session.client("athena").delete_data_catalog(Name=self.name)

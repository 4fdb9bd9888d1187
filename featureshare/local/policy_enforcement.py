"""IAM enforcement for the embedded AWS: trust policies, identity policies and cross-account resource policies.

Every signed request passes through :meth:`PolicyEnforcer.filter` (installed by ``EmbeddedAWS`` with
``moto_internals.set_request_filter``). A request is parsed (:func:`parse_request`, pure), mapped to the IAM
checks AWS would make (:func:`map_request`, pure over a small :class:`Facts` lookup), and each check is
decided with :mod:`featureshare.iampolicy` -- the same evaluator the bootstrap proofs use:

- ``sts:AssumeRole`` (+ ``sts:TagSession`` with session tags, ``sts:SetSourceIdentity``, ``sts:ExternalId``)
  against the role's trust policy and the caller's identity policies; the issued session's tags become
  ``aws:PrincipalTag/*`` of its later calls (over the role's own tags);
- SageMaker feature groups (``aws:RequestTag``/``aws:TagKeys`` on create, ``aws:ResourceTag`` from the group),
  the Feature Store runtime (``sagemaker:PutRecord`` ...), ``iam:PassRole`` of CreateFeatureGroup's RoleArn,
  S3 (with ``s3:prefix``, ``s3:x-amz-acl``), Glue (catalog + database + table ARNs), Athena (workgroup and
  data-catalog ARNs), KMS (key policy always required; SSE-KMS objects need ``kms:Decrypt`` /
  ``kms:GenerateDataKey`` with ``kms:ViaService`` = S3) and IAM (generic ``iam:<Action>``);
- cross-account: the bucket policy, the Glue catalog resource policy or the key policy of the owner must
  allow too; a feature group of another account needs a RAM share, which is not emulated, so it is denied.

Refusals have AWS's wire shape (query XML for STS/IAM, S3's XML error, JSON ``AccessDeniedException``
elsewhere) and AWS's message ``User: <arn> is not authorized to perform: <action> on resource: <arn>
because ...``.

Before any of that, and whether or not enforcement is enabled (or in ``audit`` mode: expiry is
authentication, not policy), a request signed with the keys of an assumed-role session whose expiration is
at or before now on moto's clock is answered as AWS answers it (:func:`expired_token_response`) and never
reaches the service. IAM-user keys (the admins') never expire.

Emulation limits: the EmbeddedAWS admin users (and requests pinned with ``x-moto-account-id``) are never
checked, like an account root; unsigned requests are not checked; ``aws:SecureTransport`` is always true
(the local server speaks plain HTTP); no SCPs, permission boundaries, session policies, ACLs, transitive
session tags or VPC endpoint policies; batch runtime calls are judged as a whole (one denied group refuses
the call); S3 multipart parts and copies check only PutObject/GetObject; unknown actions of a mapped service
are judged as ``<service>:<Action>`` on resource ``*`` (so only a ``*`` resource grant allows them); services
outside sagemaker/featurestore-runtime/s3/glue/athena/kms/iam and STS actions other than AssumeRole are
not checked. Athena's engine reads S3 and Glue in-process: it must call :func:`current_actor` /
:func:`authorize_reads` itself (see their docstrings). Expiry is checked when a request arrives: a query
started before its session expired still finishes, and only AssumeRole sessions expire (moto keeps no
expiry for GetSessionToken / GetFederationToken keys).
"""

from __future__ import annotations

import base64
import contextvars
import json
import logging
import re
import threading
import uuid
import xml.sax.saxutils
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlparse

from featureshare.iampolicy import Decision, Request, evaluate, evaluate_assume_role
from featureshare.local import moto_internals as mi

__all__ = ["Actor", "Check", "Facts", "ParsedRequest", "PolicyEnforcer", "Principal", "authorize_reads",
           "current_actor", "denial_response", "expired_token_response", "map_request", "parse_request",
           "session_expired"]

logger = logging.getLogger(__name__)

PARTITION = "aws"
_VIRTUAL_HOST_RE = re.compile(r"^(?P<bucket>.+)\.s3[.-]")
_QUERY_XML_NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/", "iam": "https://iam.amazonaws.com/doc/2010-05-08/"}


# ------------------------------------------------------------------------------------------------ requests

@dataclass(frozen=True)
class ParsedRequest:
    """A signed request reduced to what authorization needs (pure data, built by :func:`parse_request`)."""

    access_key_id: str
    region: str
    service: str  # signing name, except "featurestore-runtime" for the runtime
    operation: str  # AssumeRole / GetTable / ... ; S3 and runtime: "METHOD" (see bucket/key/path)
    params: Mapping[str, Any] = field(default_factory=dict)
    method: str = "GET"
    path: str = "/"
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    bucket: str = ""
    key: str = ""
    body: bytes = b""


def _query_params(text: str) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def parse_request(raw: mi.RawRequest) -> ParsedRequest | None:
    """The request's signer, service, operation and parameters; ``None`` when it is not SigV4-signed."""
    url = urlparse(raw.url)
    query = parse_qs(url.query, keep_blank_values=True)
    credential = mi.CREDENTIAL_SCOPE.search(raw.headers.get("authorization", ""))
    if credential is None and "X-Amz-Credential" in query:
        credential = mi.CREDENTIAL_SCOPE.search("Credential=" + query["X-Amz-Credential"][0])
    if credential is None:
        return None
    access_key_id, region, service = credential.groups()
    path = unquote(url.path) or "/"
    base = {"access_key_id": access_key_id, "region": region, "method": raw.method.upper(), "path": path,
            "query": query, "headers": raw.headers, "body": raw.body}
    host = url.netloc.split(":")[0]
    if service == "sagemaker" and (host.startswith("featurestore-runtime.") or mi.RUNTIME_PATH.match(path)):
        params = _LazyJson(raw.body) if raw.method.upper() in ("POST", "PUT") else {}
        return ParsedRequest(service="featurestore-runtime", operation=raw.method.upper(), params=params, **base)
    if service == "s3":
        virtual = _VIRTUAL_HOST_RE.match(host)
        if virtual:
            bucket, key = virtual["bucket"], path.lstrip("/")
        else:
            bucket, _, key = path.lstrip("/").partition("/")
        return ParsedRequest(service="s3", operation=raw.method.upper(), bucket=bucket, key=key, **base)
    target = raw.headers.get("x-amz-target", "")
    if target:
        return ParsedRequest(service=service, operation=target.rsplit(".", 1)[-1], params=_LazyJson(raw.body),
                             **base)
    form = {**{k: v[-1] for k, v in query.items()}, **_query_params(raw.body.decode("utf-8", "replace"))}
    return ParsedRequest(service=service, operation=form.get("Action", ""), params=form, **base)


class _LazyJson(Mapping[str, Any]):
    """A JSON request body decoded on first look: most requests (every runtime write of an exempt or
    unchecked caller) are let through without anyone reading their parameters."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._value: dict[str, Any] | None = None

    def _decoded(self) -> dict[str, Any]:
        if self._value is None:
            self._value = _json(self._body)
        return self._value

    def __getitem__(self, key: str) -> Any:
        return self._decoded()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return repr(self._decoded())


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def query_tags(params: Mapping[str, str], prefix: str = "Tags.member") -> dict[str, str]:
    """Tags of a query-protocol request (``Tags.member.N.Key`` / ``.Value``)."""
    tags: dict[str, str] = {}
    index = 1
    while f"{prefix}.{index}.Key" in params:
        tags[params[f"{prefix}.{index}.Key"]] = params.get(f"{prefix}.{index}.Value", "")
        index += 1
    return tags


# ------------------------------------------------------------------------------------------------ checks

@dataclass(frozen=True)
class Check:
    """One IAM question a request raises: ``action`` on ``resource`` with ``context``.

    ``resource_account`` is the owner ("" = the caller's account); ``policy`` says which resource policy
    applies: ``"s3"`` (bucket policy of ``owner_ref``), ``"glue"`` (catalog policy), ``"kms"`` (key policy of
    ``owner_ref``, always required), ``"feature-group"`` (RAM share; not emulated) or ``""`` (none).
    """

    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)
    resource_account: str = ""
    policy: str = ""
    owner_ref: str = ""


class Facts(Protocol):
    """What the mapping needs to know about existing resources (live: moto state and the Feature Store)."""

    def group_tags(self, account: str, region: str, name: str) -> dict[str, str] | None: ...
    def bucket_owner(self, bucket: str) -> str | None: ...
    def bucket_kms_key(self, bucket: str) -> str | None: ...
    def object_kms_key(self, bucket: str, key: str) -> str | None: ...
    def kms_key_arn(self, account: str, region: str, key_id: str) -> str | None: ...
    def query_workgroup(self, account: str, query_id: str) -> str | None: ...


def _tag_context(prefix: str, tags: Mapping[str, str]) -> dict[str, Any]:
    return {f"{prefix}/{k}": v for k, v in tags.items()}


def _request_tag_context(tags: Mapping[str, str]) -> dict[str, Any]:
    return {**_tag_context("aws:RequestTag", tags), "aws:TagKeys": list(tags)} if tags else {}


def _feature_group(name_or_arn: str, account: str, region: str, facts: Facts) -> tuple[str, str, dict[str, Any]]:
    """(ARN, owning account, aws:ResourceTag context) of a feature group named or ARN'd."""
    match = re.match(r"^arn:[^:]+:sagemaker:([^:]*):(\d{12}):feature-group/(.+)$", name_or_arn)
    if match:
        region, account, name = match.groups()
    else:
        name = name_or_arn
    arn = f"arn:{PARTITION}:sagemaker:{region}:{account}:feature-group/{name.lower()}"
    tags = facts.group_tags(account, region, name) or {}
    return arn, account, _tag_context("aws:ResourceTag", tags)


def _group_check(action: str, name_or_arn: str, account: str, region: str, facts: Facts,
                 extra: Mapping[str, Any] | None = None) -> Check:
    arn, owner, context = _feature_group(name_or_arn, account, region, facts)
    return Check(action, arn, {**context, **(extra or {})}, owner, "feature-group")


_GROUP_ACTIONS = {"DescribeFeatureGroup", "UpdateFeatureGroup", "DeleteFeatureGroup", "DescribeFeatureMetadata",
                  "UpdateFeatureMetadata"}


def _sagemaker_checks(req: ParsedRequest, account: str, facts: Facts) -> list[Check]:
    op, params, region = req.operation, req.params, req.region
    if op == "CreateFeatureGroup":
        name = str(params.get("FeatureGroupName", ""))
        arn = f"arn:{PARTITION}:sagemaker:{region}:{account}:feature-group/{name.lower()}"
        tags = {t["Key"]: t.get("Value", "") for t in params.get("Tags") or []}
        checks = [Check("sagemaker:CreateFeatureGroup", arn, _request_tag_context(tags))]
        if tags:
            checks.append(Check("sagemaker:AddTags", arn, {**_request_tag_context(tags),
                                                          "sagemaker:TaggingAction": "CreateFeatureGroup"}))
        role = str(params.get("RoleArn") or "")
        if role:
            checks.append(Check("iam:PassRole", role, {"iam:PassedToService": "sagemaker.amazonaws.com",
                                                       "iam:AssociatedResourceArn": arn},
                                role.split(":")[4] if role.count(":") >= 5 else ""))
        return checks
    if op in _GROUP_ACTIONS:
        return [_group_check(f"sagemaker:{op}", str(params.get("FeatureGroupName", "")), account, region, facts)]
    resource_arn = str(params.get("ResourceArn", ""))
    if op in ("AddTags", "DeleteTags", "ListTags") and ":feature-group/" in resource_arn:
        extra: dict[str, Any] = {}
        if op == "AddTags":
            extra = _request_tag_context({t["Key"]: t.get("Value", "") for t in params.get("Tags") or []})
        elif op == "DeleteTags":
            extra = {"aws:TagKeys": list(params.get("TagKeys") or [])}
        return [_group_check(f"sagemaker:{op}", resource_arn, account, region, facts, extra)]
    return [Check(f"sagemaker:{op}", "*")]


def _runtime_checks(req: ParsedRequest, account: str, facts: Facts) -> list[Check]:
    if req.path == "/BatchGetRecord":
        names = dict.fromkeys(str(i.get("FeatureGroupName", "")) for i in req.params.get("Identifiers") or [])
        return [_group_check("sagemaker:BatchGetRecord", n, account, req.region, facts) for n in names]
    if req.path == "/BatchWriteRecord":
        names = dict.fromkeys(str(e.get("FeatureGroupName", "")) for e in req.params.get("Entries") or [])
        return [_group_check(action, n, account, req.region, facts)
                for n in names for action in ("sagemaker:BatchWriteRecord", "sagemaker:PutRecord")]
    rest = req.path.removeprefix("/FeatureGroup/")
    if req.method == "POST" and rest.endswith("/ListRecords"):
        return [_group_check("sagemaker:ListRecords", rest.removesuffix("/ListRecords"), account, req.region, facts)]
    action = {"PUT": "PutRecord", "GET": "GetRecord", "DELETE": "DeleteRecord", "POST": "UpdateRecord"}.get(req.method)
    return [_group_check(f"sagemaker:{action or req.method}", rest.removesuffix("/Record"), account, req.region,
                         facts)]


# S3 sub-resources (query keys) -> action suffix per method; the first key present decides.
_S3_BUCKET_SUBRESOURCES: dict[str, dict[str, str]] = {
    "GET": {"policy": "GetBucketPolicy", "location": "GetBucketLocation", "encryption": "GetEncryptionConfiguration",
            "versioning": "GetBucketVersioning", "tagging": "GetBucketTagging", "acl": "GetBucketAcl",
            "publicAccessBlock": "GetBucketPublicAccessBlock", "ownershipControls": "GetBucketOwnershipControls",
            "uploads": "ListBucketMultipartUploads", "versions": "ListBucketVersions",
            "replication": "GetReplicationConfiguration", "lifecycle": "GetLifecycleConfiguration",
            "notification": "GetBucketNotification", "cors": "GetBucketCORS", "policyStatus": "GetBucketPolicyStatus"},
    "PUT": {"policy": "PutBucketPolicy", "encryption": "PutEncryptionConfiguration",
            "versioning": "PutBucketVersioning",
            "tagging": "PutBucketTagging", "acl": "PutBucketAcl", "publicAccessBlock": "PutBucketPublicAccessBlock",
            "ownershipControls": "PutBucketOwnershipControls", "replication": "PutReplicationConfiguration",
            "lifecycle": "PutLifecycleConfiguration", "notification": "PutBucketNotification", "cors": "PutBucketCORS"},
    "DELETE": {"policy": "DeleteBucketPolicy", "encryption": "PutEncryptionConfiguration",
               "tagging": "PutBucketTagging", "publicAccessBlock": "PutBucketPublicAccessBlock",
               "ownershipControls": "PutBucketOwnershipControls", "replication": "PutReplicationConfiguration",
               "lifecycle": "PutLifecycleConfiguration", "cors": "PutBucketCORS"},
}
_S3_OBJECT_SUBRESOURCES: dict[str, dict[str, str]] = {
    "GET": {"acl": "GetObjectAcl", "tagging": "GetObjectTagging", "uploadId": "ListMultipartUploadParts",
            "attributes": "GetObjectAttributes"},
    "HEAD": {},
    "PUT": {"acl": "PutObjectAcl", "tagging": "PutObjectTagging"},
    "DELETE": {"uploadId": "AbortMultipartUpload", "tagging": "DeleteObjectTagging"},
    "POST": {"uploads": "PutObject", "uploadId": "PutObject", "restore": "RestoreObject"},
}
_S3_OBJECT_DEFAULT = {"GET": "GetObject", "HEAD": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject"}
_S3_BUCKET_DEFAULT = {"GET": "ListBucket", "HEAD": "ListBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}


class UnmappedRequest(Exception):
    """A request of an enforced service the mapping does not understand (refused, never allowed)."""


def _s3_object_action(req: ParsedRequest) -> str:
    for name, action in _S3_OBJECT_SUBRESOURCES.get(req.method, {}).items():
        if name in req.query:
            return action
    if req.method in _S3_OBJECT_DEFAULT:
        return _S3_OBJECT_DEFAULT[req.method]
    raise UnmappedRequest(f"{req.method} on an S3 object")


def _s3_bucket_action(req: ParsedRequest) -> str:
    if req.method == "POST" and "delete" in req.query:
        return "DeleteObject"
    for name, action in _S3_BUCKET_SUBRESOURCES.get(req.method, {}).items():
        if name in req.query:
            return action
    known = {n for table in _S3_BUCKET_SUBRESOURCES.values() for n in table}
    odd = [q for q in req.query if q not in known and q not in ("list-type", "prefix", "delimiter", "max-keys",
                                                                   "continuation-token", "start-after", "marker",
                                                                   "encoding-type", "fetch-owner", "x-id")]
    if odd or req.method not in _S3_BUCKET_DEFAULT:
        raise UnmappedRequest(f"{req.method} on an S3 bucket with {sorted(req.query)}")
    return _S3_BUCKET_DEFAULT[req.method]


def _kms_via_s3(action: str, key_id: str | None, account: str, owner: str, region: str, facts: Facts) -> list[Check]:
    if not key_id:
        return []
    arn = facts.kms_key_arn(key_id.split(":")[4] if key_id.startswith("arn:") else owner, region, key_id)
    if arn is None:
        return []
    return [Check(action, arn, {"kms:ViaService": f"s3.{region}.amazonaws.com", "kms:CallerAccount": account},
                  arn.split(":")[4], "kms", arn)]


def _deleted_keys(body: bytes) -> list[str]:
    return [xml.sax.saxutils.unescape(k.decode()) for k in re.findall(rb"<Key>(.*?)</Key>", body, re.S)]


def _s3_checks(req: ParsedRequest, account: str, facts: Facts) -> list[Check]:
    if not req.bucket:
        return [Check("s3:ListAllMyBuckets", "*")]
    owner = facts.bucket_owner(req.bucket) or account
    bucket_arn = f"arn:{PARTITION}:s3:::{req.bucket}"
    base = {"resource_account": owner, "policy": "s3", "owner_ref": req.bucket}
    if not req.key:
        action = _s3_bucket_action(req)
        if action == "DeleteObject":
            return [Check("s3:DeleteObject", f"{bucket_arn}/{k}", **base) for k in _deleted_keys(req.body)]
        context = {"s3:prefix": req.query.get("prefix", [""])[0]} if action == "ListBucket" else {}
        return [Check(f"s3:{action}", bucket_arn, context, **base)]
    action = _s3_object_action(req)
    context: dict[str, Any] = {}
    for header in ("x-amz-acl", "x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id"):
        if header in req.headers:
            context[f"s3:{header}"] = req.headers[header]
    checks = [Check(f"s3:{action}", f"{bucket_arn}/{req.key}", context, **base)]
    source = req.headers.get("x-amz-copy-source", "")
    if source and action == "PutObject":
        src_bucket, _, src_key = unquote(source).lstrip("/").partition("/")
        checks.append(Check("s3:GetObject", f"arn:{PARTITION}:s3:::{src_bucket}/{src_key.split('?')[0]}",
                            resource_account=facts.bucket_owner(src_bucket) or account, policy="s3",
                            owner_ref=src_bucket))
    if action == "PutObject" and "uploadId" not in req.query:
        sse = req.headers.get("x-amz-server-side-encryption")
        key_id = (req.headers.get("x-amz-server-side-encryption-aws-kms-key-id") if sse == "aws:kms"
                  else None if sse else facts.bucket_kms_key(req.bucket))
        checks += _kms_via_s3("kms:GenerateDataKey", key_id, account, owner, req.region, facts)
    elif action == "GetObject":
        checks += _kms_via_s3("kms:Decrypt", facts.object_kms_key(req.bucket, req.key), account, owner, req.region,
                              facts)
    return checks


def glue_arns(account: str, region: str, database: str | None = None, table: str | None = None) -> list[str]:
    """The ARNs Glue authorizes for a catalog / database / table request (catalog first)."""
    prefix = f"arn:{PARTITION}:glue:{region}:{account}"
    arns = [f"{prefix}:catalog"]
    if database is not None:
        arns.append(f"{prefix}:database/{database}")
        if table is not None:
            arns.append(f"{prefix}:table/{database}/{table}")
    return arns


_GLUE_TABLE_OPS = {"GetTable": "Name", "DeleteTable": "Name", **dict.fromkeys(
    ("GetPartitions", "GetPartition", "BatchGetPartition", "CreatePartition", "BatchCreatePartition",
     "GetTableVersions", "BatchDeletePartition", "DeletePartition"), "TableName")}
_GLUE_DATABASE_OPS = {"GetDatabase": "Name", "DeleteDatabase": "Name", "UpdateDatabase": "Name"}


def _glue_checks(req: ParsedRequest, account: str, facts: Facts) -> list[Check]:
    op, params = req.operation, req.params
    owner = str(params.get("CatalogId") or account)
    database = params.get("DatabaseName")
    if op in _GLUE_TABLE_OPS:
        arns = glue_arns(owner, req.region, str(database), str(params.get(_GLUE_TABLE_OPS[op], "")))
    elif op in ("CreateTable", "UpdateTable"):
        arns = glue_arns(owner, req.region, str(database), str((params.get("TableInput") or {}).get("Name", "")))
    elif op == "GetTables":
        arns = glue_arns(owner, req.region, str(database), "*")
    elif op in _GLUE_DATABASE_OPS:
        arns = glue_arns(owner, req.region, str(params.get(_GLUE_DATABASE_OPS[op], "")))
    elif op == "CreateDatabase":
        arns = glue_arns(owner, req.region, str((params.get("DatabaseInput") or {}).get("Name", "")))
    else:
        arns = glue_arns(owner, req.region)
    return [Check(f"glue:{op}", arn, resource_account=owner, policy="glue") for arn in arns]


_ATHENA_WORKGROUP_OPS = {"StartQueryExecution", "GetWorkGroup", "UpdateWorkGroup", "DeleteWorkGroup",
                         "ListQueryExecutions", "ListNamedQueries", "ListPreparedStatements", "CreateNamedQuery"}
_ATHENA_QUERY_OPS = {"GetQueryExecution", "GetQueryResults", "StopQueryExecution", "GetQueryRuntimeStatistics"}
_ATHENA_CATALOG_OPS = {"GetDataCatalog": "Name", "CreateDataCatalog": "Name", "UpdateDataCatalog": "Name",
                       "DeleteDataCatalog": "Name", "GetDatabase": "CatalogName", "ListDatabases": "CatalogName",
                       "GetTableMetadata": "CatalogName", "ListTableMetadata": "CatalogName"}


def _athena_checks(req: ParsedRequest, account: str, facts: Facts) -> list[Check]:
    op, params = req.operation, req.params
    prefix = f"arn:{PARTITION}:athena:{req.region}:{account}"
    if op in _ATHENA_WORKGROUP_OPS:
        return [Check(f"athena:{op}", f"{prefix}:workgroup/{params.get('WorkGroup') or 'primary'}")]
    if op == "CreateWorkGroup":
        return [Check("athena:CreateWorkGroup", f"{prefix}:workgroup/{params.get('Name', '')}")]
    if op in _ATHENA_QUERY_OPS or op == "BatchGetQueryExecution":
        ids = (params.get("QueryExecutionIds") or []) if op == "BatchGetQueryExecution" else \
            [params.get("QueryExecutionId", "")]
        groups = dict.fromkeys(facts.query_workgroup(account, str(i)) or "primary" for i in ids)
        return [Check(f"athena:{op}", f"{prefix}:workgroup/{g}") for g in groups]
    if op in _ATHENA_CATALOG_OPS:
        return [Check(f"athena:{op}", f"{prefix}:datacatalog/{params.get(_ATHENA_CATALOG_OPS[op], '')}")]
    if op in ("ListTagsForResource", "TagResource", "UntagResource"):
        return [Check(f"athena:{op}", str(params.get("ResourceARN", "*")))]
    return [Check(f"athena:{op}", "*")]


_KMS_UNSCOPED = {"CreateKey", "ListKeys", "ListAliases", "GenerateRandom"}


def _kms_checks(req: ParsedRequest, account: str, facts: Facts) -> list[Check]:
    op, params = req.operation, req.params
    if op in _KMS_UNSCOPED:
        return [Check(f"kms:{op}", "*")]
    key_id = str(params.get("KeyId") or params.get("TargetKeyId") or params.get("SourceKeyId") or "")
    if not key_id and "CiphertextBlob" in params:
        key_id = mi.kms_key_id_of_ciphertext(base64.b64decode(params["CiphertextBlob"])) or ""
    owner = key_id.split(":")[4] if key_id.startswith("arn:") else account
    arn = facts.kms_key_arn(owner, req.region, key_id) if key_id else None
    if arn is None:
        return []  # unknown key: KMS itself answers NotFoundException
    return [Check(f"kms:{op}", arn, {"kms:CallerAccount": account}, arn.split(":")[4], "kms", arn)]


def _iam_checks(req: ParsedRequest, account: str, facts: Facts) -> list[Check]:
    params = req.params
    if "RoleName" in params:
        resource = f"arn:{PARTITION}:iam::{account}:role/{params['RoleName']}"
    elif "UserName" in params:
        resource = f"arn:{PARTITION}:iam::{account}:user/{params['UserName']}"
    else:
        resource = str(params.get("PolicyArn") or "*")
    return [Check(f"iam:{req.operation}", resource)]


_MAPPERS: dict[str, Callable[[ParsedRequest, str, Facts], list[Check]]] = {
    "sagemaker": _sagemaker_checks, "featurestore-runtime": _runtime_checks, "s3": _s3_checks,
    "glue": _glue_checks, "athena": _athena_checks, "kms": _kms_checks, "iam": _iam_checks,
}


def map_request(req: ParsedRequest, account: str, facts: Facts) -> list[Check] | None:
    """The IAM checks of ``req`` made by a principal of ``account``; ``None`` for a service not enforced.

    Raises :class:`UnmappedRequest` for a request of an enforced service it cannot map (refuse it).
    """
    mapper = _MAPPERS.get(req.service)
    return None if mapper is None else mapper(req, account, facts)


# ------------------------------------------------------------------------------------------------ decisions

@dataclass(frozen=True)
class Principal:
    """A caller as IAM sees it: ARN, account, identity policies and principal tags (session tags win)."""

    arn: str
    account: str
    policies: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        # The local server speaks plain HTTP; treating it as secure keeps "deny insecure transport" meaningful.
        return {"aws:SecureTransport": True, **_tag_context("aws:PrincipalTag", self.tags)}


ResourcePolicyLookup = Callable[[Check], Mapping[str, Any] | None]


def judge(principal: Principal, check: Check, resource_policy: ResourcePolicyLookup) -> Decision:
    """Decide one check: identity policies, plus the resource policy ``check.policy`` names."""
    owner = check.resource_account or principal.account
    request = Request(principal.arn, check.action, check.resource, {**principal.context(), **check.context},
                      principal_account=principal.account, resource_account=owner)
    document = resource_policy(check) if check.policy else None
    named = None if document is None else (f"resource:{check.policy}", document)
    return evaluate(request, principal.policies, named, resource_account=owner,
                    require_resource_allow=check.policy == "kms")


def refusal_message(principal_arn: str, decision: Decision, check_policy: str = "") -> str:
    """AWS's AccessDenied wording for a refused decision."""
    head = f"User: {principal_arn} is not authorized to perform: {decision.action} on resource: {decision.resource}"
    if decision.denies:
        kinds = sorted({"an identity-based" if m.policy.startswith("identity:") else "a resource-based"
                        for m in decision.denies})
        return f"{head} with an explicit deny in {' and '.join(kinds)} policy"
    if not any(m.policy.startswith("identity:") for m in decision.allows):
        return f"{head} because no identity-based policy allows the {decision.action} action"
    why = f"{head} because no resource-based policy allows the {decision.action} action"
    if check_policy == "feature-group":
        why += " (another account's feature group needs a RAM share; RAM is not emulated by the embedded AWS)"
    return why


def _xml_error(service: str, status: int, code: str, message: str, method: str) -> mi.WireResponse:
    """An error of a query-XML service (STS, IAM) or S3 (no body for HEAD, as S3 sends none)."""
    request_id = str(uuid.uuid4())
    text = xml.sax.saxutils.escape(message)
    if service in _QUERY_XML_NS:
        body = (f'<ErrorResponse xmlns="{_QUERY_XML_NS[service]}"><Error><Type>Sender</Type>'
                f"<Code>{code}</Code><Message>{text}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>")
        return status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body
    body = "" if method == "HEAD" else (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{text}</Message><RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>")
    return status, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body


def denial_response(service: str, message: str, method: str = "POST") -> mi.WireResponse:
    """An AccessDenied answer in the wire shape of ``service``'s protocol."""
    if service in _QUERY_XML_NS or service == "s3":
        return _xml_error(service, 403, "AccessDenied", message, method)
    status = 403 if service == "featurestore-runtime" else 400
    return mi.error_response(status, "AccessDeniedException", message)


EXPIRED_TOKEN_MESSAGE = "The security token included in the request is expired"
S3_EXPIRED_TOKEN_MESSAGE = "The provided token has expired."


def expired_token_response(service: str, method: str = "POST") -> mi.WireResponse:
    """AWS's answer to a request signed with expired session keys, in ``service``'s protocol.

    S3: 400 ``ExpiredToken`` "The provided token has expired."; STS and IAM (query XML): 403 ``ExpiredToken``;
    JSON services (SageMaker, the Feature Store runtime, Athena, Glue, KMS): 400 ``ExpiredTokenException`` --
    the status AWS answers Athena with, although AWS's common-errors page lists 403 (clients go by the code).
    """
    if service == "s3":
        return _xml_error(service, 400, "ExpiredToken", S3_EXPIRED_TOKEN_MESSAGE, method)
    if service in _QUERY_XML_NS:
        return _xml_error(service, 403, "ExpiredToken", EXPIRED_TOKEN_MESSAGE, method)
    return mi.error_response(400, "ExpiredTokenException", EXPIRED_TOKEN_MESSAGE)


def session_expired(access_key_id: str) -> bool:
    """Whether ``access_key_id`` belongs to an assumed-role session whose expiration is at or before now
    (moto's clock, the one STS computed the expiration from); IAM-user and unknown keys never expire."""
    expiration = mi.session_expiration(access_key_id)
    return expiration is not None and expiration <= mi.moto_utcnow()


# ------------------------------------------------------------------------------------------------ live state

class LiveFacts:
    """:class:`Facts` over moto's state, the embedded Feature Store and the queries seen by the enforcer."""

    def __init__(self, feature_store: Any, queries: Mapping[tuple[str, str], str]) -> None:
        self._store = feature_store
        self._queries = queries

    def group_tags(self, account: str, region: str, name: str) -> dict[str, str] | None:
        from featureshare.local.featurestore import ServiceError

        try:
            return dict(self._store.find(account, region, name).tags)
        except ServiceError:
            return None

    def bucket_owner(self, bucket: str) -> str | None:
        return mi.s3_bucket_owner(bucket)

    def bucket_kms_key(self, bucket: str) -> str | None:
        return mi.s3_bucket_kms_key(bucket)

    def object_kms_key(self, bucket: str, key: str) -> str | None:
        try:
            algorithm, key_id = mi.s3_object_encryption(bucket, key)
        except KeyError:
            return None
        return key_id if algorithm == "aws:kms" else None

    def kms_key_arn(self, account: str, region: str, key_id: str) -> str | None:
        found = mi.kms_key(account, region, key_id)
        return None if found is None else found[0]

    def query_workgroup(self, account: str, query_id: str) -> str | None:
        return self._queries.get((account, query_id))


def live_resource_policy(check: Check) -> Mapping[str, Any] | None:
    """The resource policy a check names, read from moto (``None`` when there is none)."""
    if check.policy == "s3":
        return mi.s3_bucket_policy(check.owner_ref)
    if check.policy == "glue":
        return mi.glue_catalog_policy(check.resource_account, check.resource.split(":")[3])
    if check.policy == "kms":
        found = mi.kms_key(check.resource_account, check.resource.split(":")[3], check.owner_ref)
        return None if found is None else found[1]
    return None


@dataclass(frozen=True)
class Actor:
    """The principal of the request being served, with the enforcer that judges it (see :func:`current_actor`)."""

    principal: Principal
    enforcer: PolicyEnforcer
    region: str


_CURRENT: contextvars.ContextVar[Actor | None] = contextvars.ContextVar("featureshare_actor", default=None)


def current_actor() -> Actor | None:
    """The checked caller of the request this thread is serving; ``None`` for admins or with enforcement off.

    For the Athena engine: call it synchronously inside StartQueryExecution and keep the value for the query.
    """
    return _CURRENT.get()


def authorize_reads(actor: Actor | None, *, tables: Iterable[tuple[str, str, str]] = (),
                    objects: Iterable[tuple[str, str]] = (), writes: Iterable[tuple[str, str]] = (),
                    acl: str | None = None) -> str | None:
    """``None`` when ``actor`` may read every Glue table ``(catalog account, database, table)`` and S3 object
    ``(bucket, key)`` and write every ``writes`` object; otherwise the AccessDenied message of the first refusal.

    Meant for Athena's engine, which reads S3 and Glue in-process: AWS fails such a query (state FAILED,
    the message as ``StateChangeReason``) rather than the StartQueryExecution call.
    """
    if actor is None or not actor.enforcer.enabled:
        return None
    principal = actor.principal
    requests = [ParsedRequest("", actor.region, "glue", op, {"CatalogId": account, "DatabaseName": database,
                                                             "Name": table, "TableName": table})
                for account, database, table in tables for op in ("GetTable", "GetPartitions")]
    put_headers = {"x-amz-acl": acl} if acl else {}
    requests += [ParsedRequest("", actor.region, "s3", method, method=method, bucket=bucket, key=key,
                               headers=put_headers if method == "PUT" else {})
                 for pairs, method in ((objects, "GET"), (writes, "PUT")) for bucket, key in pairs]
    facts = actor.enforcer.facts
    for req in requests:
        for check in map_request(req, principal.account, facts) or []:
            decision = judge(principal, check, live_resource_policy)
            if not decision.allowed:
                return refusal_message(principal.arn, decision, check.policy)
    return None


class PolicyEnforcer:
    """The request filter of an EmbeddedAWS (``enabled`` switches checking; tags are recorded regardless).

    Requests signed with expired session keys are refused whatever ``enabled`` and ``audit`` say.

    ``admin_keys`` returns the access keys that are never checked (the EmbeddedAWS account admins).
    ``audit`` only records what would be refused (``refusals``, the latest ``MAX_REFUSALS``) and lets it
    through -- for finding the grants a job lacks in one run.
    """

    MAX_REFUSALS = 1000

    def __init__(self, feature_store: Any, admin_keys: Callable[[], Iterable[str]], enabled: bool = True,
                 audit: bool = False) -> None:
        self.enabled = enabled
        self.audit = audit
        self.refusals: list[str] = []
        self._admin_keys = admin_keys
        self._lock = threading.Lock()
        self._session_tags: dict[str, dict[str, str]] = {}
        self._queries: dict[tuple[str, str], str] = {}
        self.facts = LiveFacts(feature_store, self._queries)

    # -- principal ----------------------------------------------------------------------------------------
    def principal(self, access_key_id: str) -> Principal | None:
        """The principal behind an access key (role policies and tags, plus the session's tags)."""
        caller = mi.caller_of_access_key(access_key_id)
        if caller is None:
            return None
        if caller.user_name:
            policies = mi.iam_user_policies(caller.account, caller.user_name)
            return Principal(caller.arn, caller.account, tuple((f"identity:{n}", d) for n, d in policies))
        role = mi.iam_role(caller.account, caller.role_arn.rsplit("/", 1)[-1]) or {"Policies": [], "Tags": {}}
        return Principal(caller.arn, caller.account, tuple((f"identity:{n}", d) for n, d in role["Policies"]),
                         {**role["Tags"], **self.session_tags(access_key_id)})

    def session_tags(self, access_key_id: str) -> dict[str, str]:
        """The tags an AssumeRole call attached to the session owning ``access_key_id``."""
        with self._lock:
            return dict(self._session_tags.get(access_key_id, {}))

    # -- the filter ---------------------------------------------------------------------------------------
    def filter(self, raw: mi.RawRequest, proceed: Callable[[], Any]) -> Any:
        """Refuse the request, or let moto answer it (and remember what later decisions need)."""
        req = parse_request(raw)
        if req is None:
            return proceed()
        if session_expired(req.access_key_id):
            logger.info("embedded AWS refused %s %s: session key %s has expired", req.service, req.operation,
                        req.access_key_id)
            return expired_token_response(req.service, req.method)
        exempt = (not self.enabled or "x-moto-account-id" in raw.headers
                  or req.access_key_id in set(self._admin_keys()))
        principal = None if exempt else self.principal(req.access_key_id)
        if principal is not None:
            refusal = self.refusal(req, principal)
            if refusal is not None:
                logger.info("embedded AWS %s: %s", "would refuse" if self.audit else "refused", refusal)
                with self._lock:
                    self.refusals = [*self.refusals[-(self.MAX_REFUSALS - 1):], refusal]
                if not self.audit:
                    return denial_response(req.service, refusal, req.method)
        token = _CURRENT.set(None if principal is None else Actor(principal, self, req.region))
        try:
            response = proceed()
        finally:
            _CURRENT.reset(token)
        if response is not None:
            self._observe(req, response)
        return response

    def refusal(self, req: ParsedRequest, principal: Principal) -> str | None:
        """The AccessDenied message for ``req`` by ``principal``, or ``None`` when every check allows it."""
        if req.service == "sts":
            return self._assume_role_refusal(req, principal) if req.operation == "AssumeRole" else None
        try:
            checks = map_request(req, principal.account, self.facts)
        except UnmappedRequest as exc:
            return (f"User: {principal.arn} is not authorized to perform: {req.service}:{req.operation} because "
                    f"the embedded AWS does not map this request to an IAM action ({exc})")
        for check in checks or []:
            decision = judge(principal, check, live_resource_policy)
            if not decision.allowed:
                logger.debug("refused: %s", decision.explain())
                return refusal_message(principal.arn, decision, check.policy)
        return None

    def _assume_role_refusal(self, req: ParsedRequest, principal: Principal) -> str | None:
        params = req.params
        role_arn = str(params.get("RoleArn", ""))
        role = mi.iam_role(role_arn.split(":")[4], role_arn.rsplit("/", 1)[-1]) if role_arn.count(":") >= 5 else None
        head = f"User: {principal.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        if role is None:
            return f"{head} because the role does not exist"
        decision = evaluate_assume_role(
            principal.arn, role_arn, role["Trust"], identity_policies=principal.policies,
            session_tags=query_tags(params) or None, source_identity=params.get("SourceIdentity"),
            external_id=params.get("ExternalId"), context=principal.context())
        if decision.allowed:
            return None
        trust_allows = any(m.policy == "trust" for m in decision.allows)
        identity_allows = any(m.policy.startswith("identity:") for m in decision.allows)
        head = f"User: {principal.arn} is not authorized to perform: {decision.action} on resource: {role_arn}"
        if decision.denies:
            return f"{head} with an explicit deny"
        if not trust_allows:
            return f"{head} because the role's trust policy does not allow it"
        return f"{head} because no identity-based policy allows the {decision.action} action" \
            if not identity_allows else f"{head} because {decision.reason}"

    def _observe(self, req: ParsedRequest, response: Any) -> None:
        status, body = response[0], response[2]
        if status != 200 or (req.service, req.operation) not in (("sts", "AssumeRole"),
                                                                  ("athena", "StartQueryExecution")):
            return
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        if req.service == "sts":
            key = re.search(r"<AccessKeyId>([^<]+)</AccessKeyId>", text)
            tags = query_tags(req.params)
            if key and tags:
                with self._lock:
                    self._session_tags[key.group(1)] = tags
        else:
            query_id = _json(text.encode()).get("QueryExecutionId")
            if query_id:
                account = mi.account_of_access_key(req.access_key_id)
                with self._lock:
                    self._queries[(account, str(query_id))] = str(req.params.get("WorkGroup") or "primary")

"""moto-private names are touched only here and in ``moto_server`` (moto is pinned to exactly ``MOTO_VERSION``).

moto has no plugin API, so the embedded AWS reaches into its backends and routing tables. Keeping all of
that in these two modules (this one: backends, routing tables, route handlers; ``featureshare.local.
moto_server``: wire types, request hooks, server mode) means a moto upgrade breaks at most two files, and
``tests/local/test_moto_contract.py`` (which covers both) says which name moved. Everything else in
``featureshare.local`` talks to moto only through this module, which re-exports every public name of
``moto_server`` (``WireRequest``, ``WireResponse``, ``Handler``, ``json_response``, ``error_response``,
``account_of_access_key``, ``CREDENTIAL_SCOPE``, ``RUNTIME_PATH``, ``RawRequest``, ``RequestFilter``,
``set_request_filter``, ``EmbeddedServer``, ``KEEPALIVE_IDLE_TIMEOUT_S``, ``start_server``, ``stop_server``);
``moto_server`` never imports this module.

Integration points (pure functions over moto backends; they work in-process and with the threaded server,
which shares this process's backends; all are guarded by one re-entrant lock):

S3 (buckets share one global namespace, so no account is needed)
    ``s3_list(bucket, prefix) -> list[tuple[str, int]]``   keys under ``prefix`` with their sizes, sorted
    ``s3_get(bucket, key) -> bytes``                       raises ``KeyError`` if the object is missing
    ``s3_put(bucket, key, body, kms_key_id=None) -> None`` ``kms_key_id`` set -> SSE-KMS recorded on the object
    ``s3_delete(bucket, key) -> None``                     missing keys are ignored
    ``s3_bucket_owner(bucket) -> str | None``              owning account id, ``None`` if no such bucket
    GetBucketReplication answers the configuration moto stored (``_stored_bucket_replication``, while routes
    are installed); moto 5.2.5 answers every rule with an empty ``Filter`` and ``DeleteMarkerReplication``
    Disabled and drops ``SourceSelectionCriteria``. Nothing is replicated: moto never copies objects.
Glue (per account and region; dicts have the boto3 shapes)
    ``glue_get_database(account, region, name) -> dict | None``
    ``glue_create_database(account, region, name) -> None``           no-op if it exists
    ``glue_list_databases(account, region) -> list[str]``
    ``glue_get_table(account, region, database, table) -> dict | None``  like ``get_table()["Table"]``
    ``glue_list_tables(account, region, database) -> list[dict]``
    ``glue_create_table(account, region, database, table_input) -> None``
    ``glue_delete_table(account, region, database, table) -> None``
    ``glue_get_partitions(account, region, database, table) -> list[dict]``
    ``glue_add_partition(account, region, database, table, values, location) -> bool``  False if present
Athena bookkeeping (moto's own)
    ``athena_workgroup(account, region, name) -> dict | None``   like ``get_work_group()["WorkGroup"]``
    ``athena_data_catalog(account, region, name) -> dict | None`` Name, Type, Parameters
    UpdateWorkGroup, UpdateDataCatalog, DeleteDataCatalog (unimplemented in moto 5.2.5) are answered over
    moto's athena backend state by ``ATHENA_GAP_ACTIONS`` (``InvalidRequestException`` when not found)
Principals and policies (for ``policy_enforcement``)
    ``caller_of_access_key(key) -> Caller | None``       IAM user or assumed-role session of an access key
    ``session_expiration(key) -> datetime | None``       when an assumed-role session's keys expire (naive UTC)
    ``moto_utcnow() -> datetime``                        now on moto's clock (the one STS stamps expiries with)
    ``iam_role(account, name) -> dict | None``           Arn, Trust, Tags, Policies [(name, document)]
    ``iam_user_policies(account, user) -> list``         inline + attached policies of a user
    ``s3_bucket_policy(bucket)``, ``s3_bucket_kms_key(bucket)``, ``glue_catalog_policy(account, region)``
    ``kms_key(account, region, id|arn|alias) -> (arn, key policy) | None``, ``kms_key_id_of_ciphertext(blob)``
Request filter (both modes; implemented in ``moto_server``)
    ``set_request_filter(filter)``: every signed request goes through ``filter(RawRequest, proceed)``
    (wraps moto's in-process ``botocore_stubber.process_request`` and the server's
    ``DomainDispatcherApplication.__call__`` while routes are installed). moto's own condition-blind
    bucket-policy check (``FakeBucket.get_permission``) is neutral meanwhile; enforcement replaces it.
Offline store
    ``flush_offline_writes() -> None``   writes buffered Feature Store offline rows to S3 + Glue partitions
Athena API hook
    StartQueryExecution, GetQueryExecution, GetQueryResults, StopQueryExecution, ListQueryExecutions and
    BatchGetQueryExecution are answered by ``featureshare.local.athena_service.handle(action, account_id,
    region, params) -> dict`` (imported lazily; moto's own behaviour if that module does not exist).
    ``athena_service.AthenaClientError(code, message)`` becomes an HTTP 400 with that ``__type``.
    Offline writes are flushed before every StartQueryExecution; ``athena_service.reset()`` (if the module
    is loaded) is called when the routes are uninstalled, i.e. when an EmbeddedAWS stops.
Accounts and routing (used by ``EmbeddedAWS``)
    ``create_admin_user``, ``account_of_access_key``, ``reset_backends``, ``install_routes``,
    ``uninstall_routes``, ``start_server``/``stop_server``.
Server mode (``EmbeddedServer``; implemented in ``moto_server``)
    moto's WSGI app on werkzeug's threaded server with HTTP/1.1 keep-alive. Feature Store runtime requests
    skip ``DomainDispatcherApplication`` and go to the handler ``_runtime_handler()`` names; see ``moto_server``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import moto
import moto.backend_index as backend_index
import moto.backends as moto_backends
from moto.core.base_backend import BackendDict
from moto.core.responses import BaseResponse
from moto.core.utils import utcnow as _moto_utcnow

# Re-exported: callers import these from moto_internals. moto_server never imports this module (no cycle).
from featureshare.local.moto_server import (  # noqa: F401
    CREDENTIAL_SCOPE,
    KEEPALIVE_IDLE_TIMEOUT_S,
    RUNTIME_PATH,
    EmbeddedServer,
    Handler,
    RawRequest,
    RequestFilter,
    WireRequest,
    WireResponse,
    _install_request_hooks,
    _uninstall_request_hooks,
    account_of_access_key,
    error_response,
    json_response,
    set_request_filter,
    start_server,
    stop_server,
)

logger = logging.getLogger(__name__)

MOTO_VERSION = "5.2.5"
PARTITION = "aws"

#: Athena actions answered by ``featureshare.local.athena_service`` instead of moto.
ATHENA_HOOKED_ACTIONS = frozenset({
    "StartQueryExecution", "GetQueryExecution", "GetQueryResults", "StopQueryExecution",
    "ListQueryExecutions", "BatchGetQueryExecution",
})
ATHENA_SERVICE_MODULE = "featureshare.local.athena_service"

_LOCK = threading.RLock()

def check_moto_version() -> None:
    """Raise ``RuntimeError`` unless the installed moto is the exact version this module was written for."""
    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(
            f"featureshare.local needs moto=={MOTO_VERSION} (found {moto.__version__}); "
            "run tests/local/test_moto_contract.py to see which internals moved"
        )


def _backend_dict(service: str) -> BackendDict:
    return moto_backends.get_backend(service)  # type: ignore[call-overload,no-any-return]


# --------------------------------------------------------------------------------------------------- S3

def _s3_bucket(bucket: str) -> Any | None:
    s3 = _backend_dict("s3")
    owner = s3.bucket_accounts.get(bucket)
    if owner is None:
        return None
    partition, account = owner
    return s3[account][partition].buckets.get(bucket)


def _s3_backend_for(bucket: str) -> Any:
    s3 = _backend_dict("s3")
    owner = s3.bucket_accounts.get(bucket)
    if owner is None:
        raise KeyError(f"no such bucket: {bucket}")
    partition, account = owner
    return s3[account][partition]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key`` (scheme matched case-insensitively, as Athena does)."""
    bucket, _, key = uri.removeprefix("s3://").removeprefix("S3://").partition("/")
    return bucket, key


def s3_list(bucket: str, prefix: str) -> list[tuple[str, int]]:
    """Keys (latest versions) under ``prefix`` in ``bucket`` with their sizes, sorted by key."""
    with _LOCK:
        fake = _s3_bucket(bucket)
        if fake is None:
            raise KeyError(f"no such bucket: {bucket}")
        out = []
        for name in list(fake.keys.keys()):
            if not name.startswith(prefix):
                continue
            key = fake.keys.get(name)
            if key is None or not hasattr(key, "size"):  # delete markers have no size
                continue
            out.append((name, int(key.size)))
        return sorted(out)


def s3_get(bucket: str, key: str) -> bytes:
    """The body of ``s3://bucket/key``; ``KeyError`` if bucket or object is missing."""
    with _LOCK:
        fake = _s3_bucket(bucket)
        obj = None if fake is None else fake.keys.get(key)
        if obj is None or not hasattr(obj, "value"):
            raise KeyError(f"no such object: s3://{bucket}/{key}")
        return bytes(obj.value)


def s3_put(bucket: str, key: str, body: bytes, kms_key_id: str | None = None) -> None:
    """Store ``body`` at ``s3://bucket/key`` (SSE-KMS recorded when ``kms_key_id`` is given)."""
    with _LOCK:
        backend = _s3_backend_for(bucket)
        backend.put_object(bucket, key, body, encryption="aws:kms" if kms_key_id else None,
                           kms_key_id=kms_key_id, disable_notification=True)


def s3_delete(bucket: str, key: str) -> None:
    """Delete ``s3://bucket/key``; missing objects are ignored."""
    with _LOCK:
        fake = _s3_bucket(bucket)
        if fake is None or fake.keys.get(key) is None:
            return
        _s3_backend_for(bucket).delete_object(bucket, key)


def s3_bucket_owner(bucket: str) -> str | None:
    """Account id owning ``bucket``, or ``None`` when no such bucket exists."""
    with _LOCK:
        owner = _backend_dict("s3").bucket_accounts.get(bucket)
        return None if owner is None else owner[1]


def s3_object_encryption(bucket: str, key: str) -> tuple[str | None, str | None]:
    """(server-side encryption algorithm, KMS key id) recorded on an object."""
    with _LOCK:
        fake = _s3_bucket(bucket)
        obj = None if fake is None else fake.keys.get(key)
        if obj is None:
            raise KeyError(f"no such object: s3://{bucket}/{key}")
        return getattr(obj, "encryption", None), getattr(obj, "kms_key_id", None)


# --------------------------------------------------------------------------------------------------- Glue

def _glue(account: str, region: str) -> Any:
    return _backend_dict("glue")[account][region]


def glue_get_database(account: str, region: str, name: str) -> dict[str, Any] | None:
    """``get_database()["Database"]``-shaped dict, or ``None``."""
    with _LOCK:
        db = _glue(account, region).databases.get(name)
        return None if db is None else db.as_dict()


def glue_create_database(account: str, region: str, name: str) -> None:
    """Create the Glue database ``name`` unless it exists."""
    with _LOCK:
        glue = _glue(account, region)
        if name not in glue.databases:
            glue.create_database(name, {"Name": name})


def glue_list_databases(account: str, region: str) -> list[str]:
    """Names of the account's Glue databases in ``region``."""
    with _LOCK:
        return list(_glue(account, region).databases)


def glue_get_table(account: str, region: str, database: str, table: str) -> dict[str, Any] | None:
    """``get_table()["Table"]``-shaped dict, or ``None`` if the database or table is missing."""
    with _LOCK:
        db = _glue(account, region).databases.get(database)
        fake = None if db is None else db.tables.get(table)
        return None if fake is None else fake.as_dict()


def glue_list_tables(account: str, region: str, database: str) -> list[dict[str, Any]]:
    """Every table of ``database`` (``[]`` if the database is missing)."""
    with _LOCK:
        db = _glue(account, region).databases.get(database)
        return [] if db is None else [t.as_dict() for t in db.tables.values()]


def glue_create_table(account: str, region: str, database: str, table_input: dict[str, Any]) -> None:
    """Create a table from a boto3 ``TableInput`` (the database must exist)."""
    with _LOCK:
        _glue(account, region).create_table(database, table_input["Name"], dict(table_input))


def glue_delete_table(account: str, region: str, database: str, table: str) -> None:
    """Delete a table; missing tables are ignored."""
    with _LOCK:
        db = _glue(account, region).databases.get(database)
        if db is not None:
            db.tables.pop(table, None)


def glue_get_partitions(account: str, region: str, database: str, table: str) -> list[dict[str, Any]]:
    """Partitions of a table in boto3 shape (``Values``, ``StorageDescriptor.Location``)."""
    with _LOCK:
        db = _glue(account, region).databases.get(database)
        fake = None if db is None else db.tables.get(table)
        return [] if fake is None else [p.as_dict() for p in fake.partitions.values()]


def glue_add_partition(account: str, region: str, database: str, table: str, values: list[str],
                       location: str) -> bool:
    """Register a partition (Parquet, at ``location``) unless present; True if it was added."""
    with _LOCK:
        db = _glue(account, region).databases.get(database)
        fake = None if db is None else db.tables.get(table)
        if fake is None or str(list(values)) in fake.partitions:
            return False
        table_sd = fake.as_dict().get("StorageDescriptor", {})
        sd = {k: v for k, v in table_sd.items() if k in ("InputFormat", "OutputFormat", "SerdeInfo")}
        sd["Location"] = location
        sd["Columns"] = table_sd.get("Columns", [])
        fake.create_partition({"Values": list(values), "StorageDescriptor": sd})
        return True


# --------------------------------------------------------------------------------------------------- Athena

def _athena(account: str, region: str) -> Any:
    return _backend_dict("athena")[account][region]


def athena_workgroup(account: str, region: str, name: str) -> dict[str, Any] | None:
    """``get_work_group()["WorkGroup"]``-shaped dict, or ``None``."""
    with _LOCK:
        return _athena(account, region).get_work_group(name)  # type: ignore[no-any-return]


def athena_data_catalog(account: str, region: str, name: str) -> dict[str, Any] | None:
    """Data catalog (Name, Description, Type, Parameters) registered in Athena, or ``None``."""
    with _LOCK:
        return _athena(account, region).get_data_catalog(name)  # type: ignore[no-any-return]


_WORKGROUP_RESULT_REMOVALS = {"RemoveOutputLocation": "OutputLocation",
                              "RemoveEncryptionConfiguration": "EncryptionConfiguration",
                              "RemoveExpectedBucketOwner": "ExpectedBucketOwner",
                              "RemoveAclConfiguration": "AclConfiguration"}


class AthenaGapError(Exception):
    """An Athena ``InvalidRequestException`` raised by the actions moto 5.2.5 does not implement."""


def athena_update_work_group(account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateWorkGroup over moto's workgroup (moto 5.2.5 lacks it): Description, State, ConfigurationUpdates.

    Limits: ``CustomerContentEncryptionConfiguration``, ``ManagedQueryResultsConfigurationUpdates`` and the
    Spark-only fields are stored as given, not validated.
    """
    with _LOCK:
        group = _athena(account, region).work_groups.get(params.get("WorkGroup", ""))
        if group is None:
            raise AthenaGapError(f"WorkGroup {params.get('WorkGroup')} is not found.")
        if "Description" in params:
            group.description = params["Description"]
        if "State" in params:
            group.state = params["State"]
        updates = dict(params.get("ConfigurationUpdates") or {})
        result_updates = dict(updates.pop("ResultConfigurationUpdates", None) or {})
        config = group.configuration
        if updates.pop("RemoveBytesScannedCutoffPerQuery", False):
            config.pop("BytesScannedCutoffPerQuery", None)
        config.update(updates)
        result = dict(config.get("ResultConfiguration") or {})
        for flag, name in _WORKGROUP_RESULT_REMOVALS.items():
            if result_updates.pop(flag, False):
                result.pop(name, None)
        result.update(result_updates)
        config["ResultConfiguration"] = result
        return {}


def athena_delete_data_catalog(account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    """DeleteDataCatalog (moto 5.2.5 lacks it); its tags go too. Returns the deleted catalog."""
    with _LOCK:
        backend = _athena(account, region)
        name = params.get("Name", "")
        catalog = backend.data_catalogs.pop(name, None)
        if catalog is None:
            raise AthenaGapError(f"Catalog {name} is not found.")
        backend.tagger.delete_all_tags_for_resource(catalog.arn)
        return {"DataCatalog": {"Name": catalog.name, "Type": catalog.type, "Status": "DELETE_COMPLETE"}}


def athena_update_data_catalog(account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    """UpdateDataCatalog (moto 5.2.5 lacks it): Type, Description and Parameters replace the stored ones."""
    with _LOCK:
        catalog = _athena(account, region).data_catalogs.get(params.get("Name", ""))
        if catalog is None:
            raise AthenaGapError(f"Catalog {params.get('Name')} is not found.")
        catalog.type = params.get("Type", catalog.type)
        if "Description" in params:
            catalog.description = params["Description"]
        if "Parameters" in params:
            catalog.parameters = params["Parameters"]
        return {}


def athena_list_tags_for_resource(account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    """ListTagsForResource of a workgroup or data catalog: ``{"Tags": []}`` for one without tags, as AWS answers
    (moto 5.2.5 answers "Does Not Exist" for every untagged resource)."""
    arn = str(params.get("ResourceARN") or "")
    kind, _, name = arn.rpartition(":")[2].partition("/")
    with _LOCK:
        backend = _athena(account, region)
        resources = {"workgroup": backend.work_groups, "datacatalog": backend.data_catalogs}.get(kind, {})
        if name not in resources:
            raise AthenaGapError(f"Athena Resource, {arn} Does Not Exist")
        tags = backend.tagger.list_tags_for_resource(arn)["Tags"] if backend.tagger.has_tags(arn) else []
        return {"Tags": list(tags)}


#: Athena actions moto 5.2.5 leaves unimplemented (or answers unlike AWS), answered here over moto's own state.
ATHENA_GAP_ACTIONS: dict[str, Callable[[str, str, dict[str, Any]], dict[str, Any]]] = {
    "UpdateWorkGroup": athena_update_work_group, "DeleteDataCatalog": athena_delete_data_catalog,
    "UpdateDataCatalog": athena_update_data_catalog, "ListTagsForResource": athena_list_tags_for_resource,
}


# --------------------------------------------------------------------------------------------------- offline

_flusher: Callable[[], None] | None = None


def set_offline_flusher(flusher: Callable[[], None] | None) -> None:
    """Register (or clear) the function that writes buffered offline-store rows."""
    global _flusher
    _flusher = flusher


def flush_offline_writes() -> None:
    """Make every buffered Feature Store offline write visible in S3 and Glue (no-op when none)."""
    flusher = _flusher
    if flusher is not None:
        flusher()


# --------------------------------------------------------------------------------------------------- IAM

def create_admin_user(account: str, user_name: str = "admin") -> tuple[str, str]:
    """Create an IAM user with an admin inline policy and one access key in ``account``.

    Done on the backend directly (the same effect as an IAM call carrying ``x-moto-account-id``), so no
    environment variable ever pins the account. Returns (access key id, secret access key).
    """
    policy = json.dumps({"Version": "2012-10-17",
                         "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    with _LOCK:
        iam = _backend_dict("iam")[account][PARTITION]
        iam.create_user(region_name="us-east-1", user_name=user_name)
        iam.put_user_policy(user_name, "AdministratorAccess", policy)
        key = iam.create_access_key(user_name)
        return key.access_key_id, key.secret_access_key


def reset_backends() -> None:
    """Drop all moto state (every service, every account)."""
    with _LOCK:
        BackendDict.reset()


# --------------------------------------------------------------------------------------------------- principals

@dataclass(frozen=True)
class Caller:
    """Who signed a request: an IAM user or an assumed-role session (``role_arn`` set)."""

    access_key_id: str
    account: str
    arn: str
    role_arn: str = ""
    user_name: str = ""


def _iam(account: str) -> Any:
    return _backend_dict("iam")[account][PARTITION]


def _documents(policies: dict[str, str], managed: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = [(name, json.loads(unquote(doc) if doc.lstrip().startswith("%") else doc))
           for name, doc in policies.items()]
    for arn, policy in managed.items():
        version = next((v for v in policy.versions if v.is_default), None)
        if version is not None and version.document:
            out.append((arn, json.loads(version.document)))
    return out


def _tag_list(tags: Any) -> list[dict[str, str]]:
    # moto keeps role tags as a list of {"Key", "Value"} (other IAM entities: a dict keyed by lower-case key)
    return list(tags.values()) if isinstance(tags, dict) else list(tags or [])


def caller_of_access_key(access_key_id: str) -> Caller | None:
    """The user or assumed-role session owning ``access_key_id``; ``None`` for keys moto does not know."""
    with _LOCK:
        account = account_of_access_key(access_key_id)
        iam = _iam(account)
        key = iam.access_keys.get(access_key_id)
        if key is None:
            return None
        if getattr(key, "role_arn", None):
            sts = _backend_dict("sts")[account][PARTITION]
            assumed = sts.get_assumed_role_from_access_key(access_key_id)
            if assumed is None:
                return None
            return Caller(access_key_id, account, assumed.arn, role_arn=assumed.role_arn)
        user = iam.get_user_from_access_key_id(access_key_id)
        if user is None:
            return None
        return Caller(access_key_id, account, user.arn, user_name=user.name)


def session_expiration(access_key_id: str) -> dt.datetime | None:
    """When the assumed-role session owning ``access_key_id`` expires (naive UTC, as moto's STS keeps it).

    ``None`` for IAM-user keys and keys moto does not know: only AssumeRole sessions carry an expiry.
    """
    with _LOCK:
        account = account_of_access_key(access_key_id)
        key = _iam(account).access_keys.get(access_key_id)
        if key is None or not getattr(key, "role_arn", None):
            return None
        assumed = _backend_dict("sts")[account][PARTITION].get_assumed_role_from_access_key(access_key_id)
        return None if assumed is None else assumed.expiration  # type: ignore[no-any-return]


def moto_utcnow() -> dt.datetime:
    """Now as naive UTC on moto's clock -- the one STS computes expirations from (time-machine moves both)."""
    return _moto_utcnow()


def iam_role(account: str, role_name: str) -> dict[str, Any] | None:
    """``{"Arn", "Trust", "Tags", "Policies"}`` of a role (inline and attached policies parsed), or ``None``."""
    with _LOCK:
        role = next((r for r in _iam(account).roles.values() if r.name == role_name), None)
        if role is None:
            return None
        trust = role.assume_role_policy_document
        return {"Arn": role.arn, "Trust": json.loads(trust) if isinstance(trust, str) else dict(trust),
                "Tags": {t["Key"]: t["Value"] for t in _tag_list(role.tags)},
                "Policies": _documents(role.policies, role.managed_policies)}


def iam_user_policies(account: str, user_name: str) -> list[tuple[str, dict[str, Any]]]:
    """Inline and attached policies of an IAM user (group policies are not included)."""
    with _LOCK:
        user = _iam(account).users.get(user_name)
        return [] if user is None else _documents(user.policies, user.managed_policies)


# --------------------------------------------------------------------------------------------------- policies

def s3_bucket_policy(bucket: str) -> dict[str, Any] | None:
    """The bucket policy of ``bucket`` (parsed), ``None`` if it has none or does not exist."""
    with _LOCK:
        fake = _s3_bucket(bucket)
        policy = None if fake is None else fake.policy
        return None if not policy else json.loads(policy)


def s3_bucket_kms_key(bucket: str) -> str | None:
    """The KMS key of the bucket's default SSE-KMS encryption, ``None`` without one."""
    with _LOCK:
        fake = _s3_bucket(bucket)
        rule = ((fake.encryption or {}).get("Rule") or {}) if fake is not None else {}
        default = rule.get("ApplyServerSideEncryptionByDefault") or {}
        if default.get("SSEAlgorithm") != "aws:kms":
            return None
        return default.get("KMSMasterKeyID") or None


def glue_catalog_policy(account: str, region: str) -> dict[str, Any] | None:
    """The Glue Data Catalog resource policy of ``account`` (parsed), ``None`` without one."""
    with _LOCK:
        glue = _glue(account, region)
        entry = glue.resource_policies.get(glue.default_catalog_arn) or {}
        text = entry.get("PolicyInJson")
        return json.loads(text) if text else None


def kms_key(account: str, region: str, key_id: str) -> tuple[str, dict[str, Any]] | None:
    """(key ARN, key policy) for a key id, key ARN, alias or alias ARN in ``account``; ``None`` if unknown."""
    with _LOCK:
        kms = _backend_dict("kms")[account][region]
        try:
            key = kms.keys.get(kms.any_id_to_key_id(key_id))
        except (KeyError, AttributeError, TypeError):
            key = None
        if key is None:
            return None
        return key.arn, json.loads(key.policy)


def kms_key_id_of_ciphertext(blob: bytes) -> str | None:
    """The key id moto writes at the start of its (non-AWS) ciphertext format; ``None`` if unreadable."""
    from moto.kms.utils import _deserialize_ciphertext_blob

    try:
        return str(_deserialize_ciphertext_blob(blob).key_id)
    except Exception:  # any malformed blob: the caller then judges the request without a key
        return None


# --------------------------------------------------------------------------------------------------- routing



@dataclass
class _Installed:
    sagemaker_bases: list[str]
    sagemaker_paths: dict[str, Any]
    athena_paths: dict[str, Any]
    patterns: list[Any]
    bucket_permission: Any
    request_hooks: Any
    bucket_replication: Any = None
    ram_shareable: list[str] = field(default_factory=list)
    handlers: dict[str, Handler] = field(default_factory=dict)


_installed: _Installed | None = None

FEATURESTORE_RUNTIME_BASE = r"https?://featurestore-runtime\.sagemaker\.(.+)\.amazonaws\.com"
_RUNTIME_PATHS = ("{0}/FeatureGroup/(?P<fs_name>.+)$", "{0}/BatchGetRecord$", "{0}/BatchWriteRecord$")


def _wire_request(request: Any, full_url: str, service: str) -> WireRequest:
    response = BaseResponse(service_name=service)
    response.setup_class(request, full_url, request.headers)
    parsed = urlparse(full_url)
    query = parse_qs(parsed.query, keep_blank_values=True)
    target = request.headers.get("X-Amz-Target") or request.headers.get("x-amz-target") or ""
    raw = request.data if isinstance(request.data, bytes) else str(request.data or "").encode()
    return WireRequest(account=response.current_account, region=response.region, method=request.method,
                       path=unquote(parsed.path), query=query, headers=dict(request.headers), body=raw,
                       target=target.split(".")[-1] if target else "")


def _runtime_route(request: Any, full_url: str, headers: Any) -> WireResponse:
    installed = _installed
    if installed is None:
        return error_response(503, "ServiceUnavailable", "featurestore-runtime is not running")
    wire = _wire_request(request, full_url, "sagemaker")
    response = installed.handlers["featurestore-runtime"](wire)
    return response if response is not None else error_response(404, "UnknownOperationException", wire.path)


def _runtime_handler() -> Handler | None:
    """The installed featurestore-runtime handler, for ``moto_server``'s server-mode shortcut."""
    installed = _installed
    return None if installed is None else installed.handlers["featurestore-runtime"]


def _sagemaker_route(request: Any, full_url: str, headers: Any) -> WireResponse:
    installed = _installed
    if installed is not None:
        wire = _wire_request(request, full_url, "sagemaker")
        response = installed.handlers["sagemaker"](wire)
        if response is not None:
            return response
    original = installed.sagemaker_paths["{0}/$"] if installed else None
    if original is None:
        from moto.sagemaker.responses import SageMakerResponse

        original = SageMakerResponse.dispatch
    return original(request, full_url, headers)  # type: ignore[no-any-return]


def _athena_service() -> Any | None:
    try:
        return importlib.import_module(ATHENA_SERVICE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != ATHENA_SERVICE_MODULE:
            raise
        return None


def _athena_route(request: Any, full_url: str, headers: Any) -> WireResponse:
    installed = _installed
    original = installed.athena_paths["{0}/$"] if installed else None
    if original is None:
        from moto.athena.responses import AthenaResponse

        original = AthenaResponse.dispatch
    wire = _wire_request(request, full_url, "athena")
    gap = ATHENA_GAP_ACTIONS.get(wire.target)
    if gap is not None:
        try:
            return json_response(200, gap(wire.account, wire.region, wire.json()))
        except AthenaGapError as exc:
            return error_response(400, "InvalidRequestException", str(exc))
    service = _athena_service() if wire.target in ATHENA_HOOKED_ACTIONS else None
    if service is None:
        return original(request, full_url, headers)  # type: ignore[no-any-return]
    if wire.target == "StartQueryExecution":
        flush_offline_writes()
    try:
        return json_response(200, service.handle(wire.target, wire.account, wire.region, wire.json()))
    except service.AthenaClientError as exc:
        code = getattr(exc, "code", None) or (exc.args[0] if exc.args else "InvalidRequestException")
        message = getattr(exc, "message", None) or (exc.args[1] if len(exc.args) > 1 else str(exc))
        return error_response(400, str(code), str(message))


def _xml_empty_as_string(node: Any) -> Any:
    """moto keeps PutBucketReplication's XML parsed by xmltodict, where an empty element is ``None``."""
    if isinstance(node, dict):
        return {key: _xml_empty_as_string(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_xml_empty_as_string(item) for item in node]
    return "" if node is None else node


def _stored_bucket_replication(self: Any) -> Any:
    """``S3Response.get_bucket_replication`` answering the rules as stored (V1 rules keep their ``Prefix``)."""
    from moto.core.responses import ActionResult
    from moto.s3.exceptions import ReplicationConfigurationNotFoundError

    self.data["Action"] = "GetBucketReplication"
    replication = self.backend.get_bucket_replication(self.bucket_name)
    if not replication:
        raise ReplicationConfigurationNotFoundError(bucket_name=self.bucket_name)
    rules = [_xml_empty_as_string(rule) for rule in replication["Rule"]]
    return self.serialized(ActionResult({"ReplicationConfiguration": {"Role": replication["Role"], "Rules": rules}}))


def _neutral_bucket_permission(self: Any, action: str, resource: str) -> Any:
    from moto.iam.access_control import PermissionResult

    return PermissionResult.NEUTRAL


def install_routes(*, featurestore_runtime: Handler, sagemaker: Handler) -> None:
    """Route featurestore-runtime, SageMaker feature-group actions and hooked Athena actions to featureshare.

    ``featurestore_runtime`` answers every request to the runtime paths; ``sagemaker`` answers control-plane
    requests it recognises and returns ``None`` for the rest, which moto handles. Works in-process (moto's
    botocore stubber consults ``backend_url_patterns`` and the backend's ``urls`` per request) and in server
    mode (the Flask app built per service reads ``url_paths`` when first used, after this call).
    """
    global _installed
    with _LOCK:
        if _installed is not None:
            raise RuntimeError("featureshare.local routes are already installed (one EmbeddedAWS at a time)")
        import moto.athena.urls as athena_urls
        import moto.sagemaker.urls as sagemaker_urls
        from moto.s3.models import FakeBucket
        from moto.s3.responses import S3Response

        _installed = _Installed(
            sagemaker_bases=list(sagemaker_urls.url_bases), sagemaker_paths=dict(sagemaker_urls.url_paths),
            athena_paths=dict(athena_urls.url_paths), patterns=list(backend_index.backend_url_patterns),
            bucket_permission=FakeBucket.__dict__["get_permission"],
            bucket_replication=S3Response.__dict__["get_bucket_replication"],
            request_hooks=_install_request_hooks(_runtime_handler),
            handlers={"featurestore-runtime": featurestore_runtime, "sagemaker": sagemaker},
        )
        # moto judges object requests by the bucket policy while ignoring its Condition blocks, so the usual
        # "deny when aws:SecureTransport is false" statement denies everything; featureshare.local's
        # policy_enforcement evaluates bucket policies properly instead.
        FakeBucket.get_permission = _neutral_bucket_permission  # type: ignore[method-assign]
        S3Response.get_bucket_replication = _stored_bucket_replication  # type: ignore[method-assign]
        # RAM can share SageMaker feature groups (cross-account discoverability); moto's list lacks them.
        from moto.ram.models import ResourceShare

        _installed.ram_shareable = list(ResourceShare.SHAREABLE_RESOURCES)
        if "feature-group" not in ResourceShare.SHAREABLE_RESOURCES:
            ResourceShare.SHAREABLE_RESOURCES.append("feature-group")
        backend_index.backend_url_patterns.insert(0, ("sagemaker", re.compile(FEATURESTORE_RUNTIME_BASE)))
        sagemaker_urls.url_bases.append(FEATURESTORE_RUNTIME_BASE)
        for path in _RUNTIME_PATHS:
            sagemaker_urls.url_paths[path] = _runtime_route
        sagemaker_urls.url_paths["{0}/$"] = _sagemaker_route
        athena_urls.url_paths["{0}/$"] = _athena_route


def uninstall_routes() -> None:
    """Restore moto's routing tables exactly as ``install_routes`` found them."""
    global _installed
    with _LOCK:
        installed = _installed
        if installed is None:
            return
        import moto.athena.urls as athena_urls
        import moto.sagemaker.urls as sagemaker_urls

        sagemaker_urls.url_bases[:] = installed.sagemaker_bases
        sagemaker_urls.url_paths.clear()
        sagemaker_urls.url_paths.update(installed.sagemaker_paths)
        athena_urls.url_paths.clear()
        athena_urls.url_paths.update(installed.athena_paths)
        backend_index.backend_url_patterns[:] = installed.patterns
        from moto.s3.models import FakeBucket

        FakeBucket.get_permission = installed.bucket_permission  # type: ignore[method-assign]
        from moto.s3.responses import S3Response

        S3Response.get_bucket_replication = installed.bucket_replication  # type: ignore[method-assign]
        from moto.ram.models import ResourceShare

        ResourceShare.SHAREABLE_RESOURCES[:] = installed.ram_shareable
        _uninstall_request_hooks(installed.request_hooks)
        _installed = None
    # Queries of a stopped emulator must not outlive it (their threads hold DuckDB connections).
    service = sys.modules.get(ATHENA_SERVICE_MODULE)
    if service is not None and hasattr(service, "reset"):
        service.reset()


# --------------------------------------------------------------------------------------------------- modes

def start_in_process() -> Any:
    """Start moto's in-process mock (botocore stubber); returns the object to pass to ``stop_in_process``."""
    from moto import mock_aws

    mock = mock_aws()
    mock.start()
    return mock


def stop_in_process(mock: Any) -> None:
    mock.stop()

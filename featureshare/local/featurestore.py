"""The SageMaker Feature Store control plane of the embedded AWS (feature groups, tags, search).

moto 5.2.5 only stores CreateFeatureGroup/DescribeFeatureGroup (with the ``sagemaker/`` segment missing from
the offline URI); this module answers every feature-group action itself, keyed by (account, region), and
leaves all other SageMaker actions to moto.

Emulation limits:
- groups are ``Created`` (and the offline store ``Active``) as soon as CreateFeatureGroup returns; deletion is
  immediate; ``ThroughputConfig`` and ``OnlineStoreTotalSizeBytes`` are bookkeeping only;
- the offline S3 bucket must exist in the emulated S3; the offline-store role is recorded, not assumed;
- ``TableFormat=Iceberg`` registers the Glue table with ``table_type=ICEBERG`` but writes the same Parquet
  layout as the Glue format (no Iceberg metadata files);
- ``Search`` supports ``Filters`` (Equals, NotEquals, Contains, Exists, NotExists) on top-level string fields
  and ``Tags.<key>``, ``SortBy``/``SortOrder`` on top-level fields; no nested filters or suggestions;
- a group is found by ARN in any account and region of the emulator (cross-account sharing is not checked).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from featureshare.local import moto_internals as mi
from featureshare.local.moto_internals import WireRequest, WireResponse

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}$")
ARN_PATTERN = re.compile(
    r"^arn:aws[a-z\-]*:sagemaker:(?P<region>[a-z0-9\-]*):(?P<account>[0-9]{12}):feature-group/(?P<name>.+)$")
RESERVED_FEATURE_NAMES = frozenset({"is_deleted", "write_time", "api_invocation_time"})
FEATURE_TYPES = {"Integral": "bigint", "Fractional": "double", "String": "string"}
MAX_FEATURES = 2500
MAX_TAGS = 50
MAX_FEATURE_ADDITIONS = 100
DEFAULT_CATALOG = "AwsDataCatalog"
DEFAULT_DATABASE = "sagemaker_featurestore"
PARTITION_KEYS = ("year", "month", "day", "hour")
TTL_UNITS_SECONDS = {"Seconds": 1, "Minutes": 60, "Hours": 3600, "Days": 86400, "Weeks": 604800}
CONTROL_ACTIONS = frozenset({"CreateFeatureGroup", "DescribeFeatureGroup", "ListFeatureGroups",
                             "UpdateFeatureGroup", "DeleteFeatureGroup"})
TAG_ACTIONS = frozenset({"AddTags", "ListTags", "DeleteTags"})


class ServiceError(Exception):
    """An AWS error answer (status, code, message) raised inside the emulated services."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def validation(message: str) -> ServiceError:
    return ServiceError(400, "ValidationException", message)


def not_found(name: str) -> ServiceError:
    return ServiceError(400, "ResourceNotFound", f"Resource Not Found: FeatureGroup with name {name} not found.")


def ttl_seconds(ttl: dict[str, Any] | None) -> float | None:
    """Seconds of a ``TtlDuration`` (None when absent); raises ``ServiceError`` when malformed."""
    if not ttl:
        return None
    unit, value = ttl.get("Unit"), ttl.get("Value")
    if unit not in TTL_UNITS_SECONDS or not isinstance(value, int) or value < 1:
        raise validation(f"Invalid TtlDuration {ttl}: Unit must be one of {sorted(TTL_UNITS_SECONDS)}, "
                         "Value a positive integer")
    return float(TTL_UNITS_SECONDS[unit] * value)


@dataclass
class OnlineRecord:
    """The online-store copy of one record: values as strings, event time as epoch seconds."""

    values: dict[str, str]
    event_time: float
    expires_at: float | None = None
    soft_deleted: bool = False


@dataclass
class FeatureGroup:
    """One feature group and its online store."""

    name: str
    account: str
    region: str
    record_id_name: str
    event_time_name: str
    definitions: list[dict[str, Any]]
    created: dt.datetime
    online_config: dict[str, Any] | None
    offline_config: dict[str, Any] | None
    role_arn: str | None = None
    description: str | None = None
    throughput: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    last_modified: dt.datetime | None = None
    online: dict[str, OnlineRecord] = field(default_factory=dict)

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:feature-group/{self.name.lower()}"

    @property
    def types(self) -> dict[str, str]:
        return {d["FeatureName"]: d["FeatureType"] for d in self.definitions}

    @property
    def online_enabled(self) -> bool:
        return bool(self.online_config and self.online_config.get("EnableOnlineStore"))

    @property
    def ttl_seconds(self) -> float | None:
        return ttl_seconds((self.online_config or {}).get("TtlDuration"))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"FeatureGroupName": self.name, "FeatureGroupArn": self.arn,
                               "CreationTime": self.created, "FeatureGroupStatus": "Created"}
        if self.offline_config:
            out["OfflineStoreStatus"] = {"Status": "Active"}
        return out

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "FeatureGroupArn": self.arn, "FeatureGroupName": self.name,
            "RecordIdentifierFeatureName": self.record_id_name, "EventTimeFeatureName": self.event_time_name,
            "FeatureDefinitions": [dict(d) for d in self.definitions], "CreationTime": self.created,
            "FeatureGroupStatus": "Created", "NextToken": "",
            "ThroughputConfig": self.throughput or {"ThroughputMode": "OnDemand"},
        }
        if self.online_config:
            out["OnlineStoreConfig"] = self.online_config
            out["OnlineStoreTotalSizeBytes"] = sum(
                len(k) + sum(len(v) for v in r.values.values()) for k, r in self.online.items())
        if self.offline_config:
            out["OfflineStoreConfig"] = self.offline_config
            out["OfflineStoreStatus"] = {"Status": "Active"}
        optional = {"RoleArn": self.role_arn, "Description": self.description,
                    "LastModifiedTime": self.last_modified}
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.last_modified is not None:
            out["LastUpdateStatus"] = {"Status": "Successful"}
        return out

    def search_record(self) -> dict[str, Any]:
        record = self.describe()
        record.pop("NextToken", None)
        record.pop("OnlineStoreTotalSizeBytes", None)
        record["Tags"] = [{"Key": k, "Value": v} for k, v in self.tags.items()]
        return record


def glue_columns(definitions: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Glue columns of the offline table: the features, then write_time, api_invocation_time, is_deleted."""
    columns = [{"Name": d["FeatureName"].lower(), "Type": FEATURE_TYPES[d["FeatureType"]]} for d in definitions]
    return [*columns, {"Name": "write_time", "Type": "timestamp"},
            {"Name": "api_invocation_time", "Type": "timestamp"}, {"Name": "is_deleted", "Type": "boolean"}]


def glue_table_input(group: FeatureGroup) -> dict[str, Any]:
    """The Glue ``TableInput`` SageMaker registers for an offline store (Parquet, hourly partitions)."""
    offline = group.offline_config or {}
    catalog = offline["DataCatalogConfig"]
    parameters = {"classification": "parquet", "EXTERNAL": "TRUE"}
    if offline.get("TableFormat") == "Iceberg":
        parameters["table_type"] = "ICEBERG"
    return {
        "Name": catalog["TableName"], "TableType": "EXTERNAL_TABLE", "Parameters": parameters,
        "Description": f"Offline store of SageMaker feature group {group.name}",
        "StorageDescriptor": {
            "Columns": glue_columns(group.definitions),
            "Location": offline["S3StorageConfig"]["ResolvedOutputS3Uri"],
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                          "Parameters": {"serialization.format": "1"}},
            "Compressed": False, "StoredAsSubDirectories": False,
        },
        "PartitionKeys": [{"Name": key, "Type": "string"} for key in PARTITION_KEYS],
    }


def _check_definitions(definitions: list[dict[str, Any]], storage_type: str | None) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for definition in definitions:
        name, ftype = definition.get("FeatureName", ""), definition.get("FeatureType")
        if not NAME_PATTERN.match(name):
            problems.append(f"Invalid feature name '{name}': must match {NAME_PATTERN.pattern}")
        if name.lower() in RESERVED_FEATURE_NAMES:
            problems.append(f"Feature name '{name}' is reserved: {sorted(RESERVED_FEATURE_NAMES)}")
        if name.lower() in seen:
            problems.append(f"Duplicate feature name '{name}' (names are case-insensitive)")
        seen.add(name.lower())
        if ftype not in FEATURE_TYPES:
            problems.append(f"Invalid FeatureType '{ftype}' for '{name}': must be one of {sorted(FEATURE_TYPES)}")
        if definition.get("CollectionType") and storage_type != "InMemory":
            problems.append(f"Feature '{name}': CollectionType is only supported with the InMemory storage type")
    return problems


def _check_create(params: dict[str, Any]) -> None:
    problems: list[str] = []
    name = params.get("FeatureGroupName", "")
    if not NAME_PATTERN.match(name):
        problems.append(f"Invalid FeatureGroupName '{name}': must match {NAME_PATTERN.pattern}")
    definitions = params.get("FeatureDefinitions") or []
    if not 1 <= len(definitions) <= MAX_FEATURES:
        problems.append(f"FeatureDefinitions must hold 1..{MAX_FEATURES} features, got {len(definitions)}")
    online = params.get("OnlineStoreConfig") or {}
    offline = params.get("OfflineStoreConfig")
    problems += _check_definitions(definitions, online.get("StorageType"))
    types = {d.get("FeatureName"): d.get("FeatureType") for d in definitions}
    record_id, event_time = params.get("RecordIdentifierFeatureName"), params.get("EventTimeFeatureName")
    if record_id not in types:
        problems.append(f"RecordIdentifierFeatureName '{record_id}' is not in FeatureDefinitions")
    elif types[record_id] not in ("String", "Integral"):
        problems.append("The record identifier feature must be of type String or Integral")
    if event_time not in types:
        problems.append(f"EventTimeFeatureName '{event_time}' is not in FeatureDefinitions")
    elif types[event_time] not in ("String", "Fractional"):
        problems.append("The event time feature must be of type String or Fractional")
    elif offline and offline.get("TableFormat") == "Iceberg" and types[event_time] != "String":
        problems.append("Iceberg offline stores require a String event time feature")
    if not online.get("EnableOnlineStore") and not offline:
        problems.append("At least one of OnlineStoreConfig (EnableOnlineStore=true) or OfflineStoreConfig "
                        "must be given")
    if offline and online.get("StorageType") == "InMemory":
        problems.append("The InMemory online store tier cannot be combined with an offline store")
    if offline and not params.get("RoleArn"):
        problems.append("RoleArn is required when OfflineStoreConfig is given")
    if len(params.get("Tags") or []) > MAX_TAGS:
        problems.append(f"At most {MAX_TAGS} tags are allowed")
    ttl_seconds(online.get("TtlDuration"))
    if problems:
        raise validation("; ".join(problems))


def _offline_config(params: dict[str, Any], account: str, region: str, epoch: int) -> dict[str, Any] | None:
    offline = params.get("OfflineStoreConfig")
    if not offline:
        return None
    s3 = dict(offline.get("S3StorageConfig") or {})
    uri = str(s3.get("S3Uri", ""))
    match = re.match(r"^s3://([^/]+)(/.*)?$", uri)
    if not match:
        raise validation(f"Invalid S3Uri '{uri}': must look like s3://bucket/prefix")
    if mi.s3_bucket_owner(match.group(1)) is None:
        raise validation(f"Cannot access S3 bucket {match.group(1)}: the bucket does not exist")
    name = params["FeatureGroupName"]
    s3["ResolvedOutputS3Uri"] = (f"{uri.rstrip('/')}/{account}/sagemaker/{region}/offline-store/"
                                 f"{name}-{epoch}/data")
    out: dict[str, Any] = {"S3StorageConfig": s3,
                           "DisableGlueTableCreation": bool(offline.get("DisableGlueTableCreation", False)),
                           "TableFormat": offline.get("TableFormat") or "Glue"}
    catalog = offline.get("DataCatalogConfig")
    if catalog:
        out["DataCatalogConfig"] = dict(catalog)
    elif not out["DisableGlueTableCreation"]:
        out["DataCatalogConfig"] = {"TableName": f"{name.replace('-', '_')}_{epoch}".lower(),
                                    "Catalog": DEFAULT_CATALOG, "Database": DEFAULT_DATABASE}
    return out


def page(items: list[Any], params: dict[str, Any], default_max: int, max_max: int,
         error: Callable[[str], ServiceError] = validation) -> tuple[list[Any], str]:
    """One page of ``items`` by the request's ``NextToken`` / ``MaxResults`` and the next token ("" at the end).

    A token is the offset this emulation handed out; anything else, or a MaxResults outside 1..``max_max``,
    raises ``error(message)`` (SageMaker's ValidationException by default).
    """
    token = str(params.get("NextToken") or "0")
    if not token.isdigit():
        raise error(f"Invalid NextToken '{token}': pass the NextToken of the previous answer")
    raw_size = params.get("MaxResults") or default_max
    try:
        size = int(raw_size)
    except (TypeError, ValueError):
        size = 0
    if not 1 <= size <= max_max:
        raise error(f"MaxResults must be within 1..{max_max}, not '{raw_size}'")
    start = int(token)
    return items[start:start + size], (str(start + size) if start + size < len(items) else "")


class FeatureStore:
    """Feature groups of every emulated account and region, plus the hook that answers SageMaker requests.

    ``clock`` returns the current UTC time (injectable so tests can freeze it).
    """

    def __init__(self, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.lock = threading.RLock()
        self._groups: dict[tuple[str, str], dict[str, FeatureGroup]] = {}
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    # ---------------------------------------------------------------- lookup
    def find(self, account: str, region: str, name_or_arn: str) -> FeatureGroup:
        """The group named (in the caller's account/region) or ARN'd (anywhere); ``ResourceNotFound`` if none."""
        match = ARN_PATTERN.match(name_or_arn)
        key = (match["account"], match["region"]) if match else (account, region)
        name = match["name"] if match else name_or_arn
        with self.lock:
            group = self._groups.get(key, {}).get(name.lower())
        if group is None:
            raise not_found(name)
        return group

    def groups(self, account: str, region: str) -> list[FeatureGroup]:
        with self.lock:
            return list(self._groups.get((account, region), {}).values())

    # ---------------------------------------------------------------- control plane
    def create_feature_group(self, account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        _check_create(params)
        now = self.clock()
        name = params["FeatureGroupName"]
        with self.lock:
            if name.lower() in self._groups.get((account, region), {}):
                raise ServiceError(400, "ResourceInUse",
                                   f"Resource Already Exists: FeatureGroup with name {name} already exists. "
                                   "Choose a different name.")
            online = params.get("OnlineStoreConfig")
            group = FeatureGroup(
                name=name, account=account, region=region,
                record_id_name=params["RecordIdentifierFeatureName"],
                event_time_name=params["EventTimeFeatureName"],
                definitions=[dict(d) for d in params["FeatureDefinitions"]], created=now,
                online_config=dict(online) if online and online.get("EnableOnlineStore") else None,
                offline_config=_offline_config(params, account, region, int(now.timestamp())),
                role_arn=params.get("RoleArn"), description=params.get("Description"),
                throughput=params.get("ThroughputConfig"),
                tags={t["Key"]: t.get("Value", "") for t in params.get("Tags") or []},
            )
            self._create_glue_table(group)
            self._groups.setdefault((account, region), {})[name.lower()] = group
        logger.debug("created feature group %s", group.arn)
        return {"FeatureGroupArn": group.arn}

    def _create_glue_table(self, group: FeatureGroup) -> None:
        offline = group.offline_config
        if not offline or offline["DisableGlueTableCreation"]:
            return
        catalog = offline["DataCatalogConfig"]
        mi.glue_create_database(group.account, group.region, catalog["Database"])
        if mi.glue_get_table(group.account, group.region, catalog["Database"], catalog["TableName"]):
            raise validation(f"Glue table {catalog['Database']}.{catalog['TableName']} already exists")
        mi.glue_create_table(group.account, group.region, catalog["Database"], glue_table_input(group))

    def describe_feature_group(self, account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.find(account, region, params.get("FeatureGroupName", "")).describe()

    def list_feature_groups(self, account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        groups = self.groups(account, region)
        contains = params.get("NameContains")
        status, offline_status = params.get("FeatureGroupStatusEquals"), params.get("OfflineStoreStatusEquals")
        after, before = params.get("CreationTimeAfter"), params.get("CreationTimeBefore")
        selected = [g for g in groups
                    if (not contains or contains in g.name)
                    and (not status or status == "Created")
                    and (not offline_status or (offline_status == "Active") == bool(g.offline_config))
                    and (after is None or g.created.timestamp() > float(after))
                    and (before is None or g.created.timestamp() < float(before))]
        sort_by = params.get("SortBy") or "CreationTime"
        keys: dict[str, Callable[[FeatureGroup], Any]] = {
            "Name": lambda g: g.name, "CreationTime": lambda g: g.created,
            "FeatureGroupStatus": lambda g: "Created",
            "OfflineStoreStatus": lambda g: "Active" if g.offline_config else "",
        }
        if sort_by not in keys:
            raise validation(f"Invalid SortBy '{sort_by}': must be one of {sorted(keys)}")
        selected.sort(key=keys[sort_by], reverse=(params.get("SortOrder") or "Descending") == "Descending")
        page_items, token = page(selected, params, default_max=10, max_max=100)
        out: dict[str, Any] = {"FeatureGroupSummaries": [g.summary() for g in page_items]}
        if token:
            out["NextToken"] = token
        return out

    def update_feature_group(self, account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        group = self.find(account, region, params.get("FeatureGroupName", ""))
        additions = params.get("FeatureAdditions") or []
        online_update = params.get("OnlineStoreConfig") or {}
        with self.lock:
            if len(additions) > MAX_FEATURE_ADDITIONS:
                raise validation(f"At most {MAX_FEATURE_ADDITIONS} FeatureAdditions per call")
            problems = _check_definitions(group.definitions + list(additions),
                                          (group.online_config or {}).get("StorageType"))
            if len(group.definitions) + len(additions) > MAX_FEATURES:
                problems.append(f"A feature group holds at most {MAX_FEATURES} features")
            if problems:
                raise validation("; ".join(problems))
            if online_update and not group.online_enabled:
                raise validation("OnlineStoreConfig can only be updated on a group with an online store")
            ttl_seconds(online_update.get("TtlDuration"))
            group.definitions.extend(dict(d) for d in additions)
            if online_update and group.online_config is not None:
                group.online_config.update(online_update)
            group.last_modified = self.clock()
            if additions:
                self._update_glue_columns(group)
        return {"FeatureGroupArn": group.arn}

    def _update_glue_columns(self, group: FeatureGroup) -> None:
        offline = group.offline_config
        if not offline or offline["DisableGlueTableCreation"]:
            return
        catalog = offline["DataCatalogConfig"]
        table = mi.glue_get_table(group.account, group.region, catalog["Database"], catalog["TableName"])
        if table is None:
            return
        mi.glue_delete_table(group.account, group.region, catalog["Database"], catalog["TableName"])
        partitions = table.get("PartitionKeys")
        mi.glue_create_table(group.account, group.region, catalog["Database"], glue_table_input(group))
        logger.debug("updated Glue columns of %s (partition keys %s)", catalog["TableName"], partitions)

    def delete_feature_group(self, account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("FeatureGroupName", "")
        if ARN_PATTERN.match(name):
            raise validation("DeleteFeatureGroup takes a feature group name, not an ARN")
        group = self.find(account, region, name)
        with self.lock:
            self._groups[(account, region)].pop(group.name.lower(), None)
        return {}

    # ---------------------------------------------------------------- tags and search
    def add_tags(self, account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        group = self.find(account, region, params.get("ResourceArn", ""))
        tags = params.get("Tags") or []
        with self.lock:
            merged = dict(group.tags)
            merged.update({t["Key"]: t.get("Value", "") for t in tags})
            if len(merged) > MAX_TAGS:
                raise validation(f"At most {MAX_TAGS} tags are allowed")
            group.tags = merged
        return {"Tags": tags}

    def list_tags(self, account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        group = self.find(account, region, params.get("ResourceArn", ""))
        items = [{"Key": k, "Value": v} for k, v in group.tags.items()]
        page_items, token = page(items, params, default_max=50, max_max=100)
        return {"Tags": page_items, **({"NextToken": token} if token else {})}

    def delete_tags(self, account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        group = self.find(account, region, params.get("ResourceArn", ""))
        with self.lock:
            group.tags = {k: v for k, v in group.tags.items() if k not in set(params.get("TagKeys") or [])}
        return {}

    def search(self, account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        filters = (params.get("SearchExpression") or {}).get("Filters") or []
        records = [g.search_record() for g in self.groups(account, region)]
        records = [r for r in records if all(_search_match(r, f) for f in filters)]
        sort_by = params.get("SortBy") or "CreationTime"
        records.sort(key=lambda r: str(r.get(sort_by, "")),
                     reverse=(params.get("SortOrder") or "Descending") == "Descending")
        page_items, token = page(records, params, default_max=10, max_max=100)
        return {"Results": [{"FeatureGroup": r} for r in page_items], **({"NextToken": token} if token else {})}

    # ---------------------------------------------------------------- wire
    def handle_sagemaker(self, request: WireRequest) -> WireResponse | None:
        """Answer feature-group SageMaker actions; ``None`` hands the request back to moto."""
        action = request.target
        params = request.json() if action else {}
        if action in TAG_ACTIONS and ":feature-group/" not in str(params.get("ResourceArn", "")):
            return None
        if action == "Search" and params.get("Resource") != "FeatureGroup":
            return None
        if action not in CONTROL_ACTIONS | TAG_ACTIONS | {"Search"}:
            return None
        method = getattr(self, re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower())
        try:
            return mi.json_response(200, method(request.account, request.region, params))
        except ServiceError as exc:
            return mi.error_response(exc.status, exc.code, exc.message)


def _search_match(record: dict[str, Any], flt: dict[str, Any]) -> bool:
    name, op, value = flt.get("Name", ""), flt.get("Operator", "Equals"), flt.get("Value")
    if name.startswith("Tags."):
        tags = {t["Key"]: t["Value"] for t in record.get("Tags", [])}
        actual = tags.get(name[len("Tags."):])
    else:
        actual = record.get(name)
    actual = None if actual is None else str(actual)
    checks: dict[str, Callable[[], bool]] = {
        "Equals": lambda: actual == value, "NotEquals": lambda: actual != value,
        "Contains": lambda: actual is not None and str(value) in actual,
        "Exists": lambda: actual is not None, "NotExists": lambda: actual is None,
    }
    if op not in checks:
        raise validation(f"Search operator '{op}' is not supported by the embedded AWS")
    return checks[op]()

"""The ``sagemaker-featurestore-runtime`` API of the embedded AWS (PutRecord, GetRecord, BatchGetRecord,
BatchWriteRecord, DeleteRecord, ListRecords).

Semantics follow the AWS docs: a record whose EventTime is greater than **or equal to** the online one
replaces it (the developer guide: "if the new record's event time is greater than or equal to the existing
event time, the record is overwritten"); older records go to the offline store only. Every put and delete
appends an offline row. ``ExpiresAt = EventTime + TtlDuration`` (record level, else batch level, else the
group's); expired records are not returned and are dropped on read.

Validation errors use the runtime's modelled code ``ValidationError`` (not the control plane's
``ValidationException``). EventTime strings must be ``yyyy-MM-dd'T'HH:mm:ssZ`` or ``yyyy-MM-dd'T'HH:mm:ss.SSSZ``
(exactly three fractional digits, as documented); Fractional event times are Unix epoch seconds.

Emulation limits: no per-account throughput limits (use ``inject_faults``); UpdateRecord (InMemory tier
only) is not emulated; collection-typed features are rejected; ListRecords pages by offset.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from typing import Any

from featureshare.local import moto_internals as mi
from featureshare.local.faults import FaultInjector
from featureshare.local.featurestore import (
    FeatureGroup,
    FeatureStore,
    OnlineRecord,
    ServiceError,
    page,
    ttl_seconds,
)
from featureshare.local.moto_internals import WireRequest, WireResponse
from featureshare.local.offline_store import OfflineRow, OfflineStore

logger = logging.getLogger(__name__)

MAX_RECORD_BYTES = 350 * 1024
MAX_BATCH_WRITE = 25
MAX_BATCH_GET_IDENTIFIERS = 100
MAX_BATCH_GET_IDS = 100
STORES = ("OnlineStore", "OfflineStore")
EVENT_TIME_STRING = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{3})?Z$")
INTEGRAL = re.compile(r"^[+-]?\d{1,19}$")


def invalid(message: str) -> ServiceError:
    return ServiceError(400, "ValidationError", message)


def _finite_float(value: str) -> float | None:
    """The value as a finite double, or None (not a number, NaN or infinite)."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_event_time(value: str, feature_type: str) -> float:
    """Epoch seconds of an EventTime value, validated like AWS."""
    if feature_type == "Fractional":
        seconds = _finite_float(value)
        if seconds is None:
            raise invalid(f"Invalid EventTime '{value}': a Fractional event time must be Unix epoch seconds")
        return seconds
    match = EVENT_TIME_STRING.match(value)
    try:
        if not match:
            raise ValueError(value)
        # datetime() validates the ranges (month 13, Feb 30, hour 24) as strptime would, at a tenth of its cost
        moment = dt.datetime(*(int(part) for part in match.group(1, 2, 3, 4, 5, 6)), tzinfo=dt.UTC)
    except ValueError:
        raise invalid(f"Invalid EventTime '{value}': expected yyyy-MM-dd'T'HH:mm:ssZ or "
                      "yyyy-MM-dd'T'HH:mm:ss.SSSZ (UTC)") from None
    millis = int(match.group(7)[1:]) if match.group(7) else 0
    return moment.timestamp() + millis / 1000.0


def _check_value(name: str, value: str, feature_type: str) -> None:
    if feature_type == "Integral":
        if not INTEGRAL.match(value) or not -(2**63) <= int(value) < 2**63:
            raise invalid(f"Invalid value '{value}' for Integral feature '{name}': expected a 64-bit integer")
    elif feature_type == "Fractional" and _finite_float(value) is None:
        raise invalid(f"Invalid value '{value}' for Fractional feature '{name}': expected a finite double")


def parse_record(group: FeatureGroup, record: list[dict[str, Any]]) -> tuple[dict[str, str], float]:
    """Validate a ``Record``; returns (values by feature name, event time in epoch seconds)."""
    if not record:
        raise invalid("Record must contain at least one feature value")
    types = group.types
    values: dict[str, str] = {}
    size = 0
    for item in record:
        name = item.get("FeatureName", "")
        if name not in types:
            raise invalid(f"Unknown feature name '{name}' for feature group {group.name}")
        if name in values:
            raise invalid(f"Feature '{name}' appears more than once in the record")
        if "ValueAsStringList" in item:
            raise invalid(f"Feature '{name}' is not a collection feature: use ValueAsString")
        if "ValueAsString" not in item:
            raise invalid(f"Feature '{name}' has no ValueAsString")
        value = str(item["ValueAsString"])
        _check_value(name, value, types[name])
        values[name] = value
        size += len(name.encode()) + len(value.encode())
    if size > MAX_RECORD_BYTES:
        raise invalid(f"Record size {size} bytes exceeds the limit of {MAX_RECORD_BYTES} bytes")
    if not values.get(group.record_id_name):
        raise invalid(f"Record identifier feature '{group.record_id_name}' is missing or empty")
    if group.event_time_name not in values:
        raise invalid(f"Event time feature '{group.event_time_name}' is missing")
    return values, parse_event_time(values[group.event_time_name], types[group.event_time_name])


def _target_stores(group: FeatureGroup, requested: list[str] | None) -> set[str]:
    available = {"OnlineStore"} if group.online_enabled else set()
    if group.offline_config:
        available.add("OfflineStore")
    if not requested:
        return available
    unknown = set(requested) - set(STORES)
    if unknown:
        raise invalid(f"Invalid TargetStores {sorted(unknown)}: must be OnlineStore and/or OfflineStore")
    missing = set(requested) - available
    if missing:
        raise invalid(f"Feature group {group.name} has no {' or '.join(sorted(missing))}")
    return set(requested)


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class FeatureStoreRuntime:
    """Answers runtime requests against a :class:`FeatureStore`, writing offline rows to an :class:`OfflineStore`."""

    def __init__(self, store: FeatureStore, offline: OfflineStore, faults: FaultInjector) -> None:
        self.store = store
        self.offline = offline
        self.faults = faults

    # ---------------------------------------------------------------- record operations
    def put(self, group: FeatureGroup, record: list[dict[str, Any]], target_stores: list[str] | None,
            ttl: dict[str, Any] | None, now: dt.datetime) -> None:
        """Validate and write one record to its target stores."""
        values, event_time = parse_record(group, record)
        stores = _target_stores(group, target_stores)
        ttl_s = ttl_seconds(ttl) if ttl else group.ttl_seconds
        if "OnlineStore" in stores:
            rid = values[group.record_id_name]
            with self.store.lock:
                current = self._live(group, rid, now)
                if current is None or current.soft_deleted or event_time >= current.event_time:
                    group.online[rid] = OnlineRecord(dict(values), event_time,
                                                     event_time + ttl_s if ttl_s else None)
        if "OfflineStore" in stores:
            self.offline.append([OfflineRow(group, dict(values), event_time, now)])

    def _live(self, group: FeatureGroup, rid: str, now: dt.datetime) -> OnlineRecord | None:
        current = group.online.get(rid)
        if current is not None and current.expires_at is not None and current.expires_at <= now.timestamp():
            del group.online[rid]
            return None
        return current

    def get(self, group: FeatureGroup, rid: str, names: list[str] | None, now: dt.datetime,
            expiration: bool) -> dict[str, Any] | None:
        """The ``Record`` (and ``ExpiresAt``) of a live online record, or None."""
        if not group.online_enabled:
            raise invalid(f"Feature group {group.name} has no online store")
        unknown = [n for n in names or [] if n not in group.types]
        if unknown:
            raise invalid(f"Unknown feature names {unknown} for feature group {group.name}")
        with self.store.lock:
            current = self._live(group, rid, now)
        if current is None or current.soft_deleted:
            return None
        wanted = names or [d["FeatureName"] for d in group.definitions]
        out: dict[str, Any] = {"Record": [{"FeatureName": n, "ValueAsString": current.values[n]}
                                          for n in wanted if n in current.values]}
        if expiration and current.expires_at is not None:
            out["ExpiresAt"] = _iso(current.expires_at)
        return out

    def delete(self, group: FeatureGroup, rid: str, event_time_value: str, target_stores: list[str] | None,
               mode: str, now: dt.datetime) -> None:
        """Soft/hard delete online (only if not older than the online record), delete marker offline."""
        if mode not in ("SoftDelete", "HardDelete"):
            raise invalid(f"Invalid DeletionMode '{mode}': must be SoftDelete or HardDelete")
        if not rid:
            raise invalid("RecordIdentifierValueAsString is required")
        event_time = parse_event_time(event_time_value, group.types[group.event_time_name])
        stores = _target_stores(group, target_stores)
        if "OnlineStore" in stores:
            with self.store.lock:
                current = self._live(group, rid, now)
                if current is not None and event_time >= current.event_time:
                    if mode == "HardDelete":
                        del group.online[rid]
                    else:
                        group.online[rid] = OnlineRecord({group.record_id_name: rid}, event_time,
                                                         current.expires_at, soft_deleted=True)
        if "OfflineStore" in stores:
            marker = {group.record_id_name: rid, group.event_time_name: event_time_value}
            self.offline.append([OfflineRow(group, marker, event_time, now, is_deleted=True)])

    # ---------------------------------------------------------------- wire operations
    def _put_record(self, request: WireRequest, name: str, now: dt.datetime) -> dict[str, Any]:
        body = request.json()
        group = self.store.find(request.account, request.region, name)
        self.put(group, body.get("Record") or [], body.get("TargetStores"), body.get("TtlDuration"), now)
        return {}

    def _get_record(self, request: WireRequest, name: str, now: dt.datetime) -> dict[str, Any]:
        group = self.store.find(request.account, request.region, name)
        rid = (request.query.get("RecordIdentifierValueAsString") or [""])[0]
        if not rid:
            raise invalid("RecordIdentifierValueAsString is required")
        expiration = (request.query.get("ExpirationTimeResponse") or ["Disabled"])[0] == "Enabled"
        return self.get(group, rid, request.query.get("FeatureName"), now, expiration) or {}

    def _delete_record(self, request: WireRequest, name: str, now: dt.datetime) -> dict[str, Any]:
        group = self.store.find(request.account, request.region, name)
        query = request.query
        event_time = (query.get("EventTime") or [""])[0]
        if not event_time:
            raise invalid("EventTime is required")
        self.delete(group, (query.get("RecordIdentifierValueAsString") or [""])[0], event_time,
                    query.get("TargetStores"), (query.get("DeletionMode") or ["SoftDelete"])[0], now)
        return {}

    def _list_records(self, request: WireRequest, name: str, now: dt.datetime) -> dict[str, Any]:
        body = request.json()
        group = self.store.find(request.account, request.region, name)
        if not group.online_enabled:
            raise invalid(f"Feature group {group.name} has no online store")
        include_deleted = bool(body.get("IncludeSoftDeletedRecords"))
        with self.store.lock:
            ids = sorted(rid for rid in list(group.online)
                         if (record := self._live(group, rid, now)) is not None
                         and (include_deleted or not record.soft_deleted))
        page_ids, token = page(ids, body, default_max=100, max_max=100, error=invalid)
        return {"RecordIdentifiers": page_ids, **({"NextToken": token} if token else {})}

    def _batch_get(self, request: WireRequest, now: dt.datetime) -> dict[str, Any]:
        body = request.json()
        identifiers = body.get("Identifiers") or []
        if not 1 <= len(identifiers) <= MAX_BATCH_GET_IDENTIFIERS:
            raise invalid(f"Identifiers must hold 1..{MAX_BATCH_GET_IDENTIFIERS} entries, got {len(identifiers)}")
        for ident in identifiers:
            count = len(ident.get("RecordIdentifiersValueAsString") or [])
            if not 1 <= count <= MAX_BATCH_GET_IDS:
                raise invalid(f"RecordIdentifiersValueAsString must hold 1..{MAX_BATCH_GET_IDS} values, "
                              f"got {count}")
        expiration = body.get("ExpirationTimeResponse") == "Enabled"
        records: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        unprocessed: list[dict[str, Any]] = []
        for ident in identifiers:
            name = ident.get("FeatureGroupName", "")
            skipped = []
            for rid in ident["RecordIdentifiersValueAsString"]:
                if self.faults.unprocessed():
                    skipped.append(rid)
                    continue
                try:
                    group = self.store.find(request.account, request.region, name)
                    found = self.get(group, rid, ident.get("FeatureNames"), now, expiration)
                except ServiceError as exc:
                    errors.append({"FeatureGroupName": name, "RecordIdentifierValueAsString": rid,
                                   "ErrorCode": exc.code, "ErrorMessage": exc.message})
                    continue
                if found is not None:
                    records.append({"FeatureGroupName": name, "RecordIdentifierValueAsString": rid, **found})
            if skipped:
                unprocessed.append({**ident, "RecordIdentifiersValueAsString": skipped})
        return {"Records": records, "Errors": errors, "UnprocessedIdentifiers": unprocessed}

    def _batch_write(self, request: WireRequest, now: dt.datetime) -> dict[str, Any]:
        body = request.json()
        entries = body.get("Entries") or []
        if not 1 <= len(entries) <= MAX_BATCH_WRITE:
            raise invalid(f"Entries must hold 1..{MAX_BATCH_WRITE} records, got {len(entries)}")
        default_ttl = body.get("TtlDuration")
        errors: list[dict[str, Any]] = []
        unprocessed: list[dict[str, Any]] = []
        for entry in entries:
            if self.faults.unprocessed():
                unprocessed.append(entry)
                continue
            try:
                group = self.store.find(request.account, request.region, entry.get("FeatureGroupName", ""))
                self.put(group, entry.get("Record") or [], entry.get("TargetStores"),
                         entry.get("TtlDuration") or default_ttl, now)
            except ServiceError as exc:
                errors.append({"Entry": entry, "ErrorCode": exc.code, "ErrorMessage": exc.message})
        return {"Errors": errors, "UnprocessedEntries": unprocessed}

    def handle(self, request: WireRequest) -> WireResponse:
        """Answer one runtime HTTP request (after the injected faults, if any)."""
        fault = self.faults.before_call()
        if fault is not None:
            return mi.error_response(fault.status, fault.code, fault.message)
        now = self.store.clock()
        try:
            return mi.json_response(200, self._dispatch(request, now), {"Content-Type": "application/json"})
        except ServiceError as exc:
            return mi.error_response(exc.status, exc.code, exc.message)

    def _dispatch(self, request: WireRequest, now: dt.datetime) -> dict[str, Any]:
        path, method = request.path, request.method.upper()
        if path == "/BatchGetRecord" and method == "POST":
            return self._batch_get(request, now)
        if path == "/BatchWriteRecord" and method == "POST":
            return self._batch_write(request, now)
        rest = path.removeprefix("/FeatureGroup/")
        if method == "POST" and rest.endswith("/ListRecords"):
            return self._list_records(request, rest.removesuffix("/ListRecords"), now)
        if method == "POST" and rest.endswith("/Record"):
            raise invalid("UpdateRecord (InMemory tier) is not supported by the embedded AWS")
        handlers = {"PUT": self._put_record, "GET": self._get_record, "DELETE": self._delete_record}
        if rest == path or method not in handlers:
            raise ServiceError(404, "UnknownOperationException", f"{method} {path}")
        return handlers[method](request, rest, now)

"""Online reads and deletes: ``GetRecord``, ``BatchGetRecord``, ``DeleteRecord``, across accounts.

Groups are always addressed by ARN, so a group in the central account reads the same from a consumer
session (given the resource permissions). Values come back typed from the group's feature definitions:
``Integral`` -> ``int``, ``Fractional`` -> ``float``, ``String`` -> ``str``.

``get_many`` packs up to 100 record ids per identifier and 100 identifiers per ``BatchGetRecord`` call, sends
the calls from a thread pool, and retries ``UnprocessedIdentifiers`` and throttled / 5xx calls with jittered
backoff until ``timeout``. Records that do not exist are simply absent from the result (Feature Store does not
report them as errors); per-record errors raise :class:`AWSError`.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
from botocore.exceptions import ClientError

from featureshare.errors import AWSError, ValidationError, WaitTimeoutError, error_code, from_client_error, http_status
from featureshare.ingest import backoff_delay, is_throttle, retryable, runtime_client
from featureshare.values import format_event_times, parse_value, parse_values, to_value_strings

if TYPE_CHECKING:
    from featureshare.groups import FeatureGroup, FeatureStore

__all__ = ["MAX_IDENTIFIERS", "MAX_IDS_PER_IDENTIFIER", "delete_record", "get_many", "get_record"]

logger = logging.getLogger(__name__)

MAX_IDS_PER_IDENTIFIER = 100
MAX_IDENTIFIERS = 100
_MODES = {"soft": "SoftDelete", "hard": "HardDelete"}


def _runtime(group_or_store: FeatureGroup | FeatureStore, max_in_flight: int = 10) -> Any:
    store = getattr(group_or_store, "store", group_or_store)
    return runtime_client(store.session, max_in_flight)


def _id_text(group: FeatureGroup, record_id: Any) -> str:
    converted = to_value_strings(pd.Series([record_id], dtype=object), group.features[group.record_id],
                                 column=group.record_id)
    if converted.values[0] is None:
        raise ValidationError(f"invalid record id {record_id!r} for {group.name}: "
                              f"{converted.errors[0] or 'missing'}", field="record_id", value=record_id)
    return str(converted.values[0])


def _call_with_retries(call: Any, *, what: str, resource: str, deadline: float, rng: random.Random) -> Any:
    """One runtime call, retried on throttling / 5xx / expired tokens with full-jitter backoff."""
    attempt = 0
    while True:
        try:
            return call()
        except ClientError as exc:
            code = error_code(exc)
            status = http_status(exc)
            delay = backoff_delay(rng, attempt)
            if not retryable(code, status) or time.monotonic() + delay > deadline:
                raise from_client_error(exc, action=what, resource=resource) from exc
            logger.debug("%s on %s: %s, retrying in %.2fs", what, resource, code, delay)
            time.sleep(delay)
            attempt += 1


def get_record(group: FeatureGroup, record_id: Any, *, features: Sequence[str] | None = None,
               timeout: float = 30) -> dict[str, Any] | None:
    """The online record of ``record_id`` as ``{feature: int | float | str}`` (missing features absent), or
    ``None`` when there is no record (or it was deleted)."""
    request: dict[str, Any] = {"FeatureGroupName": group.arn, "RecordIdentifierValueAsString": _id_text(group,
                                                                                                        record_id)}
    if features:
        _check_features(group, features)
        request["FeatureNames"] = list(features)
    client = _runtime(group)
    reply = _call_with_retries(lambda: client.get_record(**request), what="sagemaker:GetRecord",
                               resource=group.arn, deadline=time.monotonic() + timeout, rng=random.Random())
    record = reply.get("Record")
    if not record:
        return None
    types = group.features
    return {v["FeatureName"]: parse_value(v.get("ValueAsString"), types.get(v["FeatureName"], "String"))
            for v in record}


def _check_features(group: FeatureGroup, features: Sequence[str]) -> None:
    unknown = [f for f in features if f not in group.features]
    if unknown:
        raise ValidationError(f"{group.name} has no feature(s) {unknown}", field="features", value=unknown,
                              hint=f"features of {group.name}: {list(group.features)}")


def delete_record(group: FeatureGroup, record_id: Any, event_time: Any, *, mode: str = "soft",
                  target_stores: Sequence[str] | None = None, timezone: Any = None, timeout: float = 30) -> None:
    """Delete a record as of ``event_time`` (a datetime, an ISO string or epoch seconds, per the group's event
    time type; naive values need ``timezone=``).

    ``mode="soft"`` hides the record online and appends an ``is_deleted`` row to the offline store;
    ``mode="hard"`` removes it from the online store completely.
    """
    if mode not in _MODES:
        raise ValidationError(f"mode={mode!r} is not 'soft' or 'hard'", field="mode", value=mode)
    series = pd.Series([event_time])
    converted = format_event_times(series, kind=group.event_time_type, timezone=timezone, column=group.event_time)
    if converted.values[0] is None:
        raise ValidationError(f"invalid event time {event_time!r}: {converted.errors[0] or 'missing'}",
                              field="event_time", value=event_time)
    request: dict[str, Any] = {"FeatureGroupName": group.arn,
                               "RecordIdentifierValueAsString": _id_text(group, record_id),
                               "EventTime": str(converted.values[0]), "DeletionMode": _MODES[mode]}
    if target_stores:
        request["TargetStores"] = list(target_stores)
    client = _runtime(group)
    _call_with_retries(lambda: client.delete_record(**request), what="sagemaker:DeleteRecord",
                       resource=group.arn, deadline=time.monotonic() + timeout, rng=random.Random())
    logger.info("%s-deleted record %s of %s", mode, request["RecordIdentifierValueAsString"], group.name)


# ---------------------------------------------------------------------------------------------- get_many

def batch_requests(identifiers: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split identifiers into ``BatchGetRecord`` calls: ≤100 ids per identifier, ≤100 identifiers per call."""
    split: list[dict[str, Any]] = []
    for ident in identifiers:
        ids = ident["RecordIdentifiersValueAsString"]
        for start in range(0, len(ids), MAX_IDS_PER_IDENTIFIER):
            split.append({**ident, "RecordIdentifiersValueAsString": ids[start:start + MAX_IDS_PER_IDENTIFIER]})
    return [split[i:i + MAX_IDENTIFIERS] for i in range(0, len(split), MAX_IDENTIFIERS)]


def _batch_get(client: Any, identifiers: list[dict[str, Any]], deadline: float, seed: int) -> list[dict]:
    """One packed call, resent with its ``UnprocessedIdentifiers`` until done or ``deadline``."""
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    pending = identifiers
    attempt = 0
    while pending:
        reply = _call_with_retries(lambda p=pending: client.batch_get_record(Identifiers=p),
                                   what="sagemaker:BatchGetRecord", resource=pending[0]["FeatureGroupName"],
                                   deadline=deadline, rng=rng)
        records += reply.get("Records", [])
        errors = reply.get("Errors", [])
        hard = [e for e in errors if not retryable(e.get("ErrorCode", ""))]
        if hard:
            first = hard[0]
            raise AWSError(f"BatchGetRecord failed for {len(hard)} record(s), e.g. "
                           f"{first.get('RecordIdentifierValueAsString')} of {first.get('FeatureGroupName')}: "
                           f"{first.get('ErrorCode')}: {first.get('ErrorMessage')}", code=first.get("ErrorCode", ""))
        pending = list(reply.get("UnprocessedIdentifiers", [])) + _retry_identifiers(errors)
        if pending:
            if any(is_throttle(e.get("ErrorCode", "")) for e in errors):
                logger.debug("BatchGetRecord throttled for %d record(s)", len(errors))
            delay = backoff_delay(rng, attempt)
            if time.monotonic() + delay > deadline:
                raise WaitTimeoutError(f"BatchGetRecord still had unprocessed identifiers at the deadline "
                                       f"({sum(len(p['RecordIdentifiersValueAsString']) for p in pending)} ids)")
            time.sleep(delay)
            attempt += 1
    return records


def _retry_identifiers(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by_group: dict[str, list[str]] = {}
    for e in errors:
        by_group.setdefault(e["FeatureGroupName"], []).append(e["RecordIdentifierValueAsString"])
    return [{"FeatureGroupName": g, "RecordIdentifiersValueAsString": ids} for g, ids in by_group.items()]


def get_many(
    store: FeatureStore,
    requests: Mapping[FeatureGroup | str, Sequence[Any]],
    *,
    features: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    max_in_flight: int = 8,
    timeout: float = 60,
) -> dict[str, pd.DataFrame]:
    """Online records of several groups: ``{group name: DataFrame}``.

    ``requests`` maps a :class:`FeatureGroup`, a group name or a group ARN to record ids. ``features`` is one
    list for every group or ``{group name: list}``. Each DataFrame has the record id column first, then the
    requested (default: all) features, typed ``Int64`` / ``Float64`` / ``str``; rows follow the order of the
    requested ids (duplicates once); ids without a record are absent.

    >>> frames = store.get_many({"customers": ["c-1", "c-2"]}, features=["spend"])  # doctest: +SKIP
    """
    groups = {key: store.group(key) if isinstance(key, str) else key for key in requests}
    plan: list[dict[str, Any]] = []
    columns: dict[str, list[str]] = {}
    order: dict[str, list[str]] = {}
    for key, ids in requests.items():
        group = groups[key]
        wanted = features.get(group.name) if isinstance(features, Mapping) else features
        if wanted:
            _check_features(group, wanted)
        columns[group.arn] = [group.record_id, *[f for f in (wanted or group.features) if f != group.record_id]]
        texts = list(dict.fromkeys(_id_text(group, i) for i in ids))
        order[group.arn] = texts
        if texts:
            ident: dict[str, Any] = {"FeatureGroupName": group.arn, "RecordIdentifiersValueAsString": texts}
            if wanted:
                ident["FeatureNames"] = list(dict.fromkeys([group.record_id, *wanted]))
            plan.append(ident)
    client = _runtime(store, max_in_flight)
    deadline = time.monotonic() + timeout
    records: list[dict[str, Any]] = []
    with cf.ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="get-many") as pool:
        futures = [pool.submit(_batch_get, client, call, deadline, i) for i, call in enumerate(batch_requests(plan))]
        for future in futures:
            records += future.result()
    by_arn = {g.arn: g for g in groups.values()}
    return {g.name: _frame(g, columns[g.arn], order[g.arn],
                           [r for r in records if _same_group(r["FeatureGroupName"], g)])
            for g in by_arn.values()}


def _same_group(name_or_arn: str, group: FeatureGroup) -> bool:
    return name_or_arn in (group.arn, group.name)


def _frame(group: FeatureGroup, columns: list[str], order: list[str], records: list[dict]) -> pd.DataFrame:
    rows: dict[str, dict[str, str]] = {}
    for r in records:
        rows[r["RecordIdentifierValueAsString"]] = {v["FeatureName"]: v.get("ValueAsString") for v in r["Record"]}
    present = [i for i in order if i in rows]
    types = group.features
    return pd.DataFrame({c: parse_values([rows[i].get(c) for i in present], types.get(c, "String")) for c in columns},
                        index=pd.RangeIndex(len(present)))

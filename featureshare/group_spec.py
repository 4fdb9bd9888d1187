"""Feature group specs: what a group should look like, schema inference, and validation.

A :class:`GroupSpec` describes a feature group; :meth:`GroupSpec.problems` checks it completely (every
problem at once, each with its field and value) without any AWS call, and :meth:`GroupSpec.create_request`
builds the ``CreateFeatureGroup`` request. :class:`~featureshare.groups.FeatureStore` creates or verifies
groups from specs.

Example::

    spec = GroupSpec.from_dataframe("customers", df, record_id="customer_id", event_time="ts")
    spec.create_request(offline_s3_uri="s3://central-offline/fs", role_arn=offline_role, tags={"team": "search"})
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from featureshare.problems import Problem, raise_problems
from featureshare.values import FeatureType, infer_feature_type

__all__ = [
    "MAX_FEATURES",
    "MAX_TAGS",
    "NAME_RE",
    "RESERVED_NAMES",
    "Feature",
    "FeatureType",
    "GroupSpec",
    "Throughput",
    "offline_table_format",
    "ttl_duration",
]

NAME_RE = re.compile(r"[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}")
#: Feature Store reserves the first three; the others are the offline store's hourly partition columns.
RESERVED_NAMES = frozenset({"is_deleted", "write_time", "api_invocation_time", "year", "month", "day", "hour"})
MAX_FEATURES = 2500
MAX_TAGS = 50
_TAG_KEY_RE = re.compile(r"[\w.:/=+\-@ ]{1,128}")
_TAG_VALUE_RE = re.compile(r"[\w.:/=+\-@ ]{0,256}")
_KMS_RE = re.compile(r"[a-zA-Z0-9:/_-]{0,2048}")
_TTL_UNITS = (("Weeks", 604800), ("Days", 86400), ("Hours", 3600), ("Minutes", 60), ("Seconds", 1))


@dataclass(frozen=True)
class Feature:
    """One feature definition; ``type`` accepts a :class:`FeatureType` or its string value."""

    name: str
    type: FeatureType

    def __post_init__(self) -> None:
        if not isinstance(self.type, FeatureType) and self.type in FeatureType._value2member_map_:
            object.__setattr__(self, "type", FeatureType(self.type))


@dataclass(frozen=True)
class Throughput:
    """``ThroughputConfig``: ``OnDemand`` or ``Provisioned`` with read/write capacity units."""

    mode: str = "OnDemand"
    read_units: int | None = None
    write_units: int | None = None


@dataclass(frozen=True)
class GroupSpec:
    """What a feature group should look like. ``features`` includes the record id and event time features.

    ``ttl`` (online store only) is a ``timedelta`` expressed in the largest whole unit; ``online_storage`` is
    ``"Standard"`` or ``"InMemory"`` (no offline store); ``table_format`` ``"Glue"`` or ``"Iceberg"``.
    """

    name: str
    record_id: str
    event_time: str
    features: Sequence[Feature]
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    online: bool = True
    offline: bool = True
    table_format: str = "Glue"
    ttl: dt.timedelta | None = None
    throughput: Throughput | None = None
    online_kms_key: str | None = None
    offline_kms_key: str | None = None
    online_storage: str | None = None

    def __post_init__(self) -> None:
        # Copies, so a caller's list or dict changed later cannot change the spec (and vice versa).
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "tags", dict(self.tags))

    @property
    def feature_types(self) -> dict[str, FeatureType]:
        """Feature name -> type; with duplicate names the first definition counts (the later is reported)."""
        types: dict[str, FeatureType] = {}
        for f in self.features:
            if isinstance(f, Feature):
                types.setdefault(f.name, f.type)
        return types

    @property
    def event_time_type(self) -> FeatureType | None:
        return self.feature_types.get(self.event_time)

    def problems(self) -> list[Problem]:
        """Every problem with this spec (empty when valid). Pure: no AWS call."""
        return [*_name_problems(self), *_feature_problems(self), *_store_problems(self), *_tag_problems(self)]

    def validate(self) -> GroupSpec:
        """Return the spec, or raise :class:`ValidationError` listing every problem."""
        raise_problems(f"invalid feature group spec {self.name!r}", self.problems())
        return self

    @classmethod
    def from_dataframe(
        cls,
        name: str,
        df: pd.DataFrame,
        *,
        record_id: str,
        event_time: str,
        types: Mapping[str, FeatureType | str] | None = None,
        exclude: Iterable[str] = (),
        **options: Any,
    ) -> GroupSpec:
        """Infer a spec from a DataFrame's dtypes (pandas 3: ``str``, nullable ``Int64``/``Float64``/``boolean``,
        tz-aware datetimes, ``category``...). ``types`` overrides or fills in what cannot be inferred;
        ``options`` are the other :class:`GroupSpec` fields. Raises :class:`ValidationError` explaining every
        column it cannot infer, together with every spec problem.

        Inference: integers and booleans (as 0/1) -> Integral; floats -> Fractional; strings, categories of
        strings and datetimes (ISO-8601 UTC) -> String. The event time column becomes String when it holds
        datetimes or strings, Fractional when it holds numbers (Unix epoch seconds).

        >>> df = pd.DataFrame({"id": ["a"], "ts": pd.to_datetime(["2024-01-01"], utc=True), "x": [1.5]})
        >>> [(f.name, f.type.value) for f in GroupSpec.from_dataframe("g", df, record_id="id",
        ...                                                          event_time="ts").features]
        [('id', 'String'), ('ts', 'String'), ('x', 'Fractional')]
        """
        overrides = {k: (FeatureType(v) if v in FeatureType._value2member_map_ else v)
                     for k, v in (types or {}).items()}
        skipped = set(exclude)
        problems: list[Problem] = []
        for column in (record_id, event_time):
            if column not in df.columns:
                problems.append(Problem(column, None, f"column {column!r} is not in the DataFrame "
                                                      f"(columns: {list(df.columns)[:20]})"))
        for column in overrides:
            if column not in df.columns:
                problems.append(Problem(f"types[{column!r}]", overrides[column], "no such column"))
        features = []
        for column in df.columns:
            if column in skipped:
                continue
            if column in overrides:
                features.append(Feature(str(column), overrides[column]))
                continue
            inferred, why = infer_feature_type(df[column], is_event_time=column == event_time)
            if inferred is None:
                problems.append(Problem(str(column), str(df[column].dtype), why))
            else:
                features.append(Feature(str(column), FeatureType(inferred)))
        spec = cls(name=name, record_id=record_id, event_time=event_time, features=features, **options)
        raise_problems(f"cannot build a spec for {name!r} from the DataFrame", [*problems, *spec.problems()],
                       hint="pass types={column: 'Integral'|'Fractional'|'String'} or exclude=[column]")
        return spec

    def create_request(self, *, offline_s3_uri: str | None, role_arn: str | None,
                       tags: Mapping[str, str]) -> dict[str, Any]:
        """The ``CreateFeatureGroup`` request for this spec (pure)."""
        request: dict[str, Any] = {
            "FeatureGroupName": self.name,
            "RecordIdentifierFeatureName": self.record_id,
            "EventTimeFeatureName": self.event_time,
            "FeatureDefinitions": [{"FeatureName": f.name, "FeatureType": str(f.type)} for f in self.features],
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }
        if self.description:
            request["Description"] = self.description
        if self.online:
            online: dict[str, Any] = {"EnableOnlineStore": True}
            if self.online_kms_key:
                online["SecurityConfig"] = {"KmsKeyId": self.online_kms_key}
            if self.ttl is not None:
                online["TtlDuration"] = ttl_duration(self.ttl)
            if self.online_storage:
                online["StorageType"] = self.online_storage
            request["OnlineStoreConfig"] = online
        if self.offline:
            s3: dict[str, Any] = {"S3Uri": offline_s3_uri}
            if self.offline_kms_key:
                s3["KmsKeyId"] = self.offline_kms_key
            request["OfflineStoreConfig"] = {"S3StorageConfig": s3, "TableFormat": self.table_format}
            request["RoleArn"] = role_arn
        if self.throughput is not None:
            throughput: dict[str, Any] = {"ThroughputMode": self.throughput.mode}
            if self.throughput.read_units is not None:
                throughput["ProvisionedReadCapacityUnits"] = self.throughput.read_units
            if self.throughput.write_units is not None:
                throughput["ProvisionedWriteCapacityUnits"] = self.throughput.write_units
            request["ThroughputConfig"] = throughput
        return request

    def differences(self, description: Mapping[str, Any]) -> list[str]:
        """How an existing group (a ``DescribeFeatureGroup`` reply) differs from this spec; empty if same."""
        diffs: list[str] = []
        existing = {d["FeatureName"]: d["FeatureType"] for d in description.get("FeatureDefinitions", [])}
        for label, mine, theirs in (
            ("record id", self.record_id, description.get("RecordIdentifierFeatureName")),
            ("event time", self.event_time, description.get("EventTimeFeatureName")),
        ):
            if mine != theirs:
                diffs.append(f"{label}: group has {theirs!r}, spec has {mine!r}")
        for name, ftype in self.feature_types.items():
            if name not in existing:
                diffs.append(f"feature {name!r} ({ftype}) is in the spec but not in the group")
            elif existing[name] != ftype:
                diffs.append(f"feature {name!r}: group type {existing[name]}, spec type {ftype}")
        diffs += [f"feature {name!r} ({t}) is in the group but not in the spec"
                  for name, t in existing.items() if name not in self.feature_types]
        online = bool(description.get("OnlineStoreConfig", {}).get("EnableOnlineStore", False))
        offline = "OfflineStoreConfig" in description
        if online != self.online:
            diffs.append(f"online store: group {'enabled' if online else 'disabled'}, spec {self.online}")
        if offline != self.offline:
            diffs.append(f"offline store: group {'enabled' if offline else 'disabled'}, spec {self.offline}")
        elif offline and offline_table_format(description) != self.table_format:
            diffs.append(f"table format: group {offline_table_format(description)}, spec {self.table_format}")
        return diffs

    def additions(self, description: Mapping[str, Any]) -> list[Feature]:
        """Features of the spec the group lacks (what ``add_features=True`` would add)."""
        existing = {d["FeatureName"] for d in description.get("FeatureDefinitions", [])}
        return [f for f in self.features if f.name not in existing]


# -------------------------------------------------------------------------------------------- validation

def _name_ok(name: Any) -> bool:
    return isinstance(name, str) and NAME_RE.fullmatch(name) is not None


def _name_problems(spec: GroupSpec) -> list[Problem]:
    problems = []
    if not _name_ok(spec.name):
        problems.append(Problem("name", spec.name, "group names are 1-64 characters: letters, digits, '-' "
                                                   "and '_', starting and ending with a letter or digit"))
    if not isinstance(spec.description, str) or len(spec.description) > 128:
        problems.append(Problem("description", spec.description, "at most 128 characters"))
    return problems


def _feature_problems(spec: GroupSpec) -> list[Problem]:
    problems: list[Problem] = []
    if not spec.features:
        problems.append(Problem("features", [], "a group needs at least the record id and event time"))
    if len(spec.features) > MAX_FEATURES:
        problems.append(Problem("features", len(spec.features), f"at most {MAX_FEATURES} features"))
    seen: dict[str, str] = {}
    for i, feature in enumerate(spec.features):
        where = f"features[{i}]"
        if not isinstance(feature, Feature):
            problems.append(Problem(where, feature, "must be a Feature(name, type)"))
            continue
        if not _name_ok(feature.name):
            problems.append(Problem(f"{where}.name", feature.name, "feature names are 1-64 characters: letters, "
                                    "digits, '-' and '_', starting and ending with a letter or digit"))
        elif feature.name.lower() in RESERVED_NAMES:
            problems.append(Problem(f"{where}.name", feature.name, "is reserved by Feature Store or its offline "
                                    f"partitions ({', '.join(sorted(RESERVED_NAMES))})"))
        if not isinstance(feature.type, FeatureType):
            problems.append(Problem(f"{where}.type", feature.type, "must be Integral, Fractional or String"))
        key = str(feature.name).lower()  # the Glue table lower-cases columns: 'Spend' and 'spend' collide
        if key in seen:
            problems.append(Problem(f"{where}.name", feature.name, f"duplicates feature {seen[key]!r} "
                                    "(names are compared case-insensitively, as the offline table does)"))
        seen.setdefault(key, feature.name)
    types = spec.feature_types
    for label, name, allowed in (("record_id", spec.record_id, (FeatureType.INTEGRAL, FeatureType.STRING)),
                                 ("event_time", spec.event_time, (FeatureType.STRING, FeatureType.FRACTIONAL))):
        if name not in types:
            problems.append(Problem(label, name, "must name one of the features"))
        elif types[name] not in allowed:
            problems.append(Problem(label, name, f"has type {types[name]}; allowed: "
                                                 f"{' or '.join(str(a) for a in allowed)}"))
    if spec.record_id == spec.event_time and spec.record_id in types:
        problems.append(Problem("event_time", spec.event_time, "must differ from the record id feature"))
    return problems


def _store_problems(spec: GroupSpec) -> list[Problem]:
    problems = []
    if not spec.online and not spec.offline:
        problems.append(Problem("online", spec.online, "enable the online store, the offline store or both"))
    if spec.table_format not in ("Glue", "Iceberg"):
        problems.append(Problem("table_format", spec.table_format, "must be 'Glue' or 'Iceberg'"))
    elif spec.table_format == "Iceberg" and spec.event_time_type == FeatureType.FRACTIONAL:
        problems.append(Problem("event_time", spec.event_time, "Iceberg tables need a String event time"))
    if spec.ttl is not None:
        if not spec.online:
            problems.append(Problem("ttl", spec.ttl, "a TTL needs the online store (online=True)"))
        problems += ttl_problems(spec.ttl)
    if spec.online_storage not in (None, "Standard", "InMemory"):
        problems.append(Problem("online_storage", spec.online_storage, "must be 'Standard' or 'InMemory'"))
    elif spec.online_storage == "InMemory" and spec.offline:
        problems.append(Problem("online_storage", spec.online_storage, "the InMemory tier has no offline store; "
                                                                       "set offline=False"))
    for label, key in (("online_kms_key", spec.online_kms_key), ("offline_kms_key", spec.offline_kms_key)):
        if key is not None and not _KMS_RE.fullmatch(key):
            problems.append(Problem(label, key, "is not a KMS key id, alias or ARN"))
    if spec.offline_kms_key and not spec.offline:
        problems.append(Problem("offline_kms_key", spec.offline_kms_key, "given but offline=False"))
    if spec.online_kms_key and not spec.online:
        problems.append(Problem("online_kms_key", spec.online_kms_key, "given but online=False"))
    tp = spec.throughput
    if tp is not None:
        if tp.mode not in ("OnDemand", "Provisioned"):
            problems.append(Problem("throughput.mode", tp.mode, "must be 'OnDemand' or 'Provisioned'"))
        elif tp.mode == "Provisioned" and (tp.read_units is None or tp.write_units is None):
            problems.append(Problem("throughput", tp, "Provisioned needs read_units and write_units"))
    return problems


def _tag_problems(spec: GroupSpec) -> list[Problem]:
    problems = []
    if len(spec.tags) > MAX_TAGS:
        problems.append(Problem("tags", len(spec.tags), f"at most {MAX_TAGS} tags"))
    for key, value in spec.tags.items():
        if not isinstance(key, str) or not _TAG_KEY_RE.fullmatch(key) or key.lower().startswith("aws:"):
            problems.append(Problem(f"tags[{key!r}]", key, "tag keys are 1-128 letters, digits, spaces or "
                                                           "_.:/=+-@ and may not start with 'aws:'"))
        if not isinstance(value, str) or not _TAG_VALUE_RE.fullmatch(value):
            problems.append(Problem(f"tags[{key!r}]", value, "tag values are 0-256 letters, digits, spaces or "
                                                             "_.:/=+-@"))
    return problems


def ttl_problems(ttl: Any, field: str = "ttl") -> list[Problem]:
    """Why ``ttl`` is not a Feature Store TTL (a timedelta of whole seconds, at least one), if it is not."""
    if isinstance(ttl, dt.timedelta) and ttl.total_seconds() >= 1 and not ttl.microseconds:
        return []
    return [Problem(field, ttl, "must be a timedelta of whole seconds, at least 1 second")]


def ttl_duration(ttl: dt.timedelta) -> dict[str, Any]:
    """A ``TtlDuration`` in the largest unit that expresses ``ttl`` exactly."""
    seconds = int(ttl.total_seconds())
    for unit, size in _TTL_UNITS:
        if seconds % size == 0:
            return {"Unit": unit, "Value": seconds // size}
    raise AssertionError("unreachable: Seconds divides every whole number of seconds")


def offline_table_format(description: Mapping[str, Any]) -> str:
    """The offline table format (``"Glue"`` or ``"Iceberg"``) of a ``DescribeFeatureGroup`` reply."""
    fmt = description.get("OfflineStoreConfig", {}).get("TableFormat", "Glue")
    return "Glue" if fmt in ("Default", "", None) else str(fmt)

"""The dataset spec file (``SPEC.toml`` or ``.json``): a training set described as data.

One file says which entity rows to build a training set for, which feature groups to join point-in-time, and
where to write the result. ``featureshare build-dataset``, ``featureshare sql``, ``featureshare jobs submit``
and the processing entrypoint ``python -m featureshare.jobs.build_dataset`` all read it. Everything is
validated up front, before any AWS call, and every problem is reported at once with its field name.

Example (``examples/dataset.example.toml``)::

    name = "churn-v1"
    entities = "labels.parquet"        # a csv/parquet file (relative to this file), an s3:// object, or a table
    key = "customer_id"
    event_time = "label_time"
    timezone = "UTC"                   # only needed for naive label times
    as_of = "2024-06-01T00:00:00Z"     # optional: only what was written by then
    output = "s3://featureshare-training-222222222222/training-sets/churn-v1/"   # default: topology's
    format = "parquet"
    strategy = "catalog"               # or "central-role"

    [[groups]]
    name = "sessions"                  # or arn = "arn:aws:sagemaker:...:feature-group/sessions"
    account = "central"                # central (via the assumed role) or local (your own account)
    features = ["visits", "spend"]     # default: every feature
    ttl = "30d"
    prefix = "sessions"
    how = "left"

>>> spec = DatasetSpec.from_dict({"entities": "db.labels", "key": "id", "event_time": "t",
...                               "groups": [{"name": "users"}]})
>>> spec.entities.kind, spec.groups[0].account
('table', 'central')
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from featureshare.errors import ConfigError, ValidationError, translate_client_error
from featureshare.group_spec import NAME_RE
from featureshare.s3uri import split_s3_uri
from featureshare.training.sql import parse_ttl, to_epoch_seconds

__all__ = ["ACCOUNTS", "FORMATS", "STRATEGIES", "DatasetSpec", "EntitiesRef", "GroupRef", "build_dataset",
           "load_entities", "load_spec", "read_data_file", "render_sql", "resolve_groups", "training_set"]

ACCOUNTS = ("central", "local")
STRATEGIES = ("catalog", "central-role")
FORMATS = ("parquet", "orc", "avro", "json", "textfile")
HOWS = ("left", "inner")
FILE_SUFFIXES = (".csv", ".parquet", ".pq")
# Told apart from "database.table": these are files featureshare cannot read as entities.
_OTHER_FILE_SUFFIXES = {".txt", ".json", ".jsonl", ".tsv", ".xlsx", ".xls", ".gz", ".zip", ".orc", ".avro"}

_TOP_KEYS = {"name", "entities", "key", "event_time", "timezone", "as_of", "output", "format", "register_as",
             "strategy", "timeout", "groups"}
_GROUP_KEYS = {"name", "arn", "account", "features", "on", "ttl", "prefix", "how"}
_ENTITY_KEYS = {"path", "uri", "table"}
_GROUP_ARN_RE = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:feature-group/[a-zA-Z0-9_-]{1,64}$")
_COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TABLE_RE = re.compile(r"^[A-Za-z0-9_@-]+(\.[A-Za-z0-9_]+){1,2}$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")

EntitiesKind = Literal["file", "s3", "table"]


@dataclass(frozen=True)
class EntitiesRef:
    """Where the entity rows come from: a local ``file`` (csv/parquet), an ``s3`` object, or an Athena ``table``
    (``db.table`` or ``catalog.db.table``)."""

    kind: EntitiesKind
    value: str

    @property
    def file_format(self) -> str | None:
        """``csv`` or ``parquet`` for files and S3 objects, ``None`` for tables."""
        if self.kind == "table":
            return None
        return "csv" if self.value.lower().endswith(".csv") else "parquet"


@dataclass(frozen=True)
class GroupRef:
    """One feature group to join: by ``name`` in its account, or by ``arn``; ``on`` defaults to the spec's key."""

    name: str | None
    arn: str | None
    account: str
    on: str
    features: tuple[str, ...] | None = None
    ttl: str | float | None = None
    prefix: str | None = None
    how: str = "left"

    @property
    def ref(self) -> str:
        """What to describe: the ARN if given, else the name."""
        return self.arn or self.name or ""


@dataclass(frozen=True)
class DatasetSpec:
    """A validated dataset spec; build one with :meth:`from_dict` or :func:`load_spec`."""

    entities: EntitiesRef
    key: str
    event_time: str
    groups: tuple[GroupRef, ...]
    name: str = "dataset"
    timezone: str | None = None
    as_of: dt.datetime | None = None
    output: str | None = None
    format: str = "parquet"
    register_as: str | None = None
    strategy: str = "catalog"
    timeout: float = 900.0
    source: str | None = field(default=None, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None,
                  source: str | None = None) -> DatasetSpec:
        """Validate ``data``; raise one :class:`ValidationError` listing every problem (with field names).

        Relative entity file paths are resolved against ``base_dir`` (the spec file's folder).
        """
        return _Parser(data, Path(base_dir) if base_dir else None, source).parse()

    @property
    def needs_central(self) -> bool:
        """Whether building it needs a central session: a central group, or ``strategy = "central-role"``."""
        return self.strategy == "central-role" or any(g.account == "central" for g in self.groups)

    def output_uri(self, default_root: str | None = None) -> str:
        """``output``, else ``<default_root>/<name>/`` (the consumer's training prefix from the topology)."""
        if self.output:
            return self.output if self.output.endswith("/") else self.output + "/"
        if not default_root:
            raise ValidationError("the spec has no output and no default location is known", field="output",
                                  hint="set output = \"s3://<training bucket>/<prefix>/\" in the spec, or "
                                       "configure the consumer's training_bucket in the topology")
        return f"{default_root.rstrip('/')}/{self.name}/"

    def to_toml(self) -> str:
        """The spec as TOML text that :func:`load_spec` reads back to an equal spec."""
        data = self.to_dict()
        groups = data.pop("groups")
        lines = [f"{key} = {_toml_value(value)}" for key, value in data.items()]
        for group in groups:
            lines += ["", "[[groups]]", *(f"{key} = {_toml_value(value)}" for key, value in group.items())]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` reads back to an equal spec."""
        data: dict[str, Any] = {"name": self.name, "key": self.key, "event_time": self.event_time,
                                "format": self.format, "strategy": self.strategy, "timeout": self.timeout}
        data["entities"] = {{"file": "path", "s3": "uri", "table": "table"}[self.entities.kind]: self.entities.value}
        for key in ("timezone", "output", "register_as"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.as_of is not None:
            data["as_of"] = self.as_of.isoformat()
        data["groups"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(g).items() if v is not None}
                          for g in self.groups]
        return data


def _toml_value(value: Any) -> str:
    # JSON strings, numbers and arrays of strings are valid TOML; only tables need TOML's own syntax.
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def load_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a spec file (``.toml`` or ``.json``)."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"dataset spec {str(file)!r} not found",
                          hint="see examples/dataset.example.toml for the format")
    text = file.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"{file}: not valid {'JSON' if file.suffix.lower() == '.json' else 'TOML'}: {exc}",
                              field="spec", value=str(file)) from exc
    if not isinstance(data, Mapping):
        raise ValidationError(f"{file}: the spec must be a table/object", field="spec", value=str(file))
    return DatasetSpec.from_dict(data, base_dir=file.resolve().parent, source=str(file))


class _Parser:
    """Collects every problem instead of stopping at the first."""

    def __init__(self, data: Mapping[str, Any], base_dir: Path | None, source: str | None) -> None:
        self.data = data
        self.base_dir = base_dir
        self.source = source
        self.problems: list[str] = []

    def problem(self, where: str, value: Any, message: str) -> None:
        self.problems.append(f"{where}={value!r}: {message}")

    def text(self, table: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str] | None = None,
             expected: str = "", *, required: bool = False, choices: Sequence[str] = ()) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                self.problem(where, None, f"missing ({expected or 'required'})")
            return None
        if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
            self.problem(where, value, f"must be {expected}")
            return None
        if choices and value not in choices:
            self.problem(where, value, f"must be one of {', '.join(choices)}")
            return None
        return value

    def parse(self) -> DatasetSpec:
        data = self.data
        for key in sorted(set(data) - _TOP_KEYS):
            self.problem(key, data[key], f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})")
        entities = self.entities(data.get("entities"))
        key = self.text(data, "key", "key", _COLUMN_RE, "a column name", required=True)
        event_time = self.text(data, "event_time", "event_time", _COLUMN_RE, "a column name", required=True)
        timezone = self.timezone(data.get("timezone"))
        spec_kwargs: dict[str, Any] = {
            "name": self.text(data, "name", "name", NAME_RE, "a name of letters, digits, '-' and '_'") or "dataset",
            "timezone": timezone,
            "as_of": self.as_of(data.get("as_of"), timezone),
            "output": self.s3_uri(self.text(data, "output", "output", expected="an s3://bucket/prefix/ URI"),
                                  "output", require_key=False),
            "format": self.text(data, "format", "format", choices=FORMATS, expected="a string") or "parquet",
            "register_as": self.text(data, "register_as", "register_as", re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$"),
                                     "'database.table' (lower case)"),
            "strategy": self.text(data, "strategy", "strategy", choices=STRATEGIES, expected="a string")
            or "catalog",
            "timeout": self.timeout(data.get("timeout", 900.0)),
        }
        groups = self.groups(data.get("groups"), key)
        if self.problems:
            where = f"{self.source}: " if self.source else ""
            count = len(self.problems)
            raise ValidationError(f"{where}invalid dataset spec ({count} problem{'s' if count > 1 else ''}): "
                                  + "; ".join(self.problems), field=self.problems[0].split("=", 1)[0],
                                  problems=self.problems, hint="see examples/dataset.example.toml")
        assert entities is not None and key is not None and event_time is not None  # no problems => all set
        return DatasetSpec(entities=entities, key=key, event_time=event_time, groups=tuple(groups),
                           source=self.source, **spec_kwargs)

    def entities(self, value: Any) -> EntitiesRef | None:
        if value is None:
            self.problem("entities", None, "missing (a csv/parquet file, an s3:// object or a 'db.table')")
            return None
        if isinstance(value, Mapping):
            given = [k for k in _ENTITY_KEYS if k in value]
            extra = sorted(set(value) - _ENTITY_KEYS)
            if len(given) != 1 or extra or not isinstance(value[given[0]], str):
                self.problem("entities", dict(value), "needs exactly one of path=, uri=, table= (a string)")
                return None
            kind = {"path": "file", "uri": "s3", "table": "table"}[given[0]]
            return self.entity_ref(kind, value[given[0]])
        if not isinstance(value, str) or not value:
            self.problem("entities", value, "must be a file path, an s3:// URI or 'db.table'")
            return None
        if value.startswith("s3://"):
            return self.entity_ref("s3", value)
        if value.lower().endswith(FILE_SUFFIXES):
            return self.entity_ref("file", value)
        if "/" in value or Path(value).suffix.lower() in _OTHER_FILE_SUFFIXES:
            self.problem("entities", value, "unsupported file type: use a .csv or .parquet file")
            return None
        if _TABLE_RE.fullmatch(value):
            return self.entity_ref("table", value)
        self.problem("entities", value, "is neither a .csv/.parquet file, an s3:// URI nor 'db.table'")
        return None

    def entity_ref(self, kind: str, value: str) -> EntitiesRef | None:
        if kind == "table":
            if not _TABLE_RE.fullmatch(value):
                self.problem("entities.table", value, "must be 'database.table' or 'catalog.database.table'")
                return None
            return EntitiesRef("table", value)
        if not value.lower().endswith(FILE_SUFFIXES):
            self.problem(f"entities.{'uri' if kind == 's3' else 'path'}", value, "must end in .csv or .parquet")
            return None
        if kind == "s3":
            return EntitiesRef("s3", value) if self.s3_uri(value, "entities.uri", require_key=True) else None
        path = Path(value).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return EntitiesRef("file", str(path))

    def s3_uri(self, value: str | None, where: str, *, require_key: bool) -> str | None:
        """``value`` if it is ``None`` or an S3 URI by :func:`split_s3_uri`'s rule, else ``None`` and a problem."""
        if value is None:
            return None
        try:
            split_s3_uri(value, field=where, require_key=require_key)
        except ValidationError as exc:
            self.problems.append(exc.args[0])
            return None
        return value

    def timezone(self, value: Any) -> str | None:
        if value is None:
            return None
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            if not isinstance(value, str):
                raise ValueError
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            self.problem("timezone", value, "must be an IANA time zone such as 'UTC' or 'Europe/Berlin'")
            return None
        return value

    def as_of(self, value: Any, timezone: str | None) -> dt.datetime | None:
        if value is None:
            return None
        try:
            seconds = to_epoch_seconds(value, timezone=timezone, field_name="as_of")
        except ValidationError as exc:
            self.problem("as_of", value, exc.hint or "must be an ISO-8601 time with an offset")
            return None
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)

    def timeout(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
            self.problem("timeout", value, "must be a number of seconds in (0, 86400]")
            return 900.0
        return float(value)

    def groups(self, value: Any, key: str | None) -> list[GroupRef]:
        if not isinstance(value, list) or not value:
            self.problem("groups", value, "must be a non-empty list of [[groups]] tables")
            return []
        refs = []
        for i, table in enumerate(value):
            if not isinstance(table, Mapping):
                self.problem(f"groups[{i}]", table, "must be a table")
                continue
            ref = self.group(table, f"groups[{i}]", key)
            if ref is not None:
                refs.append(ref)
        return refs

    def group(self, table: Mapping[str, Any], where: str, key: str | None) -> GroupRef | None:
        count = len(self.problems)
        for extra in sorted(set(table) - _GROUP_KEYS):
            self.problem(f"{where}.{extra}", table[extra], f"unknown key (allowed: {', '.join(sorted(_GROUP_KEYS))})")
        name = self.text(table, "name", f"{where}.name", NAME_RE, "a feature group name")
        arn = self.text(table, "arn", f"{where}.arn", _GROUP_ARN_RE, "a feature group ARN")
        if (table.get("name") is None) == (table.get("arn") is None):
            self.problem(where, dict(table), "needs exactly one of name= or arn=")
        account = self.text(table, "account", f"{where}.account", choices=ACCOUNTS, expected="a string") or "central"
        on = self.text(table, "on", f"{where}.on", _COLUMN_RE, "a column name") or key or ""
        features = table.get("features")
        if features is not None and (not isinstance(features, list) or not features
                                     or not all(isinstance(f, str) and NAME_RE.fullmatch(f) for f in features)):
            self.problem(f"{where}.features", features, "must be a non-empty list of feature names")
        ttl = table.get("ttl")
        if ttl is not None:
            try:
                parse_ttl(ttl)
            except ValidationError:
                self.problem(f"{where}.ttl", ttl, "must be a duration such as '30d', '12h', '90m' or '45s'")
        prefix = self.text(table, "prefix", f"{where}.prefix", _PREFIX_RE, "1-64 characters of [A-Za-z0-9_]")
        how = self.text(table, "how", f"{where}.how", choices=HOWS, expected="a string") or "left"
        if len(self.problems) > count:
            return None
        return GroupRef(name=name, arn=arn, account=account, on=on,
                        features=tuple(features) if features is not None else None,
                        ttl=ttl, prefix=prefix, how=how)


def read_data_file(path: str | Path) -> Any:
    """A DataFrame from a ``.csv`` (every column read as text, so ids keep leading zeros; ingestion converts
    to the group's types) or ``.parquet`` file."""
    import pandas as pd

    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ValidationError(f"{file}: unsupported file type {suffix or '(none)'!r}", field="FILE",
                                     value=str(file), hint="use a .csv or .parquet file")
    if not file.is_file():
        raise ValidationError(f"{file}: no such file", field="FILE", value=str(file))
    try:
        if suffix == ".csv":
            return pd.read_csv(file, dtype=str, keep_default_na=True)
        return pd.read_parquet(file)
    except (ValueError, OSError) as exc:
        raise ValidationError(f"{file}: cannot read it: {exc}", field="FILE", value=str(file)) from exc


# ------------------------------------------------------------------------------------- building from a spec

def load_entities(spec: DatasetSpec, session: Any, record_id_types: Mapping[str, str] | None = None) -> Any:
    """The entity rows: a DataFrame for files and S3 objects (read with ``session``), the table name for tables.

    CSV columns are read as text and then typed: join columns as their group's record id type
    (``record_id_types``: column -> Integral/Fractional/String), the label time as a datetime (localised to
    ``spec.timezone`` when naive), other columns as numbers where every value parses, else text.
    """
    import io

    import pandas as pd

    if spec.entities.kind == "table":
        return spec.entities.value
    if spec.entities.kind == "file":
        frame = read_data_file(spec.entities.value)
    else:
        bucket, key = split_s3_uri(spec.entities.value, field="entities")
        with translate_client_error(action="s3:GetObject", resource=spec.entities.value):
            body = session.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        frame = (pd.read_csv(io.BytesIO(body), dtype=str) if spec.entities.file_format == "csv"
                 else pd.read_parquet(io.BytesIO(body)))
    missing = [c for c in (spec.key, spec.event_time, *(g.on for g in spec.groups)) if c not in frame.columns]
    if missing:
        raise ValidationError(f"entity columns {sorted(set(missing))} are not in {spec.entities.value} "
                              f"(columns: {list(frame.columns)[:20]})", field="entities", value=spec.entities.value,
                              hint="fix key / event_time / groups[].on in the spec")
    if spec.entities.file_format == "csv":
        frame = _type_csv_columns(frame, spec, dict(record_id_types or {}))
    return _localise(frame, spec)


def _type_csv_columns(frame: Any, spec: DatasetSpec, id_types: dict[str, str]) -> Any:
    import pandas as pd

    frame = frame.copy()
    for column in frame.columns:
        if column == spec.event_time:
            frame[column] = pd.to_datetime(frame[column], format="ISO8601")
        elif column in id_types:
            frame[column] = {"Integral": lambda s: s.astype("Int64"), "Fractional": lambda s: s.astype("Float64")
                             }.get(id_types[column], lambda s: s)(frame[column])
        else:
            with contextlib.suppress(ValueError, TypeError):
                frame[column] = pd.to_numeric(frame[column])
    return frame


def _localise(frame: Any, spec: DatasetSpec) -> Any:
    import pandas as pd

    column = frame[spec.event_time]
    if spec.timezone and pd.api.types.is_datetime64_any_dtype(column) and column.dt.tz is None:
        frame = frame.copy()
        frame[spec.event_time] = column.dt.tz_localize(spec.timezone)
    return frame


def resolve_groups(spec: DatasetSpec, *, central: Any | None, local: Any) -> list[Any]:
    """The :class:`~featureshare.groups.FeatureGroup` of every ``groups`` entry (described once each)."""
    from featureshare.groups import FeatureStore

    stores = {"local": FeatureStore(local), "central": FeatureStore(central) if central is not None else None}
    resolved = []
    for i, ref in enumerate(spec.groups):
        store = stores[ref.account]
        if store is None:
            raise ValidationError(f"groups[{i}] ({ref.ref}) is in the central account but no central session "
                                  "was given", field=f"groups[{i}].account", value=ref.account,
                                  hint="configure the topology's central role, or set account = \"local\"")
        resolved.append(store.group(ref.ref))
    return resolved


def training_set(spec: DatasetSpec, *, central: Any | None, local: Any) -> Any:
    """The :class:`~featureshare.training.TrainingSet` a spec describes (groups described, nothing run)."""
    groups = resolve_groups(spec, central=central, local=local)
    id_types = {ref.on: group.features.get(group.record_id, "String") for ref, group in zip(spec.groups, groups,
                                                                                            strict=True)}
    entities = load_entities(spec, local, id_types)
    from featureshare.training.build import TrainingSet

    ts = TrainingSet(entities, key=spec.key, event_time=spec.event_time, timezone=spec.timezone)
    for ref, group in zip(spec.groups, groups, strict=True):
        ts = ts.join(group, features=list(ref.features) if ref.features else None, on=ref.on, ttl=ref.ttl,
                     prefix=ref.prefix, how=ref.how)
    if spec.as_of is not None:
        ts = ts.as_of(spec.as_of)
    return ts


def _consumer_options(consumer: Any | None) -> dict[str, Any]:
    """Catalog name, scratch database (and workgroup) of the consumer account from the topology."""
    if consumer is None:
        return {}
    return {"catalog_name": consumer.central_catalog, "scratch_database": consumer.scratch_database}


def render_sql(spec: DatasetSpec, *, central: Any | None, local: Any, consumer: Any | None = None) -> str:
    """The point-in-time SQL of ``spec`` as it would run in ``local``'s account (no query is run).

    ``consumer`` (a :class:`~featureshare.config.ConsumerAccount`) supplies the central catalog's name and
    the scratch database; without it the defaults (``central``, ``featureshare_scratch``) are used.
    """
    ts = training_set(spec, central=central, local=local)
    return ts.sql(consumer=local, strategy=spec.strategy, **_consumer_options(consumer))


def build_dataset(spec: DatasetSpec, *, central: Any | None, local: Any, consumer: Any | None = None,
                  wait: bool = True) -> Any:
    """Build the training set of ``spec`` with the consumer session ``local`` (and the assumed central role
    ``central`` for central groups); returns a :class:`~featureshare.training.build.BuiltTrainingSet`.

    ``consumer`` (the :class:`~featureshare.config.ConsumerAccount` of ``local``) gives the default output
    (``<training prefix>/<spec name>/``), the Athena workgroup, catalog name and scratch database.
    """
    ts = training_set(spec, central=central, local=local)
    options: dict[str, Any] = {"session": local, "format": spec.format, "strategy": spec.strategy, "wait": wait,
                               "timeout": spec.timeout,
                               "output_uri": spec.output_uri(consumer.training_s3_uri if consumer else None),
                               **_consumer_options(consumer)}
    if consumer is not None:
        options["workgroup"] = consumer.athena_workgroup
    if spec.register_as:
        options["register_as"] = spec.register_as
    if central is not None:
        options["central_session"] = central
    return ts.build(**options)

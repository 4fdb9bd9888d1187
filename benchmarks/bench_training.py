"""P2, P2b, P3: point-in-time training sets through the embedded Athena, against the SDK DatasetBuilder SQL,
a Feast-style ROW_NUMBER query and DuckDB's ASOF JOIN; bytes scanned with and without time bounds.

Data (one seed): a central group (K keys x V versions, String ISO event times spread over 30 days, so 720
hourly partitions), a local group in the consumer account (K keys x 2 versions, Fractional event times), and
an entity table of E rows (key, label time, label) in the consumer's Glue, all Parquet in SageMaker's offline
layout. About 1% of the keys get a delete marker and 1% of the versions a second write with the same event
time (a later ``api_invocation_time`` wins). The offline files are written directly (S3 PutObject + Glue
partitions, as the offline store would) because ingesting a million rows through the emulated runtime would
take the whole time budget; the groups themselves are created with ``FeatureStore.ensure_group``.

Every query runs in the consumer account on the same engine and data, written to the consumer's bucket:

- featureshare: ``TrainingSet(entities).join(central).join(local).build(...)``, the real path (entity
  DataFrame uploaded and registered as a temporary table, one UNLOAD, ``_manifest.json``, cleanup), timed end
  to end; the central group is read through the ``central`` data catalog;
- SDK: ``UNLOAD (sdk_baselines.dataset_builder_sql) TO ... WITH (format = 'PARQUET')`` (checked equal to the
  SQL the installed SDK generates), over the entity table already in Glue;
- Feast-style: the same with ``sdk_baselines.feast_style_sql``.

Repetitions are interleaved (featureshare, SDK, Feast-style, again ...) so that load from other users of the
machine hits all three alike. ``params.versions_sweep`` repeats the three at 10 and 50 versions per key with
the same keys and entity rows (central group only): the SDK's and Feast's joins fan out to entity rows x
versions at or before the label time, featureshare's window sorts entity rows + versions.

Correctness is part of the benchmark: featureshare's rows must equal the plain-Python reference
(``featureshare.training.reference``, on a sample of entity rows: it is deliberately naive) and the ASOF
lower bound's rows (all of them); the SDK's and Feast's rows are compared with featureshare's and their
differing / fan-out rows counted.

P2b: the ASOF JOIN reads the same Parquet files from local disk in an in-process DuckDB (2 threads, as the
emulator's) and writes Parquet: no HTTP, no S3, no Glue, no Athena layer: the practical lower bound.

P3: a 1-day entity window (label times within one day) with a 1-day TTL: featureshare prunes the hourly
partitions to the 2 days it can need; the baseline is the same query with ``prune_partitions=False``.
``Statistics.DataScannedInBytes`` of both (the emulator counts the bytes of the objects it reads).
"""

from __future__ import annotations

import math
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import sdk_baselines
from benchmarks.harness import TRAINING_BUCKET, Options, Result, World, median, read_parquet_prefix, run_query
from benchmarks.sdk_baselines import SdkGroup

START = pd.Timestamp("2026-03-01", tz="UTC")
DAYS = 30
ENTITY_DB = "bench"
FS_FEATURES = ("country", "lifetime_value", "orders")
LOCAL_FEATURES = ("top_keyword", "keyword_searches")
P2_TARGET, P2B_TARGET, P3_TARGET = "<= 0.2", "<= 2", "<= 0.1"
_MS = pd.Timedelta(milliseconds=1)


@dataclass(frozen=True)
class Sizes:
    keys: int
    versions: int
    entities: int
    reference_sample: int
    days: int = DAYS

    @property
    def central_rows(self) -> int:
        return self.keys * self.versions


def sizes(options: Options) -> Sizes:
    if options.quick:
        return Sizes(keys=300, versions=4, entities=300, reference_sample=300, days=3)
    return Sizes(keys=100_000, versions=10, entities=100_000, reference_sample=2_000)


# ------------------------------------------------------------------------------------------------ data

def _history(rng: np.random.Generator, keys: np.ndarray, versions: int, days: int) -> pd.DataFrame:
    """Versions per key at random seconds of ``days`` days, with system times after the event time."""
    user_ids = np.repeat(keys, versions)
    offsets = rng.integers(0, days * 86400, len(user_ids))
    event = START + pd.to_timedelta(offsets, unit="s")
    api = event + pd.to_timedelta(rng.integers(1, 300_000, len(user_ids)), unit="ms")
    frame = pd.DataFrame({"user_id": user_ids, "event": event, "api_invocation_time": api,
                          "write_time": api + pd.to_timedelta(rng.integers(60, 900, len(user_ids)), unit="s"),
                          "is_deleted": False})
    # ~1% rewrites of an existing version (same event time, later api_invocation_time): the later one wins.
    again = frame.sample(frac=0.01, random_state=int(rng.integers(1 << 30))).copy()
    again["api_invocation_time"] += pd.Timedelta(seconds=30)
    again["write_time"] += pd.Timedelta(seconds=30)
    return pd.concat([frame, again], ignore_index=True)


def _deletes(rng: np.random.Generator, keys: np.ndarray, days: int) -> pd.DataFrame:
    chosen = rng.choice(keys, size=max(1, len(keys) // 100), replace=False)
    event = START + pd.to_timedelta(rng.integers(days * 86400 // 2, days * 86400, len(chosen)), unit="s")
    api = event + pd.Timedelta(seconds=1)
    return pd.DataFrame({"user_id": chosen, "event": event, "api_invocation_time": api,
                         "write_time": api + pd.Timedelta(seconds=120), "is_deleted": True})


@dataclass(frozen=True)
class Data:
    central: pd.DataFrame     # offline rows: user_id, event_time (ISO str), features, system columns, event
    local: pd.DataFrame       # offline rows: user_id, event_time (epoch float), features, system columns, event
    entities: pd.DataFrame    # row_id, user_id, label_time (ISO str), label_epoch, churned


def generate(size: Sizes, seed: int = 17) -> Data:
    rng = np.random.default_rng(seed)
    keys = np.array([f"u{i:07d}" for i in range(size.keys)])
    central = pd.concat([_history(rng, keys, size.versions, size.days), _deletes(rng, keys, size.days)],
                        ignore_index=True)
    live = ~central["is_deleted"]
    n = len(central)
    central["event_time"] = central["event"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    central["country"] = pd.Series(rng.choice(["DE", "FR", "GB", "IN", "JP", "US", "BR"], n)).where(live, None)
    central["lifetime_value"] = pd.Series(np.round(rng.gamma(2.0, 40.0, n), 2)).where(live, None)
    central["orders"] = pd.array(rng.integers(0, 60, n), dtype="Int64")
    central.loc[~live, "orders"] = pd.NA
    local = _history(rng, keys, 2, size.days)
    local["event_time"] = (local["event"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    local["top_keyword"] = rng.choice(["shoes", "laptop", "coffee", "tent", "guitar", "lamp"], len(local))
    local["keyword_searches"] = rng.integers(1, 200, len(local)).astype("int64")
    label = START + pd.to_timedelta(rng.integers(size.days * 86400 // 10, size.days * 86400, size.entities),
                                    unit="s")
    entities = pd.DataFrame({"row_id": np.arange(size.entities, dtype="int64"),
                             "user_id": rng.choice(keys, size.entities),
                             "label_time": label.strftime("%Y-%m-%dT%H:%M:%SZ"),
                             "label_epoch": (label - pd.Timestamp(0, tz="UTC")).total_seconds(),
                             "churned": rng.integers(0, 2, size.entities).astype("int64")})
    return Data(central, local, entities)


def window_entities(size: int, seed: int = 23, day: int = 20) -> pd.DataFrame:
    """P3's entity rows: label times within one day (day ``day`` of the 30)."""
    rng = np.random.default_rng(seed)
    label = START + pd.Timedelta(days=day) + pd.to_timedelta(rng.integers(0, 86400, size), unit="s")
    return pd.DataFrame({"row_id": np.arange(size, dtype="int64"),
                         "user_id": [f"u{i:07d}" for i in rng.integers(0, size, size)],
                         "label_time": label.strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "label_epoch": (label - pd.Timestamp(0, tz="UTC")).total_seconds(),
                         "churned": rng.integers(0, 2, size).astype("int64")})


# ------------------------------------------------------------------------------------------------ upload

def _offline_table(frame: pd.DataFrame, features: Sequence[tuple[str, str]]) -> Any:
    """The Parquet schema the offline store writes: features typed, then the three system columns."""
    import pyarrow as pa

    types = {"String": pa.string(), "Fractional": pa.float64(), "Integral": pa.int64()}
    stamp = pa.timestamp("ms", tz="UTC")
    arrays = [pa.array(frame[name].astype(object).where(frame[name].notna(), None).tolist(), types[kind])
              for name, kind in features]
    arrays += [pa.array(frame["write_time"].dt.floor("ms"), stamp),
               pa.array(frame["api_invocation_time"].dt.floor("ms"), stamp), pa.array(frame["is_deleted"])]
    names = [name for name, _ in features] + ["write_time", "api_invocation_time", "is_deleted"]
    return pa.table(arrays, names=names)


def upload_offline(admin: Any, group: Any, frame: pd.DataFrame, local_dir: Path) -> int:
    """Write ``frame`` as the group's offline store: one Parquet object per event-time hour, Glue partitions.
    The same bytes go to ``local_dir`` (P2b reads them). Returns the bytes written."""
    import pyarrow.parquet as pq

    s3, glue = admin.client("s3"), admin.client("glue")
    bucket, _, prefix = group.offline_s3_uri.removeprefix("s3://").partition("/")
    features = list(group.features.items())
    hours = frame["event"].dt.strftime("%Y/%m/%d/%H")
    partitions, total = [], 0
    for hour, part in frame.groupby(hours, sort=True):
        year, month, day, hh = hour.split("/")
        location = f"year={year}/month={month}/day={day}/hour={hh}"
        path = local_dir / location / "part.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_offline_table(part, features), path)
        body = path.read_bytes()
        total += len(body)
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{location}/20260401T000000Z_{uuid.uuid4().hex[:16]}.parquet",
                      Body=body)
        partitions.append({"Values": [year, month, day, hh], "StorageDescriptor": {
            "Location": f"s3://{bucket}/{prefix}/{location}"}})
    for start in range(0, len(partitions), 100):
        glue.batch_create_partition(DatabaseName=group.database, TableName=group.table,
                                    PartitionInputList=partitions[start:start + 100])
    return total


_ENTITY_TYPES = {"row_id": "bigint", "user_id": "string", "label_time": "string", "label_epoch": "double",
                 "churned": "bigint"}


def upload_entities(admin: Any, name: str, frame: pd.DataFrame, local_dir: Path) -> None:
    """The entity table: Parquet in the consumer's bucket, a Glue table over it."""
    frame.to_parquet(local_dir / f"{name}.parquet", index=False)
    admin.client("s3").put_object(Bucket=TRAINING_BUCKET, Key=f"entities/{name}/part.parquet",
                                  Body=(local_dir / f"{name}.parquet").read_bytes())
    admin.client("glue").create_table(DatabaseName=ENTITY_DB, TableInput={
        "Name": name, "TableType": "EXTERNAL_TABLE", "Parameters": {"classification": "parquet"},
        "StorageDescriptor": {
            "Columns": [{"Name": c, "Type": _ENTITY_TYPES[c]} for c in frame.columns],
            "Location": f"s3://{TRAINING_BUCKET}/entities/{name}/",
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}}})


@dataclass
class Setup:
    central: Any              # FeatureGroup
    local: Any                # FeatureGroup
    data: Data
    local_dir: Path
    offline_bytes: dict[str, int]
    size: Sizes


def central_features() -> list[Any]:
    from featureshare.groups import Feature

    return [Feature("user_id", "String"), Feature("event_time", "String"), Feature("country", "String"),
            Feature("lifetime_value", "Fractional"), Feature("orders", "Integral")]


def set_up(world: World, size: Sizes, local_dir: Path) -> Setup:
    from featureshare.groups import Feature, GroupSpec

    data = generate(size)
    central = world.ensure_central(GroupSpec("bench-users", "user_id", "event_time", central_features()))
    local = world.ensure_local(GroupSpec("bench-keywords", "user_id", "event_time", [
        Feature("user_id", "String"), Feature("event_time", "Fractional"), Feature("top_keyword", "String"),
        Feature("keyword_searches", "Integral")]))
    sizes_written = {"central": upload_offline(world.central_admin, central, data.central, local_dir / "central"),
                     "local": upload_offline(world.consumer_admin, local, data.local, local_dir / "local")}
    world.consumer_admin.client("glue").create_database(DatabaseInput={"Name": ENTITY_DB})
    upload_entities(world.consumer_admin, "entities_p2", data.entities, local_dir)
    return Setup(central, local, data, local_dir, sizes_written, size)


# ------------------------------------------------------------------------------------------------ queries

def featureshare_query(setup: Setup, table: str, entities: pd.DataFrame, *, ttl: Any = None,
                       prune: bool = True, local: bool = True) -> str:
    from featureshare.training.sql import EntitySource, PointInTimeQuery, SourceTable, make_join

    columns = tuple(entities.columns)
    source = EntitySource(database=ENTITY_DB, table=table, key="user_id", event_time="label_time",
                          columns=columns, time_kind="string", row_id="row_id", time_column="label_epoch",
                          time_range=(float(entities["label_epoch"].min()), float(entities["label_epoch"].max())))
    joins = [make_join(SourceTable.from_group(setup.central), features=list(FS_FEATURES), on="user_id",
                       entity_columns=columns, data_catalog="central", ttl=ttl)]
    if local:
        joins.append(make_join(SourceTable.from_group(setup.local), features=list(LOCAL_FEATURES), on="user_id",
                               entity_columns=columns, data_catalog="awsdatacatalog", ttl=ttl))
    return PointInTimeQuery(entities=source, joins=tuple(joins), prune_partitions=prune).render()


def build_training_set(world: World, central: Any, local: Any | None, entities: pd.DataFrame,
                       name: str) -> tuple[float, Any, pd.DataFrame]:
    """``TrainingSet(...).build(...)`` in the consumer account, timed end to end (entity upload, query,
    UNLOAD, manifest, cleanup); returns (seconds, the built set, its rows keyed like the other results)."""
    from featureshare.training import TrainingSet

    training = TrainingSet(entities[["user_id", "label_time", "churned"]], key="user_id", event_time="label_time")
    training = training.join(central, features=list(FS_FEATURES))
    if local is not None:
        training = training.join(local, features=list(LOCAL_FEATURES))
    output = f"s3://{TRAINING_BUCKET}/sets/{name}/{uuid.uuid4().hex[:8]}/"
    started = time.perf_counter()
    built = training.build(session=world.consumer, output_uri=output, timeout=600)
    seconds = time.perf_counter() - started
    frame = built.to_dataframe()
    if len(frame) != len(entities):
        raise RuntimeError(f"{name}: {len(frame)} rows for {len(entities)} entity rows")
    # to_dataframe() keeps entity order; label times come back as timestamps, compare them as the input text
    frame["label_time"] = entities["label_time"].to_numpy()
    frame["featureshare_entity_row"] = entities["row_id"].to_numpy()
    return seconds, built, frame


def sdk_groups(setup: Setup) -> tuple[SdkGroup, list[SdkGroup]]:
    base = SdkGroup(None, ENTITY_DB, "entities_p2", "user_id", "label_time", "String",
                    ("user_id", "label_time", "churned"), ("user_id", "label_time", "churned"))
    central = SdkGroup("central", setup.central.database, setup.central.table, "user_id", "event_time", "String",
                       ("user_id", "event_time", *FS_FEATURES), FS_FEATURES)
    local = SdkGroup(None, setup.local.database, setup.local.table, "user_id", "event_time", "Fractional",
                     ("user_id", "event_time", *LOCAL_FEATURES), LOCAL_FEATURES)
    return base, [central, local]


def unload(sql: str, name: str) -> tuple[str, str]:
    target = f"s3://{TRAINING_BUCKET}/out/{name}/{uuid.uuid4().hex[:8]}/"
    return f"UNLOAD ({sql}) TO '{target}' WITH (format = 'PARQUET')", target


def _timed_unloads(world: World, sql: str, name: str, repeats: int) -> tuple[list[float], str, int]:
    seconds, target, scanned = [], "", 0
    for _ in range(repeats):
        statement, target = unload(sql, name)
        run = run_query(world.consumer, statement, output=f"s3://{TRAINING_BUCKET}/athena/")
        if run.state != "SUCCEEDED":
            raise RuntimeError(f"{name} query {run.state}: {run.reason}")
        seconds.append(run.seconds)
        scanned = run.scanned_bytes
    return seconds, target, scanned


# ------------------------------------------------------------------------------------------------ ASOF

def asof_sql(local_dir: Path, out: Path) -> str:
    """DuckDB: latest version per (key, event time), then ASOF LEFT JOIN per group; deletes give nulls."""
    def latest(name: str, event: str, features: Sequence[str]) -> str:
        cols = ", ".join(features)
        return (f"{name} AS (SELECT user_id, {event} AS ts, {cols}, is_deleted FROM read_parquet("
                f"'{local_dir / name}/**/*.parquet') QUALIFY row_number() OVER (PARTITION BY user_id, {event} "
                f"ORDER BY api_invocation_time DESC, write_time DESC) = 1)")

    central = latest("central", "epoch(CAST(event_time AS TIMESTAMPTZ))", FS_FEATURES)
    local = latest("local", "event_time", LOCAL_FEATURES)
    picks = [f"CASE WHEN NOT c.is_deleted THEN c.{f} END AS {f}" for f in FS_FEATURES]
    picks += [f"CASE WHEN NOT k.is_deleted THEN k.{f} END AS {f}" for f in LOCAL_FEATURES]
    return (f"COPY (WITH {central}, {local} SELECT e.user_id, e.label_time, e.churned, {', '.join(picks)}, "
            f"e.row_id AS featureshare_entity_row FROM read_parquet('{local_dir / 'entities_p2.parquet'}') e "
            "ASOF LEFT JOIN central c ON e.user_id = c.user_id AND e.label_epoch >= c.ts "
            "ASOF LEFT JOIN local k ON e.user_id = k.user_id AND e.label_epoch >= k.ts "
            f"ORDER BY e.row_id) TO '{out}' (FORMAT PARQUET)")


def run_asof(local_dir: Path, repeats: int) -> tuple[list[float], pd.DataFrame]:
    import duckdb

    seconds = []
    out = local_dir / "asof.parquet"
    for _ in range(repeats):
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET threads=2")
            con.execute("SET TimeZone='UTC'")
            started = time.perf_counter()
            con.execute(asof_sql(local_dir, out))
            seconds.append(time.perf_counter() - started)
        finally:
            con.close()
    return seconds, pd.read_parquet(out)


# ------------------------------------------------------------------------------------------------ checks

def _equal(a: Any, b: Any) -> bool:
    a_missing = a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA
    b_missing = b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA
    if a_missing or b_missing:
        return a_missing and b_missing
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
    return str(a) == str(b)


def reference_mismatches(result: pd.DataFrame, data: Data, sample: int) -> tuple[int, int]:
    """Rows of ``result`` (by entity row) that differ from the reference, over the first ``sample`` rows."""
    from featureshare.training.reference import ReferenceJoin, point_in_time_reference

    entities = data.entities.head(sample)
    wanted = set(entities["user_id"])
    by_key: dict[str, dict[str, list[dict[str, Any]]]] = {"central": defaultdict(list), "local": defaultdict(list)}
    for name, frame in (("central", data.central), ("local", data.local)):
        for row in frame[frame["user_id"].isin(wanted)].to_dict("records"):
            by_key[name][row["user_id"]].append(row)
    rows = result.set_index("featureshare_entity_row")
    mismatches = 0
    for entity in entities.to_dict("records"):
        joins = [ReferenceJoin(by_key["central"][entity["user_id"]], "user_id", "event_time", FS_FEATURES, "user_id"),
                 ReferenceJoin(by_key["local"][entity["user_id"]], "user_id", "event_time", LOCAL_FEATURES, "user_id")]
        expected = point_in_time_reference([entity], event_time="label_time", joins=joins)[0]
        got = rows.loc[entity["row_id"]]
        if not all(_equal(got[f], expected[f]) for f in (*FS_FEATURES, *LOCAL_FEATURES)):
            mismatches += 1
    return mismatches, len(entities)


def frame_mismatches(left: pd.DataFrame, right: pd.DataFrame, key: str = "featureshare_entity_row",
                     features: Sequence[str] = (*FS_FEATURES, *LOCAL_FEATURES)) -> int:
    """Entity rows whose features differ between two one-row-per-entity results (missing rows count)."""
    a, b = left.set_index(key), right.set_index(key)
    missing = len(a.index.symmetric_difference(b.index))
    common = a.index.intersection(b.index)
    differ = pd.Series(False, index=common)
    for f in features:
        differ |= ~same_values(a.loc[common, f], b.loc[common, f])
    return missing + int(differ.sum())


def same_values(x: pd.Series, y: pd.Series) -> pd.Series:
    """Element-wise equality with nulls equal to nulls; numbers compared as numbers (an integer column with
    nulls reads back as float64)."""
    both_null = (x.isna() & y.isna()).to_numpy()
    if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
        close = ((x.astype("float64") - y.astype("float64")).abs() <= 1e-9).fillna(False).to_numpy(bool)
        return pd.Series(both_null | close, index=x.index)
    equal = (x.astype(str) == y.astype(str)).to_numpy(bool) & ~(x.isna() | y.isna()).to_numpy()
    return pd.Series(both_null | equal, index=x.index)


def sdk_differences(sdk: pd.DataFrame, featureshare: pd.DataFrame, entities: int) -> dict[str, int]:
    """The SDK's rows against featureshare's (= the reference): fan-out, dropped and differing rows."""
    sdk = sdk.rename(columns={f"{f}.1": f for f in FS_FEATURES} | {f"{f}.2": f for f in LOCAL_FEATURES})
    keys = ["user_id", "label_time"]
    merged = sdk.merge(featureshare, on=keys, how="left", suffixes=("", "_ref"))
    differing = pd.Series(False, index=merged.index)
    for f in (*FS_FEATURES, *LOCAL_FEATURES):
        differing |= ~same_values(merged[f], merged[f + "_ref"])
    represented = sdk[keys].drop_duplicates()
    return {"sdk_rows": len(sdk), "entity_rows": entities, "fanout_rows": len(sdk) - len(represented),
            "entity_rows_dropped": entities - len(represented), "rows_differing_from_reference": int(differing.sum())}


# ------------------------------------------------------------------------------------------------ run

def _interleaved(world: World, setup: Setup, queries: dict[str, str], repeats: int
                 ) -> tuple[dict[str, list[float]], Any, pd.DataFrame, dict[str, str]]:
    """Each repetition runs the featureshare build and then every baseline query once, so that a change of
    machine load (others share it) hits all of them alike; returns seconds per name, the last built set and
    its rows, and the last UNLOAD location per baseline."""
    seconds: dict[str, list[float]] = {"featureshare": [], **{name: [] for name in queries}}
    built, frame, outputs = None, pd.DataFrame(), {}
    for _ in range(repeats):
        took, built, frame = build_training_set(world, setup.central, setup.local, setup.data.entities,
                                                "featureshare")
        seconds["featureshare"].append(took)
        for name, sql in queries.items():
            times, outputs[name], _ = _timed_unloads(world, sql, name, 1)
            seconds[name] += times
    return seconds, built, frame, outputs


def run_p2(world: World, options: Options, setup: Setup, size: Sizes) -> list[Result]:
    s3 = world.consumer_admin.client("s3")
    base, groups = sdk_groups(setup)
    queries = {"sdk": sdk_baselines.with_catalogs(sdk_baselines.dataset_builder_sql(base, groups), groups),
               "feast": _feast_sql("entities_p2", groups)}
    captured = None if options.quick else sdk_baselines.capture_in_child(world.child_env(), base, groups)
    as_released = sdk_baselines.dataset_builder_sql(base, groups, as_released=True)
    released_sql = unload(sdk_baselines.with_catalogs(as_released, groups), "sdk-released")[0]
    released_run = run_query(world.consumer, released_sql, output=f"s3://{TRAINING_BUCKET}/athena/")
    seconds, built, fs_frame, outputs = _interleaved(world, setup, queries, options.repeats)
    fs_s, sdk_s, feast_s = seconds["featureshare"], seconds["sdk"], seconds["feast"]
    asof_s, asof_frame = run_asof(setup.local_dir, options.repeats)
    sdk_frame, feast_frame = read_parquet_prefix(s3, outputs["sdk"]), read_parquet_prefix(s3, outputs["feast"])
    feast_frame = feast_frame.merge(setup.data.entities[["user_id", "label_time", "row_id"]].rename(
        columns={"row_id": "featureshare_entity_row"}), on=["user_id", "label_time"])
    ref_bad, ref_n = reference_mismatches(fs_frame, setup.data, size.reference_sample)
    params = {"central_rows": len(setup.data.central), "central_keys": size.keys, "versions_per_key": size.versions,
              "local_rows": len(setup.data.local), "entity_rows": size.entities, "hourly_partitions": size.days * 24,
              "offline_bytes": setup.offline_bytes, "repeats": options.repeats,
              "featureshare_call": "TrainingSet(...).join(central).join(local).build(): entity upload, UNLOAD "
                                   "PARQUET, manifest, cleanup", "baseline_statement": "UNLOAD ... PARQUET",
              "featureshare_s": _rounded(fs_s), "sdk_s": _rounded(sdk_s), "feast_style_s": _rounded(feast_s),
              "asof_s": _rounded(asof_s), "feast_style_ratio": round(median(fs_s) / median(feast_s), 3),
              "lower_bound_over_sdk": round(median(asof_s) / median(sdk_s), 3),
              "sdk": sdk_differences(sdk_frame, fs_frame, len(setup.data.entities)),
              "feast_style_rows_differing": frame_mismatches(fs_frame, feast_frame),
              "reference_sample_rows": ref_n, "manifest_row_count": (built.manifest or {}).get("row_count"),
              "featureshare_scanned_bytes": built.data_scanned_bytes,
              "sdk_sql_as_released_state": released_run.state,
              "sdk_sql_as_released_reason": released_run.reason[:300],
              "versions_sweep": run_sweep(world, options)}
    checks = {"featureshare equals the reference (sample)": ref_bad == 0,
              "featureshare equals the ASOF lower bound (all rows)": frame_mismatches(fs_frame, asof_frame) == 0,
              "one row per entity row": len(fs_frame) == size.entities
              and params["manifest_row_count"] == size.entities,
              "reproduced SDK SQL equals the SDK's own": captured is None or sdk_baselines.normalise_sql(captured)
              == sdk_baselines.normalise_sql(as_released),
              "sweep: featureshare equals the Feast-style result": all(
                  p["featureshare_rows_differing_from_feast"] == 0
                  for p in params["versions_sweep"]["points"].values())}
    p2 = Result("P2", "training-set build time over the SDK DatasetBuilder SQL's", median(fs_s) / median(sdk_s),
                {"name": "SDK DatasetBuilder SQL (point_in_time_accurate_join)", "seconds": round(median(sdk_s), 3)},
                P2_TARGET, params, unit="x", checks=checks,
                notes=_p2_notes(captured, released_run.state, params["lower_bound_over_sdk"]))
    p2b = Result("P2b", "training-set build time over DuckDB ASOF JOIN on the Parquet", median(fs_s) / median(asof_s),
                 {"name": "DuckDB ASOF JOIN on local Parquet (2 threads)", "seconds": round(median(asof_s), 3)},
                 P2B_TARGET, {"featureshare_s": params["featureshare_s"], "asof_s": params["asof_s"],
                              "central_rows": params["central_rows"], "entity_rows": size.entities},
                 unit="x", checks=dict(checks))
    return [p2, p2b]


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(v, 3) for v in values]


def _feast_sql(entity_table: str, groups: Sequence[SdkGroup]) -> str:
    entities = f'"awsdatacatalog"."{ENTITY_DB}"."{entity_table}"'
    sql = sdk_baselines.feast_style_sql(entities, "user_id", "label_epoch", ("user_id", "label_time", "churned"),
                                        [(g, "") for g in groups])
    return sdk_baselines.with_catalogs(sql, groups) + "\nORDER BY 1"


def _p2_notes(captured: str | None, released_state: str, lower_bound_over_sdk: float) -> list[str]:
    return ["SDK SQL: " + ("captured from the installed sagemaker-mlops and equal to the reproduction"
                           if captured else "reproduced from the sagemaker-mlops 1.27 template (SDK not importable)"),
            f"the SDK's SQL as released ({released_state}) uses from_unixtime() on the String event time of "
            "the central group (sagemaker-mlops bug); the timed SDK query uses the template's intended "
            "from_iso8601_timestamp",
            "featureshare is timed through TrainingSet.build() (uploads the entities, waits with its own "
            "backoff, writes the manifest, cleans up); the baselines are one UNLOAD each over an entity table "
            "already in Glue, polled every 20 ms: the comparison favours the baselines",
            "repetitions are interleaved (featureshare, SDK, Feast-style, then again) so load changes hit all; "
            "the embedded Athena has decoded the Parquet once before (the SDK query as released), as in the sweep",
            "versions_sweep: same keys, more versions per key, central group only; the target applies at 10",
            f"lower_bound_over_sdk: DuckDB's native ASOF JOIN on the same Parquet (P2b's baseline) takes "
            f"{lower_bound_over_sdk}x the SDK query's time: the practical lower bound on this engine, so a "
            "target below that ratio is out of reach here"]


# ------------------------------------------------------------------------------------------------ sweep

SWEEP_VERSIONS = (10, 50)
SWEEP_REPEATS = 3


def run_sweep(world: World, options: Options) -> dict[str, Any]:
    """P2's three queries at several versions per key with the same keys and entity rows (central group
    only): the fan-out plans grow with entity rows x versions per key, featureshare's with their sum."""
    keys = options.size(20_000, 100)
    points = {}
    with tempfile.TemporaryDirectory(prefix="featureshare-bench-sweep-") as tmp:
        for versions in SWEEP_VERSIONS:
            points[f"versions={versions}"] = _sweep_point(world, options, keys, versions, Path(tmp))
    return {"keys": keys, "entity_rows": keys, "repeats": min(options.repeats, SWEEP_REPEATS), "points": points}


def _sweep_point(world: World, options: Options, keys: int, versions: int, tmp: Path) -> dict[str, Any]:
    from featureshare.groups import GroupSpec

    size = Sizes(keys=keys, versions=versions, entities=keys, reference_sample=0, days=options.size(DAYS, 3))
    data = generate(size, seed=31 + versions)
    group = world.ensure_central(GroupSpec(f"bench-sweep-v{versions}", "user_id", "event_time", central_features()))
    upload_offline(world.central_admin, group, data.central, tmp / f"v{versions}")
    table = f"entities_sweep_v{versions}"
    upload_entities(world.consumer_admin, table, data.entities, tmp)
    base = SdkGroup(None, ENTITY_DB, table, "user_id", "label_time", "String", ("user_id", "label_time", "churned"),
                    ("user_id", "label_time", "churned"))
    sdk_group = SdkGroup("central", group.database, group.table, "user_id", "event_time", "String",
                         ("user_id", "event_time", *FS_FEATURES), FS_FEATURES)
    queries = {"sdk": sdk_baselines.with_catalogs(sdk_baselines.dataset_builder_sql(base, [sdk_group]), [sdk_group]),
               "feast": _feast_sql(table, [sdk_group])}
    seconds: dict[str, list[float]] = {"featureshare": [], "sdk": [], "feast": []}
    frame, outputs = pd.DataFrame(), {}
    # untimed: the first query over new objects decodes them, whichever query it is (P2 warms up the same way)
    _timed_unloads(world, queries["feast"], f"sweep-warm-up-v{versions}", 1)
    for _ in range(min(options.repeats, SWEEP_REPEATS)):
        took, _, frame = build_training_set(world, group, None, data.entities, f"sweep-v{versions}")
        seconds["featureshare"].append(took)
        for name, sql in queries.items():
            times, outputs[name], _ = _timed_unloads(world, sql, f"sweep-{name}-v{versions}", 1)
            seconds[name] += times
    s3 = world.consumer_admin.client("s3")
    feast = read_parquet_prefix(s3, outputs["feast"]).merge(data.entities[["user_id", "label_time", "row_id"]].rename(
        columns={"row_id": "featureshare_entity_row"}), on=["user_id", "label_time"])
    fs, sdk, ft = (median(seconds[n]) for n in ("featureshare", "sdk", "feast"))
    return {"central_rows": len(data.central), "featureshare_s": _rounded(seconds["featureshare"]),
            "sdk_s": _rounded(seconds["sdk"]), "feast_style_s": _rounded(seconds["feast"]),
            "ratio_to_sdk": round(fs / sdk, 3), "ratio_to_feast_style": round(fs / ft, 3),
            "sdk_rows": len(read_parquet_prefix(s3, outputs["sdk"])),
            "featureshare_rows_differing_from_feast": frame_mismatches(frame, feast, features=FS_FEATURES)}


def run_p3(world: World, options: Options, setup: Setup) -> list[Result]:
    day = setup.size.days * 2 // 3
    entities = window_entities(min(setup.data.entities.shape[0], options.size(10_000, 200)), day=day)
    upload_entities(world.consumer_admin, "entities_p3", entities, setup.local_dir)
    pruned = featureshare_query(setup, "entities_p3", entities, ttl="1d", local=False)
    full = featureshare_query(setup, "entities_p3", entities, ttl="1d", local=False, prune=False)
    _, pruned_out, pruned_bytes = _timed_unloads(world, pruned, "p3-pruned", 1)
    _, full_out, full_bytes = _timed_unloads(world, full, "p3-full", 1)
    s3 = world.consumer_admin.client("s3")
    same = len(read_parquet_prefix(s3, pruned_out).compare(read_parquet_prefix(s3, full_out))) == 0
    params = {"entity_rows": len(entities), "entity_window": f"1 day (day {day} of {setup.size.days})",
              "ttl": "1d", "hourly_partitions": setup.size.days * 24, "scanned_bytes_pruned": pruned_bytes,
              "scanned_bytes_unbounded": full_bytes, "central_offline_bytes": setup.offline_bytes["central"]}
    return [Result("P3", "bytes scanned, 1-day entity window over 30 days of hourly partitions",
                   pruned_bytes / full_bytes if full_bytes else None,
                   {"name": "same build without time bounds", "bytes": full_bytes}, P3_TARGET, params, unit="x",
                   checks={"same training set with and without pruning": same})]


def run(world: World, options: Options, only: set[str]) -> list[Result]:
    size = sizes(options)
    with tempfile.TemporaryDirectory(prefix="featureshare-bench-p2-") as tmp:
        started = time.perf_counter()
        setup = set_up(world, size, Path(tmp))
        setup_s = time.perf_counter() - started
        results: list[Result] = []
        if only & {"P2", "P2b"}:
            results += [r for r in run_p2(world, options, setup, size) if r.id in only]
        if "P3" in only:
            results += run_p3(world, options, setup)
    for r in results:
        r.params["data_setup_s"] = round(setup_s, 1)
    return results

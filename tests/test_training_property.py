"""Property tests: the rendered point-in-time SQL, run on DuckDB through sqlglot (athena -> duckdb, as the
embedded AWS does), equals the plain-Python reference of DESIGN.md §4 on random histories."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureshare.training.reference import ReferenceJoin, epoch_seconds, point_in_time_reference, run_on_duckdb
from featureshare.training.sql import (
    ROW_ID_COLUMN,
    EntitySource,
    PointInTimeQuery,
    SourceTable,
    make_join,
)

BASE = dt.datetime(2024, 3, 9, 22, 0, tzinfo=dt.UTC)
STEP = dt.timedelta(minutes=20)  # a grid coarse enough for many exact ties, crossing hours and days
KEYS = ["a", "b", "c"]
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def duck() -> Any:
    connection = duckdb.connect(":memory:")
    connection.execute("SET threads = 1")
    yield connection
    connection.close()


def _grid_time(draw: st.DrawFn) -> dt.datetime:
    moment = BASE + STEP * draw(st.integers(0, 12))
    if draw(st.integers(0, 3)) == 0:
        moment += dt.timedelta(milliseconds=draw(st.sampled_from([1, 500, 999])))
    return moment


def _event_value(moment: dt.datetime, event_type: str) -> Any:
    if event_type == "Fractional":
        return epoch_seconds(moment)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@st.composite
def histories(draw: st.DrawFn, index: int, record_type: str) -> dict[str, Any]:
    """One group's offline rows: several versions per key, same-event-time duplicates with different
    api_invocation_time, deletes, null features, and system times on a grid so that as_of can tie."""
    event_type = draw(st.sampled_from(["String", "Fractional"]))
    present = draw(st.lists(st.sampled_from(KEYS), min_size=0, max_size=len(KEYS), unique=True))
    naive_system_times = draw(st.booleans())  # the real offline store has naive TIMESTAMP columns
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for n in range(draw(st.integers(0, 12)) if present else 0):
        if rows and draw(st.integers(0, 2)) == 0:
            earlier = draw(st.sampled_from(rows))
            key, event = earlier["_key"], earlier["_event"]
        else:
            key, event = draw(st.sampled_from(present)), _grid_time(draw)
        api = event + STEP * draw(st.integers(-1, 3))
        write = api + dt.timedelta(minutes=draw(st.sampled_from([0, 5, 15, 60])))
        if (key, event, api, write) in seen:  # a full tie has no defined winner; keep versions distinct
            write += dt.timedelta(milliseconds=n + 1)
        seen.add((key, event, api, write))
        deleted = draw(st.integers(0, 5)) == 0
        rows.append({
            "_key": key, "_event": event,
            "rid": int(key, 16) if record_type == "Integral" else key,
            "ev": _event_value(event, event_type),
            "api_invocation_time": api,
            "write_time": write,
            "is_deleted": deleted,
            "num": None if deleted or draw(st.integers(0, 4)) == 0 else draw(st.integers(-5, 5)),
            "txt": None if deleted or draw(st.integers(0, 4)) == 0 else draw(st.sampled_from(["x", "y", "it's"])),
            "year": event.strftime("%Y"), "month": event.strftime("%m"),
            "day": event.strftime("%d"), "hour": event.strftime("%H"),
        })
    return {"index": index, "event_type": event_type, "rows": rows, "naive": naive_system_times,
            "ttl": draw(st.sampled_from([None, None, 1200.0, 3600.0, 7200.0])),
            "how": draw(st.sampled_from(["left", "left", "inner"]))}


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    record_type = draw(st.sampled_from(["String", "Integral"]))
    groups = [draw(histories(i, record_type)) for i in range(draw(st.integers(1, 3)))]
    entities = []
    for _ in range(draw(st.integers(0, 12))):
        key = draw(st.sampled_from([*KEYS, "e"])) if draw(st.integers(0, 15)) else None
        label = _grid_time(draw) + dt.timedelta(minutes=draw(st.sampled_from([0, 0, 0, 7])))
        entities.append({"key": None if key is None else int(key, 16) if record_type == "Integral" else key,
                         "label": label if draw(st.integers(0, 7)) else None})
    writes = [r["write_time"] for g in groups for r in g["rows"]]
    as_of = draw(st.one_of(st.none(), st.integers(0, 40).map(lambda m: BASE + dt.timedelta(minutes=15 * m)),
                           *([st.sampled_from(writes)] if writes else [])))
    return {"record_type": record_type, "groups": groups, "entities": entities, "as_of": as_of,
            "label_kind": draw(st.sampled_from(["timestamp", "string", "epoch"]))}


def _source(group: dict[str, Any], record_type: str) -> SourceTable:
    i = group["index"]
    return SourceTable(
        name=f"group{i}", arn=f"arn:aws:sagemaker:us-east-1:111111111111:feature-group/group{i}",
        account_id="111111111111", region="us-east-1", record_id="rid", event_time="ev",
        event_time_type=group["event_type"],
        features=(("rid", record_type), ("ev", group["event_type"]), ("num", "Integral"), ("txt", "String")),
        database="sagemaker_featurestore", table=f"group{i}_1700000000", table_format="Glue")


def _offline_frame(group: dict[str, Any], record_type: str) -> pd.DataFrame:
    columns = ["rid", "ev", "num", "txt", "api_invocation_time", "write_time", "is_deleted",
               "year", "month", "day", "hour"]
    frame = pd.DataFrame(group["rows"], columns=columns)
    frame["rid"] = frame["rid"].astype("Int64" if record_type == "Integral" else "string")
    frame["ev"] = frame["ev"].astype("float64" if group["event_type"] == "Fractional" else "string")
    frame["num"] = frame["num"].astype("Int64")
    frame["txt"] = frame["txt"].astype("string")
    frame["is_deleted"] = frame["is_deleted"].astype("boolean")
    for column in ("api_invocation_time", "write_time"):
        stamps = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
        frame[column] = stamps.dt.tz_localize(None) if group["naive"] else stamps
    return frame


def _entity_frame(scenario: dict[str, Any]) -> tuple[pd.DataFrame, EntitySource]:
    labels = [e["label"] for e in scenario["entities"]]
    frame = pd.DataFrame({"key": pd.array([e["key"] for e in scenario["entities"]],
                                          dtype="Int64" if scenario["record_type"] == "Integral" else "string")})
    kind = scenario["label_kind"]
    stamps = pd.Series(pd.to_datetime(labels, utc=True), dtype="datetime64[us, UTC]")
    if kind == "string":
        frame["label"] = pd.array([None if x is None else x.isoformat() for x in labels], dtype="string")
    else:
        frame["label"] = stamps
    frame["note"] = [f"n{i}" for i in range(len(frame))]
    frame["_row"] = pd.array(range(len(frame)), dtype="int64")
    epochs = [epoch_seconds(x) for x in labels]
    time_column = None
    if kind == "epoch":
        frame["_t"] = pd.array(epochs, dtype="Float64")
        time_column = "_t"
    known = [e for e in epochs if e is not None]
    time_range = (min(known), max(known)) if known else None
    source = EntitySource(database="scratch", table="entities", key="key", event_time="label",
                          columns=tuple(frame.columns), time_kind="string" if kind == "string" else "timestamp",
                          row_id="_row", time_column=time_column, time_range=time_range)
    return frame, source


def _run_sql(scenario: dict[str, Any], duck: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    record_type = scenario["record_type"]
    entity_frame, entities = _entity_frame(scenario)
    joins, tables, ref_joins = [], {("awsdatacatalog", "scratch", "entities"): entity_frame}, []
    for group in scenario["groups"]:
        source = _source(group, record_type)
        catalog = "central" if group["index"] % 2 == 0 else "awsdatacatalog"
        joins.append(make_join(source, features=["num", "txt"], on="key", entity_columns=entities.columns,
                               data_catalog=catalog, ttl=group["ttl"], prefix=f"g{group['index']}",
                               how=group["how"]))
        tables[(catalog, source.database, source.table)] = _offline_frame(group, record_type)
        rows = [dict(r, write_time=r["write_time"], api_invocation_time=r["api_invocation_time"])
                for r in group["rows"]]
        ref_joins.append(ReferenceJoin(rows=rows, record_id="rid", event_time="ev", features=["num", "txt"],
                                       on="key", ttl_seconds=group["ttl"], prefix=f"g{group['index']}",
                                       how=group["how"]))
    as_of = epoch_seconds(scenario["as_of"]) if scenario["as_of"] is not None else None
    query = PointInTimeQuery(entities=entities, joins=tuple(joins), as_of=as_of)
    result = run_on_duckdb(query.render(), tables, connection=duck)
    assert list(result.columns) == list(query.output_columns)
    assert result[ROW_ID_COLUMN].is_monotonic_increasing
    entity_dicts = [{"key": e["key"], "label": e["label"], "note": f"n{i}"}
                    for i, e in enumerate(scenario["entities"])]
    expected = point_in_time_reference(entity_dicts, event_time="label", joins=ref_joins, as_of=as_of)
    actual = [_normalise(row) for row in result.drop(columns=[ROW_ID_COLUMN, "_row", "_t"], errors="ignore")
              .to_dict("records")]
    return actual, [_normalise(row) for row in expected]


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in row.items():
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            out[name] = None
        elif name == "label":
            out[name] = epoch_seconds(value)
        elif hasattr(value, "item"):
            out[name] = value.item()
        else:
            out[name] = value
    return out


@PROPERTY_SETTINGS
@given(scenario=scenarios())
def test_point_in_time_sql_equals_the_reference_definition(scenario: dict[str, Any], duck: Any) -> None:
    """Left and inner joins, TTLs, as_of, String/Fractional event times and every label-time kind at once;
    with left joins only, additionally exactly one row per entity row in input order."""
    actual, expected = _run_sql(scenario, duck)
    assert actual == expected
    if all(g["how"] == "left" for g in scenario["groups"]):
        assert [r["note"] for r in actual] == [f"n{i}" for i in range(len(scenario["entities"]))]

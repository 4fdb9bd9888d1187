"""DESIGN.md §4 by hand-written cases: each is checked against the reference and against the rendered SQL
(run on DuckDB the way the embedded AWS runs it), so both implement the definition, not each other."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import duckdb
import pandas as pd
import pytest

from featureshare.training.reference import ReferenceJoin, epoch_seconds, point_in_time_reference, run_on_duckdb
from featureshare.training.sql import ROW_ID_COLUMN, EntitySource, PointInTimeQuery, SourceTable, make_join

T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def version(key: str, event_h: float, value: Any, *, api_h: float | None = None, write_h: float | None = None,
            deleted: bool = False) -> dict[str, Any]:
    event = at(event_h)
    return {"id": key, "ev": event.strftime("%Y-%m-%dT%H:%M:%SZ"), "v": None if deleted else value,
            "api_invocation_time": at(event_h if api_h is None else api_h),
            "write_time": at((event_h if api_h is None else api_h) + 0.01 if write_h is None else write_h),
            "is_deleted": deleted}


@pytest.fixture(scope="module")
def duck() -> Iterator[Any]:
    connection = duckdb.connect(":memory:")
    yield connection
    connection.close()


def both(duck: Any, rows: list[dict[str, Any]], entities: list[tuple[str, float | None]], *,
         ttl: float | None = None, as_of: float | None = None, how: str = "left") -> list[tuple[str, Any]]:
    """The (key, v) rows of the reference, after asserting the SQL gives exactly the same."""
    entity_rows = [{"key": k, "t": None if h is None else at(h)} for k, h in entities]
    as_of_epoch = None if as_of is None else epoch_seconds(at(as_of))
    ref = point_in_time_reference(entity_rows, event_time="t", as_of=as_of_epoch, joins=[ReferenceJoin(
        rows=rows, record_id="id", event_time="ev", features=["v"], on="key", ttl_seconds=ttl, how=how)])
    source = SourceTable(name="g", arn="", account_id="111111111111", region="us-east-1", record_id="id",
                         event_time="ev", event_time_type="String",
                         features=(("id", "String"), ("ev", "String"), ("v", "Integral")),
                         database="sagemaker_featurestore", table="g_1")
    frame = pd.DataFrame(entity_rows, columns=["key", "t"]).astype({"t": "datetime64[us, UTC]"})
    frame["row"] = range(len(frame))
    entities = EntitySource(database="scratch", table="e", key="key", event_time="t", columns=("key", "t", "row"),
                            row_id="row")
    join = make_join(source, features=["v"], on="key", entity_columns=entities.columns, ttl=ttl, how=how)
    offline = pd.DataFrame(rows, columns=["id", "ev", "v", "api_invocation_time", "write_time", "is_deleted"])
    offline["v"] = offline["v"].astype("Int64")
    sql = PointInTimeQuery(entities=entities, joins=(join,), as_of=as_of_epoch).render()
    out = run_on_duckdb(sql, {("awsdatacatalog", "scratch", "e"): frame,
                              ("awsdatacatalog", "sagemaker_featurestore", "g_1"): offline}, connection=duck)
    got = [(k, None if pd.isna(v) else int(v)) for k, v in zip(out["key"], out["v"], strict=True)]
    expected = [(r["key"], r["v"]) for r in ref]
    assert got == expected
    assert list(out[ROW_ID_COLUMN]) == sorted(out[ROW_ID_COLUMN])
    return expected


def test_latest_version_at_or_before_the_label_time_wins_and_equal_time_is_included(duck: Any) -> None:
    rows = [version("a", 0, 1), version("a", 2, 2), version("a", 4, 3)]
    assert both(duck, rows, [("a", -1), ("a", 0), ("a", 3), ("a", 4)]) == [
        ("a", None), ("a", 1), ("a", 2), ("a", 3)]


def test_delete_marker_after_label_time_does_not_hide_history(duck: Any) -> None:
    rows = [version("a", 0, 1), version("a", 5, None, deleted=True)]
    assert both(duck, rows, [("a", 1), ("a", 6)]) == [("a", 1), ("a", None)]


def test_version_written_after_a_delete_marker_is_live_again(duck: Any) -> None:
    rows = [version("a", 0, 1), version("a", 1, None, deleted=True), version("a", 2, 7)]
    assert both(duck, rows, [("a", 1.5), ("a", 3)]) == [("a", None), ("a", 7)]


def test_same_event_time_is_decided_by_api_invocation_time_then_write_time(duck: Any) -> None:
    rows = [version("a", 1, 10, api_h=3, write_h=3.5), version("a", 1, 20, api_h=2, write_h=9),
            version("b", 1, 30, api_h=2, write_h=4), version("b", 1, 40, api_h=2, write_h=3)]
    assert both(duck, rows, [("a", 1), ("b", 5)]) == [("a", 10), ("b", 30)]


def test_null_feature_in_the_latest_version_stays_null(duck: Any) -> None:
    rows = [version("a", 0, 1), version("a", 1, None)]
    assert both(duck, rows, [("a", 2)]) == [("a", None)]


def test_ttl_bound_is_inclusive_and_older_versions_are_ignored(duck: Any) -> None:
    rows = [version("a", 0, 1)]
    assert both(duck, rows, [("a", 2), ("a", 2.5)], ttl=7200.0) == [("a", 1), ("a", None)]


def test_ttl_does_not_fall_back_to_an_older_version_when_the_latest_is_deleted(duck: Any) -> None:
    rows = [version("a", 0, 1), version("a", 1, None, deleted=True)]
    assert both(duck, rows, [("a", 1.5)], ttl=7200.0) == [("a", None)]


def test_as_of_hides_late_writes_even_of_old_event_times(duck: Any) -> None:
    rows = [version("a", 0, 1), version("a", 1, 2, api_h=10, write_h=10)]
    assert both(duck, rows, [("a", 5)], as_of=9) == [("a", 1)]
    assert both(duck, rows, [("a", 5)], as_of=10) == [("a", 2)]


def test_inner_join_drops_rows_without_a_live_version_and_keeps_order(duck: Any) -> None:
    rows = [version("a", 0, 1), version("b", 0, 2), version("b", 1, None, deleted=True)]
    assert both(duck, rows, [("b", 2), ("c", 2), ("a", 2), ("b", 0.5)], how="inner") == [("a", 1), ("b", 2)]


def test_every_entity_row_gives_exactly_one_row_even_when_duplicated(duck: Any) -> None:
    rows = [version("a", h, h) for h in range(6)]
    assert both(duck, rows, [("a", 3), ("a", 3), ("z", 3), ("a", 10)]) == [
        ("a", 3), ("a", 3), ("z", None), ("a", 5)]


def test_entity_rows_without_a_label_time_get_no_features(duck: Any) -> None:
    rows = [version("a", 0, 1)]
    assert both(duck, rows, [("a", None), ("a", 1)]) == [("a", None), ("a", 1)]


def test_epoch_seconds_agree_for_strings_datetimes_and_numbers() -> None:
    assert epoch_seconds("2024-05-01T12:00:00.123Z") == epoch_seconds(at(0) + dt.timedelta(milliseconds=123))
    assert epoch_seconds(pd.Timestamp("2024-05-01T12:00:00Z")) == epoch_seconds(at(0)) == 1_714_564_800.0
    assert epoch_seconds(1.5) == 1.5 and epoch_seconds(None) is None

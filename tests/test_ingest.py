"""Ingestion: the embedded AWS end to end (faults injected, offline store checked), plus retry logic with
botocore's Stubber at the AWS boundary."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
import time
from collections import Counter
from typing import Any

import boto3
import botocore.session
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import time_machine
from botocore.stub import Stubber
from ingest_fixtures import Setup, customers, customers_spec

import featureshare.ingest as ingest_module
from featureshare.errors import IngestionError, ValidationError
from featureshare.groups import FeatureGroup, FeatureStore
from featureshare.ingest import MAX_BATCH, IngestReport, backoff_delay, ingest, prepare, writer_client
from featureshare.session import AccountSession
from featureshare.values import format_event_times

logger = logging.getLogger(__name__)


def runtime_calls(group: FeatureGroup, max_in_flight: int = 8) -> Counter:
    """Count runtime operations sent by the ingestion client."""
    calls: Counter = Counter()
    client = writer_client(group.store.session, max_in_flight)
    client.meta.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
    return calls


def offline_rows(setup: Setup, group: FeatureGroup) -> pd.DataFrame:
    """Every Parquet file under the group's ResolvedOutputS3Uri, read with pyarrow (as the central admin)."""
    setup.aws.flush()
    s3 = setup.central_admin.client("s3")
    bucket, _, prefix = group.offline_s3_uri.removeprefix("s3://").partition("/")
    tables = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".parquet"):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                tables.append(pq.read_table(io.BytesIO(body)))
    return pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame()


def expected_offline(df: pd.DataFrame) -> pd.DataFrame:
    """What the offline store must hold for ``df``, computed with the library's own event-time rule."""
    return pd.DataFrame({
        "customer_id": df["customer_id"].astype(object),
        "ts": pd.Series(format_event_times(df["ts"]).values, dtype=object),
        "visits": df["visits"].astype("Int64"),
        "spend": df["spend"].astype("float64"),
        "segment": df["segment"].astype(object),
    }).sort_values("customer_id").reset_index(drop=True)


def actual_offline(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows[["customer_id", "ts", "visits", "spend", "segment"]].astype(
        {"customer_id": object, "ts": object, "visits": "Int64", "spend": "float64", "segment": object})
    return out.sort_values("customer_id").reset_index(drop=True)


def test_20000_rows_with_throttling_and_unprocessed_entries_are_all_written_once(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    df = customers(20_000)
    setup.aws.inject_faults(throttle_rate=0.05, unprocessed_rate=0.02, seed=11)

    report = group.ingest(df, max_in_flight=8, seed=3)

    logger.info("20k ingest with faults: %s", report.summary())
    assert (report.rows_seen, report.rows_written, report.failed) == (20_000, 20_000, 0)
    assert report.throttles == setup.aws.fault_counts["ThrottlingException"] > 0
    assert report.retries >= report.throttles
    assert report.calls == 800 + report.retries
    rows = offline_rows(setup, group)
    assert len(rows) == 20_000
    assert not rows["is_deleted"].any()
    pd.testing.assert_frame_equal(actual_offline(rows), expected_offline(df))


def test_invalid_rows_are_reported_with_positions_and_the_rest_is_written(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    df = customers(10)
    df["customer_id"] = df["customer_id"].astype(object)
    df.loc[2, "customer_id"] = None
    df.loc[5, "ts"] = pd.NaT
    df["visits"] = df["visits"].astype("Float64")
    df.loc[7, "visits"] = 2.5

    report = group.ingest(df)

    assert (report.rows_seen, report.rows_written, report.failed) == (10, 7, 3)
    assert [(f.position, f.code) for f in report.failures] == [
        (2, "MissingRecordIdentifier"), (5, "MissingEventTime"), (7, "InvalidValue")]
    assert report.failures[1].record_id == "c-000005"
    assert "visits: 2.5 is not an integer" in report.failures[2].message
    assert group.get("c-000007") is None and group.get("c-000008") is not None


def test_on_error_raise_sends_nothing_when_any_row_is_invalid(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    df = customers(60)
    df.loc[55, "ts"] = pd.NaT
    calls = runtime_calls(group)

    with pytest.raises(IngestionError, match="nothing was sent") as info:
        group.ingest(df, on_error="raise", chunk_size=20)

    assert [f.position for f in info.value.report.failures] == [55]
    assert sum(calls.values()) == 0
    assert group.get("c-000000") is None


def test_missing_values_are_omitted_from_records(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    df = customers(3)
    df.loc[1, "visits"] = pd.NA
    df.loc[1, "spend"] = np.nan

    group.ingest(df)

    assert set(group.get("c-000001")) == {"customer_id", "ts", "segment"}


def test_iterable_of_dicts_is_read_lazily_in_chunks(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    source = customers(1_000).to_dict("records")
    pulled = 0
    completed = 0
    pulled_at_calls: list[tuple[int, int]] = []

    def rows():
        nonlocal pulled
        for row in source:
            pulled += 1
            yield row

    counting = threading.Lock()  # the two workers finish calls concurrently

    def after_call(**_):
        nonlocal completed
        with counting:
            completed += 1

    def before_call(**_):
        with counting:
            pulled_at_calls.append((pulled, completed))

    client = writer_client(group.store.session, 10)
    client.meta.events.register("before-call.*.BatchWriteRecord", before_call)
    client.meta.events.register("after-call.*.BatchWriteRecord", after_call)

    chunk_size, max_in_flight = 100, 2
    report = group.ingest(rows(), chunk_size=chunk_size, max_in_flight=max_in_flight)

    assert report.rows_written == 1_000
    # Memory is bounded by one chunk plus the queued batches (two per worker), not by the input:
    # the reader only gets ahead of the writers by that much, whenever a call starts.
    ahead = chunk_size + 2 * max_in_flight * MAX_BATCH
    assert pulled_at_calls[0][0] <= ahead < len(source)
    assert all(p <= ahead + MAX_BATCH * done for p, done in pulled_at_calls)


def test_iterable_of_dataframes_keeps_global_row_positions(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    df = customers(30)
    df["customer_id"] = df["customer_id"].astype(object)
    df.loc[25, "customer_id"] = None

    report = group.ingest([df.iloc[:10], df.iloc[10:]], chunk_size=7)

    assert report.rows_written == 29
    assert [f.position for f in report.failures] == [25]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_failures_are_written_to_failures_path(setup: Setup, name: str, tmp_path, suffix):
    group = setup.ensure(customers_spec(name))
    df = customers(5)
    df.loc[3, "ts"] = pd.NaT
    path = tmp_path / f"failed{suffix}"

    report = group.ingest(df, failures_path=path)

    assert report.failures_path == str(path)
    written = (pd.read_parquet(path) if suffix == ".parquet"
               else pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()]))
    assert written["position"].tolist() == [3]
    assert written["code"].tolist() == ["MissingEventTime"]
    assert written["record_id"].tolist() == ["c-000003"]


def test_columns_that_are_not_features_are_rejected_before_sending(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    calls = runtime_calls(group)
    with pytest.raises(ValidationError, match="'extra' is not a feature") as info:
        group.ingest(customers(3).assign(extra=1))
    assert info.value.field == "columns"
    assert sum(calls.values()) == 0


def test_naive_event_times_need_an_explicit_timezone(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    df = customers(3)
    df["ts"] = df["ts"].dt.tz_convert("Asia/Tokyo").dt.tz_localize(None)

    with pytest.raises(ValidationError, match="never guessed"):
        group.ingest(df)
    group.ingest(df, timezone="Asia/Tokyo")

    assert group.get("c-000000")["ts"] == format_event_times(customers(3)["ts"]).values[0]


@pytest.mark.parametrize(("option", "value", "field"), [
    ("max_in_flight", 0, "max_in_flight"), ("on_error", "ignore", "on_error"),
    ("target_stores", ["Elsewhere"], "target_stores"), ("ttl", dt.timedelta(milliseconds=5), "ttl"),
    ("failures_path", "failed.csv", "failures_path"), ("processes", 0, "processes"),
])
def test_invalid_options_are_rejected_before_anything_is_read(option, value, field):
    group, _ = stubbed()
    with pytest.raises(ValidationError) as info:
        group.ingest(frame(1), **{option: value})
    assert info.value.field == field


def test_data_of_the_wrong_kind_is_rejected():
    group, _ = stubbed()
    with pytest.raises(ValidationError, match="cannot ingest"):
        group.ingest("customers.csv")
    with pytest.raises(ValidationError, match="items must be DataFrames or dicts"):
        group.ingest([1, 2])


def test_online_only_target_store_writes_nothing_offline(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    group.ingest(customers(5), target_stores=["OnlineStore"])
    assert group.get("c-000004") is not None
    assert offline_rows(setup, group).empty


def test_put_record_mode_writes_every_row(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    calls = runtime_calls(group)
    report = group.ingest(customers(30), batch=False)
    assert report.rows_written == 30
    assert calls == Counter({"PutRecord": 30})


def test_progress_bar_is_shown_only_when_asked(setup: Setup, name: str, capsys):
    group = setup.ensure(customers_spec(name))
    group.ingest(customers(5))
    assert "rows" not in capsys.readouterr().err
    group.ingest(customers(5), progress=True)
    assert "5/5" in capsys.readouterr().err


def test_credentials_that_expire_mid_ingest_are_refreshed_and_nothing_is_lost(setup: Setup, name: str):
    group = setup.ensure(customers_spec(name))
    assume_calls: list[str] = []
    setup.consumer_admin.events.register("before-call.sts.AssumeRole", lambda **_: assume_calls.append("x"))
    df = customers(2_000)
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=True) as traveller:
        moved: list[bool] = []

        def jump_past_expiry(**_: Any) -> None:
            if not moved:
                moved.append(True)
                traveller.shift(dt.timedelta(hours=2))  # the 1-hour credentials are now expired

        writer_client(group.store.session, 10).meta.events.register(
            "before-call.*.BatchWriteRecord", jump_past_expiry)
        report = group.ingest(df, max_in_flight=4)

    assert (report.rows_written, report.failed) == (2_000, 0)
    assert len(assume_calls) == 1, assume_calls  # one fresh AssumeRole after the jump, shared by all threads
    assert len(offline_rows(setup, group)) == 2_000


# ------------------------------------------------------------------ retry logic, stubbed at the AWS boundary

class FakeGroup(FeatureGroup):
    """A FeatureGroup built from a describe reply (no AWS call); its store's runtime client is stubbed."""


_CORE = botocore.session.get_session()  # shared so service models are loaded once, not per test


def stubbed(features: dict[str, str] | None = None) -> tuple[FeatureGroup, Stubber]:
    session = AccountSession(boto3.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1",
                                           botocore_session=_CORE))
    features = features or {"id": "String", "ts": "String", "x": "Integral"}
    description = {"FeatureGroupName": "g",
                   "FeatureGroupArn": "arn:aws:sagemaker:us-east-1:111111111111:feature-group/g",
                   "RecordIdentifierFeatureName": "id", "EventTimeFeatureName": "ts",
                   "FeatureDefinitions": [{"FeatureName": k, "FeatureType": v} for k, v in features.items()],
                   "OnlineStoreConfig": {"EnableOnlineStore": True}}
    group = FakeGroup(FeatureStore(session), description)
    client = writer_client(session, 10)
    stubber = Stubber(client)
    stubber.activate()
    return group, stubber


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "ts": ["2024-01-01T00:00:00Z"] * n, "x": range(n)})


def entry(i: int) -> dict[str, Any]:
    return {"FeatureGroupName": "arn:aws:sagemaker:us-east-1:111111111111:feature-group/g",
            "Record": [{"FeatureName": "id", "ValueAsString": f"r{i}"},
                       {"FeatureName": "ts", "ValueAsString": "2024-01-01T00:00:00Z"},
                       {"FeatureName": "x", "ValueAsString": str(i)}]}


def test_per_entry_errors_that_are_not_retryable_are_reported_with_their_row_positions():
    group, stubber = stubbed()
    stubber.add_response("batch_write_record", {
        "Errors": [{"Entry": entry(1), "ErrorCode": "ValidationError", "ErrorMessage": "bad record"},
                   {"Entry": entry(2), "ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}],
        "UnprocessedEntries": [entry(3)]})
    stubber.add_response("batch_write_record", {"Errors": [], "UnprocessedEntries": []},
                         {"Entries": [entry(2), entry(3)]})

    report = ingest(group, frame(4), max_in_flight=1, base_delay=0.001)

    assert (report.rows_written, report.failed, report.retries, report.throttles, report.calls) == (3, 1, 1, 1, 2)
    assert [(f.position, f.record_id, f.code, f.message) for f in report.failures] == [
        (1, "r1", "ValidationError", "bad record")]
    stubber.assert_no_pending_responses()


def test_identical_rows_in_one_batch_are_each_counted_once_through_errors_and_retries():
    group, stubber = stubbed()
    same = entry(7)
    df = pd.DataFrame({"id": ["r7"] * 4, "ts": ["2024-01-01T00:00:00Z"] * 4, "x": [7] * 4})
    # One of the four is refused, two are returned for a retry, one of those again; the service echoes
    # entries, so nothing tells the identical rows apart but their count.
    stubber.add_response("batch_write_record", {
        "Errors": [{"Entry": same, "ErrorCode": "ValidationError", "ErrorMessage": "bad record"},
                   {"Entry": same, "ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}],
        "UnprocessedEntries": [same]})
    stubber.add_response("batch_write_record", {"Errors": [], "UnprocessedEntries": [same]},
                         {"Entries": [same, same]})
    stubber.add_response("batch_write_record", {"Errors": [], "UnprocessedEntries": []}, {"Entries": [same]})

    report = ingest(group, df, max_in_flight=1, base_delay=0.001)

    assert (report.rows_written, report.failed, report.retries, report.calls) == (3, 1, 2, 3)
    assert [(f.record_id, f.code) for f in report.failures] == [("r7", "ValidationError")]
    stubber.assert_no_pending_responses()


class _TopOfRange:
    """A jitter source that always picks the top of its range."""

    def uniform(self, low: float, high: float) -> float:
        return high


def test_backoff_doubles_from_base_up_to_cap_with_full_jitter():
    assert [backoff_delay(_TopOfRange(), a, base=0.05, cap=0.3) for a in range(1, 5)] == [0.1, 0.2, 0.3, 0.3]
    assert all(0 <= backoff_delay(np.random.default_rng(a), 3, base=1, cap=100) <= 8 for a in range(20))


def test_throttled_and_5xx_calls_are_retried_with_backoff(monkeypatch):
    group, stubber = stubbed()
    stubber.add_client_error("batch_write_record", "ThrottlingException", http_status_code=400)
    stubber.add_client_error("batch_write_record", "SomethingBroke", http_status_code=503)
    stubber.add_client_error("batch_write_record", "InternalFailure", http_status_code=500)
    stubber.add_response("batch_write_record", {"Errors": [], "UnprocessedEntries": []})
    delays: list[tuple[int, float, float]] = []
    monkeypatch.setattr(ingest_module, "backoff_delay",
                        lambda rng, attempt, *, base, cap: delays.append((attempt, base, cap)) or 0.0)

    report = ingest(group, frame(2), max_in_flight=1, base_delay=0.001, max_delay=0.003)

    assert (report.rows_written, report.failed, report.retries, report.throttles) == (2, 0, 3, 1)
    assert delays == [(1, 0.001, 0.003), (2, 0.001, 0.003), (3, 0.001, 0.003)]


def test_entries_still_unprocessed_after_max_attempts_are_failures_not_silent_drops():
    group, stubber = stubbed()
    for _ in range(3):
        stubber.add_response("batch_write_record", {"Errors": [], "UnprocessedEntries": [entry(0)]})

    report = ingest(group, frame(2), max_in_flight=1, max_attempts=3, base_delay=0.001)

    assert (report.rows_written, report.failed) == (1, 1)
    assert report.failures[0].code == "Unprocessed" and report.failures[0].position == 0


def test_a_call_failing_with_a_non_retryable_error_fails_its_rows_once():
    group, stubber = stubbed()
    stubber.add_client_error("batch_write_record", "AccessDeniedException", "not allowed", http_status_code=403)

    with pytest.raises(IngestionError, match="2 of 2 records were not written") as info:
        ingest(group, frame(2), max_in_flight=1, on_error="raise")

    assert [(f.position, f.code, f.message) for f in info.value.report.failures] == [
        (0, "AccessDeniedException", "not allowed"), (1, "AccessDeniedException", "not allowed")]


def test_falls_back_to_put_record_where_batch_write_is_unavailable():
    group, stubber = stubbed()
    stubber.add_client_error("batch_write_record", "UnknownOperationException", http_status_code=404)
    stubber.add_response("put_record", {})
    stubber.add_client_error("put_record", "ThrottlingException", http_status_code=400)
    stubber.add_response("put_record", {})

    report = ingest(group, frame(2), max_in_flight=1, base_delay=0.001)

    assert (report.rows_written, report.failed, report.throttles) == (2, 0, 1)
    stubber.assert_no_pending_responses()


def test_batches_have_at_most_25_entries():
    group, stubber = stubbed()
    sizes: list[int] = []
    writer_client(group.store.session, 10).meta.events.register(
        "before-parameter-build.*.BatchWriteRecord", lambda params, **_: sizes.append(len(params["Entries"])))
    for _ in range(3):
        stubber.add_response("batch_write_record", {"Errors": [], "UnprocessedEntries": []})

    ingest(group, frame(60), max_in_flight=1)

    assert sizes == [25, 25, 10]


@pytest.mark.parametrize("options", [{"base_delay": -1}, {"max_delay": "5"}])
def test_bad_backoff_delays_are_rejected_before_anything_is_sent(options):
    group, stubber = stubbed()
    name = next(iter(options))
    with pytest.raises(ValidationError, match=name) as info:
        ingest(group, frame(1), **options)
    assert info.value.field == name
    stubber.assert_no_pending_responses()


def test_prepare_converts_types_without_trailing_zero_and_omits_missing_values():
    group, _ = stubbed({"id": "Integral", "ts": "Fractional", "x": "Fractional"})
    df = pd.DataFrame({"id": pd.Series([1, 2], dtype="Int64"), "ts": [1.7e9, 1.7e9 + 0.5], "x": [0.1, None]})

    entries, failures = prepare(df, group, start=10)

    assert failures == []
    assert [e.position for e in entries] == [10, 11]
    assert entries[0].record == [{"FeatureName": "id", "ValueAsString": "1"},
                                 {"FeatureName": "ts", "ValueAsString": "1700000000.0"},
                                 {"FeatureName": "x", "ValueAsString": "0.1"}]
    assert [v["FeatureName"] for v in entries[1].record] == ["id", "ts"]


def test_a_lone_surrogate_in_a_large_record_does_not_stop_the_sizing():
    group, _ = stubbed({"id": "String", "ts": "Fractional", "text": "String"})
    big = "\ud800" + "é" * 100_000  # over the size check's cheap bound, with a value UTF-8 cannot encode
    df = pd.DataFrame({"id": ["a", "b"], "ts": [1.7e9, 1.7e9],
                       "text": pd.Series([big, big * 2], dtype=object)})  # pyarrow strings refuse it

    entries, failures = prepare(df, group, start=0)

    assert [e.position for e in entries] == [0]  # 200,005 bytes: sent, Feature Store judges the surrogate
    assert [(f.position, f.code) for f in failures] == [(1, "RecordTooLarge")]


def test_report_rates_and_summary():
    report = IngestReport(group="g", rows_seen=10, rows_written=10, elapsed_s=2.0)
    assert report.rows_per_s == 5.0 and report.ok
    assert "10/10 rows written" in report.summary()
    assert report.failures_frame().columns.tolist() == ["position", "record_id", "event_time", "code", "message"]


def test_ingest_time_is_measured_once_per_call():
    group, stubber = stubbed()
    stubber.add_response("batch_write_record", {"Errors": [], "UnprocessedEntries": []})
    started = time.monotonic()
    report = ingest(group, frame(1), max_in_flight=1)
    assert 0 < report.elapsed_s <= time.monotonic() - started

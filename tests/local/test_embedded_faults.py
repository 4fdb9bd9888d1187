"""Injected faults of the embedded Feature Store runtime: rates, reproducibility, latency, counts."""

from __future__ import annotations

import time

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from featureshare.errors import ValidationError

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
CALLS = 300


@pytest.fixture
def runtime(central, group_request):
    central.client("sagemaker").create_feature_group(**group_request("faulty", offline=False))
    return central.client("sagemaker-featurestore-runtime", config=NO_RETRIES)


def _outcomes(runtime, make_record, calls=CALLS):
    outcomes = []
    for i in range(calls):
        try:
            runtime.put_record(FeatureGroupName="faulty", Record=make_record(f"u{i}", "2024-01-02T00:00:00Z"))
            outcomes.append(("ok", 200))
        except ClientError as exc:
            outcomes.append((exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]))
    return outcomes


def test_errors_appear_at_the_configured_rates_with_aws_codes(embedded_aws, runtime, make_record):
    embedded_aws.inject_faults(throttle_rate=0.2, error_rate=0.1, seed=7)

    outcomes = _outcomes(runtime, make_record)

    throttled = outcomes.count(("ThrottlingException", 400))
    failed = outcomes.count(("ServiceUnavailable", 503)) + outcomes.count(("InternalFailure", 500))
    assert set(outcomes) <= {("ok", 200), ("ThrottlingException", 400), ("ServiceUnavailable", 503),
                             ("InternalFailure", 500)}
    # binomial(300, p): 4 standard deviations of slack
    assert abs(throttled - 0.2 * CALLS) <= 4 * (CALLS * 0.2 * 0.8) ** 0.5
    assert abs(failed - 0.1 * CALLS) <= 4 * (CALLS * 0.1 * 0.9) ** 0.5
    counts = embedded_aws.fault_counts
    assert counts.get("ThrottlingException", 0) == throttled
    assert counts.get("ServiceUnavailable", 0) + counts.get("InternalFailure", 0) == failed


def test_the_same_seed_reproduces_the_same_faults(embedded_aws, runtime, make_record):
    embedded_aws.inject_faults(throttle_rate=0.3, error_rate=0.2, seed=42)
    first = _outcomes(runtime, make_record, calls=60)
    embedded_aws.inject_faults(throttle_rate=0.3, error_rate=0.2, seed=42)
    second = _outcomes(runtime, make_record, calls=60)

    assert first == second
    assert len(set(first)) > 1


def test_batch_write_leaves_entries_unprocessed_at_the_configured_rate(embedded_aws, runtime, make_record):
    embedded_aws.inject_faults(unprocessed_rate=0.3, seed=3)
    unprocessed, written = 0, []
    for batch in range(12):
        entries = [{"FeatureGroupName": "faulty", "Record": make_record(f"b{batch}-{i}", "2024-01-02T00:00:00Z")}
                   for i in range(25)]
        response = runtime.batch_write_record(Entries=entries)
        skipped = {e["Record"][0]["ValueAsString"] for e in response["UnprocessedEntries"]}
        unprocessed += len(skipped)
        written += [e["Record"][0]["ValueAsString"] for e in entries if e["Record"][0]["ValueAsString"] not in skipped]

    total = 12 * 25
    assert abs(unprocessed - 0.3 * total) <= 4 * (total * 0.3 * 0.7) ** 0.5
    assert embedded_aws.fault_counts["Unprocessed"] == unprocessed
    embedded_aws.clear_faults()
    assert "Record" in runtime.get_record(FeatureGroupName="faulty", RecordIdentifierValueAsString=written[0])


def test_batch_get_returns_unprocessed_identifiers(embedded_aws, runtime, make_record):
    runtime.put_record(FeatureGroupName="faulty", Record=make_record("u1", "2024-01-02T00:00:00Z"))
    embedded_aws.inject_faults(unprocessed_rate=1.0)

    response = runtime.batch_get_record(Identifiers=[{"FeatureGroupName": "faulty",
                                                      "RecordIdentifiersValueAsString": ["u1", "u2"]}])

    assert response["Records"] == []
    assert response["UnprocessedIdentifiers"] == [{"FeatureGroupName": "faulty",
                                                   "RecordIdentifiersValueAsString": ["u1", "u2"]}]


def test_latency_delays_every_runtime_call(embedded_aws, runtime, make_record):
    embedded_aws.inject_faults(latency_ms=50)

    started = time.perf_counter()
    runtime.get_record(FeatureGroupName="faulty", RecordIdentifierValueAsString="u1")

    assert time.perf_counter() - started >= 0.05


def test_faults_do_not_touch_the_control_plane(embedded_aws, central):
    embedded_aws.inject_faults(throttle_rate=1.0)

    assert central.client("sagemaker", config=NO_RETRIES).list_feature_groups()["FeatureGroupSummaries"] == []


def test_out_of_range_rates_are_rejected(embedded_aws):
    with pytest.raises(ValidationError, match="throttle_rate must be within"):
        embedded_aws.inject_faults(throttle_rate=1.5)

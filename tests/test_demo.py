"""`featureshare local demo`: the whole cross-account job on the embedded AWS, as the consumer's execution
role under the bootstrapped policies, with the same output on every run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from featureshare.cli import cli
from featureshare.demo import DEMO_NOW, DemoSummary, run_demo
from featureshare.demo_data import DemoData, generate
from featureshare.training.reference import ReferenceJoin, point_in_time_reference

FEATURES = {"users": ["country", "lifetime_value", "orders"],
            "sessions": ["sessions_7d", "avg_session_minutes"],
            "keywords": ["top_keyword", "keyword_searches"]}


@pytest.fixture(scope="module")
def data() -> DemoData:
    return generate(300, seed=7)


@pytest.fixture(scope="module")
def summary() -> Iterator[DemoSummary]:
    yield run_demo(progress=False)


def offline_rows(frame: pd.DataFrame, features: list[str], deletes: pd.DataFrame | None = None) -> list[dict]:
    """The offline-store rows the demo writes: one per version, plus a delete marker per soft delete; every
    row is written at the demo's frozen clock."""
    stamps = {"api_invocation_time": DEMO_NOW, "write_time": DEMO_NOW}
    rows = [{**record, **stamps, "is_deleted": False} for record in frame.to_dict(orient="records")]
    for record in ([] if deletes is None else deletes.to_dict(orient="records")):
        rows.append({"user_id": record["user_id"], "event_time": record["event_time"], **stamps, "is_deleted": True,
                     **dict.fromkeys(features)})
    return rows


def plain(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def test_demo_acts_as_the_execution_role_and_then_the_central_role(summary: DemoSummary):
    assert summary.execution_identity == \
        "arn:aws:sts::222222222222:assumed-role/SearchSageMakerExecution/featureshare-demo"
    assert summary.central_identity == "arn:aws:sts::111111111111:assumed-role/FeatureShareAccess/featureshare-demo"
    assert summary.team == "search"


def test_every_generated_row_is_ingested_into_two_central_groups_and_one_local_group(summary, data):
    by_name = {g.name: g for g in summary.groups}
    assert [(g.name, g.scope, g.account_id) for g in summary.groups] == [
        ("users", "central", "111111111111"), ("sessions", "central", "111111111111"),
        ("keywords", "local", "222222222222")]
    for name in ("users", "sessions", "keywords"):
        frame = getattr(data, name)
        assert by_name[name].rows_ingested == len(frame)
        assert by_name[name].rows_failed == 0
        assert by_name[name].records == frame["user_id"].nunique()
    assert by_name["sessions"].deletes == len(data.deletes) > 0
    assert by_name["sessions"].event_time_type == "Fractional" and by_name["users"].event_time_type == "String"


def test_training_set_has_one_row_per_entity_row_with_entity_columns_first(summary, data):
    frame = summary.training_set
    assert summary.training_rows == summary.entity_rows == len(data.entities) == len(frame)
    assert list(frame.columns[:3]) == list(data.entities.columns)
    assert list(frame["user_id"]) == list(data.entities["user_id"])
    assert summary.columns == tuple(frame.columns)
    pd.testing.assert_frame_equal(summary.head, frame.head(5))


def test_training_set_equals_the_point_in_time_reference_deletes_included(summary, data):
    joins = [ReferenceJoin(offline_rows(getattr(data, name), features,
                                        data.deletes if name == "sessions" else None),
                           record_id="user_id", event_time="event_time", features=features, on="user_id")
             for name, features in FEATURES.items()]
    expected = point_in_time_reference(data.entities.to_dict(orient="records"), event_time="label_time",
                                       joins=joins)
    columns = [f for features in FEATURES.values() for f in features]

    actual = plain(summary.training_set[columns])

    assert actual == [{c: row[c] for c in columns} for row in expected]
    deleted_after_label = [i for i, row in enumerate(expected) if row["sessions_7d"] is None]
    assert deleted_after_label, "the data should exercise entity rows without a sessions version"


def test_one_query_reads_the_central_catalog_and_the_local_catalog(summary):
    sql = summary.sql.lower()
    assert '"central"."sagemaker_featurestore"' in sql and '"awsdatacatalog"' in sql
    assert {g.table.split(".")[0] for g in summary.groups} == {"central", "awsdatacatalog"}
    assert summary.data_scanned_bytes > 0


def test_training_set_is_written_to_the_consumer_bucket_with_a_manifest(summary):
    assert summary.output_uri.startswith("s3://featureshare-training-222222222222/training-sets/churn-demo/")
    assert summary.manifest_uri.startswith(summary.output_uri.rstrip("/"))
    assert summary.manifest_uri.endswith("_manifest.json")


def test_every_step_ran_under_the_bootstrapped_least_privilege_policies(summary):
    assert summary.iam_enforced
    assert "policies were enforced for every step" in summary.render()


def test_cli_prints_the_summary_and_a_second_run_prints_the_same_numbers(summary):
    result = CliRunner().invoke(cli, ["local", "demo", "--no-progress"])

    assert result.exit_code == 0, result.output
    deterministic = [line for line in result.output.splitlines() if not line.startswith("timings")]
    expected = [line for line in summary.render().splitlines() if not line.startswith("timings")]
    assert deterministic == expected
    assert "timings (vary run to run):" in result.output
    for needle in (summary.execution_identity, summary.central_identity, summary.output_uri,
                   f"bytes scanned: {summary.data_scanned_bytes:,}", "SELECT"):
        assert needle in result.output


def test_cli_rejects_a_demo_too_small_to_mean_anything():
    result = CliRunner().invoke(cli, ["local", "demo", "--users", "5"])

    assert result.exit_code == 2
    assert "--users" in result.output

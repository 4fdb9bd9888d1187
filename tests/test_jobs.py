"""Processing entrypoints (run in-process through their `main(argv)`) and the launcher's request builders."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from featureshare.bootstrap.plan import Bootstrap
from featureshare.config import load_topology
from featureshare.errors import ValidationError
from featureshare.groups import FeatureStore, GroupSpec
from featureshare.jobs import build_dataset as build_job
from featureshare.jobs import ingest as ingest_job
from featureshare.jobs import launcher
from featureshare.local import EmbeddedAWS
from featureshare.session import AccountSession

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "featureshare.example.toml")
SETTINGS = launcher.JobSettings(image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/featureshare:1",
                                role_arn="arn:aws:iam::222222222222:role/SearchSageMakerExecution")


# ------------------------------------------------------------------------------------------- launcher

def test_build_dataset_job_request_is_well_formed_and_runs_the_entrypoint_on_the_shipped_spec() -> None:
    request = launcher.build_dataset_job_request(
        job_name="churn-v1-20240601-030000", spec_s3_uri="s3://training-bucket/jobs/churn/spec/",
        config_s3_uri="s3://training-bucket/jobs/churn/config/", settings=SETTINGS)

    launcher.validate_request("sagemaker", "CreateProcessingJob", request)
    assert request["AppSpecification"]["ContainerEntrypoint"] == [
        "python3", "-m", "featureshare.jobs.build_dataset", "--spec", "/opt/ml/processing/input/spec/spec.toml"]
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert inputs["spec"]["LocalPath"] == "/opt/ml/processing/input/spec"
    assert request["Environment"]["FEATURESHARE_CONFIG"] == (
        inputs["config"]["LocalPath"] + "/featureshare.toml")
    assert request["RoleArn"] == SETTINGS.role_arn


def test_ingest_job_request_shards_its_input_by_s3_key_and_collects_reports() -> None:
    settings = launcher.JobSettings(image_uri=SETTINGS.image_uri, role_arn=SETTINGS.role_arn, instance_count=4)
    request = launcher.ingest_job_request(job_name="ingest-users", group="users",
                                          input_s3_uri="s3://training-bucket/raw/users/",
                                          output_s3_uri="s3://training-bucket/reports/users/", settings=settings)

    launcher.validate_request("sagemaker", "CreateProcessingJob", request)
    assert request["ProcessingInputs"][0]["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 4
    assert request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"] == launcher.INGEST_OUTPUT_DIR


def test_schedule_request_targets_create_processing_job_with_a_new_job_name_per_run() -> None:
    job = launcher.build_dataset_job_request(job_name="churn-v1-20240601-030000",
                                             spec_s3_uri="s3://training-bucket/jobs/churn/spec/", settings=SETTINGS,
                                             run_id=launcher.SCHEDULED_TIME)
    request = launcher.schedule_request(name="churn-nightly", expression="cron(0 3 * * ? *)", job_request=job,
                                        scheduler_role_arn="arn:aws:iam::222222222222:role/Scheduler")

    launcher.validate_request("scheduler", "CreateSchedule", request)
    assert request["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
    sent = json.loads(request["Target"]["Input"])
    assert sent["ProcessingJobName"].endswith("-<aws.scheduler.execution-id>")
    assert sent["AppSpecification"]["ContainerEntrypoint"][-2:] == ["--run-id", "<aws.scheduler.scheduled-time>"]
    assert {k: v for k, v in sent.items() if k != "ProcessingJobName"} == {
        k: v for k, v in job.items() if k != "ProcessingJobName"}


def test_a_malformed_request_is_caught_by_botocores_model_before_sending() -> None:
    request = launcher.build_dataset_job_request(job_name="x", spec_s3_uri="s3://training-bucket/spec/",
                                                 settings=SETTINGS)
    del request["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"]
    request["StoppingCondition"]["MaxRuntimeInSeconds"] = "an hour"

    with pytest.raises(ValidationError, match="not well-formed") as info:
        launcher.validate_request("sagemaker", "CreateProcessingJob", request)
    assert len(info.value.problems) == 2


def test_job_requests_name_every_argument_that_is_not_an_s3_uri() -> None:
    with pytest.raises(ValidationError, match="spec_s3_uri='training-bucket/s/'") as info:
        launcher.build_dataset_job_request(job_name="j", spec_s3_uri="training-bucket/s/", settings=SETTINGS)
    assert info.value.field == "spec_s3_uri"
    with pytest.raises(ValidationError) as info:
        launcher.ingest_job_request(job_name="j", group="users", input_s3_uri="s3://Bad_Bucket/raw/",
                                    output_s3_uri="/tmp/reports", settings=SETTINGS)
    assert [p.split("=")[0] for p in info.value.problems] == ["input_s3_uri", "output_s3_uri"]
    assert "'Bad_Bucket' is not a bucket name" in info.value.problems[0]
    with pytest.raises(ValidationError, match="config_s3_uri='s3://b'"):
        launcher.build_dataset_job_request(job_name="j", spec_s3_uri="s3://training-bucket/s/", settings=SETTINGS,
                                           config_s3_uri="s3://b")


def test_invalid_settings_and_schedules_list_every_problem() -> None:
    bad = launcher.JobSettings(image_uri="", role_arn="SearchRole", instance_type="m5.large", instance_count=0)
    with pytest.raises(ValidationError, match="invalid processing job") as info:
        launcher.build_dataset_job_request(job_name="-bad-", spec_s3_uri="s3://training-bucket/s/", settings=bad)
    assert {p.split("=")[0] for p in info.value.problems} == {"image_uri", "role_arn", "instance_type",
                                                             "instance_count", "job_name"}
    with pytest.raises(ValidationError, match="expression"):
        launcher.schedule_request(name="n", expression="every night", job_request={},
                                  scheduler_role_arn=SETTINGS.role_arn)


@given(prefix=st.text(min_size=0, max_size=120),
       when=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 1, 1),
                         timezones=st.just(dt.UTC)))
def test_job_names_are_always_valid_processing_job_names(prefix: str, when: dt.datetime) -> None:
    name = launcher.job_name(prefix, when)
    assert launcher._JOB_NAME_RE.match(name) and len(name) <= 63


@given(text=st.text(min_size=0, max_size=120))
def test_any_schedule_name_yields_a_valid_job_name_prefix_and_per_run_job_name(text: str) -> None:
    prefix = launcher.job_name_prefix(text)
    assert launcher._JOB_NAME_RE.match(prefix) and len(prefix) <= 46
    per_run = f"{prefix}-{launcher.EXECUTION_ID}".replace(launcher.EXECUTION_ID, launcher._SAMPLE_EXECUTION_ID)
    assert launcher._JOB_NAME_RE.match(per_run)


def test_a_schedule_name_cut_at_a_dash_still_gives_a_valid_job_name() -> None:
    assert launcher.job_name_prefix("a" * 45 + "-b") == "a" * 45


# ------------------------------------------------------------------------------------ sharding, reports

def test_shards_split_the_sorted_files_disjointly_and_cover_them_all(tmp_path: Path) -> None:
    for i in range(7):
        (tmp_path / f"part-{i}.csv").write_text("x\n")
    (tmp_path / "notes.txt").write_text("ignored")
    shards = [ingest_job.shard_files(tmp_path, ingest_job.resolve_shard(3, f"algo-{k}", tmp_path / "none"))
              for k in (1, 2, 3)]

    names = [sorted(p.name for p in shard) for shard in shards]
    assert names[0] == ["part-0.csv", "part-3.csv", "part-6.csv"]
    assert sorted(n for shard in names for n in shard) == [f"part-{i}.csv" for i in range(7)]


def test_the_current_host_comes_from_sagemakers_resource_config(tmp_path: Path) -> None:
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    assert ingest_job.resolve_shard(2, None, config) == ingest_job.Shard("algo-2", 1, 2)
    with pytest.raises(ValidationError, match="not one of the 2 hosts"):
        ingest_job.resolve_shard(2, "algo-9", config)


# ------------------------------------------------------------------------------------ entrypoints on AWS

@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAWS]:
    """In-process embedded AWS, bootstrapped from the example topology; the process's default credentials
    are the consumer's (as a processing container's would be)."""
    with EmbeddedAWS() as embedded, pytest.MonkeyPatch.context() as env:
        topology = load_topology(EXAMPLE)
        sessions = {"central": AccountSession(embedded.admin_session("central")),
                    "search": AccountSession(embedded.admin_session("consumer"))}
        Bootstrap(topology, sessions, create_execution_roles=True).apply()
        key, secret = embedded.credentials("consumer")
        env.setenv("AWS_ACCESS_KEY_ID", key)
        env.setenv("AWS_SECRET_ACCESS_KEY", secret)
        env.setenv("FEATURESHARE_CONFIG", EXAMPLE)
        yield embedded


def users(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"u{i:04d}" for i in range(start, start + n)],
                         "ts": pd.date_range("2024-05-01", periods=n, freq="min", tz="UTC"),
                         "visits": pd.array(range(start, start + n), dtype="Int64")})


@pytest.fixture(scope="module")
def central_group(aws: EmbeddedAWS) -> str:
    _, central = build_job.job_sessions(None)
    assert central is not None and central.team == "search"
    topology = load_topology(EXAMPLE)
    FeatureStore(central).ensure_group(GroupSpec.from_dataframe("job_users", users(1), record_id="user_id",
                                                                event_time="ts"),
                                       offline_s3_uri=topology.central.offline_s3_uri,
                                       role_arn=topology.central.offline_store_role_arn)
    return "job_users"


def test_two_instances_ingest_their_shards_and_the_merged_report_counts_every_row(aws, central_group,
                                                                                  tmp_path) -> None:
    data, out = tmp_path / "data", tmp_path / "reports"
    data.mkdir()
    for i in range(5):
        users(40, start=40 * i).to_parquet(data / f"part-{i}.parquet")

    codes = [ingest_job.main(["--group", central_group, "--input", str(data), "--output", str(out),
                              "--instance-count", "2", "--current-host", host]) for host in ("algo-1", "algo-2")]

    assert codes == [0, 0]
    per_host = {p.name: json.loads(p.read_text()) for p in sorted(out.glob("report-*.json"))}
    assert [r["rows_written"] for r in per_host.values()] == [120, 80]
    merged = ingest_job.merge_reports(sorted(out.glob("report-*.json")))
    assert (merged.rows_seen, merged.rows_written, merged.failed) == (200, 200, 0)
    _, central = build_job.job_sessions(None)
    assert FeatureStore(central).group(central_group).get("u0199")["visits"] == 199


def test_failed_records_make_the_ingest_job_exit_11_with_them_in_its_report(aws, central_group, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "bad.csv").write_text("user_id,ts,visits\nok1,2024-05-01T00:00:00Z,1\nbad,2024-05-01T00:00:00Z,many\n")

    code = ingest_job.main(["--group", central_group, "--input", str(data), "--output", str(tmp_path)])

    report = json.loads((tmp_path / "report-algo-1.json").read_text())
    assert code == 11
    assert (report["rows_written"], report["failed"]) == (1, 1)
    assert report["failures"][0]["record_id"] == "bad"


def test_ingest_job_errors_exit_with_the_clis_codes(aws, central_group, tmp_path, caplog) -> None:
    assert ingest_job.main(["--group", "no-such-group", "--input", str(tmp_path)]) == 7
    assert "no-such-group" in caplog.text
    assert ingest_job.main(["--group", central_group, "--input", str(tmp_path / "missing")]) == 4
    assert ingest_job.main(["--group", central_group, "--input", str(tmp_path),
                            "--config", str(tmp_path / "none.toml")]) == 3


def test_merging_reports_of_different_groups_is_refused(tmp_path: Path) -> None:
    from featureshare.ingest import IngestReport

    paths = [ingest_job.write_report(IngestReport(group=g, rows_seen=1, rows_written=1), tmp_path, g)
             for g in ("a", "b")]
    with pytest.raises(ValidationError, match="different groups"):
        ingest_job.merge_reports(paths)


def test_build_dataset_job_fails_cleanly_on_a_bad_or_missing_spec(aws, tmp_path, caplog) -> None:
    assert build_job.main(["--spec", str(tmp_path / "missing.toml")]) == 3
    (tmp_path / "bad.toml").write_text('entities = "labels.csv"\nkey = "id"\n')
    assert build_job.main(["--spec", str(tmp_path / "bad.toml")]) == 4
    assert "event_time" in caplog.text and "groups" in caplog.text


def test_build_dataset_job_writes_each_scheduled_run_under_its_own_prefix(aws, central_group, tmp_path) -> None:
    _, central = build_job.job_sessions(None)
    group = FeatureStore(central).group(central_group)
    assert group.ingest(users(3, start=500)).ok
    aws.flush()
    (tmp_path / "labels.csv").write_text("user_id,label_time\nu0500,2024-05-02T00:00:00Z\nu0501,2024-04-01T00:00:00Z\n")
    (tmp_path / "spec.toml").write_text(f'name = "nightly"\nentities = "labels.csv"\nkey = "user_id"\n'
                                        f'event_time = "label_time"\n[[groups]]\nname = "{central_group}"\n')
    result_file = tmp_path / "result.json"

    code = build_job.main(["--spec", str(tmp_path / "spec.toml"), "--run-id", "2024-06-01T03:00:00Z",
                           "--result", str(result_file)])

    assert code == 0
    summary = json.loads(result_file.read_text())
    assert summary["location"] == "s3://featureshare-training-222222222222/training-sets/nightly/run=2024-06-01T030000Z/"
    assert summary["query_execution_id"] and summary["row_count"] == 2
    bucket, _, prefix = summary["location"][len("s3://"):].partition("/")
    manifest = json.loads(aws.admin_session("consumer").client("s3").get_object(
        Bucket=bucket, Key=f"{prefix}_manifest.json")["Body"].read())
    assert manifest["query_execution_id"] == summary["query_execution_id"]

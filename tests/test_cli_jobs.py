"""`featureshare jobs submit|schedule` on the embedded AWS: dry runs print the request and send nothing; real
runs upload the spec and create the processing job / schedule (moto records both)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result

from featureshare.cli import cli
from featureshare.dataset_spec import DatasetSpec, EntitiesRef, load_spec
from featureshare.jobs import launcher
from featureshare.local import EmbeddedAWS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "featureshare.example.toml")
BUCKET = "featureshare-training-222222222222"
ROLE = "arn:aws:iam::222222222222:role/SearchSageMakerExecution"
IMAGE = "222222222222.dkr.ecr.us-east-1.amazonaws.com/featureshare:1"


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAWS]:
    """In-process embedded AWS; the CLI's default credentials are the consumer administrator's."""
    with EmbeddedAWS() as embedded, pytest.MonkeyPatch.context() as env:
        key, secret = embedded.credentials("consumer")
        env.setenv("AWS_ACCESS_KEY_ID", key)
        env.setenv("AWS_SECRET_ACCESS_KEY", secret)
        embedded.admin_session("consumer").client("s3").create_bucket(Bucket=BUCKET)
        yield embedded


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    pd.DataFrame({"customer_id": ["c1"], "label_time": pd.to_datetime(["2024-06-01"], utc=True)}).to_parquet(
        tmp_path / "labels.parquet")
    path = tmp_path / "churn.toml"
    path.write_text('name = "churn-v1"\nentities = "labels.parquet"\nkey = "customer_id"\nevent_time = "label_time"\n'
                    '[[groups]]\nname = "sessions"\nttl = "30d"\n')
    return path


def fs(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", EXAMPLE, *args])


def s3_keys(aws: EmbeddedAWS, prefix: str = "featureshare-jobs/") -> list[str]:
    listed = aws.admin_session("consumer").client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_submit_dry_run_prints_a_valid_request_and_sends_nothing(aws, spec_file) -> None:
    result = fs("--json", "jobs", "submit", str(spec_file), "--image", IMAGE, "--role", ROLE, "--dry-run")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    launcher.validate_request("sagemaker", "CreateProcessingJob", data["request"])
    assert data["request"]["ProcessingJobName"].startswith("churn-v1-")
    assert [u["to"].rsplit("/", 2)[-2] for u in data["uploads"]] == ["entities", "spec", "config"]
    assert s3_keys(aws) == []
    assert aws.admin_session("consumer").client("sagemaker").list_processing_jobs()["ProcessingJobSummaries"] == []
    human = fs("jobs", "submit", str(spec_file), "--image", IMAGE, "--role", ROLE, "--dry-run")
    assert "dry run: would upload" in human.stdout and '"ProcessingJobName"' in human.stdout


def test_submit_uploads_a_self_contained_spec_and_creates_the_processing_job(aws, spec_file) -> None:
    result = fs("--json", "jobs", "submit", str(spec_file), "--image", IMAGE, "--role", ROLE,
                "--instance-type", "ml.m5.xlarge", "--name", "churn-submit")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    job_name = data["request"]["ProcessingJobName"]
    described = aws.admin_session("consumer").client("sagemaker").describe_processing_job(ProcessingJobName=job_name)
    assert described["ProcessingJobArn"] == data["processing_job_arn"]
    assert described["AppSpecification"]["ContainerEntrypoint"][2] == "featureshare.jobs.build_dataset"
    assert described["RoleArn"] == ROLE and described["ProcessingInputs"] == data["request"]["ProcessingInputs"]
    # moto 5.2.5 does not keep ProcessingResources: the sent request carries the instance type.
    assert data["request"]["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.xlarge"

    s3 = aws.admin_session("consumer").client("s3")
    root = f"featureshare-jobs/{job_name}/"
    assert s3_keys(aws, root) == [f"{root}config/featureshare.toml", f"{root}entities/labels.parquet",
                                  f"{root}spec/spec.toml"]
    shipped = DatasetSpec.from_dict(tomllib.loads(s3.get_object(Bucket=BUCKET, Key=f"{root}spec/spec.toml")["Body"]
                                                  .read().decode()))
    original = load_spec(spec_file)
    assert shipped.entities == EntitiesRef("s3", f"s3://{BUCKET}/{root}entities/labels.parquet")
    assert shipped.output == f"s3://{BUCKET}/training-sets/churn-v1/"
    assert shipped.groups == original.groups


def test_schedule_dry_run_and_real_run_create_a_schedule_targeting_create_processing_job(aws, spec_file) -> None:
    args = ["jobs", "schedule", str(spec_file), "--cron", "cron(0 3 * * ? *)", "--image", IMAGE, "--role", ROLE,
            "--timezone", "Europe/Berlin"]
    dry = fs("--json", *args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    launcher.validate_request("scheduler", "CreateSchedule", json.loads(dry.stdout)["request"])
    assert aws.admin_session("consumer").client("scheduler").list_schedules()["Schedules"] == []

    sent = fs("--json", *args)

    assert sent.exit_code == 0, sent.output
    schedule = aws.admin_session("consumer").client("scheduler").get_schedule(Name="featureshare-churn-v1")
    assert schedule["Arn"] == json.loads(sent.stdout)["schedule_arn"]
    assert schedule["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"
    assert schedule["Target"]["Arn"] == launcher.SCHEDULER_TARGET_ARN
    job = json.loads(schedule["Target"]["Input"])
    assert job["ProcessingJobName"] == f"featureshare-churn-v1-{launcher.EXECUTION_ID}"
    assert "featureshare-jobs/featureshare-churn-v1/spec/" in json.dumps(job["ProcessingInputs"])


@pytest.mark.parametrize(("extra", "code", "message"), [
    (["--role", "SearchRole"], 4, "is not an IAM role ARN"),
    (["--role", "arn:aws:iam::999999999999:role/Other"], 3, "no consumer named '999999999999'"),
    (["--role", ROLE, "--instance-type", "huge"], 4, "instance_type='huge'"),
])
def test_submit_user_errors_are_one_line_with_the_error_class_exit_code(aws, spec_file, extra, code,
                                                                        message) -> None:
    result = fs("jobs", "submit", str(spec_file), "--image", IMAGE, *extra, "--dry-run")
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr.splitlines()[0]
    assert "Traceback" not in result.output


def test_schedule_with_a_bad_expression_or_spec_fails_before_anything_is_sent(aws, spec_file, tmp_path) -> None:
    scheduler = aws.admin_session("consumer").client("scheduler")
    before = scheduler.list_schedules()["Schedules"]
    bad_cron = fs("jobs", "schedule", str(spec_file), "--cron", "every night", "--image", IMAGE, "--role", ROLE,
                  "--name", "bad-cron")
    assert bad_cron.exit_code == 4 and "cron(...)" in bad_cron.stderr
    (tmp_path / "bad.toml").write_text('key = "id"\n')
    bad_spec = fs("jobs", "schedule", str(tmp_path / "bad.toml"), "--cron", "rate(1 day)", "--image", IMAGE,
                  "--role", ROLE)
    assert bad_spec.exit_code == 4 and "invalid dataset spec" in bad_spec.stderr
    assert scheduler.list_schedules()["Schedules"] == before
    assert s3_keys(aws, "featureshare-jobs/bad-cron/") == []


def test_a_spec_whose_entities_file_is_missing_cannot_be_submitted(aws, spec_file) -> None:
    (spec_file.parent / "labels.parquet").unlink()
    result = fs("jobs", "submit", str(spec_file), "--image", IMAGE, "--role", ROLE, "--dry-run")
    assert result.exit_code == 4 and "does not exist" in result.stderr and "Traceback" not in result.output


def test_a_missing_required_option_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["jobs", "submit", "spec.toml", "--role", ROLE])
    assert result.exit_code == 2 and "Missing option '--image'" in result.output


@pytest.mark.parametrize("command", [["jobs"], ["jobs", "submit"], ["jobs", "schedule"]])
def test_jobs_help_has_examples(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output

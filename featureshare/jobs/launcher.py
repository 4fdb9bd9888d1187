"""Request builders for running featureshare entrypoints as SageMaker Processing jobs, now or on a schedule.

Every function here is pure: it returns the plain request dict (``CreateProcessingJob``, EventBridge Scheduler
``CreateSchedule``) and sends nothing; the caller sends it in one line (``featureshare jobs submit`` and
``featureshare jobs schedule`` do, or print it with ``--dry-run``). :func:`validate_request` checks a request
against botocore's own service model before it is sent.

Example::

    settings = JobSettings(image_uri="1234.dkr.ecr.us-east-1.amazonaws.com/featureshare:1",
                           role_arn="arn:aws:iam::222222222222:role/SearchSageMakerExecution")
    request = build_dataset_job_request(job_name="churn-v1-20240601-030000",
                                        spec_s3_uri="s3://bucket/jobs/churn-v1/spec/",
                                        config_s3_uri="s3://bucket/jobs/churn-v1/config/", settings=settings)
    session.client("sagemaker").create_processing_job(**request)

Limits: the scheduled job's name is ``<prefix>-<aws.scheduler.execution-id>`` (EventBridge Scheduler fills in
the id at each run, so runs never collide); validation with botocore checks shapes, types, required members
and lengths, not AWS's regex patterns or service-side limits (instance quotas, image access).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from featureshare.config import ROLE_ARN_RE
from featureshare.errors import ValidationError
from featureshare.s3uri import split_s3_uri

__all__ = [
    "CONFIG_DIR",
    "CONFIG_FILE",
    "INGEST_INPUT_DIR",
    "INGEST_OUTPUT_DIR",
    "SCHEDULED_TIME",
    "SCHEDULER_TARGET_ARN",
    "SPEC_DIR",
    "SPEC_FILE",
    "JobSettings",
    "build_dataset_job_request",
    "ingest_job_request",
    "job_name",
    "job_name_prefix",
    "schedule_request",
    "validate_request",
]

PROCESSING_ROOT = "/opt/ml/processing"
SPEC_DIR = f"{PROCESSING_ROOT}/input/spec"
SPEC_FILE = "spec.toml"
CONFIG_DIR = f"{PROCESSING_ROOT}/input/config"
CONFIG_FILE = "featureshare.toml"
INGEST_INPUT_DIR = f"{PROCESSING_ROOT}/input/data"
INGEST_OUTPUT_DIR = f"{PROCESSING_ROOT}/output/reports"
#: EventBridge Scheduler's universal target for SageMaker CreateProcessingJob.
SCHEDULER_TARGET_ARN = "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
EXECUTION_ID = "<aws.scheduler.execution-id>"
#: The run's scheduled time (e.g. ``2024-06-01T03:00:00Z``), filled in by EventBridge Scheduler at each run.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
#: What EventBridge Scheduler substitutes for ``EXECUTION_ID`` looks like this (16 characters).
_SAMPLE_EXECUTION_ID = "d32c5kddcf5bb8c3"

_JOB_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_SCHEDULE_NAME_RE = re.compile(r"^[0-9a-zA-Z-_.]{1,64}$")
_CRON_RE = re.compile(r"^(cron\([^()]+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\)|at\([0-9T:-]+\))$")
_INSTANCE_RE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")


@dataclass(frozen=True)
class JobSettings:
    """How the processing container runs: image, execution role, instances, limits, environment and tags."""

    image_uri: str
    role_arn: str
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime_seconds: int = 3600
    environment: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        problems = []
        if not self.image_uri or len(self.image_uri) > 255 or any(c.isspace() for c in self.image_uri):
            problems.append(f"image_uri={self.image_uri!r}: must be a container image URI (ECR)")
        if not ROLE_ARN_RE.match(self.role_arn or ""):
            problems.append(f"role_arn={self.role_arn!r}: must be an IAM role ARN (the job's execution role)")
        if not _INSTANCE_RE.match(self.instance_type or ""):
            problems.append(f"instance_type={self.instance_type!r}: must look like 'ml.m5.large'")
        if not 1 <= self.instance_count <= 100:
            problems.append(f"instance_count={self.instance_count!r}: must be 1-100")
        if not 1 <= self.volume_size_gb <= 16384:
            problems.append(f"volume_size_gb={self.volume_size_gb!r}: must be 1-16384")
        if not 1 <= self.max_runtime_seconds <= 777600:
            problems.append(f"max_runtime_seconds={self.max_runtime_seconds!r}: must be 1-777600 (9 days)")
        return problems


def job_name_prefix(text: str, limit: int = 46) -> str:
    """``text`` made into the start of a processing job name: letters, digits and inner '-', ≤ ``limit``
    characters, never starting or ending with '-' (``featureshare`` if nothing is left)."""
    cleaned = re.sub(r"[^a-zA-Z0-9-]+", "-", text).strip("-")
    return cleaned[:limit].rstrip("-") or "featureshare"


def job_name(prefix: str, when: dt.datetime) -> str:
    """A valid, unique-per-second processing job name: ``<prefix>-YYYYMMDD-HHMMSS`` (≤ 63 characters)."""
    return f"{job_name_prefix(prefix, 47)}-{when.astimezone(dt.UTC):%Y%m%d-%H%M%S}"


def _s3_input(name: str, uri: str, local_path: str, *, sharded: bool = False) -> dict[str, Any]:
    return {"InputName": name, "S3Input": {
        "S3Uri": uri, "LocalPath": local_path, "S3DataType": "S3Prefix", "S3InputMode": "File",
        "S3DataDistributionType": "ShardedByS3Key" if sharded else "FullyReplicated"}}


def _s3_problems(**uris: str | None) -> list[str]:
    """One problem per argument that is not an ``s3://bucket/prefix`` URI (by :func:`split_s3_uri`'s rule)."""
    problems = []
    for name, uri in uris.items():
        try:
            split_s3_uri(uri, field=name, require_key=False)
        except ValidationError as exc:
            problems.append(exc.args[0])
    return problems


def _check(problems: list[str], what: str) -> None:
    if problems:
        raise ValidationError(f"invalid {what}: " + "; ".join(problems), field=problems[0].split("=", 1)[0],
                              problems=problems)


def _base_request(name: str, settings: JobSettings, entrypoint: Sequence[str], inputs: list[dict[str, Any]],
                  config_s3_uri: str | None) -> dict[str, Any]:
    problems = settings.problems()
    if not (_JOB_NAME_RE.match(name) or (name.endswith(EXECUTION_ID)
                                         and _JOB_NAME_RE.match(name.replace(EXECUTION_ID, _SAMPLE_EXECUTION_ID)))):
        problems.append(f"job_name={name!r}: must be 1-63 characters of letters, digits and '-'")
    if config_s3_uri is not None:
        problems += _s3_problems(config_s3_uri=config_s3_uri)
    _check(problems, "processing job")
    environment = dict(settings.environment)
    if config_s3_uri is not None:
        inputs = [*inputs, _s3_input("config", config_s3_uri, CONFIG_DIR)]
        environment.setdefault("FEATURESHARE_CONFIG", f"{CONFIG_DIR}/{CONFIG_FILE}")
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "ProcessingResources": {"ClusterConfig": {
            "InstanceCount": settings.instance_count, "InstanceType": settings.instance_type,
            "VolumeSizeInGB": settings.volume_size_gb}},
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_seconds},
        "AppSpecification": {"ImageUri": settings.image_uri, "ContainerEntrypoint": list(entrypoint)},
        "RoleArn": settings.role_arn,
        "ProcessingInputs": inputs,
    }
    if environment:
        request["Environment"] = environment
    tags = {"managed-by": "featureshare", **settings.tags}
    request["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return request


def build_dataset_job_request(*, job_name: str, spec_s3_uri: str, settings: JobSettings,
                              config_s3_uri: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """``CreateProcessingJob`` running ``python3 -m featureshare.jobs.build_dataset`` on the spec.

    ``spec_s3_uri`` is the S3 prefix holding ``spec.toml`` (downloaded to ``/opt/ml/processing/input/spec``);
    ``config_s3_uri`` the prefix holding the topology ``featureshare.toml`` (``FEATURESHARE_CONFIG`` is set).
    ``run_id`` (e.g. :data:`SCHEDULED_TIME` for schedules) makes each run write under ``<output>/run=<id>/``.
    """
    _check(_s3_problems(spec_s3_uri=spec_s3_uri), "processing job")
    entrypoint = ["python3", "-m", "featureshare.jobs.build_dataset", "--spec", f"{SPEC_DIR}/{SPEC_FILE}"]
    if run_id:
        entrypoint += ["--run-id", run_id]
    return _base_request(job_name, settings, entrypoint, [_s3_input("spec", spec_s3_uri, SPEC_DIR)], config_s3_uri)


def ingest_job_request(*, job_name: str, group: str, input_s3_uri: str, output_s3_uri: str,
                       settings: JobSettings, config_s3_uri: str | None = None,
                       account: str = "central") -> dict[str, Any]:
    """``CreateProcessingJob`` running ``python3 -m featureshare.jobs.ingest`` over an S3 prefix of csv/parquet
    files, sharded across ``settings.instance_count`` instances (``ShardedByS3Key``); each instance uploads
    its report JSON to ``output_s3_uri`` (merge them with :func:`featureshare.jobs.ingest.merge_reports`)."""
    _check(_s3_problems(input_s3_uri=input_s3_uri, output_s3_uri=output_s3_uri), "processing job")
    entrypoint = ["python3", "-m", "featureshare.jobs.ingest", "--group", group, "--account", account,
                  "--input", INGEST_INPUT_DIR, "--output", INGEST_OUTPUT_DIR]
    request = _base_request(job_name, settings, entrypoint,
                            [_s3_input("data", input_s3_uri, INGEST_INPUT_DIR, sharded=True)], config_s3_uri)
    request["ProcessingOutputConfig"] = {"Outputs": [{"OutputName": "reports", "S3Output": {
        "S3Uri": output_s3_uri, "LocalPath": INGEST_OUTPUT_DIR, "S3UploadMode": "EndOfJob"}}]}
    return request


def schedule_request(*, name: str, expression: str, job_request: Mapping[str, Any], scheduler_role_arn: str,
                     timezone: str = "UTC", description: str = "", group_name: str | None = None,
                     enabled: bool = True) -> dict[str, Any]:
    """EventBridge Scheduler ``CreateSchedule`` invoking ``CreateProcessingJob`` with ``job_request``.

    The job name becomes ``<name prefix>-<aws.scheduler.execution-id>``, so every run gets its own job.
    ``scheduler_role_arn`` is the role the scheduler assumes: it needs ``sagemaker:CreateProcessingJob``,
    ``sagemaker:AddTags`` and ``iam:PassRole`` on the job's execution role, and must trust
    ``scheduler.amazonaws.com``.
    """
    problems = []
    if not _SCHEDULE_NAME_RE.match(name or ""):
        problems.append(f"name={name!r}: must be 1-64 characters of letters, digits, '-', '_' and '.'")
    if not _CRON_RE.match(expression or ""):
        problems.append(f"expression={expression!r}: must be cron(...), rate(...) or at(...), "
                        "e.g. 'cron(0 3 * * ? *)'")
    if not ROLE_ARN_RE.match(scheduler_role_arn or ""):
        problems.append(f"scheduler_role_arn={scheduler_role_arn!r}: must be an IAM role ARN")
    _check(problems, "schedule")
    base = job_name_prefix(str(job_request.get("ProcessingJobName", name)))
    scheduled_job = {**job_request, "ProcessingJobName": f"{base}-{EXECUTION_ID}"}
    request: dict[str, Any] = {
        "Name": name,
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED" if enabled else "DISABLED",
        "Target": {"Arn": SCHEDULER_TARGET_ARN, "RoleArn": scheduler_role_arn,
                   "Input": json.dumps(scheduled_job, sort_keys=True),
                   "RetryPolicy": {"MaximumRetryAttempts": 2}},
    }
    if description:
        request["Description"] = description[:512]
    if group_name:
        request["GroupName"] = group_name
    return request


def validate_request(service: str, operation: str, request: Mapping[str, Any]) -> None:
    """Check ``request`` against botocore's service model for ``service``/``operation``; raise
    :class:`ValidationError` listing every problem botocore finds (shapes, types, required, lengths)."""
    import botocore.session
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    try:
        validate_parameters(dict(request), model.input_shape)
    except ParamValidationError as exc:
        lines = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()]
        raise ValidationError(f"{service}:{operation} request is not well-formed: " + "; ".join(lines),
                              field=operation, problems=lines or [str(exc)]) from exc
    if operation == "CreateSchedule":
        inner = json.loads(request["Target"]["Input"])
        inner["ProcessingJobName"] = inner["ProcessingJobName"].replace(EXECUTION_ID, _SAMPLE_EXECUTION_ID)
        validate_request("sagemaker", "CreateProcessingJob", inner)

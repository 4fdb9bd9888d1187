"""``featureshare jobs submit|schedule``: run a dataset spec as a SageMaker Processing job, now or on a schedule.

What is sent (in the account of the job's execution role, with your own credentials):
1. the spec (as ``spec.toml``; a local entities file is uploaded beside it and the spec points at its S3 copy)
   and the topology file go to ``s3://<consumer training bucket>/featureshare-jobs/<name>/``;
2. ``CreateProcessingJob`` (submit) or EventBridge Scheduler ``CreateSchedule`` targeting
   ``CreateProcessingJob`` (schedule), both built by :mod:`featureshare.jobs.launcher` and validated against
   botocore's model first.
``--dry-run`` uploads and sends nothing and prints the request(s).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from botocore import xform_name

from featureshare import errors
from featureshare.config import ROLE_ARN_RE, ConsumerAccount
from featureshare.dataset_spec import DatasetSpec, EntitiesRef, load_spec
from featureshare.jobs import launcher
from featureshare.s3uri import split_s3_uri

if TYPE_CHECKING:
    from featureshare.cli import Context

__all__ = ["jobs"]


@dataclass(frozen=True)
class _Staged:
    """What a job needs in S3 before it starts: (local file or text, s3 uri) pairs and the prefixes."""

    uploads: list[tuple[Path | str, str]]
    spec_prefix: str
    config_prefix: str | None


def _consumer_of(obj: Context, role_arn: str) -> ConsumerAccount:
    match = ROLE_ARN_RE.match(role_arn)
    if not match:
        raise errors.ValidationError(f"--role {role_arn!r} is not an IAM role ARN", field="--role", value=role_arn,
                                     hint="pass the SageMaker execution role, arn:aws:iam::<account>:role/<name>")
    return obj.topology.consumer(match.group(1))


def _stage(obj: Context, spec: DatasetSpec, consumer: ConsumerAccount, folder: str) -> _Staged:
    root = f"s3://{consumer.training_bucket}/featureshare-jobs/{folder}/"
    uploads: list[tuple[Path | str, str]] = []
    job_spec = replace(spec, output=spec.output_uri(consumer.training_s3_uri))
    if spec.entities.kind == "file":
        if not Path(spec.entities.value).is_file():
            raise errors.ValidationError(f"entities file {spec.entities.value!r} does not exist", field="entities",
                                         value=spec.entities.value, hint="the job needs it uploaded beside the spec")
        target = f"{root}entities/{Path(spec.entities.value).name}"
        uploads.append((Path(spec.entities.value), target))
        job_spec = replace(job_spec, entities=EntitiesRef("s3", target))
    uploads.append((job_spec.to_toml(), f"{root}spec/{launcher.SPEC_FILE}"))
    config_prefix = None
    if obj.topology.source:
        config_prefix = f"{root}config/"
        uploads.append((Path(obj.topology.source), f"{config_prefix}{launcher.CONFIG_FILE}"))
    return _Staged(uploads, f"{root}spec/", config_prefix)


def _upload(obj: Context, staged: _Staged) -> None:
    s3 = obj.source_session().client("s3")
    for source, uri in staged.uploads:
        bucket, key = split_s3_uri(uri)
        body = source.read_bytes() if isinstance(source, Path) else source.encode("utf-8")
        with errors.translate_client_error(action="s3:PutObject", resource=uri):
            s3.put_object(Bucket=bucket, Key=key, Body=body)


def _send(obj: Context, staged: _Staged, request: dict[str, Any], call: tuple[str, str, str], *, resource: str,
          dry_run: bool, human: Callable[[dict[str, Any]], str]) -> None:
    """Validate ``request`` for ``call`` (service, operation, ARN field of the reply); unless ``dry_run``, upload
    what is staged and send it; emit the plan (and the new ARN, as the snake_case of its field)."""
    service, operation, arn_field = call
    launcher.validate_request(service, operation, request)
    data: dict[str, Any] = {"dry_run": dry_run, "uploads": _plan(staged), "request": request}
    if not dry_run:
        _upload(obj, staged)
        with errors.translate_client_error(action=f"{service}:{operation}", resource=resource):
            reply = getattr(obj.source_session().client(service), xform_name(operation))(**request)
        data[xform_name(arn_field)] = reply[arn_field]
    obj.emit(data, human)


def _job_options(func: Any) -> Any:
    for option in reversed([
        click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False)),
        click.option("--image", "image_uri", required=True, help="Container image with featureshare installed."),
        click.option("--role", "role_arn", required=True, help="The job's execution role (consumer account)."),
        click.option("--instance-type", default="ml.m5.large", show_default=True),
        click.option("--volume-gb", type=click.IntRange(1, 16384), default=30, show_default=True),
        click.option("--max-runtime", type=click.IntRange(60, 777600), default=3600, show_default=True,
                     help="Seconds before SageMaker stops the job."),
        click.option("--name", help="Job/schedule name prefix (default: the spec's name)."),
        click.option("--dry-run", is_flag=True, help="Print the request; upload and send nothing."),
    ]):
        func = option(func)
    return func


def _settings(image_uri: str, role_arn: str, instance_type: str, volume_gb: int, max_runtime: int
              ) -> launcher.JobSettings:
    return launcher.JobSettings(image_uri=image_uri, role_arn=role_arn, instance_type=instance_type,
                                volume_size_gb=volume_gb, max_runtime_seconds=max_runtime)


def _plan(staged: _Staged) -> list[dict[str, str]]:
    return [{"from": "spec (rewritten)" if isinstance(src, str) else str(src), "to": uri}
            for src, uri in staged.uploads]


@click.group()
def jobs() -> None:
    """Run a dataset spec as a SageMaker Processing job now (submit) or on a schedule (schedule).

    \b
    Examples:
      featureshare jobs submit churn.toml --image 1234.dkr.ecr.us-east-1.amazonaws.com/featureshare:1 \\
          --role arn:aws:iam::222222222222:role/SearchSageMakerExecution --dry-run
      featureshare jobs schedule churn.toml --cron "cron(0 3 * * ? *)" --image ... --role ...
    """


@jobs.command("submit")
@_job_options
@click.pass_obj
def jobs_submit(obj: Context, spec_path: str, image_uri: str, role_arn: str, instance_type: str, volume_gb: int,
                max_runtime: int, name: str | None, dry_run: bool) -> None:
    """Start a Processing job that builds SPEC's training set (python -m featureshare.jobs.build_dataset).

    \b
    Example:
      featureshare jobs submit churn.toml --image 1234.dkr.ecr.us-east-1.amazonaws.com/featureshare:1 \\
          --role arn:aws:iam::222222222222:role/SearchSageMakerExecution --instance-type ml.m5.xlarge
    """
    spec = load_spec(spec_path)
    consumer = _consumer_of(obj, role_arn)
    job_name = launcher.job_name(name or spec.name, dt.datetime.now(dt.UTC))
    staged = _stage(obj, spec, consumer, job_name)
    request = launcher.build_dataset_job_request(
        job_name=job_name, spec_s3_uri=staged.spec_prefix, config_s3_uri=staged.config_prefix,
        settings=_settings(image_uri, role_arn, instance_type, volume_gb, max_runtime))
    _send(obj, staged, request, ("sagemaker", "CreateProcessingJob", "ProcessingJobArn"), resource=job_name,
          dry_run=dry_run, human=_human_submit)


def _human_dry_run(data: dict[str, Any], operation: str) -> str:
    import json

    uploads = "\n".join(f"  {u['from']} -> {u['to']}" for u in data["uploads"])
    return f"dry run: would upload\n{uploads}\nand send {operation}:\n" + json.dumps(data["request"], indent=2)


def _human_submit(data: dict[str, Any]) -> str:
    if data["dry_run"]:
        return _human_dry_run(data, "CreateProcessingJob")
    return f"started processing job {data['request']['ProcessingJobName']}: {data['processing_job_arn']}"


@jobs.command("schedule")
@_job_options
@click.option("--cron", "expression", required=True, help='Schedule expression, e.g. "cron(0 3 * * ? *)".')
@click.option("--timezone", default="UTC", show_default=True, help="Time zone of the cron expression.")
@click.option("--scheduler-role", help="Role EventBridge Scheduler assumes to start the job (default: --role; "
                                       "it must trust scheduler.amazonaws.com and may pass the execution role).")
@click.pass_obj
def jobs_schedule(obj: Context, spec_path: str, image_uri: str, role_arn: str, instance_type: str, volume_gb: int,
                  max_runtime: int, name: str | None, dry_run: bool, expression: str, timezone: str,
                  scheduler_role: str | None) -> None:
    """Create an EventBridge Scheduler schedule that starts SPEC's Processing job (a new job per run; each run
    writes under <output>/run=<scheduled time>/).

    \b
    Example:
      featureshare jobs schedule churn.toml --cron "cron(0 3 * * ? *)" \\
          --image 1234.dkr.ecr.us-east-1.amazonaws.com/featureshare:1 \\
          --role arn:aws:iam::222222222222:role/SearchSageMakerExecution --dry-run
    """
    spec = load_spec(spec_path)
    consumer = _consumer_of(obj, role_arn)
    schedule_name = re.sub(r"[^0-9a-zA-Z_.-]+", "-", name or f"featureshare-{spec.name}")[:64]
    staged = _stage(obj, spec, consumer, schedule_name)
    job_request = launcher.build_dataset_job_request(
        job_name=launcher.job_name_prefix(schedule_name),
        spec_s3_uri=staged.spec_prefix,
        config_s3_uri=staged.config_prefix, run_id=launcher.SCHEDULED_TIME,
        settings=_settings(image_uri, role_arn, instance_type, volume_gb, max_runtime))
    request = launcher.schedule_request(name=schedule_name, expression=expression, job_request=job_request,
                                        scheduler_role_arn=scheduler_role or role_arn, timezone=timezone,
                                        description=f"featureshare build-dataset {spec.name}")
    _send(obj, staged, request, ("scheduler", "CreateSchedule", "ScheduleArn"), resource=schedule_name,
          dry_run=dry_run, human=_human_schedule)


def _human_schedule(data: dict[str, Any]) -> str:
    if data["dry_run"]:
        return _human_dry_run(data, "CreateSchedule")
    return f"scheduled {data['request']['Name']} ({data['request']['ScheduleExpression']}): {data['schedule_arn']}"

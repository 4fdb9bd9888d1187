"""The shared benchmark harness: repetitions and medians, the machine record, results as JSON and markdown,
and the two-account world every benchmark runs in.

Every figure a benchmark reports is a ratio (or a count) against a baseline measured **in the same run**, on
the same embedded AWS, with the same data: absolute times on a shared 2-core machine are noise. The machine
record (cores, CPU model, load average before and after, package versions) says how noisy.

The embedded AWS runs in a **child process** (``python -m benchmarks.harness serve``): like real AWS it does
not share the benchmark's interpreter (and GIL), and the child answers a few commands on stdin (inject
latency, flush the offline store, stop). IAM enforcement is off there: policy evaluation is emulator cost
that every side would pay equally, and it is not what these benchmarks compare.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
IDS = ("P1", "P1b", "P2", "P2b", "P3", "P4", "P5", "M1")
RESULT_KEYS = ("value", "baseline", "target", "met", "params")
PACKAGES = ("featureshare", "boto3", "botocore", "moto", "duckdb", "pandas", "pyarrow", "sqlglot", "time-machine",
            "sagemaker-core", "sagemaker-mlops")
OFFLINE_BUCKET = "central-offline-store"
OFFLINE_URI = f"s3://{OFFLINE_BUCKET}/features"
TRAINING_BUCKET = "consumer-training"
LOCAL_OFFLINE_URI = f"s3://{TRAINING_BUCKET}/local-features"
CENTRAL_CATALOG = "central"
TEAM = "search"
_SERVE_TIMEOUT_S = 60.0


# ------------------------------------------------------------------------------------------------ options

@dataclass(frozen=True)
class Options:
    """How big and how often: ``quick`` is the ``make test`` smoke run (tiny sizes, one repetition, one
    embedded AWS for every benchmark, no SageMaker SDK child processes: only the harness is being tested)."""

    quick: bool = False

    @property
    def repeats(self) -> int:
        return 1 if self.quick else 5

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


# ------------------------------------------------------------------------------------------------ results

@dataclass
class Result:
    """One benchmark id. ``value`` is the figure the ``target`` applies to (a ratio, an efficiency, a count);
    ``baseline`` names the baseline and its own measured figure; ``checks`` are correctness checks (all must
    be true for the figure to mean anything); ``skipped`` says why a figure could not be measured."""

    id: str
    what: str
    value: float | None
    baseline: dict[str, Any]
    target: str
    params: dict[str, Any]
    unit: str = ""
    checks: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def met(self) -> bool:
        return self.value is not None and meets(self.value, self.target) and all(self.checks.values())

    def to_json(self) -> dict[str, Any]:
        return {"value": _finite(self.value), "baseline": self.baseline, "target": self.target, "met": self.met,
                "params": self.params, "what": self.what, "unit": self.unit, "checks": self.checks,
                "notes": self.notes, "skipped": self.skipped}


def meets(value: float, target: str) -> bool:
    """``target`` is ``">= 10"``, ``"<= 0.2"``, ... (one comparison)."""
    op, _, number = target.partition(" ")
    bound = float(number)
    return {">=": value >= bound, "<=": value <= bound, ">": value > bound, "<": value < bound,
            "==": value == bound}[op]


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 4)


def failed_result(id_: str, what: str, target: str, exc: BaseException) -> Result:
    """A benchmark that crashed still gets its id in the results, with the error and ``met`` false."""
    return Result(id_, what, None, {}, target, {}, checks={"ran": False}, skipped=f"{type(exc).__name__}: {exc}")


# ------------------------------------------------------------------------------------------------ timing

@dataclass(frozen=True)
class Samples:
    """Wall-clock seconds of each repetition."""

    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def to_json(self) -> list[float]:
        return [round(s, 4) for s in self.seconds]


def repeat(fn: Callable[[int], Any], times: int) -> tuple[Samples, list[Any]]:
    """Run ``fn(i)`` ``times`` times; the wall time of each run and what each returned."""
    seconds, outputs = [], []
    for i in range(times):
        started = time.perf_counter()
        outputs.append(fn(i))
        seconds.append(time.perf_counter() - started)
    return Samples(tuple(seconds)), outputs


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# ------------------------------------------------------------------------------------------------ machine

def machine_record() -> dict[str, Any]:
    """Cores, CPU model, Python, package versions and the load average (other users of the machine)."""
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"nproc": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)), "cpu_model": cpu_model,
            "python": platform.python_version(), "platform": platform.platform(), "packages": versions,
            "loadavg_start": list(os.getloadavg())}


def write_results(results: Sequence[Result], machine: Mapping[str, Any], options: Options,
                  started: dt.datetime, out_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """Write ``latest.json`` and ``latest.md`` (atomically: a reader never sees half a file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = {**machine, "loadavg_end": list(os.getloadavg())}
    document = {"started": started.isoformat(timespec="seconds"), "quick": options.quick,
                "repeats": options.repeats, "machine": machine,
                "results": {r.id: r.to_json() for r in results}}
    json_path, md_path = out_dir / "latest.json", out_dir / "latest.md"
    _write_atomic(json_path, json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")
    _write_atomic(md_path, markdown(document))
    return json_path, md_path


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def markdown(document: Mapping[str, Any]) -> str:
    """The results as a markdown table plus the machine and each id's parameters."""
    machine = document["machine"]
    lines = [f"# featureshare benchmarks ({'quick' if document['quick'] else 'full'} run, "
             f"{document['started']})", "",
             f"Machine: {machine['nproc']} CPUs ({machine['cpu_model'] or 'unknown model'}), Python "
             f"{machine['python']}; load average {_load(machine['loadavg_start'])} at start, "
             f"{_load(machine['loadavg_end'])} at end. Median of {document['repeats']} repetitions; every "
             "figure is a ratio or count against a baseline measured in the same run.", "",
             "| id | what | value | target | met | baseline |", "|---|---|---|---|---|---|"]
    for id_, r in document["results"].items():
        value = "skipped" if r["value"] is None else f"{r['value']:g}{r.get('unit', '')}"
        met = "yes" if r["met"] else "**no**"
        baseline = r["baseline"].get("name", "") if isinstance(r["baseline"], Mapping) else str(r["baseline"])
        lines.append(f"| {id_} | {r['what']} | {value} | {r['target']}{r.get('unit', '')} | {met} | {baseline} |")
    lines.append("")
    for id_, r in document["results"].items():
        lines.append(f"## {id_}: {r['what']}")
        if r.get("skipped"):
            lines.append(f"- not measured: {r['skipped']}")
        for note in r.get("notes", []):
            lines.append(f"- {note}")
        if r.get("checks"):
            lines.append("- checks: " + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in r["checks"].items()))
        lines.append(f"- baseline: `{json.dumps(r['baseline'], default=str)}`")
        lines.append(f"- params: `{json.dumps(r['params'], default=str)}`")
        lines.append("")
    versions = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    lines += ["## Versions", versions, ""]
    return "\n".join(lines)


def _load(values: Sequence[float]) -> str:
    return "/".join(f"{v:.1f}" for v in values)


# ------------------------------------------------------------------------------------------------ server

class ServerProcess:
    """The embedded AWS in a child process (server mode), driven by one-line JSON commands on its stdin."""

    def __init__(self) -> None:
        # Lives as long as the server (closed in close()): a with-block cannot span the object's life.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="featureshare-bench-server-", suffix=".log", delete=False)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.harness", "serve"], cwd=REPO_ROOT, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)
        hello = self._read(_SERVE_TIMEOUT_S)
        self.env: dict[str, str] = hello["env"]
        self.accounts: dict[str, str] = hello["accounts"]
        self.region: str = hello["region"]

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the embedded AWS server did not answer within {timeout:g}s; its log:\n"
                               + self.log_tail())
        return dict(json.loads(line))

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(Path(self._log.name).read_text(errors="replace").splitlines()[-lines:])

    def command(self, op: str, timeout: float = 120.0, **kwargs: Any) -> dict[str, Any]:
        """Send one command (``faults``, ``clear``, ``flush``, ``stats``) and return the reply."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self._proc.stdin.flush()
        reply = self._read(timeout)
        if "error" in reply:
            raise RuntimeError(f"server command {op} failed: {reply['error']}")
        return reply

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(OSError, RuntimeError):
                self.command("stop", timeout=10)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


def _serve() -> None:
    """Child process entry point: run the embedded AWS and obey commands until ``stop`` or end of input."""
    import resource

    from featureshare.local import EmbeddedAWS

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with EmbeddedAWS(server=True, enforce_iam=False) as aws:
        print(json.dumps({"env": aws.env(), "accounts": aws.account_ids, "region": aws.region}), flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            op = request.pop("op")
            try:
                if op == "stop":
                    print(json.dumps({"ok": True}), flush=True)
                    break
                if op == "faults":
                    aws.inject_faults(**request)
                    reply: dict[str, Any] = {"ok": True}
                elif op == "clear":
                    aws.clear_faults()
                    reply = {"ok": True, "counts": aws.fault_counts}
                elif op == "flush":
                    reply = {"ok": True, "rows": aws.flush()}
                elif op == "stats":
                    reply = {"ok": True, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
                else:
                    reply = {"error": f"unknown op {op!r}"}
            except Exception as exc:  # a bad command must not kill the server the benchmark still needs
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(reply, default=str), flush=True)


# ------------------------------------------------------------------------------------------------ world

def profile_session(env: Mapping[str, str], profile: str) -> Any:
    """A boto3 Session of one of the server's ``<account>-admin`` profiles, without touching os.environ."""
    import boto3
    import botocore.session

    core = botocore.session.Session()
    core.set_config_variable("config_file", env["AWS_CONFIG_FILE"])
    core.set_config_variable("credentials_file", env["AWS_SHARED_CREDENTIALS_FILE"])
    core.set_config_variable("profile", profile)
    return boto3.Session(botocore_session=core)


@dataclass
class World:
    """The two accounts as a consumer sees them: its own admin session, the central role it assumes, the
    feature stores of both, and the roles/buckets feature groups need."""

    server: ServerProcess
    central_admin: Any
    consumer_admin: Any
    central: Any            # AccountSession: the consumer's assumed role in the central account
    consumer: Any           # AccountSession: the consumer account itself
    central_store: Any      # FeatureStore(central)
    local_store: Any        # FeatureStore(consumer)
    offline_role_arn: str
    local_offline_role_arn: str
    access_role_arn: str

    @property
    def region(self) -> str:
        return self.server.region

    def ensure_central(self, spec: Any) -> Any:
        return self.central_store.ensure_group(spec, offline_s3_uri=OFFLINE_URI, role_arn=self.offline_role_arn)

    def ensure_local(self, spec: Any) -> Any:
        return self.local_store.ensure_group(spec, offline_s3_uri=LOCAL_OFFLINE_URI,
                                             role_arn=self.local_offline_role_arn, team=TEAM)

    def child_env(self, *, credentials: Any = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a child process: the server's endpoint, and either explicit credentials (e.g. the
        assumed role's, frozen) or the consumer admin profile."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.server.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        if credentials is not None:
            env.update({"AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
                        "AWS_SESSION_TOKEN": credentials.token or ""})
        else:
            env["AWS_PROFILE"] = "consumer-admin"
        env.update(extra or {})
        return env


def _trust(principal: Mapping[str, str]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": dict(principal),
        "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}]})


def build_world(server: ServerProcess) -> World:
    """Buckets, roles and the ``central`` data catalog, then the consumer assumes the central role."""
    from featureshare.groups import FeatureStore
    from featureshare.session import AccountSession, assume_role

    central_admin = profile_session(server.env, "central-admin")
    consumer_admin = profile_session(server.env, "consumer-admin")
    central_id, consumer_id = server.accounts["central"], server.accounts["consumer"]
    central_admin.client("s3").create_bucket(Bucket=OFFLINE_BUCKET)
    consumer_admin.client("s3").create_bucket(Bucket=TRAINING_BUCKET)
    sagemaker = {"Service": "sagemaker.amazonaws.com"}
    offline_role = central_admin.client("iam").create_role(
        RoleName="FeatureStoreOfflineRole", AssumeRolePolicyDocument=_trust(sagemaker))["Role"]["Arn"]
    local_role = consumer_admin.client("iam").create_role(
        RoleName="FeatureStoreOfflineRole", AssumeRolePolicyDocument=_trust(sagemaker))["Role"]["Arn"]
    access_role = central_admin.client("iam").create_role(
        RoleName="FeatureShareAccess", AssumeRolePolicyDocument=_trust({"AWS": f"arn:aws:iam::{consumer_id}:root"}),
        MaxSessionDuration=3600)["Role"]["Arn"]
    consumer_admin.client("athena").create_data_catalog(
        Name=CENTRAL_CATALOG, Type="GLUE", Parameters={"catalog-id": central_id})
    central = assume_role(access_role, source=consumer_admin, tags={"team": TEAM}, session_name="bench",
                          region=server.region)
    consumer = AccountSession(consumer_admin, region=server.region)
    return World(server, central_admin, consumer_admin, central, consumer, FeatureStore(central),
                 FeatureStore(consumer), offline_role, local_role, access_role)


@contextlib.contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore the previous ones."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@contextlib.contextmanager
def world() -> Iterator[World]:
    """A fresh embedded AWS child process and its world; stopped on exit.

    The server's ``AWS_ENDPOINT_URL`` (and config files) are exported while the world exists: featureshare
    has no local-mode branches, so the environment is what points its clients at the embedded AWS.
    """
    server = ServerProcess()
    try:
        with environ(server.env):
            yield build_world(server)
    finally:
        server.close()


# ------------------------------------------------------------------------------------------------ athena

@dataclass(frozen=True)
class QueryRun:
    query_id: str
    state: str
    seconds: float
    scanned_bytes: int
    reason: str = ""
    output: str = ""


def run_query(session: Any, sql: str, *, output: str, timeout: float = 600.0) -> QueryRun:
    """Run one Athena statement in ``session``'s account and wait for it (wall time includes the polling,
    at most 20 ms late). A query that ends FAILED or CANCELLED is returned with its state and reason; one still
    running after ``timeout`` seconds is stopped and raises WaitTimeoutError (a TimeoutError)."""
    from featureshare.errors import QueryFailedError
    from featureshare.training.athena import wait_for

    athena = session.client("athena")
    started = time.perf_counter()
    query_id = athena.start_query_execution(QueryString=sql,
                                            ResultConfiguration={"OutputLocation": output})["QueryExecutionId"]
    try:
        execution = wait_for(athena, query_id, timeout, sleep=lambda _: time.sleep(0.02))
    except QueryFailedError:
        execution = None
    seconds = time.perf_counter() - started
    if execution is None:
        execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    state = execution["Status"]["State"]
    return QueryRun(query_id, state, seconds, int(execution.get("Statistics", {}).get("DataScannedInBytes", 0)),
                    execution["Status"].get("StateChangeReason", ""),
                    execution.get("ResultConfiguration", {}).get("OutputLocation", ""))


def read_parquet_prefix(s3: Any, uri: str) -> Any:
    """All Parquet objects under an ``s3://`` prefix as one pandas DataFrame (through boto3, no s3fs)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    tables = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Size"] == 0 or obj["Key"].endswith((".csv", ".txt")):
                continue
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            tables.append(pq.read_table(io.BytesIO(body)))
    if not tables:
        raise RuntimeError(f"no Parquet objects under {uri}")
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        _serve()
    else:
        sys.exit("usage: python -m benchmarks.harness serve   (used by the benchmarks; not for people)")

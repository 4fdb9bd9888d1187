"""``EmbeddedAWS``: a two-account AWS on moto with a real Feature Store runtime and offline store.

Example::

    from featureshare.local import EmbeddedAWS

    with EmbeddedAWS() as aws:                       # in-process: plain boto3 clients in this process hit it
        central = aws.admin_session("central")
        central.client("s3").create_bucket(Bucket="offline")
        ...
        aws.flush()                                  # buffered offline rows -> Parquet in S3 + Glue partitions

    with EmbeddedAWS(server=True) as aws:            # a real HTTP/1.1 server on 127.0.0.1 (keep-alive)
        subprocess.run([...], env={**os.environ, **aws.env()})   # then `--profile consumer-admin`

Accounts are real moto accounts: each gets an IAM user ``admin`` with an access key, so requests are routed
by access key (assumed-role keys belong to the role's account). ``MOTO_ACCOUNT_ID`` is never set.

IAM is enforced (``enforce_iam=True``, the default; ``aws.enforce_iam = False`` switches it off) for every
principal except the account admins, which stay all-powerful like an account root: trust policies on
AssumeRole, identity policies of roles and users, and bucket / Glue / key policies across accounts -- see
``policy_enforcement`` for what is mapped and its limits. AssumeRole credentials expire as on AWS, enforcement
on or off: once moto's clock (time-machine moves it) passes their ``Expiration`` a call signed with them is
refused with ``ExpiredToken`` / ``ExpiredTokenException``; the admins' keys never expire.

Emulation limits: only one ``EmbeddedAWS`` may run at a time in a process (moto's state is global); see
``featurestore``, ``featurestore_runtime`` and ``offline_store`` for the Feature Store's limits.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
import botocore.loaders
import botocore.session

from featureshare.errors import ConfigError, UnsupportedError
from featureshare.local import athena_service
from featureshare.local import moto_internals as mi
from featureshare.local.faults import FaultConfig, FaultInjector
from featureshare.local.featurestore import FeatureStore
from featureshare.local.featurestore_runtime import FeatureStoreRuntime
from featureshare.local.offline_store import OfflineStore
from featureshare.local.policy_enforcement import PolicyEnforcer

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNTS = {"central": "111111111111", "consumer": "222222222222"}
DEFAULT_REGION = "us-east-1"
ADMIN_USER = "admin"

# Parsing botocore's service models (SageMaker's is several MB) dominates client creation; every session
# made here shares one loader so each model is parsed once per process. A cache, not configuration.
_SHARED_LOADER = botocore.loaders.create_loader()


def _core_session() -> botocore.session.Session:
    core = botocore.session.Session()
    core.register_component("data_loader", _SHARED_LOADER)
    return core


def _check_accounts(accounts: dict[str, str]) -> dict[str, str]:
    problems = [f"account {name!r}: id {account_id!r} is not 12 digits"
                for name, account_id in accounts.items() if not re.fullmatch(r"\d{12}", str(account_id))]
    problems += [f"account name {name!r} must be lowercase letters, digits, '-' or '_'"
                 for name in accounts if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name)]
    if len(set(accounts.values())) != len(accounts):
        problems.append("account ids must be distinct")
    if not accounts:
        problems.append("at least one account is required")
    if problems:
        raise ConfigError(problems[0], problems=problems)
    return dict(accounts)


class EmbeddedAWS:
    """A running embedded AWS; use as a context manager (or ``start()``/``stop()``)."""

    def __init__(self, accounts: dict[str, str] | None = None, region: str = DEFAULT_REGION,
                 server: bool = False, port: int | None = None, enforce_iam: bool = True) -> None:
        self.account_ids: dict[str, str] = _check_accounts(accounts or DEFAULT_ACCOUNTS)
        self.region = region
        self.server = server
        self._port = port or 0
        self._keys: dict[str, tuple[str, str]] = {}
        self._mock: Any = None
        self._server: Any = None
        self._tmpdir: Path | None = None
        self.endpoint_url: str | None = None
        self.startup_seconds: float | None = None
        self.faults = FaultInjector()
        self.feature_store = FeatureStore()
        self.offline_store = OfflineStore(clock=self.feature_store.clock)
        self._runtime = FeatureStoreRuntime(self.feature_store, self.offline_store, self.faults)
        self.policy = PolicyEnforcer(self.feature_store, lambda: [key for key, _ in self._keys.values()],
                                     enabled=enforce_iam)
        self._running = False

    @property
    def enforce_iam(self) -> bool:
        """Whether non-admin principals are held to their policies (switchable while running)."""
        return self.policy.enabled

    @enforce_iam.setter
    def enforce_iam(self, value: bool) -> None:
        self.policy.enabled = bool(value)

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> EmbeddedAWS:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> EmbeddedAWS:
        """Start moto (in-process or server), install the Feature Store and Athena hooks, create the admins."""
        if self._running:
            return self
        started = time.perf_counter()
        mi.check_moto_version()
        mi.install_routes(featurestore_runtime=self._runtime.handle, sagemaker=self.feature_store.handle_sagemaker)
        try:
            mi.set_offline_flusher(self.offline_store.flush)
            mi.set_request_filter(self.policy.filter)
            if self.server:
                mi.reset_backends()
                self._server, port = mi.start_server("127.0.0.1", self._port)
                self.endpoint_url = f"http://127.0.0.1:{port}"
            else:
                self._mock = mi.start_in_process()
            for name, account_id in self.account_ids.items():
                self._keys[name] = mi.create_admin_user(account_id, ADMIN_USER)
            if self.server:
                self._write_profiles()
        except BaseException:
            self._teardown()
            raise
        self._running = True
        self.startup_seconds = time.perf_counter() - started
        logger.info("embedded AWS started in %.3fs (%s)", self.startup_seconds,
                    self.endpoint_url or "in-process")
        return self

    def stop(self) -> None:
        """Stop everything and drop all state; restores moto's routing and the environment."""
        if self._running:
            self._running = False
            self._teardown()

    def _teardown(self) -> None:
        mi.set_offline_flusher(None)
        mi.set_request_filter(None)
        try:
            if self._mock is not None:
                mi.stop_in_process(self._mock)
            if self._server is not None:
                mi.stop_server(self._server)
                mi.reset_backends()
        finally:
            self._mock = self._server = None
            mi.uninstall_routes()
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None

    # ---------------------------------------------------------------- sessions and environment
    def admin_session(self, name: str) -> boto3.Session:
        """A boto3 Session acting as the administrator of account ``name`` (region set; server endpoint set)."""
        if name not in self._keys:
            raise ConfigError(f"unknown account {name!r}; known: {sorted(self.account_ids)}")
        core = _core_session()
        if self.server:
            core.set_config_variable("config_file", str(self._config_path))
            core.set_config_variable("credentials_file", str(self._credentials_path))
            core.set_config_variable("profile", f"{name}-admin")
            return boto3.Session(botocore_session=core)
        key_id, secret = self._keys[name]
        return boto3.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=self.region,
                             botocore_session=core)

    def credentials(self, name: str) -> tuple[str, str]:
        """(access key id, secret) of account ``name``'s administrator."""
        return self._keys[name]

    @property
    def _config_path(self) -> Path:
        assert self._tmpdir is not None
        return self._tmpdir / "config"

    @property
    def _credentials_path(self) -> Path:
        assert self._tmpdir is not None
        return self._tmpdir / "credentials"

    def _write_profiles(self) -> None:
        self._tmpdir = Path(tempfile.mkdtemp(prefix="featureshare-aws-"))
        config, credentials = [], []
        for name, (key_id, secret) in self._keys.items():
            config += [f"[profile {name}-admin]", f"region = {self.region}", f"endpoint_url = {self.endpoint_url}",
                       ""]
            credentials += [f"[{name}-admin]", f"aws_access_key_id = {key_id}",
                            f"aws_secret_access_key = {secret}", ""]
        self._config_path.write_text("\n".join(config))
        self._credentials_path.write_text("\n".join(credentials))
        self._credentials_path.chmod(0o600)

    def env(self) -> dict[str, str]:
        """Environment variables that point any AWS tool (or a child process) at the server."""
        if not self.server or self.endpoint_url is None:
            raise UnsupportedError("env() needs EmbeddedAWS(server=True): an in-process AWS is not reachable "
                                   "from other processes")
        return {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_CONFIG_FILE": str(self._config_path),
                "AWS_SHARED_CREDENTIALS_FILE": str(self._credentials_path),
                "AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}

    # ---------------------------------------------------------------- feature store helpers
    def flush(self) -> int:
        """Write buffered offline-store rows to S3 and Glue; returns how many rows were written."""
        return self.offline_store.flush()

    def inject_faults(self, latency_ms: float = 0, throttle_rate: float = 0.0, error_rate: float = 0.0,
                      unprocessed_rate: float = 0.0, seed: int | None = None) -> None:
        """Make Feature Store runtime calls slow / fail / leave batch items unprocessed at these rates."""
        self.faults.configure(FaultConfig(latency_ms=latency_ms, throttle_rate=throttle_rate,
                                          error_rate=error_rate, unprocessed_rate=unprocessed_rate, seed=seed))

    def clear_faults(self) -> None:
        """Stop injecting faults (``fault_counts`` keeps its totals)."""
        self.faults.clear()

    @contextlib.contextmanager
    def hold_queries(self) -> Iterator[None]:
        """Athena queries stay QUEUED inside this block (released at its end): test what a job does with a
        query that has not finished -- a timeout, a stop -- without racing the engine.

        >>> with aws.hold_queries():  # doctest: +SKIP
        ...     built = training_set.build(session=consumer, output_uri=uri, timeout=0)  # WaitTimeoutError
        """
        athena_service.hold_queries(True)
        try:
            yield
        finally:
            athena_service.hold_queries(False)

    @property
    def fault_counts(self) -> dict[str, int]:
        """Injected faults by kind since the last ``inject_faults``."""
        return self.faults.counts

    def now(self) -> dt.datetime:
        """The emulator's clock (UTC)."""
        return self.feature_store.clock()


def serve(port: int | None = None, accounts: dict[str, str] | None = None,
          region: str = DEFAULT_REGION, enforce_iam: bool = True) -> EmbeddedAWS:
    """Start a server-mode EmbeddedAWS on 127.0.0.1 (``port`` None = a free port) and return it running.

    The caller (``featureshare local serve``) prints ``export`` lines from ``aws.env()`` and calls
    ``aws.stop()`` when interrupted.
    """
    return EmbeddedAWS(accounts=accounts, region=region, server=True, port=port, enforce_iam=enforce_iam).start()

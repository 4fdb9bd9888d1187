"""The whole cross-account job on the embedded two-account AWS (``featureshare local demo``, ``make demo``).

:func:`run_demo` starts an in-process :class:`~featureshare.local.EmbeddedAWS`, bootstraps one central and
one consumer account (team ``search``), then works **as the consumer's execution role** (assumed from the
consumer's administrator with its team tag, as a SageMaker notebook would be): it assumes the central role,
creates the central groups ``users`` and ``sessions`` and the local group ``keywords`` from
:func:`featureshare.demo_data.generate`, ingests their histories, soft-deletes a few records, and builds a
point-in-time training set joining the three groups in one Athena query (``catalog`` strategy), written as
Parquet + manifest to the consumer's training bucket. It returns a :class:`DemoSummary`; the CLI prints it.

Pure library: nothing prints. Deterministic: the data is seeded and the emulator's clock is frozen at
:data:`DEMO_NOW`, so table names, write times, the SQL and the bytes scanned are the same on every run; only
``DemoSummary.timings`` vary.

IAM: the embedded AWS enforces the bootstrapped least-privilege policies for every step after bootstrap
(which runs as each account's administrator); a denied step fails the demo with the denied action.

Emulation limits: see :mod:`featureshare.local`. The local group's offline store lives under the consumer's
training bucket (``ConsumerAccount.local_offline_s3_uri``) and is written with the execution role, as
SageMaker setups commonly do.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from featureshare.config import Topology
from featureshare.demo_data import DemoData, generate
from featureshare.errors import NotFoundError
from featureshare.groups import FeatureGroup, FeatureStore, GroupSpec
from featureshare.ingest import IngestReport
from featureshare.session import AccountSession, assume_role

if TYPE_CHECKING:
    from featureshare.local import EmbeddedAWS

__all__ = [
    "DEMO_NOW",
    "DemoSummary",
    "GroupResult",
    "bootstrap_accounts",
    "demo_sessions",
    "demo_topology",
    "group_specs",
    "prepare_demo_groups",
    "run_demo",
]

logger = logging.getLogger(__name__)

#: The embedded AWS's frozen clock during the demo: after every generated event and label time.
DEMO_NOW = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)
SESSION_NAME = "featureshare-demo"
CONSUMER = "search"
TEAM = "search"
HEAD_ROWS = 5
OUTPUT_NAME = "churn-demo"


def demo_topology(central_account: str = "111111111111", consumer_account: str = "222222222222",
                  region: str = "us-east-1") -> Topology:
    """The topology of ``featureshare.example.toml`` for the given account ids (the embedded defaults)."""
    return Topology.from_dict({
        "region": region,
        "teams": [TEAM, "reviews"],
        "central": {
            "account_id": central_account,
            "access_role_arn": f"arn:aws:iam::{central_account}:role/FeatureShareAccess",
            "offline_store_role_arn": f"arn:aws:iam::{central_account}:role/FeatureShareOfflineStore",
            "offline_bucket": f"featureshare-offline-{central_account}",
            "offline_prefix": "feature-store",
            "kms_key": "alias/featureshare-offline",
            "profile": "central-admin",
        },
        "consumers": [{
            "name": CONSUMER,
            "account_id": consumer_account,
            "team": TEAM,
            "execution_role_arns": [f"arn:aws:iam::{consumer_account}:role/SearchSageMakerExecution"],
            "training_bucket": f"featureshare-training-{consumer_account}",
            "training_prefix": "training-sets",
            "athena_workgroup": "featureshare",
            "central_catalog": "central",
            "scratch_database": "featureshare_scratch",
            "profile": "consumer-admin",
        }],
    }, source="featureshare.demo")


# ------------------------------------------------------------------------------------------ results

@dataclass(frozen=True)
class GroupResult:
    """One demo feature group after ingestion."""

    name: str
    account_id: str
    scope: str               # "central" or "local"
    event_time_type: str     # "String" (ISO-8601) or "Fractional" (epoch seconds)
    records: int             # distinct record ids
    rows_ingested: int       # versions written (every put)
    rows_failed: int
    deletes: int             # soft deletes (delete markers appended offline)
    table: str               # "<catalog>.<database>.<table>" as the training query names it


@dataclass(frozen=True)
class DemoSummary:
    """What the demo did; :meth:`render` is the human text, :meth:`to_dict` the JSON form.

    Everything except ``timings`` is identical on every run with the same arguments.
    """

    execution_identity: str
    central_identity: str
    team: str
    groups: tuple[GroupResult, ...]
    entity_rows: int
    training_rows: int
    columns: tuple[str, ...]
    sql: str
    query_execution_id: str
    data_scanned_bytes: int
    output_uri: str
    manifest_uri: str
    training_set: pd.DataFrame = field(repr=False, compare=False, default_factory=pd.DataFrame)
    iam_enforced: bool = True
    timings: Mapping[str, float] = field(default_factory=dict, compare=False)

    @property
    def head(self) -> pd.DataFrame:
        """The first :data:`HEAD_ROWS` rows of the training set, as the summary shows them."""
        return self.training_set.head(HEAD_ROWS).reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identities": {"execution_role": self.execution_identity, "central_role": self.central_identity,
                           "team": self.team},
            "groups": [vars(g) for g in self.groups],
            "training_set": {
                "entity_rows": self.entity_rows, "rows": self.training_rows, "columns": list(self.columns),
                "data_scanned_bytes": self.data_scanned_bytes, "output_uri": self.output_uri,
                "manifest_uri": self.manifest_uri, "sql": self.sql, "head": _records(self.head.convert_dtypes()),
            },
            "iam_enforced": self.iam_enforced,
            # What differs between runs:
            "run": {"query_execution_id": self.query_execution_id,
                    "timings_s": {k: round(v, 3) for k, v in self.timings.items()}},
        }

    def render(self) -> str:
        lines = ["featureshare demo: one central and one consumer account on the embedded AWS", "",
                 "identities",
                 f"  execution role (consumer): {self.execution_identity}",
                 f"  central role (team {self.team}):  {self.central_identity}", "",
                 "feature groups"]
        lines += [f"  {g.scope:7} {g.name:9} account {g.account_id}  {g.records:>5} records  "
                  f"{g.rows_ingested:>5} rows ingested  {g.deletes:>3} deletes  {g.event_time_type} event time"
                  for g in self.groups]
        lines += ["", f"training set: {self.training_rows} rows for {self.entity_rows} entity rows, "
                      f"{len(self.columns)} columns", f"  output:        {self.output_uri}",
                  f"  manifest:      {self.manifest_uri}",
                  f"  bytes scanned: {self.data_scanned_bytes:,}", "", "SQL", self.sql.rstrip(), "",
                  f"first {len(self.head)} rows",
                  self.head.convert_dtypes().to_string(index=False, max_colwidth=28), ""]
        lines.append("IAM: the bootstrapped least-privilege policies were enforced for every step" if self.iam_enforced
                     else "IAM: NOT enforced (the embedded AWS ran with enforce_iam=False)")
        if self.timings:
            lines += ["", "timings (vary run to run): " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())]
        return "\n".join(lines)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: missing values as None, numpy scalars as Python ones."""
    return [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame.astype(object).to_dict(orient="records")]


# ------------------------------------------------------------------------------------------ steps

class _Stopwatch:
    """Wall time per step, kept apart from the deterministic results."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        logger.info("demo: %s", name)
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - started


def _freeze_clock(aws: EmbeddedAWS) -> None:
    # Table names carry the creation epoch and offline rows the write time: a fixed instant makes the SQL
    # and the bytes scanned repeatable. Both stores expose ``clock`` for exactly this.
    aws.feature_store.clock = aws.offline_store.clock = lambda: DEMO_NOW


def bootstrap_accounts(aws: EmbeddedAWS, topology: Topology) -> None:
    """``bootstrap apply`` (execution roles included) as each account's administrator.

    Emulation limit: the embedded AWS has one consumer account, wired to the topology's first consumer.
    """
    from featureshare.bootstrap.plan import Bootstrap

    admins = {"central": AccountSession(aws.admin_session("central")),
              topology.consumers[0].name: AccountSession(aws.admin_session("consumer"))}
    Bootstrap(topology, admins, create_execution_roles=True).apply()


def demo_sessions(aws: EmbeddedAWS, topology: Topology) -> tuple[AccountSession, AccountSession]:
    """(execution role session, central role session).

    The consumer's admin plays SageMaker: it assumes the execution role without session tags, so the role's
    own ``team`` tag (set by bootstrap) is the team the central role's trust policy checks.
    """
    consumer = topology.consumer(CONSUMER)
    admin = AccountSession(aws.admin_session("consumer"))
    execution = assume_role(consumer.execution_role_arns[0], source=admin, session_name=SESSION_NAME,
                            region=topology.region)
    central = assume_role(topology.central.access_role_arn, source=execution, tags={"team": consumer.team},
                          session_name=SESSION_NAME, external_id=topology.central.external_id,
                          region=topology.region)
    return execution, central


def group_specs(data: DemoData) -> dict[str, GroupSpec]:
    """Specs of the demo groups, inferred from the generated frames."""
    options = {"record_id": "user_id", "event_time": "event_time"}
    return {
        "users": GroupSpec.from_dataframe("users", data.users, description="demo: user profile", **options),
        "sessions": GroupSpec.from_dataframe("sessions", data.sessions, description="demo: session activity",
                                             **options),
        "keywords": GroupSpec.from_dataframe("keywords", data.keywords, description="demo: search keywords "
                                             "(local to the consumer)", **options),
    }


def prepare_demo_groups(central: AccountSession, local: AccountSession, topology: Topology, data: DemoData, *,
                        progress: bool = False) -> tuple[dict[str, FeatureGroup], dict[str, IngestReport]]:
    """Ensure the demo groups (``users``, ``sessions`` central; ``keywords`` local) and ingest ``data``.

    Only groups that did not exist yet are ingested (``sessions`` then also gets the soft deletes), so
    running it twice does not append the histories twice. Returns ``(groups by name, ingest reports by
    name)``.
    """
    from featureshare.bootstrap.templates import offline_store_role_arn

    consumer = topology.consumer_for_account(local.account_id) or topology.consumer(CONSUMER)
    specs = group_specs(data)
    frames = {"users": data.users, "sessions": data.sessions, "keywords": data.keywords}
    central_store, local_store = FeatureStore(central), FeatureStore(local)
    groups: dict[str, FeatureGroup] = {}
    created: set[str] = set()
    for name in ("users", "sessions"):
        if not _exists(central_store, name):
            created.add(name)
        groups[name] = central_store.ensure_group(specs[name], offline_s3_uri=topology.central.offline_s3_uri,
                                                  role_arn=offline_store_role_arn(topology), team=consumer.team,
                                                  timeout=60)
    if not _exists(local_store, "keywords"):
        created.add("keywords")
    groups["keywords"] = local_store.ensure_group(specs["keywords"], offline_s3_uri=consumer.local_offline_s3_uri,
                                                  role_arn=consumer.execution_role_arns[0], team=consumer.team,
                                                  timeout=60)
    reports: dict[str, IngestReport] = {}
    for name in sorted(created, key=list(frames).index):
        # One request in flight keeps the offline rows in arrival order, so the Parquet files are
        # byte-identical run to run (a few hundred rows; concurrency would not be measurable here).
        reports[name] = groups[name].ingest(frames[name], progress=progress, max_in_flight=1, on_error="raise",
                                            seed=0)
    if "sessions" in created:
        for row in data.deletes.itertuples(index=False):
            groups["sessions"].delete_record(row.user_id, row.event_time)
    return groups, reports


def _exists(store: FeatureStore, name: str) -> bool:
    try:
        store.describe(name)
    except NotFoundError:
        return False
    return True


def _group_result(group: FeatureGroup, scope: str, frame: pd.DataFrame, report: IngestReport, deletes: int,
                  catalog: str) -> GroupResult:
    return GroupResult(
        name=group.name, account_id=group.account_id, scope=scope, event_time_type=group.event_time_type,
        records=int(frame["user_id"].nunique()), rows_ingested=report.rows_written, rows_failed=report.failed,
        deletes=deletes, table=f"{catalog}.{group.database}.{group.table}")


def _training_set(execution: AccountSession, central: AccountSession, topology: Topology, data: DemoData,
                  groups: Mapping[str, FeatureGroup]) -> Any:
    from featureshare.training import TrainingSet

    consumer = topology.consumer(CONSUMER)
    builder = TrainingSet(data.entities, key="user_id", event_time="label_time")
    for name in ("users", "sessions", "keywords"):
        builder = builder.join(groups[name])
    return builder.build(session=execution, central_session=central, workgroup=consumer.athena_workgroup,
                         catalog_name=consumer.central_catalog, scratch_database=consumer.scratch_database,
                         output_uri=f"{consumer.training_s3_uri}{OUTPUT_NAME}/", timeout=120)


def run_demo(*, progress: bool = True, n_users: int = 300, seed: int = 7) -> DemoSummary:
    """Run the whole demo on a fresh in-process embedded AWS and return its summary (see the module doc).

    ``progress`` shows tqdm bars while ingesting; ``n_users`` and ``seed`` go to
    :func:`featureshare.demo_data.generate`.
    """
    from featureshare.local import EmbeddedAWS
    from featureshare.training.build import MANIFEST_NAME

    watch = _Stopwatch()
    started = time.perf_counter()
    data = generate(n_users, seed=seed)
    with EmbeddedAWS(enforce_iam=True) as aws:
        _freeze_clock(aws)
        topology = demo_topology(aws.account_ids["central"], aws.account_ids["consumer"], aws.region)
        with watch.step("bootstrap"):
            bootstrap_accounts(aws, topology)
        execution, central = demo_sessions(aws, topology)
        with watch.step("groups+ingest"):
            groups, reports = prepare_demo_groups(central, execution, topology, data, progress=progress)
        with watch.step("training set"):
            training = _training_set(execution, central, topology, data, groups)
            frame = training.to_dataframe()
        consumer = topology.consumer(CONSUMER)
        results = (
            _group_result(groups["users"], "central", data.users, reports["users"], 0, consumer.central_catalog),
            _group_result(groups["sessions"], "central", data.sessions, reports["sessions"], len(data.deletes),
                          consumer.central_catalog),
            _group_result(groups["keywords"], "local", data.keywords, reports["keywords"], 0, "awsdatacatalog"),
        )
        return DemoSummary(
            execution_identity=execution.whoami().arn, central_identity=central.whoami().arn, team=consumer.team,
            groups=results, entity_rows=len(data.entities), training_rows=len(frame),
            columns=tuple(frame.columns), sql=training.sql, query_execution_id=training.query_execution_id,
            data_scanned_bytes=int(training.data_scanned_bytes), output_uri=training.location,
            manifest_uri=training.location + MANIFEST_NAME, training_set=frame, iam_enforced=aws.enforce_iam,
            timings={**watch.timings, "total": time.perf_counter() - started})

"""strategy="central-role" for sets mixing central and local groups, under the bootstrapped least-privilege roles.

One embedded AWS (IAM enforced) is bootstrapped from featureshare.example.toml; the consumer's admin plays
SageMaker and assumes the execution role, which assumes the central FeatureShareAccess role with its team tag.
A central group (String event times, several versions, a late backfill) and a local group of the consumer
(Fractional event times) are joined to labels; every build runs as those two sessions only.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from training_fixtures import create_customer_group, offline_rows
from training_fixtures import put_customer_record as _put

from featureshare.bootstrap.plan import Bootstrap
from featureshare.bootstrap.templates import (
    CENTRAL_SCRATCH_DATABASE,
    CENTRAL_STAGING_PREFIX,
    central_workgroup_name,
    policy_documents,
)
from featureshare.config import ConsumerAccount, Topology, load_topology
from featureshare.errors import AccessDeniedError, QueryFailedError, UnsupportedError
from featureshare.local import EmbeddedAWS
from featureshare.session import AccountSession, assume_role
from featureshare.training import SourceTable, TrainingSet
from featureshare.training import build as training_build
from featureshare.training.reference import ReferenceJoin, epoch_seconds, point_in_time_reference

EXAMPLE = Path(__file__).resolve().parent.parent / "featureshare.example.toml"
TEAM = "search"
START = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
_outputs = itertools.count()


@dataclass
class World:
    aws: EmbeddedAWS
    topology: Topology
    consumer: ConsumerAccount
    execution: AccountSession  # the consumer's execution role
    central: AccountSession  # FeatureShareAccess assumed by it, team-tagged
    sessions: dict[str, Any]  # central group, DescribeFeatureGroup
    keywords: dict[str, Any]  # local group of the consumer, DescribeFeatureGroup
    as_of: dt.datetime

    def output(self) -> str:
        return f"{self.consumer.training_s3_uri}central-role/t{next(_outputs)}/"

    def build(self, training: TrainingSet, **options: Any) -> training_build.BuiltTrainingSet:
        consumer = self.consumer
        return training.build(session=self.execution, output_uri=self.output(), central_session=self.central,
                              workgroup=consumer.athena_workgroup, catalog_name=consumer.central_catalog,
                              scratch_database=consumer.scratch_database, timeout=60, **options)

    def admin(self, account: str) -> AccountSession:
        return AccountSession(self.aws.admin_session(account))


def _seed(aws: EmbeddedAWS, topology: Topology, execution: AccountSession, central: AccountSession
          ) -> tuple[dict, dict, dt.datetime]:
    consumer, hub = topology.consumer(TEAM), topology.central
    central_s3 = {"S3Uri": f"s3://{hub.offline_bucket}/{hub.offline_prefix}",
                  **({"KmsKeyId": hub.kms_key} if hub.kms_key else {})}
    sessions = create_customer_group(central, "cr_sessions", event_type="String", feature=("spend", "Fractional"),
                                     s3_config=central_s3, role=hub.offline_store_role_arn, tags={"team": TEAM})
    keywords = create_customer_group(AccountSession(aws.admin_session("consumer")), "cr_keywords",
                                     event_type="Fractional", feature=("keyword", "String"),
                                     s3_config={"S3Uri": f"s3://{consumer.training_bucket}/local-store"},
                                     role=consumer.execution_role_arns[0])
    for hour in range(0, 48, 3):
        for k in range(4):
            _put(central, "cr_sessions", f"c{k}", START + dt.timedelta(hours=hour), "String", "spend", hour * 10 + k)
    for k in range(3):
        _put(execution, "cr_keywords", f"c{k}", START + dt.timedelta(hours=5 * k), "Fractional", "keyword", f"kw{k}")
    _put(execution, "cr_keywords", "c1", START + dt.timedelta(hours=20), "Fractional", "keyword", "kw1-late")
    aws.flush()
    as_of = dt.datetime.now(dt.UTC)
    _put(central, "cr_sessions", "c0", START + dt.timedelta(hours=1), "String", "spend", -1)  # late backfill
    aws.flush()
    return sessions, keywords, as_of


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    topology = load_topology(EXAMPLE)
    with EmbeddedAWS() as aws:
        admins = {"central": AccountSession(aws.admin_session("central")),
                  TEAM: AccountSession(aws.admin_session("consumer"))}
        Bootstrap(topology, admins, create_execution_roles=True).apply()
        consumer = topology.consumer(TEAM)
        execution = assume_role(consumer.execution_role_arns[0], source=admins[TEAM], session_name="job",
                                region=aws.region)
        central = assume_role(topology.central.access_role_arn, source=execution, tags={"team": TEAM},
                              session_name="job", region=aws.region)
        sessions, keywords, as_of = _seed(aws, topology, execution, central)
        job = World(aws, topology, consumer, execution, central, sessions, keywords, as_of)
        yield job


LABELS = pd.DataFrame({
    "customer_id": pd.Series(["c0", "c1", "c2", "c1", "c9", "c3", "c0", "c2"], dtype="str"),
    "label_time": pd.Series([START + dt.timedelta(hours=h) for h in (1, 2, 7, 30, 30, 47, 12, 23)],
                            dtype="datetime64[us, UTC]"),
    "churned": pd.array([True, False, True, None, False, True, False, True], dtype="boolean"),
})


def _training(world: World, *, ttl: Any = None, how: str = "left", central_first: bool = True) -> TrainingSet:
    training = TrainingSet(LABELS, key="customer_id", event_time="label_time")
    central = (world.sessions, {"features": ["spend"], "ttl": ttl})
    local = (world.keywords, {"features": ["keyword"], "how": how})
    for group, options in (central, local) if central_first else (local, central):
        training = training.join(group, **options)
    return training


def _reference(world: World, *, ttl: float | None = None, how: str = "left", as_of: float | None = None,
               central_first: bool = True) -> pd.DataFrame:
    central = ReferenceJoin(rows=offline_rows(world.sessions, world.admin("central")), record_id="customer_id",
                            event_time="event_time", features=["spend"], on="customer_id", ttl_seconds=ttl)
    local = ReferenceJoin(rows=offline_rows(world.keywords, world.admin("consumer")), record_id="customer_id",
                          event_time="event_time", features=["keyword"], on="customer_id", how=how)
    joins = [central, local] if central_first else [local, central]
    rows = point_in_time_reference(LABELS.to_dict("records"), event_time="label_time", joins=joins, as_of=as_of)
    features = ["spend", "keyword"] if central_first else ["keyword", "spend"]
    return pd.DataFrame(rows, columns=[*LABELS.columns, *features])


def _same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected)
    for column in actual.columns:
        left, right = actual[column].tolist(), expected[column].tolist()
        if column == "label_time":
            left = [epoch_seconds(v) for v in left]  # to_dataframe keeps the input time zone
            right = [epoch_seconds(v) for v in right]
        assert [None if pd.isna(v) else v for v in left] == [None if pd.isna(v) else v for v in right], column


def _leftovers(world: World) -> dict[str, list[str]]:
    """Staging objects in the consumer bucket and temporary tables in both accounts' scratch databases."""
    listing = world.admin("consumer").client("s3").list_objects_v2(Bucket=world.consumer.training_bucket,
                                                                   Prefix=training_build.STAGING_PREFIX)
    databases = {"central": training_build.CENTRAL_SCRATCH_DATABASE, "consumer": world.consumer.scratch_database}
    tables = {account: [t["Name"] for t in world.admin(account).client("glue").get_tables(
        DatabaseName=database)["TableList"]] for account, database in databases.items()}
    return {"objects": [o["Key"] for o in listing.get("Contents", [])], **tables}


NOTHING_LEFT = {"objects": [], "central": [], "consumer": []}


# --------------------------------------------------------------------------------------------- results

def test_combined_set_under_the_central_role_equals_the_catalog_strategy_and_the_reference(world: World) -> None:
    via_role = world.build(_training(world), strategy="central-role")
    via_catalog = world.build(_training(world), strategy="catalog")
    pd.testing.assert_frame_equal(via_role.to_dataframe(), via_catalog.to_dataframe())
    _same(via_role.to_dataframe(), _reference(world))
    central = via_role.manifest["central_part"]
    assert central["account_id"] == world.topology.central.account_id
    assert central["workgroup"] == central_workgroup_name(world.consumer)
    assert via_role.manifest["account_id"] == world.consumer.account_id
    assert '"awsdatacatalog"."sagemaker_featurestore"."cr_sessions' in central["sql"]
    assert "cr_keywords" not in central["sql"] and "cr_sessions" not in via_role.sql
    assert via_role.data_scanned_bytes > central["data_scanned_bytes"] > 0


def test_the_central_account_sees_only_entity_keys_and_label_times_never_label_values(world: World) -> None:
    built = world.build(_training(world), strategy="central-role")
    statement = built.manifest["central_part"]["statement"]
    assert '"churned"' not in statement and '"customer_id"' in statement
    assert '"churned"' in built.statement


@pytest.mark.parametrize("options", [
    {"ttl": "6h", "how": "inner", "as_of": True},
    {"central_first": False, "how": "inner"},
], ids=["ttl-inner-as-of", "local-group-first"])
def test_inner_join_ttl_as_of_and_join_order_match_the_reference(world: World, options: dict[str, Any]) -> None:
    options = dict(options)
    as_of = options.pop("as_of", False)
    training = _training(world, **options)
    training = training.as_of(world.as_of) if as_of else training
    built = world.build(training, strategy="central-role")
    ttl = 6 * 3600.0 if "ttl" in options else None
    expected = _reference(world, ttl=ttl, how=options["how"], central_first=options.get("central_first", True),
                          as_of=epoch_seconds(world.as_of) if as_of else None)
    _same(built.to_dataframe(), expected)
    assert 0 < len(expected) < len(LABELS)


def test_the_manifest_of_a_combined_set_reproduces_it(world: World) -> None:
    first = world.build(_training(world).as_of(world.as_of), strategy="central-role")
    again = TrainingSet.from_manifest(first.location + "_manifest.json", session=world.execution)
    second = world.build(again, strategy="central-role")
    pd.testing.assert_frame_equal(second.to_dataframe(), first.to_dataframe())
    assert [g["account_id"] for g in first.manifest["groups"]] == [world.topology.central.account_id,
                                                                     world.consumer.account_id]


def test_a_central_only_set_runs_in_the_central_workgroup_under_the_bootstrapped_roles(world: World) -> None:
    training = TrainingSet(LABELS, key="customer_id", event_time="label_time").join(world.sessions,
                                                                                    features=["spend"])
    built = world.build(training, strategy="central-role")
    assert built.manifest["account_id"] == world.topology.central.account_id
    assert built.manifest["workgroup"] == central_workgroup_name(world.consumer)
    assert built.manifest["central_part"] is None
    _same(built.to_dataframe(), _reference(world).drop(columns=["keyword"]))
    assert _leftovers(world) == NOTHING_LEFT


def test_sql_shows_both_parts_without_running_anything(world: World) -> None:
    text = _training(world).sql(consumer=world.execution, strategy="central-role")
    central, consumer = text.split("-- 2. consumer account")
    assert "cr_sessions" in central and "cr_keywords" not in central
    assert "cr_keywords" in consumer and "cr_sessions" not in consumer


# --------------------------------------------------------------------------------------------- cleanup

def test_staging_and_temporary_tables_are_gone_in_both_accounts_after_success(world: World) -> None:
    world.build(_training(world), strategy="central-role", wait=False).wait(timeout=60)
    assert _leftovers(world) == NOTHING_LEFT


def _with_ghost_feature(description: dict[str, Any]) -> SourceTable:
    """The group as if it had a feature its table lacks: the query fails in Athena, after staging."""
    source = SourceTable.from_description(description)
    return SourceTable(**{**source.__dict__, "features": (*source.features, ("ghost", "String"))})


@pytest.mark.parametrize("failing", ["central", "consumer"])
def test_staging_and_temporary_tables_are_gone_in_both_accounts_after_a_failed_query(
        world: World, failing: str) -> None:
    central = _with_ghost_feature(world.sessions) if failing == "central" else world.sessions
    local = _with_ghost_feature(world.keywords) if failing == "consumer" else world.keywords
    training = (TrainingSet(LABELS, key="customer_id", event_time="label_time")
                .join(central, features=["ghost" if failing == "central" else "spend"])
                .join(local, features=["ghost" if failing == "consumer" else "keyword"]))
    with pytest.raises(QueryFailedError, match="ghost") as info:
        world.build(training, strategy="central-role")
    assert info.value.state == "FAILED" and info.value.query_id
    assert _leftovers(world) == NOTHING_LEFT


# --------------------------------------------------------------------------------------------- least privilege

def _without(document: dict[str, Any], sid: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    changed["Statement"] = [s for s in changed["Statement"] if s.get("Sid") != sid]
    assert len(changed["Statement"]) < len(document["Statement"]), f"no statement {sid}"
    return changed


@contextlib.contextmanager
def without_statement(read: Callable[[], dict[str, Any]], write: Callable[[dict[str, Any]], Any],
                      sid: str) -> Iterator[None]:
    original = read()
    write(_without(original, sid))
    try:
        yield
    finally:
        write(original)


def _central_role_policy(world: World) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    iam, role = world.admin("central").client("iam"), world.topology.central.access_role_arn.rsplit("/", 1)[-1]
    return (lambda: iam.get_role_policy(RoleName=role, PolicyName="featureshare-access")["PolicyDocument"],
            lambda doc: iam.put_role_policy(RoleName=role, PolicyName="featureshare-access",
                                            PolicyDocument=json.dumps(doc)))


def _training_bucket_policy(world: World) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    s3, bucket = world.admin("consumer").client("s3"), world.consumer.training_bucket
    return (lambda: json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]),
            lambda doc: s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc)))


def test_without_the_scratch_grant_the_central_role_cannot_register_entities_and_the_error_names_it(
        world: World) -> None:
    with without_statement(*_central_role_policy(world), "ManageTemporaryTablesInCentralScratchDatabases"), \
            pytest.raises(AccessDeniedError, match=r"glue:(GetDatabase|CreateTable)"):
        world.build(_training(world), strategy="central-role")
    assert _leftovers(world) == NOTHING_LEFT


def test_without_the_bucket_policy_read_grant_the_central_query_fails_naming_s3_get_object(world: World) -> None:
    with without_statement(*_training_bucket_policy(world), "CentralAccessRoleReadsResults"), \
            pytest.raises(QueryFailedError, match="not authorized to perform: s3:GetObject") as info:
        world.build(_training(world), strategy="central-role")
    assert CENTRAL_STAGING_PREFIX in info.value.reason
    assert _leftovers(world) == NOTHING_LEFT


def test_without_the_workgroup_grant_the_central_part_does_not_start(world: World) -> None:
    with without_statement(*_central_role_policy(world), "RunQueriesInConsumerWorkgroups"), \
            pytest.raises(AccessDeniedError, match="athena:StartQueryExecution"):
        world.build(_training(world), strategy="central-role")
    assert _leftovers(world) == NOTHING_LEFT


# --------------------------------------------------------------------------------------------- contracts

def test_bootstrap_creates_the_central_workgroup_build_uses_by_default(world: World) -> None:
    athena = world.admin("central").client("athena")
    group = athena.get_work_group(WorkGroup=central_workgroup_name(world.consumer))["WorkGroup"]
    config = group["Configuration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["ResultConfiguration"]["OutputLocation"].startswith(world.consumer.athena_results_uri)
    assert config["ResultConfiguration"]["ExpectedBucketOwner"] == world.consumer.account_id
    assert config["ResultConfiguration"]["AclConfiguration"] == {"S3AclOption": "BUCKET_OWNER_FULL_CONTROL"}
    assert world.admin("central").client("glue").get_database(Name=CENTRAL_SCRATCH_DATABASE)


def test_the_fixed_names_build_uses_are_the_ones_the_iam_templates_grant() -> None:
    assert training_build.CENTRAL_STAGING_PREFIX == CENTRAL_STAGING_PREFIX
    assert training_build.CENTRAL_SCRATCH_DATABASE == CENTRAL_SCRATCH_DATABASE
    key = "arn:aws:kms:us-east-1:111111111111:key/11111111-2222-3333-4444-555555555555"
    documents = policy_documents(load_topology(EXAMPLE), resolved_keys={"central": key})
    permissions = documents["central-access-role-permissions"].to_json()
    assert f":table/{CENTRAL_SCRATCH_DATABASE}/*" in permissions
    assert f"/{CENTRAL_STAGING_PREFIX}/*" in permissions and f'"{CENTRAL_STAGING_PREFIX}/*"' in permissions
    assert f'"{CENTRAL_STAGING_PREFIX}/*"' in documents[f"consumer-training-bucket-policy[{TEAM}]"].to_json()


def test_entities_from_a_consumer_table_cannot_be_combined_under_the_central_role(world: World) -> None:
    training = (TrainingSet("labels_db.labels", key="customer_id", event_time="label_time")
                .join(world.sessions, features=["spend"]).join(world.keywords, features=["keyword"]))
    with pytest.raises(UnsupportedError, match="needs entities as a DataFrame"):
        world.build(training, strategy="central-role")

"""`featureshare sql SPEC` and `featureshare build-dataset SPEC` on the embedded AWS: a central and a local
group joined point-in-time, the result checked against a pandas reference of the same join."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from featureshare.bootstrap.plan import Bootstrap
from featureshare.cli import cli
from featureshare.config import load_topology
from featureshare.groups import FeatureStore, GroupSpec
from featureshare.jobs import build_dataset as build_job
from featureshare.local import EmbeddedAWS
from featureshare.session import AccountSession

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "featureshare.example.toml")
TRAINING_BUCKET = "featureshare-training-222222222222"
DAY = pd.Timedelta(days=1)
START = pd.Timestamp("2024-05-01", tz="UTC")


def visits() -> pd.DataFrame:
    """Central group history: 6 users x 4 versions, one per day (user u5 has none)."""
    rows = [{"user_id": f"u{u}", "ts": START + d * DAY + pd.Timedelta(hours=u), "visits": 10 * u + d}
            for u in range(5) for d in range(4)]
    return pd.DataFrame(rows).astype({"visits": "Int64"})


def keywords() -> pd.DataFrame:
    """Local group history: 2 versions for even users."""
    rows = [{"user_id": f"u{u}", "ts": START + d * 2 * DAY, "keyword": f"k{u}-{d}"} for u in range(0, 6, 2)
            for d in range(2)]
    return pd.DataFrame(rows)


def entities() -> pd.DataFrame:
    labels = [("u0", 0.5), ("u1", 2.5), ("u2", 3.9), ("u3", -1.0), ("u4", 10.0), ("u5", 1.0), ("u2", 1.0)]
    return pd.DataFrame({"user_id": [u for u, _ in labels], "label_time": [START + d * DAY for _, d in labels],
                         "label": range(len(labels))})


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAWS]:
    """Bootstrapped in-process embedded AWS with the two groups filled; the CLI's default credentials are
    the consumer administrator's."""
    with EmbeddedAWS() as embedded, pytest.MonkeyPatch.context() as env:
        topology = load_topology(EXAMPLE)
        Bootstrap(topology, {"central": AccountSession(embedded.admin_session("central")),
                             "search": AccountSession(embedded.admin_session("consumer"))},
                  create_execution_roles=True).apply()
        key, secret = embedded.credentials("consumer")
        env.setenv("AWS_ACCESS_KEY_ID", key)
        env.setenv("AWS_SECRET_ACCESS_KEY", secret)
        local, central = build_job.job_sessions(EXAMPLE)
        consumer = topology.consumer("search")
        for store, frame, name, where in (
                (FeatureStore(central), visits(), "visits", (topology.central.offline_s3_uri,
                                                             topology.central.offline_store_role_arn)),
                (FeatureStore(local), keywords(), "keywords", (f"s3://{TRAINING_BUCKET}/feature-store",
                                                               consumer.execution_role_arns[0]))):
            group = store.ensure_group(GroupSpec.from_dataframe(name, frame, record_id="user_id", event_time="ts"),
                                       offline_s3_uri=where[0], role_arn=where[1], team="search")
            assert group.ingest(frame).ok
        embedded.flush()
        yield embedded


def write_spec(tmp_path: Path, **extra: str) -> Path:
    entities().to_parquet(tmp_path / "labels.parquet")
    lines = ['name = "cli-set"', 'entities = "labels.parquet"', 'key = "user_id"', 'event_time = "label_time"',
             *(f"{k} = {json.dumps(v)}" for k, v in extra.items()),
             "[[groups]]", 'name = "visits"', 'ttl = "2d"', "[[groups]]", 'name = "keywords"', 'account = "local"']
    path = tmp_path / "spec.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def fs(*args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", EXAMPLE, *args])


def reference() -> pd.DataFrame:
    """The join by definition, with pandas: latest version at or before the label time (visits within 2 days)."""
    ents = entities().reset_index(names="row").sort_values("label_time")
    out = pd.merge_asof(ents, visits().sort_values("ts").rename(columns={"ts": "vts"}), left_on="label_time",
                        right_on="vts", by="user_id", tolerance=2 * DAY)
    out = pd.merge_asof(out.sort_values("label_time"), keywords().sort_values("ts"), left_on="label_time",
                        right_on="ts", by="user_id")
    return out.sort_values("row")[["user_id", "label_time", "label", "visits", "keyword"]].reset_index(drop=True)


def plain(column: pd.Series) -> list:
    return [None if pd.isna(v) else v for v in column.tolist()]


def read_result(aws: EmbeddedAWS, location: str) -> pd.DataFrame:
    s3 = aws.admin_session("consumer").client("s3")
    bucket, _, prefix = location[len("s3://"):].partition("/")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
                  if not o["Key"].rsplit("/", 1)[-1].startswith("_"))  # _manifest.json, _entities.parquet
    tables = [pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=k)["Body"].read())) for k in keys]
    return pd.concat([t.to_pandas() for t in tables], ignore_index=True)


def test_sql_prints_one_query_over_both_catalogs_and_runs_nothing(aws, tmp_path) -> None:
    result = fs("sql", str(write_spec(tmp_path)))

    assert result.exit_code == 0, result.output
    assert result.stdout.lstrip().upper().startswith("WITH")
    assert '"central"."sagemaker_featurestore"' in result.stdout
    assert '"awsdatacatalog"."sagemaker_featurestore"' in result.stdout.lower() or \
        '"AwsDataCatalog"' in result.stdout
    athena = aws.admin_session("consumer").client("athena")
    assert athena.list_query_executions(WorkGroup="featureshare").get("QueryExecutionIds", []) == []


def test_build_dataset_writes_the_point_in_time_set_to_the_consumer_bucket(aws, tmp_path) -> None:
    result = fs("--json", "build-dataset", str(write_spec(tmp_path)))

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["location"].startswith(f"s3://{TRAINING_BUCKET}/training-sets/cli-set/")
    assert data["query_execution_id"] and data["data_scanned_bytes"] > 0
    built = read_result(aws, data["location"])
    expected = reference()
    assert list(built.columns[:3]) == ["user_id", "label_time", "label"]
    built = built.sort_values("label").reset_index(drop=True)
    assert built["label"].tolist() == expected["label"].tolist()
    assert built["visits"].astype("Int64").tolist() == expected["visits"].astype("Int64").tolist()
    assert plain(built["keyword"]) == plain(expected["keyword"])
    assert plain(built["visits"]).count(None) > 0 and plain(built["keyword"]).count(None) > 0  # both nulls seen


def test_build_dataset_in_human_form_shows_location_query_and_first_rows(aws, tmp_path) -> None:
    result = fs("build-dataset", str(write_spec(tmp_path, output=f"s3://{TRAINING_BUCKET}/sets/human/")),
                "--head", "3")
    assert result.exit_code == 0, result.output
    assert f"training set cli-set: s3://{TRAINING_BUCKET}/sets/human/" in result.stdout
    assert "query:" in result.stdout and "user_id" in result.stdout


def test_a_spec_naming_a_missing_feature_is_exit_4_before_any_query(aws, tmp_path) -> None:
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text().replace('name = "visits"', 'name = "visits"\nfeatures = ["nope"]'))
    result = fs("build-dataset", str(spec))
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("error: ") and "nope" in result.stderr and "Traceback" not in result.output


def test_a_spec_naming_a_missing_group_is_exit_7(aws, tmp_path) -> None:
    spec = write_spec(tmp_path)
    spec.write_text(spec.read_text().replace('name = "keywords"', 'name = "no-such-group"'))
    result = fs("sql", str(spec))
    assert result.exit_code == 7, result.output
    assert "no-such-group" in result.stderr.splitlines()[0]


def test_an_invalid_or_missing_spec_file_is_one_line(tmp_path) -> None:
    (tmp_path / "bad.toml").write_text('entities = "x.csv"\n')
    bad = fs("sql", str(tmp_path / "bad.toml"))
    assert bad.exit_code == 4 and "invalid dataset spec" in bad.stderr and "Traceback" not in bad.output
    missing = fs("build-dataset", str(tmp_path / "none.toml"))
    assert missing.exit_code == 3 and "not found" in missing.stderr


@pytest.mark.parametrize("command", ["sql", "build-dataset"])
def test_dataset_commands_have_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


def test_build_dataset_without_waiting_returns_the_running_query(aws, tmp_path) -> None:
    result = fs("--json", "build-dataset", str(write_spec(tmp_path, output=f"s3://{TRAINING_BUCKET}/sets/nowait/")),
                "--no-wait")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["waited"] is False and data["query_execution_id"]
    athena = aws.admin_session("consumer").client("athena")
    assert athena.get_query_execution(QueryExecutionId=data["query_execution_id"])["QueryExecution"]["Query"]

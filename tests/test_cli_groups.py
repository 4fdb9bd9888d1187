"""`featureshare groups|ingest|get|share` on the embedded AWS (server mode: the CLI uses profiles).

The consumer's administrator (`--profile consumer-admin`) assumes the central role from the topology, as a
consumer's execution role does; `--central-profile central-admin` acts as the central administrator.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import botocore.loaders
import botocore.session
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from featureshare.cli import cli
from featureshare.local import EmbeddedAWS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "featureshare.example.toml")
CENTRAL, CONSUMER = "111111111111", "222222222222"


@pytest.fixture(scope="module", autouse=True)
def shared_botocore_loader() -> Iterator[None]:
    """Every CLI invocation builds fresh boto3 sessions, and each re-parses botocore's JSON models (~1 s for
    SageMaker's). One shared loader (a cache at the SDK boundary) keeps the module fast."""
    loader = botocore.loaders.create_loader()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", lambda *_args, **_kw: loader)
        yield


@pytest.fixture(scope="module")
def aws(shared_botocore_loader: None) -> Iterator[EmbeddedAWS]:
    """A server-mode embedded AWS, bootstrapped from the example topology, its profiles in the environment."""
    with EmbeddedAWS(server=True) as embedded, pytest.MonkeyPatch.context() as env:
        for key, value in embedded.env().items():
            env.setenv(key, value)
        done = CliRunner().invoke(cli, ["--config", EXAMPLE, "bootstrap", "apply", "--create-execution-roles"])
        assert done.exit_code == 0, done.output
        yield embedded


def fs(*args: str, user: str = "consumer-admin", input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", EXAMPLE, "--profile", user, *args], input=input)


_names = itertools.count()


@pytest.fixture
def name() -> str:
    return f"cli{next(_names)}"


def group_file(tmp_path: Path, name: str, *, offline: bool = True) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\nrecord_id = "user_id"\nevent_time = "ts"\noffline = {str(offline).lower()}\n'
                    'features = { user_id = "String", ts = "String", age = "Integral", score = "Fractional" }\n')
    return str(path)


def create(tmp_path: Path, name: str, *extra: str) -> Result:
    """Create a central group as the consumer, through the assumed central role (owned by team search)."""
    result = fs("--json", "groups", "create", "--from-file", group_file(tmp_path, name), *extra)
    assert result.exit_code == 0, result.output
    return result


def users_csv(tmp_path: Path, rows: list[str]) -> str:
    path = tmp_path / "users.csv"
    path.write_text("user_id,ts,age,score\n" + "\n".join(rows) + "\n")
    return str(path)


def assert_one_line_error(result: Result, code: int, match: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and match in first, result.stderr


def test_create_makes_a_central_group_owned_by_the_team_and_list_and_describe_show_it(aws, tmp_path, name) -> None:
    data = json.loads(create(tmp_path, name).stdout)
    assert data["account"] == CENTRAL and data["status"] == "Created"
    assert data["tags"]["team"] == "search"

    listed = fs("groups", "list", "--contains", name)
    assert listed.exit_code == 0 and name in listed.stdout and "Created" in listed.stdout

    described = fs("groups", "describe", data["arn"])
    assert described.exit_code == 0, described.output
    assert "record id:   user_id" in described.stdout and "age" in described.stdout


def test_the_central_administrator_can_create_groups_for_a_team_without_assuming_the_role(aws, tmp_path,
                                                                                        name) -> None:
    created = fs("--json", "groups", "create", "--central-profile", "central-admin", "--team", "search",
                 "--from-file", group_file(tmp_path, name))
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["tags"]["team"] == "search"
    assert fs("groups", "describe", name).exit_code == 0  # and the team's role reads it


def test_create_again_is_idempotent_and_a_changed_schema_is_exit_8(aws, tmp_path, name) -> None:
    create(tmp_path, name)
    assert fs("groups", "create", "--from-file", group_file(tmp_path, name)).exit_code == 0
    changed = tmp_path / "changed.toml"
    changed.write_text(f'name = "{name}"\nrecord_id = "user_id"\nevent_time = "ts"\n'
                       'features = { user_id = "String", ts = "String", age = "Fractional" }\n')

    assert_one_line_error(fs("groups", "create", "--from-file", str(changed)), 8, "differs from the spec")


def test_an_invalid_group_spec_is_one_line_and_exit_4(aws, tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad name"\nrecord_id = "id"\nevent_time = "ts"\nfeatures = { id = "String" }\n')
    assert_one_line_error(fs("groups", "create", "--from-file", str(bad)), 4, "invalid feature group spec")


def test_ingest_writes_every_row_and_get_returns_typed_values(aws, tmp_path, name) -> None:
    create(tmp_path, name)
    csv = users_csv(tmp_path, ["007,2024-05-01T10:00:00Z,31,0.5", "008,2024-05-01T11:00:00Z,42,1.25"])

    ingested = fs("--json", "ingest", name, csv)
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["rows_written"] == 2

    got = fs("--json", "get", name, "007", "008", "--features", "age,score")
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout) == {"007": {"user_id": "007", "age": 31, "score": 0.5},
                                      "008": {"user_id": "008", "age": 42, "score": 1.25}}


def test_ingest_with_bad_rows_reports_the_failures_count_and_exits_11(aws, tmp_path, name) -> None:
    create(tmp_path, name)
    csv = users_csv(tmp_path, ["u1,2024-05-01T10:00:00Z,31,0.5", "u2,2024-05-01T10:00:00Z,old,0.1",
                               "u3,2024-05-01T10:00:00Z,7,0.2"])
    failures = tmp_path / "failed.jsonl"

    result = fs("ingest", name, csv, "--failures", str(failures), "--no-progress")

    assert_one_line_error(result, 11, "1 of 3 records failed (first: row 1")
    assert "2/3 rows written, 1 failed" in result.stdout
    assert [json.loads(line)["record_id"] for line in failures.read_text().splitlines()] == ["u2"]


def test_ingest_of_an_unsupported_file_is_exit_4(aws, tmp_path, name) -> None:
    (tmp_path / "users.xlsx").write_bytes(b"x")
    assert_one_line_error(fs("ingest", name, str(tmp_path / "users.xlsx")), 4, "unsupported file type")


def test_get_prints_what_it_found_and_exits_7_for_missing_ids(aws, tmp_path, name) -> None:
    create(tmp_path, name)
    fs("ingest", name, users_csv(tmp_path, ["u1,2024-05-01T10:00:00Z,31,0.5"]), "--no-progress")

    result = fs("get", name, "u1", "nobody")

    assert_one_line_error(result, 7, "1 of 2 record(s) not found")
    assert '"age": 31' in result.stdout and "nobody: (not found)" in result.stdout


def test_describing_a_missing_group_is_exit_7(aws) -> None:
    assert_one_line_error(fs("groups", "describe", "no-such-group"), 7, "no-such-group")


def test_delete_asks_first_and_with_yes_removes_the_group(aws, tmp_path, name) -> None:
    create(tmp_path, name)

    refused = fs("groups", "delete", name, input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert fs("groups", "describe", name).exit_code == 0

    assert fs("groups", "delete", name, "--yes").exit_code == 0
    assert fs("groups", "describe", name).exit_code == 7


def test_local_groups_live_in_the_callers_own_account(aws, tmp_path, name) -> None:
    created = fs("--json", "groups", "create", "--local", "--team", "search", "--from-file",
                 group_file(tmp_path, name, offline=False))
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["account"] == CONSUMER

    assert name in fs("groups", "list", "--local").stdout
    assert name not in fs("groups", "list", "--contains", name).stdout


def test_a_local_group_keeps_its_offline_store_in_the_consumers_training_bucket(aws, tmp_path, name) -> None:
    created = fs("--json", "groups", "create", "--local", "--team", "search", "--from-file",
                 group_file(tmp_path, name))
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["offline_s3_uri"].startswith(
        f"s3://featureshare-training-{CONSUMER}/feature-store/{CONSUMER}/sagemaker/")


def test_a_local_group_outside_the_topology_needs_its_offline_location(aws, tmp_path, name) -> None:
    result = fs("groups", "create", "--local", "--team", "x", "--from-file", group_file(tmp_path, name),
                user="central-admin")
    assert_one_line_error(result, 4, "no --offline-uri/--role-arn")


def test_local_and_central_profile_together_are_refused(aws) -> None:
    assert_one_line_error(fs("groups", "list", "--local", "--central-profile", "central-admin"), 4, "exclude")


def test_share_creates_a_ram_share_of_the_group_with_the_managed_permission(aws, tmp_path, name) -> None:
    create(tmp_path, name)

    result = fs("--json", "share", name, "--with", "333333333333", "--permission", "read-write",
                "--central-profile", "central-admin")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["permission"].endswith("/AWSRAMPermissionSagemakerFeatureGroupReadWrite")
    ram = aws.admin_session("central").client("ram")
    shares = ram.get_resource_shares(resourceOwner="SELF")["resourceShares"]
    assert data["share_arn"] in [s["resourceShareArn"] for s in shares]


def test_share_with_something_that_is_not_an_account_is_exit_4(aws, tmp_path, name) -> None:
    create(tmp_path, name)
    result = fs("share", name, "--with", "the-search-team", "--central-profile", "central-admin")
    assert_one_line_error(result, 4, "must be a 12-digit account id")


def test_a_missing_topology_is_exit_3_and_debug_shows_the_exception(tmp_path) -> None:
    args = ["--config", str(tmp_path / "none.toml"), "groups", "list"]
    assert_one_line_error(CliRunner().invoke(cli, args), 3, "configuration file")
    debug = CliRunner().invoke(cli, ["--debug", *args])
    assert debug.exit_code != 0 and type(debug.exception).__name__ == "ConfigError"


@pytest.mark.parametrize("command", [["groups"], ["groups", "list"], ["groups", "describe"], ["groups", "create"],
                                     ["groups", "delete"], ["ingest"], ["get"], ["share"]])
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


def test_parquet_files_ingest_like_csv(aws, tmp_path, name) -> None:
    create(tmp_path, name)
    frame = pd.DataFrame({"user_id": ["p1"], "ts": pd.to_datetime(["2024-05-01T10:00:00Z"]), "age": [5],
                          "score": [2.5]})
    frame.to_parquet(tmp_path / "users.parquet")
    assert fs("ingest", name, str(tmp_path / "users.parquet"), "--no-progress").exit_code == 0
    assert json.loads(fs("--json", "get", name, "p1").stdout)["p1"]["age"] == 5

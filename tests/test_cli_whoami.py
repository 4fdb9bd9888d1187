"""`featureshare whoami` against moto."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from moto import mock_aws

from featureshare.cli import cli

EXAMPLE = str(Path(__file__).resolve().parent.parent / "featureshare.example.toml")


def test_whoami_shows_the_source_and_the_assumed_central_identity() -> None:
    with mock_aws():
        result = CliRunner().invoke(cli, ["--config", EXAMPLE, "--json", "whoami", "--team", "search"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"]["account"] == "123456789012"
    assert data["central"]["account"] == "111111111111"
    assert data["central"]["arn"].startswith("arn:aws:sts::111111111111:assumed-role/FeatureShareAccess/")
    assert data["central"]["team"] == "search"


def test_whoami_in_human_form_names_both_accounts() -> None:
    with mock_aws():
        result = CliRunner().invoke(cli, ["--config", EXAMPLE, "whoami"])
    assert result.exit_code == 0, result.output
    assert "account 123456789012" in result.output
    assert "account 111111111111" in result.output


def test_a_missing_config_is_one_clear_line_and_exit_code_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "missing.toml"), "whoami"])
    assert result.exit_code == 3
    assert "error: configuration file" in result.output
    assert "Traceback" not in result.output

"""The consumer-account notebooks run headless (real ipykernel) against the embedded AWS, as `make notebooks`
and `make test` run them; they carry no outputs and no local-mode code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from featureshare.notebooks_runner import main

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXPECTED = ["01_central_producer.ipynb", "02_consumer_combined_store.ipynb", "03_training_set.ipynb",
            "04_long_running_job.ipynb"]
# Words that would mean a notebook knows it runs against the embedded AWS.
LOCAL_MODE_MARKERS = ("EmbeddedAWS", "featureshare.local", "endpoint_url", "127.0.0.1", "localhost",
                      "moto", "consumer-admin", "central-admin", "aws_access_key_id")


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_four_consumer_notebooks_are_committed_without_outputs():
    assert [p.name for p in notebooks()] == EXPECTED
    for path in notebooks():
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code, path.name
        assert all(cell.outputs == [] and cell.execution_count is None for cell in code), path.name


@pytest.mark.parametrize("name", EXPECTED)
def test_notebooks_take_everything_from_the_environment_with_no_local_mode_branches(name: str):
    source = "\n".join(cell.source for cell in nbformat.read(NOTEBOOKS / name, as_version=4).cells
                       if cell.cell_type == "code")
    assert "load_topology()" in source and "AccountSession.current(" in source
    assert [marker for marker in LOCAL_MODE_MARKERS if marker in source] == []


def test_make_notebooks_executes_every_notebook_successfully():
    env = {k: v for k, v in os.environ.items() if k != "FEATURESHARE_CONFIG"}
    completed = subprocess.run([sys.executable, "-m", "featureshare.notebooks_runner", "notebooks"], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=240)

    assert completed.returncode == 0, completed.stdout + completed.stderr[-4000:]
    lines = completed.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["ok", name] for name in EXPECTED]


def test_a_failing_cell_fails_the_run_and_kernels_act_as_the_execution_role(tmp_path: Path, capsys):
    identity = new_code_cell(
        "import boto3, os\n"
        "arn = boto3.client('sts').get_caller_identity()['Arn']\n"
        "assert ':assumed-role/SearchSageMakerExecution/' in arn, arn\n"
        "assert 'AWS_ACCESS_KEY_ID' not in os.environ\n"
        "from featureshare.config import load_topology\n"
        "assert load_topology().consumer_for_account(arn.split(':')[4]).team == 'search'")
    failing = new_notebook(cells=[identity, new_code_cell("raise ValueError('boom in a cell')")])
    failing.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(failing, tmp_path / "failing.ipynb")

    code = main([str(tmp_path), "--config", str(ROOT / "featureshare.example.toml"), "--timeout", "60"])

    out, err = capsys.readouterr()
    assert code == 1
    assert out.startswith("FAILED failing.ipynb")
    assert "boom in a cell" in err and "AssertionError" not in err


def test_runner_reports_a_folder_without_notebooks(tmp_path: Path, capsys):
    assert main([str(tmp_path)]) == 3
    assert "no notebooks found" in capsys.readouterr().err


def test_runner_names_an_unknown_notebook_instead_of_running_the_others(tmp_path: Path, capsys):
    nbformat.write(new_notebook(cells=[new_code_cell("1")]), tmp_path / "first.ipynb")

    assert main([str(tmp_path), "--only", "first", "--only", "frist"]) == 3
    err = capsys.readouterr().err
    assert "'frist'" in err and "first.ipynb" in err

"""The benchmark harness keeps working: ``python -m benchmarks.run --quick`` runs every benchmark at tiny sizes
and writes a result for every id with the documented keys, and every correctness check passes. No thresholds:
quick figures measure nothing (tiny data on a shared machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.harness import IDS, RESULT_KEYS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_EC2_METADATA_DISABLED": "true", "PYTHONPATH": str(REPO)})
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"stdout": proc.stdout, "document": json.loads((out / "latest.json").read_text()),
            "markdown": (out / "latest.md").read_text()}


def test_quick_run_reports_every_id_with_the_documented_keys(quick_run: dict[str, Any]):
    results = quick_run["document"]["results"]

    assert list(results) == list(IDS)
    for id_, result in results.items():
        assert set(RESULT_KEYS) <= set(result), id_
        assert isinstance(result["met"], bool) and isinstance(result["params"], dict), id_
        assert result["value"] is not None, f"{id_} was not measured: {result['skipped']}"


def test_quick_run_passes_every_correctness_check(quick_run: dict[str, Any]):
    failed = {id_: [name for name, ok in r["checks"].items() if not ok]
              for id_, r in quick_run["document"]["results"].items()}

    assert {id_: names for id_, names in failed.items() if names} == {}


def test_quick_run_records_the_machine_and_the_load_it_ran_under(quick_run: dict[str, Any]):
    document = quick_run["document"]
    machine = document["machine"]

    assert document["quick"] is True
    assert machine["nproc"] >= 1 and machine["python"] and machine["packages"]["featureshare"]
    assert len(machine["loadavg_start"]) == 3 and len(machine["loadavg_end"]) == 3


def test_markdown_table_lists_every_id(quick_run: dict[str, Any]):
    rows = [line for line in quick_run["markdown"].splitlines() if line.startswith("| P") or line.startswith("| M")]

    assert [row.split("|")[1].strip() for row in rows] == list(IDS)

"""Suite-wide guards."""

from __future__ import annotations

import os

import pytest

# Group/ingest fixtures (``setup``, ``shared_setup``, ``shared_server_setup``, ``name``) for every test module.
pytest_plugins = ["ingest_fixtures"]

# Tests never reach real AWS: no ambient profile or endpoint leaks in from the developer's shell.
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "MOTO_ACCOUNT_ID", "FEATURESHARE_CONFIG"):
    os.environ.pop(_var, None)
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run in which nothing passed (all skipped, or nothing collected) is a failure, never green."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    passed = len(reporter.stats.get("passed", [])) if reporter else 0
    if exitstatus == 0 and passed == 0:
        session.exitstatus = 1

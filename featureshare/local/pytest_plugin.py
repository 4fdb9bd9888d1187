"""pytest fixtures for the embedded AWS.

Use from a ``conftest.py``::

    from featureshare.local.pytest_plugin import embedded_aws, embedded_server  # noqa: F401

``embedded_aws`` is an in-process ``EmbeddedAWS`` (plain boto3 clients in the test process hit it);
``embedded_server`` runs the HTTP server on 127.0.0.1 (for child processes and non-botocore clients).
Both are function-scoped: every test starts from empty accounts (start-up takes ~0.1 s in-process).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from featureshare.local.embedded import EmbeddedAWS


@pytest.fixture
def embedded_aws() -> Iterator[EmbeddedAWS]:
    """An in-process two-account EmbeddedAWS (central 111111111111, consumer 222222222222)."""
    with EmbeddedAWS() as aws:
        yield aws


@pytest.fixture
def embedded_server() -> Iterator[EmbeddedAWS]:
    """A server-mode two-account EmbeddedAWS on 127.0.0.1 with ``env()`` and ``<name>-admin`` profiles."""
    with EmbeddedAWS(server=True) as aws:
        yield aws

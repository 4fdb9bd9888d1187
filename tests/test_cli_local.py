"""`featureshare local serve`: a real server in another process, used through the printed environment."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys

import boto3


def test_local_serve_prints_exports_that_reach_both_accounts_and_stops_on_sigterm(monkeypatch) -> None:
    server = subprocess.Popen([sys.executable, "-m", "featureshare.cli", "local", "serve"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        env: dict[str, str] = {}
        while "AWS_REGION" not in env:
            line = server.stdout.readline()  # type: ignore[union-attr]
            assert line, server.stderr.read()  # type: ignore[union-attr]
            key, _, value = line.removeprefix("export ").strip().partition("=")
            env[key] = shlex.split(value)[0]
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        script = ("import boto3; print(boto3.Session(profile_name='consumer-admin').client('sts')"
                  ".get_caller_identity()['Account'])")
        out = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True,
                             text=True, timeout=60, check=True).stdout.strip()
        assert out == "222222222222"
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        central = boto3.Session(profile_name="central-admin")
        assert central.client("sts").get_caller_identity()["Account"] == "111111111111"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()

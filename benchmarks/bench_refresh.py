"""P4: how many AssumeRole calls a long job with many threads makes, with simulated time.

A consumer session assumes the central role (``DurationSeconds=3600``, the role-chaining maximum) and 64
threads use it for a simulated 8 hours: the clock (``time_machine``, not ticking) moves in steps of 5 minutes,
and at every step each thread makes one signed call (``sts:GetCallerIdentity`` through the assumed session,
the cheapest call that needs its credentials). AssumeRole calls are counted with the botocore event
``provide-client-params.sts.AssumeRole`` on the **source** session (the one the role is assumed from), failed
ones with ``after-call.sts.AssumeRole``; any exception in a thread counts as a failed call.

Baseline: one call per refresh window, ceil(8 h / (duration - 15 min)) = 11 (botocore refreshes 15 minutes
before expiry). Runs on an in-process embedded AWS: the simulated clock must be the emulator's clock too.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from typing import Any

from benchmarks.harness import Options, Result

TARGET = "<= 11"
DURATION_S = 3600
HOURS = 8
START = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
_BARRIER_TIMEOUT_S = 120.0


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.assume_calls = 0
        self.assume_failures = 0
        self.call_failures = 0
        self.calls = 0
        self.errors: list[str] = []

    def on_assume(self, **_: Any) -> None:
        with self.lock:
            self.assume_calls += 1

    def on_assume_done(self, http_response: Any = None, **_: Any) -> None:
        if http_response is not None and http_response.status_code >= 400:
            with self.lock:
                self.assume_failures += 1

    def call_done(self, error: BaseException | None) -> None:
        with self.lock:
            self.calls += 1
            if error is not None:
                self.call_failures += 1
                if len(self.errors) < 5:
                    self.errors.append(f"{type(error).__name__}: {error}")


def _worker(session: Any, barrier: threading.Barrier, steps: int, counter: _Counter) -> None:
    sts = session.client("sts")
    for _ in range(steps):
        barrier.wait(_BARRIER_TIMEOUT_S)  # the main thread has moved the clock
        try:
            sts.get_caller_identity()
            counter.call_done(None)
        except Exception as exc:  # counted: a failed call is what this benchmark looks for
            counter.call_done(exc)
        barrier.wait(_BARRIER_TIMEOUT_S)  # every thread has made its call at this instant


def simulate(threads: int, step_minutes: int, hours: int = HOURS) -> dict[str, Any]:
    """Run the simulated job; returns the counts."""
    import time_machine

    from featureshare.local import EmbeddedAWS
    from featureshare.session import assume_role

    steps = hours * 60 // step_minutes
    counter = _Counter()
    with time_machine.travel(START, tick=False) as traveller, EmbeddedAWS() as aws:
        central_admin, source = aws.admin_session("central"), aws.admin_session("consumer")
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{aws.account_ids['consumer']}:root"},
            "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
        role = central_admin.client("iam").create_role(RoleName="FeatureShareAccess", MaxSessionDuration=3600,
                                                       AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        source.events.register("provide-client-params.sts.AssumeRole", counter.on_assume)
        source.events.register("after-call.sts.AssumeRole", counter.on_assume_done)
        session = assume_role(role, source=source, tags={"team": "search"}, session_name="long-job",
                              duration_seconds=DURATION_S, region=aws.region)
        barrier = threading.Barrier(threads + 1)
        workers = [threading.Thread(target=_worker, args=(session, barrier, steps, counter), daemon=True)
                   for _ in range(threads)]
        for w in workers:
            w.start()
        for step in range(steps):
            if step:
                traveller.shift(dt.timedelta(minutes=step_minutes))
            barrier.wait(_BARRIER_TIMEOUT_S)
            barrier.wait(_BARRIER_TIMEOUT_S)
        for w in workers:
            w.join(_BARRIER_TIMEOUT_S)
    return {"assume_role_calls": counter.assume_calls, "assume_role_failures": counter.assume_failures,
            "calls": counter.calls, "failed_calls": counter.call_failures, "errors": counter.errors,
            "steps": steps}


def run(options: Options) -> list[Result]:
    threads = options.size(64, 8)
    step = options.size(5, 30)
    counts = simulate(threads, step)
    expected = math.ceil(HOURS * 3600 / (DURATION_S - 15 * 60))
    params = {"threads": threads, "simulated_hours": HOURS, "step_minutes": step, "duration_seconds": DURATION_S,
              **counts}
    checks = {"no failed calls": counts["failed_calls"] == 0 and counts["assume_role_failures"] == 0,
              "every thread called at every step": counts["calls"] == threads * counts["steps"]}
    return [Result("P4", "AssumeRole calls in a simulated 8 h job with 64 threads", counts["assume_role_calls"],
                   {"name": "one call per refresh window: ceil(8h / (duration - 15 min))", "calls": expected},
                   TARGET, params, checks=checks)]

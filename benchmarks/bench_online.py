"""P5: online reads of 10,000 record ids with ``FeatureStore.get_many`` against a sequential ``GetRecord`` loop.

Both read the same central group through the consumer's assumed role over the embedded AWS server, with the
same 10 ms injected latency per runtime call as P1 (real GetRecord latencies are single-digit milliseconds).
``get_many`` packs 100 ids per identifier and 100 identifiers per ``BatchGetRecord`` (so 10,000 ids are 1-2
calls' worth of identifiers, split into 100 calls of 100 ids by the service limit) and sends them 8 at a time.
The loop is what a user writes with boto3: one ``get_record`` per id, one after the other. It is linear in the
ids, so it is timed on a sample of ids and scaled to 10,000 (recorded in params); the values it returns are
checked against ``get_many``'s.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from benchmarks.bench_ingest import LATENCY_MS, ingest_frame
from benchmarks.harness import Options, Result, World, repeat

TARGET = ">= 20"


def _loop(client: Any, arn: str, ids: list[str]) -> dict[str, dict[str, str]]:
    out = {}
    for record_id in ids:
        reply = client.get_record(FeatureGroupName=arn, RecordIdentifierValueAsString=record_id)
        out[record_id] = {v["FeatureName"]: v["ValueAsString"] for v in reply.get("Record", [])}
    return out


def _same_values(frame: pd.DataFrame, expected: pd.DataFrame) -> bool:
    got = frame.set_index("user_id").sort_index()
    want = expected.set_index("user_id").sort_index()
    return (list(got.index) == list(want.index)
            and all(got["country"].astype(str) == want["country"])
            and all((got["lifetime_value"].astype(float) - want["lifetime_value"]).abs() < 1e-9)
            and all(got["orders"].astype("int64") == want["orders"]))


def run(world: World, options: Options, only: set[str]) -> list[Result]:
    from featureshare.groups import GroupSpec

    n = options.size(10_000, 300)
    sample = options.size(200, 20)
    frame = ingest_frame(n, offset=0, seed=3)
    spec = GroupSpec.from_dataframe("bench-online", frame, record_id="user_id", event_time="event_time",
                                    offline=False)
    group = world.ensure_central(spec)
    report = group.ingest(frame, max_in_flight=8)
    ids = list(frame["user_id"])
    client = world.central.client("sagemaker-featurestore-runtime")
    world.server.command("faults", latency_ms=LATENCY_MS)
    try:
        many, frames = repeat(lambda i: world.central_store.get_many({group: ids}, max_in_flight=8)[group.name],
                              options.repeats)
        loop, loops = repeat(lambda i: _loop(client, group.arn, ids[i * sample % n:][:sample]), options.repeats)
    finally:
        world.server.command("clear")
    per_id_loop = loop.median / sample
    loop_for_n = per_id_loop * n
    first = frames[0].set_index("user_id")
    loop_agrees = all(first.loc[rid, "country"] == rec.get("country") for part in loops for rid, rec in part.items())
    params = {"ids": n, "latency_ms": LATENCY_MS, "max_in_flight": 8, "get_many_seconds": many.to_json(),
              "loop_sample_ids": sample, "loop_seconds_per_sample": loop.to_json(),
              "loop_seconds_scaled_to_ids": round(loop_for_n, 2), "get_many_median_s": round(many.median, 3),
              "batch_get_calls": -(-n // 100)}
    checks = {"setup ingested every row": report.failed == 0,
              "get_many returned every id with the ingested values": all(_same_values(f, frame) for f in frames),
              "the loop returned the same values": loop_agrees}
    return [Result("P5", "online get of 10,000 ids: get_many vs a sequential GetRecord loop", loop_for_n / many.median,
                   {"name": "sequential boto3 get_record loop", "seconds_for_ids": round(loop_for_n, 2)}, TARGET,
                   params, unit="x", checks=checks)]

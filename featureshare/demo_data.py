"""Deterministic, realistic demo data: feature histories with several versions per key, and labelled entities.

Used by ``make demo`` / ``featureshare local demo``, the notebooks and the benchmarks. Everything derives from
one seed, so two runs produce the same frames.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["DemoData", "generate"]

COUNTRIES = ("DE", "FR", "GB", "IN", "JP", "US", "BR")
KEYWORDS = ("shoes", "laptop", "coffee", "tent", "guitar", "lamp", "novel", "camera")
START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class DemoData:
    """Frames for the two central groups, the local group, the entity (label) table and the deletes."""

    users: pd.DataFrame
    sessions: pd.DataFrame
    keywords: pd.DataFrame
    entities: pd.DataFrame
    deletes: pd.DataFrame  # user_id + event_time of soft deletes in ``sessions``


def _versions(rng: np.random.Generator, keys: np.ndarray, max_versions: int, days: int) -> pd.DataFrame:
    """Rows of (user_id, event_time): 1..max_versions versions per key at random hours within ``days``."""
    counts = rng.integers(1, max_versions + 1, size=len(keys))
    user_ids = np.repeat(keys, counts)
    offsets = rng.integers(0, days * 24 * 3600, size=len(user_ids))
    times = pd.to_datetime(START) + pd.to_timedelta(offsets, unit="s")
    frame = pd.DataFrame({"user_id": user_ids, "event_time": times})
    return frame.sort_values(["user_id", "event_time"], kind="stable").reset_index(drop=True)


def generate(n_users: int = 300, *, days: int = 14, seed: int = 7) -> DemoData:
    """Generate the demo's histories: ``users`` and ``sessions`` (central), ``keywords`` (local)."""
    rng = np.random.default_rng(seed)
    keys = np.array([f"u{i:05d}" for i in range(n_users)])

    users = _versions(rng, keys, 3, days)
    users["country"] = rng.choice(COUNTRIES, size=len(users))
    users["lifetime_value"] = np.round(rng.gamma(2.0, 40.0, size=len(users)), 2)
    users["orders"] = rng.integers(0, 60, size=len(users)).astype("int64")

    sessions = _versions(rng, keys[: int(n_users * 0.9)], 6, days)  # some users never had a session
    sessions["sessions_7d"] = rng.integers(0, 40, size=len(sessions)).astype("int64")
    sessions["avg_session_minutes"] = np.round(rng.exponential(7.5, size=len(sessions)), 3)
    # The sessions group keeps Fractional (epoch seconds) event times, the others ISO-8601 strings.
    sessions["event_time"] = (sessions["event_time"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()

    keywords = _versions(rng, keys, 4, days)
    keywords["top_keyword"] = rng.choice(KEYWORDS, size=len(keywords))
    keywords["keyword_searches"] = rng.integers(1, 200, size=len(keywords)).astype("int64")

    deleted = rng.choice(keys[: int(n_users * 0.9)], size=max(1, n_users // 50), replace=False)
    delete_times = pd.to_datetime(START) + pd.to_timedelta(
        rng.integers(days * 24 * 3600 // 2, days * 24 * 3600, size=len(deleted)), unit="s")
    deletes = pd.DataFrame({"user_id": deleted, "event_time": delete_times}).sort_values("user_id",
                                                                                        ignore_index=True)

    entity_keys = rng.choice(keys, size=n_users * 2)
    label_offsets = rng.integers(2 * 24 * 3600, (days + 1) * 24 * 3600, size=len(entity_keys))
    entities = pd.DataFrame({
        "user_id": entity_keys,
        "label_time": pd.to_datetime(START) + pd.to_timedelta(label_offsets, unit="s"),
        "churned": rng.random(len(entity_keys)) < 0.2,
    })
    return DemoData(users=users, sessions=sessions, keywords=keywords, entities=entities, deletes=deletes)

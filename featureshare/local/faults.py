"""Injectable faults for the embedded Feature Store runtime (latency, throttling, 5xx, unprocessed entries).

One seeded RNG behind one lock, so a given seed and a given sequence of calls always produce the same
faults. Emulation limit: with concurrent callers the *order* in which threads draw from the RNG is up to the
scheduler, so only the overall rates (not which call fails) are reproducible under concurrency.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass

from featureshare.errors import ValidationError

THROTTLE = "ThrottlingException"
SERVICE_UNAVAILABLE = "ServiceUnavailable"
INTERNAL_FAILURE = "InternalFailure"
UNPROCESSED = "Unprocessed"


@dataclass(frozen=True)
class FaultConfig:
    """Rates are probabilities per runtime call (``unprocessed_rate``: per batch entry / identifier)."""

    latency_ms: float = 0.0
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    unprocessed_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = [f"{name} must be within [0, 1], got {value}"
                    for name, value in (("throttle_rate", self.throttle_rate), ("error_rate", self.error_rate),
                                        ("unprocessed_rate", self.unprocessed_rate))
                    if not 0.0 <= value <= 1.0]
        if self.latency_ms < 0:
            problems.append(f"latency_ms must be >= 0, got {self.latency_ms}")
        if self.throttle_rate + self.error_rate > 1.0:
            problems.append("throttle_rate + error_rate must not exceed 1")
        if problems:
            raise ValidationError(problems[0], field="faults", value=self, problems=problems)


@dataclass(frozen=True)
class InjectedFault:
    """An error the runtime must answer instead of doing the work."""

    status: int
    code: str
    message: str


class FaultInjector:
    """Decides, per call, whether to delay, fail, or leave batch items unprocessed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config = FaultConfig()
        self._rng = random.Random()
        self._counts: Counter[str] = Counter()

    @property
    def config(self) -> FaultConfig:
        return self._config

    def configure(self, config: FaultConfig) -> None:
        """Replace the fault configuration and re-seed the RNG; counts restart from zero."""
        with self._lock:
            self._config = config
            self._rng = random.Random(config.seed)
            self._counts = Counter()

    def clear(self) -> None:
        """No more faults (counts are kept until the next ``configure``)."""
        with self._lock:
            self._config = FaultConfig()

    @property
    def counts(self) -> dict[str, int]:
        """Faults injected so far by kind: ThrottlingException, ServiceUnavailable, InternalFailure, Unprocessed."""
        with self._lock:
            return dict(self._counts)

    def before_call(self) -> InjectedFault | None:
        """Sleep the configured latency, then maybe return an error to answer with."""
        with self._lock:
            config = self._config
            draw = self._rng.random() if (config.throttle_rate or config.error_rate) else 1.0
            coin = self._rng.random() if draw < config.throttle_rate + config.error_rate else 0.0
            fault = None
            if draw < config.throttle_rate:
                fault = InjectedFault(400, THROTTLE, "Rate exceeded (injected fault)")
            elif draw < config.throttle_rate + config.error_rate:
                fault = (InjectedFault(503, SERVICE_UNAVAILABLE, "Service unavailable (injected fault)")
                         if coin < 0.5 else InjectedFault(500, INTERNAL_FAILURE, "Internal failure (injected fault)"))
            if fault is not None:
                self._counts[fault.code] += 1
        if config.latency_ms:
            time.sleep(config.latency_ms / 1000.0)
        return fault

    def unprocessed(self) -> bool:
        """True if this batch item should be returned as unprocessed."""
        with self._lock:
            rate = self._config.unprocessed_rate
            if not rate or self._rng.random() >= rate:
                return False
            self._counts[UNPROCESSED] += 1
            return True

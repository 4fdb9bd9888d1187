"""High-throughput ingestion: DataFrames or iterables -> ``BatchWriteRecord`` (or ``PutRecord``), with a report.

Pipeline, per chunk of at most ``chunk_size`` rows (so memory is bounded by the chunk size for iterables):

1. convert each column to Feature Store strings, vectorised (:mod:`featureshare.values`); rows with a missing
   record id or event time, or a value that cannot be converted, become failures with their row position;
2. pack the remaining records 25 to a ``BatchWriteRecord`` call and send them from a thread pool of
   ``max_in_flight`` workers, on a client whose connection pool is as large and whose own retries are off
   (so the report's counts are honest);
3. retry ``UnprocessedEntries``, per-entry errors and whole calls that failed with throttling, 5xx or an
   expired token, with full-jitter exponential backoff, at most ``max_attempts`` sends per entry;
4. report everything that finally failed (row position, record id, event time, error code, message) in
   :class:`IngestReport` and, with ``failures_path``, in a Parquet or JSONL file. No record is dropped
   silently.

``on_error="raise"`` validates first and raises :class:`IngestionError` without sending anything when rows
are invalid. For a DataFrame (or a list of DataFrames / dicts) this covers all the data; a one-shot iterator
cannot be read twice, so there each chunk is validated before any of it is sent, and earlier chunks may
already be written. Failures while sending are retried, the rest of the data is still written, and the
error is raised at the end with the full report.

Problems with a whole column (a column that is not a feature, naive datetimes without ``timezone=``) raise
:class:`ValidationError` when the chunk holding them is reached; for a DataFrame that is before anything is sent.

``processes=N`` spreads chunks over N spawned processes; each rebuilds the session from
``session.to_spec()`` (an assumed role is assumed again in the worker, never replaced by the worker's own
default credentials) and the group from its ARN.

Interruptions (Ctrl-C, a worker that crashes): queued batches are cancelled, running ones finish, and every
row not known to be written becomes a failure -- ``NotSent`` (never sent), ``Interrupted`` (its batch
crashed mid-call: it may or may not have been written) and one ``NotRead`` entry at the first row never
read -- written to ``failures_path`` before the exception propagates. :func:`pending_rows` turns that
record back into the rows to ingest to resume. A KeyboardInterrupt stays a KeyboardInterrupt; a crashed
worker raises :class:`IngestionError` with the report. Limit: with ``processes=N`` an interruption is not
accounted row by row (chunks of finished workers are merged; re-ingest the rest).
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import functools
import logging
import multiprocessing
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from featureshare.errors import FeatureshareError, IngestionError, ValidationError, error_code, http_status
from featureshare.group_spec import ttl_duration, ttl_problems
from featureshare.problems import Problem, raise_problems
from featureshare.sources import DEFAULT_CHUNK_SIZE
from featureshare.values import format_event_times, to_value_strings

if TYPE_CHECKING:
    from featureshare.groups import FeatureGroup
    from featureshare.session import AccountSession, SessionSpec

__all__ = ["DEFAULT_CHUNK_SIZE", "MAX_BATCH", "MAX_RECORD_BYTES", "IngestReport", "RowFailure", "ingest",
           "pending_rows", "retryable", "writer_client"]

logger = logging.getLogger(__name__)

MAX_BATCH = 25
#: Feature Store's limit on one record (names plus values, UTF-8), checked before sending.
MAX_RECORD_BYTES = 350 * 1024
DEFAULT_BASE_DELAY = 0.05
DEFAULT_MAX_DELAY = 5.0
RUNTIME_SERVICE = "sagemaker-featurestore-runtime"
_RETRYABLE_CODES = frozenset({"ServiceUnavailable", "InternalFailure", "InternalServerError", "InternalError",
                              "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException",
                              "ExpiredToken", "ExpiredTokenException", "RequestExpired"})
_UNSUPPORTED_CODES = frozenset({"UnknownOperationException", "UnknownOperation", "InvalidAction",
                                "NotImplemented", "NotImplementedException"})
_TARGET_STORES = frozenset({"OnlineStore", "OfflineStore"})
#: Failure codes of an interrupted ingestion (see :func:`pending_rows`).
NOT_SENT = "NotSent"
INTERRUPTED = "Interrupted"
NOT_READ = "NotRead"
_FAILURE_COLUMNS = ["position", "record_id", "event_time", "code", "message"]
#: What a write call raises that is reported per row (or retried) rather than propagated.
_CALL_ERRORS = (ClientError, BotoConnectionError, HTTPClientError)


def is_throttle(code: str) -> bool:
    return code.startswith("Throttl") or code in ("TooManyRequestsException", "SlowDown",
                                                  "ProvisionedThroughputExceededException")


def retryable(code: str, status: int | None = None) -> bool:
    """Whether an error code (or HTTP status) is worth retrying: throttling, 5xx, expired credentials."""
    return is_throttle(code) or code in _RETRYABLE_CODES or (status is not None and status >= 500)


def backoff_delay(rng: random.Random | _Jitter, attempt: int, *, base: float = DEFAULT_BASE_DELAY,
                  cap: float = DEFAULT_MAX_DELAY) -> float:
    """Seconds to wait before retry ``attempt``: full jitter (AWS architecture blog), uniform up to
    ``min(cap, base * 2 ** attempt)``, which spreads the retries of many threads apart."""
    return rng.uniform(0, min(cap, base * 2 ** attempt))


@dataclass(frozen=True)
class RowFailure:
    """A record that was not written: its row position in the input (0-based, across chunks), ids, why."""

    position: int
    record_id: str | None
    event_time: str | None
    code: str
    message: str


@dataclass
class IngestReport:
    """What an ingestion did. ``retries`` counts re-sent requests, ``throttles`` throttling responses
    (whole calls or single entries), ``calls`` every request sent."""

    group: str
    rows_seen: int = 0
    rows_written: int = 0
    failures: list[RowFailure] = field(default_factory=list)
    retries: int = 0
    throttles: int = 0
    calls: int = 0
    elapsed_s: float = 0.0
    failures_path: str | None = None

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def rows_per_s(self) -> float:
        return self.rows_written / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def failures_frame(self) -> pd.DataFrame:
        """The failures as a DataFrame (columns position, record_id, event_time, code, message)."""
        return pd.DataFrame([vars(f) for f in self.failures], columns=_FAILURE_COLUMNS)

    def merge(self, other: IngestReport) -> None:
        self.rows_seen += other.rows_seen
        self.rows_written += other.rows_written
        self.failures.extend(other.failures)
        self.retries += other.retries
        self.throttles += other.throttles
        self.calls += other.calls

    def summary(self) -> str:
        return (f"{self.group}: {self.rows_written}/{self.rows_seen} rows written, {self.failed} failed, "
                f"{self.retries} retries, {self.throttles} throttles, {self.elapsed_s:.2f}s "
                f"({self.rows_per_s:,.0f} rows/s)")


@dataclass(frozen=True)
class _Options:
    max_in_flight: int
    batch: bool
    target_stores: tuple[str, ...] | None
    ttl: dict[str, Any] | None
    timezone: Any
    chunk_size: int
    max_attempts: int
    base_delay: float
    max_delay: float
    seed: int | None


@dataclass
class _Entry:
    position: int
    record_id: str | None
    event_time: str | None
    record: list[dict[str, str]]


@dataclass
class _Batch:
    """Up to 25 entries sent together; ``written`` holds the positions confirmed written so far."""

    entries: list[_Entry]
    written: set[int] = field(default_factory=set)


# -------------------------------------------------------------------------------------------- preparing

def _chunks(data: Any, chunk_size: int) -> Iterator[pd.DataFrame]:
    """DataFrame slices of at most ``chunk_size`` rows from a DataFrame or an iterable of DataFrames/dicts."""
    if isinstance(data, pd.DataFrame):
        for start in range(0, len(data), chunk_size):
            yield data.iloc[start:start + chunk_size]
        return
    if isinstance(data, Mapping | str | bytes) or not isinstance(data, Iterable):
        raise ValidationError(f"cannot ingest a {type(data).__name__}", field="data", value=type(data).__name__,
                              hint="pass a DataFrame, an iterable of DataFrames, or an iterable of dicts")
    rows: list[Mapping[str, Any]] = []
    for item in data:
        if isinstance(item, pd.DataFrame):
            if rows:
                yield pd.DataFrame.from_records(rows)
                rows = []
            yield from _chunks(item, chunk_size)
        elif isinstance(item, Mapping):
            rows.append(item)
            if len(rows) >= chunk_size:
                yield pd.DataFrame.from_records(rows)
                rows = []
        else:
            raise ValidationError(f"cannot ingest an item of type {type(item).__name__}", field="data",
                                  value=type(item).__name__, hint="items must be DataFrames or dicts")
    if rows:
        yield pd.DataFrame.from_records(rows)


def _check_columns(chunk: pd.DataFrame, group: FeatureGroup) -> None:
    features = group.features
    unknown = [str(c) for c in chunk.columns if c not in features]
    missing = [c for c in (group.record_id, group.event_time) if c not in chunk.columns]
    problems = [f"column {c!r} is not a feature of {group.name}" for c in unknown]
    problems += [f"column {c!r} (the {'record id' if c == group.record_id else 'event time'}) is missing"
                 for c in missing]
    if problems:
        raise ValidationError(f"data does not fit feature group {group.name!r}: " + "; ".join(problems),
                              field="columns", value=unknown or missing, problems=problems,
                              hint="drop extra columns, or add the features (ensure_group(add_features=True))")


def prepare(chunk: pd.DataFrame, group: FeatureGroup, *, start: int, timezone: Any = None
            ) -> tuple[list[_Entry], list[RowFailure]]:
    """Convert a chunk to records (vectorised per column); rows that cannot be sent become failures."""
    _check_columns(chunk, group)
    features = group.features
    names: list[str] = []
    columns: list[Any] = []
    row_errors: dict[int, list[str]] = defaultdict(list)
    for column in chunk.columns:
        name = str(column)
        if name == group.event_time:
            converted = format_event_times(chunk[column], kind=features[name], timezone=timezone, column=name)
        else:
            converted = to_value_strings(chunk[column], features[name], timezone=timezone, column=name)
        for i in pd.notna(converted.errors).nonzero()[0].tolist():
            row_errors[i].append(f"{name}: {converted.errors[i]}")
        names.append(name)
        columns.append(converted.values)
    id_at, time_at = names.index(group.record_id), names.index(group.event_time)
    entries: list[_Entry] = []
    failures: list[RowFailure] = []
    # The one per-row loop: rows of plain Python strings, zipped from the converted columns.
    for i, row in enumerate(zip(*(c.tolist() for c in columns), strict=True)):
        record_id, event_time = row[id_at], row[time_at]
        if not record_id or event_time is None or i in row_errors:  # "" is as missing to Feature Store
            failures.append(_invalid_row(start + i, record_id or None, event_time, row_errors.get(i)))
            continue
        record = [{"FeatureName": n, "ValueAsString": v} for n, v in zip(names, row, strict=True) if v is not None]
        size = _record_bytes(record)
        if size > MAX_RECORD_BYTES:
            failures.append(RowFailure(start + i, record_id, event_time, "RecordTooLarge",
                                       f"the record is {size} bytes; Feature Store accepts at most "
                                       f"{MAX_RECORD_BYTES} bytes per record"))
            continue
        entries.append(_Entry(start + i, record_id, event_time, record))
    return entries, failures


def _record_bytes(record: list[dict[str, str]]) -> int:
    chars = sum(len(v["FeatureName"]) + len(v["ValueAsString"]) for v in record)
    if chars * 4 <= MAX_RECORD_BYTES:  # UTF-8 needs at most 4 bytes a character: encode only when it matters
        return chars
    # surrogatepass: a lone surrogate must not stop the ingestion here (Feature Store answers for that record)
    return sum(len(v["FeatureName"].encode()) + len(v["ValueAsString"].encode("utf-8", "surrogatepass"))
               for v in record)


def _invalid_row(position: int, record_id: str | None, event_time: str | None,
                 problems: list[str] | None) -> RowFailure:
    if problems:
        return RowFailure(position, record_id, event_time, "InvalidValue", "; ".join(problems))
    if record_id is None:
        return RowFailure(position, None, event_time, "MissingRecordIdentifier",
                          "the record id is missing or empty")
    return RowFailure(position, record_id, None, "MissingEventTime", "the event time is missing")


# ---------------------------------------------------------------------------------------------- sending

def runtime_client(session: AccountSession, max_in_flight: int = 8, **config: Any) -> Any:
    """A Feature Store runtime client (cached by the session, so it is one per setting) whose connection pool
    is as large as ``max_in_flight`` (at least 10), with botocore's own retries off: its callers retry and
    count every attempt themselves. ``config`` adds botocore ``Config`` settings."""
    return session.client(RUNTIME_SERVICE, max_pool_connections=max(10, max_in_flight),
                          retries={"total_max_attempts": 1, "mode": "standard"}, **config)


def writer_client(session: AccountSession, max_in_flight: int = 8) -> Any:
    """The Feature Store runtime client ingestion writes with (see :func:`runtime_client`).

    botocore's parameter validation is off because every entry was validated when it was prepared (names from
    the group's schema, values converted and sized), which roughly halves the client's CPU per row. Register
    event handlers on this client to observe ingestion's calls.
    """
    return runtime_client(session, max_in_flight, parameter_validation=False)


class _Sender:
    """Sends batches of entries with retries; thread-safe counters; one per ingestion."""

    def __init__(self, group: FeatureGroup, options: _Options) -> None:
        self.group = group
        self.options = options
        self.client = writer_client(group.store.session, options.max_in_flight)
        self.use_batch = options.batch and hasattr(self.client, "batch_write_record")
        self.lock = threading.Lock()
        self.written = 0
        self.retries = 0
        self.throttles = 0
        self.calls = 0
        self._seed = options.seed

    def _count(self, *, written: int = 0, retries: int = 0, throttles: int = 0, calls: int = 0) -> None:
        with self.lock:
            self.written += written
            self.retries += retries
            self.throttles += throttles
            self.calls += calls

    def _attempt(self, rng: _Jitter, attempt: int) -> None:
        """Count the call about to be sent; before a retry (``attempt`` > 0) count it and wait its backoff."""
        if attempt:
            self._count(retries=1)
            time.sleep(backoff_delay(rng, attempt, base=self.options.base_delay, cap=self.options.max_delay))
        self._count(calls=1)

    def _call_error(self, exc: Exception) -> tuple[str, str, bool]:
        """``(code, message, worth retrying)`` of a failed write call; counts throttles. Connection errors
        are always worth retrying."""
        if not isinstance(exc, ClientError):
            return type(exc).__name__, str(exc), True
        code, status = error_code(exc), http_status(exc)
        if is_throttle(code):
            self._count(throttles=1)
        message = exc.response.get("Error", {}).get("Message", str(exc))
        return code or str(status), message, retryable(code, status)

    def _entry_request(self, entry: _Entry) -> dict[str, Any]:
        request: dict[str, Any] = {"FeatureGroupName": self.group.arn, "Record": entry.record}
        if self.options.target_stores:
            request["TargetStores"] = list(self.options.target_stores)
        return request

    def send(self, batch: _Batch, batch_index: int) -> list[RowFailure]:
        """Send one batch; ``batch.written`` records each entry as soon as it is known to be written, so a
        crash midway (or Ctrl-C) can tell what this batch did."""
        rng = _Jitter(None if self._seed is None else self._seed * 1_000_003 + batch_index)
        if self.use_batch:
            failures, unsupported = self._send_batch(batch.entries, rng, batch.written)
            if not unsupported:
                return failures
            logger.warning("BatchWriteRecord is not available here; falling back to PutRecord")
            self.use_batch = False
        failures = []
        for entry in batch.entries:
            failure = self._send_put(entry, rng)
            if failure is not None:
                failures.append(failure)
            else:
                batch.written.add(entry.position)
        return failures

    def _send_batch(self, entries: list[_Entry], rng: _Jitter,
                    written: set[int]) -> tuple[list[RowFailure], bool]:
        by_key: dict[Any, list[_Entry]] | None = None  # built when a reply first names entries
        pending = entries
        failures: list[RowFailure] = []
        extra = {"TtlDuration": self.options.ttl} if self.options.ttl else {}
        for attempt in range(self.options.max_attempts):
            self._attempt(rng, attempt)
            try:
                reply = self.client.batch_write_record(
                    Entries=[self._entry_request(e) for e in pending], **extra)
            except _CALL_ERRORS as exc:
                code, message, again = self._call_error(exc)
                if code in _UNSUPPORTED_CODES and not failures and attempt == 0:
                    return [], True
                if not again or attempt == self.options.max_attempts - 1:
                    return failures + [_failure(e, code, message) for e in pending], False
                continue
            errors, unprocessed = reply.get("Errors", []), reply.get("UnprocessedEntries", [])
            self._count(written=len(pending) - len(errors) - len(unprocessed))
            if (errors or unprocessed) and by_key is None:
                by_key = defaultdict(list)
                for entry in pending:
                    by_key[_record_key(entry.record)].append(entry)
            retry: list[_Entry] = []
            for error in errors:
                entry = _take(by_key, error.get("Entry", {}))
                code = error.get("ErrorCode", "")
                if is_throttle(code):
                    self._count(throttles=1)
                if retryable(code):
                    retry.append(entry)
                else:
                    failures.append(_failure(entry, code, error.get("ErrorMessage", "")))
            retry += [_take(by_key, u) for u in unprocessed]
            for entry in retry:
                by_key[_record_key(entry.record)].append(entry)
            not_written = {e.position for e in retry} | {f.position for f in failures}
            written.update(e.position for e in pending if e.position not in not_written)
            pending = retry
            if not pending:
                return failures, False
        return failures + [_failure(e, "Unprocessed", f"still unprocessed after {self.options.max_attempts} "
                                                      "attempts") for e in pending], False

    def _send_put(self, entry: _Entry, rng: _Jitter) -> RowFailure | None:
        request = self._entry_request(entry)
        if self.options.ttl:
            request["TtlDuration"] = self.options.ttl
        for attempt in range(self.options.max_attempts):
            self._attempt(rng, attempt)
            try:
                self.client.put_record(**request)
            except _CALL_ERRORS as exc:
                code, message, again = self._call_error(exc)
                if not again or attempt == self.options.max_attempts - 1:
                    return _failure(entry, code, message)
                continue
            self._count(written=1)
            return None
        raise AssertionError("unreachable: the last attempt returns")


class _Jitter:
    """The backoff jitter of one batch: a ``random.Random`` seeded only when a retry first needs it (seeding
    from the OS on every batch cost more than the rest of the retry logic)."""

    def __init__(self, seed: int | None) -> None:
        self._seed = seed
        self._rng: random.Random | None = None

    def uniform(self, low: float, high: float) -> float:
        if self._rng is None:
            self._rng = random.Random(self._seed)
        return self._rng.uniform(low, high)


def _take(by_key: dict[Any, list[_Entry]] | None, returned: Mapping[str, Any]) -> _Entry:
    """The entry we sent that a returned (errored or unprocessed) entry echoes."""
    candidates = by_key.get(_record_key(returned.get("Record", []))) if by_key is not None else None
    if not candidates:
        # The service echoed an entry we did not send (or twice): a service bug, but never lose a row over it.
        raise IngestionError(f"BatchWriteRecord returned an entry that was not sent: {returned!r}")
    return candidates.pop()


def _record_key(record: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    return tuple((v["FeatureName"], v.get("ValueAsString", "")) for v in record)


def _failure(entry: _Entry, code: str, message: str) -> RowFailure:
    return RowFailure(entry.position, entry.record_id, entry.event_time, code, message)


# -------------------------------------------------------------------------------------------- ingestion

def _options(group: FeatureGroup, max_in_flight: int, batch: bool, target_stores: Sequence[str] | None,
             ttl: dt.timedelta | None, timezone: Any, chunk_size: int, max_attempts: int, base_delay: float,
             max_delay: float, seed: int | None, on_error: str, failures_path: str | Path | None,
             processes: int | None) -> _Options:
    problems = []
    if not isinstance(max_in_flight, int) or max_in_flight < 1:
        problems.append(Problem("max_in_flight", max_in_flight, "must be a positive integer"))
    if on_error not in ("report", "raise"):
        problems.append(Problem("on_error", on_error, "must be 'report' or 'raise'"))
    stores = tuple(target_stores) if target_stores is not None else None
    if stores is not None and (not stores or not set(stores) <= _TARGET_STORES):
        problems.append(Problem("target_stores", target_stores, "a non-empty subset of OnlineStore, OfflineStore"))
    ttl_invalid = ttl_problems(ttl) if ttl is not None else []
    problems += ttl_invalid
    if ttl is not None and not ttl_invalid and not group.online_enabled:
        problems.append(Problem("ttl", ttl, f"{group.name} has no online store, so a TTL means nothing"))
    if not isinstance(chunk_size, int) or chunk_size < 1:
        problems.append(Problem("chunk_size", chunk_size, "must be a positive integer"))
    if not isinstance(max_attempts, int) or max_attempts < 1:
        problems.append(Problem("max_attempts", max_attempts, "must be a positive integer"))
    for name, delay in (("base_delay", base_delay), ("max_delay", max_delay)):
        # Checked here: a negative delay would only fail in time.sleep, after some records were written.
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay < float("inf"):
            problems.append(Problem(name, delay, "must be a non-negative number of seconds"))
    if failures_path is not None and Path(failures_path).suffix.lower() not in (".parquet", ".pq", ".jsonl",
                                                                                ".ndjson", ".json"):
        problems.append(Problem("failures_path", str(failures_path), "must end in .parquet or .jsonl"))
    if processes is not None and (not isinstance(processes, int) or processes < 1):
        problems.append(Problem("processes", processes, "must be a positive integer"))
    raise_problems("invalid ingest options", problems)
    return _Options(max_in_flight, batch, stores, ttl_duration(ttl) if ttl else None, timezone, chunk_size,
                    max_attempts, base_delay, max_delay, seed)


def ingest(
    group: FeatureGroup,
    data: pd.DataFrame | Iterable[pd.DataFrame] | Iterable[Mapping[str, Any]],
    *,
    max_in_flight: int = 8,
    batch: bool = True,
    target_stores: Sequence[str] | None = None,
    ttl: dt.timedelta | None = None,
    progress: bool | None = None,
    failures_path: str | Path | None = None,
    on_error: str = "report",
    timezone: Any = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    processes: int | None = None,
    max_attempts: int = 8,
    base_delay: float = DEFAULT_BASE_DELAY,
    max_delay: float = DEFAULT_MAX_DELAY,
    seed: int | None = None,
) -> IngestReport:
    """Write ``data`` into ``group``; return an :class:`IngestReport` (see the module docstring).

    ``timezone`` is required for naive datetimes and offset-less timestamp strings (never guessed).
    ``target_stores`` limits writes to ``["OnlineStore"]`` or ``["OfflineStore"]``; ``ttl`` sets a per-record
    online TTL. ``progress=True`` shows a tqdm bar. ``seed`` makes backoff jitter reproducible.

    >>> report = group.ingest(df, max_in_flight=16, failures_path="failed.parquet")  # doctest: +SKIP
    >>> report.rows_written, report.failed  # doctest: +SKIP
    (20000, 0)
    """
    options = _options(group, max_in_flight, batch, target_stores, ttl, timezone, chunk_size, max_attempts,
                       base_delay, max_delay, seed, on_error, failures_path, processes)
    started = time.monotonic()
    report = IngestReport(group=group.name)
    if on_error == "raise" and isinstance(data, pd.DataFrame | list | tuple):
        _validate_all(group, data, options, report)
    try:
        if processes is not None and processes > 1:
            _ingest_processes(group, data, options, processes, report, progress, on_error)
        else:
            _ingest_threads(group, data, options, report, progress, on_error)
    except BaseException as exc:
        _finish(report, started, failures_path)
        replacement = _interrupted(exc, report, group.name)
        if replacement is exc:
            raise
        raise replacement from exc
    _finish(report, started, failures_path)
    if on_error == "raise" and report.failures:
        raise IngestionError(f"{report.failed} of {report.rows_seen} records were not written to {group.name}",
                             report=report, hint="see error.report.failures")
    return report


def _finish(report: IngestReport, started: float, failures_path: str | Path | None) -> None:
    report.elapsed_s = time.monotonic() - started
    report.failures.sort(key=lambda f: f.position)
    if failures_path is not None:
        report.failures_path = str(write_failures(report, failures_path))
    logger.info("ingest %s", report.summary())


def _interrupted(exc: BaseException, report: IngestReport, name: str) -> BaseException:
    """The exception to raise when an ingestion stops early: Ctrl-C and featureshare's own errors stay what
    they are (with a note saying where the record of the unwritten rows is); a crashed worker becomes an
    :class:`IngestionError` carrying the report."""
    where = (f"the rows not written are listed in {report.failures_path}" if report.failures_path
             else "pass failures_path= to keep a list of them")
    note = (f"featureshare: {report.rows_written} of {report.rows_seen} rows read were written to {name} "
            f"before the ingestion stopped; {where} (resume with featureshare.ingest.pending_rows)")
    if isinstance(exc, FeatureshareError | KeyboardInterrupt | SystemExit | GeneratorExit):
        if report.rows_written or report.calls:
            exc.add_note(note)
        if isinstance(exc, IngestionError) and exc.report is None:
            exc.report = report
        return exc
    return IngestionError(f"the ingestion into {name} stopped: {type(exc).__name__}: {exc}", report=report,
                          hint=note.removeprefix("featureshare: "))


def pending_rows(data: pd.DataFrame, failures: IngestReport | pd.DataFrame | str | Path) -> pd.DataFrame:
    """The rows of ``data`` that an earlier ingestion of the same ``data`` did not write, from its report or
    its failures file: every listed position, and with a ``NotRead`` entry every row from there on.

    Ingest the result to resume: rows already written are not sent again, so the offline store gets no
    duplicates (rows marked ``Interrupted`` may have been written; re-sending them is harmless online and
    may repeat them offline). The result keeps ``data``'s index, so its report's positions map back through
    ``result.index``. Iterators cannot be re-read: skip the first ``NotRead`` position rows yourself.

    >>> report = ingest(group, df, failures_path="failed.parquet")  # interrupted   # doctest: +SKIP
    >>> ingest(group, pending_rows(df, "failed.parquet"))                          # doctest: +SKIP
    """
    if isinstance(failures, IngestReport):
        frame = failures.failures_frame()
    elif isinstance(failures, pd.DataFrame):
        frame = failures
    else:
        path = Path(failures)
        frame = (pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq")
                 else pd.read_json(path, orient="records", lines=True, dtype={"record_id": str}))
    positions = frame["position"].astype("int64")
    not_read = positions[frame["code"] == NOT_READ]
    wanted = set(positions[frame["code"] != NOT_READ].tolist())
    if len(not_read):
        wanted.update(range(int(not_read.min()), len(data)))
    return data.iloc[sorted(p for p in wanted if p < len(data))]


def _validate_all(group: FeatureGroup, data: Any, options: _Options, report: IngestReport) -> None:
    """Convert everything once without sending; raise if any row is invalid (nothing has been sent)."""
    start = 0
    failures: list[RowFailure] = []
    for chunk in _chunks(data, options.chunk_size):
        failures += prepare(chunk, group, start=start, timezone=options.timezone)[1]
        start += len(chunk)
    if failures:
        report.rows_seen = start
        report.failures = failures
        raise IngestionError(f"{len(failures)} of {start} rows are invalid; nothing was sent to {group.name}",
                             report=report, hint="see error.report.failures")


def _progress_bar(progress: bool | None, data: Any) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=len(data) if isinstance(data, pd.DataFrame) else None, unit="rows", desc="ingest")


@dataclass
class _Progress:
    """Where a threaded ingestion is, so an interruption can say exactly what was and was not sent.

    ``pending`` maps each submitted, not yet collected batch to its entries; ``unsubmitted`` holds the
    prepared entries of the current chunk not yet handed to a worker; ``submitting`` is the batch being handed
    over (an interruption there leaves unknown whether the pool got it: if it did, the pool still runs it, and
    its ``written`` set says what it stored); ``unread_from`` is the position of the first input row not yet
    converted (``None`` once the input is exhausted)."""

    pending: dict[cf.Future[list[RowFailure]], _Batch] = field(default_factory=dict)
    unsubmitted: list[_Entry] = field(default_factory=list)
    submitting: _Batch | None = None
    unread_from: int | None = 0


def _ingest_threads(group: FeatureGroup, data: Any, options: _Options, report: IngestReport,
                    progress: bool | None, on_error: str) -> None:
    sender = _Sender(group, options)
    bar = _progress_bar(progress, data)
    state = _Progress()
    try:
        with cf.ThreadPoolExecutor(max_workers=options.max_in_flight, thread_name_prefix="ingest") as pool:
            try:
                _feed(pool, sender, group, data, options, report, state, bar, on_error)
                for future in list(state.pending):
                    _collect(future, state, report)
            except BaseException:
                for future in state.pending:
                    future.cancel()  # queued batches are not sent; running ones finish before the pool exits
                raise
    except BaseException:
        _account_for_interruption(state, report)
        raise
    finally:
        if bar is not None:
            bar.close()
        report.rows_written += sender.written
        report.retries += sender.retries
        report.throttles += sender.throttles
        report.calls += sender.calls


def _feed(pool: cf.ThreadPoolExecutor, sender: _Sender, group: FeatureGroup, data: Any, options: _Options,
          report: IngestReport, state: _Progress, bar: Any, on_error: str) -> None:
    """Read, convert and submit the input batch by batch; collects finished batches as it goes."""
    # At most 2 batches queued per worker: memory stays bounded however large the input.
    slots = threading.BoundedSemaphore(options.max_in_flight * 2)
    batch_index = 0
    start = 0

    def release(fut: cf.Future[Any], size: int) -> None:
        slots.release()
        if bar is not None:
            bar.update(size)

    for chunk in _chunks(data, options.chunk_size):
        state.unread_from = start
        entries, invalid = prepare(chunk, group, start=start, timezone=options.timezone)
        report.rows_seen += len(chunk)
        start += len(chunk)
        report.failures += invalid
        state.unsubmitted, state.unread_from = entries, start
        if invalid and on_error == "raise":
            state.unsubmitted = []
            break  # this chunk (of a one-shot iterator) is not sent; see the module docstring
        while state.unsubmitted:
            batch = _Batch(state.unsubmitted[:MAX_BATCH])
            slots.acquire()
            state.submitting = batch  # from here until it is in pending, a Ctrl-C leaves its fate to `written`
            state.unsubmitted = state.unsubmitted[MAX_BATCH:]
            future = pool.submit(sender.send, batch, batch_index)
            state.pending[future] = batch
            state.submitting = None
            batch_index += 1
            future.add_done_callback(functools.partial(release, size=len(batch.entries)))
        for future in [f for f in state.pending if f.done()]:
            _collect(future, state, report)
    state.unread_from = None


def _collect(future: cf.Future[list[RowFailure]], state: _Progress, report: IngestReport) -> None:
    report.failures += future.result()  # re-raises a worker's crash; the batch then stays pending
    del state.pending[future]


def _account_for_interruption(state: _Progress, report: IngestReport) -> None:
    """After an interruption: every row not known to be written becomes a failure with its position."""
    for future, batch in state.pending.items():
        if future.cancelled():
            report.failures += [_failure(e, NOT_SENT, "not sent: the ingestion was interrupted")
                                for e in batch.entries]
        elif future.exception() is not None:
            exc = future.exception()
            report.failures += [_failure(e, INTERRUPTED, f"its batch was interrupted ({type(exc).__name__}: "
                                                         f"{exc}); it may or may not have been written")
                                for e in batch.entries if e.position not in batch.written]
        else:
            report.failures += future.result()
    handing_over = state.submitting
    if handing_over is not None and all(b is not handing_over for b in state.pending.values()):
        # The pool has run it to the end (or never got it): what it did not store is listed.
        report.failures += [_failure(e, INTERRUPTED, "its batch was being handed to a worker when the ingestion "
                                                     "was interrupted; it was not written")
                            for e in handing_over.entries if e.position not in handing_over.written]
    in_hand = {e.position for e in handing_over.entries} if handing_over is not None else set()
    report.failures += [_failure(e, NOT_SENT, "not sent: the ingestion was interrupted")
                        for e in state.unsubmitted if e.position not in in_hand]
    if state.unread_from is not None:
        report.failures.append(RowFailure(state.unread_from, None, None, NOT_READ,
                                          f"rows from position {state.unread_from} on were not read"))
    state.pending, state.unsubmitted, state.submitting = {}, [], None


def write_failures(report: IngestReport, path: str | Path) -> Path:
    """Write ``report.failures`` as Parquet (``.parquet``/``.pq``) or JSON lines (``.jsonl``/``.ndjson``)."""
    target = Path(path)
    frame = report.failures_frame().astype({"position": "int64", "record_id": "str", "event_time": "str",
                                            "code": "str", "message": "str"})
    if target.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(target, index=False)
    else:
        frame.to_json(target, orient="records", lines=True)
    return target


# -------------------------------------------------------------------------------------------- processes

@dataclass(frozen=True)
class _WorkerTask:
    spec: SessionSpec
    group_arn: str
    chunk: pd.DataFrame
    start: int
    options: _Options


@functools.lru_cache(maxsize=4)
def _worker_group(spec: SessionSpec, group_arn: str) -> FeatureGroup:
    """In a worker process: the session rebuilt from its spec and the group, once per process (a process-local
    cache, so later chunks reuse the refreshing credentials and the clients)."""
    from featureshare.groups import FeatureStore
    from featureshare.session import AccountSession

    return FeatureStore(AccountSession.from_spec(spec)).group(group_arn)


def _worker(task: _WorkerTask) -> IngestReport:
    """Runs in a spawned process: ingest one chunk with threads, on the session rebuilt from its spec."""
    group = _worker_group(task.spec, task.group_arn)
    report = IngestReport(group=group.name)
    _ingest_threads(group, task.chunk, task.options, report, progress=False, on_error="report")
    report.failures = [RowFailure(f.position + task.start, f.record_id, f.event_time, f.code, f.message)
                       for f in report.failures]
    return report


def _ingest_processes(group: FeatureGroup, data: Any, options: _Options, processes: int, report: IngestReport,
                      progress: bool | None, on_error: str) -> None:
    spec = group.store.session.to_spec()
    bar = _progress_bar(progress, data)
    context = multiprocessing.get_context("spawn")  # fork would copy a session that is not fork-safe
    with cf.ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        pending: set[cf.Future[IngestReport]] = set()
        start = 0
        for chunk in _chunks(data, options.chunk_size):
            if on_error == "raise":
                invalid = prepare(chunk, group, start=start, timezone=options.timezone)[1]
                if invalid:
                    report.rows_seen += len(chunk)
                    report.failures += invalid
                    break
            if len(pending) >= processes * 2:  # bounded: at most two chunks queued per process
                done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                _merge_done(done, report, bar)
            pending.add(pool.submit(_worker, _WorkerTask(spec, group.arn, chunk, start, options)))
            start += len(chunk)
        _merge_done(cf.wait(pending).done, report, bar)
    if bar is not None:
        bar.close()


def _merge_done(done: Iterable[cf.Future[IngestReport]], report: IngestReport, bar: Any) -> None:
    for future in done:
        part = future.result()
        report.merge(part)
        if bar is not None:
            bar.update(part.rows_seen)

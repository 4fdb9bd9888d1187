"""The Athena API of the embedded AWS: query executions over :mod:`featureshare.local.athena_engine`.

``moto_internals`` routes StartQueryExecution, GetQueryExecution, GetQueryResults, StopQueryExecution,
ListQueryExecutions and BatchGetQueryExecution here: ``handle(action, account_id, region, params) -> dict``
(the JSON body of the answer), raising :class:`AthenaClientError` for request errors. Query state is kept
per (account, region); each query runs in its own worker thread, so it is QUEUED/RUNNING for a moment and
StopQueryExecution can cancel it.

Catalogs: ``AwsDataCatalog`` is the caller's own Glue; any other name must be an Athena data catalog of type
GLUE in the caller's account whose ``catalog-id`` parameter names the account whose Glue it reads.

Emulation limits:
- No IAM, bucket-policy or Lake Formation checks on the tables read (the embedded AWS checks cross-account
  access at the S3/Glue API, not inside Athena); ``AclConfiguration`` is recorded, not applied.
- Result files: ``<output>/<id>.csv`` for SELECT (header, every value quoted, NULL empty), ``<id>.txt``
  (tab-separated, no header) for SHOW/DESCRIBE and DDL, ``<id>-manifest.csv`` for CTAS/UNLOAD; no
  ``.metadata`` files. Result reuse, prepared statements, engine versions and capacity are not emulated.
"""

from __future__ import annotations

import atexit
import base64
import io
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from featureshare.local import moto_internals as mi
from featureshare.local.athena_engine import bind_parameters, classify_statement, run_statement
from featureshare.local.athena_model import (
    DEFAULT_CATALOG,
    AthenaQueryError,
    CancelToken,
    Column,
    Partition,
    QueryCancelledError,
    QueryContext,
    S3Object,
    StatementResult,
    TableMeta,
    athena_text,
)
from featureshare.local.policy_enforcement import Actor, authorize_reads, current_actor

logger = logging.getLogger(__name__)

__all__ = ["AthenaClientError", "QueryState", "handle", "reset"]

_MAX_RESULTS = 1000
_MAX_LIST = 50
_JOIN_TIMEOUT_S = 5.0


class AthenaClientError(Exception):
    """A request error; ``moto_internals`` answers it as HTTP 400 with ``__type`` = ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


class QueryState:
    """Athena's ``Status.State`` values."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    FINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})


def _invalid(message: str) -> AthenaClientError:
    return AthenaClientError("InvalidRequestException", message)


# ------------------------------------------------------------------------------------------------ resolver

def _is_parquet(table: dict[str, Any]) -> str:
    sd = table.get("StorageDescriptor") or {}
    params = {k.lower(): str(v).lower() for k, v in (table.get("Parameters") or {}).items()}
    if params.get("table_type") == "iceberg":
        return "iceberg"
    hints = " ".join([str(sd.get("InputFormat", "")), str((sd.get("SerdeInfo") or {}).get("SerializationLibrary", "")),
                      params.get("classification", "")]).lower()
    return "parquet" if "parquet" in hints else (params.get("classification") or "textfile")


def _table_input(meta: TableMeta) -> dict[str, Any]:
    return {
        "Name": meta.name, "TableType": "EXTERNAL_TABLE",
        "Parameters": {"EXTERNAL": "TRUE", "classification": "parquet"},
        "PartitionKeys": [{"Name": c.name, "Type": c.type} for c in meta.partition_keys],
        "StorageDescriptor": {
            "Columns": [{"Name": c.name, "Type": c.type, **({"Comment": c.comment} if c.comment else {})}
                        for c in meta.columns],
            "Location": meta.location,
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
        },
    }


class _MotoResolver:
    """The engine's :class:`~featureshare.local.athena_engine.Resolver` over moto's Glue and S3."""

    def __init__(self, account: str, region: str, kms_key: str | None = None, actor: Actor | None = None,
                 acl: str | None = None) -> None:
        self.acl = acl  # canned ACL Athena sends (x-amz-acl) with every object it writes
        self.account = account
        self.region = region
        self.kms_key = kms_key
        self.actor = actor  # the checked caller, None for admins / no enforcement

    def _authorize(self, **resources: Any) -> None:
        """AWS fails the query (not the API call) when the caller may not read a table or object it needs."""
        if self.actor is None:
            return
        refusal = authorize_reads(self.actor, **resources)
        if refusal is not None:
            raise AthenaQueryError("PERMISSION_DENIED", f"Access denied: {refusal}")

    def _account(self, catalog: str) -> str:
        if catalog == DEFAULT_CATALOG:
            return self.account
        entry = mi.athena_data_catalog(self.account, self.region, catalog)
        if entry is None:
            raise AthenaQueryError("CATALOG_NOT_FOUND", f"Catalog '{catalog}' does not exist")
        params = entry.get("Parameters") or {}
        if str(entry.get("Type", "")).upper() != "GLUE" or not params.get("catalog-id"):
            raise AthenaQueryError("NOT_SUPPORTED", f"Catalog '{catalog}' is of type {entry.get('Type')}; the "
                                                    "embedded Athena reads only GLUE catalogs with a catalog-id")
        return str(params["catalog-id"])

    def _glue_table(self, catalog: str, database: str, table: str) -> dict[str, Any] | None:
        account = self._account(catalog)
        self._authorize(tables=[(account, database, table)])
        found = mi.glue_get_table(account, self.region, database, table)
        if found is None:  # Glue names are lower case in AWS; moto keeps the case they were given
            found = next((t for t in mi.glue_list_tables(account, self.region, database)
                          if str(t.get("Name", "")).lower() == table), None)
        return found

    def get_table(self, catalog: str, database: str, table: str) -> TableMeta | None:
        found = self._glue_table(catalog, database, table)
        if found is None:
            return None
        sd = found.get("StorageDescriptor") or {}
        keys = tuple(Column(str(k["Name"]).lower(), str(k.get("Type", "string")), str(k.get("Comment", "")))
                     for k in found.get("PartitionKeys") or [])
        partitions = []
        if keys:
            raw = mi.glue_get_partitions(self._account(catalog), self.region, database, str(found["Name"]))
            found_parts = (Partition(tuple(str(v) for v in p.get("Values", [])),
                                     str((p.get("StorageDescriptor") or {}).get("Location", ""))) for p in raw)
            partitions = sorted(found_parts, key=lambda p: p.values)
        return TableMeta(
            database=database, name=str(found["Name"]).lower(), location=str(sd.get("Location", "")),
            columns=tuple(Column(str(c["Name"]).lower(), str(c.get("Type", "string")), str(c.get("Comment", "")))
                          for c in sd.get("Columns") or []),
            partition_keys=keys, partitions=tuple(partitions), format=_is_parquet(found),
            table_type=str(found.get("TableType", "EXTERNAL_TABLE")))

    def database_exists(self, catalog: str, database: str) -> bool:
        return mi.glue_get_database(self._account(catalog), self.region, database) is not None

    def list_databases(self, catalog: str) -> list[str]:
        return mi.glue_list_databases(self._account(catalog), self.region)

    def list_tables(self, catalog: str, database: str) -> list[str]:
        return [str(t["Name"]).lower() for t in mi.glue_list_tables(self._account(catalog), self.region, database)]

    def list_objects(self, location: str) -> list[S3Object]:
        bucket, prefix = mi.split_s3_uri(location)
        try:
            return [S3Object(f"s3://{bucket}/{key}", size) for key, size in mi.s3_list(bucket, prefix)]
        except KeyError as exc:
            raise AthenaQueryError("HIVE_FILESYSTEM_ERROR", f"The specified bucket does not exist: {bucket}") from exc

    def read_object(self, uri: str) -> bytes:
        self._authorize(objects=[mi.split_s3_uri(uri)])
        try:
            return mi.s3_get(*mi.split_s3_uri(uri))
        except KeyError as exc:
            raise AthenaQueryError("HIVE_CANNOT_OPEN_SPLIT", f"Error opening {uri}: object not found") from exc

    def write_object(self, uri: str, body: bytes) -> None:
        bucket, key = mi.split_s3_uri(uri)
        self._authorize(writes=[(bucket, key)], acl=self.acl)
        try:
            mi.s3_put(bucket, key, body, kms_key_id=self.kms_key)
        except KeyError as exc:
            raise AthenaQueryError("HIVE_FILESYSTEM_ERROR", f"The specified bucket does not exist: {bucket}") from exc

    def create_database(self, catalog: str, database: str) -> None:
        mi.glue_create_database(self._account(catalog), self.region, database)

    def create_table(self, catalog: str, table: TableMeta) -> None:
        account = self._account(catalog)
        mi.glue_create_table(account, self.region, table.database, _table_input(table))
        for partition in table.partitions:
            mi.glue_add_partition(account, self.region, table.database, table.name, list(partition.values),
                                  partition.location)

    def drop_table(self, catalog: str, database: str, table: str) -> None:
        found = self._glue_table(catalog, database, table)
        if found is not None:
            mi.glue_delete_table(self._account(catalog), self.region, database, str(found["Name"]))


# ------------------------------------------------------------------------------------------------ state

@dataclass
class _Execution:
    query_id: str
    query: str
    workgroup: str
    context: dict[str, str]
    parameters: list[str]
    result_configuration: dict[str, Any]
    statement_type: str
    substatement_type: str
    submitted: datetime
    state: str = QueryState.QUEUED
    reason: str = ""
    error_type: str = ""
    completed: datetime | None = None
    engine_ms: int = 0
    scanned: int = 0
    manifest: str | None = None
    result: StatementResult | None = None
    token: CancelToken = field(default_factory=CancelToken)
    thread: threading.Thread | None = None
    actor: Actor | None = None  # the caller; None when unchecked


_LOCK = threading.RLock()
#: Cleared while queries are held in QUEUED (:func:`hold_queries`); set otherwise.
_RELEASED = threading.Event()
_RELEASED.set()
_HOLDS = 0  # open hold_queries(True) calls; queries are released when the last one ends
# Athena's state per (account, region), like a moto backend; reset() clears it with the embedded AWS.
_EXECUTIONS: dict[tuple[str, str], dict[str, _Execution]] = {}
_TOKENS: dict[tuple[str, str, str], str] = {}


def hold_queries(held: bool) -> None:
    """Hold every query (started before or after) in QUEUED until released, or release them: a query's state
    is then decided by the caller (stop it, time out on it) instead of by how fast the engine is. Holds nest:
    queries are released when every ``hold_queries(True)`` has had its ``hold_queries(False)``."""
    global _HOLDS
    with _LOCK:
        _HOLDS = _HOLDS + 1 if held else max(0, _HOLDS - 1)
        if _HOLDS:
            _RELEASED.clear()
        else:
            _RELEASED.set()


def reset() -> None:
    """Cancel running queries and forget every query execution (called when the embedded AWS stops)."""
    global _HOLDS
    with _LOCK:
        _HOLDS = 0
        _RELEASED.set()
        executions = [e for bucket in _EXECUTIONS.values() for e in bucket.values()]
        _EXECUTIONS.clear()
        _TOKENS.clear()
    _stop_all(executions)
    from featureshare.local.athena_select import PARQUET_CACHE

    PARQUET_CACHE.clear()  # decoded objects of a stopped emulator would only hold memory


def _stop_all(executions: list[_Execution]) -> None:
    for execution in executions:
        execution.token.cancel()
    for execution in executions:
        if execution.thread is not None:
            execution.thread.join(timeout=_JOIN_TIMEOUT_S)


atexit.register(reset)  # a query thread still holding DuckDB at exit would abort the interpreter


def _executions(account: str, region: str) -> dict[str, _Execution]:
    with _LOCK:
        return _EXECUTIONS.setdefault((account, region), {})


def _get(account: str, region: str, params: dict[str, Any]) -> _Execution:
    query_id = params.get("QueryExecutionId")
    if not query_id:
        raise _invalid("QueryExecutionId is required")
    execution = _executions(account, region).get(str(query_id))
    if execution is None:
        raise _invalid(f"QueryExecution {query_id} was not found")
    return execution


# ------------------------------------------------------------------------------------------------ actions

def handle(action: str, account_id: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    """Answer one Athena API action for ``account_id`` in ``region`` (the JSON body of the response)."""
    actions = {
        "StartQueryExecution": _start, "GetQueryExecution": _get_execution, "GetQueryResults": _get_results,
        "StopQueryExecution": _stop, "ListQueryExecutions": _list, "BatchGetQueryExecution": _batch_get,
    }
    if action not in actions:
        raise _invalid(f"the embedded Athena does not handle {action}")
    return actions[action](account_id, region, params or {})


def _workgroup(account: str, region: str, name: str) -> dict[str, Any]:
    workgroup = mi.athena_workgroup(account, region, name)
    if workgroup is None:
        raise _invalid(f"WorkGroup {name} is not found.")
    if str(workgroup.get("State", "ENABLED")).upper() == "DISABLED":
        raise _invalid(f"WorkGroup {name} is disabled.")
    return workgroup


def _result_configuration(params: dict[str, Any], workgroup: dict[str, Any]) -> dict[str, Any]:
    """The effective ResultConfiguration: the workgroup's when enforced, else the request's over it."""
    config = workgroup.get("Configuration") or {}
    from_workgroup = dict(config.get("ResultConfiguration") or {})
    requested = dict(params.get("ResultConfiguration") or {})
    effective = from_workgroup if config.get("EnforceWorkGroupConfiguration") else {**from_workgroup,
                                                                                     **requested}
    if not effective.get("OutputLocation"):
        raise _invalid("No output location provided. An output location is required either through the "
                       "Workgroup result configuration setting or as an API input.")
    if not str(effective["OutputLocation"]).startswith("s3://"):
        raise _invalid(f"Invalid OutputLocation {effective['OutputLocation']}: must be an s3:// URI")
    return effective


def _start(account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    query = str(params.get("QueryString") or "")
    if not query.strip():
        raise _invalid("QueryString is required")
    name = str(params.get("WorkGroup") or "primary")
    token = params.get("ClientRequestToken")
    with _LOCK:
        if token and (account, region, token) in _TOKENS:
            return {"QueryExecutionId": _TOKENS[(account, region, token)]}
    configuration = _result_configuration(params, _workgroup(account, region, name))
    statement_type, substatement_type = classify_statement(query)
    context = {k: str(v) for k, v in (params.get("QueryExecutionContext") or {}).items() if v}
    execution = _Execution(
        query_id=str(uuid.uuid4()), query=query, workgroup=name, context=context,
        parameters=[str(v) for v in params.get("ExecutionParameters") or []],
        result_configuration=configuration, statement_type=statement_type, substatement_type=substatement_type,
        submitted=datetime.now(UTC), actor=current_actor())  # captured before the worker thread
    with _LOCK:
        _executions(account, region)[execution.query_id] = execution
        if token:
            _TOKENS[(account, region, token)] = execution.query_id
    execution.thread = threading.Thread(target=_run, args=(execution, account, region), daemon=True,
                                        name=f"athena-{execution.query_id[:8]}")
    execution.thread.start()
    return {"QueryExecutionId": execution.query_id}


def _output_prefix(execution: _Execution) -> str:
    location = str(execution.result_configuration["OutputLocation"])
    return location if location.endswith("/") else location + "/"


def _check_output_bucket(execution: _Execution) -> None:
    bucket, _ = mi.split_s3_uri(_output_prefix(execution))
    owner = mi.s3_bucket_owner(bucket)
    if owner is None:
        raise AthenaQueryError("INVALID_INPUT", f"Unable to verify/create output bucket {bucket}")
    expected = execution.result_configuration.get("ExpectedBucketOwner")
    if expected and expected != owner:
        raise AthenaQueryError("PERMISSION_DENIED", f"Access denied when writing output to url: "
                                                    f"{_output_prefix(execution)} (ExpectedBucketOwner {expected} "
                                                    f"does not own bucket {bucket})")


def _run(execution: _Execution, account: str, region: str) -> None:
    """Worker thread: run the statement, write its result files, record the final state."""
    while not _RELEASED.wait(0.01):  # held in QUEUED (hold_queries) until released or cancelled
        if execution.token.cancelled:
            return
    started = time.monotonic()
    with _LOCK:
        if execution.state != QueryState.QUEUED:
            return
        execution.state = QueryState.RUNNING
    encryption = execution.result_configuration.get("EncryptionConfiguration") or {}
    kms_key = encryption.get("KmsKey") if encryption.get("EncryptionOption") == "SSE_KMS" else None
    acl_option = (execution.result_configuration.get("AclConfiguration") or {}).get("S3AclOption")
    acl = str(acl_option).lower().replace("_", "-") if acl_option else None  # BUCKET_OWNER_FULL_CONTROL
    resolver = _MotoResolver(account, region, kms_key, execution.actor, acl)
    context = QueryContext(
        account_id=account, region=region,
        catalog=execution.context.get("Catalog", DEFAULT_CATALOG).lower(),
        database=execution.context.get("Database", "default").lower(), query_id=execution.query_id,
        default_table_location=f"{_output_prefix(execution)}tables/{execution.query_id}/")
    state, reason, error_type = QueryState.SUCCEEDED, "", ""
    try:
        _check_output_bucket(execution)
        mi.flush_offline_writes()  # feature-store rows buffered by PutRecord become visible to the query
        sql = bind_parameters(execution.query, execution.parameters) if execution.parameters else execution.query
        result = run_statement(sql, context, resolver, execution.token)
        _write_results(execution, result, resolver)
        execution.result = result
    except QueryCancelledError:
        state, reason, error_type = QueryState.CANCELLED, "Query cancelled by user", "USER_CANCELLED"
    except AthenaQueryError as exc:
        state, reason, error_type = QueryState.FAILED, str(exc), exc.error_type
    except Exception as exc:  # a bug in the emulation must still end the query, with the cause as reason
        logger.exception("embedded Athena query %s crashed", execution.query_id)
        state, reason, error_type = QueryState.FAILED, f"GENERIC_INTERNAL_ERROR: {exc}", "GENERIC_INTERNAL_ERROR"
    with _LOCK:
        if execution.token.cancelled and state != QueryState.SUCCEEDED:
            state, reason, error_type = QueryState.CANCELLED, "Query cancelled by user", "USER_CANCELLED"
        if execution.state == QueryState.RUNNING:
            execution.state, execution.reason, execution.error_type = state, reason, error_type
            execution.completed = datetime.now(UTC)
        execution.engine_ms = int((time.monotonic() - started) * 1000)
        if execution.result is not None:
            execution.scanned = execution.result.data_scanned_bytes


def _csv_field(value: str | None) -> str:
    return "" if value is None else '"' + value.replace('"', '""') + '"'


def _result_body(result: StatementResult) -> bytes:
    out = io.StringIO()
    if result.statement_type == "DML":
        out.write(",".join(_csv_field(c.name) for c in result.columns) + "\n")
        for row in result.rows:
            out.write(",".join(_csv_field(athena_text(v)) for v in row) + "\n")
    else:
        for row in result.rows:
            out.write("\t".join(athena_text(v) or "" for v in row) + "\n")
    return out.getvalue().encode()


def _write_results(execution: _Execution, result: StatementResult, resolver: _MotoResolver) -> None:
    prefix = _output_prefix(execution)
    execution.statement_type, execution.substatement_type = result.statement_type, result.substatement_type
    if result.substatement_type in ("UNLOAD", "CREATE_TABLE_AS_SELECT"):
        execution.manifest = f"{prefix}{execution.query_id}-manifest.csv"
        resolver.write_object(execution.manifest, "".join(f"{uri}\n" for uri in result.written_objects).encode())
        execution.result_configuration = {**execution.result_configuration,
                                          "OutputLocation": f"{prefix}{execution.query_id}"}
        return
    suffix = "csv" if result.statement_type == "DML" else "txt"
    location = f"{prefix}{execution.query_id}.{suffix}"
    resolver.write_object(location, _result_body(result))
    execution.result_configuration = {**execution.result_configuration, "OutputLocation": location}


def _describe(execution: _Execution) -> dict[str, Any]:
    with _LOCK:
        status: dict[str, Any] = {"State": execution.state, "SubmissionDateTime": execution.submitted}
        if execution.completed is not None:
            status["CompletionDateTime"] = execution.completed
        if execution.reason:
            status["StateChangeReason"] = execution.reason
        if execution.state == QueryState.FAILED:
            internal = execution.error_type.startswith("GENERIC_INTERNAL")
            status["AthenaError"] = {"ErrorCategory": 1 if internal else 2, "ErrorType": 1 if internal else 1006,
                                     "Retryable": False, "ErrorMessage": execution.reason}
        statistics: dict[str, Any] = {
            "EngineExecutionTimeInMillis": execution.engine_ms, "DataScannedInBytes": execution.scanned,
            "TotalExecutionTimeInMillis": execution.engine_ms, "QueryQueueTimeInMillis": 0,
            "QueryPlanningTimeInMillis": 0, "ServiceProcessingTimeInMillis": 0}
        if execution.manifest:
            statistics["DataManifestLocation"] = execution.manifest
        described = {
            "QueryExecutionId": execution.query_id, "Query": execution.query,
            "StatementType": execution.statement_type, "SubstatementType": execution.substatement_type,
            "ResultConfiguration": dict(execution.result_configuration),
            "QueryExecutionContext": dict(execution.context), "Status": status, "Statistics": statistics,
            "WorkGroup": execution.workgroup,
            "EngineVersion": {"SelectedEngineVersion": "AUTO",
                              "EffectiveEngineVersion": "Athena engine version 3"},
        }
        if execution.parameters:
            described["ExecutionParameters"] = list(execution.parameters)
        return described


def _get_execution(account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"QueryExecution": _describe(_get(account, region, params))}


def _batch_get(account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    ids = [str(i) for i in params.get("QueryExecutionIds") or []]
    if not 1 <= len(ids) <= _MAX_LIST:
        raise _invalid(f"QueryExecutionIds must hold 1 to {_MAX_LIST} ids")
    found, missing = [], []
    for query_id in ids:
        execution = _executions(account, region).get(query_id)
        if execution is None:
            missing.append({"QueryExecutionId": query_id, "ErrorCode": "INVALID_INPUT",
                            "ErrorMessage": f"QueryExecution {query_id} was not found"})
        else:
            found.append(_describe(execution))
    return {"QueryExecutions": found, "UnprocessedQueryExecutionIds": missing}


def _stop(account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    execution = _get(account, region, params)
    with _LOCK:
        if execution.state in QueryState.FINAL:
            return {}
        execution.state, execution.reason = QueryState.CANCELLED, "Query cancelled by user"
        execution.error_type, execution.completed = "USER_CANCELLED", datetime.now(UTC)
    execution.token.cancel()
    return {}


def _list(account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    name = str(params.get("WorkGroup") or "primary")
    _workgroup(account, region, name)
    limit = int(params.get("MaxResults") or _MAX_LIST)
    if not 0 < limit <= _MAX_LIST:
        raise _invalid(f"MaxResults must be between 1 and {_MAX_LIST}")
    with _LOCK:
        ids = [e.query_id for e in sorted(_executions(account, region).values(), key=lambda e: e.submitted,
                                          reverse=True) if e.workgroup == name]
    start = _decode_token(params.get("NextToken"), "list")
    answer: dict[str, Any] = {"QueryExecutionIds": ids[start:start + limit]}
    if start + limit < len(ids):
        answer["NextToken"] = _encode_token("list", start + limit)
    return answer


def _encode_token(scope: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{scope}:{offset}".encode()).decode()


def _decode_token(token: Any, scope: str) -> int:
    if not token:
        return 0
    try:
        prefix, _, offset = base64.urlsafe_b64decode(str(token).encode()).decode().rpartition(":")
        if prefix == scope and int(offset) >= 0:
            return int(offset)
    except ValueError:
        pass
    raise _invalid("The NextToken is not valid")


def _column_info(result: StatementResult) -> list[dict[str, Any]]:
    return [{"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": c.name, "Label": c.name,
             "Type": c.type, "Precision": c.precision, "Scale": c.scale, "Nullable": "UNKNOWN",
             "CaseSensitive": c.type == "varchar"} for c in result.columns]


def _cell(value: Any) -> dict[str, str]:
    text = athena_text(value)
    return {} if text is None else {"VarCharValue": text}


def _get_results(account: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
    execution = _get(account, region, params)
    limit = int(params.get("MaxResults") or _MAX_RESULTS)
    if not 0 < limit <= _MAX_RESULTS:
        raise _invalid(f"MaxResults must be between 1 and {_MAX_RESULTS}")
    with _LOCK:
        state, result = execution.state, execution.result
    if state in (QueryState.QUEUED, QueryState.RUNNING):
        raise _invalid(f"Query has not yet finished. Current state: {state}")
    if state != QueryState.SUCCEEDED or result is None:
        raise _invalid(f"Query did not finish successfully. Final query state: {state}"
                       + (f"\n{execution.reason}" if execution.reason else ""))
    header = [tuple(c.name for c in result.columns)] if result.substatement_type == "SELECT" else []
    total = len(header) + len(result.rows)
    start = _decode_token(params.get("NextToken"), execution.query_id)
    rows = []
    for index in range(start, min(start + limit, total)):
        values = header[0] if header and index == 0 else result.rows[index - len(header)]
        rows.append({"Data": [_cell(v) for v in values]})
    answer: dict[str, Any] = {"ResultSet": {"Rows": rows, "ResultSetMetadata": {"ColumnInfo": _column_info(result)}}}
    if start + limit < total:
        answer["NextToken"] = _encode_token(execution.query_id, start + limit)
    return answer

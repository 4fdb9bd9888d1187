"""Running queries on Athena: the StartQueryExecution request, waiting for a query to end, stopping it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from featureshare.errors import QueryFailedError, WaitTimeoutError, translate_client_error

logger = logging.getLogger(__name__)

__all__ = ["FINAL_STATES", "query_request", "stop", "wait_for"]

FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")
_FIRST_POLL_S, _MAX_POLL_S = 0.05, 2.0


def query_request(statement: str, *, workgroup: str, output_location: str, bucket_owner: str | None = None,
                  database: str | None = None) -> dict[str, Any]:
    """The arguments of ``athena.start_query_execution`` for ``statement``.

    ``bucket_owner`` (the account owning the output bucket, when the query runs in another account) adds
    ``ExpectedBucketOwner`` and the ``BUCKET_OWNER_FULL_CONTROL`` ACL; ``database`` is the default database,
    for the query history only (every name in featureshare's queries is fully qualified).
    """
    results: dict[str, Any] = {"OutputLocation": output_location}
    if bucket_owner is not None:
        results["ExpectedBucketOwner"] = bucket_owner
        results["AclConfiguration"] = {"S3AclOption": "BUCKET_OWNER_FULL_CONTROL"}
    context = {"Catalog": "AwsDataCatalog"}
    if database is not None:
        context["Database"] = database
    return {"QueryString": statement, "WorkGroup": workgroup, "ResultConfiguration": results,
            "QueryExecutionContext": context}


def wait_for(athena: Any, query_id: str, timeout: float, sleep: Callable[[float], None] = time.sleep
             ) -> dict[str, Any]:
    """Poll with backoff until the query ends; stop it on timeout or Ctrl-C.

    The pause grows with the time already waited (an eighth of it, 50 ms to 2 s), so a result is noticed at
    most ~12% late, with a few dozen polls for a long query."""
    started = time.monotonic()
    deadline = started + timeout
    try:
        while True:
            with translate_client_error(action="athena:GetQueryExecution", resource=query_id):
                execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            status = execution["Status"]
            if status["State"] in FINAL_STATES:
                break
            if time.monotonic() >= deadline:
                stop(athena, query_id)
                raise WaitTimeoutError(f"query {query_id} still {status['State']} after {timeout:g}s; stopped it",
                                       hint="raise timeout= or narrow the entity time range")
            now = time.monotonic()
            delay = min(max((now - started) / 8, _FIRST_POLL_S), _MAX_POLL_S)
            sleep(min(delay, max(deadline - now, 0.0)))
    except KeyboardInterrupt:
        stop(athena, query_id)
        raise
    if status["State"] != "SUCCEEDED":
        reason = status.get("StateChangeReason", "") or (status.get("AthenaError") or {}).get("ErrorMessage", "")
        raise QueryFailedError(f"training set query {query_id} {status['State']}: {reason}", query_id=query_id,
                               state=status["State"], reason=reason)
    return execution


def stop(athena: Any, query_id: str) -> None:
    try:
        athena.stop_query_execution(QueryExecutionId=query_id)
    except ClientError as exc:
        logger.warning("could not stop query %s: %s", query_id, exc)

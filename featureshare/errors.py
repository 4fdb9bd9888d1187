"""The one exception tree of featureshare.

Every error the library raises derives from :class:`FeatureshareError`. AWS ``ClientError`` codes are
translated in one place, :func:`translate_client_error`, with ``raise ... from exc`` so the AWS request id
survives on ``__cause__``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError, NoCredentialsError

__all__ = [
    "AWSError",
    "AccessDeniedError",
    "ConfigError",
    "CredentialsError",
    "FeatureshareError",
    "IngestionError",
    "NotFoundError",
    "QueryFailedError",
    "SchemaDriftError",
    "UnsupportedError",
    "ValidationError",
    "WaitTimeoutError",
    "translate_client_error",
]


class FeatureshareError(Exception):
    """Base of every error featureshare raises."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} ({self.hint})" if self.hint else message


class ConfigError(FeatureshareError):
    """Raised when a Topology file or environment is invalid; ``problems`` lists every problem found."""

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None):
        self.problems = list(problems or [message])
        super().__init__(message, hint=hint)


class ValidationError(FeatureshareError, ValueError):
    """Raised when user input (a spec, a DataFrame, an argument) is invalid, before anything is written.

    ``field`` and ``value`` name the offending input; ``problems`` holds every problem when several were
    found at once.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        value: Any = None,
        problems: list[str] | None = None,
        hint: str | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.problems = list(problems or [message])
        super().__init__(message, hint=hint)


class UnsupportedError(FeatureshareError, NotImplementedError):
    """Raised when a request is well-formed but featureshare (or the embedded AWS) does not support it."""


class CredentialsError(FeatureshareError):
    """Raised when no AWS credentials can be found or they cannot be refreshed."""


class AWSError(FeatureshareError):
    """Raised for an AWS error without a more specific featureshare class; keeps ``code`` and ``request_id``."""

    def __init__(self, message: str, *, code: str = "", request_id: str = "", hint: str | None = None):
        self.code = code
        self.request_id = request_id
        super().__init__(message, hint=hint)


class AccessDeniedError(AWSError):
    """Raised when AWS denies an action; names the account, the principal and the action."""

    def __init__(
        self,
        message: str,
        *,
        action: str = "",
        account: str = "",
        principal: str = "",
        code: str = "AccessDenied",
        request_id: str = "",
        hint: str | None = None,
    ) -> None:
        self.action = action
        self.account = account
        self.principal = principal
        super().__init__(message, code=code, request_id=request_id, hint=hint)


class NotFoundError(AWSError):
    """Raised when a feature group, table, bucket or other resource does not exist."""


class SchemaDriftError(FeatureshareError):
    """Raised when an existing feature group's schema differs from the requested spec."""

    def __init__(self, message: str, *, differences: list[str], hint: str | None = None):
        self.differences = differences
        super().__init__(message, hint=hint)


class QueryFailedError(FeatureshareError):
    """Raised when an Athena query ends FAILED or CANCELLED; carries the query id, state and reason."""

    def __init__(self, message: str, *, query_id: str, state: str, reason: str, hint: str | None = None):
        self.query_id = query_id
        self.state = state
        self.reason = reason
        super().__init__(message, hint=hint)


class WaitTimeoutError(FeatureshareError, TimeoutError):
    """Raised when a wait (feature group creation, query, ...) exceeds its ``timeout``."""


class IngestionError(FeatureshareError):
    """Raised by ``on_error="raise"`` ingestion when records fail; ``report`` holds every failure."""

    def __init__(self, message: str, *, report: Any = None, hint: str | None = None):
        self.report = report
        super().__init__(message, hint=hint)


_NOT_FOUND_CODES = {"ResourceNotFound", "ResourceNotFoundException", "NoSuchBucket", "NoSuchKey",
                    "EntityNotFoundException", "NotFoundException", "NoSuchEntity", "404"}
_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden", "403",
                 "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "UnrecognizedClientException"}


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ``ClientError`` (empty if absent)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int | None:
    """The HTTP status of a ``ClientError``'s response (``None`` if absent)."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _request_id(exc: ClientError) -> str:
    return str(exc.response.get("ResponseMetadata", {}).get("RequestId", ""))


def from_client_error(exc: ClientError, *, action: str = "", resource: str = "", account: str = "",
                      principal: str = "") -> AWSError:
    """Map a botocore ``ClientError`` to the most specific featureshare error (not raised)."""
    code = error_code(exc)
    message = exc.response.get("Error", {}).get("Message", "") or str(exc)
    op = action or getattr(exc, "operation_name", "") or ""
    where = f" on {resource}" if resource else ""
    text = f"{op}{where} failed: {code}: {message}" if op else f"{code}: {message}"
    if code in _DENIED_CODES:
        return AccessDeniedError(text, action=op, account=account, principal=principal, code=code,
                                 request_id=_request_id(exc))
    if code in _NOT_FOUND_CODES:
        return NotFoundError(text, code=code, request_id=_request_id(exc))
    return AWSError(text, code=code, request_id=_request_id(exc))


@contextlib.contextmanager
def translate_client_error(*, action: str = "", resource: str = "", account: str = "",
                           principal: str = "") -> Iterator[None]:
    """Turn botocore errors raised inside the block into featureshare errors (``raise ... from exc``)."""
    try:
        yield
    except ClientError as exc:
        raise from_client_error(exc, action=action, resource=resource, account=account,
                                principal=principal) from exc
    except NoCredentialsError as exc:
        raise CredentialsError(
            "no AWS credentials found",
            hint="run inside SageMaker, set AWS_PROFILE, or pass profile=/source= to assume_role",
        ) from exc

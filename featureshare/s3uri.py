"""``s3://bucket/key`` URIs given to featureshare: split and checked by one rule, errors naming the input.

The embedded AWS splits URIs with its own function (:func:`featureshare.local.moto_internals.split_s3_uri`):
the emulator does not depend on client-side validation.
"""

from __future__ import annotations

import re
from typing import Any

from featureshare.errors import ValidationError

__all__ = ["BUCKET_RE", "split_s3_uri"]

#: An S3 bucket name (3-63 lower-case letters, digits, dots and hyphens); use with ``fullmatch``.
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_CONTROL_RE = re.compile(r"[\x00-\x1f]")


def split_s3_uri(uri: Any, *, field: str = "uri", require_key: bool = True) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; ``require_key=False`` also accepts a prefix that may be empty
    (``s3://bucket``, ``s3://bucket/``: key ``""``).

    Raises :class:`~featureshare.errors.ValidationError` (``field``, ``value`` = ``uri``) for another scheme,
    an invalid bucket name, control characters, or a missing key when one is required.

    >>> split_s3_uri("s3://consumer-training/sets/churn-v1/")
    ('consumer-training', 'sets/churn-v1/')
    """
    shape = "s3://bucket/key" if require_key else "s3://bucket/prefix"
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        problem = "it does not start with s3://"
    else:
        bucket, _, key = uri[len("s3://"):].partition("/")
        if not BUCKET_RE.fullmatch(bucket):
            problem = f"{bucket!r} is not a bucket name (3-63 lower-case letters, digits, dots and hyphens)"
        elif _CONTROL_RE.search(uri):
            problem = "it contains control characters"
        elif require_key and not key:
            problem = "it names no object key"
        else:
            return bucket, key
    raise ValidationError(f"{field}={uri!r} is not an {shape} URI: {problem}", field=field, value=uri)

"""The one place where identifiers and literals are spliced into Athena (Trino) SQL.

Every name and value featureshare puts into a query goes through these functions; nothing is formatted into
SQL with ad-hoc f-strings elsewhere. Output is plain Athena engine v3 (Trino) syntax, which sqlglot's
``athena`` dialect also reads (the embedded AWS translates it to DuckDB).
"""

from __future__ import annotations

import math

from featureshare.errors import ValidationError
from featureshare.s3uri import split_s3_uri

__all__ = [
    "double_literal",
    "quote_identifier",
    "quote_qualified",
    "quote_string",
    "s3_uri_literal",
]


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted identifier (``"`` doubled); empty names and NUL are rejected."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValidationError(f"invalid SQL identifier {name!r}", field="identifier", value=name)
    return '"' + name.replace('"', '""') + '"'


def quote_qualified(*parts: str) -> str:
    """A dotted name such as ``"catalog"."database"."table"``, each part quoted."""
    return ".".join(quote_identifier(part) for part in parts)


def quote_string(value: str) -> str:
    """``value`` as a single-quoted string literal (``'`` doubled)."""
    if not isinstance(value, str) or "\x00" in value:
        raise ValidationError(f"invalid SQL string literal {value!r}", field="literal", value=value)
    return "'" + value.replace("'", "''") + "'"


def double_literal(value: float) -> str:
    """A DOUBLE literal that parses back to exactly ``value``.

    Trino reads ``1.5`` as DECIMAL but ``1.5E0`` as DOUBLE; Python's shortest round-trip repr plus an
    exponent keeps the comparison in double arithmetic on both Athena and DuckDB.
    """
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(f"cannot use non-finite number {value!r} in SQL", field="literal", value=value)
    text = repr(number)
    return text.upper() if "e" in text else f"{text}E0"


def s3_uri_literal(uri: str) -> str:
    """A quoted ``s3://bucket/prefix`` literal (UNLOAD ``TO``, table ``LOCATION``); the URI is checked by
    :func:`featureshare.s3uri.split_s3_uri`, so other schemes are rejected."""
    split_s3_uri(uri, require_key=False)
    return quote_string(uri)

"""Vectorised conversion between pandas columns and Feature Store value strings.

Feature Store carries every value as a string (``ValueAsString``). This module turns one pandas column at a
time into those strings and back:

- ``Integral``: integers without a trailing ``.0``; floats must be whole (``2.0`` -> ``"2"``), bools become
  ``"1"``/``"0"``.
- ``Fractional``: the shortest string that round-trips to the same float64 (numpy's repr, e.g. ``"0.1"``,
  ``"1e+20"``); ``inf`` is rejected because Feature Store's parser does not accept it.
- ``String``: strings as is; other scalars in their canonical text form (bools as ``"true"``/``"false"``,
  datetimes in the event-time format).
- Event time (String): ``yyyy-MM-ddTHH:mm:ss.SSSZ`` in UTC, truncated (not rounded) to milliseconds, which is
  Feature Store's precision. Strings already in one of the two accepted formats are passed through. Naive
  datetimes, and strings without an offset, need an explicit ``timezone=``: it is never guessed.
- Event time (Fractional): Unix epoch seconds.

Missing values (``None``, ``NaN``, ``NA``, ``NaT``) become ``None``: the feature is omitted from the record.
Problems with single values are returned per row (``Converted.errors``) so ingestion can report positions;
problems with a whole column (e.g. naive datetimes without ``timezone=``) raise :class:`ValidationError`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from featureshare.errors import ValidationError

__all__ = [
    "EVENT_TIME_RE",
    "Converted",
    "FeatureType",
    "format_event_times",
    "infer_feature_type",
    "parse_value",
    "parse_values",
    "to_value_strings",
]


class FeatureType(StrEnum):
    """Feature Store's scalar types (collection types exist only on the InMemory tier and are not supported)."""

    INTEGRAL = "Integral"
    FRACTIONAL = "Fractional"
    STRING = "String"


#: The two String event-time formats Feature Store accepts (UTC only).
EVENT_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z")
_OFFSET_RE = r"(?:Z|[+-]\d{2}:?\d{2})$"
_INT_TEXT_RE = re.compile(r"[+-]?\d+")
_INT64_LIMIT = 2.0**63

TimezoneLike = str | dt.tzinfo | None


@dataclass(frozen=True)
class Converted:
    """One converted column: ``values[i]`` is the string for row ``i`` (``None`` = missing) and
    ``errors[i]`` a message when row ``i`` holds a value that cannot be converted (else ``None``)."""

    values: np.ndarray
    errors: np.ndarray

    @property
    def has_errors(self) -> bool:
        return bool(pd.notna(self.errors).any())


def _empty_errors(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


def _ok(values: np.ndarray) -> Converted:
    return Converted(values=values, errors=_empty_errors(len(values)))


def _with_missing(strings: np.ndarray, missing: np.ndarray) -> np.ndarray:
    out = strings.astype(object)
    out[missing] = None
    return out


def _float_strings(arr: np.ndarray) -> np.ndarray:
    # numpy's float -> str is the shortest repr that round-trips (Dragon4/Ryu), vectorised.
    return arr.astype(str).astype(object)


def _elementwise(series: pd.Series, convert: Any) -> Converted:
    """Slow path for object columns: ``convert(value) -> str`` raising ``ValueError`` with a message."""
    values = _empty_errors(len(series))
    errors = _empty_errors(len(series))
    for i, value in enumerate(series.to_numpy(dtype=object)):
        if _is_missing(value):
            continue
        try:
            values[i] = convert(value)
        except (ValueError, TypeError, OverflowError) as exc:
            errors[i] = str(exc)
    return Converted(values=values, errors=errors)


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float | np.floating) and math.isnan(value))
    except TypeError:
        return False


# ----------------------------------------------------------------------------------------------- Integral

def _int_text(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return _int64_text(int(value), value)
    if isinstance(value, float | np.floating | Decimal):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"{value!r} is not an integer")
        return _int64_text(int(value), value)
    if isinstance(value, str) and _INT_TEXT_RE.fullmatch(value.strip()):
        return _int64_text(int(value), value)
    raise ValueError(f"{value!r} is not an integer")


def _int64_text(number: int, value: Any) -> str:
    # Python ints are unbounded; Feature Store's Integral is a 64-bit bigint and rejects the whole record.
    if not -(2**63) <= number < 2**63:
        raise ValueError(f"{value!r} does not fit a 64-bit Integral")
    return str(number)


def _integral(series: pd.Series) -> Converted:
    missing = series.isna().to_numpy()
    if ptypes.is_bool_dtype(series.dtype):
        ints = series.to_numpy(dtype="int64", na_value=0)
        return _ok(_with_missing(ints.astype(str), missing))
    if ptypes.is_integer_dtype(series.dtype):
        ints = series.to_numpy(dtype=series.dtype.numpy_dtype if hasattr(series.dtype, "numpy_dtype")
                               else series.dtype, na_value=0)
        if ints.dtype == np.uint64 and (too_big := (ints >= np.uint64(2**63)) & ~missing).any():
            # the only integer dtype wider than Feature Store's 64-bit signed Integral
            errors = _empty_errors(len(ints))
            errors[too_big] = [f"{x!r} does not fit a 64-bit Integral" for x in ints[too_big].tolist()]
            return Converted(values=_with_missing(ints.astype(str), missing | too_big), errors=errors)
        return _ok(_with_missing(ints.astype(str), missing))
    if ptypes.is_float_dtype(series.dtype):
        arr = series.to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(arr) & (np.floor(arr) == arr) & (np.abs(arr) < _INT64_LIMIT)
        safe = np.where(whole, arr, 0).astype("int64")
        values = _with_missing(safe.astype(str), missing | ~whole)
        errors = _empty_errors(len(arr))
        bad = ~whole & ~missing
        errors[bad] = [f"{x!r} is not an integer" for x in arr[bad].tolist()]
        return Converted(values=values, errors=errors)
    return _elementwise(series, _int_text)


# --------------------------------------------------------------------------------------------- Fractional

def _float_text(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{value!r} is a boolean, not a number")
    if isinstance(value, int | np.integer):
        return str(int(value))
    number = float(value)  # raises ValueError for non-numeric strings
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not finite")
    return repr(number)


def _fractional(series: pd.Series) -> Converted:
    missing = series.isna().to_numpy()
    if ptypes.is_integer_dtype(series.dtype):
        return _integral(series)
    if ptypes.is_float_dtype(series.dtype):
        arr = series.to_numpy(dtype="float64", na_value=np.nan)
        infinite = np.isinf(arr)
        values = _with_missing(_float_strings(arr), missing | infinite)
        errors = _empty_errors(len(arr))
        errors[infinite] = [f"{x!r} is not finite" for x in arr[infinite].tolist()]
        return Converted(values=values, errors=errors)
    return _elementwise(series, _float_text)


# ------------------------------------------------------------------------------------------------- String

def _string_text(value: Any, timezone: TimezoneLike) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, int | np.integer | Decimal):
        return str(value)
    if isinstance(value, dt.datetime | np.datetime64):
        converted = format_event_times(pd.Series([value]), timezone=timezone)
        if converted.errors[0] is not None:
            raise ValueError(converted.errors[0])
        return str(converted.values[0])
    raise ValueError(f"{type(value).__name__} value {value!r} is not a scalar a String feature can hold")


def _string(series: pd.Series, timezone: TimezoneLike, column: str) -> Converted:
    missing = series.isna().to_numpy()
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _string(series.astype(dtype.categories.dtype), timezone, column)
    if ptypes.is_string_dtype(dtype) and not ptypes.is_object_dtype(dtype):
        return _ok(series.to_numpy(dtype=object, na_value=None))
    if ptypes.is_bool_dtype(dtype):
        bools = series.to_numpy(dtype=bool, na_value=False)
        return _ok(_with_missing(np.where(bools, "true", "false"), missing))
    if ptypes.is_integer_dtype(dtype) or ptypes.is_float_dtype(dtype):
        return _fractional(series)
    if ptypes.is_datetime64_any_dtype(dtype):
        return format_event_times(series, timezone=timezone, column=column)
    return _elementwise(series, lambda v: _string_text(v, timezone))


# --------------------------------------------------------------------------------------------- event time

def _utc_naive(series: pd.Series, timezone: TimezoneLike, column: str) -> tuple[pd.Series, np.ndarray]:
    """A datetime64 column as naive UTC, plus a mask of local times that do not exist or are ambiguous."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.tz_localize(None), np.zeros(len(series), dtype=bool)
    if timezone is None:
        raise ValidationError(
            f"column {column!r} holds naive datetimes; the time zone is never guessed",
            field=column, value=str(series.dtype),
            hint="pass timezone='UTC' (or the zone the values are in), or make the column tz-aware",
        )
    localized = series.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    invalid = (localized.isna() & series.notna()).to_numpy()
    return localized.dt.tz_convert("UTC").dt.tz_localize(None), invalid


def _datetime_strings(naive_utc: pd.Series) -> np.ndarray:
    # Truncate to milliseconds (Feature Store's precision) and let numpy format: far faster than strftime.
    arr = naive_utc.to_numpy(dtype="datetime64[ns]").astype("datetime64[ms]")
    return (np.datetime_as_string(arr, unit="ms").astype(object) + "Z").astype(object)


def _epoch_strings(naive_utc: pd.Series) -> np.ndarray:
    ms = naive_utc.to_numpy(dtype="datetime64[ns]").astype("datetime64[ms]").astype("int64")
    return _float_strings(ms / 1000.0)


def _parse_text_times(series: pd.Series, timezone: TimezoneLike) -> tuple[pd.Series, np.ndarray]:
    """Parse ISO-8601 strings to naive UTC; returns the times and per-row error messages."""
    text = series.astype(object).where(series.notna(), None).astype("str")
    has_offset = text.str.contains(_OFFSET_RE, regex=True, na=False).to_numpy()
    errors = _empty_errors(len(series))
    out = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
    if has_offset.any():
        parsed = pd.to_datetime(text[has_offset], format="ISO8601", utc=True, errors="coerce")
        out[has_offset] = parsed.dt.tz_localize(None).astype("datetime64[ns]")
    naive = ~has_offset & series.notna().to_numpy()
    if naive.any():
        parsed = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
        if timezone is None:
            no_zone = naive.copy()
            no_zone[naive] = parsed.notna().to_numpy()
            errors[no_zone] = [f"{v!r} has no UTC offset; pass timezone= (never guessed)"
                               for v in text[no_zone].tolist()]
        else:
            local = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
            out[naive] = local.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    unparsed = out.isna().to_numpy() & series.notna().to_numpy() & pd.isna(errors)
    errors[unparsed] = [f"{v!r} is not an ISO-8601 timestamp (or is not a valid local time)"
                        for v in text[unparsed].tolist()]
    return out, errors


def format_event_times(
    series: pd.Series,
    *,
    kind: str = FeatureType.STRING,
    timezone: TimezoneLike = None,
    column: str | None = None,
) -> Converted:
    """Format a column of event times for Feature Store.

    ``kind="String"`` gives ``yyyy-MM-ddTHH:mm:ss.SSSZ`` (UTC; sub-millisecond digits are truncated);
    ``kind="Fractional"`` gives Unix epoch seconds. Accepts tz-aware datetimes, naive datetimes (only with
    ``timezone=``), ISO-8601 strings (those already in Feature Store's format pass unchanged; strings without
    an offset need ``timezone=``), and for ``Fractional`` numbers (epoch seconds).

    >>> format_event_times(pd.Series(pd.to_datetime(["2024-05-01 12:00:00.123456"])), timezone="UTC").values
    array(['2024-05-01T12:00:00.123Z'], dtype=object)
    """
    name = column or str(series.name)
    series = series.reset_index(drop=True)
    missing = series.isna().to_numpy()
    if ptypes.is_datetime64_any_dtype(series.dtype):
        naive_utc, invalid = _utc_naive(series, timezone, name)
        strings = _datetime_strings(naive_utc) if kind == FeatureType.STRING else _epoch_strings(naive_utc)
        errors = _empty_errors(len(series))
        errors[invalid] = "not a valid local time in the given timezone (DST gap or overlap)"
        return Converted(values=_with_missing(strings, missing | invalid), errors=errors)
    if ptypes.is_numeric_dtype(series.dtype) and not ptypes.is_bool_dtype(series.dtype):
        if kind != FeatureType.STRING:
            return _fractional(series)
        raise ValidationError(
            f"column {name!r} holds numbers but the event time feature is a String",
            field=name, value=str(series.dtype),
            hint="convert with pd.to_datetime(col, unit='s', utc=True), or declare a Fractional event time",
        )
    if ptypes.is_bool_dtype(series.dtype):
        raise ValidationError(f"column {name!r} holds booleans, not event times", field=name,
                              value=str(series.dtype))
    if ptypes.is_object_dtype(series.dtype) and _holds_datetimes(series):
        return _object_datetimes(series, kind, timezone, name)
    if kind == FeatureType.STRING:
        text = series.astype(object)
        exact = text.map(lambda v: isinstance(v, str) and EVENT_TIME_RE.fullmatch(v) is not None).to_numpy()
        if exact[~missing].all():
            return _ok(text.where(~missing, None).to_numpy(dtype=object))
    parsed, errors = _parse_text_times(series, timezone)
    strings = _datetime_strings(parsed) if kind == FeatureType.STRING else _epoch_strings(parsed)
    return Converted(values=_with_missing(strings, parsed.isna().to_numpy()), errors=errors)


def _holds_datetimes(series: pd.Series) -> bool:
    first = series.dropna()
    return not first.empty and isinstance(first.iloc[0], dt.datetime | np.datetime64)


def _object_datetimes(series: pd.Series, kind: str, timezone: TimezoneLike, name: str) -> Converted:
    """Python datetimes in an object column: each value is handled alone (awareness may be mixed)."""
    def one(value: Any) -> str:
        ts = pd.Timestamp(value)
        single = pd.Series([ts], dtype=pd.DatetimeTZDtype(tz=ts.tz) if ts.tz else "datetime64[ns]")
        try:
            converted = format_event_times(single, kind=kind, timezone=timezone, column=name)
        except ValidationError as exc:
            raise ValueError(f"{value!r} is naive; pass timezone= (never guessed)") from exc
        if converted.errors[0] is not None:
            raise ValueError(converted.errors[0])
        return str(converted.values[0])

    return _elementwise(series, one)


# -------------------------------------------------------------------------------------------------- entry

def to_value_strings(
    series: pd.Series,
    feature_type: str,
    *,
    timezone: TimezoneLike = None,
    column: str | None = None,
) -> Converted:
    """Convert one column to Feature Store strings for a feature of ``feature_type``.

    >>> to_value_strings(pd.Series([1.0, None, 3.0]), "Integral").values
    array(['1', None, '3'], dtype=object)
    >>> to_value_strings(pd.Series([0.1, 1/3]), "Fractional").values
    array(['0.1', '0.3333333333333333'], dtype=object)
    """
    series = series.reset_index(drop=True)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(series.dtype.categories.dtype)
    if feature_type == FeatureType.INTEGRAL:
        return _integral(series)
    if feature_type == FeatureType.FRACTIONAL:
        return _fractional(series)
    if feature_type == FeatureType.STRING:
        return _string(series, timezone, column or str(series.name))
    raise ValidationError(f"unknown feature type {feature_type!r}", field="feature_type", value=feature_type)


def infer_feature_type(column: pd.Series, *, is_event_time: bool = False) -> tuple[FeatureType | None, str]:
    """The Feature Store type (``Integral``/``Fractional``/``String``) of a pandas column, or
    ``(None, why)`` when it cannot be inferred."""
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return infer_feature_type(column.astype(dtype.categories.dtype), is_event_time=is_event_time)
    if ptypes.is_datetime64_any_dtype(dtype):
        return FeatureType.STRING, ""
    if ptypes.is_bool_dtype(dtype):
        if is_event_time:
            return None, "booleans cannot be event times"
        return FeatureType.INTEGRAL, ""
    if ptypes.is_integer_dtype(dtype):
        return (FeatureType.FRACTIONAL if is_event_time else FeatureType.INTEGRAL), ""
    if ptypes.is_float_dtype(dtype):
        return FeatureType.FRACTIONAL, ""
    if ptypes.is_timedelta64_dtype(dtype):
        return None, "durations have no Feature Store type; convert, e.g. col.dt.total_seconds()"
    if ptypes.is_complex_dtype(dtype):
        return None, "complex numbers have no Feature Store type"
    if ptypes.is_string_dtype(dtype) and not ptypes.is_object_dtype(dtype):
        return FeatureType.STRING, ""
    return _infer_object(column, is_event_time)


def _infer_object(column: pd.Series, is_event_time: bool) -> tuple[FeatureType | None, str]:
    values = column.dropna()
    if values.empty:
        return None, "the column is entirely missing, so its type cannot be inferred"
    kinds = {_kind(v) for v in values.tolist()}
    if kinds <= {"str"} or kinds <= {"datetime"}:
        return FeatureType.STRING, ""
    if kinds <= {"int", "bool"} and not is_event_time:
        return FeatureType.INTEGRAL, ""
    if kinds <= {"int", "float"}:
        return FeatureType.FRACTIONAL, ""
    if "other" in kinds:
        sample = next(v for v in values.tolist() if _kind(v) == "other")
        return None, (f"holds {type(sample).__name__} values such as {sample!r}; only scalars (numbers, "
                      "strings, datetimes) can be stored")
    return None, f"mixes value kinds {sorted(kinds)}; convert the column to one type"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, np.integer):
        return "int"
    if isinstance(value, np.floating):
        return "float"
    return "other"



def parse_value(text: str | None, feature_type: str) -> int | float | str | None:
    """Turn one Feature Store string back into a Python value of the feature's type."""
    if text is None:
        return None
    if feature_type == FeatureType.INTEGRAL:
        return int(text)
    if feature_type == FeatureType.FRACTIONAL:
        return float(text)
    return text


def parse_values(texts: list[str | None], feature_type: str) -> pd.Series:
    """Turn a list of Feature Store strings into a typed column (``Int64``, ``Float64`` or ``str``)."""
    if feature_type == FeatureType.INTEGRAL:
        return pd.Series([None if t is None else int(t) for t in texts], dtype="Int64")
    if feature_type == FeatureType.FRACTIONAL:
        return pd.Series(pd.to_numeric(pd.Series(texts, dtype=object)), dtype="Float64")
    return pd.Series(texts, dtype="str")

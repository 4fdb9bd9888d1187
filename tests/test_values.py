"""Value conversion between pandas columns and Feature Store strings."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from featureshare import group_spec
from featureshare.errors import ValidationError
from featureshare.values import (
    EVENT_TIME_RE,
    FeatureType,
    format_event_times,
    infer_feature_type,
    parse_value,
    parse_values,
    to_value_strings,
)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_fractional_strings_round_trip_to_the_same_float(values):
    converted = to_value_strings(pd.Series(values, dtype="float64"), "Fractional")
    assert [float(s) for s in converted.values] == values


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1, max_size=50))
def test_integral_strings_are_exact_and_have_no_decimal_point(values):
    converted = to_value_strings(pd.Series(values, dtype="int64"), "Integral")
    assert list(converted.values) == [str(v) for v in values]


def test_whole_floats_become_integers_without_trailing_zero():
    converted = to_value_strings(pd.Series([1.0, None, -3.0]), "Integral")
    assert list(converted.values) == ["1", None, "-3"]
    assert not converted.has_errors


@pytest.mark.parametrize("dtype", ["uint64", "UInt64"])
def test_unsigned_values_past_the_64_bit_signed_range_are_row_errors(dtype):
    converted = to_value_strings(pd.Series([1, 2**63 - 1, 2**63, 2**64 - 1], dtype=dtype), "Integral")

    assert list(converted.values[:2]) == ["1", str(2**63 - 1)]
    assert list(converted.values[2:]) == [None, None]
    assert converted.errors[1] is None and "does not fit a 64-bit Integral" in converted.errors[2]
    assert str(2**64 - 1) in converted.errors[3]


def test_non_whole_float_in_integral_column_is_a_row_error_not_a_silent_truncation():
    converted = to_value_strings(pd.Series([1.0, 2.5, np.inf]), "Integral")
    assert list(converted.values) == ["1", None, None]
    assert "2.5 is not an integer" in converted.errors[1]
    assert "not an integer" in converted.errors[2]


def test_nullable_integers_and_booleans_convert_with_missing_values_omitted():
    assert list(to_value_strings(pd.Series([1, None, 3], dtype="Int64"), "Integral").values) == ["1", None, "3"]
    assert list(to_value_strings(pd.Series([True, None, False], dtype="boolean"), "Integral").values) == [
        "1", None, "0"]
    assert list(to_value_strings(pd.Series([True, None], dtype="boolean"), "String").values) == ["true", None]


def test_nan_is_missing_but_infinity_is_an_error_for_fractional():
    converted = to_value_strings(pd.Series([0.1, np.nan, -np.inf]), "Fractional")
    assert list(converted.values) == ["0.1", None, None]
    assert converted.errors[1] is None
    assert "not finite" in converted.errors[2]


def test_nullable_float64_column_keeps_full_precision():
    values = [1 / 3, None, 2.0**-1074]
    converted = to_value_strings(pd.Series(values, dtype="Float64"), "Fractional")
    assert float(converted.values[0]) == 1 / 3
    assert converted.values[1] is None
    assert float(converted.values[2]) == 2.0**-1074


def test_string_columns_pass_unchanged_including_pandas3_str_and_category():
    text = ["a b", "", None, "ü"]
    assert list(to_value_strings(pd.Series(text, dtype="str"), "String").values) == ["a b", "", None, "ü"]
    assert list(to_value_strings(pd.Series(["x", None], dtype="category"), "String").values) == ["x", None]


def test_object_columns_convert_value_by_value_and_report_bad_values():
    converted = to_value_strings(pd.Series([1, "2", 3.0, "x", None, [1]], dtype=object), "Integral")
    assert list(converted.values[:5]) == ["1", "2", "3", None, None]
    assert "'x' is not an integer" in converted.errors[3]
    assert converted.errors[5] is not None
    strings = to_value_strings(pd.Series([1, 0.5, True, {"a": 1}], dtype=object), "String")
    assert list(strings.values[:3]) == ["1", "0.5", "true"]
    assert "not a scalar" in strings.errors[3]


def test_tz_aware_datetimes_become_utc_milliseconds_truncated():
    series = pd.Series(pd.to_datetime(["2024-03-01 10:00:00.123999"]).tz_localize("Europe/Berlin"))
    converted = format_event_times(series)
    assert list(converted.values) == ["2024-03-01T09:00:00.123Z"]
    assert EVENT_TIME_RE.fullmatch(converted.values[0])


def test_naive_datetimes_without_timezone_are_rejected_never_guessed():
    series = pd.Series(pd.to_datetime(["2024-03-01 10:00:00"]), name="ts")
    with pytest.raises(ValidationError, match="naive datetimes") as info:
        format_event_times(series)
    assert info.value.field == "ts"


def test_naive_datetimes_with_explicit_timezone_are_converted_to_utc():
    series = pd.Series(pd.to_datetime(["2024-07-01 10:00:00", None]))
    assert list(format_event_times(series, timezone="America/New_York").values) == [
        "2024-07-01T14:00:00.000Z", None]


def test_nonexistent_local_time_is_a_row_error():
    series = pd.Series(pd.to_datetime(["2024-03-31 02:30:00", "2024-03-31 04:00:00"]))
    converted = format_event_times(series, timezone="Europe/Berlin")
    assert converted.values[0] is None and "DST" in converted.errors[0]
    assert converted.values[1] == "2024-03-31T02:00:00.000Z"


def test_event_time_strings_in_feature_store_format_pass_through():
    values = ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.250Z"]
    assert list(format_event_times(pd.Series(values)).values) == values


def test_event_time_strings_with_offsets_are_normalised_and_naive_strings_need_a_timezone():
    series = pd.Series(["2024-01-01T02:00:00+02:00", "2024-01-01 00:00:00", "garbage", None])
    converted = format_event_times(series)
    assert converted.values[0] == "2024-01-01T00:00:00.000Z"
    assert "no UTC offset" in converted.errors[1]
    assert "not an ISO-8601" in converted.errors[2]
    assert converted.values[3] is None and converted.errors[3] is None
    assert format_event_times(series[1:2], timezone="UTC").values[0] == "2024-01-01T00:00:00.000Z"


def test_fractional_event_time_is_epoch_seconds():
    series = pd.Series(pd.to_datetime(["1970-01-01 00:00:01.5"], utc=True))
    assert list(format_event_times(series, kind="Fractional").values) == ["1.5"]
    assert list(format_event_times(pd.Series([1700000000.25]), kind="Fractional").values) == ["1700000000.25"]


def test_numeric_column_for_string_event_time_explains_the_conversion():
    with pytest.raises(ValidationError, match="holds numbers"):
        format_event_times(pd.Series([1.0], name="ts"))


def test_object_column_of_python_datetimes_handles_each_value():
    series = pd.Series([dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))),
                        dt.datetime(2024, 1, 1)], dtype=object)
    converted = format_event_times(series)
    assert converted.values[0] == "2024-01-01T00:00:00.000Z"
    assert "naive" in converted.errors[1]


@pytest.mark.parametrize(("series", "expected"), [
    (pd.Series([1, 2], dtype="int32"), "Integral"),
    (pd.Series([1, None], dtype="Int64"), "Integral"),
    (pd.Series([True, None], dtype="boolean"), "Integral"),
    (pd.Series([1.5], dtype="float32"), "Fractional"),
    (pd.Series([1.5, None], dtype="Float64"), "Fractional"),
    (pd.Series(["a"], dtype="str"), "String"),
    (pd.Series(["a"], dtype="category"), "String"),
    (pd.Series(pd.to_datetime(["2024-01-01"], utc=True)), "String"),
    (pd.Series(["a", None], dtype=object), "String"),
    (pd.Series([1, 2.5], dtype=object), "Fractional"),
])
def test_types_are_inferred_from_pandas3_dtypes(series, expected):
    assert infer_feature_type(series) == (expected, "")
    assert infer_feature_type(series)[0] is FeatureType(expected)


def test_group_specs_and_value_conversion_share_one_feature_type():
    assert group_spec.FeatureType is FeatureType


@pytest.mark.parametrize(("series", "why"), [
    (pd.Series([None, None], dtype=object), "entirely missing"),
    (pd.Series([[1], [2]], dtype=object), "only scalars"),
    (pd.Series(pd.to_timedelta(["1s"])), "durations"),
    (pd.Series(["a", 1], dtype=object), "mixes"),
])
def test_uninferable_columns_say_why(series, why):
    inferred, message = infer_feature_type(series)
    assert inferred is None
    assert why in message


def test_parsed_values_are_typed():
    assert parse_value("42", "Integral") == 42
    assert parse_value("0.1", "Fractional") == 0.1
    assert parse_value("x", "String") == "x"
    ints = parse_values(["1", None], "Integral")
    assert ints.dtype == "Int64" and ints[0] == 1 and ints.isna()[1]
    floats = parse_values(["0.5", None], "Fractional")
    assert floats.dtype == "Float64" and floats[0] == 0.5
    assert math.isclose(parse_values(["1e-07"], "Fractional")[0], 1e-7)


def test_conversion_of_100k_rows_equals_the_element_wise_rules():
    # Speed is shown by the ingestion benchmark (benchmarks/); here the vectorised paths must agree with
    # the plain rule for every row of a large column.
    n = 100_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"i": np.arange(n) * 7919 - 10**9, "f": rng.random(n) * 10.0 ** rng.integers(-8, 9, n),
                       "t": pd.date_range("2024-01-01", periods=n, freq="1234567us", tz="UTC")})

    integral = to_value_strings(df["i"], "Integral").values
    fractional = to_value_strings(df["f"], "Fractional").values
    times = format_event_times(df["t"]).values

    assert list(integral) == [str(v) for v in df["i"]]
    assert [float(s) for s in fractional] == list(df["f"])
    assert list(times) == [t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z" for t in df["t"]]

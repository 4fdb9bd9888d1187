"""``s3://`` URIs given to featureshare are split and checked by one rule, with errors naming the input."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest

from featureshare.errors import ValidationError
from featureshare.s3uri import split_s3_uri
from featureshare.sources import iter_file_chunks
from featureshare.sqlquote import s3_uri_literal
from featureshare.training import SourceTable, TrainingSet


@pytest.mark.parametrize(("uri", "expected"), [
    ("s3://consumer-training/sets/churn-v1/part-0.parquet", ("consumer-training", "sets/churn-v1/part-0.parquet")),
    ("s3://abc/k", ("abc", "k")),
    ("s3://my.bucket-1/with space/ü.csv", ("my.bucket-1", "with space/ü.csv")),
    ("s3://bucket//double/slash", ("bucket", "/double/slash")),
])
def test_an_s3_uri_splits_into_bucket_and_key(uri: str, expected: tuple[str, str]) -> None:
    assert split_s3_uri(uri) == expected


@pytest.mark.parametrize(("uri", "problem"), [
    ("https://example.com/x", "it does not start with s3://"),
    ("S3://bucket/key", "it does not start with s3://"),
    ("/tmp/data.parquet", "it does not start with s3://"),
    (None, "it does not start with s3://"),
    ("s3:///key", "'' is not a bucket name"),
    ("s3://Bucket_Name/key", "'Bucket_Name' is not a bucket name"),
    ("s3://ab/key", "'ab' is not a bucket name"),
    ("s3://-bucket/key", "'-bucket' is not a bucket name"),
    ("s3://bucket/a\nb", "it contains control characters"),
    ("s3://bucket/key\n", "it contains control characters"),
    ("s3://bucket", "it names no object key"),
    ("s3://bucket/", "it names no object key"),
])
def test_a_malformed_uri_is_rejected_naming_the_field_value_and_problem(uri: Any, problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)) as info:
        split_s3_uri(uri, field="output_uri")
    assert (info.value.field, info.value.value) == ("output_uri", uri)
    assert str(info.value).startswith(f"output_uri={uri!r} is not an s3://bucket/key URI")


def test_a_prefix_may_be_empty_when_no_key_is_required() -> None:
    assert split_s3_uri("s3://bucket", require_key=False) == ("bucket", "")
    assert split_s3_uri("s3://bucket/", require_key=False) == ("bucket", "")
    assert split_s3_uri("s3://bucket/sets/", require_key=False) == ("bucket", "sets/")
    with pytest.raises(ValidationError, match=r"is not an s3://bucket/prefix URI: 'B' is not a bucket name"):
        split_s3_uri("s3://B/sets/", require_key=False)


def test_file_readers_and_sql_literals_apply_the_same_rule() -> None:
    with pytest.raises(ValidationError, match="'Not_A_Bucket' is not a bucket name") as info:
        iter_file_chunks("s3://Not_A_Bucket/data.parquet", session=object())
    assert info.value.field == "source"
    with pytest.raises(ValidationError, match="it names no object key"):
        iter_file_chunks("s3://bucket/", session=object(), file_format="csv")
    with pytest.raises(ValidationError, match="'Not_A_Bucket' is not a bucket name"):
        s3_uri_literal("s3://Not_A_Bucket/sets/")
    assert s3_uri_literal("s3://bucket/it's/") == "'s3://bucket/it''s/'"


def test_a_build_to_a_non_s3_output_uri_is_refused_before_any_aws_call() -> None:
    group = SourceTable(name="customers", arn="arn:aws:sagemaker:us-east-1:111111111111:feature-group/customers",
                        account_id="111111111111", region="us-east-1", record_id="customer_id", event_time="ts",
                        event_time_type="String",
                        features=(("customer_id", "String"), ("ts", "String"), ("spend", "Fractional")),
                        database="sagemaker_featurestore", table="customers")
    labels = pd.DataFrame({"customer_id": ["c1"], "label_time": pd.to_datetime(["2024-03-01"], utc=True)})
    training = TrainingSet(labels, key="customer_id", event_time="label_time").join(group)
    with pytest.raises(ValidationError, match=r"output_uri='https://bucket/sets/' is not an s3://") as info:
        training.build(session=None, output_uri="https://bucket/sets/")
    assert info.value.field == "output_uri"

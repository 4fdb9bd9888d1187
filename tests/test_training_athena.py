"""The StartQueryExecution request of a training set query, built without AWS."""

from __future__ import annotations

from featureshare.training.athena import query_request


def test_a_query_in_the_consumers_own_account_sets_no_bucket_owner_or_acl() -> None:
    request = query_request("SELECT 1", workgroup="primary", output_location="s3://training/_staging/t/results/")
    assert request == {"QueryString": "SELECT 1", "WorkGroup": "primary",
                       "ResultConfiguration": {"OutputLocation": "s3://training/_staging/t/results/"},
                       "QueryExecutionContext": {"Catalog": "AwsDataCatalog"}}


def test_a_query_run_in_another_account_writes_only_to_the_owners_bucket_and_hands_it_the_objects() -> None:
    request = query_request("SELECT 1", workgroup="fs-222222222222", output_location="s3://training/r/",
                            bucket_owner="222222222222", database="featureshare_scratch")
    assert request["ResultConfiguration"] == {
        "OutputLocation": "s3://training/r/", "ExpectedBucketOwner": "222222222222",
        "AclConfiguration": {"S3AclOption": "BUCKET_OWNER_FULL_CONTROL"}}
    assert request["QueryExecutionContext"] == {"Catalog": "AwsDataCatalog", "Database": "featureshare_scratch"}

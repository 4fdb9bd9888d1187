"""Feature group control plane of the embedded AWS: create, describe, list, update, tags, search, delete."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError

from tests.local.conftest import OFFLINE_BUCKET

CENTRAL = "111111111111"


def test_create_resolves_the_real_offline_layout_and_default_catalog(central, group_request):
    sm = central.client("sagemaker")
    arn = sm.create_feature_group(**group_request("users-v1"))["FeatureGroupArn"]

    described = sm.describe_feature_group(FeatureGroupName="users-v1")

    assert arn == f"arn:aws:sagemaker:us-east-1:{CENTRAL}:feature-group/users-v1"
    epoch = int(described["CreationTime"].timestamp())
    s3 = described["OfflineStoreConfig"]["S3StorageConfig"]
    assert s3["ResolvedOutputS3Uri"] == (
        f"s3://{OFFLINE_BUCKET}/features/{CENTRAL}/sagemaker/us-east-1/offline-store/users-v1-{epoch}/data")
    assert described["OfflineStoreConfig"]["DataCatalogConfig"] == {
        "TableName": f"users_v1_{epoch}", "Catalog": "AwsDataCatalog", "Database": "sagemaker_featurestore"}
    assert described["FeatureGroupStatus"] == "Created"
    assert described["OfflineStoreStatus"] == {"Status": "Active"}
    assert described["OnlineStoreConfig"]["EnableOnlineStore"] is True


def test_describe_accepts_the_arn(central, group_request):
    sm = central.client("sagemaker")
    arn = sm.create_feature_group(**group_request("by-arn"))["FeatureGroupArn"]

    assert sm.describe_feature_group(FeatureGroupName=arn)["FeatureGroupName"] == "by-arn"


def test_glue_table_has_feature_columns_then_offline_metadata_columns(central, group_request):
    sm = central.client("sagemaker")
    sm.create_feature_group(**group_request("cols"))
    catalog = sm.describe_feature_group(FeatureGroupName="cols")["OfflineStoreConfig"]["DataCatalogConfig"]

    table = central.client("glue").get_table(DatabaseName=catalog["Database"], Name=catalog["TableName"])["Table"]

    columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    assert columns == [("user_id", "string"), ("event_time", "string"), ("age", "bigint"), ("score", "double"),
                       ("write_time", "timestamp"), ("api_invocation_time", "timestamp"),
                       ("is_deleted", "boolean")]
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
        ("year", "string"), ("month", "string"), ("day", "string"), ("hour", "string")]
    resolved = sm.describe_feature_group(FeatureGroupName="cols")["OfflineStoreConfig"]["S3StorageConfig"]
    assert table["StorageDescriptor"]["Location"] == resolved["ResolvedOutputS3Uri"]
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")


def test_online_only_group_has_no_offline_store(central, group_request):
    sm = central.client("sagemaker")
    sm.create_feature_group(**group_request("online-only", offline=False))

    described = sm.describe_feature_group(FeatureGroupName="online-only")

    assert "OfflineStoreConfig" not in described
    assert "OfflineStoreStatus" not in described


def test_disable_glue_table_creation_keeps_the_given_catalog_without_a_table(central, group_request):
    sm = central.client("sagemaker")
    request = group_request("no-glue")
    request["OfflineStoreConfig"].update(DisableGlueTableCreation=True, DataCatalogConfig={
        "Catalog": "AwsDataCatalog", "Database": "mine", "TableName": "my_table"})
    sm.create_feature_group(**request)

    described = sm.describe_feature_group(FeatureGroupName="no-glue")

    assert described["OfflineStoreConfig"]["DataCatalogConfig"]["TableName"] == "my_table"
    assert central.client("glue").get_databases()["DatabaseList"] == []


def test_kms_key_ids_are_kept(central, group_request):
    sm = central.client("sagemaker")
    request = group_request("kms", OnlineStoreConfig={"EnableOnlineStore": True,
                                                      "SecurityConfig": {"KmsKeyId": "alias/online"}})
    request["OfflineStoreConfig"]["S3StorageConfig"]["KmsKeyId"] = "alias/offline"
    sm.create_feature_group(**request)

    described = sm.describe_feature_group(FeatureGroupName="kms")

    assert described["OnlineStoreConfig"]["SecurityConfig"]["KmsKeyId"] == "alias/online"
    assert described["OfflineStoreConfig"]["S3StorageConfig"]["KmsKeyId"] == "alias/offline"


def test_creating_an_existing_group_is_resource_in_use(central, group_request):
    sm = central.client("sagemaker")
    sm.create_feature_group(**group_request("dup"))

    with pytest.raises(sm.exceptions.ResourceInUse, match="already exists"):
        sm.create_feature_group(**group_request("dup"))


@pytest.mark.parametrize(("change", "message"), [
    ({"FeatureGroupName": "bad name!"}, "Invalid FeatureGroupName"),
    ({"RecordIdentifierFeatureName": "nope"}, "RecordIdentifierFeatureName 'nope'"),
    ({"EventTimeFeatureName": "age"}, "event time feature must be of type String or Fractional"),
    ({"FeatureDefinitions": [{"FeatureName": "user_id", "FeatureType": "String"},
                             {"FeatureName": "event_time", "FeatureType": "String"},
                             {"FeatureName": "is_deleted", "FeatureType": "String"}]}, "is reserved"),
    ({"OnlineStoreConfig": {"EnableOnlineStore": False}, "OfflineStoreConfig": None}, "At least one"),
    ({"RoleArn": None}, "RoleArn is required"),
])
def test_invalid_create_requests_are_validation_exceptions(central, group_request, change, message):
    request = {k: v for k, v in {**group_request("invalid"), **change}.items() if v is not None}

    with pytest.raises(ClientError, match=re.escape(message)) as info:
        central.client("sagemaker").create_feature_group(**request)

    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_offline_store_in_a_missing_bucket_is_rejected(central, group_request):
    with pytest.raises(ClientError, match="does not exist"):
        central.client("sagemaker").create_feature_group(**group_request("nobucket", bucket="missing-bucket"))


def test_describe_of_a_missing_group_is_resource_not_found(central):
    sm = central.client("sagemaker")
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_feature_group(FeatureGroupName="missing")


def test_list_filters_sorts_and_paginates(central, group_request):
    sm = central.client("sagemaker")
    for name in ("alpha", "beta", "gamma", "delta-online"):
        sm.create_feature_group(**group_request(name, offline=not name.endswith("online")))

    first = sm.list_feature_groups(SortBy="Name", SortOrder="Ascending", MaxResults=2)
    second = sm.list_feature_groups(SortBy="Name", SortOrder="Ascending", MaxResults=2,
                                    NextToken=first["NextToken"])
    contains = sm.list_feature_groups(NameContains="mm")
    offline_active = sm.list_feature_groups(OfflineStoreStatusEquals="Active")

    names = [s["FeatureGroupName"] for s in first["FeatureGroupSummaries"] + second["FeatureGroupSummaries"]]
    assert names == sorted(["alpha", "beta", "gamma", "delta-online"])
    assert "NextToken" not in second
    assert [s["FeatureGroupName"] for s in contains["FeatureGroupSummaries"]] == ["gamma"]
    assert {s["FeatureGroupName"] for s in offline_active["FeatureGroupSummaries"]} == {"alpha", "beta", "gamma"}


def test_list_rejects_a_next_token_it_did_not_hand_out_naming_it(central, group_request):
    sm = central.client("sagemaker")
    sm.create_feature_group(**group_request("alpha"))

    for forged in ("page-2", "-1"):
        with pytest.raises(ClientError, match=f"Invalid NextToken '{forged}'") as info:
            sm.list_feature_groups(NextToken=forged)
        assert info.value.response["Error"]["Code"] == "ValidationException"


def test_list_is_per_account(embedded_aws, central, group_request):
    central.client("sagemaker").create_feature_group(**group_request("central-only"))

    consumer = embedded_aws.admin_session("consumer").client("sagemaker")

    assert consumer.list_feature_groups()["FeatureGroupSummaries"] == []


def test_update_adds_features_to_the_group_and_its_glue_table(central, group_request):
    sm = central.client("sagemaker")
    sm.create_feature_group(**group_request("grow"))
    arn = sm.describe_feature_group(FeatureGroupName="grow")["FeatureGroupArn"]

    sm.update_feature_group(FeatureGroupName=arn, FeatureAdditions=[{"FeatureName": "city", "FeatureType": "String"}])

    described = sm.describe_feature_group(FeatureGroupName="grow")
    assert described["FeatureDefinitions"][-1] == {"FeatureName": "city", "FeatureType": "String"}
    assert described["LastUpdateStatus"] == {"Status": "Successful"}
    catalog = described["OfflineStoreConfig"]["DataCatalogConfig"]
    table = central.client("glue").get_table(DatabaseName=catalog["Database"], Name=catalog["TableName"])["Table"]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]][4] == "city"


def test_update_sets_the_online_ttl(central, group_request):
    sm = central.client("sagemaker")
    sm.create_feature_group(**group_request("ttl"))

    sm.update_feature_group(FeatureGroupName="ttl", OnlineStoreConfig={"TtlDuration": {"Unit": "Hours", "Value": 2}})

    ttl = sm.describe_feature_group(FeatureGroupName="ttl")["OnlineStoreConfig"]["TtlDuration"]
    assert ttl == {"Unit": "Hours", "Value": 2}


def test_update_with_an_existing_feature_name_is_rejected(central, group_request):
    sm = central.client("sagemaker")
    sm.create_feature_group(**group_request("dupfeat"))

    with pytest.raises(ClientError, match="Duplicate feature name 'age'"):
        sm.update_feature_group(FeatureGroupName="dupfeat",
                                FeatureAdditions=[{"FeatureName": "age", "FeatureType": "String"}])


def test_tags_can_be_added_listed_and_deleted_on_the_group_arn(central, group_request):
    sm = central.client("sagemaker")
    arn = sm.create_feature_group(**group_request("tagged", Tags=[{"Key": "team", "Value": "search"}]))[
        "FeatureGroupArn"]

    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "shared", "Value": "true"}])
    after_add = sm.list_tags(ResourceArn=arn)["Tags"]
    sm.delete_tags(ResourceArn=arn, TagKeys=["team"])

    assert after_add == [{"Key": "team", "Value": "search"}, {"Key": "shared", "Value": "true"}]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "shared", "Value": "true"}]


def test_search_finds_groups_by_tag(central, group_request):
    sm = central.client("sagemaker")
    sm.create_feature_group(**group_request("shared-one", Tags=[{"Key": "shared", "Value": "true"}]))
    sm.create_feature_group(**group_request("private-one"))

    results = sm.search(Resource="FeatureGroup", SearchExpression={
        "Filters": [{"Name": "Tags.shared", "Operator": "Equals", "Value": "true"}]})["Results"]

    assert [r["FeatureGroup"]["FeatureGroupName"] for r in results] == ["shared-one"]


def test_delete_removes_the_group_but_keeps_its_glue_table(central, group_request):
    sm = central.client("sagemaker")
    sm.create_feature_group(**group_request("gone"))
    catalog = sm.describe_feature_group(FeatureGroupName="gone")["OfflineStoreConfig"]["DataCatalogConfig"]

    sm.delete_feature_group(FeatureGroupName="gone")

    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_feature_group(FeatureGroupName="gone")
    assert central.client("glue").get_table(DatabaseName=catalog["Database"], Name=catalog["TableName"])


def test_other_sagemaker_actions_are_still_answered_by_moto(central):
    assert central.client("sagemaker").list_endpoints()["Endpoints"] == []

"""IAM enforcement of the embedded AWS: request -> (action, resource, context) mapping and refusal wire shapes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from featureshare.local import EmbeddedAWS
from featureshare.local import moto_internals as mi
from featureshare.local.policy_enforcement import (
    Check,
    ParsedRequest,
    UnmappedRequest,
    denial_response,
    map_request,
    parse_request,
    query_tags,
)

CENTRAL, CONSUMER, REGION = "111111111111", "222222222222", "us-east-1"
SIGNED = "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, " \
         "Signature=abc"
KEY_ARN = f"arn:aws:kms:{REGION}:{CENTRAL}:key/1234abcd-0000-0000-0000-000000000000"


@dataclass
class Facts:
    """Known resources for the pure mapping (the live emulator reads them from moto and the Feature Store)."""

    groups: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    bucket_keys: dict[str, str] = field(default_factory=dict)
    object_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    queries: dict[tuple[str, str], str] = field(default_factory=dict)

    def group_tags(self, account: str, region: str, name: str) -> dict[str, str] | None:
        return self.groups.get((account, name.lower()))

    def bucket_owner(self, bucket: str) -> str | None:
        return self.owners.get(bucket)

    def bucket_kms_key(self, bucket: str) -> str | None:
        return self.bucket_keys.get(bucket)

    def object_kms_key(self, bucket: str, key: str) -> str | None:
        return self.object_keys.get((bucket, key))

    def kms_key_arn(self, account: str, region: str, key_id: str) -> str | None:
        return KEY_ARN if key_id in (KEY_ARN, "alias/offline") and account == CENTRAL else None

    def query_workgroup(self, account: str, query_id: str) -> str | None:
        return self.queries.get((account, query_id))


def raw(service: str, method: str, url: str, body: Any = b"", **headers: str) -> mi.RawRequest:
    payload = json.dumps(body).encode() if isinstance(body, dict) else body
    return mi.RawRequest(method, url, {"authorization": SIGNED.format(service=service), **headers}, payload)


def json_request(service: str, target: str, params: dict[str, Any]) -> ParsedRequest:
    parsed = parse_request(raw(service, "POST", f"https://{service}.{REGION}.amazonaws.com/", params,
                               **{"x-amz-target": target}))
    assert parsed is not None
    return parsed


def checks_of(request: mi.RawRequest | ParsedRequest, facts: Facts | None = None,
              account: str = CENTRAL) -> list[Check]:
    parsed = parse_request(request) if isinstance(request, mi.RawRequest) else request
    assert parsed is not None
    return map_request(parsed, account, facts or Facts()) or []


def summary(checks: list[Check]) -> list[tuple[str, str]]:
    return [(c.action, c.resource) for c in checks]


# ------------------------------------------------------------------------------------------------ mapping

def test_create_feature_group_needs_create_tag_on_create_and_pass_role_with_the_request_tags() -> None:
    request = json_request("sagemaker", "SageMaker.CreateFeatureGroup", {
        "FeatureGroupName": "Users", "RoleArn": f"arn:aws:iam::{CENTRAL}:role/Offline",
        "Tags": [{"Key": "team", "Value": "search"}]})
    create, tag, pass_role = checks_of(request)
    arn = f"arn:aws:sagemaker:{REGION}:{CENTRAL}:feature-group/users"
    assert (create.action, create.resource) == ("sagemaker:CreateFeatureGroup", arn)
    assert create.context == {"aws:RequestTag/team": "search", "aws:TagKeys": ["team"]}
    assert tag.action == "sagemaker:AddTags" and tag.context["sagemaker:TaggingAction"] == "CreateFeatureGroup"
    assert (pass_role.action, pass_role.resource) == ("iam:PassRole", f"arn:aws:iam::{CENTRAL}:role/Offline")
    assert pass_role.context["iam:PassedToService"] == "sagemaker.amazonaws.com"


def test_describing_a_group_carries_its_tags_as_resource_tags() -> None:
    facts = Facts(groups={(CENTRAL, "users"): {"team": "search", "shared": "true"}})
    (check,) = checks_of(json_request("sagemaker", "SageMaker.DescribeFeatureGroup", {"FeatureGroupName": "users"}),
                         facts)
    assert check.context == {"aws:ResourceTag/team": "search", "aws:ResourceTag/shared": "true"}
    assert check.policy == "feature-group" and check.resource_account == CENTRAL


def test_runtime_calls_by_arn_are_judged_in_the_groups_account() -> None:
    arn = f"arn:aws:sagemaker:{REGION}:{CENTRAL}:feature-group/users"
    facts = Facts(groups={(CENTRAL, "users"): {"team": "search"}})
    url = f"https://featurestore-runtime.sagemaker.{REGION}.amazonaws.com/FeatureGroup/{arn.replace('/', '%2F')}"
    (check,) = checks_of(raw("sagemaker", "PUT", url, {"Record": []}), facts, account=CONSUMER)
    assert (check.action, check.resource, check.resource_account) == ("sagemaker:PutRecord", arn, CENTRAL)
    assert check.context == {"aws:ResourceTag/team": "search"}


def test_runtime_paths_are_recognised_in_server_mode_by_path_alone() -> None:
    url = "http://127.0.0.1:5000/FeatureGroup/users?RecordIdentifierValueAsString=u1"
    assert summary(checks_of(raw("sagemaker", "GET", url))) == [
        ("sagemaker:GetRecord", f"arn:aws:sagemaker:{REGION}:{CENTRAL}:feature-group/users")]


def test_batch_write_needs_batch_write_and_put_record_once_per_group() -> None:
    body = {"Entries": [{"FeatureGroupName": "a", "Record": []}, {"FeatureGroupName": "b", "Record": []},
                        {"FeatureGroupName": "a", "Record": []}]}
    url = f"https://featurestore-runtime.sagemaker.{REGION}.amazonaws.com/BatchWriteRecord"
    actions = [(c.action, c.resource.rsplit("/", 1)[-1]) for c in checks_of(raw("sagemaker", "POST", url, body))]
    assert actions == [("sagemaker:BatchWriteRecord", "a"), ("sagemaker:PutRecord", "a"),
                       ("sagemaker:BatchWriteRecord", "b"), ("sagemaker:PutRecord", "b")]


@pytest.mark.parametrize("url", ["https://offline.s3.amazonaws.com/?list-type=2&prefix=feature-store%2F",
                                 "http://127.0.0.1:5000/offline?list-type=2&prefix=feature-store%2F"])
def test_listing_a_bucket_carries_the_prefix_and_the_owner_in_both_url_styles(url: str) -> None:
    (check,) = checks_of(raw("s3", "GET", url), Facts(owners={"offline": CENTRAL}), account=CONSUMER)
    assert (check.action, check.resource) == ("s3:ListBucket", "arn:aws:s3:::offline")
    assert check.context == {"s3:prefix": "feature-store/"}
    assert (check.resource_account, check.policy, check.owner_ref) == (CENTRAL, "s3", "offline")


def test_reading_a_kms_encrypted_object_also_needs_decrypt_via_s3_under_the_key_policy() -> None:
    facts = Facts(owners={"offline": CENTRAL}, object_keys={("offline", "a/b.parquet"): "alias/offline"})
    get, decrypt = checks_of(raw("s3", "HEAD", "https://offline.s3.amazonaws.com/a/b.parquet"), facts,
                             account=CONSUMER)
    assert (get.action, get.resource) == ("s3:GetObject", "arn:aws:s3:::offline/a/b.parquet")
    assert (decrypt.action, decrypt.resource, decrypt.policy) == ("kms:Decrypt", KEY_ARN, "kms")
    assert decrypt.context == {"kms:ViaService": f"s3.{REGION}.amazonaws.com", "kms:CallerAccount": CONSUMER}


def test_writing_an_object_uses_the_bucket_default_key_and_carries_the_acl() -> None:
    facts = Facts(owners={"offline": CENTRAL}, bucket_keys={"offline": KEY_ARN})
    put, generate = checks_of(raw("s3", "PUT", "https://offline.s3.amazonaws.com/a/c.parquet",
                                  **{"x-amz-acl": "bucket-owner-full-control"}), facts)
    assert put.context == {"s3:x-amz-acl": "bucket-owner-full-control"}
    assert (generate.action, generate.resource) == ("kms:GenerateDataKey", KEY_ARN)


def test_bulk_delete_is_one_delete_object_check_per_key() -> None:
    body = b"<Delete><Object><Key>a/1</Key></Object><Object><Key>a/2&amp;x</Key></Object></Delete>"
    checks = checks_of(raw("s3", "POST", "https://offline.s3.amazonaws.com/?delete", body))
    assert summary(checks) == [("s3:DeleteObject", "arn:aws:s3:::offline/a/1"),
                               ("s3:DeleteObject", "arn:aws:s3:::offline/a/2&x")]


def test_an_s3_subresource_the_mapping_does_not_know_is_refused_rather_than_guessed() -> None:
    with pytest.raises(UnmappedRequest, match="inventory"):
        checks_of(raw("s3", "GET", "https://offline.s3.amazonaws.com/?inventory"))


def test_glue_table_reads_in_another_catalog_check_catalog_database_and_table_there() -> None:
    checks = checks_of(json_request("glue", "AWSGlue.GetTable", {"CatalogId": CENTRAL, "DatabaseName": "db",
                                                                 "Name": "t"}), account=CONSUMER)
    prefix = f"arn:aws:glue:{REGION}:{CENTRAL}"
    assert summary(checks) == [("glue:GetTable", f"{prefix}:catalog"), ("glue:GetTable", f"{prefix}:database/db"),
                               ("glue:GetTable", f"{prefix}:table/db/t")]
    assert {(c.resource_account, c.policy) for c in checks} == {(CENTRAL, "glue")}


def test_athena_query_calls_are_judged_on_the_workgroup_that_ran_the_query() -> None:
    facts = Facts(queries={(CONSUMER, "q1"): "featureshare"})
    (check,) = checks_of(json_request("athena", "AmazonAthena.GetQueryResults", {"QueryExecutionId": "q1"}), facts,
                         account=CONSUMER)
    assert check.resource == f"arn:aws:athena:{REGION}:{CONSUMER}:workgroup/featureshare"
    (start,) = checks_of(json_request("athena", "AmazonAthena.StartQueryExecution", {"QueryString": "SELECT 1"}))
    assert start.resource.endswith(":workgroup/primary")


def test_kms_calls_need_the_key_policy_and_unknown_keys_are_left_to_kms() -> None:
    (check,) = checks_of(json_request("kms", "TrentService.DescribeKey", {"KeyId": "alias/offline"}))
    assert (check.action, check.resource, check.policy) == ("kms:DescribeKey", KEY_ARN, "kms")
    assert checks_of(json_request("kms", "TrentService.DescribeKey", {"KeyId": "alias/missing"})) == []


def test_unknown_operations_of_enforced_services_are_judged_on_every_resource() -> None:
    assert summary(checks_of(json_request("sagemaker", "SageMaker.ListModels", {}))) == [("sagemaker:ListModels", "*")]


def test_unsigned_requests_and_services_outside_the_job_are_not_checked() -> None:
    assert parse_request(mi.RawRequest("GET", "https://s3.amazonaws.com/b", {}, b"")) is None
    sqs = parse_request(raw("sqs", "POST", "https://sqs.us-east-1.amazonaws.com/", b"Action=ListQueues"))
    assert sqs is not None and map_request(sqs, CENTRAL, Facts()) is None


def test_a_presigned_url_is_judged_as_its_signer() -> None:
    url = ("https://s3.amazonaws.com/bucket/some/key.parquet?X-Amz-Algorithm=AWS4-HMAC-SHA256"
           "&X-Amz-Credential=ASIAPRESIGNED%2F20260101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Signature=abc")
    parsed = parse_request(mi.RawRequest("GET", url, {}, b""))
    assert parsed is not None
    assert (parsed.access_key_id, parsed.region, parsed.service, parsed.bucket, parsed.key) == (
        "ASIAPRESIGNED", "eu-west-1", "s3", "bucket", "some/key.parquet")


def test_session_tags_are_read_from_the_query_protocol() -> None:
    parsed = parse_request(raw("sts", "POST", "https://sts.amazonaws.com/",
                               b"Action=AssumeRole&Tags.member.1.Key=team&Tags.member.1.Value=search"
                               b"&Tags.member.2.Key=cost&Tags.member.2.Value=ml"))
    assert parsed is not None and parsed.operation == "AssumeRole"
    assert query_tags(parsed.params) == {"team": "search", "cost": "ml"}


@pytest.mark.parametrize(("service", "status", "marker"), [
    ("sts", 403, "<Code>AccessDenied</Code>"), ("s3", 403, "<Code>AccessDenied</Code>"),
    ("glue", 400, '"__type": "AccessDeniedException"'), ("featurestore-runtime", 403, "AccessDeniedException")])
def test_refusals_use_each_protocols_error_shape(service: str, status: int, marker: str) -> None:
    code, _headers, body = denial_response(service, "User: x is not authorized to perform: a:B on resource: r <&>")
    assert code == status and marker in body
    assert "&lt;&amp;&gt;" in body if service in ("sts", "s3") else "<&>" in body
    assert denial_response("s3", "m", "HEAD")[2] == ""


# ------------------------------------------------------------------------------------------------ live

CONSUMER_ROOT = f"arn:aws:iam::{CONSUMER}:root"
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": CONSUMER_ROOT},
                                                 "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
LIST_BUCKETS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets",
                                                         "Resource": "*"}]}


def limited_session(aws: EmbeddedAWS, **assume: Any) -> boto3.Session:
    """The consumer admin's session of central role ``Limited`` (it may only list buckets)."""
    iam = aws.admin_session("central").client("iam")
    iam.create_role(RoleName="Limited", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(RoleName="Limited", PolicyName="list", PolicyDocument=json.dumps(LIST_BUCKETS))
    creds = aws.admin_session("consumer").client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{CENTRAL}:role/Limited", RoleSessionName="limited", **assume)["Credentials"]
    return boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"], region_name=aws.region)


def refused(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response


def test_botocore_reads_the_refusal_of_every_service_the_job_uses(embedded_aws: EmbeddedAWS) -> None:
    session = limited_session(embedded_aws)
    embedded_aws.admin_session("central").client("s3").create_bucket(Bucket="offline")
    assert [b["Name"] for b in session.client("s3").list_buckets()["Buckets"]] == ["offline"]
    arn = "arn:aws:sts::111111111111:assumed-role/Limited/limited"
    calls = {
        "s3:GetObject": lambda: session.client("s3").get_object(Bucket="offline", Key="k"),
        "glue:GetDatabases": lambda: session.client("glue").get_databases(),
        "athena:ListWorkGroups": lambda: session.client("athena").list_work_groups(),
        "kms:CreateKey": lambda: session.client("kms").create_key(),
        "sagemaker:ListFeatureGroups": lambda: session.client("sagemaker").list_feature_groups(),
        "sagemaker:GetRecord": lambda: session.client("sagemaker-featurestore-runtime").get_record(
            FeatureGroupName="g", RecordIdentifierValueAsString="1"),
        "iam:ListRoles": lambda: session.client("iam").list_roles(),
        "sts:AssumeRole": lambda: session.client("sts").assume_role(RoleArn=f"arn:aws:iam::{CENTRAL}:role/Limited",
                                                                    RoleSessionName="again"),
    }
    for action, call in calls.items():
        error = refused(call)["Error"]
        assert error["Code"] in ("AccessDenied", "AccessDeniedException"), (action, error)
        assert error["Message"].startswith(f"User: {arn} is not authorized to perform: {action} on resource: ")
    assert refused(lambda: session.client("s3").head_object(Bucket="offline", Key="k"))["Error"]["Code"] == "403"
    assert session.client("sts").get_caller_identity()["Arn"] == arn  # not an enforced action


def test_refusals_reach_clients_of_the_local_server_too() -> None:
    with EmbeddedAWS(server=True) as aws:
        admin = aws.admin_session("consumer")
        aws.admin_session("central").client("iam").create_role(RoleName="Limited",
                                                               AssumeRolePolicyDocument=json.dumps(TRUST))
        creds = admin.client("sts").assume_role(RoleArn=f"arn:aws:iam::{CENTRAL}:role/Limited",
                                                RoleSessionName="ss", Tags=[{"Key": "team", "Value": "x"}])
        session = boto3.Session(aws_access_key_id=creds["Credentials"]["AccessKeyId"],
                                aws_secret_access_key=creds["Credentials"]["SecretAccessKey"],
                                aws_session_token=creds["Credentials"]["SessionToken"], region_name=aws.region)
        endpoint = {"endpoint_url": aws.endpoint_url}
        assert refused(lambda: session.client("s3", **endpoint).list_buckets())["Error"]["Code"] == "AccessDenied"
        assert refused(lambda: session.client("glue", **endpoint).get_databases())["Error"]["Code"] == \
            "AccessDeniedException"
        assert aws.policy.session_tags(creds["Credentials"]["AccessKeyId"]) == {"team": "x"}


def test_the_trust_policy_decides_tag_session_and_names_the_action(embedded_aws: EmbeddedAWS) -> None:
    iam = embedded_aws.admin_session("central").client("iam")
    only_assume = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                          "Principal": {"AWS": f"arn:aws:iam::{CENTRAL}:root"}}]}
    iam.create_role(RoleName="Chained", AssumeRolePolicyDocument=json.dumps(only_assume))
    session = limited_session(embedded_aws)
    iam.put_role_policy(RoleName="Limited", PolicyName="assume", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                                                "Resource": "*"}]}))
    sts = session.client("sts")
    chained = f"arn:aws:iam::{CENTRAL}:role/Chained"
    message = refused(lambda: sts.assume_role(RoleArn=chained, RoleSessionName="cc",
                                              Tags=[{"Key": "team", "Value": "search"}]))["Error"]["Message"]
    assert "sts:TagSession on resource: arn:aws:iam::111111111111:role/Chained" in message
    assert sts.assume_role(RoleArn=chained, RoleSessionName="cc")["AssumedRoleUser"]["Arn"].endswith("Chained/cc")


def test_an_explicit_deny_wins_and_says_so(embedded_aws: EmbeddedAWS) -> None:
    session = limited_session(embedded_aws)
    embedded_aws.admin_session("central").client("iam").put_role_policy(
        RoleName="Limited", PolicyName="deny", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}))
    assert "with an explicit deny in an identity-based policy" in \
        refused(lambda: session.client("s3").list_buckets())["Error"]["Message"]


def test_admins_are_never_checked_and_switching_enforcement_off_checks_nobody(embedded_aws: EmbeddedAWS) -> None:
    session = limited_session(embedded_aws)
    embedded_aws.admin_session("consumer").client("glue").get_databases()
    embedded_aws.enforce_iam = False
    assert session.client("glue").get_databases()["DatabaseList"] == []
    embedded_aws.enforce_iam = True
    refused(lambda: session.client("glue").get_databases())


def test_audit_mode_records_what_it_would_refuse_and_lets_it_through(embedded_aws: EmbeddedAWS) -> None:
    session = limited_session(embedded_aws)
    embedded_aws.policy.audit = True
    assert session.client("glue").get_databases()["DatabaseList"] == []
    assert len(embedded_aws.policy.refusals) == 1 and "glue:GetDatabases" in embedded_aws.policy.refusals[0]

"""Contract over every moto internal that ``featureshare.local.moto_internals`` touches.

When moto is upgraded, these tests say exactly which private name moved; fix ``moto_internals`` (and only it).
"""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import json
import re

import pytest

from featureshare.local import EmbeddedAWS
from featureshare.local import moto_internals as mi


def _params(func):
    return list(inspect.signature(func).parameters)


def _require(module_name, attribute):
    module = importlib.import_module(module_name)
    assert hasattr(module, attribute), (
        f"moto upgrade broke featureshare.local: {module_name}.{attribute} is gone; update moto_internals.py")
    return getattr(module, attribute)


def test_moto_is_the_pinned_version():
    import moto

    assert moto.__version__ == mi.MOTO_VERSION, (
        f"featureshare.local is written against moto {mi.MOTO_VERSION}, found {moto.__version__}: "
        "run this file and fix moto_internals.py before changing the pin")


def test_routing_tables_have_the_expected_shape():
    patterns = _require("moto.backend_index", "backend_url_patterns")
    assert isinstance(patterns, list)
    assert all(isinstance(s, str) and isinstance(p, re.Pattern) for s, p in patterns)
    for module in ("moto.sagemaker.urls", "moto.athena.urls"):
        assert isinstance(_require(module, "url_bases"), list)
        paths = _require(module, "url_paths")
        assert "{0}/$" in paths, f"{module}.url_paths no longer routes '{{0}}/$'"


def test_server_mode_routes_featurestore_runtime_signing_name_to_the_sagemaker_app():
    app_cls = _require("moto.moto_server.werkzeug_app", "DomainDispatcherApplication")
    app = app_cls(lambda service: None)
    environ = {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/sagemaker/aws4_request, "
                                     "SignedHeaders=host, Signature=x", "PATH_INFO": "/FeatureGroup/x"}
    host = app.infer_service_region_host(environ, "/FeatureGroup/x")
    assert host == "api.sagemaker.us-east-1.amazonaws.com"
    assert app.get_backend_for_host(host) == "sagemaker"


def test_the_request_handler_the_keep_alive_server_extends_exists():
    handler = _require("moto.moto_server.werkzeug_app", "MotoRequestHandler")
    assert hasattr(handler, "handle_one_request") or hasattr(handler, "run_wsgi")


def test_flask_path_conversion_keeps_our_runtime_routes():
    convert = _require("moto.core.utils", "convert_regex_to_flask_path")
    assert convert("/FeatureGroup/(?P<fs_name>.+)$") == '/FeatureGroup/<regex(".+"):fs_name>'
    # create_backend_app special-cases handlers named "dispatch"; ours must not be.
    assert all(h.__name__ != "dispatch" for h in (mi._runtime_route, mi._sagemaker_route, mi._athena_route))


def test_base_response_exposes_account_and_region_resolution():
    base = _require("moto.core.responses", "BaseResponse")
    for name in ("setup_class", "get_current_account", "get_region_from_url", "dispatch"):
        assert hasattr(base, name), f"moto BaseResponse.{name} is gone"
    assert _params(base.setup_class)[:4] == ["self", "request", "full_url", "headers"]


def test_backend_registry_and_reset():
    get_backend = _require("moto.backends", "get_backend")
    backend_dict = _require("moto.core.base_backend", "BackendDict")
    assert callable(get_backend) and hasattr(backend_dict, "reset")
    assert hasattr(get_backend("s3"), "bucket_accounts")


def test_iam_internals_used_for_admin_users():
    get_account_id_from = _require("moto.iam.models", "get_account_id_from")
    backend = _require("moto.iam.models", "IAMBackend")
    assert _params(get_account_id_from) == ["access_key"]
    assert _params(backend.create_user)[:3] == ["self", "region_name", "user_name"]
    assert _params(backend.put_user_policy)[:4] == ["self", "user_name", "policy_name", "policy_json"]
    assert _params(backend.create_access_key)[:2] == ["self", "user_name"]


def test_s3_internals_used_for_objects():
    backend = _require("moto.s3.models", "S3Backend")
    put = _params(backend.put_object)
    assert put[:4] == ["self", "bucket_name", "key_name", "value"]
    assert {"encryption", "kms_key_id", "disable_notification"} <= set(put)
    assert _params(backend.delete_object)[:3] == ["self", "bucket_name", "key_name"]
    key = _require("moto.s3.models", "FakeKey")
    assert isinstance(inspect.getattr_static(key, "value"), property)
    assert isinstance(inspect.getattr_static(key, "size"), property)


def test_glue_internals_used_for_tables_and_partitions():
    backend = _require("moto.glue.models", "GlueBackend")
    assert _params(backend.create_database)[:3] == ["self", "database_name", "database_input"]
    assert _params(backend.create_table)[:4] == ["self", "database_name", "table_name", "table_input"]
    table = _require("moto.glue.models", "FakeTable")
    assert {"create_partition", "as_dict"} <= set(dir(table))
    partition = _require("moto.glue.models", "FakePartition")
    assert "as_dict" in dir(partition)


def test_athena_internals_used_for_workgroups_and_catalogs():
    backend = _require("moto.athena.models", "AthenaBackend")
    assert _params(backend.get_work_group) == ["self", "name"]
    assert _params(backend.get_data_catalog) == ["self", "name"]


def test_server_and_mock_entry_points():
    server = _require("moto.server", "ThreadedMotoServer")
    assert _params(server.__init__)[:4] == ["self", "ip_address", "port", "verbose"]
    assert {"start", "stop", "get_host_and_port"} <= set(dir(server))
    assert callable(_require("moto", "mock_aws"))


def test_internals_work_against_a_running_emulator():
    with EmbeddedAWS() as aws:
        central = aws.account_ids["central"]
        aws.admin_session("central").client("s3").create_bucket(Bucket="contract-bucket")
        mi.s3_put("contract-bucket", "a/b.txt", b"hello", kms_key_id="alias/k")
        mi.glue_create_database(central, aws.region, "db")
        mi.glue_create_table(central, aws.region, "db", {
            "Name": "t", "StorageDescriptor": {"Columns": [], "Location": "s3://contract-bucket/a"},
            "PartitionKeys": [{"Name": "year", "Type": "string"}]})
        added = mi.glue_add_partition(central, aws.region, "db", "t", ["2024"], "s3://contract-bucket/a/year=2024")

        assert mi.s3_list("contract-bucket", "a/") == [("a/b.txt", 5)]
        assert mi.s3_get("contract-bucket", "a/b.txt") == b"hello"
        assert mi.s3_object_encryption("contract-bucket", "a/b.txt") == ("aws:kms", "alias/k")
        assert mi.s3_bucket_owner("contract-bucket") == central
        assert mi.s3_bucket_owner("no-such-bucket") is None
        assert added and not mi.glue_add_partition(central, aws.region, "db", "t", ["2024"], "s3://x")
        assert mi.glue_get_partitions(central, aws.region, "db", "t")[0]["Values"] == ["2024"]
        assert mi.glue_get_table(central, aws.region, "db", "t")["Name"] == "t"
        assert mi.glue_list_databases(central, aws.region) == ["db"]
        assert mi.glue_get_database(aws.account_ids["consumer"], aws.region, "db") is None
        assert mi.athena_workgroup(central, aws.region, "primary")["Name"] == "primary"
        assert mi.athena_data_catalog(central, aws.region, "nope") is None
        mi.s3_delete("contract-bucket", "a/b.txt")
        mi.glue_delete_table(central, aws.region, "db", "t")
        assert mi.s3_list("contract-bucket", "") == []
        assert mi.glue_list_tables(central, aws.region, "db") == []
        with pytest.raises(KeyError, match="no such object"):
            mi.s3_get("contract-bucket", "a/b.txt")


def test_routes_are_restored_after_the_emulator_stops():
    import moto.backend_index as backend_index
    import moto.sagemaker.urls as sagemaker_urls

    patterns, paths = list(backend_index.backend_url_patterns), dict(sagemaker_urls.url_paths)
    with EmbeddedAWS():
        assert len(backend_index.backend_url_patterns) == len(patterns) + 1
    assert backend_index.backend_url_patterns == patterns
    assert sagemaker_urls.url_paths == paths


def test_only_one_emulator_runs_at_a_time():
    with EmbeddedAWS(), pytest.raises(RuntimeError, match="already installed"):
        EmbeddedAWS().start()


def test_internals_used_by_policy_enforcement_exist():
    sts = _require("moto.sts.models", "STSBackend")
    assert _params(sts.get_assumed_role_from_access_key) == ["self", "access_key_id"]
    assumed = _require("moto.sts.models", "AssumedRole")
    # caller_of_access_key reads .arn and .role_arn, session_expiration reads .expiration (now + duration)
    assert {"account_id", "role_arn", "access_key", "duration"} <= set(_params(assumed.__init__))
    assert isinstance(inspect.getattr_static(assumed, "arn"), property)
    # moto_utcnow must be the clock AssumedRole stamps its expiration with
    assert _require("moto.sts.models", "utcnow") is _require("moto.core.utils", "utcnow")
    iam = _require("moto.iam.models", "IAMBackend")
    assert _params(iam.get_user_from_access_key_id) == ["self", "access_key_id"]
    glue = _require("moto.glue.models", "GlueBackend")
    assert "put_resource_policy" in dir(glue)
    kms = _require("moto.kms.models", "KmsBackend")
    assert _params(kms.any_id_to_key_id) == ["self", "key_id"]
    assert callable(_require("moto.kms.utils", "_deserialize_ciphertext_blob"))
    bucket = _require("moto.s3.models", "FakeBucket")
    assert _params(bucket.get_permission) == ["self", "action", "resource"]
    stubber = _require("moto.core.models", "botocore_stubber")
    assert _params(stubber.process_request) == ["request"]
    app = _require("moto.moto_server.werkzeug_app", "DomainDispatcherApplication")
    assert _params(app.__call__) == ["self", "environ", "start_response"]
    athena = _require("moto.athena.models", "AthenaBackend")
    assert {"work_groups", "data_catalogs", "tagger"} <= set(vars(athena("us-east-1", "123456789012")))


def test_principal_and_policy_internals_against_a_running_emulator():
    import boto3

    with EmbeddedAWS() as aws:
        central, consumer = aws.account_ids["central"], aws.account_ids["consumer"]
        admin = aws.admin_session("central")
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                         "Principal": {"AWS": f"arn:aws:iam::{consumer}:root"}}]}
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam = admin.client("iam")
        iam.create_role(RoleName="R", AssumeRolePolicyDocument=json.dumps(trust), Tags=[{"Key": "team", "Value": "a"}])
        iam.put_role_policy(RoleName="R", PolicyName="p", PolicyDocument=json.dumps(policy))
        sts = aws.admin_session("consumer").client("sts")
        before = mi.moto_utcnow()
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{central}:role/R", RoleSessionName="sess")["Credentials"]
        after = mi.moto_utcnow()
        key_id = admin.client("kms").create_key()["KeyMetadata"]["KeyId"]
        admin.client("kms").create_alias(AliasName="alias/k", TargetKeyId=key_id)
        blob = admin.client("kms").encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
        s3 = admin.client("s3")
        s3.create_bucket(Bucket="contract-policies")
        s3.put_bucket_policy(Bucket="contract-policies", Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                                                    "Resource": "arn:aws:s3:::contract-policies/*",
                                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
        s3.put_bucket_encryption(Bucket="contract-policies", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/k"}}]})
        s3.put_object(Bucket="contract-policies", Key="k", Body=b"x")  # moto's condition-blind check is off
        admin.client("glue").put_resource_policy(PolicyInJson=json.dumps(policy | {"Statement": [
            {**policy["Statement"][0], "Principal": {"AWS": consumer}}]}))

        caller = mi.caller_of_access_key(creds["AccessKeyId"])
        assert caller == mi.Caller(creds["AccessKeyId"], central, f"arn:aws:sts::{central}:assumed-role/R/sess",
                                   role_arn=f"arn:aws:iam::{central}:role/R")
        assert mi.caller_of_access_key(aws.credentials("central")[0]).user_name == "admin"
        expiration = mi.session_expiration(creds["AccessKeyId"])
        assert abs(expiration - creds["Expiration"].replace(tzinfo=None)) < dt.timedelta(seconds=1)
        assert before <= expiration - dt.timedelta(hours=1) <= after  # stamped on moto_utcnow's clock
        assert mi.session_expiration(aws.credentials("central")[0]) is None
        assert mi.session_expiration("AKIAUNKNOWNKEY000000") is None
        role = mi.iam_role(central, "R")
        assert (role["Trust"], role["Tags"], role["Policies"]) == (trust, {"team": "a"}, [("p", policy)])
        assert mi.iam_role(central, "missing") is None
        assert mi.iam_user_policies(central, "admin")[0][0] == "AdministratorAccess"
        assert mi.s3_bucket_policy("contract-policies")["Statement"][0]["Effect"] == "Deny"
        assert mi.s3_bucket_kms_key("contract-policies") == "alias/k"
        assert mi.glue_catalog_policy(central, aws.region)["Statement"][0]["Principal"] == {"AWS": consumer}
        assert mi.glue_catalog_policy(consumer, aws.region) is None
        arn, key_policy = mi.kms_key(central, aws.region, "alias/k")
        assert arn.endswith(f":{central}:key/{key_id}") and key_policy["Statement"]
        assert mi.kms_key(consumer, aws.region, key_id) is None
        assert mi.kms_key_id_of_ciphertext(blob) == key_id
        assert mi.kms_key_id_of_ciphertext(b"short") is None
        assert boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                             aws_session_token=creds["SessionToken"], region_name=aws.region).client(
            "s3").list_buckets()["Buckets"]


def test_athena_actions_moto_lacks_are_answered_over_its_state():
    with EmbeddedAWS() as aws:
        athena = aws.admin_session("consumer").client("athena")
        athena.create_work_group(Name="wg", Configuration={"ResultConfiguration": {"OutputLocation": "s3://a/"}})
        athena.update_work_group(WorkGroup="wg", Description="d", ConfigurationUpdates={
            "EnforceWorkGroupConfiguration": True,
            "ResultConfigurationUpdates": {"OutputLocation": "s3://b/", "ExpectedBucketOwner": "222222222222"}})
        group = athena.get_work_group(WorkGroup="wg")["WorkGroup"]
        assert group["Description"] == "d" and group["Configuration"]["EnforceWorkGroupConfiguration"] is True
        assert group["Configuration"]["ResultConfiguration"] == {"OutputLocation": "s3://b/",
                                                                "ExpectedBucketOwner": "222222222222"}
        athena.update_work_group(WorkGroup="wg", ConfigurationUpdates={
            "ResultConfigurationUpdates": {"RemoveExpectedBucketOwner": True}})
        assert athena.get_work_group(WorkGroup="wg")["WorkGroup"]["Configuration"]["ResultConfiguration"] == \
            {"OutputLocation": "s3://b/"}

        athena.create_data_catalog(Name="central", Type="GLUE", Parameters={"catalog-id": "111111111111"},
                                   Tags=[{"Key": "k", "Value": "v"}])
        athena.update_data_catalog(Name="central", Type="GLUE", Parameters={"catalog-id": "333333333333"})
        assert athena.get_data_catalog(Name="central")["DataCatalog"]["Parameters"] == {"catalog-id": "333333333333"}
        assert athena.delete_data_catalog(Name="central")["DataCatalog"]["Name"] == "central"
        assert mi.athena_data_catalog(aws.account_ids["consumer"], aws.region, "central") is None
        for call in (lambda: athena.delete_data_catalog(Name="central"),
                     lambda: athena.update_work_group(WorkGroup="missing", Description="x")):
            with pytest.raises(athena.exceptions.InvalidRequestException, match="is not found"):
                call()


def test_untagged_athena_resources_list_no_tags_and_missing_ones_do_not_exist():
    with EmbeddedAWS() as aws:
        athena = aws.admin_session("consumer").client("athena")
        arn = f"arn:aws:athena:{aws.region}:{aws.account_ids['consumer']}"
        athena.create_work_group(Name="plain", Configuration={"ResultConfiguration": {"OutputLocation": "s3://a/"}})
        athena.create_work_group(Name="tagged", Configuration={"ResultConfiguration": {"OutputLocation": "s3://a/"}},
                                 Tags=[{"Key": "team", "Value": "search"}])
        athena.create_data_catalog(Name="central", Type="GLUE", Parameters={"catalog-id": "111111111111"})

        assert athena.list_tags_for_resource(ResourceARN=f"{arn}:workgroup/plain")["Tags"] == []
        assert athena.list_tags_for_resource(ResourceARN=f"{arn}:datacatalog/central")["Tags"] == []
        assert athena.list_tags_for_resource(ResourceARN=f"{arn}:workgroup/tagged")["Tags"] == [
            {"Key": "team", "Value": "search"}]
        with pytest.raises(athena.exceptions.InvalidRequestException, match="Does Not Exist"):
            athena.list_tags_for_resource(ResourceARN=f"{arn}:workgroup/missing")


def test_request_hooks_and_bucket_checks_are_restored_after_the_emulator_stops():
    from moto.core.models import botocore_stubber
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.s3.models import FakeBucket

    call, permission = DomainDispatcherApplication.__call__, FakeBucket.get_permission
    with EmbeddedAWS():
        assert "process_request" in vars(botocore_stubber)
        assert DomainDispatcherApplication.__call__ is not call
    assert "process_request" not in vars(botocore_stubber)
    assert DomainDispatcherApplication.__call__ is call and FakeBucket.get_permission is permission


def test_ram_lists_shareable_resource_types_and_the_emulator_adds_feature_groups_while_running():
    from moto.ram.models import ResourceShare

    from featureshare.local import EmbeddedAWS

    assert isinstance(ResourceShare.SHAREABLE_RESOURCES, list), "moto.ram ResourceShare.SHAREABLE_RESOURCES moved"
    before = list(ResourceShare.SHAREABLE_RESOURCES)
    with EmbeddedAWS():
        assert "feature-group" in ResourceShare.SHAREABLE_RESOURCES
    assert before == ResourceShare.SHAREABLE_RESOURCES


# ------------------------------------------------------------------------- server mode over HTTP/1.1

def test_keepalive_server_internals():
    handler = _require("moto.moto_server.werkzeug_app", "MotoRequestHandler")
    assert _params(handler.make_environ) == ["self"]
    assert callable(_require("moto.moto_server.werkzeug_app", "create_backend_app"))
    app = _require("moto.moto_server.werkzeug_app", "DomainDispatcherApplication")
    assert _params(app.__init__) == ["self", "create_app"]
    make_server = _require("werkzeug.serving", "make_server")
    assert {"threaded", "request_handler"} <= set(_params(make_server))
    assert _params(_require("werkzeug.serving", "WSGIRequestHandler").run_wsgi) == ["self"]
    assert _require("werkzeug.serving", "connection_dropped_errors")
    assert _params(_require("moto.iam.models", "get_account_id_from")) == ["access_key"]


def _raw_connection(aws):
    import http.client

    host, port = aws.endpoint_url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=30)


def _exchange(conn, method, path, body=None, **kwargs):
    conn.request(method, path, body=body, **kwargs)
    response = conn.getresponse()
    return response, response.read()


def test_server_answers_many_requests_on_one_connection_including_unread_and_chunked_bodies(embedded_server):
    conn = _raw_connection(embedded_server)
    try:
        response, _ = _exchange(conn, "PUT", "/keepalive-bucket")
        assert response.status == 200 and response.getheader("Connection") != "close"
        local_port = conn.sock.getsockname()[1]
        # a body moto never reads, then a chunked one: the next request must still parse
        _exchange(conn, "POST", "/moto-api/unknown", body=b"x" * 70_000)
        chunks = (part for part in (b"hello ", b"chunked ", b"world"))
        response, _ = _exchange(conn, "PUT", "/keepalive-bucket/k", body=chunks, encode_chunked=True,
                                headers={"x-amz-acl": "public-read"})  # unsigned reads are anonymous
        assert response.status == 200
        response, body = _exchange(conn, "GET", "/keepalive-bucket/k")
        assert (response.status, body) == (200, b"hello chunked world")
        response, body = _exchange(conn, "HEAD", "/keepalive-bucket/k")
        assert response.getheader("Content-Length") == "19" and body == b""
        _exchange(conn, "GET", "/keepalive-bucket/k")
        assert conn.sock.getsockname()[1] == local_port
    finally:
        conn.close()


def test_server_connections_send_without_waiting_for_acks(embedded_server):
    """Responses are written as headers, then body: with Nagle's algorithm on, the body would wait for the
    client's delayed ACK of the headers (~40 ms on Linux) on every call."""
    import socket

    conn = _raw_connection(embedded_server)
    try:
        _exchange(conn, "PUT", "/nodelay-bucket")
        connections = list(embedded_server._server._connections)
        assert connections
        assert all(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for c in connections)
    finally:
        conn.close()


def test_stopping_the_server_closes_idle_keepalive_connections():
    aws = EmbeddedAWS(server=True).start()
    conn = _raw_connection(aws)
    try:
        _exchange(conn, "PUT", "/closing-bucket")
        aws.stop()
        conn.sock.settimeout(10)
        assert conn.sock.recv(1) == b""
    finally:
        conn.close()
        aws.stop()


def test_runtime_calls_wait_out_injected_latency_concurrently(embedded_server, group_request, make_record):
    import concurrent.futures as cf
    import time

    central = embedded_server.admin_session("central")
    central.client("s3").create_bucket(Bucket="central-offline-store")
    central.client("sagemaker").create_feature_group(**group_request("concurrent", offline=False))
    runtime = central.client("sagemaker-featurestore-runtime",
                             config=__import__("botocore.config").config.Config(max_pool_connections=8))
    runtime.put_record(FeatureGroupName="concurrent", Record=make_record("u1", "2024-05-01T10:00:00Z"))
    embedded_server.inject_faults(latency_ms=1000)
    started = time.perf_counter()
    with cf.ThreadPoolExecutor(8) as pool:
        records = list(pool.map(lambda _: runtime.get_record(FeatureGroupName="concurrent",
                                                             RecordIdentifierValueAsString="u1"), range(8)))
    elapsed = time.perf_counter() - started
    embedded_server.clear_faults()
    assert all(r["Record"] for r in records)
    serialised = 8 * 1.0  # one call after another; overlapping calls take about 1 s in all
    assert elapsed < serialised / 2, f"8 calls with 1 s latency took {elapsed:.2f}s: they were serialised"


def test_bucket_replication_is_answered_as_stored_while_the_emulator_runs_and_moto_answers_after():
    from moto.s3.responses import S3Response

    original = _require("moto.s3.responses", "S3Response").__dict__["get_bucket_replication"]
    assert "get_bucket_replication" in vars(_require("moto.s3.models", "S3Backend"))  # what the answer reads
    configuration = {"Role": "arn:aws:iam::111111111111:role/replication", "Rules": [
        {"ID": "narrow", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": "feature-store/"},
         "DeleteMarkerReplication": {"Status": "Enabled"},
         "SourceSelectionCriteria": {"SseKmsEncryptedObjects": {"Status": "Enabled"}},
         "Destination": {"Bucket": "arn:aws:s3:::replica", "Account": "222222222222",
                         "AccessControlTranslation": {"Owner": "Destination"},
                         "EncryptionConfiguration": {"ReplicaKmsKeyID": "arn:aws:kms:us-east-1:222222222222:key/k"}}},
        {"ID": "everything", "Priority": 2, "Status": "Enabled", "Filter": {"Prefix": ""},
         "DeleteMarkerReplication": {"Status": "Disabled"}, "Destination": {"Bucket": "arn:aws:s3:::replica"}},
    ]}
    with EmbeddedAWS() as aws:
        s3 = aws.admin_session("central").client("s3")
        s3.create_bucket(Bucket="replicated")
        s3.put_bucket_versioning(Bucket="replicated", VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_replication(Bucket="replicated", ReplicationConfiguration=configuration)
        assert s3.get_bucket_replication(Bucket="replicated")["ReplicationConfiguration"] == configuration
        s3.delete_bucket_replication(Bucket="replicated")
        with pytest.raises(s3.exceptions.ClientError, match="ReplicationConfigurationNotFoundError"):
            s3.get_bucket_replication(Bucket="replicated")
    assert S3Response.__dict__["get_bucket_replication"] is original

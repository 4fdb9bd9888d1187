"""The embedded Athena API, driven by plain boto3 and PyAthena against the embedded two-account AWS."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featureshare.local import EmbeddedAWS

FS_DB = "sagemaker_featurestore"
CENTRAL_BUCKET, TRAINING_BUCKET = "central-offline", "consumer-training"
WORKGROUP, RESULTS = "training", f"s3://{TRAINING_BUCKET}/athena-results/"
PARTITION_KEYS = ["year", "month", "day", "hour"]
KEYWORDS = pd.DataFrame({"customer_id": ["c0", "c1", "c2"], "keyword": ["shoes", None, 'x,"y"']})
PARQUET_SD = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}


def _parquet(frame: pd.DataFrame) -> bytes:
    body = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), body)
    return body.getvalue()


def _sessions(hours: int) -> pd.DataFrame:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    rows = [{"customer_id": f"c{k}", "spend": float(h * 10 + k),
             "event_time": (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ"), "h": h}
            for h in range(hours) for k in range(3)]
    return pd.DataFrame(rows)


def _seed_central(session: Any, frame: pd.DataFrame) -> dict[str, int]:
    """A partitioned feature table in the central account; returns object sizes by hour partition."""
    s3, glue = session.client("s3"), session.client("glue")
    s3.create_bucket(Bucket=CENTRAL_BUCKET)
    glue.create_database(DatabaseInput={"Name": FS_DB})
    location = f"s3://{CENTRAL_BUCKET}/offline/sessions/data/"
    columns = [{"Name": "customer_id", "Type": "string"}, {"Name": "spend", "Type": "double"},
               {"Name": "event_time", "Type": "string"}]
    glue.create_table(DatabaseName=FS_DB, TableInput={
        "Name": "sessions", "TableType": "EXTERNAL_TABLE",
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in PARTITION_KEYS],
        "StorageDescriptor": {"Columns": columns, "Location": location, **PARQUET_SD}})
    sizes = {}
    for hour, part in frame.groupby("h"):
        values = ["2024", "03", "01", f"{hour:02d}"]
        folder = location + "".join(f"{k}={v}/" for k, v in zip(PARTITION_KEYS, values, strict=True))
        body = _parquet(part.drop(columns="h"))
        s3.put_object(Bucket=CENTRAL_BUCKET, Key=folder.split("/", 3)[3] + "part-0.parquet", Body=body)
        sizes[f"{hour:02d}"] = len(body)
        glue.create_partition(DatabaseName=FS_DB, TableName="sessions", PartitionInput={
            "Values": values, "StorageDescriptor": {"Columns": columns, "Location": folder, **PARQUET_SD}})
    return sizes


def _seed_consumer(session: Any, central_account: str) -> None:
    s3, glue, athena = session.client("s3"), session.client("glue"), session.client("athena")
    s3.create_bucket(Bucket=TRAINING_BUCKET)
    glue.create_database(DatabaseInput={"Name": FS_DB})
    s3.put_object(Bucket=TRAINING_BUCKET, Key="local/keywords/part-0.parquet", Body=_parquet(KEYWORDS))
    glue.create_table(DatabaseName=FS_DB, TableInput={
        "Name": "keywords", "TableType": "EXTERNAL_TABLE", "StorageDescriptor": {
            "Columns": [{"Name": "customer_id", "Type": "string"}, {"Name": "keyword", "Type": "string"}],
            "Location": f"s3://{TRAINING_BUCKET}/local/keywords/", **PARQUET_SD}})
    athena.create_data_catalog(Name="central", Type="GLUE", Parameters={"catalog-id": central_account})
    athena.create_work_group(Name=WORKGROUP, Configuration={"ResultConfiguration": {"OutputLocation": RESULTS}})


@pytest.fixture(scope="module", params=["in-process", "server"])
def aws(request: pytest.FixtureRequest) -> Iterator[tuple[EmbeddedAWS, dict[str, int]]]:
    with EmbeddedAWS(server=request.param == "server") as embedded:
        sizes = _seed_central(embedded.admin_session("central"), _sessions(4))
        _seed_consumer(embedded.admin_session("consumer"), embedded.account_ids["central"])
        yield embedded, sizes


@pytest.fixture
def athena(aws: tuple[EmbeddedAWS, dict[str, int]]) -> Any:
    return aws[0].admin_session("consumer").client("athena")


def wait(athena: Any, query_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        if execution["Status"]["State"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return execution
        time.sleep(0.02)
    raise TimeoutError(f"query {query_id} still running after {timeout}s")


def start(athena: Any, sql: str, **extra: Any) -> str:
    extra.setdefault("WorkGroup", WORKGROUP)
    extra.setdefault("QueryExecutionContext", {"Database": FS_DB})
    return athena.start_query_execution(QueryString=sql, **extra)["QueryExecutionId"]


def run(athena: Any, sql: str, **extra: Any) -> dict[str, Any]:
    return wait(athena, start(athena, sql, **extra))


JOIN_SQL = ('SELECT s.customer_id, s.spend, k.keyword FROM "central"."sagemaker_featurestore"."sessions" s '
            'LEFT JOIN "awsdatacatalog"."sagemaker_featurestore"."keywords" k ON k.customer_id = s.customer_id '
            "ORDER BY s.spend")


def test_query_joining_central_and_local_tables_pages_results_with_a_header_row(athena):
    execution = run(athena, JOIN_SQL)
    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    pages = list(athena.get_paginator("get_query_results").paginate(
        QueryExecutionId=execution["QueryExecutionId"], PaginationConfig={"PageSize": 5}))
    rows = [[cell.get("VarCharValue") for cell in row["Data"]] for page in pages for row in page["ResultSet"]["Rows"]]
    assert len(pages) == 3 and rows[0] == ["customer_id", "spend", "keyword"]
    expected = _sessions(4).sort_values("spend")
    assert [r[0] for r in rows[1:]] == expected["customer_id"].tolist()
    assert [float(r[1]) for r in rows[1:]] == expected["spend"].tolist()
    assert {r[0]: r[2] for r in rows[1:]} == {"c0": "shoes", "c1": None, "c2": 'x,"y"'}
    info = pages[0]["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]
    assert [(c["Name"], c["Type"]) for c in info] == [("customer_id", "varchar"), ("spend", "double"),
                                                      ("keyword", "varchar")]


def test_query_execution_reports_statistics_and_writes_the_athena_csv(aws, athena):
    embedded, sizes = aws
    execution = run(athena, JOIN_SQL)
    assert execution["StatementType"] == "DML" and execution["WorkGroup"] == WORKGROUP
    keywords_size = len(_parquet(KEYWORDS))
    assert execution["Statistics"]["DataScannedInBytes"] == sum(sizes.values()) + keywords_size
    status = execution["Status"]
    assert status["SubmissionDateTime"] <= status["CompletionDateTime"]
    location = execution["ResultConfiguration"]["OutputLocation"]
    assert location == f"{RESULTS}{execution['QueryExecutionId']}.csv"
    body = embedded.admin_session("consumer").client("s3").get_object(
        Bucket=TRAINING_BUCKET, Key=location.split("/", 3)[3])["Body"].read().decode()
    lines = body.splitlines()
    assert lines[0] == '"customer_id","spend","keyword"'
    assert lines[1] == '"c0","0.0","shoes"' and lines[2] == '"c1","1.0",'  # NULL is empty, unquoted
    assert list(csv.reader(io.StringIO(body)))[3] == ["c2", "2.0", 'x,"y"']


def test_partition_predicate_scans_only_the_matching_partitions(aws, athena):
    _, sizes = aws
    sql = 'SELECT count(*) AS n FROM "central"."sagemaker_featurestore"."sessions" WHERE hour >= \'02\''
    execution = run(athena, sql)
    assert execution["Statistics"]["DataScannedInBytes"] == sizes["02"] + sizes["03"] < sum(sizes.values())
    rows = athena.get_query_results(QueryExecutionId=execution["QueryExecutionId"])["ResultSet"]["Rows"]
    assert rows[1]["Data"][0]["VarCharValue"] == "6"


@pytest.mark.parametrize(("sql", "reason"), [
    ("INSERT INTO keywords VALUES ('c9', 'k')", "NOT_SUPPORTED: .*INSERT"),
    ("SELECT FROM WHERE", "SYNTAX_ERROR"),
    ("SELECT * FROM nowhere.db.t", "CATALOG_NOT_FOUND: Catalog 'nowhere'"),
])
def test_failing_statement_ends_failed_with_a_reason_and_no_results(athena, sql, reason):
    execution = run(athena, sql)
    assert execution["Status"]["State"] == "FAILED"
    assert execution["Status"]["StateChangeReason"] == execution["Status"]["AthenaError"]["ErrorMessage"]
    assert execution["Statistics"]["DataScannedInBytes"] == 0
    assert re.search(reason, execution["Status"]["StateChangeReason"])
    with pytest.raises(athena.exceptions.InvalidRequestException, match="Final query state: FAILED"):
        athena.get_query_results(QueryExecutionId=execution["QueryExecutionId"])


def test_without_any_output_location_start_is_an_invalid_request(athena):
    with pytest.raises(athena.exceptions.InvalidRequestException, match="No output location provided"):
        athena.start_query_execution(QueryString="SELECT 1")  # primary workgroup has no result location


def test_request_output_location_applies_unless_the_workgroup_enforces_its_own(aws, athena):
    chosen = f"s3://{TRAINING_BUCKET}/mine/"
    execution = run(athena, "SELECT 1", ResultConfiguration={"OutputLocation": chosen}, WorkGroup="primary")
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(chosen)
    athena.create_work_group(Name="enforced", Configuration={
        "ResultConfiguration": {"OutputLocation": f"s3://{TRAINING_BUCKET}/enforced/"},
        "EnforceWorkGroupConfiguration": True})
    execution = run(athena, "SELECT 1", ResultConfiguration={"OutputLocation": chosen}, WorkGroup="enforced")
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(f"s3://{TRAINING_BUCKET}/enforced/")


def test_expected_bucket_owner_that_does_not_own_the_bucket_fails_the_query(aws, athena):
    central = aws[0].account_ids["central"]
    execution = run(athena, "SELECT 1", WorkGroup="primary",  # "training" enforces its own configuration
                    ResultConfiguration={"OutputLocation": RESULTS, "ExpectedBucketOwner": central})
    assert execution["Status"]["State"] == "FAILED"
    assert "Access denied when writing output" in execution["Status"]["StateChangeReason"]


def test_stop_query_execution_cancels_a_running_query(athena):
    query_id = start(athena, "WITH a AS (SELECT x FROM UNNEST(sequence(1, 3000)) AS t(x)) SELECT count(*) "
                             "FROM a a1, a a2, a a3 WHERE a1.x * a2.x * a3.x = -1")
    assert athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]["State"] in (
        "QUEUED", "RUNNING")
    athena.stop_query_execution(QueryExecutionId=query_id)
    assert wait(athena, query_id, timeout=5)["Status"]["State"] == "CANCELLED"


def test_held_queries_stay_queued_until_released_or_stopped(aws, athena):
    embedded = aws[0]
    with embedded.hold_queries():
        finishing = start(athena, "SELECT 1")
        stopped = start(athena, "SELECT 2")
        for query_id in (finishing, stopped):
            assert athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]["State"] \
                == "QUEUED"
        athena.stop_query_execution(QueryExecutionId=stopped)
        assert athena.get_query_execution(QueryExecutionId=stopped)["QueryExecution"]["Status"]["State"] \
            == "CANCELLED"
        assert athena.get_query_execution(QueryExecutionId=finishing)["QueryExecution"]["Status"]["State"] \
            == "QUEUED"

    assert wait(athena, finishing)["Status"]["State"] == "SUCCEEDED"
    assert athena.get_query_results(QueryExecutionId=finishing)["ResultSet"]["Rows"][1]["Data"][0]["VarCharValue"] \
        == "1"
    assert athena.get_query_execution(QueryExecutionId=stopped)["QueryExecution"]["Status"]["State"] == "CANCELLED"


def test_nested_holds_release_queries_only_when_the_outer_one_ends(aws, athena):
    embedded = aws[0]
    with embedded.hold_queries():
        with embedded.hold_queries():
            query_id = start(athena, "SELECT 3")
        assert athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]["State"] \
            == "QUEUED"

    assert wait(athena, query_id)["Status"]["State"] == "SUCCEEDED"


def test_list_and_batch_get_query_executions_see_queries_of_the_workgroup(athena):
    ids = [start(athena, f"SELECT {i}") for i in range(3)]
    for query_id in ids:
        wait(athena, query_id)
    listed = [i for page in athena.get_paginator("list_query_executions").paginate(
        WorkGroup=WORKGROUP, PaginationConfig={"PageSize": 2}) for i in page["QueryExecutionIds"]]
    assert listed[:3] == ids[::-1]
    batch = athena.batch_get_query_execution(QueryExecutionIds=[*ids, "no-such-id"])
    assert sorted(q["QueryExecutionId"] for q in batch["QueryExecutions"]) == sorted(ids)
    assert [u["QueryExecutionId"] for u in batch["UnprocessedQueryExecutionIds"]] == ["no-such-id"]


def test_ctas_writes_parquet_to_s3_and_registers_the_glue_table_in_the_consumer_account(aws, athena):
    session = aws[0].admin_session("consumer")
    execution = run(athena, f"""CREATE TABLE sagemaker_featurestore.snapshot WITH (format = 'PARQUET',
        external_location = 's3://{TRAINING_BUCKET}/snapshot/', partitioned_by = ARRAY['hour'])
        AS SELECT customer_id, spend, hour FROM "central"."sagemaker_featurestore"."sessions" WHERE hour < '02'""")
    assert (execution["Status"]["State"], execution["StatementType"]) == ("SUCCEEDED", "DDL")
    glue = session.client("glue")
    table = glue.get_table(DatabaseName=FS_DB, Name="snapshot")["Table"]
    assert [k["Name"] for k in table["PartitionKeys"]] == ["hour"]
    partitions = glue.get_partitions(DatabaseName=FS_DB, TableName="snapshot")["Partitions"]
    assert sorted(p["Values"][0] for p in partitions) == ["00", "01"]
    manifest = execution["Statistics"]["DataManifestLocation"]
    files = session.client("s3").get_object(Bucket=TRAINING_BUCKET, Key=manifest.split("/", 3)[3])["Body"].read()
    assert all(f.startswith(f"s3://{TRAINING_BUCKET}/snapshot/hour=") for f in files.decode().split())
    back = run(athena, "SELECT count(*) FROM snapshot")
    rows = athena.get_query_results(QueryExecutionId=back["QueryExecutionId"])["ResultSet"]["Rows"]
    assert rows[1]["Data"][0]["VarCharValue"] == "6"


def test_unload_writes_parquet_under_the_target_prefix(aws, athena):
    s3 = aws[0].admin_session("consumer").client("s3")
    execution = run(athena, f"UNLOAD (SELECT customer_id, keyword FROM keywords) "
                            f"TO 's3://{TRAINING_BUCKET}/unloaded/' WITH (format = 'PARQUET')")
    assert (execution["Status"]["State"], execution["StatementType"]) == ("SUCCEEDED", "DML")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=TRAINING_BUCKET, Prefix="unloaded/")["Contents"]]
    frame = pd.concat(pd.read_parquet(io.BytesIO(s3.get_object(Bucket=TRAINING_BUCKET, Key=k)["Body"].read()))
                      for k in keys)
    assert sorted(frame["customer_id"]) == ["c0", "c1", "c2"]
    again = run(athena, f"UNLOAD (SELECT 1 AS x) TO 's3://{TRAINING_BUCKET}/unloaded/' WITH (format = 'PARQUET')")
    assert "HIVE_PATH_ALREADY_EXISTS" in again["Status"]["StateChangeReason"]


def test_show_tables_returns_rows_without_a_header(athena):
    execution = run(athena, "SHOW TABLES IN sagemaker_featurestore")
    assert execution["StatementType"] == "UTILITY"
    assert execution["ResultConfiguration"]["OutputLocation"].endswith(".txt")
    rows = athena.get_query_results(QueryExecutionId=execution["QueryExecutionId"])["ResultSet"]["Rows"]
    assert {"keywords"} <= {r["Data"][0]["VarCharValue"] for r in rows}
    assert "tab_name" not in {r["Data"][0]["VarCharValue"] for r in rows}


def pyathena_options(embedded: EmbeddedAWS, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Connection options; in server mode PyAthena's own S3 reads find the endpoint through ``aws.env()``."""
    options: dict[str, Any] = {"region_name": embedded.region, "work_group": WORKGROUP, "schema_name": FS_DB,
                               "poll_interval": 0.02}
    if embedded.server:
        for name, value in embedded.env().items():
            monkeypatch.setenv(name, value)
        return {**options, "profile_name": "consumer-admin"}
    credentials = embedded.admin_session("consumer").get_credentials()
    return {**options, "aws_access_key_id": credentials.access_key,
            "aws_secret_access_key": credentials.secret_key}


def test_pyathena_cursor_and_pandas_cursor_read_the_cross_catalog_join(aws, monkeypatch):
    pyathena = pytest.importorskip("pyathena")
    from pyathena.pandas.cursor import PandasCursor

    options = pyathena_options(aws[0], monkeypatch)
    expected = _sessions(4).sort_values("spend")
    with pyathena.connect(**options) as connection:
        cursor = connection.cursor()
        rows = cursor.execute(JOIN_SQL).fetchall()
        assert [r[1] for r in rows] == expected["spend"].tolist()
        assert [d[0] for d in cursor.description] == ["customer_id", "spend", "keyword"]
    with pyathena.connect(cursor_class=PandasCursor, **options) as connection:
        frame = connection.cursor().execute(JOIN_SQL).as_pandas()
    assert frame["spend"].tolist() == expected["spend"].tolist()
    assert frame["keyword"].isna().sum() == 4


def test_pyathena_arrow_cursor_reads_results_in_server_mode(aws, monkeypatch):
    pyathena = pytest.importorskip("pyathena")
    from pyathena.arrow.cursor import ArrowCursor

    if not aws[0].server:
        pytest.skip("ArrowCursor reads S3 through pyarrow's C++ client, which needs the HTTP endpoint")
    # pyarrow ignores AWS_ENDPOINT_URL (apache/arrow#49643) and PyAthena passes no endpoint_override.
    from pyarrow import fs

    s3_filesystem = fs.S3FileSystem
    monkeypatch.setattr(fs, "S3FileSystem", lambda **kw: s3_filesystem(endpoint_override=aws[0].endpoint_url, **kw))
    with pyathena.connect(cursor_class=ArrowCursor, **pyathena_options(aws[0], monkeypatch)) as connection:
        table = connection.cursor().execute("SELECT customer_id, keyword FROM keywords ORDER BY customer_id").as_arrow()
    assert table.column("customer_id").to_pylist() == ["c0", "c1", "c2"]
    # PyAthena's ArrowCursor reads a varchar NULL of Athena's CSV as "" (it does so against AWS too)
    assert table.column("keyword").to_pylist() == ["shoes", "", 'x,"y"']


def test_feature_store_records_are_queryable_from_the_consumer_without_an_explicit_flush(aws, athena):
    central = aws[0].admin_session("central")
    central.client("s3").create_bucket(Bucket="fs-offline")
    sagemaker, runtime = central.client("sagemaker"), central.client("sagemaker-featurestore-runtime")
    sagemaker.create_feature_group(
        FeatureGroupName="users", RecordIdentifierFeatureName="user_id", EventTimeFeatureName="event_time",
        FeatureDefinitions=[{"FeatureName": "user_id", "FeatureType": "String"},
                            {"FeatureName": "event_time", "FeatureType": "String"},
                            {"FeatureName": "age", "FeatureType": "Integral"}],
        OnlineStoreConfig={"EnableOnlineStore": True},
        OfflineStoreConfig={"S3StorageConfig": {"S3Uri": "s3://fs-offline/features"}},
        RoleArn=f"arn:aws:iam::{aws[0].account_ids['central']}:role/FeatureStoreOfflineRole")
    for user, event_time, age in [("u1", "2024-03-01T10:00:00Z", 30), ("u1", "2024-03-01T12:00:00Z", 31),
                                  ("u2", "2024-03-01T12:30:00Z", 40)]:
        values = {"user_id": user, "event_time": event_time, "age": str(age)}
        runtime.put_record(FeatureGroupName="users",
                           Record=[{"FeatureName": k, "ValueAsString": v} for k, v in values.items()])
    catalog = sagemaker.describe_feature_group(FeatureGroupName="users")["OfflineStoreConfig"]["DataCatalogConfig"]
    table = f'"central"."{catalog["Database"]}"."{catalog["TableName"]}"'
    execution = run(athena, f"SELECT user_id, age, is_deleted, write_time, "
                            f"from_iso8601_timestamp(event_time) AS event FROM {table} WHERE hour = '12' ORDER BY age")
    assert execution["Status"]["State"] == "SUCCEEDED", execution["Status"]
    result = athena.get_query_results(QueryExecutionId=execution["QueryExecutionId"])["ResultSet"]
    rows = [[c.get("VarCharValue") for c in r["Data"]] for r in result["Rows"][1:]]
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [("u1", "31", "false", "2024-03-01 12:00:00.000 UTC"),
                                                        ("u2", "40", "false", "2024-03-01 12:30:00.000 UTC")]
    types = {c["Name"]: c["Type"] for c in result["ResultSetMetadata"]["ColumnInfo"]}
    assert (types["age"], types["is_deleted"], types["write_time"]) == ("bigint", "boolean", "timestamp")


def test_execution_parameters_replace_question_marks_in_order(athena):
    execution = run(athena, "SELECT keyword FROM keywords WHERE customer_id = ? OR customer_id = ? ORDER BY 1",
                    ExecutionParameters=["'c0'", "'c2'"])
    rows = athena.get_query_results(QueryExecutionId=execution["QueryExecutionId"])["ResultSet"]["Rows"]
    assert [r["Data"][0]["VarCharValue"] for r in rows[1:]] == ["shoes", 'x,"y"']
    assert execution["ExecutionParameters"] == ["'c0'", "'c2'"]

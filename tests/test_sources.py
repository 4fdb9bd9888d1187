"""Streaming file readers (featureshare.sources): chunks add up to the file, memory stays bounded by the chunk,
S3 objects are read through the given session."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_fixtures import Setup, customers, customers_spec

from featureshare.errors import AWSError, NotFoundError, ValidationError
from featureshare.local import EmbeddedAWS
from featureshare.sources import iter_file_chunks, iter_parquet_chunks


def _frame(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"{i:07d}" for i in range(n)], "score": rng.random(n),
                         "count": rng.integers(0, 100, n), "label": rng.choice(["a", "b", None], n)})


def test_parquet_chunks_concatenate_to_the_whole_file_in_order(tmp_path):
    path = tmp_path / "data.parquet"
    expected = _frame(2_345)
    expected.to_parquet(path, index=False, row_group_size=1_000)
    chunks = list(iter_parquet_chunks(path, 300))
    assert all(len(c) <= 300 for c in chunks)
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), pd.read_parquet(path))


def test_one_large_row_group_is_still_read_a_chunk_at_a_time(tmp_path):
    """A file written as a single row group (the pandas default for small files) must not be decoded whole."""
    path = tmp_path / "one-group.parquet"
    payload = np.random.default_rng(1).integers(0, 2**31, (20_000, 64)).astype(str)
    pq.write_table(pa.table({"id": np.arange(20_000).astype(str), "blob": ["".join(r) for r in payload]}), path,
                   row_group_size=20_000, compression="none")
    size = path.stat().st_size
    before = pa.total_allocated_bytes()
    peak = 0
    rows = 0
    for chunk in iter_parquet_chunks(path, 1_000):
        peak = max(peak, pa.total_allocated_bytes() - before)
        rows += len(chunk)
    assert rows == 20_000
    assert peak < size / 3, f"Arrow held {peak} bytes for a {size}-byte file read 1/20 at a time"


def test_wide_rows_get_fewer_rows_per_chunk_so_a_chunk_stays_near_max_chunk_bytes(tmp_path):
    path = tmp_path / "wide.parquet"
    blobs = np.random.default_rng(2).integers(0, 10, (5_000, 1_000)).astype(str)
    expected = pd.DataFrame({"id": [str(i) for i in range(5_000)], "blob": ["".join(row) for row in blobs]})
    expected.to_parquet(path, index=False, compression="none")
    chunks = list(iter_parquet_chunks(path, 10_000, max_chunk_bytes=1 << 20))
    assert 4 <= len(chunks) <= 6
    assert max(len(c) for c in chunks) <= (1 << 20) // 1_000 + 1
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), pd.read_parquet(path))
    assert len(list(iter_parquet_chunks(path, 10_000, max_chunk_bytes=None))) == 1


def test_only_the_requested_columns_are_read(tmp_path):
    path = tmp_path / "data.parquet"
    _frame(50).to_parquet(path, index=False)
    chunks = list(iter_parquet_chunks(path, 20, columns=["id", "score"]))
    assert [list(c.columns) for c in chunks] == [["id", "score"]] * 3


def test_csv_chunks_keep_every_column_as_text_like_the_whole_file_reader(tmp_path):
    from featureshare.dataset_spec import read_data_file

    path = tmp_path / "data.csv"
    _frame(1_001).to_csv(path, index=False)
    chunks = list(iter_file_chunks(path, 250))
    assert [len(c) for c in chunks] == [250, 250, 250, 250, 1]
    streamed = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(streamed, read_data_file(path))
    assert streamed["id"].iloc[0] == "0000000"


def test_unsupported_or_missing_files_are_refused_before_reading(tmp_path):
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(ValidationError, match="unsupported file type"):
        iter_file_chunks(tmp_path / "data.json")
    with pytest.raises(ValidationError, match="no such file"):
        iter_file_chunks(tmp_path / "absent.parquet")
    with pytest.raises(ValidationError, match="chunk_size must be a positive integer"):
        iter_file_chunks(tmp_path / "data.json", 0, file_format="csv")


def test_a_file_that_is_not_parquet_is_a_validation_error(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(ValidationError, match="cannot read it as Parquet"):
        list(iter_parquet_chunks(path))


def test_s3_objects_need_an_explicit_session():
    with pytest.raises(ValidationError, match="needs a session"):
        iter_file_chunks("s3://bucket/data.parquet")


@pytest.fixture(scope="module", name="aws")
def aws_fixture(shared_setup: Setup) -> EmbeddedAWS:
    """The module's embedded AWS (one per process at a time) with a bucket in the consumer account."""
    shared_setup.consumer_admin.client("s3").create_bucket(Bucket="consumer-data")
    return shared_setup.aws


def test_s3_parquet_and_csv_read_through_the_session_equal_the_local_files(aws, tmp_path):
    session = aws.admin_session("consumer")
    s3 = session.client("s3")
    frame = _frame(3_000)
    frame.to_parquet(tmp_path / "d.parquet", index=False, row_group_size=700)
    frame.to_csv(tmp_path / "d.csv", index=False)
    for suffix in ("parquet", "csv"):
        s3.upload_file(str(tmp_path / f"d.{suffix}"), "consumer-data", f"in/d.{suffix}")
        remote = list(iter_file_chunks(f"s3://consumer-data/in/d.{suffix}", 1_000, session=session))
        local = list(iter_file_chunks(tmp_path / f"d.{suffix}", 1_000))
        assert [len(c) for c in remote] == [len(c) for c in local]
        pd.testing.assert_frame_equal(pd.concat(remote, ignore_index=True), pd.concat(local, ignore_index=True))


def test_a_missing_s3_object_is_not_found(aws):
    with pytest.raises(NotFoundError):
        list(iter_parquet_chunks("s3://consumer-data/absent.parquet", session=aws.admin_session("consumer")))


def test_an_s3_object_replaced_while_it_is_read_fails_instead_of_mixing_versions(aws, tmp_path):
    session = aws.admin_session("consumer")
    s3 = session.client("s3")
    _frame(5_000).to_parquet(tmp_path / "v1.parquet", index=False, row_group_size=1_000)
    s3.upload_file(str(tmp_path / "v1.parquet"), "consumer-data", "in/v.parquet")
    chunks = iter_parquet_chunks("s3://consumer-data/in/v.parquet", 1_000, session=session)
    next(chunks)
    _frame(5_000, seed=9).to_parquet(tmp_path / "v2.parquet", index=False, row_group_size=1_000)
    s3.upload_file(str(tmp_path / "v2.parquet"), "consumer-data", "in/v.parquet")
    with pytest.raises(AWSError, match=r"(?i)precondition") as raised:
        list(chunks)
    assert raised.value.code == "PreconditionFailed"


def test_ingesting_a_streamed_parquet_file_writes_every_row_with_file_positions(setup: Setup, name: str,
                                                                                tmp_path):
    frame = customers(2_500)
    frame.loc[7, "customer_id"] = None  # an invalid row keeps its position in the file
    path = tmp_path / "customers.parquet"
    frame.to_parquet(path, index=False, row_group_size=1_000)
    group = setup.ensure(customers_spec(name, frame))
    report = group.ingest(iter_file_chunks(path, 600), chunk_size=600, target_stores=["OnlineStore"])
    assert (report.rows_seen, report.rows_written) == (2_500, 2_499)
    assert [f.position for f in report.failures] == [7]
    last = frame.iloc[-1]
    assert group.get(last["customer_id"])["visits"] == last["visits"]

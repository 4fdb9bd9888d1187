"""The embedded Athena's reading of Parquet: decoded objects cached across queries, never stale, one listing
per partitioned table."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featureshare.local.athena_engine import run_statement
from featureshare.local.athena_model import (
    AthenaQueryError,
    Column,
    Partition,
    QueryContext,
    S3Object,
    TableMeta,
)
from featureshare.local.athena_select import PARQUET_CACHE, ParquetCache

CTX = QueryContext(account_id="222222222222", region="us-east-1", database="db")


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


class CountingResolver:
    """Glue tables and S3 objects in dicts; counts listings and reads, and can deny every read."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.tables: dict[str, TableMeta] = {}
        self.listings = 0
        self.reads = 0
        self.deny = False

    def get_table(self, catalog: str, database: str, table: str) -> TableMeta | None:
        return self.tables.get(table)

    def database_exists(self, catalog: str, database: str) -> bool:
        return True

    def list_objects(self, location: str) -> list[S3Object]:
        self.listings += 1
        return [S3Object(uri, len(body)) for uri, body in sorted(self.objects.items()) if uri.startswith(location)]

    def read_object(self, uri: str) -> bytes:
        self.reads += 1
        if self.deny:
            raise AthenaQueryError("PERMISSION_DENIED", f"Access denied: s3:GetObject on {uri}")
        return self.objects[uri]


@pytest.fixture
def resolver() -> Iterator[CountingResolver]:
    PARQUET_CACHE.clear()
    found = CountingResolver()
    found.objects["s3://b/t/a.parquet"] = _parquet(pa.table({"k": pa.array([1, 2, 3], pa.int64())}))
    found.objects["s3://b/t/b.parquet"] = _parquet(pa.table({"k": pa.array([10, 20], pa.int64())}))
    found.tables["t"] = TableMeta("db", "t", (Column("k", "bigint"),), "s3://b/t")
    yield found
    PARQUET_CACHE.clear()


def _select(resolver: CountingResolver, sql: str = "SELECT k FROM t ORDER BY k") -> tuple[list[tuple], int]:
    result = run_statement(sql, CTX, resolver)
    return result.rows, result.data_scanned_bytes


def test_a_repeated_query_is_answered_from_decoded_objects_with_the_same_rows_and_bytes_scanned(
        resolver: CountingResolver) -> None:
    first = _select(resolver)
    hits = PARQUET_CACHE.hits
    second = _select(resolver)

    assert second == first
    assert PARQUET_CACHE.hits == hits + 2
    assert first[1] == sum(len(b) for b in resolver.objects.values())


def test_an_object_overwritten_with_the_same_size_is_read_again(resolver: CountingResolver) -> None:
    assert _select(resolver)[0] == [(1,), (2,), (3,), (10,), (20,)]
    replacement = _parquet(pa.table({"k": pa.array([4, 5, 6], pa.int64())}))
    assert len(replacement) == len(resolver.objects["s3://b/t/a.parquet"])  # only the content differs
    resolver.objects["s3://b/t/a.parquet"] = replacement

    assert _select(resolver)[0] == [(4,), (5,), (6,), (10,), (20,)]
    assert len(PARQUET_CACHE) == 2  # the old decoding of a.parquet is gone, not merely unused


def test_a_deleted_object_disappears_from_results_and_from_the_cache(resolver: CountingResolver) -> None:
    _select(resolver)
    del resolver.objects["s3://b/t/b.parquet"]

    assert _select(resolver)[0] == [(1,), (2,), (3,)]
    assert len(PARQUET_CACHE) == 1


def test_a_cached_object_is_still_read_through_the_resolver_so_access_is_checked_every_time(
        resolver: CountingResolver) -> None:
    _select(resolver)
    resolver.deny = True

    with pytest.raises(AthenaQueryError, match="PERMISSION_DENIED"):
        _select(resolver)


def test_a_partitioned_table_is_listed_once_and_reads_only_the_chosen_partitions(
        resolver: CountingResolver) -> None:
    partitions = []
    for hour in range(48):
        location = f"s3://b/p/hour={hour:02d}"
        resolver.objects[f"{location}/x.parquet"] = _parquet(pa.table({"v": pa.array([hour], pa.int64())}))
        partitions.append(Partition((f"{hour:02d}",), location))
    resolver.tables["p"] = TableMeta("db", "p", (Column("v", "bigint"),), "s3://b/p",
                                     partition_keys=(Column("hour", "string"),), partitions=tuple(partitions))

    rows, _ = _select(resolver, "SELECT hour, v FROM p WHERE hour >= '46' ORDER BY v")

    assert rows == [("46", 46), ("47", 47)]
    assert resolver.listings == 1
    assert resolver.reads == 2


def test_the_cache_keeps_the_most_recently_used_tables_within_its_byte_budget() -> None:
    tables = [pa.table({"x": pa.array(range(1000), pa.int64())}) for _ in range(3)]
    size = tables[0].get_total_buffer_size()
    cache = ParquetCache(max_bytes=2 * size)
    keys = [(f"s3://b/{i}", size, b"digest", ()) for i in range(3)]
    cache.put(keys[0], tables[0])
    cache.put(keys[1], tables[1])
    assert cache.get(keys[0]) is tables[0]  # now the most recently used

    cache.put(keys[2], tables[2])

    assert cache.bytes <= cache.max_bytes
    assert cache.get(keys[1]) is None
    assert cache.get(keys[0]) is tables[0] and cache.get(keys[2]) is tables[2]
    assert cache.evictions == 1


def test_a_table_larger_than_the_whole_budget_is_not_cached() -> None:
    table = pa.table({"x": pa.array(range(1000), pa.int64())})
    cache = ParquetCache(max_bytes=100)
    cache.put(("s3://b/big", 1, b"d", ()), table)
    assert cache.bytes == 0 and cache.get(("s3://b/big", 1, b"d", ())) is None


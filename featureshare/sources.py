"""Streaming readers: a Parquet or CSV file, local or in S3, as DataFrames of at most ``chunk_size`` rows.

``ingest`` accepts an iterable of DataFrames and converts one chunk at a time, so feeding it from these
readers bounds memory by the chunk size instead of the file size::

    from featureshare.sources import iter_file_chunks

    report = group.ingest(iter_file_chunks("users.parquet", chunk_size=10_000), chunk_size=10_000)
    report = group.ingest(iter_file_chunks("s3://bucket/users.parquet", session=session))

Parquet is read with ``ParquetFile.iter_batches`` and buffered column reads (``buffer_size``), so even one
large row group is decoded page by page into batches of ``chunk_size`` rows rather than whole; each batch is
converted to pandas and dropped before the next one is read. CSV is read with ``pandas.read_csv(chunksize=)``,
every column as text (ids keep their leading zeros; ingestion converts to the group's types), the same as
:func:`featureshare.dataset_spec.read_data_file`.

S3 objects are read through the ``session``'s boto3 client with ranged ``GetObject`` calls (no s3fs, no
pyarrow S3 filesystem: the session's refreshing credentials and ``AWS_ENDPOINT_URL`` apply as for every other
call). Every range asks for the ETag seen when the object was opened (``IfMatch``), so an object replaced
while it is read fails loudly instead of mixing two versions. A session is required for S3: there is no
silent fallback to default credentials.

Limits: Parquet's peak memory is about one decoded batch plus pyarrow's read buffers (with strings of ~1 kB,
~2-3x the raw batch); pyarrow's allocator may keep freed memory for reuse, so RSS does not fall after a batch
even though it no longer grows. Compressed CSV (``.csv.gz``) is read by pandas from local files only.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from featureshare.errors import ValidationError, translate_client_error
from featureshare.s3uri import split_s3_uri

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.parquet as pq

__all__ = ["DEFAULT_CHUNK_SIZE", "DEFAULT_MAX_CHUNK_BYTES", "S3ObjectReader", "iter_csv_chunks", "iter_file_chunks",
           "iter_parquet_chunks", "open_source", "rows_per_chunk"]

logger = logging.getLogger(__name__)

#: Rows per DataFrame; also the default ``chunk_size`` of ``ingest``.
DEFAULT_CHUNK_SIZE = 10_000
#: Uncompressed Parquet bytes per DataFrame: wide rows get fewer rows per chunk (2 MiB of 1 kB rows = 2,000
#: rows), since a chunk costs ~3-4x its raw size once converted to pandas and then to records. Ingesting
#: 100 MB of 1 kB rows grew RSS by 48 MB with 4 MiB chunks, by 28 MB with 2 MiB (no faster or slower).
DEFAULT_MAX_CHUNK_BYTES = 2 << 20
#: Read buffer per Parquet column stream, so pages are decoded from it instead of whole column chunks being
#: loaded (unbuffered, one 20,000-row row group of 1 kB strings held ~1.2x the file in Arrow memory; with a
#: 64 KiB buffer, batches of 1,000 rows held 0.26x). S3 gets a larger one: each refill is one ranged GET.
PARQUET_BUFFER_BYTES = 128 << 10
PARQUET_S3_BUFFER_BYTES = 4 << 20
#: Bytes fetched per ranged GET when reading an S3 object sequentially (CSV) through a buffer.
S3_READ_BUFFER_BYTES = 8 << 20
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz")

Source = str | Path


class S3ObjectReader(io.RawIOBase):
    """A seekable, read-only file over one S3 object, read with ranged ``GetObject`` calls.

    ``client`` is a boto3 S3 client. The object's size and ETag are read once (``HeadObject``); every range
    is fetched with ``IfMatch=<that ETag>``. Not thread-safe (one position per reader), like any file.
    """

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        super().__init__()
        self._client = client
        self.bucket = bucket
        self.key = key
        self.uri = f"s3://{bucket}/{key}"
        with translate_client_error(action="s3:GetObject", resource=self.uri):
            head = client.head_object(Bucket=bucket, Key=key)
        self.size = int(head["ContentLength"])
        self.etag = str(head.get("ETag") or "")
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self.size, self._position + len(view))
        if end <= self._position:
            return 0
        data = self._range(self._position, end - 1)
        view[:len(data)] = data
        self._position += len(data)
        return len(data)

    def _range(self, first: int, last: int) -> bytes:
        extra = {"IfMatch": self.etag} if self.etag else {}
        with translate_client_error(action="s3:GetObject", resource=self.uri):
            body = self._client.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={first}-{last}",
                                           **extra)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()


def _require_session(session: Any, uri: str) -> Any:
    if session is None:
        raise ValidationError(f"reading {uri} needs a session", field="session", value=None,
                              hint="pass session= (an AccountSession or boto3.Session of the account that "
                                   "can read the object); default credentials are never used silently")
    return session


def open_source(source: Source, *, session: Any = None, buffer_size: int = 0) -> BinaryIO:
    """A binary, seekable file for a local path or an ``s3://bucket/key`` URI (read through ``session``).

    ``buffer_size`` > 0 wraps an S3 object in a read buffer of that many bytes (sequential readers such as
    CSV); Parquet reads its own column ranges and wants it unbuffered.
    """
    text = str(source)
    if text.startswith("s3://"):
        bucket, key = split_s3_uri(text, field="source")
        raw = S3ObjectReader(_require_session(session, text).client("s3"), bucket, key)
        return io.BufferedReader(raw, buffer_size) if buffer_size > 0 else raw  # type: ignore[return-value]
    path = Path(text)
    if not path.is_file():
        raise ValidationError(f"{path}: no such file", field="source", value=text)
    return path.open("rb")


def _check_chunk_size(chunk_size: int) -> None:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValidationError(f"chunk_size must be a positive integer, got {chunk_size!r}", field="chunk_size",
                              value=chunk_size)


def iter_parquet_chunks(source: Source | pq.ParquetFile, chunk_size: int = DEFAULT_CHUNK_SIZE, *,
                        session: Any = None, columns: Sequence[str] | None = None,
                        max_chunk_bytes: int | None = DEFAULT_MAX_CHUNK_BYTES) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_size`` rows from a Parquet file (path, ``s3://`` URI or ``ParquetFile``).

    Rows per chunk are also capped so a chunk holds about ``max_chunk_bytes`` of uncompressed data (the
    file's average row size, from its metadata; ``None`` = no cap). The estimate is of *encoded* data: a
    dictionary-encoded column of repeated long strings decodes much larger than it counts. Batches never span
    row groups, so a chunk can be shorter at a row group's end. ``columns`` reads only those columns. The
    file is opened lazily (on the first ``next()``) and closed when the iterator is exhausted or closed.

    >>> for frame in iter_parquet_chunks("users.parquet", 5_000):  # doctest: +SKIP
    ...     print(len(frame))
    """
    import pyarrow.parquet as pq

    _check_chunk_size(chunk_size)
    if isinstance(source, pq.ParquetFile):
        yield from _parquet_frames(source, chunk_size, columns, max_chunk_bytes)
        return
    with open_source(source, session=session) as file:
        try:
            buffer = PARQUET_S3_BUFFER_BYTES if str(source).startswith("s3://") else PARQUET_BUFFER_BYTES
            parquet = pq.ParquetFile(file, buffer_size=buffer, pre_buffer=False)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ValidationError(f"{source}: cannot read it as Parquet: {exc}", field="source",
                                  value=str(source)) from exc
        with parquet:
            yield from _parquet_frames(parquet, chunk_size, columns, max_chunk_bytes)


def rows_per_chunk(metadata: Any, chunk_size: int, max_chunk_bytes: int | None) -> int:
    """``chunk_size``, lowered so that a chunk of average rows holds about ``max_chunk_bytes`` uncompressed."""
    rows = int(metadata.num_rows)
    if not max_chunk_bytes or rows == 0:
        return chunk_size
    raw = sum(int(metadata.row_group(i).total_byte_size) for i in range(metadata.num_row_groups))
    return max(1, min(chunk_size, max_chunk_bytes * rows // max(raw, 1)))


def _parquet_frames(parquet: pq.ParquetFile, chunk_size: int, columns: Sequence[str] | None,
                    max_chunk_bytes: int | None) -> Iterator[pd.DataFrame]:
    batch_size = rows_per_chunk(parquet.metadata, chunk_size, max_chunk_bytes)
    logger.debug("reading %d rows in %d row group(s), %d rows per chunk", parquet.metadata.num_rows,
                 parquet.num_row_groups, batch_size)
    for batch in parquet.iter_batches(batch_size=batch_size, columns=list(columns) if columns else None,
                                      use_threads=False):
        frame = batch.to_pandas()
        # Drop the Arrow batch before the consumer works on the frame: only one decoded copy lives at a time.
        del batch
        yield frame


def iter_csv_chunks(source: Source, chunk_size: int = DEFAULT_CHUNK_SIZE, *, session: Any = None
                    ) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_size`` rows from a CSV file (path or ``s3://`` URI), every column as text
    (empty cells are missing values)."""
    import pandas as pd

    _check_chunk_size(chunk_size)
    text = str(source)
    compression = "gzip" if text.endswith(".gz") else None
    with open_source(source, session=session, buffer_size=S3_READ_BUFFER_BYTES) as file:
        try:
            reader = pd.read_csv(file, dtype=str, keep_default_na=True, chunksize=chunk_size,
                                 compression=compression)
        except (OSError, ValueError) as exc:
            raise ValidationError(f"{source}: cannot read it as CSV: {exc}", field="source", value=text) from exc
        with reader:
            yield from reader


def iter_file_chunks(source: Source, chunk_size: int = DEFAULT_CHUNK_SIZE, *, session: Any = None,
                     file_format: str | None = None) -> Iterator[pd.DataFrame]:
    """DataFrames of at most ``chunk_size`` rows from a ``.parquet``/``.pq`` or ``.csv`` file, local or
    ``s3://`` (``file_format`` = ``"parquet"`` or ``"csv"`` overrides the suffix).

    Raises :class:`ValidationError` at once (not on the first ``next()``) for an unsupported suffix.
    """
    kind = file_format or _format_of(str(source))
    if kind not in ("parquet", "csv"):
        raise ValidationError(f"{source}: unsupported file type (use .csv or .parquet)", field="source",
                              value=str(source), hint="or pass file_format='parquet' / 'csv'")
    _check_chunk_size(chunk_size)
    text = str(source)
    if text.startswith("s3://"):
        split_s3_uri(text, field="source")
        _require_session(session, text)
    elif not Path(text).is_file():
        raise ValidationError(f"{source}: no such file", field="source", value=text)
    reader = iter_parquet_chunks if kind == "parquet" else iter_csv_chunks
    return reader(source, chunk_size, session=session)


def _format_of(name: str) -> str | None:
    lowered = name.lower()
    if lowered.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lowered.endswith(CSV_SUFFIXES):
        return "csv"
    return None

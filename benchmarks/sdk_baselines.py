"""The SageMaker SDK baselines, reproduced or run as the SDK runs them.

- **P1, ingestion**: SageMaker Python SDK v3 ``sagemaker.mlops.feature_store.feature_utils.ingest_dataframe``
  (``sagemaker-mlops``), run in a child process because the SDK ignores explicit sessions: it gets the
  consumer's assumed-role credentials as ``AWS_*`` variables, exactly what a cross-account SDK user must do.
  With its defaults it sends one ``PutRecord`` per row from ``max_workers`` threads, each on a contiguous
  slice of the frame. If the SDK cannot be imported, :func:`put_record_loop` does the same with boto3.
- **P2, training sets**: :func:`dataset_builder_sql` is the SQL that ``DatasetBuilder`` (sagemaker-mlops 1.27,
  ``dataset_builder.py``: ``_construct_query_string`` / ``_construct_table_query`` /
  ``_construct_dedup_query`` / ``_construct_deleted_query`` / ``_construct_join_condition``) generates for a
  DataFrame base joined with feature groups, with ``point_in_time_accurate_join()`` and the default options
  (no ``include_duplicated_records``, no ``include_deleted_records``, no recent-records limit). When the SDK
  is importable the text is taken from the SDK itself (:func:`captured_dataset_builder_sql`) and the two are
  compared; the reproduction is the fallback.

  Two adaptations, both forced by the embedded engine or by the cross-account setup, and neither changing the
  plan: the base table is the same Parquet entity table every other query reads (the SDK uploads the
  DataFrame as CSV with ``OpenCSVSerde``, which the embedded Athena cannot read), and the central group's
  table gets a three-part name ``"central"."db"."table"`` (the SDK only writes ``"db"."table"``, i.e. it can
  join groups of one account's catalog only).
- :func:`feast_style_sql`: the structure of Feast's point-in-time template for SQL offline stores
  (entity rows x feature rows joined on key and ``event_time <= label time``, then ``ROW_NUMBER()`` per entity
  row ordered by event time, creation time descending, keep row 1): correct picks, but its work grows with
  entity rows x versions, and it has no notion of Feature Store delete markers.

The SDK install: ``sagemaker-mlops`` pulls in mlflow, scikit-learn, an old s3fs and pins pyarrow < 26, which
would break featureshare's own environment, so the benchmarks import it from a separate ``--no-deps`` target
directory (``FEATURESHARE_BENCH_SDK``, default ``~/.cache/featureshare/bench-sdk``); see ``README.md``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featureshare.sqlquote import quote_identifier, quote_qualified

DEFAULT_SDK_DIR = Path.home() / ".cache" / "featureshare" / "bench-sdk"
SDK_NAME = "SageMaker SDK v3 (sagemaker-mlops) ingest_dataframe, PutRecord per row"
LOOP_NAME = "PutRecord-per-row loop (what the SDK does), same concurrency"
_PROBE = ("import importlib.metadata as m, sagemaker.mlops.feature_store.feature_utils, "
          "sagemaker.mlops.feature_store.dataset_builder; "
          "print('sagemaker-mlops', m.version('sagemaker-mlops'), 'sagemaker-core', m.version('sagemaker-core'))")


def sdk_dir() -> Path:
    return Path(os.environ.get("FEATURESHARE_BENCH_SDK", str(DEFAULT_SDK_DIR)))


def sdk_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` with the SDK directory appended to PYTHONPATH (after featureshare's own packages would be
    better, but PYTHONPATH goes first; the directory holds only packages the venv lacks)."""
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(sdk_dir())]))
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", "us-east-1"))
    return env


def sdk_available(env: dict[str, str], timeout: float = 120) -> tuple[bool, str]:
    """Whether the SDK imports in a child process with ``env``; the reason when it does not."""
    if not sdk_dir().is_dir():
        return False, (f"SageMaker SDK v3 not installed at {sdk_dir()} (see benchmarks/README.md); "
                       "compared against a PutRecord-per-row loop with the same concurrency instead")
    proc = subprocess.run([sys.executable, "-c", _PROBE], env=sdk_env(env), capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0 or "sagemaker-mlops" not in proc.stdout:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"SageMaker SDK v3 does not import ({last}); compared against a PutRecord loop instead"
    return True, f"{proc.stdout.strip()} imported from {sdk_dir()}"


# ------------------------------------------------------------------------------------------------ P1

def run_sdk_ingest(env: dict[str, str], *, group: str, parquet: str, concurrency: int, repeats: int,
                   region: str, timeout: float = 900) -> list[dict[str, Any]]:
    """Run ``ingest_dataframe`` ``repeats`` times in one child process (the import is paid once)."""
    args = [sys.executable, "-m", "benchmarks.sdk_baselines", "ingest", "--group", group, "--parquet", parquet,
            "--concurrency", str(concurrency), "--repeats", str(repeats), "--region", region]
    proc = subprocess.run(args, env=sdk_env(env), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"SDK ingest child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _sdk_ingest_main(args: argparse.Namespace) -> None:
    import logging

    import pandas as pd
    from sagemaker.mlops.feature_store.feature_utils import ingest_dataframe

    logging.disable(logging.CRITICAL)  # the SDK logs every slice at INFO and every failed row at ERROR
    frame = pd.read_parquet(args.parquet)
    per_run = len(frame) // args.repeats
    for i in range(args.repeats):
        part = frame.iloc[i * per_run:(i + 1) * per_run].reset_index(drop=True)
        started = time.perf_counter()
        failed = 0
        try:
            ingest_dataframe(feature_group_name=args.group, data_frame=part, max_workers=args.concurrency,
                             max_processes=1, wait=True, region=args.region)
        except Exception as exc:  # the SDK's IngestionError carries the failed row indices
            failed = len(getattr(exc, "failed_rows", [])) or len(part)
        seconds = time.perf_counter() - started
        print(json.dumps({"rows": len(part), "failed": failed, "seconds": seconds}), flush=True)


def put_record_loop(client: Any, group_arn: str, frame: Any, concurrency: int) -> int:
    """The SDK's PutRecord path with boto3: ``concurrency`` threads, each a contiguous slice, one call per
    row, values as ``str(value)`` (nulls skipped). Returns the number of failed rows."""
    columns = [str(c) for c in frame.columns]
    rows = list(frame.itertuples(index=False, name=None))
    size = math.ceil(len(rows) / concurrency)

    def work(part: Sequence[tuple[Any, ...]]) -> int:
        failed = 0
        for row in part:
            record = [{"FeatureName": n, "ValueAsString": str(v)} for n, v in zip(columns, row, strict=True)
                      if v is not None and v == v]
            try:
                client.put_record(FeatureGroupName=group_arn, Record=record)
            except Exception:  # the SDK counts and logs a failed row and goes on
                failed += 1
        return failed

    with cf.ThreadPoolExecutor(max_workers=concurrency) as pool:
        return sum(pool.map(work, [rows[i:i + size] for i in range(0, len(rows), size)]))


# ------------------------------------------------------------------------------------------------ P2 SQL

@dataclass(frozen=True)
class SdkGroup:
    """What DatasetBuilder knows about one joined feature group (``FeatureGroupToBeMerged``)."""

    catalog: str | None           # another account's catalog (see with_catalogs), None for the caller's own
    database: str
    table: str
    record_id: str
    event_time: str
    event_time_type: str          # "String" or "Fractional"
    features: tuple[str, ...]     # included_feature_names (record id and event time added as the SDK does)
    projected: tuple[str, ...]    # projected_feature_names


def _q(name: str) -> str:
    return quote_identifier(name)


def _table(group: SdkGroup) -> str:
    return quote_qualified(group.database, group.table)


def with_catalogs(sql: str, groups: Sequence[SdkGroup]) -> str:
    """The SDK's two-part table names made three-part for groups of another account's catalog."""
    for group in groups:
        if group.catalog:
            sql = sql.replace(_table(group), quote_qualified(group.catalog, group.database, group.table))
    return sql


def _cast(kind: str) -> str:
    return "from_iso8601_timestamp" if kind == "String" else "from_unixtime"


def _fg_table_query(group: SdkGroup, suffix: str) -> str:
    """``_construct_table_query`` for a feature group with the default options (dedup + deleted)."""
    included = ", ".join(f"table_{suffix}.{_q(f)}" for f in group.features)
    with_write = included + f', table_{suffix}."write_time"'
    rid, et = _q(group.record_id), _q(group.event_time)
    dedup = (f"table_{suffix} AS (\nSELECT *\nFROM (\nSELECT *, row_number() OVER (\n"
             f"PARTITION BY origin_{suffix}.{rid}, origin_{suffix}.{et}\n"
             f'ORDER BY origin_{suffix}."api_invocation_time" DESC, origin_{suffix}."write_time" DESC\n'
             f") AS dedup_row_{suffix}\nFROM {_table(group)} origin_{suffix}\n)\nWHERE dedup_row_{suffix} = 1\n)")
    deleted = (f"deleted_{suffix} AS (\nSELECT *\nFROM (\nSELECT *, row_number() OVER (\n"
               f"PARTITION BY origin_{suffix}.{rid}\n"
               f'ORDER BY origin_{suffix}.{et} DESC, origin_{suffix}."api_invocation_time" DESC, '
               f'origin_{suffix}."write_time" DESC\n'
               f") AS deleted_row_{suffix}\nFROM {_table(group)} origin_{suffix}\nWHERE is_deleted)\n"
               f"WHERE deleted_row_{suffix} = 1\n)")
    rank = (f"OR (table_{suffix}.{et} = deleted_{suffix}.{et} "
            f'AND table_{suffix}."api_invocation_time" > deleted_{suffix}."api_invocation_time")\n'
            f"OR (table_{suffix}.{et} = deleted_{suffix}.{et} "
            f'AND table_{suffix}."api_invocation_time" = deleted_{suffix}."api_invocation_time" '
            f'AND table_{suffix}."write_time" > deleted_{suffix}."write_time")\n')
    return (f"WITH {dedup},\n{deleted}\nSELECT {included}\nFROM (\nSELECT {with_write}\nFROM table_{suffix}\n"
            f"LEFT JOIN deleted_{suffix} ON table_{suffix}.{rid} = deleted_{suffix}.{rid}\n"
            f"WHERE deleted_{suffix}.{rid} IS NULL\nUNION ALL\nSELECT {with_write}\nFROM deleted_{suffix}\n"
            f"JOIN table_{suffix} ON table_{suffix}.{rid} = deleted_{suffix}.{rid}\n"
            f"AND (table_{suffix}.{et} > deleted_{suffix}.{et}\n{rank})\n) AS table_{suffix}\n")


def _base_table_query(base: SdkGroup) -> str:
    """``_construct_table_query`` for a DataFrame base (dedup over identical (record id, event time) rows)."""
    included = ", ".join(f"table_base.{_q(f)}" for f in base.features)
    dedup = (f"table_base AS (\nSELECT *\nFROM (\nSELECT *, row_number() OVER (\n"
             f"PARTITION BY origin_base.{_q(base.record_id)}, origin_base.{_q(base.event_time)}\n"
             f") AS dedup_row_base\nFROM {_table(base)} origin_base\n)\n\n)")
    return f"WITH {dedup}\nSELECT {included}\nFROM (\nSELECT {included}\nFROM table_base\n) AS table_base\n"


def dataset_builder_sql(base: SdkGroup, groups: Sequence[SdkGroup], *, joins: Sequence[str] | None = None,
                        as_released: bool = False) -> str:
    """The query ``DatasetBuilder.create(df, ...).with_feature_group(g, ...)...point_in_time_accurate_join()``
    runs (``_construct_query_string``). ``joins`` are the join types (default ``JOIN``, the SDK's INNER).

    ``as_released=True`` reproduces a bug of sagemaker-mlops 1.27: ``construct_feature_group_to_be_merged``
    stores the event time type as a string (``FeatureTypeEnum(t).value``) and ``_construct_join_condition``
    compares it with ``FeatureTypeEnum.STRING``, so a joined group with a String event time gets
    ``from_unixtime(<varchar>)``, which Athena rejects. The default is the template's intent
    (``from_iso8601_timestamp``), the only version that runs."""
    query = f"WITH fg_base AS ({_base_table_query(base)})"
    for i, group in enumerate(groups):
        query += f",\nfg_{i} AS ({_fg_table_query(group, str(i))})"
    selected = ", ".join(f"fg_base.{f}" for f in base.projected)
    selected_final = ", ".join(base.projected)
    for i, group in enumerate(groups):
        selected += ", " + ", ".join(f'fg_{i}."{f}" as "{f}.{i + 1}"' for f in group.projected)
        selected_final += ", " + ", ".join(f'"{f}.{i + 1}"' for f in group.projected)
    query += (f"\nSELECT {selected_final}\nFROM (\nSELECT {selected}, row_number() OVER (\n"
              f'PARTITION BY fg_base."{base.record_id}"\nORDER BY fg_base."{base.event_time}" DESC')
    join_text = []
    for i, group in enumerate(groups):
        query += f', fg_{i}."{group.event_time}" DESC'
        join = (joins or ["JOIN"] * len(groups))[i]
        join_text.append(f'\n{join} fg_{i}\nON fg_base."{base.record_id}" = fg_{i}."{group.record_id}"'
                         f'\nAND {_cast(base.event_time_type)}(fg_base."{base.event_time}") >= '
                         f'{_cast("Fractional" if as_released else group.event_time_type)}'
                         f'(fg_{i}."{group.event_time}")')
    return query + f"\n) AS row_recent\nFROM fg_base{''.join(join_text)}\n)\n"


def captured_dataset_builder_sql(base: SdkGroup, groups: Sequence[SdkGroup]) -> str:
    """The same SQL generated by the installed SDK's own ``DatasetBuilder._construct_query_string``
    (needs the SDK on ``sys.path``; builds the SDK's dataclasses directly, so no AWS call is made)."""
    import pandas as pd
    from sagemaker.mlops.feature_store.dataset_builder import DatasetBuilder, FeatureGroupToBeMerged, TableType
    from sagemaker.mlops.feature_store.feature_definition import FeatureDefinition, FeatureTypeEnum

    def merged(group: SdkGroup, kind: Any) -> Any:
        # As the SDK builds them: the enum's .value for feature groups, the enum for the DataFrame base.
        kind_value = FeatureTypeEnum(group.event_time_type)
        event = FeatureDefinition(feature_name=group.event_time, feature_type=kind_value.value
                                  if kind is TableType.FEATURE_GROUP else kind_value)
        return FeatureGroupToBeMerged(
            features=list(group.features), included_feature_names=list(group.features),
            projected_feature_names=list(group.projected), catalog="AwsDataCatalog", database=group.database,
            table_name=group.table, record_identifier_feature_name=group.record_id,
            event_time_identifier_feature=event, table_type=kind)

    builder = DatasetBuilder(_sagemaker_session=None, _base=pd.DataFrame(), _output_path="s3://unused/",
                             _record_identifier_feature_name=base.record_id,
                             _event_time_identifier_feature_name=base.event_time,
                             _event_time_identifier_feature_type=FeatureTypeEnum(base.event_time_type))
    builder._feature_groups_to_be_merged = [merged(g, TableType.FEATURE_GROUP) for g in groups]
    builder._point_in_time_accurate_join = True
    return str(builder._construct_query_string(merged(base, TableType.DATA_FRAME)))


def capture_in_child(env: dict[str, str], base: SdkGroup, groups: Sequence[SdkGroup], timeout: float = 120
                     ) -> str | None:
    """Run :func:`captured_dataset_builder_sql` in a child with the SDK on its path; None if it fails."""
    payload = json.dumps({"base": base.__dict__, "groups": [g.__dict__ for g in groups]})
    proc = subprocess.run([sys.executable, "-m", "benchmarks.sdk_baselines", "capture-sql"], input=payload,
                          env=sdk_env(env), capture_output=True, text=True, timeout=timeout)
    return proc.stdout if proc.returncode == 0 and proc.stdout.strip() else None


def _capture_main() -> None:
    spec = json.loads(sys.stdin.read())

    def group(d: dict[str, Any]) -> SdkGroup:
        return SdkGroup(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    sys.stdout.write(captured_dataset_builder_sql(group(spec["base"]), [group(g) for g in spec["groups"]]))


def normalise_sql(sql: str) -> str:
    """Whitespace-insensitive form, for comparing the SDK's text with the reproduction."""
    return " ".join(sql.replace("(", " ( ").replace(")", " ) ").split())


def feast_style_sql(entities: str, key: str, label_time_epoch: str, entity_columns: Sequence[str],
                    groups: Sequence[tuple[SdkGroup, str]]) -> str:
    """Feast's point-in-time join structure for each group (``groups``: (group, output prefix)): join every
    feature row at or before the label time, rank per entity row, keep the first, left-join back."""
    ctes = [f"entity_dataframe AS (\nSELECT *, CAST({_q(key)} AS varchar) || CAST({_q(label_time_epoch)} AS varchar)"
            f" AS entity_row_unique_id\nFROM {entities}\n)"]
    select = [f"entity_dataframe.{_q(c)}" for c in entity_columns]
    joins = []
    for i, (group, prefix) in enumerate(groups):
        fv = f"fv{i}"
        event = (f"to_unixtime(from_iso8601_timestamp({_q(group.event_time)}))" if group.event_time_type == "String"
                 else f"CAST({_q(group.event_time)} AS double)")
        features = [f for f in group.projected if f not in (group.record_id, group.event_time)]
        ctes.append(f"{fv}__subquery AS (\nSELECT {event} AS event_timestamp, "
                    f"to_unixtime(api_invocation_time) AS created_timestamp, {_q(group.record_id)} AS join_key, "
                    + ", ".join(_q(f) for f in features) + f"\nFROM {_table(group)}\n)")
        ctes.append(f"{fv}__base AS (\nSELECT subquery.*, entity_dataframe.entity_row_unique_id\n"
                    f"FROM {fv}__subquery AS subquery\nINNER JOIN entity_dataframe\n"
                    f"ON subquery.event_timestamp <= entity_dataframe.{_q(label_time_epoch)}\n"
                    f"AND subquery.join_key = entity_dataframe.{_q(key)}\n)")
        ctes.append(f"{fv}__latest AS (\nSELECT * FROM (\nSELECT *, ROW_NUMBER() OVER (PARTITION BY "
                    f"entity_row_unique_id ORDER BY event_timestamp DESC, created_timestamp DESC) AS row_number\n"
                    f"FROM {fv}__base\n)\nWHERE row_number = 1\n)")
        select += [f"{fv}__latest.{_q(f)} AS {_q(prefix + f)}" for f in features]
        joins.append(f"LEFT JOIN {fv}__latest ON {fv}__latest.entity_row_unique_id = "
                     "entity_dataframe.entity_row_unique_id")
    return ("WITH\n" + ",\n".join(ctes) + "\nSELECT " + ",\n       ".join(select) + "\nFROM entity_dataframe\n"
            + "\n".join(joins))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SageMaker SDK baselines (child-process entry points)")
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest")
    ingest.add_argument("--group", required=True)
    ingest.add_argument("--parquet", required=True)
    ingest.add_argument("--concurrency", type=int, required=True)
    ingest.add_argument("--repeats", type=int, default=1)
    ingest.add_argument("--region", required=True)
    sub.add_parser("capture-sql")
    args = parser.parse_args(argv)
    if args.command == "ingest":
        _sdk_ingest_main(args)
    else:
        _capture_main()


if __name__ == "__main__":
    main()

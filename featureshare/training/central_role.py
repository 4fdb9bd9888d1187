"""``strategy="central-role"`` for training sets that mix central and local (consumer) feature groups.

The consumer's own account cannot read central tables without the registered GLUE data catalog, and the
central role cannot read the consumer's local groups, so the set is built in two queries:

1. **central part**, in the central account under the assumed central role and its per-consumer workgroup:
   the entity keys, label times (epoch seconds) and row ids -- no label values or other entity columns -- are
   uploaded to ``s3://<training bucket>/_featureshare_staging/central/<token>/entities/`` and registered as
   ``featureshare_scratch.entities_<token>`` in the central Glue; the point-in-time query of the central groups
   (sql.py's builder, unchanged) is UNLOADed as Parquet to ``.../central/<token>/result/`` in the consumer's
   bucket (``ExpectedBucketOwner`` = the consumer, ACL ``BUCKET_OWNER_FULL_CONTROL``);
2. **consumer part**, in the consumer account: that result is registered as ``central_<token>`` in the
   consumer's scratch database and used as the entity table of the point-in-time query of the local groups
   (central features are carried through as entity columns); the full entity rows (staged as in the catalog
   strategy) are joined back one-to-one by row id, and the columns are put in join order. The result is
   UNLOADed (or CTAS) to ``output_uri``: exactly one row per kept entity row, in input order.

Staging objects and temporary tables are removed in both accounts in ``finally`` (also when either query
fails). ``build(wait=False)`` waits for the central part (bounded by ``timeout``) and returns while the
consumer part runs.

Emulation limits / requirements: entities must be a DataFrame (a consumer Glue table is invisible to the
central account); every group must live in the central or the consumer account; the central account needs the
Glue database ``featureshare_scratch`` and the workgroup ``<workgroup>-<consumer account>`` that bootstrap
creates.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from featureshare.errors import UnsupportedError, translate_client_error
from featureshare.s3uri import split_s3_uri
from featureshare.sqlquote import quote_identifier, quote_qualified
from featureshare.training import build as b
from featureshare.training.athena import query_request, wait_for
from featureshare.training.result import BuiltTrainingSet
from featureshare.training.sql import ROW_ID_COLUMN, EntitySource, JoinSpec, PointInTimeQuery, make_join
from featureshare.training.staging import (
    CENTRAL_SCRATCH_DATABASE,
    CENTRAL_STAGING_PREFIX,
    ROW_COLUMN,
    TIME_COLUMN,
    EntityStaging,
    create_temporary_table,
    delete_prefix,
    put_parquet,
    stage_entities,
)

logger = logging.getLogger(__name__)

__all__ = ["CentralPart", "combined_select", "split_queries"]

_GLUE_TYPES = {"Integral": "bigint", "Fractional": "double", "String": "string"}


@dataclass(frozen=True)
class CentralPart:
    """What the central account runs for a combined set, and where its result lands."""

    session: Any
    account: str
    workgroup: str
    query: PointInTimeQuery
    sql: str
    statement: str
    staging_prefix: str  # key prefix in the consumer bucket, readable/writable by the central role
    entities: pd.DataFrame  # key / on columns, label epoch seconds, row id
    entity_columns: tuple[tuple[str, str], ...]  # Glue columns of ``entities``
    result_table: str  # consumer scratch table over the result
    result_columns: tuple[tuple[str, str], ...]

    @property
    def entity_table(self) -> str:
        return self.query.entities.table


@dataclass(frozen=True)
class SplitQueries:
    """The three queries of a combined set: central part, consumer part, and the whole set as described."""

    central: PointInTimeQuery
    consumer: PointInTimeQuery
    described: PointInTimeQuery  # all groups, each read in its own account (manifest, output columns)
    carried: tuple[str, ...]  # entity columns the central part needs (key and every on= column)


def split_queries(training: b.TrainingSet, *, consumer_account: str, central_account: str, token: str,
                  scratch_database: str, time_range: tuple[float, float] | None) -> SplitQueries:
    """Split ``training`` into its central and consumer parts (pure; validates every join)."""
    _check_combinable(training, consumer_account, central_account)
    carried = tuple(dict.fromkeys([training.key, *(j.on or training.key for j in training.joins)]))
    described = training.query(consumer_account=consumer_account, scratch_database=scratch_database,
                                entity_table=f"entities_{token}", time_range=time_range)
    described = replace(described, joins=tuple(replace(j, data_catalog=b.LOCAL_CATALOG) for j in described.joins))
    as_of = described.as_of
    central_entities = EntitySource(
        database=CENTRAL_SCRATCH_DATABASE, table=f"entities_{token}", key=training.key, event_time=TIME_COLUMN,
        columns=(*carried, TIME_COLUMN, ROW_COLUMN), time_kind="epoch", row_id=ROW_COLUMN,
        time_range=time_range)
    central_joins = [j for j in described.joins if j.source.account_id == central_account]
    central = PointInTimeQuery(entities=central_entities, joins=_rebase(central_joins, central_entities),
                               as_of=as_of)
    consumer_entities = EntitySource(
        database=scratch_database, table=f"central_{token}", key=training.key, event_time=TIME_COLUMN,
        columns=central.output_columns, time_kind="epoch", row_id=ROW_ID_COLUMN, time_range=time_range)
    local_joins = [j for j in described.joins if j.source.account_id == consumer_account]
    consumer = PointInTimeQuery(entities=consumer_entities, joins=_rebase(local_joins, consumer_entities),
                                as_of=as_of)
    return SplitQueries(central=central, consumer=consumer, described=described, carried=carried)


def _check_combinable(training: b.TrainingSet, consumer_account: str, central_account: str) -> None:
    if not isinstance(training.entities, pd.DataFrame):
        raise UnsupportedError("strategy 'central-role' with central and local groups needs entities as a "
                               "DataFrame: the central account cannot read a table of the consumer account",
                               hint="pass the entity DataFrame, or use strategy='catalog'")
    strangers = sorted({j.source.account_id for j in training.joins} - {consumer_account, central_account})
    if strangers:
        names = [j.source.name for j in training.joins if j.source.account_id in strangers]
        raise UnsupportedError(f"strategy 'central-role' reads groups of the central account {central_account} "
                               f"and the consumer account {consumer_account} only; {names} live in {strangers}",
                               hint="use strategy='catalog' with a data catalog for that account")


def _rebase(joins: Sequence[JoinSpec], entities: EntitySource) -> tuple[JoinSpec, ...]:
    """The joins validated against another entity table (same features, TTL, prefix, how)."""
    return tuple(make_join(j.source, features=j.features, on=j.on, entity_columns=entities.columns,
                           data_catalog=b.LOCAL_CATALOG, ttl=j.ttl_seconds, prefix=j.prefix, how=j.how)
                 for j in joins)


def combined_select(consumer_sql: str, described: PointInTimeQuery) -> str:
    """The final SELECT: the consumer part's rows, the full entity rows joined back by row id (one to one),
    columns as the whole set describes them (entity columns, then features in join order, then row id)."""
    entities = described.entities
    table = quote_qualified(entities.catalog, entities.database, entities.table)
    hidden = (entities.row_id, entities.time_column)
    entity_names = [c for c in entities.columns if c not in hidden]
    features = [c for c in described.output_columns if c not in entity_names and c != ROW_ID_COLUMN]
    row = quote_identifier(ROW_ID_COLUMN)
    select = ([f"e.{quote_identifier(c)} AS {quote_identifier(c)}" for c in entity_names]
              + [f"p.{quote_identifier(c)} AS {quote_identifier(c)}" for c in features]
              + [f"p.{row} AS {row}"])
    return ("SELECT " + ",\n       ".join(select) + f"\nFROM (\n{consumer_sql}\n) p\n"
            f"JOIN {table} e ON CAST(e.{quote_identifier(str(entities.row_id))} AS bigint) = p.{row}\n"
            f"ORDER BY p.{row}")


def render(training: b.TrainingSet, *, consumer_account: str, central_account: str, scratch_database: str,
           time_range: tuple[float, float] | None) -> str:
    """Both statements of a combined set, for review (``TrainingSet.sql(strategy="central-role")``)."""
    token = "<token>"
    split = split_queries(training, consumer_account=consumer_account, central_account=central_account,
                          token=token, scratch_database=scratch_database, time_range=time_range)
    return (f"-- 1. central account {central_account}, UNLOADed to the consumer's staging prefix\n"
            f"{split.central.render()};\n\n-- 2. consumer account {consumer_account}, over that result\n"
            f"{combined_select(split.consumer.render(), split.described)}")


# ------------------------------------------------------------------------------------------- planning

def plan(training: b.TrainingSet, *, session: Any, central_session: Any, consumer_account: str,
         central_account: str, output_uri: str, register_as: tuple[str, str] | None, workgroup: str,
         central_workgroup: str, scratch_database: str) -> b._Plan:
    """The plan of a combined set; everything that can be checked before running is checked here."""
    _check_combinable(training, consumer_account, central_account)
    staged = stage_entities(training)
    token = b._token(consumer_account, output_uri, staged)
    split = split_queries(training, consumer_account=consumer_account, central_account=central_account,
                          token=token, scratch_database=scratch_database, time_range=staged.time_range)
    b._check_visibility(central_session, central_account, split.central)
    b._check_visibility(session, consumer_account, split.consumer)
    bucket, prefix = split_s3_uri(output_uri, field="output_uri", require_key=False)
    b._check_output(session, consumer_account, bucket, prefix, output_uri)
    staging = f"{CENTRAL_STAGING_PREFIX}/{token}/"
    central_sql = split.central.render()
    glue = dict(staged.glue_columns)
    columns = (*split.carried, TIME_COLUMN, ROW_COLUMN)
    central = CentralPart(
        session=central_session, account=central_account, workgroup=central_workgroup, query=split.central,
        sql=central_sql, statement=b._statement(central_sql, f"s3://{bucket}/{staging}result/", None),
        staging_prefix=staging, entities=staged.frame[list(columns)],
        entity_columns=tuple((c, glue[c]) for c in columns),
        result_table=split.consumer.entities.table, result_columns=_result_columns(split, glue))
    sql = combined_select(split.consumer.render(), split.described)
    return b._Plan(training=training, query=split.described, sql=sql,
                   statement=b._statement(sql, output_uri, register_as), session=session, run_session=session,
                   run_account=consumer_account, consumer_account=consumer_account, output_uri=output_uri,
                   bucket=bucket, register_as=register_as, workgroup=workgroup, scratch_database=scratch_database,
                   token=token, staged=staged, strategy="central-role", started_at=dt.datetime.now(dt.UTC),
                   central=central)


def _result_columns(split: SplitQueries, glue: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Glue columns of the central part's UNLOAD output (names as ``output_columns``)."""
    types = {n: _GLUE_TYPES[j.source.feature_types[f]] for j in split.central.joins
             for f, n in zip(j.features, j.output_names, strict=True)}
    types.update({c: glue[c] for c in split.carried})
    types.update({TIME_COLUMN: "double", ROW_ID_COLUMN: "bigint"})
    return tuple((c, types[c]) for c in split.central.output_columns)


# ------------------------------------------------------------------------------------------- execution

class _CentralStaging:
    """The central part's staged keys, its temporary tables in both accounts, and its result objects;
    ``remove`` never raises."""

    def __init__(self, plan: b._Plan) -> None:
        if plan.central is None:
            raise UnsupportedError("not the plan of a combined central-role set")
        self.plan, self.central = plan, plan.central
        self.created: list[tuple[Any, str, str]] = []  # (session, database, table) to drop
        self.query_id: str | None = None
        self.data_scanned_bytes = 0

    def _create_table(self, session: Any, database: str, table: str, columns: Sequence[tuple[str, str]],
                      location: str, account: str) -> None:
        create_temporary_table(session, database, table, columns, location, account)
        self.created.append((session, database, table))

    def stage_entities(self) -> None:
        """Upload the keys and label times (consumer) and register them in the central Glue."""
        plan, central = self.plan, self.central
        put_parquet(plan.session, central.entities, plan.bucket, f"{central.staging_prefix}entities/part-0.parquet",
                    owner=plan.consumer_account)
        self._create_table(central.session, CENTRAL_SCRATCH_DATABASE, central.entity_table, central.entity_columns,
                           f"s3://{plan.bucket}/{central.staging_prefix}entities/", central.account)

    def run(self, timeout: float) -> None:
        """Run the central part in the central account and wait for it (at most ``timeout`` s)."""
        plan, central = self.plan, self.central
        athena = central.session.client("athena")
        request = query_request(central.statement, workgroup=central.workgroup,
                                output_location=f"s3://{plan.bucket}/{central.staging_prefix}results/",
                                bucket_owner=plan.consumer_account, database=CENTRAL_SCRATCH_DATABASE)
        with translate_client_error(action="athena:StartQueryExecution", resource=central.workgroup,
                                    account=central.account):
            self.query_id = athena.start_query_execution(**request)["QueryExecutionId"]
        logger.info("central part %s of training set started in account %s", self.query_id, central.account)
        execution = wait_for(athena, self.query_id, timeout)
        self.data_scanned_bytes = int(execution.get("Statistics", {}).get("DataScannedInBytes", 0))

    def register_result(self) -> None:
        """Register the central part's result in the consumer's scratch database."""
        plan, central = self.plan, self.central
        self._create_table(plan.session, plan.scratch_database, central.result_table, central.result_columns,
                           f"s3://{plan.bucket}/{central.staging_prefix}result/", plan.consumer_account)

    def remove(self) -> None:
        for session, database, table in reversed(self.created):
            try:
                session.client("glue").delete_table(DatabaseName=database, Name=table)
            except ClientError as exc:
                logger.warning("could not drop temporary table %s.%s: %s", database, table, exc)
        self.created = []
        try:
            delete_prefix(self.plan.session.client("s3"), self.plan.bucket, self.central.staging_prefix)
        except ClientError as exc:
            logger.warning("could not delete staging s3://%s/%s: %s", self.plan.bucket,
                           self.central.staging_prefix, exc)


def start(plan: b._Plan, timeout: float) -> BuiltTrainingSet:
    """Stage, run the central part to completion, then start the consumer part; cleanup on any failure."""
    consumer = EntityStaging(plan)
    central = _CentralStaging(plan)
    cleanup = _both(central.remove, consumer.remove)
    try:
        consumer.create()
        central.stage_entities()
        central.run(timeout)
        central.register_result()
        with translate_client_error(action="athena:StartQueryExecution", account=plan.run_account):
            query_id = plan.session.client("athena").start_query_execution(**plan.query_request())[
                "QueryExecutionId"]
    except BaseException:
        cleanup()
        raise
    logger.info("consumer part %s of training set started in account %s", query_id, plan.run_account)
    return BuiltTrainingSet(plan=plan, query_execution_id=query_id, _cleanup=cleanup,
                            central_query_execution_id=central.query_id,
                            central_data_scanned_bytes=central.data_scanned_bytes)


def _both(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def cleanup() -> None:
        try:
            first()
        finally:
            second()
    return cleanup

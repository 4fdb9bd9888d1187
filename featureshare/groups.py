"""The feature store client: create-or-verify, describe, list and delete feature groups.

:class:`FeatureStore` creates-or-verifies groups from a :class:`~featureshare.group_spec.GroupSpec`
(:meth:`FeatureStore.ensure_group`), describes them (:meth:`FeatureStore.group` -> :class:`FeatureGroup`),
lists and deletes them. A :class:`FeatureGroup` ingests (:mod:`featureshare.ingest`) and reads online
(:mod:`featureshare.online`). The spec types are defined in :mod:`featureshare.group_spec` and importable
from here too.

Example::

    store = FeatureStore(central)                       # an AccountSession in the central account
    spec = GroupSpec.from_dataframe("customers", df, record_id="customer_id", event_time="ts")
    group = store.ensure_group(spec, offline_s3_uri="s3://central-offline/fs", role_arn=offline_role)
    report = group.ingest(df)
    group.get("c-1")                                    # {'customer_id': 'c-1', 'ts': '...', 'spend': 12.5}
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pandas as pd
from botocore.exceptions import ClientError

from featureshare.config import ROLE_ARN_RE
from featureshare.errors import (
    AccessDeniedError,
    AWSError,
    NotFoundError,
    SchemaDriftError,
    ValidationError,
    WaitTimeoutError,
    error_code,
    from_client_error,
    translate_client_error,
)
from featureshare.group_spec import (
    MAX_FEATURES,
    MAX_TAGS,
    NAME_RE,
    RESERVED_NAMES,
    Feature,
    FeatureType,
    GroupSpec,
    Throughput,
    offline_table_format,
    ttl_duration,
)
from featureshare.problems import Problem, raise_problems

if TYPE_CHECKING:
    from featureshare.ingest import IngestReport
    from featureshare.session import AccountSession

__all__ = [
    "MAX_FEATURES",
    "MAX_TAGS",
    "NAME_RE",
    "RESERVED_NAMES",
    "TEAM_TAG",
    "Feature",
    "FeatureGroup",
    "FeatureStore",
    "FeatureType",
    "GroupSpec",
    "GroupSummary",
    "Problem",
    "Throughput",
    "raise_problems",
    "ttl_duration",
]

logger = logging.getLogger(__name__)

MAX_ADDITIONS_PER_UPDATE = 100
TEAM_TAG = "team"
_S3_URI_RE = re.compile(r"(https|s3)://([^/]+)/?(.*)")
_ARN_RE = re.compile(r"arn:aws[a-z\-]*:sagemaker:([a-z0-9\-]*):(\d{12}):feature-group/(.+)")


def parse_group_arn(arn: str) -> tuple[str, str, str] | None:
    """``(region, account, name)`` of a feature group ARN, or ``None`` if ``arn`` is not one."""
    match = _ARN_RE.fullmatch(arn)
    return (match.group(1), match.group(2), match.group(3)) if match else None


# ------------------------------------------------------------------------------------------ FeatureGroup

class FeatureGroup:
    """An existing feature group, from its ``DescribeFeatureGroup`` reply (``description``).

    Runtime calls address the group by ARN, so a group in another account works the same way.
    """

    def __init__(self, store: FeatureStore, description: Mapping[str, Any]) -> None:
        self.store = store
        self.description: dict[str, Any] = dict(description)

    @property
    def name(self) -> str:
        return str(self.description["FeatureGroupName"])

    @property
    def arn(self) -> str:
        return str(self.description["FeatureGroupArn"])

    @property
    def account_id(self) -> str:
        parsed = parse_group_arn(self.arn)
        return parsed[1] if parsed else self.store.session.account_id

    @property
    def region(self) -> str:
        parsed = parse_group_arn(self.arn)
        return parsed[0] if parsed else self.store.session.region

    @property
    def record_id(self) -> str:
        return str(self.description["RecordIdentifierFeatureName"])

    @property
    def event_time(self) -> str:
        return str(self.description["EventTimeFeatureName"])

    @property
    def features(self) -> dict[str, str]:
        """Feature name -> ``Integral``/``Fractional``/``String``, in definition order (incl. id and time)."""
        return {d["FeatureName"]: d["FeatureType"] for d in self.description["FeatureDefinitions"]}

    @property
    def event_time_type(self) -> str:
        return self.features[self.event_time]

    @property
    def status(self) -> str:
        return str(self.description.get("FeatureGroupStatus", ""))

    @property
    def online_enabled(self) -> bool:
        return bool(self.description.get("OnlineStoreConfig", {}).get("EnableOnlineStore", False))

    @property
    def offline_enabled(self) -> bool:
        return "OfflineStoreConfig" in self.description

    @property
    def _catalog(self) -> dict[str, Any]:
        return dict(self.description.get("OfflineStoreConfig", {}).get("DataCatalogConfig", {}))

    @property
    def catalog(self) -> str | None:
        return self._catalog.get("Catalog")

    @property
    def database(self) -> str | None:
        return self._catalog.get("Database")

    @property
    def table(self) -> str | None:
        return self._catalog.get("TableName")

    @property
    def table_format(self) -> str | None:
        return offline_table_format(self.description) if self.offline_enabled else None

    @property
    def offline_s3_uri(self) -> str | None:
        s3 = self.description.get("OfflineStoreConfig", {}).get("S3StorageConfig", {})
        return s3.get("ResolvedOutputS3Uri")

    @cached_property
    def tags(self) -> dict[str, str]:
        """The group's tags (one ``ListTags`` call, then cached)."""
        client = self.store.session.client("sagemaker")
        tags: dict[str, str] = {}
        with translate_client_error(action="sagemaker:ListTags", resource=self.arn):
            for page in client.get_paginator("list_tags").paginate(ResourceArn=self.arn):
                tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
        return tags

    def refresh(self) -> FeatureGroup:
        """Describe the group again (e.g. after features were added elsewhere)."""
        return self.store.group(self.arn, refresh=True)

    def ingest(self, data: Any, *, max_in_flight: int = 8, batch: bool = True,
               target_stores: Sequence[str] | None = None, ttl: dt.timedelta | None = None,
               progress: bool | None = None, failures_path: Any = None, on_error: str = "report",
               timezone: Any = None, processes: int | None = None, **options: Any) -> IngestReport:
        """Write a DataFrame, an iterable of DataFrames or an iterable of dicts; returns an ``IngestReport``.

        See :func:`featureshare.ingest.ingest` for every option (``chunk_size``, ``max_attempts``, ``seed`` ...).
        """
        from featureshare.ingest import ingest

        return ingest(self, data, max_in_flight=max_in_flight, batch=batch, target_stores=target_stores, ttl=ttl,
                      progress=progress, failures_path=failures_path, on_error=on_error, timezone=timezone,
                      processes=processes, **options)

    def get(self, record_id: Any, features: Sequence[str] | None = None) -> dict[str, Any] | None:
        """The online record as ``{feature: int | float | str}``, or ``None``; see :mod:`featureshare.online`."""
        from featureshare.online import get_record

        return get_record(self, record_id, features=features)

    def delete_record(self, record_id: Any, event_time: Any, *, mode: str = "soft",
                      target_stores: Sequence[str] | None = None, timezone: Any = None) -> None:
        """Delete a record (``mode="soft"`` or ``"hard"``); see :func:`featureshare.online.delete_record`."""
        from featureshare.online import delete_record

        delete_record(self, record_id, event_time, mode=mode, target_stores=target_stores, timezone=timezone)

    def __repr__(self) -> str:
        return f"FeatureGroup({self.arn!r}, status={self.status!r})"


@dataclass(frozen=True)
class GroupSummary:
    """One row of :meth:`FeatureStore.list_groups`."""

    name: str
    arn: str
    status: str
    offline_status: str | None
    creation_time: dt.datetime | None


# ------------------------------------------------------------------------------------------ FeatureStore

class FeatureStore:
    """Feature groups in the account of ``session`` (an :class:`~featureshare.session.AccountSession`).

    Groups of other accounts are reachable by ARN (:meth:`group`) for reads and ingestion, as far as their
    resource policies allow. Describe replies are cached per name/ARN; ``group(..., refresh=True)`` re-reads.
    """

    def __init__(self, session: AccountSession) -> None:
        self.session = session
        self._groups: dict[str, FeatureGroup] = {}
        self._lock = threading.Lock()

    @property
    def _sagemaker(self) -> Any:
        return self.session.client("sagemaker")

    def describe(self, name_or_arn: str) -> dict[str, Any]:
        """The raw ``DescribeFeatureGroup`` reply (uncached); :class:`NotFoundError` if there is none.

        With tag-based (ABAC) permissions AWS answers AccessDenied for a group that does not exist (there is no
        team tag to match), so for a name in this account a denial is followed by ``ListFeatureGroups`` to tell
        "missing" (:class:`NotFoundError`) from "another team's group" (:class:`AccessDeniedError`).
        """
        try:
            with translate_client_error(action="sagemaker:DescribeFeatureGroup", resource=name_or_arn):
                reply = self._sagemaker.describe_feature_group(FeatureGroupName=name_or_arn)
        except AccessDeniedError as denied:
            if parse_group_arn(name_or_arn) is not None or self._exists(name_or_arn):
                denied.hint = ("the group exists but this session may not read it: it is probably owned by another "
                               "team and not tagged shared=true")
                raise
            raise NotFoundError(f"no feature group {name_or_arn!r} in this account", code="ResourceNotFound",
                                request_id=denied.request_id) from denied
        reply.pop("ResponseMetadata", None)
        return dict(reply)

    def group(self, name_or_arn: str, *, refresh: bool = False) -> FeatureGroup:
        """The feature group called ``name_or_arn`` (a name in this account, or any group's ARN)."""
        if not refresh:
            cached = self._groups.get(name_or_arn)
            if cached is not None:
                return cached
        return self._remember(FeatureGroup(self, self.describe(name_or_arn)), name_or_arn)

    def _remember(self, group: FeatureGroup, *keys: str) -> FeatureGroup:
        with self._lock:
            for key in (group.name, group.arn, *keys):
                self._groups[key] = group
        return group

    def _forget(self, name_or_arn: str) -> None:
        with self._lock:
            for key in [k for k, g in self._groups.items() if name_or_arn in (k, g.name, g.arn)]:
                del self._groups[key]

    def ensure_group(
        self,
        spec: GroupSpec,
        *,
        offline_s3_uri: str | None = None,
        role_arn: str | None = None,
        team: str | None = None,
        add_features: bool = False,
        wait: bool = True,
        timeout: float = 300,
    ) -> FeatureGroup:
        """Create the group, or verify that the existing one matches ``spec``; idempotent.

        - Everything (spec, S3 URI, role, team) is validated before any AWS call.
        - The owning team (``team=``, else the session's ``team`` tag, else ``spec.tags["team"]``) is
          required, for every group: the central account's ABAC policies key on it, and a local group
          without an owner is the same problem later. It is added as the ``team`` tag on creation.
        - An existing group with the same schema is returned as is. If the spec only adds features, they are
          added (``UpdateFeatureGroup``) when ``add_features=True``; any other difference raises
          :class:`SchemaDriftError` listing them all. Tags of an existing group are not compared.
        - ``wait=True`` polls until ``Created`` (and the offline store ``Active``), at most ``timeout``
          seconds; ``CreateFailed`` raises :class:`AWSError` carrying AWS's ``FailureReason``.
        """
        tags = self._creation_tags(spec, team)
        _validate_create_args(spec, offline_s3_uri, role_arn, tags)
        try:
            description = self.describe(spec.name)
        except NotFoundError:
            description = self._create(spec, offline_s3_uri, role_arn, tags)
        if description.get("FeatureGroupStatus") in ("Deleting", "DeleteFailed"):
            raise AWSError(f"feature group {spec.name!r} is {description['FeatureGroupStatus']}; wait for the "
                           "deletion to finish, then ensure it again", code=description["FeatureGroupStatus"])
        description = self._reconcile(spec, description, add_features=add_features)
        if wait:
            description = self.wait_for_group(spec.name, timeout=timeout)
        return self._remember(FeatureGroup(self, description))

    def _exists(self, name: str) -> bool:
        with translate_client_error(action="sagemaker:ListFeatureGroups", resource=name):
            for page in self._sagemaker.get_paginator("list_feature_groups").paginate(NameContains=name):
                if any(g["FeatureGroupName"] == name for g in page.get("FeatureGroupSummaries", [])):
                    return True
        return False

    def _creation_tags(self, spec: GroupSpec, team: str | None) -> dict[str, str]:
        tags = dict(spec.tags)
        candidates = {k: v for k, v in (("team=", team), ("session team tag", self.session.team),
                                        ("spec.tags['team']", tags.get(TEAM_TAG))) if v}
        owner = team or self.session.team or tags.get(TEAM_TAG)
        if owner is None:
            raise ValidationError(
                f"no owning team for feature group {spec.name!r}", field="team", value=None,
                hint="pass team=, assume the role with tags={'team': ...}, or set spec.tags['team']")
        if team and tags.get(TEAM_TAG) and tags[TEAM_TAG] != team:
            raise ValidationError(f"team={team!r} conflicts with spec.tags['team']={tags[TEAM_TAG]!r}",
                                  field="team", value=team, problems=[f"{k} = {v!r}" for k, v in candidates.items()])
        tags[TEAM_TAG] = owner
        return tags

    def _create(self, spec: GroupSpec, offline_s3_uri: str | None, role_arn: str | None,
                tags: Mapping[str, str]) -> dict[str, Any]:
        request = spec.create_request(offline_s3_uri=offline_s3_uri, role_arn=role_arn, tags=tags)
        try:
            self._sagemaker.create_feature_group(**request)
            logger.info("created feature group %s", spec.name)
        except ClientError as exc:
            if error_code(exc) != "ResourceInUse":
                raise from_client_error(exc, action="sagemaker:CreateFeatureGroup", resource=spec.name) from exc
            # A concurrent creator won the race: verify their group like any existing one.
            logger.info("feature group %s was created concurrently; verifying it", spec.name)
        return self.describe(spec.name)

    def _reconcile(self, spec: GroupSpec, description: dict[str, Any], *, add_features: bool) -> dict[str, Any]:
        differences = spec.differences(description)
        if not differences:
            return description
        additions = spec.additions(description)
        only_additions = len(differences) == len(additions)
        if only_additions and add_features:
            self._add_features(spec.name, additions)
            return self.describe(spec.name)
        hint = ("pass add_features=True to add the new features" if only_additions
                else "feature groups cannot change existing features; create a new group (e.g. a versioned name)")
        raise SchemaDriftError(f"feature group {spec.name!r} differs from the spec: " + "; ".join(differences),
                               differences=differences, hint=hint)

    def _add_features(self, name: str, additions: Sequence[Feature], timeout: float = 300) -> None:
        for start in range(0, len(additions), MAX_ADDITIONS_PER_UPDATE):
            chunk = additions[start:start + MAX_ADDITIONS_PER_UPDATE]
            with translate_client_error(action="sagemaker:UpdateFeatureGroup", resource=name):
                self._sagemaker.update_feature_group(
                    FeatureGroupName=name,
                    FeatureAdditions=[{"FeatureName": f.name, "FeatureType": str(f.type)} for f in chunk])
            self._wait_for_update(name, timeout=timeout)
        logger.info("added %d feature(s) to %s", len(additions), name)

    def _wait_for_update(self, name: str, *, timeout: float) -> None:
        def done(d: Mapping[str, Any]) -> bool:
            update = d.get("LastUpdateStatus") or {"Status": "Successful"}
            if update["Status"] == "Failed":
                raise AWSError(f"adding features to {name!r} failed: {update.get('FailureReason', '')}",
                               code="UpdateFailed")
            return update["Status"] == "Successful"

        self._poll(name, done, timeout=timeout, what="feature additions")

    def wait_for_group(self, name_or_arn: str, *, timeout: float = 300) -> dict[str, Any]:
        """Poll until the group is ``Created`` and its offline store (if any) ``Active``; return the description.

        Raises :class:`AWSError` with AWS's ``FailureReason`` on ``CreateFailed`` (or a ``Blocked`` offline
        store), :class:`WaitTimeoutError` after ``timeout`` seconds.
        """
        def done(d: Mapping[str, Any]) -> bool:
            status = d.get("FeatureGroupStatus")
            if status == "CreateFailed":
                raise AWSError(f"creating feature group {name_or_arn!r} failed: {d.get('FailureReason', '?')}",
                               code="CreateFailed")
            offline = (d.get("OfflineStoreStatus") or {}).get("Status")
            if offline == "Blocked":
                raise AWSError(f"the offline store of {name_or_arn!r} is blocked: "
                               f"{d['OfflineStoreStatus'].get('BlockedReason', '?')}", code="OfflineStoreBlocked")
            return status == "Created" and ("OfflineStoreConfig" not in d or offline in ("Active", None))

        return self._poll(name_or_arn, done, timeout=timeout, what="creation")

    def _poll(self, name: str, done: Any, *, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            description = self.describe(name)
            if done(description):
                return description
            if time.monotonic() + delay > deadline:
                raise WaitTimeoutError(
                    f"feature group {name!r} {what} not finished after {timeout:g}s "
                    f"(status {description.get('FeatureGroupStatus')})",
                    hint="raise timeout=, or call ensure_group(..., wait=False) and wait_for_group() later")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def list_groups(self, *, name_contains: str | None = None, status: str | None = None,
                    limit: int | None = None) -> list[GroupSummary]:
        """Feature groups of this account, newest first (``status`` e.g. ``"Created"``)."""
        args: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Descending"}
        if name_contains:
            args["NameContains"] = name_contains
        if status:
            args["FeatureGroupStatusEquals"] = status
        out: list[GroupSummary] = []
        with translate_client_error(action="sagemaker:ListFeatureGroups"):
            for page in self._sagemaker.get_paginator("list_feature_groups").paginate(**args):
                for s in page.get("FeatureGroupSummaries", []):
                    out.append(GroupSummary(s["FeatureGroupName"], s["FeatureGroupArn"],
                                            s.get("FeatureGroupStatus", ""),
                                            (s.get("OfflineStoreStatus") or {}).get("Status"),
                                            s.get("CreationTime")))
                    if limit is not None and len(out) >= limit:
                        return out
        return out

    def delete_group(self, name: str, *, confirm: str, wait: bool = True, timeout: float = 300) -> None:
        """Delete a feature group and its online records (the offline data in S3 is kept, as AWS does).

        ``confirm`` must repeat the group's name, so a wrong variable cannot delete the wrong group.
        """
        if confirm != name:
            raise ValidationError(f"confirm={confirm!r} does not match the group name {name!r}",
                                  field="confirm", value=confirm, hint=f"pass confirm={name!r}")
        with translate_client_error(action="sagemaker:DeleteFeatureGroup", resource=name):
            self._sagemaker.delete_feature_group(FeatureGroupName=name)
        self._forget(name)
        logger.info("deleting feature group %s", name)
        if wait:
            self._wait_deleted(name, timeout=timeout)

    def _wait_deleted(self, name: str, *, timeout: float) -> None:
        def gone(d: Mapping[str, Any]) -> bool:
            if d.get("FeatureGroupStatus") == "DeleteFailed":
                raise AWSError(f"deleting {name!r} failed: {d.get('FailureReason', '?')}", code="DeleteFailed")
            return False

        try:
            self._poll(name, gone, timeout=timeout, what="deletion")
        except NotFoundError:
            return

    def get_many(self, requests: Mapping[FeatureGroup | str, Sequence[Any]], *,
                 features: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
                 max_in_flight: int = 8, timeout: float = 60) -> dict[str, pd.DataFrame]:
        """Online records of many groups at once; see :func:`featureshare.online.get_many`."""
        from featureshare.online import get_many

        return get_many(self, requests, features=features, max_in_flight=max_in_flight, timeout=timeout)

    def __repr__(self) -> str:
        return f"FeatureStore({self.session!r})"


def _validate_create_args(spec: GroupSpec, offline_s3_uri: str | None, role_arn: str | None,
                          tags: Mapping[str, str]) -> None:
    with_team = replace(spec, tags=tags)  # the team tag counts against the 50-tag limit too
    problems = with_team.problems()
    if spec.offline:
        if not offline_s3_uri or not _S3_URI_RE.fullmatch(offline_s3_uri):
            problems.append(Problem("offline_s3_uri", offline_s3_uri, "an offline store needs an s3:// URI"))
        if not role_arn or not ROLE_ARN_RE.fullmatch(role_arn):
            problems.append(Problem("role_arn", role_arn, "an offline store needs the ARN of a role Feature "
                                                          "Store can assume to write it"))
    raise_problems(f"cannot ensure feature group {spec.name!r}", problems)

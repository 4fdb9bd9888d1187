"""Cross-account sessions whose credentials refresh themselves.

``assume_role`` returns an :class:`AccountSession` acting in another account. Its credentials are fetched on
first use and renewed by botocore before they expire (from 15 minutes before expiry; blocking from 10 minutes
before), one AssumeRole per refresh however many threads use the session. Nothing else in the caller's code
knows about STS.

Example::

    from featureshare.session import assume_role
    central = assume_role("arn:aws:iam::111111111111:role/FeatureShareAccess", tags={"team": "search"})
    central.whoami().account          # '111111111111'
    sm = central.client("sagemaker")  # cached, thread-safe, refreshes with the session
"""

from __future__ import annotations

import dataclasses
import functools
import getpass
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from featureshare.config import ROLE_ARN_RE
from featureshare.errors import (
    AccessDeniedError,
    ConfigError,
    CredentialsError,
    ValidationError,
    from_client_error,
)

__all__ = ["MIN_DURATION_SECONDS", "AccountSession", "Identity", "SessionSpec", "assume_role"]

#: botocore starts refreshing 15 minutes before expiry: anything shorter would refresh on every call.
MIN_DURATION_SECONDS = 1200
MAX_DURATION_SECONDS = 43200
ROLE_CHAINING_MAX_SECONDS = 3600
_SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
_EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_SOURCE_IDENTITY_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
_TAG_KEY_RE = re.compile(r"^[\w+\-=._:/@ ]{1,128}$")
_TAG_VALUE_RE = re.compile(r"^[\w+\-=._:/@ ]{0,256}$")
_MAX_TAGS = 50


@dataclass(frozen=True)
class Identity:
    """Who a session is: ``sts:GetCallerIdentity``."""

    account: str
    arn: str
    user_id: str


@dataclass(frozen=True)
class SessionSpec:
    """A picklable description of how to rebuild a session in another process (no secrets inside).

    ``source`` is the spec of the session the role is assumed from (role chaining), ``None`` meaning the
    default credential chain or ``profile``.
    """

    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    session_name: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    transitive_tag_keys: tuple[str, ...] = ()
    source_identity: str | None = None
    external_id: str | None = None
    policy: str | None = None
    duration_seconds: int = 3600
    source: SessionSpec | None = None
    client_config: tuple[tuple[str, Any], ...] = field(default=())


class _FixedCredentialProvider(CredentialProvider):
    """Hands botocore one shared refreshable credentials object (public provider API)."""

    METHOD = "featureshare-assume-role"
    CANONICAL_NAME = "featureshare-assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


class AccountSession:
    """A boto3 session bound to one account, with a thread-safe client cache.

    Wrap any boto3 Session (``AccountSession(boto3.Session(profile_name="dev"))``), use the default chain
    (``AccountSession.current()``), or get one from :func:`assume_role`.
    """

    def __init__(
        self,
        boto3_session: boto3.Session,
        *,
        region: str | None = None,
        spec: SessionSpec | None = None,
        client_config: Config | None = None,
        parent: AccountSession | None = None,
    ) -> None:
        resolved_region = region or boto3_session.region_name
        if not resolved_region:
            raise ConfigError(
                "no AWS region configured for this session",
                hint="pass region=, set AWS_REGION / AWS_DEFAULT_REGION, or set region in your profile",
            )
        self._boto3_session = boto3_session
        self._region: str = resolved_region
        self._spec = spec
        self._parent = parent
        self._client_config = client_config
        self._clients: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self._identity: Identity | None = None

    @classmethod
    def current(cls, *, region: str | None = None, profile: str | None = None) -> AccountSession:
        """The session of the default credential chain (or of ``profile``)."""
        return cls(boto3.Session(profile_name=profile, region_name=region, botocore_session=_botocore_session()),
                   region=region)

    @property
    def boto3_session(self) -> boto3.Session:
        return self._boto3_session

    @property
    def region(self) -> str:
        return self._region

    @property
    def role_arn(self) -> str | None:
        """The assumed role's ARN, or ``None`` for a session that did not assume a role."""
        return self._spec.role_arn if self._spec else None

    @property
    def tags(self) -> dict[str, str]:
        """Session tags passed to AssumeRole (empty for a plain session)."""
        return dict(self._spec.tags) if self._spec else {}

    @property
    def team(self) -> str | None:
        """The ``team`` session tag, if this session was assumed with one."""
        return self.tags.get("team")

    @property
    def account_id(self) -> str:
        """The account this session acts in (asks STS once, then cached)."""
        return self.whoami().account

    def whoami(self) -> Identity:
        """``sts:GetCallerIdentity`` of this session (cached after the first call)."""
        if self._identity is None:
            try:
                reply = self.client("sts").get_caller_identity()
            except NoCredentialsError as exc:
                raise _no_credentials() from exc
            except ClientError as exc:
                raise from_client_error(exc, action="sts:GetCallerIdentity") from exc
            self._identity = Identity(reply["Account"], reply["Arn"], reply["UserId"])
        return self._identity

    def client(self, service: str, *, region: str | None = None, **config: Any) -> Any:
        """A botocore client for ``service``, cached per (service, region, config) and shared across threads.

        ``config`` are :class:`botocore.config.Config` options, e.g. ``max_pool_connections=32`` or
        ``retries={"mode": "adaptive", "max_attempts": 5}``.
        """
        key = (service, region or self._region, _freeze(config))
        client = self._clients.get(key)
        if client is not None:
            return client
        with self._lock:  # boto3 sessions are not thread-safe; creating clients must be serialised
            client = self._clients.get(key)
            if client is None:
                merged = Config(**config) if config else None
                if self._client_config is not None:
                    merged = self._client_config.merge(merged) if merged else self._client_config
                client = self._boto3_session.client(service, region_name=region or self._region, config=merged)
                self._clients[key] = client
        return client

    def athena_connection(self, **kwargs: Any) -> Any:
        """A PyAthena DB-API connection using this session (so it refreshes too)."""
        from pyathena import connect

        kwargs.setdefault("region_name", self._region)
        return connect(session=self._boto3_session, **kwargs)

    def sagemaker_session(self) -> Any:
        """A ``sagemaker.Session`` on this session's credentials (needs the ``sagemaker`` extra)."""
        try:
            import sagemaker  # type: ignore[import-not-found]
        except ImportError as exc:
            raise ConfigError(
                "the SageMaker Python SDK is not installed",
                hint="pip install 'featureshare[sagemaker]'",
            ) from exc
        return sagemaker.Session(boto_session=self._boto3_session)

    def to_spec(self) -> SessionSpec:
        """A picklable spec; :meth:`from_spec` rebuilds an equivalent session in another process.

        Secrets never go into a spec: a session built from explicit access keys cannot be shipped (the
        other process would silently use its own default credentials, i.e. possibly another account).
        """
        if self._spec is None:
            self._spec = _spec_of_plain_session(self._boto3_session, self._region)
        if self._parent is not None and self._spec.source is None:
            self._spec = dataclasses.replace(self._spec, source=self._parent.to_spec())
        return self._spec

    @classmethod
    def from_spec(cls, spec: SessionSpec) -> AccountSession:
        """Rebuild a session from :meth:`to_spec` (credentials come from the environment or profile)."""
        if spec.role_arn is None:
            return cls(boto3.Session(profile_name=spec.profile, region_name=spec.region), region=spec.region,
                       spec=spec)
        source = cls.from_spec(spec.source) if spec.source is not None else None
        return assume_role(
            spec.role_arn,
            source=source,
            profile=spec.profile if source is None else None,
            session_name=spec.session_name,
            tags=dict(spec.tags) or None,
            transitive_tag_keys=list(spec.transitive_tag_keys) or None,
            source_identity=spec.source_identity,
            external_id=spec.external_id,
            policy=spec.policy,
            duration_seconds=spec.duration_seconds,
            region=spec.region,
        )

    def __repr__(self) -> str:
        spec = self._spec or SessionSpec(profile=self._boto3_session.profile_name)
        who = spec.role_arn or (f"profile {spec.profile}" if spec.profile else "default chain")
        return f"AccountSession({who}, region={self._region!r})"


def assume_role(
    role_arn: str,
    *,
    source: AccountSession | boto3.Session | None = None,
    profile: str | None = None,
    session_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    transitive_tag_keys: Sequence[str] | None = None,
    source_identity: str | None = None,
    external_id: str | None = None,
    policy: Mapping[str, Any] | str | None = None,
    duration_seconds: int = 3600,
    region: str | None = None,
) -> AccountSession:
    """Assume ``role_arn`` and return a session whose credentials refresh themselves.

    Source credentials: ``source`` (a boto3 Session or AccountSession: role chaining), else ``profile``, else
    the default chain (SageMaker notebook, Studio or Processing container credentials). Nothing is called
    until the session is first used; every argument is validated now.

    >>> central = assume_role("arn:aws:iam::111111111111:role/FeatureShareAccess",
    ...                       tags={"team": "search"}, region="us-east-1")  # doctest: +SKIP
    """
    if source is not None and profile is not None:
        raise ValidationError("pass either source= or profile=, not both", field="profile", value=profile)
    source_session = _source_session(source, profile, region)
    resolved_region = region or source_session.region_name
    if not resolved_region:
        raise ConfigError("no AWS region for the STS client", hint="pass region= or set AWS_REGION")
    # The source's own spec is computed only when to_spec() is asked for (it may not be shippable).
    parent = source if isinstance(source, AccountSession) else (
        AccountSession(source, region=resolved_region) if source is not None else None)
    policy_text = json.dumps(policy) if isinstance(policy, Mapping) else policy
    name = session_name or _default_session_name(source_session)
    extra = _assume_role_args(role_arn, name, tags, transitive_tag_keys, source_identity, external_id,
                              policy_text, duration_seconds)
    spec = SessionSpec(
        region=resolved_region,
        profile=profile if source is None else None,
        role_arn=role_arn,
        session_name=session_name,
        tags=tuple((tags or {}).items()),
        transitive_tag_keys=tuple(transitive_tag_keys or ()),
        source_identity=source_identity,
        external_id=external_id,
        policy=policy_text,
        duration_seconds=duration_seconds,
    )
    credentials = _refreshable_credentials(source_session, resolved_region, role_arn, extra)
    botocore_session = _botocore_session()
    botocore_session.register_component(
        "credential_provider", CredentialResolver([_FixedCredentialProvider(credentials)])
    )
    botocore_session.set_config_variable("region", resolved_region)
    return AccountSession(boto3.Session(botocore_session=botocore_session, region_name=resolved_region),
                          region=resolved_region, spec=spec, parent=parent)


@functools.cache
def _shared_loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


def _botocore_session() -> botocore.session.Session:
    """A new botocore session sharing one model loader, so each session does not re-parse the service JSON."""
    session = botocore.session.Session()
    session.register_component("data_loader", _shared_loader())
    return session


def _source_session(source: AccountSession | boto3.Session | None, profile: str | None,
                    region: str | None) -> boto3.Session:
    if isinstance(source, AccountSession):
        return source.boto3_session
    if isinstance(source, boto3.Session):
        return source
    if source is not None:
        raise ValidationError(f"source must be a boto3.Session or AccountSession, got {type(source).__name__}",
                              field="source", value=source)
    return boto3.Session(profile_name=profile, region_name=region, botocore_session=_botocore_session())


def _assume_role_args(role_arn: str, session_name: str, tags: Mapping[str, str] | None,
                      transitive_tag_keys: Sequence[str] | None, source_identity: str | None,
                      external_id: str | None, policy: str | None, duration_seconds: int) -> dict[str, Any]:
    """Validate against STS's own limits now, and build the AssumeRole extra arguments."""
    problems: list[tuple[str, Any, str]] = []
    if not isinstance(role_arn, str) or not ROLE_ARN_RE.fullmatch(role_arn):
        problems.append(("role_arn", role_arn, "is not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)"))
    if not _SESSION_NAME_RE.fullmatch(session_name):
        problems.append(("session_name", session_name, "must be 2-64 characters of [A-Za-z0-9_+=,.@-]"))
    if not isinstance(duration_seconds, int) or duration_seconds < MIN_DURATION_SECONDS:
        problems.append(("duration_seconds", duration_seconds,
                         f"must be >= {MIN_DURATION_SECONDS}: botocore refreshes credentials 15 minutes before "
                         "expiry, so a shorter duration would call AssumeRole on every request"))
    elif duration_seconds > MAX_DURATION_SECONDS:
        problems.append(("duration_seconds", duration_seconds, f"must be <= {MAX_DURATION_SECONDS} (12 hours)"))
    tag_items = list((tags or {}).items())
    if len(tag_items) > _MAX_TAGS:
        problems.append(("tags", len(tag_items), f"at most {_MAX_TAGS} session tags"))
    for key, value in tag_items:
        if not isinstance(key, str) or not _TAG_KEY_RE.fullmatch(key):
            problems.append((f"tags[{key!r}]", key, "tag keys are 1-128 characters of letters, digits, +-=._:/@"))
        if not isinstance(value, str) or not _TAG_VALUE_RE.fullmatch(value):
            problems.append((f"tags[{key!r}]", value, "tag values are strings of 0-256 letters, digits, +-=._:/@"))
    for key in transitive_tag_keys or ():
        if key not in dict(tag_items):
            problems.append(("transitive_tag_keys", key, "names a tag that is not in tags="))
    if external_id is not None and not _EXTERNAL_ID_RE.fullmatch(external_id):
        problems.append(("external_id", external_id, "must be 2-1224 characters of [\\w+=,.@:/-]"))
    if source_identity is not None and (not _SOURCE_IDENTITY_RE.fullmatch(source_identity)
                                        or source_identity.lower().startswith("aws:")):
        problems.append(("source_identity", source_identity,
                         "must be 2-64 characters of [\\w+=,.@-] and not start with 'aws:'"))
    if policy is not None and len(policy) > 2048:
        problems.append(("policy", f"{len(policy)} characters", "session policies are limited to 2048 characters"))
    if problems:
        lines = [f"{f}={v!r} {why}" for f, v, why in problems]
        raise ValidationError("invalid assume_role arguments: " + "; ".join(lines), field=problems[0][0],
                              value=problems[0][1], problems=lines)
    extra: dict[str, Any] = {"RoleSessionName": session_name, "DurationSeconds": duration_seconds}
    if tag_items:
        extra["Tags"] = [{"Key": k, "Value": v} for k, v in tag_items]
    if transitive_tag_keys:
        extra["TransitiveTagKeys"] = list(transitive_tag_keys)
    if source_identity is not None:
        extra["SourceIdentity"] = source_identity
    if external_id is not None:
        extra["ExternalId"] = external_id
    if policy is not None:
        extra["Policy"] = policy
    return extra


def _refreshable_credentials(source: boto3.Session, region: str, role_arn: str,
                             extra: dict[str, Any]) -> DeferredRefreshableCredentials:
    source_botocore = source._session  # boto3 exposes no public accessor; it is the documented attribute
    try:
        source_credentials = source_botocore.get_credentials()
    except BotoCoreError as exc:  # e.g. container or instance metadata that answers with an error
        raise CredentialsError(f"could not load the source credentials: {exc}",
                               hint="check the profile, the execution role or AWS_* variables") from exc
    if source_credentials is None:
        raise _no_credentials()

    def create_sts_client(service: str, **kwargs: Any) -> Any:
        # Always an explicit region: a regional STS endpoint, and no surprise from an unset default.
        return source_botocore.create_client(service, region_name=region, **kwargs)

    fetcher = AssumeRoleCredentialFetcher(
        client_creator=create_sts_client,
        source_credentials=source_credentials,
        role_arn=role_arn,
        extra_args=extra,
    )

    def refresh() -> dict[str, Any]:
        try:
            return fetcher.fetch_credentials()
        except ClientError as exc:
            raise _assume_role_error(exc, role_arn, source, extra) from exc

    return DeferredRefreshableCredentials(refresh_using=refresh, method="featureshare-assume-role")


def _assume_role_error(exc: ClientError, role_arn: str, source: boto3.Session,
                       extra: dict[str, Any]) -> Exception:
    code = exc.response.get("Error", {}).get("Code", "")
    message = exc.response.get("Error", {}).get("Message", "")
    caller = _caller_arn(source)
    if code == "AccessDenied":
        causes = ["the role's trust policy does not name this principal (or its account)",
                  "the caller's own policy lacks sts:AssumeRole on the role"]
        if "Tags" in extra:
            causes.append("the trust policy does not allow sts:TagSession with these tags "
                          f"({', '.join(t['Key'] for t in extra['Tags'])})")
        if "ExternalId" not in extra:
            causes.append("the trust policy requires sts:ExternalId")
        return AccessDeniedError(
            f"{caller} may not assume {role_arn}: {message or code}. Usual causes: " + "; ".join(causes),
            action="sts:AssumeRole", account=role_arn.split(":")[4], principal=caller, code=code,
            request_id=exc.response.get("ResponseMetadata", {}).get("RequestId", ""),
        )
    if code == "ValidationError" and "DurationSeconds" in message:
        return ValidationError(
            f"STS rejected DurationSeconds={extra['DurationSeconds']}: {message}. Role chaining (assuming a "
            f"role from an assumed-role session, such as a SageMaker execution role) is capped at "
            f"{ROLE_CHAINING_MAX_SECONDS} seconds, and no duration may exceed the role's MaxSessionDuration",
            field="duration_seconds", value=extra["DurationSeconds"],
        )
    return from_client_error(exc, action="sts:AssumeRole", resource=role_arn)


def _caller_arn(source: boto3.Session) -> str:
    try:
        return str(source.client("sts").get_caller_identity()["Arn"])
    except Exception:  # only for the error message; the original error is what matters
        return "the caller"


def _default_session_name(source: boto3.Session) -> str:
    """``featureshare-<local user>``: visible in CloudTrail, valid for STS."""
    try:
        user = getpass.getuser()
    except Exception:  # containers without a passwd entry
        user = "job"
    name = re.sub(r"[^\w+=,.@-]", "-", f"featureshare-{user}")[:64]
    return name if len(name) >= 2 else "featureshare"


def _spec_of_plain_session(session: boto3.Session, region: str) -> SessionSpec:
    credentials = session.get_credentials()
    if credentials is not None and getattr(credentials, "method", "") == "explicit":
        raise ConfigError(
            "this session was built from explicit access keys, which featureshare never ships to another "
            "process",
            hint="use a named profile (boto3.Session(profile_name=...)) or the default credential chain",
        )
    profile = session.profile_name if session.profile_name != "default" else None
    return SessionSpec(region=region, profile=profile)


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _no_credentials() -> CredentialsError:
    return CredentialsError(
        "no AWS credentials found",
        hint="run in SageMaker (execution role), set AWS_PROFILE, or pass profile=/source=",
    )

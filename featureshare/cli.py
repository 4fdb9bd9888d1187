"""The ``featureshare`` command: a thin shell over the library, and the only place that prints for humans.

Each featureshare error class maps to an exit code and one clear line on stderr (plus a hint); ``--debug``
shows the traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click

from featureshare import errors
from featureshare._version import __version__
from featureshare.config import Topology, load_topology
from featureshare.session import AccountSession, assume_role

EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (errors.ConfigError, 3),
    (errors.ValidationError, 4),
    (errors.CredentialsError, 5),
    (errors.AccessDeniedError, 6),
    (errors.NotFoundError, 7),
    (errors.SchemaDriftError, 8),
    (errors.QueryFailedError, 9),
    (errors.WaitTimeoutError, 10),
    (errors.IngestionError, 11),
    (errors.UnsupportedError, 12),
    (errors.FeatureshareError, 1),
]
#: ``bootstrap plan|apply --strict``: key policies bootstrap does not own still lack grants (or are unverified).
ACTION_NEEDED_EXIT_CODE = 13


@dataclass
class Context:
    """What every command receives: global options, and lazily the topology and sessions."""

    config_path: str | None
    profile: str | None
    region: str | None
    as_json: bool
    debug: bool
    _topology: Topology | None = field(default=None, repr=False)

    @property
    def topology(self) -> Topology:
        if self._topology is None:
            self._topology = load_topology(self.config_path)
        return self._topology

    def source_session(self) -> AccountSession:
        region = self.region or (self._safe_topology().region if self._safe_topology() else None)
        return AccountSession.current(region=region, profile=self.profile)

    def _safe_topology(self) -> Topology | None:
        try:
            return self.topology
        except errors.ConfigError:
            if self.config_path:
                raise
            return None

    def central_session(self, team: str | None = None) -> AccountSession:
        """The source session's assumed central role, tagged with the caller's team."""
        topology = self.topology
        source = self.source_session()
        consumer = topology.consumer_for_account(source.account_id)
        chosen_team = team or (consumer.team if consumer else None)
        return assume_role(
            topology.central.access_role_arn,
            source=source,
            tags={"team": chosen_team} if chosen_team else None,
            external_id=topology.central.external_id,
            region=self.region or topology.region,
        )

    def emit(self, data: Any, human: Callable[[Any], str] | str | None = None) -> None:
        """Print ``data`` as JSON with --json, else its human rendering."""
        if self.as_json:
            click.echo(json.dumps(data, indent=2, default=str))
        elif callable(human):
            click.echo(human(data))
        else:
            click.echo(human if human is not None else data)


class FeatureshareGroup(click.Group):
    """Turns featureshare errors into one stderr line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.FeatureshareError as exc:
            debug = bool(ctx.find_root().params.get("debug"))
            if debug:
                raise
            click.echo(f"error: {exc}", err=True)
            if not exc.hint:
                click.echo("hint: run with --debug for the full traceback", err=True)
            ctx.exit(exit_code_for(exc))


def exit_code_for(exc: BaseException) -> int:
    return next((code for cls, code in EXIT_CODES if isinstance(exc, cls)), 1)


@click.group(cls=FeatureshareGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="FEATURESHARE_CONFIG", type=click.Path(dir_okay=False),
              help="Topology file (default: $FEATURESHARE_CONFIG or ./featureshare.toml).")
@click.option("--profile", help="AWS profile for your own (source) credentials.")
@click.option("--region", help="AWS region (default: the topology's).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(__version__, prog_name="featureshare")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, profile: str | None, region: str | None, as_json: bool,
        debug: bool) -> None:
    """Share Amazon SageMaker Feature Store across AWS accounts.

    \b
    Examples:
      featureshare whoami --config featureshare.toml
      featureshare local serve
      featureshare --json groups list
    """
    ctx.obj = Context(config_path, profile, region, as_json, debug)


@cli.command()
@click.option("--team", help="Team tag for the central session (default: the consumer's team in the topology).")
@click.option("--no-central", is_flag=True, help="Only show your own identity.")
@click.pass_obj
def whoami(obj: Context, team: str | None, no_central: bool) -> None:
    """Show your identity and the central role you assume.

    \b
    Example:
      featureshare --config featureshare.toml whoami
    """
    source = obj.source_session().whoami()
    result: dict[str, Any] = {"source": {"account": source.account, "arn": source.arn}}
    if not no_central:
        central_session = obj.central_session(team)
        central = central_session.whoami()
        result["central"] = {"account": central.account, "arn": central.arn, "team": central_session.team}

    def human(data: dict[str, Any]) -> str:
        lines = [f"you:      {data['source']['arn']} (account {data['source']['account']})"]
        if "central" in data:
            tag = f", team {data['central']['team']}" if data["central"]["team"] else ""
            lines.append(f"central:  {data['central']['arn']} (account {data['central']['account']}{tag})")
        return "\n".join(lines)

    obj.emit(result, human)


@cli.group()
def bootstrap() -> None:
    """Create the roles, policies, buckets, keys and catalogs of the topology (plan, apply, destroy).

    \b
    Examples:
      featureshare --config featureshare.toml bootstrap plan
      featureshare --config featureshare.toml bootstrap apply
      featureshare bootstrap apply --central-profile org-central --consumer-profile search=org-search
      featureshare bootstrap apply --merge-key-policies --strict

    Policies of keys bootstrap does not create (consumer kms_key; central kms_key and replica_kms_key given as
    key ARNs) are checked, never rewritten: what they lack is listed under ACTION NEEDED on stderr, with the
    statements to add (exit code 0, or 13 with --strict). --merge-key-policies merges those statements instead
    (by Sid, every other statement untouched); destroy removes only what was merged.

    Bootstrap takes over nothing it did not create (tagged managed-by=featureshare): plan and apply stop, naming
    the setting, where a key alias names another key, a role, workgroup or data catalog exists untagged and
    differs from what bootstrap would make, or the offline bucket replicates with another role; destroy never
    deletes what bootstrap did not create.
    """


def _key_policy_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--merge-key-policies", is_flag=True,
                        help="Merge the statements missing from policies of keys bootstrap does not own into them "
                             "(by Sid; other statements untouched).")(func)
    func = click.option("--strict", is_flag=True,
                        help=f"Exit with {ACTION_NEEDED_EXIT_CODE} when a key policy still needs action.")(func)
    return func


def _bootstrap_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--central-profile", help="Profile for the central account (default: topology's).")(func)
    func = click.option("--consumer-profile", "consumer_profiles", multiple=True, metavar="NAME=PROFILE",
                        help="Profile for a consumer account (repeatable; default: topology's).")(func)
    func = click.option("--create-execution-roles", is_flag=True,
                        help="Also create the consumers' execution roles (sandboxes and the embedded AWS).")(func)
    func = click.option("--trust-policy-quota", type=click.IntRange(2048, 4096), default=2048, show_default=True,
                        help="Your account's IAM trust policy size quota.")(func)
    func = click.option("--compact-trust", is_flag=True,
                        help="One TagSession statement for all consumers (fits more consumers in the quota).")(func)
    return func


def _bootstrapper(obj: Context, central_profile: str | None, consumer_profiles: tuple[str, ...],
                  create_execution_roles: bool, trust_policy_quota: int = 2048, compact_trust: bool = False,
                  merge_key_policies: bool = False) -> Any:
    from featureshare.bootstrap.plan import Bootstrap

    topology = obj.topology
    overrides: dict[str, str] = {}
    for item in consumer_profiles:
        name, sep, profile = item.partition("=")
        if not sep or not profile:
            raise errors.ValidationError(f"--consumer-profile {item!r} must be NAME=PROFILE",
                                         field="--consumer-profile", value=item)
        topology.consumer(name)
        overrides[name] = profile
    region = obj.region or topology.region
    sessions = {"central": AccountSession.current(region=region,
                                                  profile=central_profile or topology.central.profile or obj.profile)}
    for consumer in topology.consumers:
        profile = overrides.get(consumer.name) or consumer.profile or obj.profile
        sessions[consumer.name] = AccountSession.current(region=region, profile=profile)
    return Bootstrap(topology, sessions, create_execution_roles=create_execution_roles,
                     trust_policy_quota=trust_policy_quota, bind_teams_in_trust=not compact_trust,
                     merge_key_policies=merge_key_policies)


def _print_plan(obj: Context, plan: Any, verb: str) -> None:
    def human(_: Any) -> str:
        nothing = ("no changes to what bootstrap manages" if plan.actions_needed
                   else "no changes: the accounts match the topology")
        lines = [change.render() for change in plan.pending] or [nothing]
        counts: dict[str, int] = {}
        for change in plan.pending:
            counts[change.action.value] = counts.get(change.action.value, 0) + 1
        if plan.pending:
            lines.append(f"{verb}: " + ", ".join(f"{n} to {a}" if verb == "plan" else f"{n} {a}d"
                                                  for a, n in sorted(counts.items())))
        return "\n".join(lines)

    obj.emit(plan.to_dict(), human)


def _report_actions_needed(plan: Any, strict: bool) -> None:
    """The ACTION NEEDED block on stderr; with ``strict`` a distinct exit code when there is one."""
    if not plan.actions_needed:
        return
    count = len(plan.actions_needed)
    click.echo(f"\nACTION NEEDED: {count} key {'policy' if count == 1 else 'policies'} that bootstrap does not "
               "write may lack grants featureshare needs. Add the statements below to each (or rerun with "
               "--merge-key-policies: bootstrap merges them into the policies it can read).", err=True)
    for action in plan.actions_needed:
        click.echo(action.render(), err=True)
    if strict:
        click.get_current_context().exit(ACTION_NEEDED_EXIT_CODE)


@bootstrap.command("plan")
@_bootstrap_options
@_key_policy_options
@click.pass_obj
def bootstrap_plan(obj: Context, central_profile: str | None, consumer_profiles: tuple[str, ...],
                   create_execution_roles: bool, trust_policy_quota: int, compact_trust: bool,
                   merge_key_policies: bool, strict: bool) -> None:
    """Show what apply would change (changes nothing), and the key policies that need action."""
    booted = _bootstrapper(obj, central_profile, consumer_profiles, create_execution_roles, trust_policy_quota,
                           compact_trust, merge_key_policies)
    plan = booted.plan()
    _print_plan(obj, plan, "plan")
    _report_actions_needed(plan, strict)


@bootstrap.command("apply")
@_bootstrap_options
@_key_policy_options
@click.pass_obj
def bootstrap_apply(obj: Context, central_profile: str | None, consumer_profiles: tuple[str, ...],
                    create_execution_roles: bool, trust_policy_quota: int, compact_trust: bool,
                    merge_key_policies: bool, strict: bool) -> None:
    """Create or update every resource so the accounts match the topology (idempotent); ends with the key
    policies that still need action."""
    booted = _bootstrapper(obj, central_profile, consumer_profiles, create_execution_roles, trust_policy_quota,
                           compact_trust, merge_key_policies)
    applied = booted.apply()
    _print_plan(obj, applied, "applied")
    _report_actions_needed(applied, strict)


@bootstrap.command("destroy")
@_bootstrap_options
@click.option("--force", is_flag=True, help="Also delete non-empty buckets and their contents.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def bootstrap_destroy(obj: Context, central_profile: str | None, consumer_profiles: tuple[str, ...],
                      create_execution_roles: bool, trust_policy_quota: int, compact_trust: bool, force: bool,
                      yes: bool) -> None:
    """Delete what bootstrap created (tagged managed-by=featureshare), newest first; from policies of keys it
    does not own, only the statements it merged (never the keys)."""
    if not yes:
        click.confirm("Delete every featureshare-managed resource of this topology?", abort=True)
    booted = _bootstrapper(obj, central_profile, consumer_profiles, create_execution_roles, trust_policy_quota,
                           compact_trust)
    _print_plan(obj, booted.destroy(force=force), "destroyed")


@cli.group()
def local() -> None:
    """The embedded two-account AWS (moto + Feature Store runtime + Athena on DuckDB).

    \b
    Examples:
      featureshare local serve            # then paste the printed export lines into another shell
      featureshare local demo             # the whole cross-account job, offline
    """


@local.command("serve")
@click.option("--port", type=int, default=None, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--central-account", default="111111111111", show_default=True)
@click.option("--consumer-account", default="222222222222", show_default=True)
@click.pass_obj
def local_serve(obj: Context, port: int | None, central_account: str, consumer_account: str) -> None:
    """Serve the embedded AWS on 127.0.0.1 until interrupted; prints the `export` lines that use it.

    Profiles `central-admin` and `consumer-admin` act as each account's administrator.

    \b
    Example:
      eval "$(featureshare local serve --port 4566 & sleep 2)"; aws --profile consumer-admin sts get-caller-identity
    """
    import shlex
    import signal
    import threading

    from featureshare.local import serve

    aws = serve(port=port, accounts={"central": central_account, "consumer": consumer_account},
                region=obj.region or "us-east-1")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        if obj.as_json:
            click.echo(json.dumps({"env": aws.env(), "accounts": aws.account_ids}))
        else:
            for key, value in aws.env().items():
                click.echo(f"export {key}={shlex.quote(value)}")
            click.echo(f"# embedded AWS at {aws.endpoint_url}; accounts {aws.account_ids}; Ctrl-C stops it",
                       err=True)
        sys.stdout.flush()
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        aws.stop()


@local.command("demo")
@click.option("--users", "n_users", type=click.IntRange(min=10), default=300, show_default=True,
              help="How many users the generated data has.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the generated data.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.pass_obj
def local_demo(obj: Context, n_users: int, seed: int, no_progress: bool) -> None:
    """Run the whole cross-account job on the embedded AWS and print a summary (same numbers every run).

    Bootstraps a central and a consumer account, then as the consumer's execution role: assumes the central
    role, creates and fills two central groups and a local one, and builds a point-in-time training set
    into the consumer's bucket.

    \b
    Example:
      featureshare local demo --users 1000
    """
    from featureshare.demo import run_demo

    summary = run_demo(progress=not (no_progress or obj.as_json), n_users=n_users, seed=seed)
    obj.emit(summary.to_dict(), lambda _: summary.render())


# Command groups implemented in their own modules (imported here, at the end, so `cli` exists first).
from featureshare import cli_datasets, cli_groups, cli_jobs  # noqa: E402

for _command in (cli_groups.groups, cli_groups.ingest, cli_groups.get, cli_groups.share, cli_datasets.build_dataset,
                 cli_datasets.sql, cli_jobs.jobs):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="featureshare")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())

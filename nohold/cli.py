"""The `nohold` command."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nohold import registry
from nohold.config import ConfigError, Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from nohold.feature import Calendars

STATE_DIR = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "nohold"


def _settings(ctx: click.Context) -> Settings:
    path: Path | None = ctx.obj["config"]
    try:
        return registry.load_settings(path)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


@click.group()
@click.option(
    "--config", "-c", type=click.Path(path_type=Path, dir_okay=False),
    envvar="NOHOLD_CONFIG", default=None,
    help="TOML file (default: built-in defaults). conf.d/*.toml beside it is merged in.",
)
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """nohold: a customer-service line that keeps its promises to callers."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    # For feature commands, which sit below the registry and cannot import it.
    ctx.obj["load_settings"] = lambda: _settings(ctx)
    ctx.obj["orphan_fallbacks"] = registry.orphan_fallbacks
    # The business calendars (config + database overrides) for feature commands.
    ctx.obj["calendars"] = _calendars


def _calendars(settings: Settings, engine: AsyncEngine) -> Calendars:
    from nohold.calendar.book import CalendarBook
    from nohold.calendar.settings import CalendarSettings
    from nohold.callbackdb.calendar_overrides import CalendarOverrideStore

    return CalendarBook(settings.section(CalendarSettings), CalendarOverrideStore(engine))


@main.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Validate config, prompts, database and ARI; say what is wrong and how to fix it."""
    from nohold.decisions.peers import exposure_warnings
    from nohold.http_server import exposure_warnings as http_exposure_warnings
    from nohold.service import StartupError, preflight

    settings = _settings(ctx)
    click.echo(f"config: ok ({settings.source})")
    for warning in (*exposure_warnings(settings.agi.host, settings.agi.allow),
                    *http_exposure_warnings(settings.http)):
        click.secho(f"WARNING: {warning}", fg="red", bold=True, err=True)
    try:
        report = asyncio.run(preflight(settings))
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"prompts: ok ({len(report.prompt_seconds)} files, notice "
               f"{report.prompt_seconds[settings.notice.prompt]:.2f} s "
               f"<= {settings.notice.max_seconds:g} s)")
    waiting = (f", {report.outbox_backlog} proofs waiting in the outbox "
               f"{settings.database.outbox_path}" if report.outbox_backlog else "")
    click.echo(f"database: ok (schema {report.db_revision}{waiting})")
    click.echo(f"ari: ok (Asterisk {report.asterisk_version} at {settings.ari.url})")
    if settings.http.enabled:
        click.echo(f"http: API at http://{settings.http.host}:{settings.http.port}/v1/ "
                   "(bearer token set)")
    for line in report.feature_lines:
        click.echo(line)
    # Not at every start (`run` shares the checks above): a missing route or queue is
    # the admin's to fix, and nohold still sends those callers to the fallback.
    from nohold.ari_apps.ivr.route_check import check_routes_exist
    from nohold.feature import CheckFailed

    try:
        click.echo(asyncio.run(check_routes_exist(settings)))
    except CheckFailed as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Start the ARI applications (stops cleanly on SIGTERM/SIGINT)."""
    from nohold.logs import setup_logging
    from nohold.service import StartupError, serve

    settings = _settings(ctx)
    setup_logging(settings.logging.level, settings.logging.format)
    try:
        code = asyncio.run(serve(settings))
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@main.group()
def prompts() -> None:
    """Prompt audio."""


@prompts.command("build")
@click.pass_context
def prompts_build(ctx: click.Context) -> None:
    """Render prompt texts (espeak-ng + sox) to 8 kHz WAV; print each duration."""
    from nohold.prompts import PromptError, build_prompts

    settings = _settings(ctx)
    try:
        built = build_prompts(settings.prompts)
    except PromptError as exc:
        raise click.ClickException(str(exc)) from None
    notice_too_long = False
    for p in built:
        mark = ""
        if p.name == settings.notice.prompt and p.seconds > settings.notice.max_seconds:
            notice_too_long = True
            mark = f"  TOO LONG: notice.max_seconds = {settings.notice.max_seconds:g}"
        click.echo(f"{p.name:<20} {p.seconds:6.2f} s  {p.source:<10} {p.path}{mark}")
    if notice_too_long:
        raise click.ClickException("the recording notice is longer than allowed; shorten it")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or migrate the schema to the current version (safe to repeat)."""
    from nohold.callbackdb.migrate import head_revision, upgrade

    settings = _settings(ctx)
    try:
        upgrade(settings.database.url)
    except Exception as exc:  # noqa: BLE001 - show the driver's words, not a traceback
        raise click.ClickException(f"database {settings.database.url!r}: {exc}") from None
    click.echo(f"database at schema {head_revision()}")


DEFAULT_CONFIG = Path("/etc/nohold/nohold.toml")


def _install_state(config: Path) -> Path:
    return config.parent / "install"


@main.command()
@click.option("--asterisk-etc", type=click.Path(path_type=Path, file_okay=False),
              default=Path("/etc/asterisk"), show_default=True,
              help="Asterisk's config directory.")
@click.option("--dry-run", is_flag=True, help="Show the changes; write nothing.")
@click.option("--yes", is_flag=True, help="Do not ask before writing.")
@click.option("--operator", default="PJSIP/operator", show_default=True,
              help="Dial string of the person the routes file sends callers to when no one "
                   "else answers (only when install writes the routes file).")
@click.option("--ari-user", default="nohold", show_default=True)
@click.option("--ami-user", default="nohold", show_default=True)
@click.option("--asterisk-rx", default="asterisk -rx", show_default=True,
              help="How to run an Asterisk CLI command, e.g. \"docker exec pbx asterisk -rx\".")
@click.option("--systemd", is_flag=True,
              help="Also write /etc/systemd/system/nohold.service for this nohold.")
@click.option("--user", default="nohold", show_default=True,
              help="The system user the service runs as (--systemd).")
@click.option("--unit-dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("/etc/systemd/system"), show_default=True)
@click.pass_context
def install(ctx: click.Context, asterisk_etc: Path, dry_run: bool, yes: bool, operator: str,
            ari_user: str, ami_user: str, asterisk_rx: str, systemd: bool, user: str,
            unit_dir: Path) -> None:
    """Prepare an existing Asterisk for nohold: its dialplan, ARI and AMI users (with
    generated secrets in nohold's conf.d), shown as a diff first; backups kept."""
    import shlex

    from nohold.ari_apps.ivr.settings import IvrSettings
    from nohold.decisions.install import routes_conf
    from nohold.dialplan import NOHOLD_CONF
    from nohold.install.run import InstallFailed, InstallOptions, nohold_exe
    from nohold.install.run import install as run_install

    config: Path = ctx.obj["config"] or DEFAULT_CONFIG
    settings = _settings(ctx) if config.exists() else registry.load_settings(None)
    ivr = settings.section(IvrSettings)
    routes = [o.route for m in ivr.menus.values() for o in m.options.values()] + [ivr.fallback]
    queues = list(dict.fromkeys(r.target for r in routes if r.kind == "queue"))
    people = list(dict.fromkeys(r.target for r in routes if r.kind == "person"))
    r = settings.routes
    opts = InstallOptions(
        asterisk_etc=asterisk_etc.resolve(), config=config.resolve(),
        state_dir=_install_state(config.resolve()), dialplan=NOHOLD_CONF.read_text(),
        routes=routes_conf(queues, people, operator, r.queue_context, r.person_context),
        route_contexts=(r.queue_context, r.person_context), rx=shlex.split(asterisk_rx),
        ari_user=ari_user, ami_user=ami_user, dry_run=dry_run, yes=yes, systemd=systemd,
        user=user, unit_dir=unit_dir, exe=nohold_exe())
    try:
        code = run_install(opts, click.echo, lambda q: click.confirm(q, default=False))
    except InstallFailed as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@main.command()
@click.option("--yes", is_flag=True, help="Do not ask before restoring.")
@click.option("--asterisk-rx", default="asterisk -rx", show_default=True)
@click.pass_context
def uninstall(ctx: click.Context, yes: bool, asterisk_rx: str) -> None:
    """Undo `nohold install`: every file it changed back as it was, the ones it created gone."""
    import shlex

    from nohold.install.run import InstallFailed, run_uninstall

    config: Path = ctx.obj["config"] or DEFAULT_CONFIG
    try:
        code = run_uninstall(_install_state(config.resolve()), shlex.split(asterisk_rx),
                             click.echo, yes, lambda q: click.confirm(q, default=False))
    except InstallFailed as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@main.group()
def sandbox() -> None:
    """A private Asterisk 22 for demos and tests."""


def _state_file(name: str) -> Path:
    return STATE_DIR / f"sandbox-{name}.json"


@sandbox.command("up")
@click.option("--name", default="default", show_default=True)
def sandbox_up(name: str) -> None:
    """Start it (building its Debian root on first use); writes a ready nohold config."""
    from nohold.sandbox import SandboxError, start_sandbox
    from nohold.sandbox.nohold_config import write_sandbox_config

    state = _state_file(name)
    if state.exists():
        raise click.ClickException(
            f"sandbox {name!r} is already up ({state}); `nohold sandbox down --name {name}` first"
        )
    try:
        box = start_sandbox(name, log=lambda m: click.echo(m, err=True), detach=True)
    except SandboxError as exc:
        raise click.ClickException(str(exc)) from None
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    box.save(state)
    config = write_sandbox_config(box, STATE_DIR / f"sandbox-{name}.toml")
    click.echo(f"sandbox {name!r} up: ARI {box.ari_url}, SIP 127.0.0.1:{box.sip_port}, "
               f"AMI 127.0.0.1:{box.ami_port}")
    click.echo(f"nohold config: {config}")


@sandbox.command("down")
@click.option("--name", default="default", show_default=True)
def sandbox_down(name: str) -> None:
    """Stop it and remove its run directory."""
    from nohold.sandbox import Sandbox

    state = _state_file(name)
    if not state.exists():
        click.echo(f"sandbox {name!r} is not up")
        return
    Sandbox.load(state).stop()
    # The config holds the dead sandbox's ARI password and AMI secret; the database
    # only made sense against it.
    config = STATE_DIR / f"sandbox-{name}.toml"
    for leftover in (state, config, config.with_suffix(".db"),
                     config.with_suffix(".db-wal"), config.with_suffix(".db-shm")):
        leftover.unlink(missing_ok=True)
    click.echo(f"sandbox {name!r} stopped")


@sandbox.command("status")
@click.option("--name", default="default", show_default=True)
def sandbox_status(name: str) -> None:
    """Say whether it runs, and where."""
    from nohold.sandbox import Sandbox

    state = _state_file(name)
    if not state.exists():
        click.echo(f"sandbox {name!r}: down")
        sys.exit(1)
    box = Sandbox.load(state)
    running = box.is_running()
    click.echo(f"sandbox {name!r}: {'running' if running else 'DEAD (run `nohold sandbox down`)'}"
               f" pid={box.pid} ARI {box.ari_url} SIP 127.0.0.1:{box.sip_port}")
    sys.exit(0 if running else 1)


@main.command()
def demo() -> None:
    """Sandbox Asterisk + nohold on SQLite + one scripted call; prints what the caller heard."""
    from nohold.demo import DemoError, run_demo

    try:
        sys.exit(asyncio.run(run_demo(echo=click.echo)))
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None


for _feature in registry.FEATURES:
    for _command in _feature.commands:
        main.add_command(_command)


if __name__ == "__main__":
    main()

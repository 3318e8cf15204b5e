"""`nohold install` and `nohold uninstall`, top to bottom as the admin sees them: the plan,
its diff, the question, the backups and writes, the reloads, what was done."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nohold.decisions.install import (
    DIALPLAN_FILE,
    InstallError,
    InstallPlan,
    InstallRequest,
    asterisk_toml,
    plan_install,
    reload_commands,
    systemd_unit,
    unified_diff,
)
from nohold.install.files import (
    InstallIOError,
    Manifest,
    apply_file,
    read_text,
    read_tree,
    uninstall,
)
from nohold.install.reload import reload_asterisk

CONF_D_FILE = "asterisk.toml"
MINIMAL_TOML = (
    "# nohold's configuration (written by `nohold install` because there was none).\n"
    "# The commented reference: config/nohold.example.toml. How nohold reaches Asterisk\n"
    "# is in conf.d/asterisk.toml beside this file.\n"
)


@dataclass(frozen=True)
class InstallOptions:
    asterisk_etc: Path
    config: Path  # nohold.toml
    state_dir: Path
    dialplan: str
    routes: str
    route_contexts: tuple[str, str]
    rx: Sequence[str]
    ari_user: str = "nohold"
    ami_user: str = "nohold"
    dry_run: bool = False
    yes: bool = False
    systemd: bool = False
    user: str = "nohold"
    unit_dir: Path = Path("/etc/systemd/system")
    exe: str = ""


class InstallFailed(RuntimeError):
    pass


def install(opts: InstallOptions, echo: Callable[[str], None],
            confirm: Callable[[str], bool]) -> int:
    try:
        files = read_tree(opts.asterisk_etc)
        plan = plan_install(files, InstallRequest(
            dialplan=opts.dialplan, routes=opts.routes, route_contexts=opts.route_contexts,
            ari_user=opts.ari_user, ami_user=opts.ami_user,
            new_ari_password=secrets.token_urlsafe(24),
            new_ami_secret=secrets.token_urlsafe(24), etc_dir=str(opts.asterisk_etc)))
    except (InstallError, InstallIOError) as exc:
        raise InstallFailed(str(exc)) from None

    ours = _nohold_files(opts, plan)
    kind = ("FreePBX: only the *_custom.conf files it leaves to admins"
            if plan.layout == "freepbx" else "plain Asterisk")
    echo(f"Asterisk config: {opts.asterisk_etc} ({kind})")
    for note in plan.notes:
        echo(f"note: {note}")
    if not plan.changes and not ours:
        echo("nothing to change: nohold is installed and current")
        return 0
    for change in plan.changes:
        echo(f"--- {change.name}: {change.why}")
        if change.name == DIALPLAN_FILE:
            echo(f"    ({'new file' if change.created else 'replaced'}: the product's "
                 f"dialplan/nohold.conf, {change.after.count(chr(10))} lines)")
            continue
        echo(_redact(unified_diff(change, str(opts.asterisk_etc)), plan).rstrip("\n"))
    for path, text, _mode in ours:
        verb = "create" if not path.exists() else "update"
        echo(f"--- {verb} {path}")
        echo(_redact(text, plan).rstrip("\n"))
    if opts.dry_run:
        echo("dry run: nothing written")
        return 0
    if not opts.yes and not confirm("Write these changes (a backup of each file is kept)?"):
        echo("nothing written")
        return 1

    opts.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    manifest = Manifest.load(opts.state_dir) or Manifest(str(opts.asterisk_etc), plan.layout)
    if manifest.asterisk_etc != str(opts.asterisk_etc):
        raise InstallFailed(f"{opts.state_dir} already holds an install into "
                            f"{manifest.asterisk_etc}: uninstall it first or use --state-dir")
    like = opts.asterisk_etc / "extensions.conf"
    for change in plan.changes:
        path = opts.asterisk_etc / change.name
        apply_file(manifest, opts.state_dir, path, change.after, like=like)
        echo(f"wrote {path}")
    for path, text, mode in ours:
        apply_file(manifest, opts.state_dir, path, text, mode=mode)
        echo(f"wrote {path}")
    share_with_user([p for p, _, _ in ours if p.suffix == ".toml"], opts.user)
    _, lines = reload_asterisk(plan.reloads, opts.rx)
    for line in lines:
        echo(line)
    echo(f"backups and the undo list: {opts.state_dir} (`nohold uninstall` restores them)")
    if opts.systemd:
        echo(f"then: systemctl daemon-reload && systemctl enable --now nohold "
             "nohold-watchdog "
             f"(runs as {opts.user}; state in /var/lib/nohold, owned by {opts.user})")
    echo(f"next: nohold -c {opts.config} db upgrade && nohold -c {opts.config} prompts build "
         f"&& nohold -c {opts.config} check")
    return 0


def _nohold_files(opts: InstallOptions, plan: InstallPlan) -> list[tuple[Path, str, int]]:
    """nohold's own files that differ from what install would write."""
    wanted: list[tuple[Path, str, int]] = []
    if not opts.config.exists():
        wanted.append((opts.config, MINIMAL_TOML, 0o640))
    conf_d = opts.config.parent / "conf.d" / CONF_D_FILE
    wanted.append((conf_d, asterisk_toml(plan), 0o640))
    if opts.systemd:
        if not opts.exe:
            raise InstallFailed("--systemd: cannot tell where the `nohold` command is; "
                                "run install through it (e.g. /opt/nohold/.venv/bin/nohold)")
        try:
            pwd.getpwnam(opts.user)
        except KeyError:
            raise InstallFailed(
                f"--systemd: no user {opts.user!r}; create it first: useradd --system "
                f"--home-dir /var/lib/nohold --shell /usr/sbin/nologin {opts.user}") from None
        wanted.append((opts.unit_dir / "nohold.service",
                       systemd_unit(opts.exe, str(opts.config), opts.user), 0o644))
        # Its own process: it gets callers out of an app no nohold serves (killed,
        # wedged, restarting), so it must not live or die with `nohold run`.
        wanted.append((opts.unit_dir / "nohold-watchdog.service",
                       systemd_unit(opts.exe, str(opts.config), opts.user,
                                    command="watchdog"), 0o644))
    return [(p, t, m) for p, t, m in wanted if not p.exists() or read_text(p) != t]


def share_with_user(paths: Sequence[Path], user: str) -> None:
    """nohold's config readable by the service's group (secrets: not by others)."""
    if os.geteuid() != 0:
        return
    try:
        gid = grp.getgrnam(user).gr_gid
    except KeyError:
        return
    for path in paths:
        if path.exists():
            os.chown(path, 0, gid)


def _redact(text: str, plan: InstallPlan) -> str:
    for secret in (plan.ari_password, plan.ami_secret):
        text = text.replace(secret, "<generated secret>")
    return text


def run_uninstall(state_dir: Path, rx: Sequence[str], echo: Callable[[str], None],
                  yes: bool, confirm: Callable[[str], bool]) -> int:
    manifest = Manifest.load(state_dir)
    if manifest is None:
        raise InstallFailed(f"nothing to undo: no install recorded in {state_dir}")
    echo(f"undo nohold's install into {manifest.asterisk_etc}:")
    for key in manifest.files:
        echo(f"  {key}")
    if not yes and not confirm("Restore these files?"):
        echo("nothing changed")
        return 1
    etc = Path(manifest.asterisk_etc)
    touched = [Path(k).name for k in manifest.files if Path(k).parent == etc]
    try:
        lines = uninstall(state_dir)
    except InstallIOError as exc:
        raise InstallFailed(str(exc)) from None
    for line in lines:
        echo(line)
    for parent in {*(Path(k).parent for k in manifest.files), state_dir}:
        if parent.name in ("conf.d", "install") and parent.is_dir() and not any(
                parent.iterdir()):
            parent.rmdir()
    _, reload_lines = reload_asterisk(reload_commands(touched), rx)
    for line in reload_lines:
        echo(line)
    return 0


def nohold_exe() -> str:
    """The `nohold` command being run, as an absolute path (a virtualenv's or the system's)."""
    beside = Path(sys.executable).parent / "nohold"
    if beside.exists():
        return str(beside)
    found = shutil.which("nohold")
    return str(Path(found).resolve()) if found else ""

"""One private, throw-away Asterisk 22 instance for tests, the demo and `nohold sandbox`.

Each instance gets its own asterisk.conf whose writable directories point into
a per-instance run dir (inside the root, so the chrooted Asterisk sees it),
free ports picked at start and random ARI/AMI passwords, so several instances
(two pytest sessions, a demo) coexist on one machine.

Classic AGI (`AGI(nohold-agi,...)`) needs nohold's Python, which the Debian root
does not have. The chrooted Asterisk runs in a mount namespace of its own
(`unshare --mount`), where the host's / is bound at `<run dir>/host`; the
`nohold-agi` script in its agi-bin chroots there and runs the checkout under test
with the Python running this code. The bind exists only in that namespace: the host
never sees it, and it goes with Asterisk (removing the run dir removes an empty
directory, never the host's files). Nothing may outlive its
owner: instances started without `detach=True` are stopped at interpreter exit,
and ones whose owner died without cleaning up (kill -9) are reaped by the next
start_sandbox() on the machine.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nohold.dialplan import NOHOLD_CONF
from nohold.sandbox.rootfs import ASTERISK_BIN, SandboxError, ensure_rootfs

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
BOOT_TIMEOUT = 60.0
_STATE_FILE = "instance.json"  # inside the run dir; used to reap orphans
_EXTRA_DIALPLAN = "nohold-sandbox-extra.conf"
_EXTRA_PJSIP = "pjsip-sandbox-extra.conf"
_LOG_FILE = "asterisk.out"
# `layout`s of start_sandbox(): the sandbox's own config with nohold's files, or an
# admin's tree without them (templates/<layout>/ over the sandbox's base, minus nohold's
# files), for `nohold install` to prepare.
LAYOUTS = ("nohold", "stock", "freepbx")
_NOHOLD_FILES = ("nohold-sandbox-routes.conf", _EXTRA_DIALPLAN, _EXTRA_PJSIP)
# The checkout whose nohold the sandbox's classic AGI runs (the code under test).
_CHECKOUT = Path(__file__).resolve().parents[2]
AGI_SCRIPT = "nohold-agi"

# Instances started (not detached) by this process; stopped at exit.
_OWNED: dict[int, Sandbox] = {}


@dataclass
class Sandbox:
    """A running sandbox Asterisk. Paths are host paths unless a method says otherwise."""

    name: str
    root: Path
    run_dir: Path
    sip_port: int
    http_port: int
    ami_port: int
    ari_user: str
    ari_password: str
    ami_user: str
    ami_password: str
    pid: int
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def prompts_dir(self) -> Path:
        """Where nohold writes prompt audio so this Asterisk can play it."""
        return self.run_dir / "prompts"

    @property
    def etc_dir(self) -> Path:
        """Its Asterisk config directory (host path)."""
        return self.run_dir / "etc"

    def asterisk_rx(self) -> list[str]:
        """The command that runs one CLI command in it (`asterisk -rx` in its root)."""
        cmd = [ASTERISK_BIN, "-C", self.in_asterisk(self.conf_path), "-rx"]
        return cmd if _is_host_root(self.root) else ["chroot", str(self.root), *cmd]

    @property
    def agi_bin(self) -> Path:
        """Asterisk's astagidir: `AGI(nohold-agi,...)` runs the script there."""
        return self.run_dir / "agi-bin"

    @property
    def conf_path(self) -> Path:
        return self.run_dir / "etc" / "asterisk.conf"

    @property
    def log_path(self) -> Path:
        """Asterisk's stdout/stderr (console log)."""
        return self.run_dir / _LOG_FILE

    @property
    def messages_log(self) -> Path:
        """Asterisk's messages log incl. verbose(3): dialplan steps, for debugging tests."""
        return self.run_dir / "log" / "messages.log"

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of messages.log (warnings and dialplan steps): for test failure output."""
        try:
            text = self.messages_log.read_text(errors="replace")
        except OSError:
            return "(no messages.log)"
        return "\n".join(text.splitlines()[-lines:])

    def in_asterisk(self, host_path: Path) -> str:
        """`host_path` as the (possibly chrooted) Asterisk sees it."""
        return _in_root(self.root, Path(host_path))

    def cli(self, command: str, timeout: float = 10) -> str:
        """Run an Asterisk CLI command (`asterisk -rx`) and return its output."""
        proc = _remote(self.root, self.conf_path, command, timeout)
        if proc.returncode != 0:
            raise SandboxError(
                f"asterisk -rx {command!r} failed (exit {proc.returncode}): "
                f"{(proc.stdout + proc.stderr).strip()}"
            )
        return proc.stdout

    def add_dialplan(self, text: str) -> None:
        """Append dialplan (e.g. a test context) and reload, so a session-wide sandbox
        can serve tests that need their own contexts."""
        with open(self.run_dir / "etc" / _EXTRA_DIALPLAN, "a") as f:
            f.write("\n" + text.strip("\n") + "\n")
        out = self.cli("dialplan reload")
        logger.debug("dialplan reload: %s", out.strip())

    def add_pjsip(self, text: str) -> None:
        """Append PJSIP sections (e.g. a trunk to a SIPp callee on a test's own port) and
        reload res_pjsip, so a session-wide sandbox can serve tests that need their own
        endpoints."""
        with open(self.run_dir / "etc" / _EXTRA_PJSIP, "a") as f:
            f.write("\n" + text.strip("\n") + "\n")
        out = self.cli("module reload res_pjsip.so")
        logger.debug("pjsip reload: %s", out.strip())

    def wait_fully_booted(self, timeout: float = BOOT_TIMEOUT) -> None:
        """After `core restart now`: until Asterisk says it is fully booted (asked,
        not slept for). Raises SandboxError when it does not come back in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if "fully booted" in self.cli("core waitfullybooted", timeout=10).lower():
                    return
            except (subprocess.SubprocessError, OSError, SandboxError):
                pass
            time.sleep(0.2)
        raise SandboxError(f"sandbox {self.name!r} did not come back within {timeout:g}s")

    def is_running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return _is_our_asterisk(self.pid, self.conf_path)

    def stop(self) -> None:
        """`core stop now`, SIGKILL if it lingers, then remove the run dir. Idempotent."""
        _OWNED.pop(id(self), None)
        if self.is_running():
            if (self.run_dir / "run" / "asterisk.ctl").exists():
                try:
                    _remote(self.root, self.conf_path, "core stop now", 5)
                except (subprocess.TimeoutExpired, OSError) as exc:
                    logger.warning("sandbox %s: core stop now failed: %s", self.name, exc)
            if not _wait_gone(self, 5.0):
                logger.warning("sandbox %s: pid %s still alive, killing", self.name, self.pid)
                _killpg(self.pid)
                _wait_gone(self, 5.0)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.run_dir, ignore_errors=True)
        logger.info("sandbox %s stopped", self.name)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        d["root"] = str(self.root)
        d["run_dir"] = str(self.run_dir)
        return d

    def save(self, path: Path) -> None:
        """Write JSON state so another process (the CLI) can find and stop this instance."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Sandbox:
        raw = json.loads(Path(path).read_text())
        names = {f.name for f in fields(cls) if not f.name.startswith("_")}
        d = {k: v for k, v in raw.items() if k in names}
        d["root"] = Path(d["root"])
        d["run_dir"] = Path(d["run_dir"])
        return cls(**d)


def start_sandbox(
    name: str = "default",
    extra_dialplan: str = "",
    log: Callable[[str], None] = logger.info,
    *,
    detach: bool = False,
    extra_config: Mapping[str, str] | None = None,
    layout: str = "nohold",
) -> Sandbox:
    """Start a private Asterisk and wait until it is fully booted and ARI answers.

    `extra_config` maps a template's file name to text appended to it, e.g.
    `{"queues.conf": "[myqueue]\\nstrategy = ringall\\n"}` for a test's own queue.
    In it and in `extra_dialplan`, `@@PROMPTS@@` is the prompts directory as this
    Asterisk sees it (e.g. `periodic-announce = @@PROMPTS@@/callback_offer`), and
    `@@RUN@@` its run directory: both are only known once the instance is named.

    `detach=True` is for `nohold sandbox up`: the instance outlives this process
    and must be stopped with Sandbox.load(state).stop(). Otherwise it is stopped
    at exit and reaped by a later start if this process is killed.

    `layout="stock"` (or `"freepbx"`, a tree shaped like FreePBX's generated files)
    starts Asterisk on an admin's config tree without nohold's files, no ARI user and
    no AMI user (the sandbox's passwords do not work until `nohold install` adds its
    own): readiness is then `core waitfullybooted` alone.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: one of {', '.join(LAYOUTS)}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        # it names a directory, and the control socket path must stay under 108 bytes
        raise ValueError(f"sandbox name {name!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    root = ensure_rootfs(log)
    runs = Path(root, "run", "nohold")
    try:
        runs.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise SandboxError(f"cannot create {runs}: run the sandbox as root") from None
    reap_orphans(root)
    run_dir = runs / f"{name}-{secrets.token_hex(4)}"
    # spool/recording: ARI recordings go there, and Asterisk does not create it.
    for sub in ("etc", "lib/keys", "cache", "spool/recording", "run", "log", "prompts",
                "agi-bin", "host"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)

    ports = _free_ports()
    sb = Sandbox(
        name=name,
        root=root,
        run_dir=run_dir,
        sip_port=ports[0],
        http_port=ports[1],
        ami_port=ports[2],
        ari_user="nohold",
        ari_password=secrets.token_urlsafe(16),
        ami_user="nohold",
        ami_password=secrets.token_urlsafe(16),
        pid=0,
    )
    try:
        _write_config(sb, extra_dialplan, extra_config or {}, layout)
        cmd = [ASTERISK_BIN, "-C", sb.in_asterisk(sb.conf_path), "-f", "-n"]
        if not _is_host_root(root):
            cmd = ["chroot", str(root), *cmd]
            if _can_unshare_mounts():
                # The host's / inside Asterisk's own mount namespace, for classic AGI
                # (exec keeps the pid: it is Asterisk's once booted).
                cmd = ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                       'mount --rbind / "$0" && exec "$@"', str(run_dir / "host"), *cmd]
            else:
                log("sandbox: no mount namespace here (unshare --mount failed): "
                    "AGI(nohold-agi,...) cannot run in this sandbox")
        log(f"starting sandbox Asterisk {name!r} (SIP {sb.sip_port}, ARI {sb.http_port})")
        logger.debug("running %s", cmd)
        with open(sb.log_path, "wb") as out:
            sb._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg never hits us
                close_fds=True,
            )
        sb.pid = sb._proc.pid
        _write_state(sb, detach)
        if not detach:
            _OWNED[id(sb)] = sb
        started = time.monotonic()
        _wait_booted(sb, ari=layout == "nohold")
        log(f"sandbox {name!r} ready in {time.monotonic() - started:.1f}s at {sb.ari_url}")
        return sb
    except BaseException:
        sb.stop()
        raise


def reap_orphans(root: Path) -> None:
    """Stop instances whose owning process died without stopping them (kill -9, crash).

    Detached instances (`nohold sandbox up`) and ones whose owner still lives are kept.
    """
    runs = Path(root, "run", "nohold")
    for state_file in runs.glob(f"*/{_STATE_FILE}"):
        try:
            st = json.loads(state_file.read_text())
        except (OSError, ValueError):
            continue
        if st.get("detached"):
            continue
        if _proc_start_time(st.get("owner_pid", 0)) == st.get("owner_start"):
            continue  # owner alive
        sb = Sandbox.load(state_file)
        logger.warning("reaping orphaned sandbox %s (pid %s)", sb.name, sb.pid)
        sb.stop()


def _stop_owned() -> None:
    for sb in list(_OWNED.values()):
        try:
            sb.stop()
        except Exception:  # noqa: BLE001 - at exit, stop the rest anyway
            logger.exception("stopping sandbox %s at exit failed", sb.name)


atexit.register(_stop_owned)


def _write_state(sb: Sandbox, detached: bool) -> None:
    st = sb.to_dict()
    st.update(
        detached=detached,
        owner_pid=os.getpid(),
        owner_start=_proc_start_time(os.getpid()),
    )
    (sb.run_dir / _STATE_FILE).write_text(json.dumps(st))


def _write_config(sb: Sandbox, extra_dialplan: str, extra_config: Mapping[str, str],
                  layout: str = "nohold") -> None:
    values = {
        "RUN": sb.in_asterisk(sb.run_dir),
        "NAME": sb.name,
        "SIP_PORT": str(sb.sip_port),
        "HTTP_PORT": str(sb.http_port),
        "AMI_PORT": str(sb.ami_port),
        "ARI_USER": sb.ari_user,
        "ARI_PASSWORD": sb.ari_password,
        "AMI_USER": sb.ami_user,
        "AMI_PASSWORD": sb.ami_password,
        "PROMPTS": sb.in_asterisk(sb.prompts_dir),
    }

    def fill(text: str) -> str:
        for key, value in values.items():
            text = text.replace(f"@@{key}@@", value)
        return text

    etc = sb.run_dir / "etc"
    _write_agi_script(sb)
    if layout != "nohold":
        if extra_dialplan or extra_config:
            raise ValueError("extra_dialplan/extra_config need the sandbox's own layout")
        templates = {t.name: t for t in TEMPLATES.glob("*.conf") if t.name not in _NOHOLD_FILES}
        for overlay in ("stock", layout):
            templates.update({t.name: t for t in (TEMPLATES / overlay).glob("*.conf")})
        for name, tpl in sorted(templates.items()):
            (etc / name).write_text(fill(tpl.read_text()))
        _copy_indications(sb, etc)
        return
    for tpl in sorted(TEMPLATES.glob("*.conf")):
        (etc / tpl.name).write_text(fill(tpl.read_text()))
    shutil.copyfile(NOHOLD_CONF, etc / "nohold.conf")
    _copy_indications(sb, etc)
    if extra_dialplan:
        with open(etc / _EXTRA_DIALPLAN, "a") as f:
            f.write("\n" + fill(extra_dialplan).strip("\n") + "\n")
    for file_name, text in extra_config.items():
        if not (TEMPLATES / file_name).is_file():
            raise ValueError(f"extra_config: {file_name!r} is not a sandbox config file")
        with open(etc / file_name, "a") as f:
            f.write("\n" + fill(text).strip("\n") + "\n")


def _copy_indications(sb: Sandbox, etc: Path) -> None:
    # Tones (ringback, busy) per country: the package's file, when the root has one.
    indications = Path(sb.root, "etc", "asterisk", "indications.conf")
    if indications.is_file():
        shutil.copyfile(indications, etc / "indications.conf")


def _write_agi_script(sb: Sandbox) -> None:
    """`nohold-agi` in the agi-bin: nohold's classic AGI with the host's Python."""
    run = [sys.executable, "-m", "nohold.agi_cli"]
    if not _is_host_root(sb.root):
        run = ["/usr/sbin/chroot", sb.in_asterisk(sb.run_dir / "host"), *run]
    script = sb.agi_bin / AGI_SCRIPT
    script.write_text(
        "#!/bin/sh\n"
        "# nohold sandbox (nohold/sandbox/instance.py): classic AGI runs the checkout under\n"
        "# test with the host's Python; a chrooted Asterisk sees the host's / at <run>/host.\n"
        f"export PYTHONPATH={_sh(str(_CHECKOUT))}\n"
        f"exec {' '.join(_sh(arg) for arg in run)} \"$@\"\n")
    script.chmod(0o755)


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@functools.cache
def _can_unshare_mounts() -> bool:
    """A private mount namespace with a bind works here (root, not a locked container)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                            "mount --bind / /mnt || mount --bind / /tmp"],
                           capture_output=True, check=False, timeout=10)
    return probe.returncode == 0


def _wait_booted(sb: Sandbox, ari: bool = True) -> None:
    """Wait for `core waitfullybooted` and (`ari`) a working ARI login; never a sleep."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    ctl = sb.run_dir / "run" / "asterisk.ctl"
    booted = False
    while time.monotonic() < deadline:
        if not sb.is_running():
            raise SandboxError(
                f"sandbox Asterisk {sb.name!r} exited during start "
                f"(exit {sb._proc.poll() if sb._proc else '?'}). Log tail:\n{_tail(sb)}"
            )
        if not booted and ctl.exists():
            try:
                proc = _remote(sb.root, sb.conf_path, "core waitfullybooted", 10)
                booted = proc.returncode == 0 and "fully booted" in proc.stdout
            except subprocess.TimeoutExpired:
                pass
        if booted and not ari:
            return
        if booted:
            status = _ari_status(sb)
            if status == 200:
                return
            if status is not None:  # fully booted, so every module that will load has
                raise SandboxError(
                    f"sandbox {sb.name!r} booted but GET /ari/asterisk/info returned {status} "
                    f"(401: ARI user not accepted, 404: res_ari not loaded). Log tail:\n{_tail(sb)}"
                )
        time.sleep(0.1)
    raise SandboxError(
        f"sandbox Asterisk {sb.name!r} not ready after {BOOT_TIMEOUT:.0f}s "
        f"(fully booted: {booted}). Log tail:\n{_tail(sb)}"
    )


def _ari_status(sb: Sandbox) -> int | None:
    req = urllib.request.Request(f"{sb.ari_url}/ari/asterisk/info")
    token = b64encode(f"{sb.ari_user}:{sb.ari_password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _tail(sb: Sandbox, lines: int = 30) -> str:
    try:
        text = sb.log_path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _remote(
    root: Path, conf: Path, command: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    cmd = [ASTERISK_BIN, "-C", _in_root(root, conf), "-rx", command]
    if not _is_host_root(root):
        cmd = ["chroot", str(root), *cmd]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
    )


def _is_host_root(root: Path) -> bool:
    return Path(root).resolve() == Path("/")


def _in_root(root: Path, host_path: Path) -> str:
    if _is_host_root(root):
        return str(host_path)
    try:
        rel = Path(host_path).relative_to(root)
    except ValueError:
        raise SandboxError(f"{host_path} is outside the sandbox root {root}") from None
    return "/" + str(rel)


def _free_ports() -> tuple[int, int, int]:
    """(SIP/UDP, HTTP/TCP, AMI/TCP): ports the kernel just handed out, all distinct."""
    chosen: list[int] = []
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM, socket.SOCK_STREAM):
        while True:
            port = free_port(kind)
            if port not in chosen:
                chosen.append(port)
                break
    return chosen[0], chosen[1], chosen[2]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that is free right now (bind to port 0)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_start_time(pid: int) -> str | None:
    """Process start time from /proc, to tell a live owner from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if fields[0] != "Z" else None


def _is_our_asterisk(pid: int, conf: Path) -> bool:
    if pid <= 0 or _proc_start_time(pid) is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # In chroot mode cmdline has the in-root path; match on the run dir's unique tail.
    tail = conf.parent.parent.name.encode() + b"/etc/asterisk.conf"
    return any(arg.endswith(tail) for arg in cmdline)


def _wait_gone(sb: Sandbox, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sb.is_running():
            return True
        time.sleep(0.05)
    return not sb.is_running()


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

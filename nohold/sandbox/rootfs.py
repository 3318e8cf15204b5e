"""The root directory a sandbox Asterisk runs from.

Debian 12 has no `asterisk` package and adding sid to the host's apt sources
would upgrade libc, OpenSSL and Python, so by default we debootstrap a private
sid root that contains only Asterisk and its sounds, cached outside the
checkout (keyed by package list + suite) so that only the first run on a
machine pays the ~45 s build. A host that already runs Asterisk (a user's PBX)
sets NOHOLD_ASTERISK_ROOT=/ and the system binary is used without chroot.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


class SandboxError(RuntimeError):
    """The sandbox cannot run; the message says what to install or do."""


SUITE = "sid"
PACKAGES: tuple[str, ...] = (
    "asterisk",
    "asterisk-modules",
    "asterisk-core-sounds-en-gsm",
    "asterisk-moh-opsound-gsm",
)
FALLBACK_MIRROR = "http://deb.debian.org/debian"
ASTERISK_BIN = "/usr/sbin/asterisk"
# Written last into a finished root: a root without it is never used.
_COMPLETE_MARKER = ".nohold-rootfs-complete"


def cache_dir() -> Path:
    """Where built roots live: outside the checkout, shared by all checkouts."""
    return Path(os.environ.get("NOHOLD_CACHE_DIR") or "/var/cache/nohold")


def rootfs_key(packages: tuple[str, ...] = PACKAGES, suite: str = SUITE) -> str:
    """Short hash of what goes into the root, so a changed package list gets a new root."""
    text = suite + "\n" + "\n".join(sorted(packages))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def rootfs_path() -> Path:
    """The cache path of the debootstrapped root for the current package list."""
    return cache_dir() / f"rootfs-{rootfs_key()}"


def host_mirror(
    sources_dir: Path = Path("/etc/apt/sources.list.d"),
    sources_list: Path = Path("/etc/apt/sources.list"),
) -> str:
    """First non-security Debian mirror URI from the host's apt sources.

    Using the mirror the host already reaches keeps builds working behind
    proxies and local mirrors; deb.debian.org is the fallback.
    """
    uris: list[str] = []
    for f in sorted(sources_dir.glob("*.sources")) if sources_dir.is_dir() else []:
        for line in _read(f).splitlines():
            m = re.match(r"^\s*URIs\s*:\s*(.+)$", line, re.IGNORECASE)
            if m:
                uris.extend(m.group(1).split())
    for line in _read(sources_list).splitlines():
        m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line)
        if m:
            uris.append(m.group(1))
    for uri in uris:
        if "security" in uri or "debian" not in uri:
            continue
        return uri.rstrip("/")
    return FALLBACK_MIRROR


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _is_usable(root: Path) -> bool:
    return (root / _COMPLETE_MARKER).exists() and (root / ASTERISK_BIN.lstrip("/")).exists()


def ensure_rootfs(log: Callable[[str], None] = logger.info) -> Path:
    """Return the root directory Asterisk runs from, building it on first use.

    Honors NOHOLD_ASTERISK_ROOT (e.g. "/" on a host with Asterisk installed).
    Otherwise builds into a temp dir next to the cache path and renames it
    atomically, under an fcntl lock so concurrent test sessions build once.
    """
    override = os.environ.get("NOHOLD_ASTERISK_ROOT")
    if override:
        root = Path(override)
        if not (root / ASTERISK_BIN.lstrip("/")).exists():
            raise SandboxError(
                f"NOHOLD_ASTERISK_ROOT={override} but {root / ASTERISK_BIN.lstrip('/')} does not "
                "exist: install Asterisk there or unset NOHOLD_ASTERISK_ROOT to use a "
                "debootstrapped root"
            )
        return root

    target = rootfs_path()
    if _is_usable(target):
        return target

    if os.geteuid() != 0:
        raise SandboxError(
            "building the Asterisk sandbox root needs root (debootstrap and chroot): run as "
            "root, or set NOHOLD_ASTERISK_ROOT=/ on a host that has Asterisk 22 installed"
        )
    if shutil.which("debootstrap") is None:
        raise SandboxError(
            "debootstrap not found: `apt-get install debootstrap` (it builds a private "
            "Debian sid root with Asterisk), or set NOHOLD_ASTERISK_ROOT=/ on a host that "
            "has Asterisk 22 installed"
        )

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if _is_usable(target):
            return target
        # Under the lock no one else is building: leftovers are from a killed build.
        for stale in target.parent.glob(f".{target.name}.build-*"):
            log(f"removing unfinished build {stale}")
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # incomplete (no marker): replace it
            shutil.rmtree(target)
        _build(target, log)
    return target


def _build(target: Path, log: Callable[[str], None]) -> None:
    mirror = host_mirror()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    cmd = [
        "debootstrap",
        "--variant=minbase",
        "--include=" + ",".join(PACKAGES),
        SUITE,
        str(tmp),
        mirror,
    ]
    log(f"building Asterisk sandbox root {target} from {mirror} (about a minute, once)")
    logger.info("running %s", cmd)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not (tmp / ASTERISK_BIN.lstrip("/")).exists():
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise SandboxError(
                f"debootstrap of {SUITE} from {mirror} failed (exit {proc.returncode}); check "
                f"network access to the mirror. Last output:\n{tail}"
            )
        (tmp / _COMPLETE_MARKER).write_text(" ".join(PACKAGES) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp made it 0700; a root dir is world-readable
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"Asterisk sandbox root ready at {target}")

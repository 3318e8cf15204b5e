"""Reading an Asterisk config tree, writing the plan with a backup of every file it
changes, and undoing it byte for byte (`nohold uninstall`).

The manifest (`<state dir>/manifest.json`) lists every file install created or changed,
with the SHA-256 of what it wrote. Uninstall restores the backup of a file that is
still as install left it; one the admin changed since keeps their change and loses
only nohold's marked block (said so); a created file is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nohold.decisions.install import without_block

MANIFEST = "manifest.json"
_MAX_FILES = 2000
_MAX_BYTES = 4 * 1024 * 1024


class InstallIOError(RuntimeError):
    """A file could not be read or written; the message names it."""


def read_text(path: Path) -> str:
    # newline="": CRLF files stay CRLF; surrogateescape: odd bytes survive a rewrite.
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        return f.read()


def read_tree(etc: Path) -> dict[str, str]:
    """Every *.conf under `etc` (subdirectories too, for `#include dir/*.conf`)."""
    if not etc.is_dir():
        raise InstallIOError(f"{etc}: not a directory (--asterisk-etc names Asterisk's "
                             "config directory, e.g. /etc/asterisk)")
    files: dict[str, str] = {}
    for path in sorted(etc.rglob("*.conf")):
        if not path.is_file() or path.stat().st_size > _MAX_BYTES:
            continue
        if len(files) >= _MAX_FILES:
            break
        try:
            files[path.relative_to(etc).as_posix()] = read_text(path)
        except OSError as exc:
            raise InstallIOError(f"{path}: {exc.strerror}") from None
    return files


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Entry:
    created: bool
    backup: str | None
    written_sha256: str


@dataclass
class Manifest:
    asterisk_etc: str
    layout: str
    files: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> Manifest | None:
        path = state_dir / MANIFEST
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        return cls(raw["asterisk_etc"], raw["layout"],
                   {k: Entry(**v) for k, v in raw["files"].items()})

    def save(self, state_dir: Path) -> None:
        data = {"asterisk_etc": self.asterisk_etc, "layout": self.layout,
                "files": {k: asdict(v) for k, v in self.files.items()}}
        atomic_write(state_dir / MANIFEST, (json.dumps(data, indent=2) + "\n").encode(),
                     mode=0o600)


def atomic_write(path: Path, data: bytes, mode: int | None = None,
                 like: os.stat_result | None = None) -> None:
    """Write `data` to `path` through a temporary file and a rename, keeping the mode and
    owner of the file it replaces (`like`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if like is not None:
            os.chmod(tmp, like.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(tmp, like.st_uid, like.st_gid)
        elif mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply_file(manifest: Manifest, state_dir: Path, path: Path, text: str,
               mode: int | None = None, like: Path | None = None) -> None:
    """Write `text` to `path`, first saving the original (once: a later run keeps the
    first backup, the file as it was before nohold)."""
    key = str(path)
    data = text.encode("utf-8", errors="surrogateescape")
    if key not in manifest.files:
        if path.exists():
            backup = state_dir / "backup" / f"{len(manifest.files):03d}-{path.name}"
            backup.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(path, backup)
            manifest.files[key] = Entry(False, str(backup), "")
        else:
            manifest.files[key] = Entry(True, None, "")
    stat = path.stat() if path.exists() else (like.stat() if like and like.exists() else None)
    atomic_write(path, data, mode=mode, like=stat if mode is None else None)
    manifest.files[key].written_sha256 = sha256(data)
    manifest.save(state_dir)


def uninstall(state_dir: Path) -> list[str]:
    """Undo every change the manifest lists; what was done, one line each."""
    manifest = Manifest.load(state_dir)
    if manifest is None:
        raise InstallIOError(f"no {state_dir / MANIFEST}: nothing nohold installed to undo "
                             "(or another --state-dir)")
    lines: list[str] = []
    for key, entry in reversed(list(manifest.files.items())):
        path = Path(key)
        current = path.read_bytes() if path.exists() else None
        untouched = current is not None and sha256(current) == entry.written_sha256
        if entry.created:
            if current is None:
                lines.append(f"{path}: already gone")
            elif untouched:
                path.unlink()
                lines.append(f"{path}: removed (nohold created it)")
            else:
                lines.append(f"{path}: KEPT, changed since nohold wrote it; remove it "
                             "yourself if you no longer need it")
            continue
        assert entry.backup is not None
        if untouched or current is None:
            shutil.copy2(entry.backup, path)
            lines.append(f"{path}: restored as it was before nohold")
        else:
            text = current.decode("utf-8", errors="surrogateescape")
            stripped = without_block(text, path.name)
            atomic_write(path, stripped.encode("utf-8", errors="surrogateescape"),
                         like=path.stat())
            lines.append(f"{path}: changed since install, so only nohold's block was "
                         f"removed (the original is in {entry.backup})")
            continue
    shutil.rmtree(state_dir / "backup", ignore_errors=True)
    (state_dir / MANIFEST).unlink()
    return lines

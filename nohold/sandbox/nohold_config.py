"""A nohold config pointing at a running sandbox: the built-in defaults plus where things are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nohold.sandbox.instance import Sandbox


def sandbox_overrides(box: Sandbox, database_url: str) -> dict[str, Any]:
    from nohold.sandbox.instance import free_port

    return {
        # A free port: the machine may already run a nohold (or anything) on 4573.
        "agi": {"port": free_port()},
        "ari": {"url": box.ari_url, "user": box.ari_user, "password": box.ari_password},
        "ami": {"enabled": True, "port": box.ami_port, "user": box.ami_user,
                "secret": box.ami_password},
        "database": {"url": database_url},
        "prompts": {
            "dir": str(box.prompts_dir),
            "asterisk_dir": box.in_asterisk(box.prompts_dir),
        },
    }


def to_toml(data: dict[str, Any]) -> str:
    """Enough TOML for nested tables of strings, numbers, booleans and lists."""
    lines: list[str] = []

    def emit(prefix: str, table: dict[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in table.items() if isinstance(v, dict)}
        if prefix and scalars:
            lines.append(f"[{prefix}]")
        for key, value in scalars.items():
            lines.append(f"{_key(key)} = {_value(value)}")
        if scalars:
            lines.append("")
        for key, value in tables.items():
            emit(f"{prefix}.{_key(key)}" if prefix else _key(key), value)

    emit("", data)
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    # Tables inside lists are inline tables ({ window = "18:00-20:00", agents = 2 }).
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def write_sandbox_config(box: Sandbox, path: Path, extra: dict[str, Any] | None = None) -> Path:
    db = path.with_suffix(".db")
    data = sandbox_overrides(box, f"sqlite:///{db}")
    for section, values in (extra or {}).items():
        data.setdefault(section, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Written by `nohold sandbox up`: nohold against the sandbox Asterisk.\n" + to_toml(data)
    )
    path.chmod(0o600)  # holds the sandbox's ARI password and AMI secret
    return path

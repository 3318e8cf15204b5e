"""[ami] settings: the long-lived AMI connection owned by `nohold run`.

The secret may come from the environment (NOHOLD_AMI_SECRET) so it stays out of
a world-readable TOML file; the environment wins over the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nohold.config import HOST, ConfigError, Table, bounded

SECRET_ENV = "NOHOLD_AMI_SECRET"
# manager.conf user names are section names: no brackets, no spaces, no ';'.
_USER = re.compile(r"^[A-Za-z0-9_.@-]{1,80}$")


@dataclass(frozen=True)
class AmiSettings:
    # Off in the built-in defaults, which must run as they are: a manager.conf user
    # and its secret are the admin's to create. The IVR needs no AMI.
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 5038
    user: str = "nohold"
    secret: str = ""
    connect_timeout: float = 5.0
    action_timeout: float = 10.0

    def __repr__(self) -> str:
        # settings end up in logs and tracebacks: never the secret
        return (
            f"AmiSettings(enabled={self.enabled}, host={self.host!r}, port={self.port}, "
            f"user={self.user!r}, secret={'***' if self.secret else ''!r}, "
            f"connect_timeout={self.connect_timeout}, action_timeout={self.action_timeout})"
        )


def parse_ami_settings(raw: Mapping[str, Any] | Table, env: Mapping[str, str]) -> AmiSettings:
    """Validate the [ami] table (`raw`, may be empty) plus NOHOLD_AMI_SECRET from `env`."""
    t = raw if isinstance(raw, Table) else Table(dict(raw), "ami")
    enabled = t.get("enabled", bool, AmiSettings.enabled)
    host = t.get("host", str, AmiSettings.host)
    port = t.integer("port", AmiSettings.port, 1, 65535)
    user = t.get("user", str, AmiSettings.user)
    secret = t.get("secret", str, AmiSettings.secret)
    connect_timeout = bounded(t, "connect_timeout", AmiSettings.connect_timeout, 0.1, 120)
    action_timeout = bounded(t, "action_timeout", AmiSettings.action_timeout, 0.1, 300)
    t.done()
    if not HOST.match(host):
        raise ConfigError(f"ami.host = {host!r}: expected a host name or IP address")
    if not _USER.match(user):
        raise ConfigError(
            f"ami.user = {user!r}: expected a manager.conf user name "
            "(letters, digits, '_', '.', '@', '-')"
        )
    if env.get(SECRET_ENV):
        secret = env[SECRET_ENV]
    if enabled and not secret:
        raise ConfigError(
            f"ami.secret is empty: set ${SECRET_ENV} (or ami.secret) to the secret of "
            f"[{user}] in Asterisk's manager.conf, or set ami.enabled = false"
        )
    if any(c in secret for c in "\r\n"):
        # a newline would end the Login action early and inject AMI headers
        raise ConfigError("ami.secret contains a line break: not allowed")
    return AmiSettings(
        enabled=enabled,
        host=host,
        port=port,
        user=user,
        secret=secret,
        connect_timeout=connect_timeout,
        action_timeout=action_timeout,
    )

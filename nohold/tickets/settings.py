"""The `[tickets]` section: the partner's tickets by signed webhook and by email.

    [tickets]
    enabled = true
    secret = ""               # shared with the partner; $NOHOLD_TICKETS_SECRET wins
    previous_secret = ""      # also accepted while the partner moves to a new one
                              # ($NOHOLD_TICKETS_PREVIOUS_SECRET wins)
    max_age = 300             # seconds a signed request is valid, either way of now
    default_region = "PL"     # for numbers the partner sends without +country
    webhook = true            # POST /v1/partner/tickets on the [http] server

    [tickets.imap]            # the second channel: a mailbox nohold polls
    enabled = false
    host = "imap.example.net"
    port = 993
    security = "tls"          # tls (IMAPS) | starttls | none (loopback hosts only)
    user = "tickets@example.net"
    password = ""             # $NOHOLD_TICKETS_IMAP_PASSWORD wins
    mailbox = "INBOX"
    processed = "nohold-processed"   # read mails are moved here
    rejected = "nohold-rejected"     # mails that cannot become a ticket, moved here
    senders = ["tickets@partner.example"]  # or "@partner.example": the domain
    poll_seconds = 60
    timeout = 30              # seconds for one IMAP command

Secrets are never echoed: errors name the key (or variable) and the length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import phonenumbers

from nohold.config import (
    HOST,
    ConfigError,
    Section,
    Settings,
    Table,
    bounded,
    choice,
    matching,
)
from nohold.decisions.peers import is_loopback

SECRET_ENV = "NOHOLD_TICKETS_SECRET"
PREVIOUS_SECRET_ENV = "NOHOLD_TICKETS_PREVIOUS_SECRET"
IMAP_PASSWORD_ENV = "NOHOLD_TICKETS_IMAP_PASSWORD"
MIN_SECRET, MAX_SECRET = 32, 512
# Printable ASCII without blanks: a secret survives a config file, a header and a shell.
_SECRET = re.compile(r"[!-~]+")
# IMAP folder names used unquoted: no blanks, quotes or wildcards.
FOLDER = re.compile(r"^[A-Za-z0-9._/-]{1,100}$")
_SENDER = re.compile(r"^([A-Za-z0-9._%+-]+)?@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_USER = re.compile(r"^[!-~]{1,200}$")


@dataclass(frozen=True)
class ImapSettings:
    enabled: bool = False
    host: str = ""
    port: int = 993
    security: str = "tls"
    user: str = ""
    password: str = field(default="", repr=False)
    mailbox: str = "INBOX"
    processed: str = "nohold-processed"
    rejected: str = "nohold-rejected"
    senders: tuple[str, ...] = ()
    poll_seconds: float = 60.0
    timeout: float = 30.0

    def sender_allowed(self, address: str) -> bool:
        """`address` (as the From header gives it) is one of `senders`: a whole address,
        or "@domain" for any address of that domain. Case-insensitive."""
        address = address.strip().lower()
        return any(address == s.lower() or (s.startswith("@") and
                                            address.endswith(s.lower()))
                   for s in self.senders)


@dataclass(frozen=True)
class TicketSettings:
    enabled: bool = False
    secret: str = field(default="", repr=False)
    previous_secret: str = field(default="", repr=False)
    max_age: float = 300.0
    default_region: str = "PL"
    webhook: bool = True
    imap: ImapSettings = field(default_factory=ImapSettings)

    @property
    def secrets(self) -> tuple[bytes, ...]:
        return tuple(s.encode() for s in (self.secret, self.previous_secret) if s)


def _secret(t: Table, env: Mapping[str, str], name: str, var: str) -> str:
    from_env = env.get(var, "")
    where = f"${var}" if from_env else t.key(name)
    value = from_env or t.data.get(name, "")
    t.used.add(name)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string")
    if value and not (MIN_SECRET <= len(value) <= MAX_SECRET and _SECRET.fullmatch(value)):
        raise ConfigError(f"{where}: expected {MIN_SECRET}-{MAX_SECRET} printable characters "
                          f"without blanks (got {len(value)} characters); generate one "
                          "with `openssl rand -hex 32`")
    return value



def _parse_imap(t: Table, env: Mapping[str, str]) -> ImapSettings:
    senders = t.get("senders", list, [])
    for s in senders:
        if not isinstance(s, str) or not _SENDER.match(s):
            raise ConfigError(f"{t.key('senders')}: {s!r} is not an email address or "
                              "@domain")
    password = env.get(IMAP_PASSWORD_ENV) or t.get("password", str, "")
    t.used.add("password")
    folder = "an IMAP folder name: letters, digits, '.', '_', '/', '-'"
    imap = ImapSettings(
        enabled=t.get("enabled", bool, False),
        host=t.get("host", str, ""),
        port=t.integer("port", 993, 1, 65535),
        security=choice(t, "security", "tls", ("tls", "starttls", "none")),
        user=t.get("user", str, ""),
        password=password,
        mailbox=matching(t, "mailbox", "INBOX", FOLDER, folder),
        processed=matching(t, "processed", "nohold-processed", FOLDER, folder),
        rejected=matching(t, "rejected", "nohold-rejected", FOLDER, folder),
        senders=tuple(senders),
        poll_seconds=bounded(t, "poll_seconds", 60.0, 5.0, 3600.0),
        timeout=bounded(t, "timeout", 30.0, 1.0, 300.0),
    )
    t.done()
    if imap.host and not HOST.match(imap.host):
        raise ConfigError(f"{t.key('host')} = {imap.host!r}: a host name or IP address")
    if imap.user and not _USER.match(imap.user):
        raise ConfigError(f"{t.key('user')}: printable characters without blanks")
    if "\n" in password or "\r" in password:
        raise ConfigError(f"{t.key('password')}: contains a line break")
    if len({imap.mailbox, imap.processed, imap.rejected}) != 3:
        raise ConfigError(f"{t.key('mailbox')}, processed and rejected must be three "
                          "different folders")
    if imap.enabled:
        missing = [k for k in ("host", "user", "password") if not getattr(imap, k)]
        if missing:
            where = (f"{t.key('password')} (or ${IMAP_PASSWORD_ENV})"
                     if missing[0] == "password" else t.key(missing[0]))
            raise ConfigError(f"{where} is required when {t.key('enabled')} = true")
        if not imap.senders:
            raise ConfigError(f"{t.key('senders')}: list the partner's sending addresses "
                              "(or @their-domain); mail from anyone else is set aside")
        if imap.security == "none" and not is_loopback(imap.host):
            raise ConfigError(f"{t.key('security')} = \"none\" sends the password in clear: "
                              "only for a loopback host; use tls or starttls")
    return imap


def parse(t: Table, env: Mapping[str, str]) -> TicketSettings:
    secret = _secret(t, env, "secret", SECRET_ENV)
    previous = _secret(t, env, "previous_secret", PREVIOUS_SECRET_ENV)
    region = t.get("default_region", str, "PL")
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(f"{t.key('default_region')} = {region!r}: a region phonenumbers "
                          "knows, e.g. 'PL'")
    settings = TicketSettings(
        enabled=t.get("enabled", bool, False),
        secret=secret,
        previous_secret=previous,
        max_age=bounded(t, "max_age", 300.0, 30.0, 3600.0),
        default_region=region,
        webhook=t.get("webhook", bool, True),
        imap=_parse_imap(t.table("imap"), env),
    )
    t.done()
    if previous and not secret:
        raise ConfigError(f"{t.key('previous_secret')} is set without "
                          f"{t.key('secret')}: set the new secret first")
    if settings.enabled and settings.webhook and not secret:
        raise ConfigError(f"{t.key('secret')} (or ${SECRET_ENV}) is required for the "
                          f"webhook ({t.key('webhook')} = true): generate one with "
                          "`openssl rand -hex 32` and give it to the partner")
    if settings.enabled and not settings.webhook and not settings.imap.enabled:
        raise ConfigError(f"{t.key('enabled')} = true but neither the webhook nor "
                          "[tickets.imap] is enabled: tickets could not come in")
    return settings


def check(tickets: TicketSettings, settings: Settings) -> None:
    if tickets.enabled and tickets.webhook and not settings.http.enabled:
        raise ConfigError("tickets.webhook = true needs the HTTP server: set "
                          "[http] enabled = true (and a token for the agents' routes), or "
                          "tickets.webhook = false to take tickets by email only")


SECTION = Section("tickets", parse, check)

"""The partner's tickets as a feature: the `[tickets]` section, the signed webhook on the
shared HTTP server, the IMAP poller, and `nohold tickets`."""

from __future__ import annotations

from nohold.callbackdb.tickets import TicketStore
from nohold.config import Settings
from nohold.feature import Contribution, Feature, ServiceContext
from nohold.tickets import api, webhook
from nohold.tickets.commands import COMMANDS
from nohold.tickets.imap import ImapPoller, check_mailbox
from nohold.tickets.intake import Intake
from nohold.tickets.settings import SECTION, TicketSettings


def enabled(settings: Settings) -> bool:
    return settings.section(TicketSettings).enabled


def start(ctx: ServiceContext) -> Contribution:
    tickets = ctx.settings.section(TicketSettings)
    intake = Intake(TicketStore(ctx.engine), tickets,
                    on_ticket=lambda: ctx.signals.notify(ctx.signals.TICKET))
    out = Contribution()
    if tickets.webhook:
        out.http_routes = webhook.routes(intake)
    out.http_routes += api.routes(ctx.engine)
    if tickets.imap.enabled:
        out.tasks = [ImapPoller(intake, tickets.imap).run]
    return out


async def check_tickets(settings: Settings) -> str:
    tickets = settings.section(TicketSettings)
    parts = []
    if tickets.webhook:
        parts.append(f"webhook POST {webhook.PATH} on {settings.http.host}:"
                     f"{settings.http.port}, signed requests valid {tickets.max_age:.0f} s"
                     + (", previous secret still accepted" if tickets.previous_secret
                        else ""))
    if tickets.imap.enabled:
        parts.append(await check_mailbox(tickets.imap))
    return "tickets: ok (" + "; ".join(parts) + ")"


FEATURE = Feature(name="tickets", start=start, section=SECTION, enabled=enabled,
                  checks=(check_tickets,), commands=COMMANDS)

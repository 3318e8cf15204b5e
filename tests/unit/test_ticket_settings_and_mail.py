"""[tickets] (nohold/tickets/settings.py) and the partner's email format
(nohold/tickets/mail.py): secrets from the environment, never echoed; what the poller
reads out of a mail."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from nohold.config import ConfigError, load_settings
from nohold.registry import parse_settings
from nohold.tickets.mail import BadMail, parse_message, report_fields, sender
from nohold.tickets.settings import TicketSettings

SECRET = "partner-secret-0123456789abcdef-0123456789"
HTTP = {"http": {"enabled": True, "token": "agents-token-0123456789-abcdef"}}
IMAP = {"enabled": True, "host": "imap.example.net", "user": "tickets@isp.example",
        "password": "imap-pass", "senders": ["desk@partner.example", "@backup.example"]}


def tickets(raw: dict) -> TicketSettings:
    return parse_settings({**HTTP, "tickets": raw}).section(TicketSettings)


def test_off_by_default():
    t = parse_settings({}).section(TicketSettings)
    assert (t.enabled, t.webhook, t.max_age, t.secrets, t.imap.enabled) == (
        False, True, 300.0, (), False)


def test_enabled_with_a_secret_and_the_secrets_stay_out_of_repr():
    t = tickets({"enabled": True, "secret": SECRET, "previous_secret": "p" * 32,
                 "max_age": 120})
    assert t.secrets == (SECRET.encode(), b"p" * 32) and t.max_age == 120
    assert SECRET not in repr(t) and "p" * 32 not in repr(t)


def test_the_environment_wins_for_the_secret_and_the_imap_password(tmp_path):
    from nohold import registry

    path = tmp_path / "nohold.toml"
    path.write_text('[http]\nenabled = true\ntoken = "agents-token-0123456789-abcdef"\n'
                    '[tickets]\nenabled = true\nsecret = "file-secret-0123456789abcdef-01234"\n'
                    '[tickets.imap]\nenabled = true\nhost = "imap.example.net"\n'
                    'user = "u"\npassword = "from-file"\nsenders = ["@partner.example"]\n')
    env = {"NOHOLD_TICKETS_SECRET": SECRET, "NOHOLD_TICKETS_IMAP_PASSWORD": "from-env"}
    t = load_settings(path, env, registry.sections()).section(TicketSettings)
    assert t.secret == SECRET and t.imap.password == "from-env"


@pytest.mark.parametrize(("raw", "words"), [
    ({"enabled": True}, ["tickets.secret", "$NOHOLD_TICKETS_SECRET", "openssl rand"]),
    ({"secret": "short"}, ["tickets.secret", "got 5 characters"]),
    ({"secret": "a" * 31 + " "}, ["tickets.secret", "without blanks"]),
    ({"previous_secret": SECRET}, ["previous_secret", "without tickets.secret"]),
    ({"max_age": 5}, ["tickets.max_age"]),
    ({"default_region": "XX"}, ["tickets.default_region"]),
    ({"enabled": True, "webhook": False}, ["neither the webhook nor"]),
    ({"imap": {**IMAP, "password": ""}}, ["tickets.imap.password",
                                          "$NOHOLD_TICKETS_IMAP_PASSWORD"]),
    ({"imap": {**IMAP, "senders": []}}, ["tickets.imap.senders"]),
    ({"imap": {**IMAP, "senders": ["not an address"]}}, ["tickets.imap.senders"]),
    ({"imap": {**IMAP, "security": "none"}}, ["in clear", "loopback"]),
    ({"imap": {**IMAP, "processed": "INBOX"}}, ["three different folders"]),
    ({"imap": {**IMAP, "rejected": "Bad Mail"}}, ["tickets.imap.rejected"]),
    ({"imap": {**IMAP, "colour": "red"}}, ["unknown key tickets.imap.colour"]),
    ({"secrets": "x"}, ["unknown key tickets.secrets"]),
])
def test_mistakes_name_the_key_never_the_secret(raw, words):
    with pytest.raises(ConfigError) as exc:
        tickets(raw)
    for word in words:
        assert word in str(exc.value)
    assert SECRET not in str(exc.value) and "imap-pass" not in str(exc.value)


def test_the_webhook_needs_the_http_server():
    with pytest.raises(ConfigError, match=r"\[http\] enabled = true"):
        parse_settings({"tickets": {"enabled": True, "secret": SECRET}})
    # By email alone it does not.
    t = parse_settings({"tickets": {"enabled": True, "webhook": False, "imap": IMAP}})
    assert t.section(TicketSettings).imap.enabled


def test_senders_by_address_or_domain():
    imap = tickets({"imap": IMAP}).imap
    assert imap.sender_allowed("Desk@Partner.Example")
    assert imap.sender_allowed("anyone@backup.example")
    assert not imap.sender_allowed("desk@partner.example.evil.com")
    assert not imap.sender_allowed("mallory@evil.example")
    assert not imap.sender_allowed("")


def test_no_security_only_on_loopback():
    imap = tickets({"imap": {**IMAP, "host": "127.0.0.1", "security": "none"}}).imap
    assert imap.security == "none"


# -- the email format --------------------------------------------------------------------
def message(subject: str, body: str, sender_: str = "Desk <desk@partner.example>",
            date: str | None = "Sat, 07 Mar 2026 21:55:00 +0100") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = sender_, subject
    if date:
        msg["Date"] = date
    msg.set_content(body)
    return parse_message(msg.as_bytes())


def test_key_lines_then_a_blank_line_then_the_text():
    msg = message("Ticket T-1001 no internet",
                  "caller: +48 601 234 567\nCATEGORY: outage\nUrgency: urgent\n"
                  "Call-Id: 1741377600.42\nReported-At: 2026-03-07T20:50:00+01:00\n"
                  "Note: from the night shift\n\nNo internet.\n\nSince 20:00: LOS red.\n")
    assert sender(msg) == "desk@partner.example"
    assert report_fields(msg) == {
        "id": "T-1001", "caller": "+48 601 234 567", "category": "outage",
        "urgency": "urgent", "call_id": "1741377600.42",
        "reported_at": "2026-03-07T20:50:00+01:00", "note": "from the night shift",
        "text": "No internet.\n\nSince 20:00: LOS red."}


@pytest.mark.parametrize(("subject", "pid"), [
    ("Ticket T-1001", "T-1001"), ("RE: [Partner] ticket #4711 - no internet", "4711"),
    ("Fwd: Ticket: ABC.9.", "ABC.9"), ("New ticket 77/2026", "77/2026")])
def test_the_ticket_id_from_the_subject(subject, pid):
    assert report_fields(message(subject, "Caller: 1\n\nx"))["id"] == pid


def test_a_json_body_and_the_date_as_reported_at():
    fields = report_fields(message("Ticket 9", '{"caller": "601234567", "category": "fault",'
                                               ' "text": "x", "id": "9"}'))
    assert fields == {"id": "9", "caller": "601234567", "category": "fault", "text": "x",
                      "reported_at": "2026-03-07T21:55:00+01:00"}


def test_text_only_is_a_report_without_fields():
    assert report_fields(message("Ticket 9", "Just words, no keys.", date=None)) == {
        "id": "9", "text": "Just words, no keys."}


@pytest.mark.parametrize(("subject", "body", "words"), [
    ("no id here", "Caller: 1\n\nx", "no ticket id"),
    ("Ticket 9", '{"id": "8"}', "not the subject's"),
    ("Ticket 9", "[1, 2]", "not JSON"),  # starts with [: the line format, no keys
    ("Ticket 9", "{nope", "not JSON"),
])
def test_mails_that_cannot_be_read(subject, body, words):
    msg = message(subject, body)
    if words == "not JSON" and body.startswith("["):
        assert report_fields(msg)["text"] == "[1, 2]"
        return
    with pytest.raises(BadMail, match=words):
        report_fields(msg)


def test_an_html_only_or_huge_mail_is_refused():
    msg = EmailMessage()
    msg["Subject"] = "Ticket 9"
    msg.set_content("<p>x</p>", subtype="html")
    with pytest.raises(BadMail, match="text/plain"):
        report_fields(parse_message(msg.as_bytes()))
    with pytest.raises(BadMail, match="KiB"):
        parse_message(b"Subject: Ticket 9\r\n\r\n" + b"x" * 300_000)


def test_the_example_files_commented_blocks_are_valid_once_uncommented():
    import re
    import tomllib
    from pathlib import Path

    text = (Path(__file__).parents[2] / "config" / "nohold.example.toml").read_text()
    block = text.split("\n# [tickets]\n", 1)[1]
    tickets_part, imap_part = block.split("\n# [tickets.imap]\n", 1)
    imap_part = imap_part.split("\n# [alerts]\n", 1)[0]

    def uncomment(part: str) -> str:
        return "\n".join(m.group(1) for m in re.finditer(r"^# (\w+ = .*)$", part, re.M)
                         if not m.group(1).startswith(("secret", "previous_secret",
                                                       "password")))

    raw = tomllib.loads(f"[tickets]\n{uncomment(tickets_part)}\n"
                        f"[tickets.imap]\n{uncomment(imap_part)}\n")
    raw["tickets"]["secret"] = SECRET
    raw["tickets"]["imap"]["password"] = "x"
    t = parse_settings({**HTTP, **raw}).section(TicketSettings)
    assert (t.enabled, t.webhook, t.max_age, t.imap.enabled, t.imap.port, t.imap.senders) == (
        True, True, 300.0, True, 993, ("tickets@partner.example",))

"""Voice messages on disk without a ticket become tickets (ari_apps/afterhours/sweep.py):
those Asterisk recorded alone (nohold down) and those nohold's flow recorded when the
database failed; real WAV files in a directory and the ticket store on SQLite and
PostgreSQL, on the test's own clock."""

from __future__ import annotations

import logging
import os
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

from nohold.ari_apps.afterhours.settings import AfterHoursSettings, VoicemailSettings
from nohold.ari_apps.afterhours.sweep import UnticketedMessages
from nohold.callbackdb.tickets import TicketStore
from nohold.decisions.tickets import Category, Urgency

NOW = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)
CALL = "66f7d3fe-cc24-4130-b488-41f24a6106f0"




def recording(directory: Path, name: str, seconds: float, age: float, header: bool = True,
              silence: float = 0.0) -> Path:
    """A WAV as Asterisk writes one (8 kHz, 16-bit mono): `seconds` of sound (a loud
    square wave), then `silence` seconds of silence; last changed `age` s before NOW.
    Without `header` its header was never finished (0 frames), as after a crash."""
    path = directory / name
    sound = (b"\xb8\x0b" * 20 + b"\x48\xf4" * 20) * int(8000 * seconds / 40)  # +-3000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(sound + b"\x00\x00" * int(8000 * silence))
    if not header:
        data = bytearray(path.read_bytes())
        data[40:44] = b"\x00\x00\x00\x00"  # the data chunk's size, as never updated
        path.write_bytes(bytes(data))
    changed = NOW.timestamp() - age
    os.utime(path, (changed, changed))
    return path


def sweeper(ticket_store: TicketStore, directory: Path, woken: list[int]) -> UnticketedMessages:
    after = AfterHoursSettings(voicemail=VoicemailSettings(
        recording_dir=str(directory), settle_seconds=10, min_seconds=1.0,
        urgency=Urgency.URGENT, category=Category.OTHER))
    return UnticketedMessages(after, ticket_store, default_region="PL",
                              on_ticket=lambda: woken.append(1), now=lambda: NOW)


async def test_a_finished_message_becomes_one_ticket_that_wakes_the_alerts(ticket_store, tmp_path):
    name = f"nohold-vm-{CALL}-asterisk-BUSY-+48221234567.wav"
    recording(tmp_path, name, seconds=3.0, age=30)
    woken: list[int] = []
    assert await sweeper(ticket_store, tmp_path, woken).sweep_once() == 1
    [ticket] = await ticket_store.find()
    assert (ticket.partner_id, ticket.channel, ticket.call_id, ticket.caller) == (
        f"vma-{CALL}", "voicemail", CALL, "+48221234567")
    assert (ticket.urgency, ticket.state) == ("urgent", "open")
    assert f"{tmp_path}/{name}" in ticket.text and "(BUSY)" in ticket.text
    assert "(3 s)" in ticket.text
    assert ticket.reported_at == NOW - timedelta(seconds=30)  # when Asterisk finished it
    assert woken == [1]


async def test_a_second_look_a_restart_or_a_second_node_makes_no_second_ticket(
        ticket_store, tmp_path):
    recording(tmp_path, f"nohold-vm-{CALL}-asterisk-NOANSWER-.wav", seconds=2.0, age=30)
    woken: list[int] = []
    first = sweeper(ticket_store, tmp_path, woken)
    assert await first.sweep_once() == 1
    assert await first.sweep_once() == 0
    assert await sweeper(ticket_store, tmp_path, woken).sweep_once() == 0  # restarted / other node
    tickets = await ticket_store.find()
    assert len(tickets) == 1 and tickets[0].caller == "" and tickets[0].reports == 1
    assert woken == [1]


async def test_a_message_still_being_recorded_waits_for_the_next_look(ticket_store, tmp_path):
    path = recording(tmp_path, f"nohold-vm-{CALL}-asterisk.wav", seconds=2.0, age=3)
    sweep = sweeper(ticket_store, tmp_path, [])
    assert await sweep.sweep_once() == 0 and await ticket_store.find() == []
    os.utime(path, (NOW.timestamp() - 11, NOW.timestamp() - 11))
    assert await sweep.sweep_once() == 1


async def test_no_sound_no_ticket_but_an_unfinished_header_still_counts(
        ticket_store, tmp_path, caplog):
    caplog.set_level(logging.INFO, "nohold.afterhours")
    recording(tmp_path, "nohold-vm-1741377600.1-asterisk-BUSY-+48221234567.wav",
              seconds=0.4, age=60)
    recording(tmp_path, "nohold-vm-1741377600.2-asterisk-BUSY-+48221234568.wav",
              seconds=4.0, age=60, header=False)
    recording(tmp_path, "nohold-vm-1741377600.3.gsm", seconds=4.0, age=60)  # not a message
    (tmp_path / "notes.txt").write_text("not a message")
    assert await sweeper(ticket_store, tmp_path, []).sweep_once() == 1
    [ticket] = await ticket_store.find()
    assert ticket.call_id == "1741377600.2" and "(4 s)" in ticket.text
    assert "voicemail_none call=1741377600.1 caller=+48221234567 reason=no_message" in \
        caplog.text


async def test_a_directory_not_visible_from_here_is_said_once(ticket_store, tmp_path, caplog):
    sweep = sweeper(ticket_store, tmp_path / "on-the-pbx-host", [])
    assert await sweep.sweep_once() == 0
    assert await sweep.sweep_once() == 0
    assert caplog.text.count("voicemail_sweep_blind") == 1


async def test_the_next_look_comes_when_a_settling_message_has_settled(ticket_store, tmp_path):
    recording(tmp_path, f"nohold-vm-{CALL}-asterisk.wav", seconds=2.0, age=7)
    sweep = sweeper(ticket_store, tmp_path, [])
    assert await sweep.sweep_once() == 0
    assert 3.0 < sweep._settles_in <= 3.2  # 10 s settle, 7 s old: not 15 s later
    recording(tmp_path, f"nohold-vm-{CALL}-asterisk.wav", seconds=2.0, age=30)
    assert await sweep.sweep_once() == 1
    assert sweep._settles_in == 0.0


async def test_a_message_of_noholds_own_flow_without_a_ticket_gets_one_after_its_flows_time(
        ticket_store, tmp_path, caplog):
    # The flow recorded it, then could not write the ticket (the database was down).
    caplog.set_level(logging.INFO, "nohold.afterhours")
    name = f"nohold-vm-{CALL}-NOANSWER-+48221234567.wav"
    path = recording(tmp_path, name, seconds=5.0, age=30)
    woken: list[int] = []
    sweep = sweeper(ticket_store, tmp_path, woken)
    assert await sweep.sweep_once() == 0  # 30 s: still the flow's to ticket
    assert 29.9 < sweep._settles_in <= 30.2
    os.utime(path, (NOW.timestamp() - 61, NOW.timestamp() - 61))
    assert await sweep.sweep_once() == 1
    [ticket] = await ticket_store.find()
    assert (ticket.partner_id, ticket.caller) == (f"vm-{CALL}", "+48221234567")
    assert "(NOANSWER)" in ticket.text and woken == [1]
    assert "via=sweep" in caplog.text


async def test_a_message_its_flow_ticketed_is_left_as_it_is(ticket_store, tmp_path):
    from nohold.decisions.tickets import Report

    flows = Report(partner_id=f"vm-{CALL}", caller="+48221234567", category=Category.OTHER,
                   text="the flow's own text, with the customer", customer="123456")
    await ticket_store.report(flows, via="voicemail", now=NOW - timedelta(minutes=5))
    recording(tmp_path, f"nohold-vm-{CALL}-BUSY-+48221234567.wav", seconds=5.0, age=300)
    woken: list[int] = []
    assert await sweeper(ticket_store, tmp_path, woken).sweep_once() == 0
    [ticket] = await ticket_store.find()
    assert (ticket.text, ticket.customer, ticket.reports) == (flows.text, "123456", 1)
    assert woken == []


async def test_messages_older_than_a_week_are_history_not_news(ticket_store, tmp_path):
    # A database replaced or reset must not page the technician for every old message.
    recording(tmp_path, f"nohold-vm-{CALL}-asterisk-BUSY-.wav", seconds=5.0,
              age=8 * 86400)
    recording(tmp_path, "nohold-vm-1741377600.9-asterisk-BUSY-.wav", seconds=5.0,
              age=6 * 86400)
    assert await sweeper(ticket_store, tmp_path, []).sweep_once() == 1
    assert [t.call_id for t in await ticket_store.find()] == ["1741377600.9"]


async def test_silence_asterisk_kept_is_no_sound(ticket_store, tmp_path, caplog):
    # Record() ends on 4 s of silence and keeps 1 s of it: a caller who says nothing
    # leaves 1 s of silence, one who spoke leaves their words and 1 s more.
    caplog.set_level(logging.INFO, "nohold.afterhours")
    recording(tmp_path, "nohold-vm-1741377600.1-asterisk-BUSY-.wav", seconds=0.0, age=60,
              silence=1.02)
    recording(tmp_path, "nohold-vm-1741377600.2-asterisk-BUSY-.wav", seconds=2.0, age=60,
              silence=1.02)
    assert await sweeper(ticket_store, tmp_path, []).sweep_once() == 1
    [ticket] = await ticket_store.find()
    assert ticket.call_id == "1741377600.2" and "(2 s)" in ticket.text
    assert "voicemail_none call=1741377600.1 caller=- reason=no_message seconds=0.0" in \
        caplog.text


async def test_a_ticket_written_meanwhile_is_left_as_it_is(ticket_store, tmp_path,
                                                           monkeypatch):
    # The flow (or another node) writes the ticket between the sweep's look and its
    # write: the sweep neither overwrites it nor wakes the alerts a second time.
    from nohold.decisions.tickets import Report

    recording(tmp_path, f"nohold-vm-{CALL}-BUSY-+48221234567.wav", seconds=5.0, age=300)
    flows = Report(partner_id=f"vm-{CALL}", caller="+48221234567", category=Category.OTHER,
                   text="the flow's own text", customer="123456")
    await ticket_store.report(flows, via="voicemail", now=NOW)

    async def not_yet(partner_id: str) -> None:
        return None

    monkeypatch.setattr(ticket_store, "by_partner_id", not_yet)
    woken: list[int] = []
    assert await sweeper(ticket_store, tmp_path, woken).sweep_once() == 0
    [ticket] = await ticket_store.find()
    assert (ticket.text, ticket.customer, ticket.reports) == (flows.text, "123456", 1)
    assert woken == []


async def test_a_file_that_cannot_be_read_is_skipped_and_said_once(ticket_store, tmp_path,
                                                                   monkeypatch, caplog):
    from nohold.ari_apps.afterhours import sweep

    recording(tmp_path, "nohold-vm-1741377600.1-asterisk-BUSY-.wav", seconds=2.0, age=60)
    recording(tmp_path, "nohold-vm-1741377600.2-asterisk-BUSY-.wav", seconds=2.0, age=60)
    real = sweep.sound_seconds

    def unreadable_first(path: Path) -> float:
        if "1741377600.1" in path.name:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(sweep, "sound_seconds", unreadable_first)
    sweeping = sweeper(ticket_store, tmp_path, [])
    assert await sweeping.sweep_once() == 1
    assert await sweeping.sweep_once() == 0
    assert [t.call_id for t in await ticket_store.find()] == ["1741377600.2"]
    assert caplog.text.count("voicemail_sweep_skipped file=nohold-vm-1741377600.1-") == 1

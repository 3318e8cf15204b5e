"""Question 1: the callback offer as app_queue's periodic announcement, the wait unbroken.

Queue cb-offer (no members: nobody answers): the offer starts `startdelay` s after
joining and repeats every `frequency` s (start to start); `context=` sends a caller
who presses 1 to extension 1 of cb-offer-exit, any other key does nothing.
Queue cb-offer-b plays another file (per queue) and has announce-to-first-user = no.

Callers A, B, C join cb-offer in that order (positions 1, 2, 3):
  C presses 2 during its first offer   -> stays (the key cuts the offer short)
  B presses 1 during its first offer   -> leaves to cb-offer-exit,1 (position 2)
  C presses 1 during music on hold     -> leaves (position 2 by then)
  A (head of the line) hears the second offer, presses 1 -> leaves (position 1)
Callers D, E join cb-offer-b: only E (position 2) hears the announcement.

    PYTHONPATH=$PWD .venv/bin/python tests/probes/callbacks_offer.py
"""

# ruff: noqa: E501  (dialplan lines)
from __future__ import annotations

import asyncio
import os
import time

from nohold.sandbox.caller import ScriptedCaller
from tests.probes.callbacks_common import Recorder, ami, log_lines, sandbox

START_DELAY = 5
FREQUENCY = 15

QUEUES = f"""
[cb-offer]
strategy = ringall
musicclass = default
timeout = 5
retry = 1
joinempty = yes
leavewhenempty = no
announce-frequency = 0
announce-position = no
announce-holdtime = no
periodic-announce = queue-periodic-announce
periodic-announce-startdelay = {START_DELAY}
periodic-announce-frequency = {FREQUENCY}
announce-to-first-user = yes
context = cb-offer-exit

[cb-offer-b]
strategy = ringall
musicclass = default
timeout = 5
retry = 1
joinempty = yes
leavewhenempty = no
announce-frequency = 0
periodic-announce = beep
periodic-announce-startdelay = 2
periodic-announce-frequency = 4
announce-to-first-user = no
context = cb-offer-exit
"""

DIALPLAN = """
[cb-caller]
exten => offer,1,Answer()
 same => n,Set(CB_JOINED=${EPOCH})
 same => n,Queue(cb-offer,,,,120)
 same => n,UserEvent(CbQueueReturned,status: ${QUEUESTATUS})
 same => n,Hangup()
exten => offerb,1,Answer()
 same => n,Queue(cb-offer-b,,,,120)
 same => n,Hangup()

[cb-offer-exit]
exten => 1,1,UserEvent(CbOfferTaken,position: ${QUEUEPOSITION},wait: ${QUEUEWAIT},wait_ms: ${QUEUEWAIT_MS},joined: ${CB_JOINED},now: ${EPOCH},status: ${QUEUESTATUS},queue: ${QUEUENAME})
 same => n,Wait(30)
 same => n,Hangup()
"""


async def main() -> None:
    box = sandbox(f"cboffer-{os.getpid()}", queues=QUEUES, dialplan=DIALPLAN)
    callers: list[ScriptedCaller] = []
    try:
        async with Recorder(box) as rec:
            def uid(c: ScriptedCaller) -> str:
                return c.dialplan_channel_id

            names = {}
            for label in "ABC":
                c = ScriptedCaller(box, context="cb-caller", exten="offer")
                await c.dial()
                await rec.wait(ami("QueueCallerJoin", Uniqueid=uid(c)))
                callers.append(c)
                names[uid(c)] = label
            a, b, c_ = callers
            for label in "DE":
                c = ScriptedCaller(box, context="cb-caller", exten="offerb")
                await c.dial()
                await rec.wait(ami("QueueCallerJoin", Uniqueid=uid(c)))
                callers.append(c)
                names[uid(c)] = label
            d, e = callers[3:]
            joined = {names[x.data["Uniqueid"]]: x.ts for x in rec.find(ami("QueueCallerJoin"))}

            # C: first offer starts (app_queue stops C's music for it); C presses 2 in it.
            stop_c = await rec.wait(ami("MusicOnHoldStop", Uniqueid=uid(c_)), timeout=15)
            await asyncio.sleep(1.0)
            await c_.press("2")
            # B: presses 1 during its first offer.
            await rec.wait(ami("MusicOnHoldStop", Uniqueid=uid(b)), timeout=15)
            await asyncio.sleep(1.5)
            await b.press("1")
            await rec.wait(ami("UserEvent", Uniqueid=uid(b), UserEvent="CbOfferTaken"))
            # C, back to music, presses 1 there (not during an offer).
            await asyncio.sleep(2.0)
            await c_.press("1")
            await rec.wait(ami("UserEvent", Uniqueid=uid(c_), UserEvent="CbOfferTaken"))
            # A: waits for the second offer, presses 1 in it.
            first_a = await rec.wait(ami("MusicOnHoldStop", Uniqueid=uid(a)))
            second_a = await rec.wait(
                lambda ev: ami("MusicOnHoldStop", Uniqueid=uid(a))(ev) and ev is not first_a,
                timeout=FREQUENCY + 10)
            await asyncio.sleep(1.0)
            await a.press("1")
            await rec.wait(ami("UserEvent", Uniqueid=uid(a), UserEvent="CbOfferTaken"))
            await asyncio.sleep(1.0)

            print("=== joins ===")
            for label, ts in joined.items():
                print(label, f"+{ts - rec.t0:.3f}")
            print("=== music stops (offer starts) / starts per caller ===")
            for ev in rec.find(lambda ev: ev.type in ("MusicOnHoldStop", "MusicOnHoldStart")):
                who = names.get(ev.data.get("Uniqueid", ""), "?")
                print(f"{who} {ev.type} +{ev.ts - rec.t0:.3f}  "
                      f"(since join {ev.ts - joined.get(who, rec.t0):.3f}s)")
            print(f"C: first offer at {stop_c.ts - joined['C']:.3f}s after join")
            print(f"A: first offer {first_a.ts - joined['A']:.3f}s after join, second "
                  f"{second_a.ts - first_a.ts:.3f}s after the first")
            print("=== queue events, user events ===")
            print(rec.dump(lambda ev: ev.src == "ami" and ev.type in (
                "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "UserEvent")))
            for ev in rec.find(ami("UserEvent", UserEvent="CbOfferTaken")):
                print(names[ev.data["Uniqueid"]], {k: ev.data.get(k) for k in (
                    "position", "wait", "wait_ms", "joined", "now", "status", "queue")})
            for ev in rec.find(ami("QueueCallerLeave")):
                print("QueueCallerLeave", names.get(ev.data["Uniqueid"]), dict(ev.data))
            print("=== queue_log style: app_queue's verbose lines ===")
            for ln in log_lines(box, "Playing 'queue-periodic-announce") + log_lines(
                    box, "Playing 'beep") + log_lines(box, "periodic announcement"):
                print(ln)
            print("D (head of cb-offer-b) heard beep:",
                  any(d.dialplan_channel_id in ln or "offerb" in ln
                      for ln in log_lines(box, "Playing 'beep")))
            print(box.cli("queue show cb-offer-b"))
            _ = (d, e, time)
    finally:
        for c in callers:
            await c.close()
        box.stop()


if __name__ == "__main__":
    asyncio.run(main())

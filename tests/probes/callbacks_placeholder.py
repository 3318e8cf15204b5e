"""Questions 2 and 3: a placeholder keeps a caller's place; the agent it reaches is
connected first, whispered to, and only then is the customer created and dialled.

Queue cb-place has one agent (Local/agent@cb-agents/n), paused at first.
 1. Callers X1..X3 wait. Placeholder P2 (create + dial: in Stasis at once) joins at
    position 1, placeholder P1 (originate, timeout -1) at position 2, placeholder PT
    (queue timeout 4 s) at position 6. Read queue show and QueueCallerJoin.
 2. PT times out. X1..X3 hang up. The agent is unpaused: it reaches P2.
 3. Agent-first on P2: mixing bridge, P2;1 in, beep to the agent, then the customer
    (channels/create with the company's caller id, originator = P2;1), added to the
    bridge, then dialled. The customer answers after 2 s of ringing.
 4. The agent hangs up (its dialplan ends): what happens to P2 and the customer.
 5. The agent reaches P1 (StasisStart only now?); the customer is dialled first and
    moved into the bridge on answer (the other order), for the answer->bridge delay.
 6. A placeholder waits; Asterisk restarts.

    PYTHONPATH=$PWD .venv/bin/python tests/probes/callbacks_placeholder.py
"""

# ruff: noqa: E501  (dialplan lines)
from __future__ import annotations

import asyncio
import os
import uuid

from nohold.sandbox.caller import ScriptedCaller
from tests.probes.callbacks_common import Ev, Recorder, ami, ari, sandbox

QUEUES = """
[cb-place]
strategy = ringall
musicclass = default
timeout = 10
retry = 1
ringinuse = no
wrapuptime = 0
joinempty = yes
leavewhenempty = no
announce-frequency = 0
announce-position = no
periodic-announce-frequency = 0
member => Local/agent@cb-agents/n,0,Agent
"""

DIALPLAN = """
[cb-caller]
exten => place,1,Answer()
 same => n,Queue(cb-place,,,,300)
 same => n,Hangup()

[cb-placeholder]
; p<N>: wait in cb-place at position N, ringing (r), never answered by us.
exten => _p.,1,Queue(cb-place,r,,,600,,,,${EXTEN:1})
 same => n,UserEvent(CbPlaceholderOut,status: ${QUEUESTATUS})
 same => n,Hangup()
; t<N>: the same with a queue timeout of 4 s.
exten => _t.,1,Queue(cb-place,r,,,4,,,,${EXTEN:1})
 same => n,UserEvent(CbPlaceholderOut,status: ${QUEUESTATUS})
 same => n,Hangup()

[cb-agents]
exten => agent,1,Answer()
 same => n,UserEvent(CbAgentUp)
 same => n,Wait(${IF($["${CB_AGENT_WAIT}" = ""]?14:${CB_AGENT_WAIT})})
 same => n,Hangup()

[cb-customers]
exten => answer,1,UserEvent(CbCustomerRinging,cid: ${CALLERID(num)},cname: ${CALLERID(name)},conn: ${CONNECTEDLINE(num)})
 same => n,Ringing()
 same => n,Wait(2)
 same => n,Answer()
 same => n,UserEvent(CbCustomerAnswered)
 same => n,Wait(60)
 same => n,Hangup()
"""


def short(ev: Ev) -> str:
    return ev.type


async def main() -> None:
    box = sandbox(f"cbplace-{os.getpid()}", queues=QUEUES, dialplan=DIALPLAN)
    callers: list[ScriptedCaller] = []
    try:
        async with Recorder(box) as rec:
            await rec.ami.action("QueuePause", {"Queue": "cb-place", "Interface":
                                                "Local/agent@cb-agents/n", "Paused": "true"})
            # --- 1. positions --------------------------------------------------------
            for _ in range(3):
                c = ScriptedCaller(box, context="cb-caller", exten="place")
                await c.dial()
                await rec.wait(ami("QueueCallerJoin", Uniqueid=c.dialplan_channel_id))
                callers.append(c)
            p2, p2b = "ph-p2-" + uuid.uuid4().hex[:8], "ph-p2b-" + uuid.uuid4().hex[:8]
            await rec.req("POST", "/channels/create", endpoint="Local/p1@cb-placeholder/n",
                          app=rec.app, appArgs="placeholder", channelId=p2, otherChannelId=p2b)
            await rec.wait(ari("StasisStart", p2))
            print("P2 (create): StasisStart right after create, state",
                  rec.find(ari("StasisStart", p2))[0].data["channel"]["state"])
            await rec.req("POST", f"/channels/{p2}/dial")  # no timeout: waits as long as Queue()
            await rec.wait(ami("QueueCallerJoin", Uniqueid=p2b))
            p1, p1b = "ph-p1-" + uuid.uuid4().hex[:8], "ph-p1b-" + uuid.uuid4().hex[:8]
            await rec.req("POST", "/channels", endpoint="Local/p2@cb-placeholder/n",
                          app=rec.app, appArgs="placeholder", channelId=p1,
                          otherChannelId=p1b, timeout=-1)
            await rec.wait(ami("QueueCallerJoin", Uniqueid=p1b))
            pt, ptb = "ph-pt-" + uuid.uuid4().hex[:8], "ph-ptb-" + uuid.uuid4().hex[:8]
            await rec.req("POST", "/channels/create", endpoint="Local/t6@cb-placeholder/n",
                          app=rec.app, channelId=pt, otherChannelId=ptb)
            await rec.req("POST", f"/channels/{pt}/dial")
            await rec.wait(ami("QueueCallerJoin", Uniqueid=ptb))
            print(box.cli("queue show cb-place"))
            print(rec.dump(ami("QueueCallerJoin")))
            print("P1 (originate) in Stasis before an agent answered:",
                  bool(rec.find(ari("StasisStart", p1))))

            # --- 2. PT times out; the callers leave; the agent is free -----------------
            await rec.wait(ari("ChannelDestroyed", pt), timeout=15)
            print("--- PT, queue timeout:")
            print(rec.dump(lambda e: (e.src == "ari" and (e.data.get("channel") or e.data.get(
                "peer") or {}).get("id") in (pt, ptb)) or (e.src == "ami" and e.data.get(
                    "Uniqueid") == ptb and e.type.startswith(("Queue", "UserEvent")))))
            for c in callers:
                await c.close()
            callers.clear()
            mark = len(rec.events)
            await rec.ami.action("QueuePause", {"Queue": "cb-place", "Interface":
                                                "Local/agent@cb-agents/n", "Paused": "false"})

            # --- 3. the agent reaches P2: agent first, then the customer ---------------
            up = await rec.wait(lambda e: ari("Dial", p2)(e) and e.data.get(
                "dialstatus") == "ANSWER", timeout=20, since=mark)
            bridge = (await rec.req("POST", "/bridges", type="mixing",
                                    name="cb-agent-first"))["id"]
            await rec.req("POST", f"/bridges/{bridge}/addChannel", channel=p2)
            entered = await rec.wait(ari("ChannelEnteredBridge", p2), since=mark)
            await rec.req("POST", f"/channels/{p2}/play/wh-{uuid.uuid4().hex[:6]}",
                          media="sound:beep")
            await rec.wait(lambda e: e.type == "PlaybackFinished" and p2 in e.data[
                "playback"]["target_uri"], since=mark)
            cust, custb = "cust-" + uuid.uuid4().hex[:8], "custb-" + uuid.uuid4().hex[:8]
            await rec.req("POST", "/channels/create", endpoint="Local/answer@cb-customers/n",
                          app=rec.app, appArgs="customer", channelId=cust,
                          otherChannelId=custb, originator=p2,
                          json={"variables": {"CALLERID(num)": "5550100",
                                              "CALLERID(name)": "ACME Support",
                                              "CONNECTEDLINE(num)": "5550199"}})
            await rec.wait(ari("StasisStart", cust), since=mark)
            try:
                await rec.req("POST", f"/bridges/{bridge}/addChannel", channel=cust)
                await rec.wait(ari("ChannelEnteredBridge", cust), since=mark)
                print("customer (Down) added to the bridge before dial: OK")
            except Exception as exc:  # noqa: BLE001 - a probe reports what it saw
                print("adding the Down customer to the bridge failed:", exc)
            print("bridge while ringing:", await rec.req("GET", f"/bridges/{bridge}"))
            await rec.req("POST", f"/channels/{cust}/dial", timeout=20)
            answered = await rec.wait(lambda e: ari("Dial", cust)(e) and e.data.get(
                "dialstatus") == "ANSWER", timeout=15, since=mark)
            await asyncio.sleep(0.5)
            print("--- agent-first on P2:")
            print(rec.dump(lambda e: e.ts >= up.ts - 0.5 and e.type not in (
                "ChannelVarset", "VarSet", "Newexten", "ChannelDialplan", "NewConnectedLine",
                "ChannelConnectedLine", "DeviceStateChange", "ChannelCallerId", "NewCallerid",
                "QueueMemberStatus", "ExtensionStatus", "ChannelHangupRequest", "SoftHangupRequest",
                "ChannelHangupRequest", "HangupRequest", "LocalOptimizationBegin", "NewAccountCode",
                "Cdr", "CEL", "Registry", "RTCPSent", "ChannelTalkingStarted")
                and e.ts <= answered.ts + 0.5))
            created = rec.find(lambda e: e.type == "ChannelCreated" and e.data[
                "channel"]["id"] == cust)[0]
            print(f"customer ChannelCreated {created.ts - entered.ts:+.3f}s after P2 entered "
                  f"the bridge; {created.ts - up.ts:+.3f}s after the agent answered")
            cust_up = rec.find(lambda e: ari("ChannelStateChange", cust)(e) and e.data[
                "channel"]["state"] == "Up")
            print("customer Dial ANSWER at", f"+{answered.ts - rec.t0:.3f}",
                  "ChannelStateChange Up at", [f"+{e.ts - rec.t0:.3f}" for e in cust_up])
            ue = rec.find(ami("UserEvent", UserEvent="CbCustomerRinging"))
            print("customer sees:", {k: ue[0].data.get(k) for k in ("cid", "cname", "conn")}
                  if ue else None)
            lk = await rec.req("GET", f"/channels/{cust}/variable",
                               variable="CHANNEL(linkedid)")
            print("customer linkedid", lk, "P2 id", p2)

            # --- 4. the agent hangs up --------------------------------------------------
            mark = len(rec.events)
            mark5 = mark  # the agent is free at once and reaches P1 right after
            gone = await rec.wait(ari("ChannelDestroyed", p2), timeout=30, since=mark)
            await asyncio.sleep(1.0)
            print("--- agent hung up:")
            print(rec.dump(lambda e: e.ts >= gone.ts - 1.5 and (e.type in (
                "ChannelLeftBridge", "ChannelDestroyed", "StasisEnd", "AgentComplete",
                "QueueCallerLeave", "UserEvent", "Hangup", "BridgeDestroyed", "Dial"))))
            print("customer still there:", bool(await rec.req("GET", "/channels")
                                                and any(c["id"] == cust for c in await rec.req(
                                                    "GET", "/channels"))))
            await rec.req("DELETE", f"/channels/{cust}")

            # --- 5. the agent reaches P1 (originated) -----------------------------------
            mark = mark5
            ss = await rec.wait(ari("StasisStart", p1), timeout=30, since=mark)
            connect = rec.find(ami("AgentConnect", Uniqueid=p1b))
            print("P1 StasisStart", f"+{ss.ts - rec.t0:.3f}", "AgentConnect",
                  [f"+{e.ts - rec.t0:.3f}" for e in connect], "state", ss.data["channel"]["state"])
            bridge2 = (await rec.req("POST", "/bridges", type="mixing"))["id"]
            await rec.req("POST", f"/bridges/{bridge2}/addChannel", channel=p1)
            cust2, cust2b = "cust2-" + uuid.uuid4().hex[:8], "cust2b-" + uuid.uuid4().hex[:8]
            await rec.req("POST", "/channels/create", endpoint="Local/answer@cb-customers/n",
                          app=rec.app, channelId=cust2, otherChannelId=cust2b, originator=p1)
            await rec.wait(ari("StasisStart", cust2), since=mark)
            await rec.req("POST", f"/channels/{cust2}/dial", timeout=20, caller=p1)
            ans2 = await rec.wait(lambda e: ari("Dial", cust2)(e) and e.data.get(
                "dialstatus") == "ANSWER", timeout=15, since=mark)
            await rec.req("POST", f"/bridges/{bridge2}/addChannel", channel=cust2)
            in2 = await rec.wait(ari("ChannelEnteredBridge", cust2), since=mark)
            print(f"dial-then-move: ANSWER +{ans2.ts - rec.t0:.3f} -> in bridge "
                  f"+{in2.ts - rec.t0:.3f} ({(in2.ts - ans2.ts) * 1000:.0f} ms)")
            ue = rec.find(ami("UserEvent", UserEvent="CbCustomerRinging"))
            print("customer 2 sees (dial caller=P1):",
                  {k: ue[-1].data.get(k) for k in ("cid", "cname", "conn")})
            await rec.req("DELETE", f"/channels/{cust2}")
            await rec.req("DELETE", f"/channels/{p1}")
            await asyncio.sleep(1)

            moh = rec.find(lambda e: e.type == "MusicOnHoldStart")
            print("MusicOnHoldStart events (callers X1..X3 only expected):")
            for e in moh:
                print("  ", e.data.get("Channel"))
            print("bridge technology events:")
            print(rec.dump(lambda e: e.type in ("BridgeCreate", "BridgeEnter") and e.src == "ami"
                           and "cb" not in e.data.get("BridgeName", "x")))

            # --- 6. a placeholder and a restart -------------------------------------------
            p3 = "ph-p3-" + uuid.uuid4().hex[:8]
            await rec.ami.action("QueuePause", {"Queue": "cb-place", "Interface":
                                                "Local/agent@cb-agents/n", "Paused": "true"})
            await rec.req("POST", "/channels/create", endpoint="Local/p1@cb-placeholder/n",
                          app=rec.app, channelId=p3)
            await rec.req("POST", f"/channels/{p3}/dial")
            await rec.wait(ami("QueueCallerJoin", Queue="cb-place"), since=len(rec.events) - 50)
            box.cli("core restart now")
            await asyncio.to_thread(box.wait_fully_booted)
            await asyncio.sleep(2)
            print("after restart: channels", await rec.req("GET", "/channels"))
            print(box.cli("queue show cb-place"))
    finally:
        for c in callers:
            await c.close()
        box.stop()


if __name__ == "__main__":
    asyncio.run(main())

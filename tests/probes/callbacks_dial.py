"""Question 3 (the dial itself) and 4: with an agent already in a mixing bridge,
create and dial customers that answer, are busy, congested, reject, do not answer,
or are a real SIP callee (SIPp, 486), and read what ARI says; the company's caller
id as the callee sees it; ringback for the agent; what survives a reconnect.

    PYTHONPATH=$PWD .venv/bin/python tests/probes/callbacks_dial.py
"""

# ruff: noqa: E501  (dialplan lines)
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any

from nohold.ari_apps.ari_client import AriClient
from nohold.sandbox import free_port
from nohold.sandbox.sipp import SCENARIOS
from tests.probes.callbacks_common import Recorder, ari, sandbox

DIALPLAN = """
[cb-agents]
exten => agent,1,Answer()
 same => n,Wait(300)
 same => n,Hangup()

[cb-customers]
exten => _cust.,1,UserEvent(CbCustomer,cid: ${CALLERID(num)},cname: ${CALLERID(name)},conn: ${CONNECTEDLINE(num)})
 same => n,Ringing()
 same => n,Wait(${EXTEN:4})
 same => n,Answer()
 same => n,Wait(60)
exten => busy,1,Busy(5)
exten => congestion,1,Congestion(5)
exten => reject,1,Hangup(21)
exten => noanswer,1,Ringing()
 same => n,Wait(60)
"""

COMPANY = {"CONNECTEDLINE(num)": "5550100", "CONNECTEDLINE(name)": "ACME Support"}
AGENT_SIDE = {"CALLERID(num)": "5550100", "CALLERID(name)": "ACME Support",
              "CALLERID(pres)": "allowed"}
# i: set the channel's connected line without sending an update indication
COMPANY_I = {"CONNECTEDLINE(num,i)": "5550100", "CONNECTEDLINE(name,i)": "ACME Support",
             "CONNECTEDLINE(pres,i)": "allowed"}


async def main() -> None:
    box = sandbox(f"cbdial-{os.getpid()}", dialplan=DIALPLAN)
    try:
        async with Recorder(box) as rec:
            agent = "agent-" + uuid.uuid4().hex[:8]
            await rec.req("POST", "/channels", endpoint="Local/agent@cb-agents/n",
                          app=rec.app, channelId=agent, timeout=10)
            await rec.wait(ari("StasisStart", agent))
            bridge = (await rec.req("POST", "/bridges", type="mixing"))["id"]
            await rec.req("POST", f"/bridges/{bridge}/addChannel", channel=agent)

            async def dial(endpoint: str, timeout: int, variables: dict[str, str] | None = None,
                           ringback: bool = False,
                           set_after: dict[str, str] | None = None) -> dict[str, Any]:
                cid = "cust-" + uuid.uuid4().hex[:8]
                mark = len(rec.events)
                await rec.req("POST", "/channels/create", endpoint=endpoint, app=rec.app,
                              channelId=cid, originator=agent,
                              json={"variables": variables} if variables else None)
                await rec.wait(ari("StasisStart", cid), since=mark)
                for name, value in (set_after or {}).items():
                    await rec.req("POST", f"/channels/{cid}/variable", variable=name, value=value)
                await rec.req("POST", f"/bridges/{bridge}/addChannel", channel=cid)
                await rec.req("POST", f"/channels/{cid}/dial", timeout=timeout)
                pb = None
                if ringback:
                    await rec.wait(lambda e: ari("Dial", cid)(e) and e.data.get(
                        "dialstatus") == "RINGING", since=mark)
                    pb = "rb-" + uuid.uuid4().hex[:6]
                    await rec.req("POST", f"/channels/{agent}/play/{pb}", media="tone:ring")
                end = await rec.wait(lambda e: (ari("Dial", cid)(e) and e.data.get(
                    "dialstatus") not in ("", "RINGING", "PROGRESS", "PROCEEDING"))
                    or ari("ChannelDestroyed", cid)(e), timeout=timeout + 15, since=mark)
                out: dict[str, Any] = {"endpoint": endpoint}
                if pb and end.data.get("dialstatus") == "ANSWER":
                    await rec.req("DELETE", f"/playbacks/{pb}")
                    fin = await rec.wait(lambda e: e.type == "PlaybackFinished" and e.data[
                        "playback"]["id"] == pb, since=mark)
                    out["ringback_stopped_ms_after_answer"] = round((fin.ts - end.ts) * 1000)
                await asyncio.sleep(0.3)
                dials = [e.data.get("dialstatus") for e in rec.events[mark:]
                         if ari("Dial", cid)(e)]
                gone = [e.data.get("cause") for e in rec.events[mark:]
                        if ari("ChannelDestroyed", cid)(e)]
                out.update(dialstatus=dials, destroyed_cause=gone, after_s=round(
                    end.ts - rec.events[mark].ts, 2))
                ue = [e.data["userevent"] for e in rec.events[mark:]
                      if e.type == "ChannelUserevent"]
                if ue:
                    out["callee_sees"] = ue[0]
                if not gone:
                    await rec.req("DELETE", f"/channels/{cid}")
                out["agent_still_bridged"] = agent in (await rec.req(
                    "GET", f"/bridges/{bridge}"))["channels"]
                return out

            results = [
                await dial("Local/cust2@cb-customers/n", 20, COMPANY, ringback=True),
                await dial("Local/busy@cb-customers/n", 20),
                await dial("Local/congestion@cb-customers/n", 20),
                await dial("Local/reject@cb-customers/n", 20),
                await dial("Local/noanswer@cb-customers/n", 4),
                await dial("Local/cust1@cb-customers/n", 20, {"CALLERID(num)": "5550111"}),
                await dial("Local/cust1@cb-customers/n", 20, COMPANY_I),
            ]
            # caller id set after create, before dial
            cid = "cust-" + uuid.uuid4().hex[:8]
            mark = len(rec.events)
            await rec.req("POST", "/channels/create", endpoint="Local/cust1@cb-customers/n",
                          app=rec.app, channelId=cid)
            await rec.wait(ari("StasisStart", cid), since=mark)
            await rec.req("POST", f"/channels/{cid}/variable", variable="CONNECTEDLINE(num)",
                          value="5550100")
            await rec.req("POST", f"/channels/{cid}/dial", timeout=10)
            ue = await rec.wait(lambda e: e.type == "ChannelUserevent", since=mark)
            results.append({"endpoint": "Local, CONNECTEDLINE via POST /variable",
                            "callee_sees": ue.data["userevent"]})
            await rec.req("DELETE", f"/channels/{cid}")

            # a real SIP callee: the INVITE's From, and 486 -> BUSY
            sipp = shutil.which("sipp")
            if sipp:
                for label, variables, after in (
                        ("CONNECTEDLINE in create body", COMPANY, None),
                        ("CALLERID in create body", {"CALLERID(num)": "5550111",
                                                     "CALLERID(name)": "ACME cid"}, None),
                        ("CONNECTEDLINE via POST /variable", None, COMPANY),
                        ("CONNECTEDLINE + pres=allowed via POST /variable", None,
                         {**COMPANY, "CONNECTEDLINE(pres)": "allowed"}),
                        ("CONNECTEDLINE + pres=allowed in create body",
                         {**COMPANY, "CONNECTEDLINE(pres)": "allowed"}, None),
                        ("CONNECTEDLINE(...,i) (no update indication) in create body",
                         COMPANY_I, None),
                        ("CONNECTEDLINE(...,i) via POST /variable", None, COMPANY_I),
                        ("none", None, None),
                        ("agent side CALLERID (set below), nothing on the customer", None,
                         None)):
                    if label.startswith("agent side"):
                        # A two-party bridge gives each channel the other's caller id as its
                        # connected line: the customer gets the agent side's.
                        for name, value in AGENT_SIDE.items():
                            await rec.req("POST", f"/channels/{agent}/variable",
                                          variable=name, value=value)
                    port = free_port(socket.SOCK_DGRAM)
                    with tempfile.TemporaryDirectory() as tmp:
                        msgs = Path(tmp) / "msgs.log"
                        proc = await asyncio.create_subprocess_exec(
                            sipp, "-sf", str(SCENARIOS / "uas_busy.xml"), "-i", "127.0.0.1",
                            "-p", str(port), "-m", "1", "-nostdin", "-timeout", "20s",
                            "-trace_msg", "-message_file", str(msgs),
                            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                            stderr=asyncio.subprocess.DEVNULL)
                        r = await dial(f"PJSIP/sipp/sip:customer@127.0.0.1:{port}", 10, variables,
                                       set_after=after)
                        await asyncio.wait_for(proc.wait(), 20)
                        text = msgs.read_text(errors="replace") if msgs.exists() else ""
                        r["INVITE From"] = next((ln.strip() for ln in text.splitlines()
                                                 if ln.startswith("From:")), None)
                        r["variables"] = label
                        results.append(r)
            r = await dial("Local/cust1@cb-customers/n", 20)
            r["variables"] = "agent side CALLERID, Local customer in the bridge"
            results.append(r)
            for r in results:
                print(r)

            # --- reconnect: the app's socket is gone for 3 s while a customer rings ---------
            mark = len(rec.events)
            other = AriClient(box.ari_url, box.ari_user, box.ari_password, "cbprobe2",
                              subscribe=("channel:", "bridge:"))
            events = other.events()
            assert (await events.__anext__())["type"] == "NoholdConnected"
            ag2, cu2 = "agent2-" + uuid.uuid4().hex[:6], "cust2-" + uuid.uuid4().hex[:6]
            await other.request("POST", "/channels", params={
                "endpoint": "Local/agent@cb-agents/n", "app": "cbprobe2", "channelId": ag2,
                "timeout": 10})
            await rec.wait(lambda e: ari("Dial", ag2)(e) and e.data.get(
                "dialstatus") == "ANSWER", since=mark)
            await asyncio.sleep(0.2)  # its StasisStart goes to cbprobe2, not to the recorder
            br2 = (await other.request("POST", "/bridges", params={"type": "mixing"}))["id"]
            await other.request("POST", f"/bridges/{br2}/addChannel", params={"channel": ag2})
            await other.request("POST", "/channels/create", params={
                "endpoint": "Local/cust2@cb-customers/n", "app": "cbprobe2", "channelId": cu2})
            await other.request("POST", f"/bridges/{br2}/addChannel", params={"channel": cu2})
            await other.request("POST", f"/channels/{cu2}/dial", params={"timeout": 20})
            await other.close()
            await asyncio.sleep(3)  # the customer answers meanwhile
            back = AriClient(box.ari_url, box.ari_user, box.ari_password, "cbprobe2")
            events = back.events()
            await events.__anext__()
            print("after reconnect: app", await back.request("GET", "/applications/cbprobe2"))
            print("bridge", await back.request("GET", f"/bridges/{br2}"))
            print("customer", {k: v for k, v in (await back.request(
                "GET", f"/channels/{cu2}")).items() if k in ("id", "state", "name")})
            for what, path in (("play on the customer", f"/channels/{cu2}/play"),
                               ("play on the bridge", f"/bridges/{br2}/play")):
                try:
                    await back.request("POST", path, params={"media": "sound:beep"})
                    print(what, "after reconnect: OK")
                except Exception as exc:  # noqa: BLE001
                    print(what, "after reconnect:", exc)
            await back.request("DELETE", f"/channels/{cu2}")
            await back.request("DELETE", f"/channels/{ag2}")
            await back.request("DELETE", f"/bridges/{br2}")
            await back.close()
            print("MusicOnHoldStart events:", [e.data.get("Channel") for e in rec.find(
                lambda e: e.type == "MusicOnHoldStart")])
    finally:
        box.stop()


if __name__ == "__main__":
    asyncio.run(main())

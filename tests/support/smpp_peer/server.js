// A real SMSC for nohold's tests: node-smpp's server (an SMPP 3.4 implementation
// independent of the smpplib client nohold uses), driven over stdin/stdout with one
// JSON object per line, so a test sees exactly what crossed the wire.
//
// Out (stdout): {"event": "listening", "port"} | "bind" | "bind_refused" | "submit"
//   (to, from, text, data_coding, esm_class, registered_delivery, message_id, status)
//   | "unbind" | "closed" | "deliver_resp" | "enquire_link" | "ack" (for a command).
// In (stdin): {"cmd": "mo", "from", "to", "text"} a technician's reply;
//   {"cmd": "receipt", "message_id", "stat"} a delivery report;
//   {"cmd": "submit_status", "status"} answer later submits with this status (0 = ok);
//   {"cmd": "refuse_binds", "value": true|false}; {"cmd": "drop"} close every session.
"use strict";
const smpp = require("smpp");
const readline = require("readline");

const systemId = process.env.SMPP_SYSTEM_ID || "nohold";
const password = process.env.SMPP_PASSWORD || "secret";
let submitStatus = 0;
let refuseBinds = false;
let nextId = 1;
const sessions = new Set();

function emit(event, fields) {
  // t: when the SMSC saw it (Unix seconds), for tests that measure spacing and latency.
  process.stdout.write(JSON.stringify(Object.assign({ event, t: (performance.timeOrigin + performance.now()) / 1000 },
                                                    fields || {})) + "\n");
}

function text(message) {
  return message && typeof message === "object" && "message" in message
    ? String(message.message) : String(message);
}

const server = smpp.createServer({ debug: false }, (session) => {
  session.on("error", (err) => emit("session_error", { message: String(err) }));
  session.on("close", () => { sessions.delete(session); emit("closed"); });
  session.on("bind_transceiver", (pdu) => {
    session.pause();
    if (refuseBinds || pdu.system_id !== systemId || pdu.password !== password) {
      emit("bind_refused", { system_id: pdu.system_id });
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      session.close();
      return;
    }
    sessions.add(session);
    emit("bind", { system_id: pdu.system_id });
    session.send(pdu.response());
    session.resume();
  });
  session.on("submit_sm", (pdu) => {
    const id = submitStatus === 0 ? `m${nextId++}` : "";
    emit("submit", {
      to: pdu.destination_addr, from: pdu.source_addr, text: text(pdu.short_message),
      data_coding: pdu.data_coding, esm_class: pdu.esm_class,
      registered_delivery: pdu.registered_delivery, message_id: id, status: submitStatus,
    });
    session.send(pdu.response({ command_status: submitStatus, message_id: id }));
  });
  session.on("enquire_link", (pdu) => { emit("enquire_link"); session.send(pdu.response()); });
  session.on("unbind", (pdu) => { emit("unbind"); session.send(pdu.response()); session.close(); });
});

function deliver(fields) {
  for (const session of sessions) {
    session.deliver_sm(fields, (pdu) => emit("deliver_resp", { status: pdu.command_status }));
    return true;
  }
  return false;
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  let cmd;
  try { cmd = JSON.parse(line); } catch (err) { emit("bad_command", { line }); return; }
  let ok = true;
  if (cmd.cmd === "mo") {
    ok = deliver({ source_addr: cmd.from, destination_addr: cmd.to || "",
                   source_addr_ton: 1, short_message: cmd.text });
  } else if (cmd.cmd === "receipt") {
    const now = "2612031200";
    ok = deliver({
      source_addr: cmd.from || "", destination_addr: cmd.to || "", esm_class: 4,
      short_message: `id:${cmd.message_id} sub:001 dlvrd:001 submit date:${now} ` +
        `done date:${now} stat:${cmd.stat} err:000 text:`,
    });
  } else if (cmd.cmd === "submit_status") {
    submitStatus = cmd.status;
  } else if (cmd.cmd === "refuse_binds") {
    refuseBinds = Boolean(cmd.value);
  } else if (cmd.cmd === "drop") {
    for (const session of sessions) session.close();
  } else {
    ok = false;
  }
  emit("ack", { cmd: cmd.cmd, ok });
});

server.listen(Number(process.env.SMPP_PORT || 0), "127.0.0.1", () => {
  emit("listening", { port: server.address().port });
});
process.stdin.on("end", () => process.exit(0));

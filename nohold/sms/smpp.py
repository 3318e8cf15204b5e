"""SMS over SMPP 3.4 (smpplib): one transceiver bind to the operator's SMSC, kept up.

smpplib is blocking, so one thread owns the connection: it binds (again and again,
with a growing pause, while the SMSC is down), sends what the event loop queued,
answers enquire_link, and hands every deliver_sm (a technician's reply, a delivery
report) to the loop. A deliver_sm is answered only after the loop stored what it
meant: when that fails, the SMSC gets a temporary error and delivers it again, so a
reply that acknowledges a ticket is not lost to a crash.

`send` never queues behind an SMSC that is down: it fails at once (SmsFailed), and
the alert waits in the database for its retry, which survives a restart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import select
import socket
import threading
from dataclasses import dataclass, field

import smpplib.client
import smpplib.consts as c
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

from nohold.aio import read_outcome
from nohold.config import SMS_SEND_TIMEOUT, SmppSettings
from nohold.decisions.alerts import parse_receipt
from nohold.sms.link import Inbound, Listener, Listeners, SmsFailed

log = logging.getLogger("nohold.sms.smpp")

SUBMIT_TIMEOUT = SMS_SEND_TIMEOUT  # seconds for the SMSC to answer a submit_sm
INBOUND_TIMEOUT = 10.0  # seconds for the loop to store a deliver_sm before a temporary error
_DOWN = (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError)


@dataclass(frozen=True)
class SmppTarget:
    host: str
    port: int
    system_id: str
    password: str
    source: str  # the sender shown on the phone: a number or up to 11 letters
    enquire_every: float = 30.0


def target(s: SmppSettings) -> SmppTarget:
    return SmppTarget(s.host, s.port, s.system_id, s.password, s.source, s.enquire_every)


@dataclass
class _Job:
    parts: list[bytes]
    coding: int
    esm_class: int
    to: str
    future: asyncio.Future[str]
    ids: list[str] = field(default_factory=list)
    waiting: int = 0


def _decode(pdu: object) -> str:
    raw = getattr(pdu, "short_message", b"") or b""
    if isinstance(raw, str):
        return raw
    coding = getattr(pdu, "data_coding", 0) or 0
    if coding & 0x0F == c.SMPP_ENCODING_ISO10646:
        return raw.decode("utf-16-be", "replace")
    return raw.decode("latin-1")


def _text(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value or "")


class SmppGateway:
    def __init__(self, target: SmppTarget, on_inbound: Listener | None = None) -> None:
        self._target = target
        self._listeners = Listeners()
        if on_inbound is not None:
            self._listeners.listen(on_inbound)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._queued: list[_Job] = []
        self._by_sequence: dict[int, _Job] = {}
        self._bound = threading.Event()

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    def listen(self, listener: Listener) -> None:
        self._listeners.listen(listener)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._worker, name="nohold-smpp", daemon=True)
        self._thread.start()

    async def wait_bound(self, timeout: float) -> bool:
        return await asyncio.to_thread(self._bound.wait, timeout)

    async def close(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    async def send(self, to_e164: str, text: str) -> str:
        """The SMSC's message id once it took the whole message; SmsFailed otherwise."""
        if not self.bound:
            raise SmsFailed("SMSC not connected")
        try:
            parts, coding, esm_class = smpplib.gsm.make_parts(text)
        except smpplib.exceptions.MessageTooLong:
            raise SmsFailed("message too long") from None
        assert self._loop is not None
        job = _Job(list(parts), coding, esm_class, to_e164.lstrip("+"),
                   self._loop.create_future())
        # A send that timed out leaves its job queued; the SMSC's late failure of it
        # is then nobody's to read (never "Future exception was never retrieved").
        job.future.add_done_callback(read_outcome)
        with self._lock:
            self._queued.append(job)
        self._wake()
        try:
            async with asyncio.timeout(SUBMIT_TIMEOUT):
                return await asyncio.shield(job.future)
        except TimeoutError:
            raise SmsFailed(f"no answer from the SMSC within {SUBMIT_TIMEOUT:.0f} s") from None

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- the thread ---------------------------------------------------------------------
    def _worker(self) -> None:
        pause = 1.0
        t = self._target
        while not self._stop.is_set():
            client = smpplib.client.Client(t.host, t.port, timeout=10,
                                           allow_unknown_opt_params=True)
            client.set_message_sent_handler(lambda pdu, **_: self._on_sent(pdu))
            client.set_message_received_handler(lambda pdu, **_: self._on_received(pdu))
            client.set_error_pdu_handler(lambda pdu: None)  # answered per job in _on_sent
            try:
                client.connect()
                client.bind_transceiver(system_id=t.system_id, password=t.password)
                self._bound.set()
                pause = 1.0
                log.info("smpp_bound host=%s port=%s system_id=%s", t.host, t.port,
                         t.system_id)
                self._serve(client)
            except _DOWN as exc:
                log.warning("smpp_down host=%s port=%s error=%r retry_in=%.0fs", t.host,
                            t.port, str(exc) or type(exc).__name__, pause)
            finally:
                self._bound.clear()
                self._fail_all("SMSC connection lost")
                self._hang_up(client)
            self._stop.wait(pause)
            pause = min(pause * 2, 30.0)

    def _serve(self, client: smpplib.client.Client) -> None:
        sock = client._socket  # smpplib's own poll() selects on it too
        quiet = 0
        while not self._stop.is_set():
            ready, _, _ = select.select([sock, self._wake_r], [], [],
                                        self._target.enquire_every)
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
                self._submit_queued(client)
            if sock in ready:
                quiet = 0
                client.read_once(auto_send_enquire_link=False)
            if not ready:
                quiet += 1
                if quiet > 2:  # two enquire_links unanswered: the link is dead
                    raise smpplib.exceptions.ConnectionError("SMSC stopped answering")
                client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))

    def _submit_queued(self, client: smpplib.client.Client) -> None:
        with self._lock:
            jobs, self._queued = self._queued, []
        for job in jobs:
            job.waiting = len(job.parts)
            for part in job.parts:
                pdu = client.send_message(
                    source_addr_ton=(c.SMPP_TON_INTL if self._target.source.lstrip("+")
                                     .isdigit() else c.SMPP_TON_ALNUM),
                    source_addr_npi=c.SMPP_NPI_ISDN,
                    source_addr=self._target.source.lstrip("+"),
                    dest_addr_ton=c.SMPP_TON_INTL, dest_addr_npi=c.SMPP_NPI_ISDN,
                    destination_addr=job.to, short_message=part, data_coding=job.coding,
                    esm_class=job.esm_class, registered_delivery=True)
                self._by_sequence[pdu.sequence] = job

    def _on_sent(self, pdu: object) -> None:
        job = self._by_sequence.pop(getattr(pdu, "sequence", -1), None)
        if job is None:
            return
        status = getattr(pdu, "status", 0)
        if status:
            why = c.DESCRIPTIONS.get(status, "unknown status")
            self._settle(job, error=f"SMSC refused: {why} (0x{status:08x})")
            return
        job.ids.append(_text(getattr(pdu, "message_id", b"")))
        job.waiting -= 1
        if job.waiting == 0:
            self._settle(job, result=job.ids[0])

    def _on_received(self, pdu: object) -> int:
        text = _decode(pdu)
        is_receipt = bool((getattr(pdu, "esm_class", 0) or 0) & 0x04)
        inbound = Inbound(_text(getattr(pdu, "source_addr", b"")), text,
                          parse_receipt(text) if is_receipt else None)
        assert self._loop is not None
        done: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(
            self._listeners.deliver(inbound), self._loop)
        try:
            done.result(INBOUND_TIMEOUT)
        except (concurrent.futures.TimeoutError, Exception) as exc:  # noqa: BLE001
            # Not stored: a temporary error makes the SMSC deliver it again later.
            log.warning("smpp_inbound_not_stored sender=%s error=%r", inbound.sender,
                        str(exc) or type(exc).__name__)
            done.cancel()
            return c.SMPP_ESME_RX_T_APPN
        return c.SMPP_ESME_ROK

    def _settle(self, job: _Job, result: str | None = None, error: str | None = None
                ) -> None:
        for seq in [s for s, j in self._by_sequence.items() if j is job]:
            del self._by_sequence[seq]

        def settle() -> None:
            if job.future.done():
                return
            if error is not None:
                job.future.set_exception(SmsFailed(error))
            else:
                job.future.set_result(result or "")
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(settle)

    def _fail_all(self, why: str) -> None:
        with self._lock:
            jobs, self._queued = self._queued, []
        jobs += list({id(j): j for j in self._by_sequence.values()}.values())
        self._by_sequence.clear()
        for job in jobs:
            self._settle(job, error=why)

    def _hang_up(self, client: smpplib.client.Client) -> None:
        if client._socket is None:
            return
        with contextlib.suppress(*_DOWN, socket.timeout):
            if client.state in (c.SMPP_CLIENT_STATE_BOUND_TX, c.SMPP_CLIENT_STATE_BOUND_RX,
                                c.SMPP_CLIENT_STATE_BOUND_TRX):
                client.unbind()
        with contextlib.suppress(*_DOWN):
            client.disconnect()


async def check_bind(target: SmppTarget, timeout: float = 10.0) -> str:
    """`nohold check`: the SMSC accepts nohold's bind (then unbinds at once)."""
    def probe() -> None:
        client = smpplib.client.Client(target.host, target.port, timeout=timeout,
                                       allow_unknown_opt_params=True)
        try:
            client.connect()
            client.bind_transceiver(system_id=target.system_id, password=target.password)
            client.unbind()
        finally:
            with contextlib.suppress(*_DOWN):
                client.disconnect()
    try:
        await asyncio.to_thread(probe)
    except (TimeoutError, *_DOWN) as exc:
        raise SmsFailed(f"SMSC {target.host}:{target.port} as {target.system_id!r}: "
                        f"{str(exc) or type(exc).__name__}") from None
    return f"SMSC {target.host}:{target.port} bound as {target.system_id!r}"

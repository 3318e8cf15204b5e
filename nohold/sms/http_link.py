"""SMS through an HTTP gateway (`[sms] transport = "http"`), for operators and providers
that offer no SMPP account.

Out: `POST [sms.http] url` with `Authorization: Bearer <token>` and the JSON body
`{"to": "+48601000001", "from": "<source>", "text": "..."}`; any 2xx answer with
`{"id": "<message id>"}` means the gateway took it. Anything else (a refusal, a 5xx,
no answer within `timeout`) is SmsFailed: the message waits in the database for its
retry, as with SMPP.

In: the gateway POSTs replies and delivery reports to nohold's HTTP API
(`/v1/sms/inbound`, nohold/sms/inbound.py), which hands them to the listeners here.
"""

from __future__ import annotations

import logging

import aiohttp

from nohold.config import SmsHttpSettings
from nohold.sms.link import Listeners, SmsFailed

log = logging.getLogger("nohold.sms.http")


class HttpSmsLink(Listeners):
    def __init__(self, settings: SmsHttpSettings) -> None:
        super().__init__()
        self._s = settings
        self._session: aiohttp.ClientSession | None = None

    @property
    def bound(self) -> bool:
        return True  # no connection to keep: every message is its own request


    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._s.timeout),
            headers={"Authorization": f"Bearer {self._s.token}"})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, to_e164: str, text: str) -> str:
        if self._session is None:
            raise SmsFailed("the HTTP SMS link is not started")
        body = {"to": to_e164, "from": self._s.source, "text": text}
        try:
            async with self._session.post(self._s.url, json=body) as resp:
                raw = await resp.text()
                if not 200 <= resp.status < 300:
                    raise SmsFailed(f"gateway answered {resp.status}: {raw[:200]!r}")
                try:
                    answer = await resp.json(content_type=None)
                except ValueError:
                    answer = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SmsFailed(f"gateway {self._s.url}: {str(exc) or type(exc).__name__}"
                            ) from None
        message_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(message_id, str | int) or isinstance(message_id, bool) \
                or not str(message_id):
            # Taken (2xx) but without an id: sent, and no delivery report can match it.
            log.warning("sms_gateway_no_id status=2xx body=%r", raw[:200])
            return ""
        return str(message_id)[:64]


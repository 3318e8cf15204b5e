"""`POST /v1/sms/inbound`: an HTTP SMS gateway delivers what came back, with the HTTP
API's bearer token, one JSON object per request:

    {"from": "+48601000001", "text": "ACK 42"}                    a person's SMS
    {"message_id": "m-17", "status": "delivered", "stat": "DELIVRD"}   a delivery report

200 once every listener stored it; 503 when one could not (the gateway delivers it
again later: nothing is lost to a database that is down); 400 naming the field when
the body is not one of those.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from nohold.decisions.alerts import Delivery, Receipt
from nohold.http_server import HttpError
from nohold.sms.http_link import HttpSmsLink
from nohold.sms.link import Inbound

_STATUSES = {"delivered": Delivery.DELIVERED, "undeliverable": Delivery.UNDELIVERABLE,
             "pending": Delivery.PENDING}


def parse(body: Any) -> Inbound:
    if not isinstance(body, dict):
        raise HttpError(400, "bad_json", "expected a JSON object")
    if "message_id" in body:
        mid, status = body.get("message_id"), body.get("status")
        if not isinstance(mid, str) or not 0 < len(mid) <= 64:
            raise HttpError(400, "bad_request", "message_id: 1-64 characters", field="message_id")
        if status not in _STATUSES:
            raise HttpError(400, "bad_request", f"status: one of {', '.join(_STATUSES)}",
                            field="status")
        stat = body.get("stat") or status.upper()
        if not isinstance(stat, str):
            raise HttpError(400, "bad_request", "stat: a word", field="stat")
        return Inbound("", "", Receipt(mid, _STATUSES[status], stat[:16]))
    sender, text = body.get("from"), body.get("text")
    if not isinstance(sender, str) or not 3 <= len(sender.lstrip("+")) <= 15 \
            or not sender.lstrip("+").isdigit():
        raise HttpError(400, "bad_request", "from: the sender's number, digits with an "
                        "optional +", field="from")
    if not isinstance(text, str) or len(text) > 1600:
        raise HttpError(400, "bad_request", "text: the message (at most 1600 characters)",
                        field="text")
    return Inbound(sender, text, None)


def routes(link: HttpSmsLink) -> list[web.RouteDef]:
    async def inbound(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, "bad_json", f"the body is not JSON: {exc}") from None
        message = parse(body)
        try:
            await link.deliver(message)
        except Exception as exc:  # noqa: BLE001 - any failure to store: deliver again
            raise HttpError(503, "not_stored", f"not stored, deliver it again later: {exc}",
                            headers={"Retry-After": "30"}) from None
        return web.json_response({"ok": True})

    return [web.post("/v1/sms/inbound", inbound)]

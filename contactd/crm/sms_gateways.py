"""SMS gateway drivers behind one interface: `outbox` (records + spool file, for demos) and `http` (JSON POST).

A driver sends one recipient's message and says what happened. Every request carries the recipient's
`gateway_ref` as an idempotency key, so a retry after a timeout never makes the gateway send twice.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from ..config import SmsConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingSms:
    ref: str
    kind: str
    sender: str
    to: str
    subject: str
    body: str
    image: bytes | None = None


@dataclass(frozen=True)
class SendResult:
    ok: bool
    error: str = ""
    permanent: bool = False  # a refusal (bad number, 4xx) is not retried


class SmsGateway(Protocol):
    async def send(self, message: OutgoingSms) -> SendResult: ...

    async def close(self) -> None: ...


class OutboxGateway:
    """Marks every message sent and appends it to a JSON-lines spool file: a shop can see what would go out."""

    def __init__(self, spool_dir: str | Path) -> None:
        self.spool = Path(spool_dir) / "outbox.jsonl"

    async def send(self, message: OutgoingSms) -> SendResult:
        record = {"ref": message.ref, "kind": message.kind, "from": message.sender, "to": message.to,
                  "subject": message.subject, "body": message.body, "image_bytes": len(message.image or b"")}
        await asyncio.to_thread(self._append, json.dumps(record, ensure_ascii=False))
        return SendResult(True)

    def _append(self, line: str) -> None:
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        with self.spool.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    async def close(self) -> None:
        pass


class HttpGateway:
    """POSTs JSON to the configured gateway URL with an auth header; retries 5xx and timeouts with backoff."""

    def __init__(self, config: SmsConfig, *, backoff: float = 0.5) -> None:
        self.config = config
        self.backoff = backoff
        self._session: aiohttp.ClientSession | None = None

    async def send(self, message: OutgoingSms) -> SendResult:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.http_timeout))
        body = {"ref": message.ref, "kind": message.kind, "from": message.sender, "to": message.to,
                "subject": message.subject, "text": message.body}
        if message.image:
            body["image_base64"] = base64.b64encode(message.image).decode()
        headers = {"Idempotency-Key": message.ref}
        if self.config.http_token:
            headers[self.config.http_auth_header] = self.config.http_token
        last_error = ""
        for attempt in range(self.config.http_retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                async with self._session.post(self.config.http_url, json=body, headers=headers) as response:
                    text = (await response.text())[:200]
                    if response.status < 300:
                        return SendResult(True)
                    if 400 <= response.status < 500 and response.status != 429:
                        return SendResult(False, f"gateway refused ({response.status}): {text}", permanent=True)
                    last_error = f"gateway error ({response.status}): {text}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_error = f"gateway unreachable: {type(exc).__name__}"
            log.warning("sms %s: attempt %d failed: %s", message.ref, attempt + 1, last_error)
        return SendResult(False, last_error)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def make_gateway(config: SmsConfig) -> SmsGateway:
    return HttpGateway(config) if config.driver == "http" else OutboxGateway(config.spool_dir)

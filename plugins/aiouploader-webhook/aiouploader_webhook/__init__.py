"""An aiouploader plugin that POSTs each upload's result to a URL, in the background.

```toml
[plugins.webhook]
url = "https://hooks.example.com/uploads"
attempts = 3      # tries per upload
backoff = 1.0     # seconds before the second try, doubling after each failure
timeout = 10      # seconds per try
```

The body is the upload result, the JSON the client got with its 201; the
``X-Request-ID`` header is the upload's. Delivery starts once S3 confirmed the
object and never delays or fails the upload: a try fails on a connection
error, a timeout or a status other than 2xx, and when every try failed the
delivery is logged as an error with the request id and given up. When the
server stops, its shutdown waits for the deliveries in progress, retries
included, for what is left of ``server.shutdown_grace`` after the uploads in
flight; one still running then is cancelled, and logged as given up in the
same way.

Logs show the URL without its user, password, query and fragment.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiouploader import Upload, hookimpl
from aiouploader.config import Settings, parse_settings
from pydantic import Field, field_validator

__version__ = "0.1.0"
EVENT = "upload.completed"

log = logging.getLogger(__name__)
_deliveries: set[asyncio.Task[bool]] = set()


class WebhookSettings(Settings):
    url: str
    attempts: int = Field(3, ge=1, le=20)
    backoff: float = Field(1.0, ge=0)
    timeout: float = Field(10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        problem = ValueError("must be an http:// or https:// URL with a host and, if any, a port in 1..65535")
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:  # a port that is no number or above 65535, or a broken IPv6 address
            raise problem from None
        if not value.startswith(("http://", "https://")) or not parts.hostname or port == 0:
            raise problem
        return value


def _shown(url: str) -> str:
    """``url`` fit to log: without the user and password, the query and the fragment, which may hold secrets."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


async def deliver(settings: WebhookSettings, body: bytes, request_id: str) -> bool:
    """POST ``body`` to ``settings.url`` until a 2xx answer or out of attempts; whether it arrived."""
    headers = {"Content-Type": "application/json", "X-Request-ID": request_id, "X-Aiouploader-Event": EVENT}
    problem = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.timeout)) as session:
        for attempt in range(settings.attempts):
            if attempt:
                await asyncio.sleep(settings.backoff * 2 ** (attempt - 1))
            try:
                async with session.post(settings.url, data=body, headers=headers) as response:
                    if 200 <= response.status < 300:
                        return True
                    problem = f"status {response.status}"
            except TimeoutError:
                problem = f"no answer within {settings.timeout:g} seconds"
            except aiohttp.ClientResponseError as exc:  # its text holds the URL it went to
                problem = type(exc).__name__
            except aiohttp.ClientError as exc:
                problem = str(exc) or type(exc).__name__
            log.warning(
                "request %s: webhook try %d of %d to %s failed: %s",
                request_id,
                attempt + 1,
                settings.attempts,
                _shown(settings.url),
                problem,
                extra={"request_id": request_id},
            )
    log.error(
        "request %s: webhook to %s gave up after %d tries: %s",
        request_id,
        _shown(settings.url),
        settings.attempts,
        problem,
        extra={"request_id": request_id},
    )
    return False


async def drain() -> None:
    """Wait for the deliveries in progress, and any they are joined by meanwhile."""
    while _deliveries:
        await asyncio.gather(*_deliveries, return_exceptions=True)


@hookimpl
def aiouploader_configure(settings: dict[str, Any]) -> WebhookSettings:
    return parse_settings(WebhookSettings, settings)


@hookimpl
async def aiouploader_startup(settings: dict[str, WebhookSettings]) -> None:
    for route, webhook in settings.items():
        log.info("webhook: uploads to %s are posted to %s", route, _shown(webhook.url))


@hookimpl
async def aiouploader_shutdown(grace: float) -> None:
    """Wait for the deliveries in progress; cancelled when the grace is over, this cancels them."""
    if _deliveries:
        log.info("webhook: waiting up to %.1f seconds for %d deliveries", grace, len(_deliveries))
    await drain()


@hookimpl
def aiouploader_upload_completed(upload: Upload, result: dict[str, Any], settings: WebhookSettings) -> None:
    body = json.dumps(result).encode()
    task = asyncio.get_running_loop().create_task(deliver(settings, body, upload.request_id))
    _deliveries.add(task)
    task.add_done_callback(functools.partial(_finished, settings, upload.request_id))


def _finished(settings: WebhookSettings, request_id: str, task: asyncio.Task[bool]) -> None:
    _deliveries.discard(task)
    if task.cancelled():
        log.error(
            "request %s: webhook to %s gave up: cancelled",
            request_id,
            _shown(settings.url),
            extra={"request_id": request_id},
        )
    elif (exc := task.exception()) is not None:
        log.error("request %s: webhook delivery failed", request_id, exc_info=exc, extra={"request_id": request_id})

"""aiohttp's AppRunner, with the requests aiohttp cannot parse answered by the contract's JSON error.

aiohttp answers those itself, before any middleware runs, in plain text and
without ``X-Request-ID``. Its hook for that answer is
``RequestHandler.handle_error``; the handler class is chosen by its
``Server``, which only the runner's ``_make_server`` can replace.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, InvalidURLError, LineTooLong

from .errors import BadRequest
from .middlewares import error_response, request_id

log = logging.getLogger(__name__)
DETAIL_LIMIT = 200
_BYTES_REPR = re.compile(r"bytearray\((b['\"].*?['\"])\)|\bb(['\"])(.*?)\2")
_QUOTE_START = re.compile(r"bytearray\(|\bb['\"]")
_QUERY = re.compile(r"\?[^\s'\"]*")


def _one_line(message: str) -> str:
    """aiohttp's parser message without its caret line or Python reprs of bytes, on one line, shortened."""
    message = _BYTES_REPR.sub(lambda m: m[1][2:-1] if m[1] else m[3], message)
    lines = (line.strip() for line in message.splitlines())
    return " ".join(line for line in lines if line.strip("^")).rstrip(".")[:DETAIL_LIMIT]


def _detail(exc: BaseException | None, message: str) -> str:
    """The parser's message, quoting the request only where the method or target is wrong: a header may hold
    a credential."""
    if isinstance(exc, LineTooLong):
        return f"a request line or header is longer than {exc.args[1]} bytes"
    if isinstance(exc, BadHttpMethod | InvalidURLError):
        return _QUERY.sub("?...", _one_line(message))  # a query may hold a credential too
    return _one_line(_QUOTE_START.split(message, maxsplit=1)[0]).rstrip(":")


class _Connection(web.RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """``400 bad_request`` for a request that is not valid HTTP/1.1; anything else as aiohttp does."""
        if status != 400 or not isinstance(request, web.Request) or request.writer.output_size:
            return super().handle_error(request, status, exc, message)
        detail = _detail(exc, message or "") or "malformed request"
        log.info("request %s from %s: not valid HTTP/1.1: %s", request_id(request), request.remote, detail)
        response = error_response(request, BadRequest(f"The request is not valid HTTP/1.1: {detail}."))
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """An AppRunner whose connections answer unparsable requests with ``400 bad_request`` JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server
        return server

"""The small XML bodies of requests (CompleteMultipartUpload, CreateBucket's configuration): read whatever the
payload mode, bounded, checked against the signature, and parsed without document types or entities."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aiohttp import web

from ..errors import PayloadTooLarge
from .access import Caller
from .errors import MalformedXML
from .payload import Payload

MAX_XML_BODY = 4 * 1024 * 1024
"""The largest XML body: a CompleteMultipartUpload of 10,000 parts with every checksum fits with room to spare."""


async def read_xml_body(request: web.Request, caller: Caller, operation: str) -> bytes:
    """The body of the ``operation`` request, at most `MAX_XML_BODY` bytes, verified as its payload mode says."""
    payload, body = Payload(request, caller.verified), bytearray()
    while data := await payload.read():
        body += data
        if len(body) > MAX_XML_BODY:
            raise PayloadTooLarge(f"A {operation} body is at most {MAX_XML_BODY} bytes.")
    payload.verify()
    return bytes(body)


def parse(body: bytes, root: str) -> ET.Element:
    """The document ``body``, whose root element must be named ``root``; `MalformedXML` for anything else."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise MalformedXML(f"A {root} body has no document type or entities.")
    try:
        document = ET.fromstring(body)
    except ET.ParseError:
        raise MalformedXML() from None
    if local(document.tag) != root:
        raise MalformedXML()
    return document


def local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag.rpartition("}")[2]

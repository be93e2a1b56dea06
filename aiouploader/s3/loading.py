"""The botocore session behind the S3 client, keeping of botocore's data only what an S3 client reads.

botocore parses its data files into ``OrderedDict`` objects and keeps them as
long as the session lives: among them the endpoints of every AWS service in
every region (about 6.5 MiB of Python objects) for a client of one service.
Here its files are parsed into plain dicts, which keep their order all the
same, with empty documentation strings (botocore reads them only to write
docstrings), and the endpoints file keeps only the services that this
process's clients call: S3, and STS and SSO for the credential providers
that use them. It is read one service at a time: parsed whole (1.2 MB), it
left about 2 MiB of the interpreter's heap nearly empty after the cut, and
still resident.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from typing import Any

from aiobotocore.session import AioSession, get_session
from botocore.loaders import JSONFileLoader, create_loader

SERVICES = frozenset({"s3", "sts", "sso", "sso-oidc"})
OPENERS: dict[str, Any] = {".json": open, ".json.gz": gzip.open}
DOCUMENTATION = frozenset({"documentation", "documentationUrl"})
SERVICES_PATH = ("partitions", "*", "services")
"""Where the endpoints file lists services: each partition's ``services`` object (``*``: every item of an array)."""
_SPACE = re.compile(r"[ \t\n\r]*")


def without_documentation(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object with its documentation strings emptied: some of botocore's code expects the key."""
    return {key: "" if key in DOCUMENTATION and isinstance(value, str) else value for key, value in pairs}


_DECODER = json.JSONDecoder(object_pairs_hook=without_documentation)


def only_services(text: str, services: frozenset[str] = SERVICES) -> Any:
    """botocore's endpoints file parsed with each partition's ``services`` cut to ``services``."""
    return _decode(text, 0, SERVICES_PATH, services)[0]


def _decode(text: str, pos: int, path: tuple[str, ...], services: frozenset[str]) -> tuple[Any, int]:
    """The JSON value at ``pos`` and the position after it. Along ``path`` it is read member by member; the object at
    its end keeps only the members named in ``services``, each of the others dropped as soon as it is parsed."""
    pos = _space(text, pos)
    if path[:1] == ("*",) and text.startswith("[", pos):
        items: list[Any] = []
        pos = _space(text, pos + 1)
        while text[pos] != "]":
            item, pos = _decode(text, pos, path[1:], services)
            items.append(item)
            pos = _next(text, pos)
        return items, pos + 1
    if path[:1] != ("*",) and text.startswith("{", pos):
        members: list[tuple[str, Any]] = []
        pos = _space(text, pos + 1)
        while text[pos] != "}":
            key, pos = _DECODER.raw_decode(text, pos)
            pos = _space(text, _space(text, pos) + 1)  # past the colon
            if not path:
                value, pos = _DECODER.raw_decode(text, pos)
                if key in services:
                    members.append((key, value))
            else:
                value, pos = (
                    _decode(text, pos, path[1:], services) if key == path[0] else _DECODER.raw_decode(text, pos)
                )
                members.append((key, value))
            pos = _next(text, pos)
        return without_documentation(members), pos + 1
    return _DECODER.raw_decode(text, pos)


def _space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _next(text: str, pos: int) -> int:
    """Past the comma after an item or member, if one follows: at the next one, or at the closing bracket."""
    pos = _space(text, pos)
    return _space(text, pos + 1) if text.startswith(",", pos) else pos


class FileLoader(JSONFileLoader):  # type: ignore[misc]
    """botocore's loader of JSON data files, into plain dicts with empty documentation, the endpoints file cut to
    :data:`SERVICES`."""

    def load_file(self, file_path: str) -> Any:
        for extension, opener in OPENERS.items():
            if os.path.isfile(file_path + extension):
                with opener(file_path + extension, "rb") as file:
                    text = file.read().decode("utf-8")
                if os.path.basename(file_path) == "endpoints":
                    return only_services(text)
                return json.loads(text, object_pairs_hook=without_documentation)
        return None


def s3_session() -> AioSession:
    """A session whose clients are built from botocore's data as :class:`FileLoader` loads it."""
    session = get_session()
    loader = create_loader(session.get_config_variable("data_path"))
    loader.file_loader = FileLoader()
    session.register_component("data_loader", loader)
    return session

"""An upload's chain state between two requests: every stage's saved state as one sealed, versioned blob.

:meth:`aiouploader.chain.Pipeline.save` asks each stage for its state and
:meth:`aiouploader.chain.Chain.restore` gives it to new stages, in another
request or another process. In between the blob is plain bytes, to store
anywhere (with the upload's other state). Before sealing it is JSON::

    {"format": 1, "offset": 1048576,
     "stages": [{"plugin": "checksum", "stage": "aiouploader.digests.DigestStage", "state": "<base64>"}, ...]}

``offset`` is ``upload.size`` when it was saved: it is restored only for an
upload at that same offset. A stage's state may hold secrets (the
``encryption`` stage's payload key), so the blob is sealed with
ChaCha20-Poly1305 under a key derived from ``server.state_key``, which every
replica shares, with the upload's identity (its id, route, bucket and key)
as associated data: a blob that was altered, sealed under another key, or
saved for another upload is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import CannotResume
from .hookspecs import Upload, UploadStage

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

log = logging.getLogger(__name__)

Guard = Callable[[str, str], AbstractContextManager[None]]
"""Wraps the call (second argument) of a plugin's (first) code: an exception other than an ``UploadError`` is
the plugin's error."""
NO_KEY = "this server keeps no upload state: server.state_key is not set"

FORMAT = 1
"""The version of the blob's layout; a blob of another is refused."""
_SEALED = b"\x01"
"""The first byte of a sealed blob: its sealing scheme."""
_NONCE_SIZE = 12
_KEY_INFO = b"aiouploader chain state"


@dataclass(frozen=True)
class SavedStage:
    plugin: str
    """The name the plugin is registered under, or ``digests`` for the core's digest check."""
    stage: str
    """The stage's class, ``module.QualifiedName``: a plugin that now makes another stage cannot take it up."""
    state: bytes


def stage_kind(stage: UploadStage) -> str:
    return f"{type(stage).__module__}.{type(stage).__qualname__}"


class StateKey:
    """The key every replica seals and opens chain state with, from ``server.state_key``, and the keys it opens
    state with still (``server.previous_state_keys``).

    ``cryptography`` is imported on first use, not when a route's chain is built.
    """

    def __init__(self, secret: str, previous: Sequence[str] = ()) -> None:
        self._secrets = [secret, *previous]
        self._aeads: list[ChaCha20Poly1305] = []

    def _ciphers(self) -> list[ChaCha20Poly1305]:
        if not self._aeads:
            from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
            from cryptography.hazmat.primitives.hashes import SHA256
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF

            for secret in self._secrets:
                self._aeads.append(ChaCha20Poly1305(HKDF(SHA256(), 32, None, _KEY_INFO).derive(secret.encode())))
        return self._aeads

    def seal(self, data: bytes, bound_to: bytes) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        return _SEALED + nonce + self._ciphers()[0].encrypt(nonce, data, _SEALED + bound_to)

    def open(self, blob: bytes, bound_to: bytes) -> bytes:
        """The data :meth:`seal` was given; :class:`CannotResume` when the blob is not one sealed for ``bound_to``
        under this key."""
        from cryptography.exceptions import InvalidTag

        if blob[:1] != _SEALED or len(blob) < 1 + _NONCE_SIZE:
            raise CannotResume("its saved state is not in a format this server reads")
        for aead in self._ciphers():
            try:
                return aead.decrypt(blob[1 : 1 + _NONCE_SIZE], blob[1 + _NONCE_SIZE :], _SEALED + bound_to)
            except InvalidTag:
                continue
        raise CannotResume("its saved state was altered, is another upload's, or was sealed under another state key")


def bound_to(upload: Upload, upload_id: str) -> bytes:
    """What a blob is sealed for: the upload's id, route, bucket and key."""
    return json.dumps([upload_id, upload.route, upload.bucket, upload.s3_key]).encode()


def dump(stages: list[SavedStage], offset: int) -> bytes:
    return json.dumps(
        {
            "format": FORMAT,
            "offset": offset,
            "stages": [
                {"plugin": s.plugin, "stage": s.stage, "state": base64.b64encode(s.state).decode()} for s in stages
            ],
        },
        separators=(",", ":"),
    ).encode()


def load(data: bytes) -> tuple[int, list[SavedStage]]:
    """``(offset, stages)`` from what :func:`dump` made; :class:`CannotResume` for another format."""
    try:
        document: Any = json.loads(data)
        if document.get("format") != FORMAT:
            raise CannotResume(f"its state was saved in format {document.get('format')!r}; this server reads {FORMAT}")
        stages = [SavedStage(s["plugin"], s["stage"], base64.b64decode(s["state"])) for s in document["stages"]]
        offset = document["offset"]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise CannotResume("its saved state is not in a format this server reads") from None
    if not isinstance(offset, int):
        raise CannotResume("its saved state is not in a format this server reads")
    return offset, stages


def _unmovable(name: str) -> CannotResume:
    return CannotResume(f"the plugin {name!r} cannot take up its work in another process", plugin=name)


def save(stages: list[tuple[str, UploadStage]], guard: Guard) -> list[SavedStage]:
    """Each stage's state, in chain order; :class:`CannotResume` naming the first that cannot move or save."""
    saved = []
    for name, stage in stages:
        if not stage.movable:
            raise _unmovable(name)
        with guard(name, "save"):
            state = stage.save()
            if state is not None and not isinstance(state, bytes):
                raise TypeError(f"save() returned {type(state).__name__}, not bytes")
        if state is None:
            raise CannotResume(f"the plugin {name!r} does not save its state", plugin=name)
        saved.append(SavedStage(name, stage_kind(stage), state))
    return saved


def restore(
    stages: list[tuple[str, UploadStage]], saved: list[SavedStage], offset: int, upload: Upload, guard: Guard
) -> None:
    """Give each of the new ``stages`` its ``saved`` state; :class:`CannotResume` unless they are the stages that
    saved it, for an upload at the same ``offset``."""
    if offset != upload.size:
        raise CannotResume(f"its state was saved at byte {offset}, not at byte {upload.size}")
    then = [(s.plugin, s.stage) for s in saved]
    now = [(name, stage_kind(stage)) for name, stage in stages]
    if then != now:
        raise CannotResume(
            f"the route's plugins changed since it started: {', '.join(n for n, _ in then) or 'none'} then, "
            f"{', '.join(n for n, _ in now) or 'none'} now"
        )
    for (name, stage), state in zip(stages, saved, strict=True):
        if not stage.movable:
            raise _unmovable(name)
        with guard(name, "restore"):
            try:
                stage.restore(state.state)
            except ValueError as exc:
                log.warning(
                    "request %s: plugin %s refused its saved state: %s",
                    upload.request_id,
                    name,
                    exc,
                    extra={"request_id": upload.request_id},
                )
                raise CannotResume(f"the plugin {name!r} cannot take up its saved state", plugin=name) from None

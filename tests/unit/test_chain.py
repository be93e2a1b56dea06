"""A route's chain feeding the object writer, over an object store in memory."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import pluggy
import pytest

from aiouploader import hookspecs
from aiouploader.chain import BoundPlugin, Chain
from aiouploader.errors import PluginError
from aiouploader.hookspecs import Upload, UploadStage, hookimpl
from aiouploader.plugin_manager import PluginHooks
from aiouploader.s3 import ObjectWriter, Stored

from .memory_store import MemoryStore

MiB = 1024**2


class Upper(UploadStage):
    async def feed(self, block: bytes) -> bytes:
        return block.upper()


class Mark(UploadStage):
    """Appends ``x`` to each block, and ``end`` after the last."""

    async def feed(self, block: bytes) -> bytes:
        return block + b"x"

    async def finish(self) -> bytes:
        return b"end"


class HoldBack(UploadStage):
    """Passes nothing on until the end, then everything at once."""

    def __init__(self) -> None:
        self._held = bytearray()

    async def feed(self, block: bytes) -> bytes:
        self._held += block
        return b""

    async def finish(self) -> bytes:
        return bytes(self._held)


class FailOnThird(UploadStage):
    def __init__(self) -> None:
        self._blocks = 0

    async def feed(self, block: bytes) -> bytes:
        self._blocks += 1
        if self._blocks == 3:
            raise RuntimeError("the third block")
        return block


STAGES: dict[str, type[UploadStage]] = {"upper": Upper, "mark": Mark, "hold_back": HoldBack, "fail": FailOnThird}


class StagePlugin:
    def __init__(self, stage: type[UploadStage]) -> None:
        self._stage = stage

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return self._stage()


def chain_of(*names: str) -> Chain:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in names:
        pm.register(StagePlugin(STAGES[name]), name=name)
    return Chain([BoundPlugin(PluginHooks(pm, name), None) for name in names])


def new_upload() -> Upload:
    return Upload("r1", "/u", "bucket", "in/", "key", "text/plain", None, {})


async def store_through(chain: Chain, blocks: Iterable[bytes], store: MemoryStore) -> Stored:
    """What the server does with a body: the chain's stages, then the writer; aborted on failure."""
    upload = new_upload()
    chain.started(upload)
    pipeline = chain.pipeline(upload)
    target = ObjectWriter(
        store, store.config, upload.bucket, upload.s3_key, content_type=upload.content_type, metadata=upload.metadata
    )
    try:
        for block in blocks:
            await target.write(await pipeline.feed(block))
        await target.write(await pipeline.finish())
        return await target.complete()
    except BaseException:
        await target.abort()
        raise
    finally:
        await pipeline.close()


def stored(store: MemoryStore) -> bytes:
    return store.objects["bucket", "in/key"].body


async def test_the_store_holds_what_the_last_stage_passed_on_in_chain_order() -> None:
    store = MemoryStore()
    await store_through(chain_of("upper", "mark"), [b"ab", b"cd"], store)
    assert stored(store) == b"ABxCDxend"


async def test_trailing_bytes_of_a_finish_pass_through_the_stages_after_it() -> None:
    store = MemoryStore()
    await store_through(chain_of("mark", "upper"), [b"ab"], store)
    assert stored(store) == b"ABXEND"


async def test_bytes_a_stage_releases_at_finish_are_stored_in_parts() -> None:
    store, body = MemoryStore(), os.urandom(12 * MiB)
    await store_through(chain_of("hold_back"), (body[i : i + MiB] for i in range(0, len(body), MiB)), store)
    assert stored(store) == body
    assert store.objects["bucket", "in/key"].part_sizes == [5 * MiB, 5 * MiB, 2 * MiB]


async def test_a_stage_failing_mid_stream_is_a_plugin_error_and_leaves_nothing_in_the_store() -> None:
    store = MemoryStore()
    with pytest.raises(PluginError, match="'fail'"):
        await store_through(chain_of("fail"), [os.urandom(4 * MiB)] * 4, store)
    assert "create_multipart_upload" in store.calls  # the premise: a multipart upload was under way
    assert not store.uploads and not store.objects

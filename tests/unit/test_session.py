"""An upload session over an object store in memory: each hook once per plugin on every path, the bytes of
every segment in order in one object, and nothing left in the store when the upload fails."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections import Counter

import pluggy
import pytest

from aiouploader import hookspecs
from aiouploader.body import Read
from aiouploader.chain import BoundPlugin, Chain
from aiouploader.chain_state import StateKey
from aiouploader.errors import (
    BadRequest,
    CannotResume,
    Forbidden,
    PayloadTooLarge,
    PreconditionFailed,
    UploadError,
    UpstreamError,
    UpstreamTimeout,
)
from aiouploader.hookspecs import Upload, UploadResult, UploadStage, hookimpl
from aiouploader.plugin_manager import PluginHooks
from aiouploader.s3 import MAX_PARTS
from aiouploader.session import Phase, UploadLimits, UploadSession

from .memory_store import MemoryStore, refusal

MiB = 1024**2
BUCKET, KEY = "bucket", "in/key"

COMPLETED = {"started": 1, "stage": 1, "completed": 1, "failed": 0, "close": 1}
FAILED = {"started": 1, "stage": 1, "completed": 0, "failed": 1, "close": 1}
BEFORE_BODY = {"started": 1, "stage": 0, "completed": 0, "failed": 1, "close": 0}
"""Failed before the body (refused in ``upload_started``, no URL for a ``307``): no stage was made."""
HANDED_OFF = {"started": 1, "stage": 0, "completed": 0, "failed": 0, "close": 0}
"""A ``307``: S3 gets the bytes without the server, which never learns how that went."""


class _Stage(UploadStage):
    def __init__(self, plugin: Recording) -> None:
        self._plugin = plugin
        self._seen = 0

    async def feed(self, block: bytes) -> bytes:
        self._seen += len(block)
        if self._plugin.veto == "feed" and self._seen > self._plugin.after:
            raise Forbidden("vetoed in feed")
        return block

    async def finish(self) -> bytes:
        if self._plugin.veto == "finish":
            raise Forbidden("vetoed in finish")
        return b""

    async def close(self) -> None:
        self._plugin.calls["close"] += 1


class Recording:
    """Counts its lifecycle hooks and its stage's ``close``; vetoes the upload where ``veto`` says: in
    ``start``, in ``feed`` once more than ``after`` bytes went by, in ``finish``."""

    def __init__(self, veto: str | None = None, after: int = 0) -> None:
        self.veto = veto
        self.after = after
        self.calls: Counter[str] = Counter()
        self.errors: list[UploadError] = []

    def hooks(self) -> dict[str, int]:
        return {name: self.calls[name] for name in ("started", "stage", "completed", "failed", "close")}

    @hookimpl
    def aiouploader_upload_started(self, upload: Upload) -> None:
        self.calls["started"] += 1
        if self.veto == "start":
            raise Forbidden("refused in upload_started")

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload) -> UploadStage:
        self.calls["stage"] += 1
        return _Stage(self)

    @hookimpl
    def aiouploader_upload_completed(self, upload: Upload, result: UploadResult) -> None:
        self.calls["completed"] += 1

    @hookimpl
    def aiouploader_upload_failed(self, upload: Upload, error: UploadError) -> None:
        self.calls["failed"] += 1
        self.errors.append(error)


def session_of(
    store: MemoryStore,
    *plugins: Recording,
    max_size: int | None = None,
    content_length: int | None = None,
    if_none_match: bool = False,
) -> UploadSession:
    """A session as a handler makes one, over a chain of real plugins registered with a plugin manager."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    names = [f"plugin{i}" for i in range(len(plugins))]
    for name, plugin in zip(names, plugins, strict=True):
        pm.register(plugin, name=name)
    chain = Chain([BoundPlugin(PluginHooks(pm, name), None) for name in names])
    upload = Upload("r1", "/u", BUCKET, "in/", "key", "text/plain", content_length, {})
    limits = UploadLimits(block_size=MiB, idle_timeout=60, max_size=max_size, if_none_match=if_none_match)
    store.tag_support.setdefault(BUCKET, None)  # learnt by an earlier upload (tests/unit/test_tags.py)
    return UploadSession(store, chain, upload, limits)


def reader(body: bytes, piece: int = MiB) -> Read:
    """A segment's body, read in pieces of ``piece`` bytes."""
    pieces = [body[start : start + piece] for start in range(0, len(body), piece)]

    async def read() -> bytes:
        return pieces.pop(0) if pieces else b""

    return read


def broken(body: bytes) -> Read:
    """A body whose connection breaks once ``body`` went by."""
    rest = reader(body)

    async def read() -> bytes:
        if piece := await rest():
            return piece
        raise ConnectionResetError("connection reset by peer")

    return read


async def store(session: UploadSession, *segments: bytes) -> UploadResult:
    """What a handler does with a body: each segment received, then sealed and committed."""
    for segment in segments:
        await session.receive(reader(segment))
    await session.seal()
    return await session.commit()


def stored(memory: MemoryStore) -> bytes:
    return memory.objects[BUCKET, KEY].body


def nothing_left(memory: MemoryStore) -> bool:
    """Neither an object nor a multipart upload in the store."""
    return not memory.objects and not memory.uploads


# Completed


async def test_a_committed_upload_runs_each_hook_once_per_plugin() -> None:
    memory, plugins, body = MemoryStore(), (Recording(), Recording()), os.urandom(12 * MiB)
    session = session_of(memory, *plugins)
    result = await store(session, body)
    assert [plugin.hooks() for plugin in plugins] == [COMPLETED, COMPLETED]
    assert session.phase is Phase.COMPLETED and stored(memory) == body
    assert (result["key"], result["size"], result["etag"]) == (KEY, 12 * MiB, memory.objects[BUCKET, KEY].etag)


async def test_a_body_that_fits_one_part_is_one_put_object() -> None:
    memory = MemoryStore()
    await store(session_of(memory, Recording()), b"hello")
    assert memory.calls == ["put_object"] and stored(memory) == b"hello"


# Several segments


async def test_the_bytes_of_several_segments_are_one_object_in_order() -> None:
    memory, plugin = MemoryStore(), Recording()
    segments = [os.urandom(3 * MiB), os.urandom(4 * MiB), os.urandom(5 * MiB)]
    session = session_of(memory, plugin)
    for segment in segments:
        await session.receive(reader(segment, piece=MiB // 3))
        assert session.phase is Phase.RECEIVING
    await session.seal()
    result = await session.commit()
    assert stored(memory) == b"".join(segments)
    assert memory.objects[BUCKET, KEY].part_sizes == [5 * MiB, 5 * MiB, 2 * MiB]  # parts across segments
    assert result["size"] == session.upload.size == 12 * MiB
    assert plugin.hooks() == COMPLETED


async def test_segments_shorter_than_a_part_are_one_put_object() -> None:
    memory = MemoryStore()
    await store(session_of(memory, Recording()), b"hello, ", b"", b"world")
    assert memory.calls == ["put_object"] and stored(memory) == b"hello, world"


async def test_a_session_takes_no_segment_once_sealed() -> None:
    session = session_of(MemoryStore(), Recording())
    await session.receive(reader(b"hello"))
    await session.seal()
    with pytest.raises(RuntimeError):
        await session.receive(reader(b"more"))


async def test_the_size_bound_holds_across_segments() -> None:
    memory, plugin = MemoryStore(), Recording()
    session = session_of(memory, plugin, max_size=10 * MiB)
    await session.receive(reader(os.urandom(6 * MiB)))
    with pytest.raises(PayloadTooLarge):
        await session.receive(reader(os.urandom(6 * MiB)))
    assert plugin.hooks() == FAILED and nothing_left(memory)


# Part sizes and order


async def test_parts_that_arrive_out_of_order_are_stored_in_order() -> None:
    memory, body = MemoryStore(), os.urandom(12 * MiB)
    memory.part_delay[1] = 0.2
    await store(session_of(memory, Recording()), body[: 7 * MiB], body[7 * MiB :])
    assert memory.arrived[0] == 2  # the premise: part 2 got there first
    assert stored(memory) == body


async def test_the_announced_length_sets_the_part_size() -> None:
    memory = MemoryStore()
    session = session_of(memory, Recording(), content_length=MAX_PARTS * 5 * MiB + 1)
    await store(session, os.urandom(13 * MiB))
    assert memory.objects[BUCKET, KEY].part_sizes == [6 * MiB, 6 * MiB, 1 * MiB]


# Failures: each plugin hears upload_failed once, the store keeps nothing


async def test_a_refusal_in_upload_started_fails_each_plugin_once_and_reaches_no_store() -> None:
    memory, plugins = MemoryStore(), (Recording(), Recording(veto="start"))
    session = session_of(memory, *plugins)
    with pytest.raises(Forbidden):
        await session.receive(reader(b"hello"))
    assert [plugin.hooks() for plugin in plugins] == [BEFORE_BODY, BEFORE_BODY]
    assert session.phase is Phase.FAILED and memory.calls == []
    with pytest.raises(RuntimeError):
        await session.receive(reader(b"hello"))


async def test_a_body_cut_mid_stream_fails_once_and_aborts_the_multipart_upload() -> None:
    memory, plugins = MemoryStore(), (Recording(), Recording())
    session = session_of(memory, *plugins)
    with pytest.raises(BadRequest, match="could not be read to its end"):
        await session.receive(broken(os.urandom(7 * MiB)))
    assert "create_multipart_upload" in memory.calls  # the premise: a multipart upload was under way
    assert [plugin.hooks() for plugin in plugins] == [FAILED, FAILED]
    assert nothing_left(memory)


async def test_a_veto_in_feed_fails_each_plugin_once_and_leaves_nothing() -> None:
    memory, plugins = MemoryStore(), (Recording(), Recording(veto="feed", after=7 * MiB))
    with pytest.raises(Forbidden, match="vetoed in feed"):
        await store(session_of(memory, *plugins), os.urandom(6 * MiB), os.urandom(6 * MiB))
    assert "create_multipart_upload" in memory.calls
    assert [plugin.hooks() for plugin in plugins] == [FAILED, FAILED]
    assert nothing_left(memory)


async def test_a_veto_in_finish_fails_each_plugin_once_and_leaves_nothing() -> None:
    memory, plugins = MemoryStore(), (Recording(veto="finish"), Recording())
    session = session_of(memory, *plugins)
    with pytest.raises(Forbidden, match="vetoed in finish"):
        await store(session, os.urandom(12 * MiB))
    assert [plugin.hooks() for plugin in plugins] == [FAILED, FAILED]
    assert plugins[1].errors[0].message == "vetoed in finish"
    assert session.phase is Phase.FAILED and nothing_left(memory)


async def test_a_part_s3_refuses_fails_each_plugin_once_and_leaves_nothing() -> None:
    memory, plugin = MemoryStore(), Recording()
    memory.fail("upload_part", refusal("InternalError", 500))
    with pytest.raises(UpstreamError, match=r"S3 refused uploading part \d: InternalError"):
        await store(session_of(memory, plugin), os.urandom(12 * MiB))
    assert plugin.hooks() == FAILED and nothing_left(memory)


async def test_a_conditional_write_over_an_object_fails_once_and_keeps_the_object() -> None:
    memory, plugin = MemoryStore(), Recording()
    await store(session_of(memory, Recording()), b"first")
    with pytest.raises(PreconditionFailed):
        await store(session_of(memory, plugin, if_none_match=True), os.urandom(12 * MiB))
    assert plugin.hooks() == FAILED
    assert stored(memory) == b"first" and not memory.uploads


async def test_a_discarded_session_fails_once_and_leaves_nothing() -> None:
    memory, plugin = MemoryStore(), Recording()
    session = session_of(memory, plugin)
    await session.receive(reader(os.urandom(7 * MiB)))
    assert memory.uploads  # the premise: a multipart upload was under way
    given_up = UploadError("given up")
    await session.discard(given_up)
    await session.discard(UploadError("given up again"))
    assert plugin.hooks() == FAILED and plugin.errors == [given_up]
    assert session.phase is Phase.FAILED and nothing_left(memory)


async def test_a_session_abandoned_by_its_request_fails_once() -> None:
    memory, plugin = MemoryStore(), Recording()
    session = session_of(memory, plugin)
    await session.receive(reader(os.urandom(7 * MiB)))
    await session.seal()
    refused = Forbidden("the request was refused")
    await session.abandon(refused)
    assert plugin.hooks() == FAILED and plugin.errors == [refused]
    assert nothing_left(memory)
    with pytest.raises(RuntimeError):
        await session.commit()


async def test_a_session_that_never_started_is_abandoned_without_hooks() -> None:
    memory, plugin = MemoryStore(), Recording()
    await session_of(memory, plugin).abandon(Forbidden("refused before the upload started"))
    assert plugin.hooks() == dict.fromkeys(COMPLETED, 0) and memory.calls == []


async def test_a_cancelled_upload_fails_once_and_aborts_the_multipart_upload() -> None:
    memory, plugin = MemoryStore(), Recording()
    session = session_of(memory, plugin)
    stalled = asyncio.Event()
    rest = reader(os.urandom(7 * MiB))

    async def read() -> bytes:
        if piece := await rest():
            return piece
        stalled.set()
        await asyncio.Event().wait()  # the client sends no more
        return b""

    receiving = asyncio.create_task(session.receive(read))
    await stalled.wait()
    assert memory.uploads  # the premise: a multipart upload was under way
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    await session.abandon(asyncio.CancelledError())
    assert plugin.hooks() == FAILED and plugin.errors[0].message == "The upload was cancelled."
    assert session.phase is Phase.FAILED and nothing_left(memory)


# A direct route's 307


async def test_a_hand_off_runs_upload_started_only_and_gives_the_stores_url() -> None:
    memory, plugin = MemoryStore(), Recording()
    session = session_of(memory, plugin, if_none_match=True)
    url = await session.hand_off(expires_in=300, content_length=5, content_type=None)
    assert url == f"memory://{BUCKET}/{KEY}?expires_in=300&content_length=5&if_none_match=%2A"
    assert plugin.hooks() == HANDED_OFF and session.phase is Phase.HANDED_OFF
    await session.abandon(Forbidden("the request failed after the redirect"))
    assert plugin.hooks() == HANDED_OFF and memory.calls == ["presign_put"]


async def test_a_hand_off_refused_in_upload_started_fails_once_and_gives_no_url() -> None:
    memory, plugin = MemoryStore(), Recording(veto="start")
    with pytest.raises(Forbidden):
        await session_of(memory, plugin).hand_off(expires_in=300, content_length=None, content_type=None)
    assert plugin.hooks() == BEFORE_BODY and memory.calls == []


async def test_a_hand_off_the_store_gives_no_url_for_fails_once() -> None:
    memory, plugin = MemoryStore(), Recording()
    memory.fail("presign_put", UpstreamError("S3 gave no URL."))
    session = session_of(memory, plugin)
    with pytest.raises(UpstreamError):
        await session.hand_off(expires_in=300, content_length=None, content_type="text/plain")
    assert plugin.hooks() == BEFORE_BODY and session.phase is Phase.FAILED


# Uncertain outcomes: S3 did not answer the completion


async def test_a_completion_s3_made_without_answering_completes_once() -> None:
    memory, plugin, body = MemoryStore(), Recording(), os.urandom(12 * MiB)
    memory.fail("complete_multipart_upload", TimeoutError(), after=True)
    result = await store(session_of(memory, plugin), body)
    assert plugin.hooks() == COMPLETED
    assert stored(memory) == body and result["etag"] == memory.objects[BUCKET, KEY].etag


async def test_a_completion_that_cannot_be_checked_fails_once_and_says_it_may_be_stored() -> None:
    memory, plugin = MemoryStore(), Recording()
    memory.fail("complete_multipart_upload", TimeoutError(), after=True)
    memory.fail("abort_multipart_upload", TimeoutError())
    session = session_of(memory, plugin)
    with pytest.raises(UpstreamTimeout, match="this upload may have been stored"):
        await store(session, os.urandom(12 * MiB))
    assert plugin.hooks() == FAILED and session.phase is Phase.FAILED
    assert not memory.uploads


# Retracting a committed object (a form whose other file failed)


async def test_a_retracted_object_is_deleted_and_its_plugins_hear_nothing_more() -> None:
    memory, plugin = MemoryStore(), Recording()
    session = session_of(memory, plugin)
    await store(session, b"hello")
    await session.retract()
    assert nothing_left(memory) and plugin.hooks() == COMPLETED


async def test_only_a_committed_object_can_be_retracted() -> None:
    session = session_of(MemoryStore(), Recording())
    await session.receive(reader(b"hello"))
    with pytest.raises(RuntimeError):
        await session.retract()


# Paused in one session, taken up in another


class _Counting(UploadStage):
    """A stage whose state (the bytes it saw) moves with the upload."""

    def __init__(self, plugin: Movable) -> None:
        self._plugin = plugin
        self.seen = 0

    async def feed(self, block: bytes) -> bytes:
        self.seen += len(block)
        return block

    async def finish(self) -> bytes:
        self._plugin.seen = self.seen
        return b""

    def save(self) -> bytes:
        return str(self.seen).encode()

    def restore(self, state: bytes) -> None:
        self.seen = int(state)


class Movable(Recording):
    seen = 0

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload) -> UploadStage:
        self.calls["stage"] += 1
        return _Counting(self)


def movable_session(memory: MemoryStore, plugin: Recording, upload: Upload | None = None) -> UploadSession:
    session = session_of(memory, plugin)
    session.chain.state_key = StateKey("a state key of at least 32 characters")
    if upload is not None:
        session.upload = upload
    return session


async def test_a_paused_session_goes_on_in_another_with_its_parts_and_tail() -> None:
    memory, plugin, body = MemoryStore(), Movable(), os.urandom(11 * MiB)
    first = movable_session(memory, plugin)
    first.start()
    await first.receive(reader(body[: 7 * MiB]))
    blob, paused, tail = await first.pause("upload-1")
    assert first.phase is Phase.PAUSED and first.ended
    assert paused is not None and blob is not None
    assert [part["PartNumber"] for part in paused.parts] == [1] and paused.sizes == [5 * MiB]
    assert bytes(tail) == body[5 * MiB : 7 * MiB] and list(memory.uploads) == [paused.upload_id]

    upload = dataclasses.replace(first.upload, headers={})
    second = movable_session(memory, plugin, upload)
    await second.take_up("upload-1", blob, paused, bytes(tail))
    await second.receive(reader(body[7 * MiB :]))
    await second.seal()
    result = await second.commit()
    assert stored(memory) == body and result["size"] == len(body) and plugin.seen == len(body)
    assert plugin.hooks() == {"started": 1, "stage": 2, "completed": 1, "failed": 0, "close": 0}
    assert not memory.uploads


async def test_a_session_whose_stage_cannot_save_stays_where_it_is() -> None:
    memory, plugin, body = MemoryStore(), Recording(), os.urandom(7 * MiB)
    session = movable_session(memory, plugin)
    await session.receive(reader(body[:MiB]))
    with pytest.raises(CannotResume):
        await session.pause("upload-1")
    assert session.phase is Phase.RECEIVING
    await session.receive(reader(body[MiB:]))
    await session.seal()
    await session.commit()
    assert stored(memory) == body and plugin.hooks() == COMPLETED

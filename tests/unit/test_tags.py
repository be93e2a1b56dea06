"""What plugins may record as object tags, checked after each plugin's call, over an object store in memory."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import pluggy
import pytest

from aiouploader import hookspecs
from aiouploader.chain import BoundPlugin, Chain
from aiouploader.digests import repr_digest
from aiouploader.errors import PluginError, UpstreamError
from aiouploader.hookspecs import Upload, UploadStage, hookimpl
from aiouploader.plugin_manager import PluginHooks
from aiouploader.session import Phase, UploadLimits, UploadSession
from aiouploader.tags import TagWatch, problem, support

from .memory_store import MemoryStore, StoredObject
from .test_chain import new_upload, store_through
from .test_session import reader


@pytest.mark.parametrize(
    "tags, says",
    [
        ({f"k{i}": "v" for i in range(11)}, "at most 10 tags, and it has 11"),
        ({"": "v"}, "1 to 128"),
        ({"k" * 129: "v"}, "1 to 128"),
        ({"k": "v" * 257}, "at most 256"),
        ({"k": "a*b"}, "'*'"),
        ({"k?": "v"}, "'?'"),
        ({"AWS:k": "v"}, "aws:"),
        ({"k": 1}, "not a pair of str"),
        (["k"], "must be a dict"),
    ],
)
def test_tags_s3_would_refuse_are_named(tags: Any, says: str) -> None:
    assert says in (problem(tags) or "")


def test_tags_within_s3s_limits_pass() -> None:
    tags = {f"k{i}": "v" for i in range(9)} | {"k" * 128: "Ünïcode letters 0-9 +-=._:/@" + "v" * 200}
    assert problem(tags) is None
    assert problem({}) is None
    assert problem({"empty": ""}) is None


class _Recording(UploadStage):
    def __init__(self, upload: Upload, tags: dict[str, str]) -> None:
        self._upload = upload
        self._tags = tags

    async def finish(self) -> bytes:
        self._upload.tags.update(self._tags)
        return b""


class Recording:
    def __init__(self, tags: dict[str, str]) -> None:
        self._tags = tags

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return _Recording(upload, self._tags)


def recording_chain(**plugins: dict[str, str]) -> Chain:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, tags in plugins.items():
        pm.register(Recording(tags), name=name)
    return Chain([BoundPlugin(PluginHooks(pm, name), None) for name in plugins])


async def test_a_stage_recording_tags_s3_would_refuse_is_that_plugins_error_and_nothing_is_stored() -> None:
    store = MemoryStore()
    chain = recording_chain(fine={"a": "1"}, wrong={f"k{i}": "v" for i in range(10)})
    with pytest.raises(PluginError, match=r"'wrong'.*at most 10 tags"):
        await store_through(chain, [b"body"], store)
    assert not store.objects and not store.uploads


async def test_the_watch_knows_which_plugin_set_each_tag() -> None:
    upload = new_upload()
    watch = TagWatch(upload)
    pipeline = recording_chain(first={"a": "1", "b": "1"}, second={"b": "2"}).pipeline(upload, watch)
    await pipeline.finish()
    assert upload.tags == {"a": "1", "b": "2"}
    assert watch.origins == {"a": "first", "b": "second"}


def test_the_sha256_tag_is_answered_as_repr_digest_in_base64() -> None:
    digest = hashlib.sha256(b"body").digest()
    assert repr_digest({"sha256": digest.hex()}) == f"sha-256=:{base64.b64encode(digest).decode()}:"
    assert repr_digest({"sha256": "not hex"}) is None
    assert repr_digest({"lines": "2"}) is None


async def test_whether_a_bucket_keeps_tags_is_asked_once_and_a_single_put_object_carries_the_tags() -> None:
    store = MemoryStore()
    for key in ("first", "second"):
        upload = Upload("r1", "/u", "bucket", "in/", key, "text/plain", None, {})
        chain = recording_chain(counter={"lines": "1"})
        session = UploadSession(store, chain, upload, UploadLimits(block_size=1024, idle_timeout=60))
        await session.stage(reader(b"a\n"))
        await session.commit()
        assert upload.keeps_tags is True
    assert store.calls == ["put_tags", "put_object", "put_object"]
    assert sorted(key for _, key in store.objects) == ["in/first", "in/second"]
    assert all(stored.tags == {"lines": "1"} for stored in store.objects.values())


async def test_on_a_store_that_keeps_no_tags_an_upload_recording_them_stores_nothing() -> None:
    store = MemoryStore()
    store.tag_support["bucket"] = "the test says so"
    chain = recording_chain(counter={"lines": "1"})
    session = UploadSession(store, chain, new_upload(), UploadLimits(block_size=1024, idle_timeout=60))
    with pytest.raises(UpstreamError, match=r"\('counter'\).*does not keep.*the test says so"):
        await session.stage(reader(b"a\n"))
    assert session.phase is Phase.FAILED
    assert not store.objects and not store.uploads and store.calls == []


class StartedTagger:
    @hookimpl
    def aiouploader_upload_started(self, upload: Upload) -> None:
        upload.tags["state"] = "new?"


def test_tags_set_in_upload_started_are_checked_there_naming_the_plugin() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(StartedTagger(), name="early")
    chain = Chain([BoundPlugin(PluginHooks(pm, "early"), None)])
    with pytest.raises(PluginError, match=r"'early'.*'\?'"):
        chain.started(new_upload())


class _TagsAsObjects(MemoryStore):
    """A store that takes PutObjectTagging of a missing object for a PutObject, as ``rclone serve s3`` does."""

    def __init__(self) -> None:
        super().__init__()
        self.deleting = asyncio.Event()

    async def put_tags(self, bucket: str, key: str, tags: Mapping[str, str], version_id: str | None = None) -> None:
        await self._call("put_tags")
        self.objects[bucket, key] = StoredObject(b"<Tagging/>", '"tagging"', {})

    async def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        self.deleting.set()
        await super().delete(bucket, key, version_id)


async def test_uploads_that_ask_at_once_share_one_probe_of_the_bucket() -> None:
    store = MemoryStore()
    store.delay["put_tags"] = 0.05
    answers = await asyncio.gather(*(support(store, "bucket", "") for _ in range(8)))
    assert answers == [None] * 8
    assert store.calls.count("put_tags") == 1
    assert await support(store, "bucket", "") is None
    assert store.calls.count("put_tags") == 1  # learnt


async def test_a_probe_goes_on_to_remove_its_object_when_the_upload_that_asked_is_cancelled() -> None:
    store = _TagsAsObjects()
    store.delay["delete"] = 0.05
    asking = asyncio.create_task(support(store, "bucket", "p/"))
    await store.deleting.wait()
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    reason = await support(store, "bucket", "p/")
    assert reason == "the store took PutObjectTagging for a PutObject (rclone serve s3 does)"
    assert store.objects == {}
    assert store.calls.count("put_tags") == 1

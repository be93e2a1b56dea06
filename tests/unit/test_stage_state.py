"""A route's chain saved between two blocks, sealed, and taken up by new stages gives what an uncut stream gives."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import random
import subprocess
import sys
import zlib
from asyncio.subprocess import PIPE
from collections.abc import Callable
from pathlib import Path
from typing import Any

import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiouploader import chain_state
from aiouploader.age import CHUNK_SIZE
from aiouploader.chain import Chain, Pipeline
from aiouploader.chain_state import StateKey
from aiouploader.config import ConfigError, validate
from aiouploader.eicar import EICAR
from aiouploader.errors import CannotResume, ChecksumMismatch, Infected, PayloadTooLarge, UploadError
from aiouploader.hookspecs import Upload, UploadStage, hookimpl
from aiouploader.masking import masked
from aiouploader.plugin_manager import make_plugin_manager

AGE = "/usr/bin/age"
AGE_KEYGEN = "/usr/bin/age-keygen"
STATE_KEY = "a state key that every replica shares, 32+"
ALL = ["size_limit", "checksum", "virus_scan", "encryption"]
UPLOAD_ID = "u-1"


@dataclasses.dataclass(frozen=True)
class AgeKey:
    path: Path
    recipient: str


@pytest.fixture(scope="module")
def age_key(tmp_path_factory: pytest.TempPathFactory) -> AgeKey:
    path = tmp_path_factory.mktemp("age") / "identity.txt"
    subprocess.run([AGE_KEYGEN, "-o", str(path)], check=True, capture_output=True)
    recipient = subprocess.run([AGE_KEYGEN, "-y", str(path)], check=True, capture_output=True).stdout
    return AgeKey(path, recipient.decode().strip())


def config_data(
    recipient: str, plugins: list[str] = ALL, *, max_size: int = 2**40, state_key: str | None = STATE_KEY, **more: Any
) -> dict[str, Any]:
    return {
        "server": {} if state_key is None else {"state_key": state_key},
        "routes": [{"path": "/u", "bucket": "bucket", "prefix": "p/", "plugins": plugins}],
        "plugins": {
            "encryption": {"recipients": [recipient]},
            "size_limit": {"max_size": max_size},
            "virus_scan": more.get("virus_scan", {}),
        },
    }


def chain_of(data: dict[str, Any], pm: Any = None) -> Chain:
    """A new chain, as another process builds it from the same configuration."""
    config = validate(data)
    return Chain.for_route(pm or make_plugin_manager(entry_points=False), config, config.routes[0])


def digest_headers(body: bytes) -> dict[str, str]:
    def b64(digest: bytes) -> str:
        return base64.b64encode(digest).decode()

    return {
        "Content-MD5": b64(hashlib.md5(body).digest()),
        "x-amz-checksum-sha1": b64(hashlib.sha1(body).digest()),
        "x-amz-checksum-crc32": b64(zlib.crc32(body).to_bytes(4, "big")),
        "x-amz-checksum-crc32c": b64(crc32c.crc32c(body).to_bytes(4, "big")),
        "Content-Digest": f"sha-512=:{b64(hashlib.sha512(body).digest())}:",
    }


def new_upload(headers: dict[str, str] | None = None, key: str = "k") -> Upload:
    return Upload("r-1", "/u", "bucket", "p/", key, "application/octet-stream", None, headers or {})


def carried(upload: Upload) -> Upload:
    """The upload as another request gets it: plain data, through JSON."""
    return Upload(**{**json.loads(json.dumps(dataclasses.asdict(upload))), "request_id": "r-2"})


def blocks_of(body: bytes, sizes: list[int]) -> list[bytes]:
    blocks, pos, turn = [], 0, 0
    while pos < len(body):
        size = sizes[turn % len(sizes)] if sizes else len(body)
        blocks.append(body[pos : pos + size])
        pos, turn = pos + size, turn + 1
    return blocks


@dataclasses.dataclass
class Outcome:
    stored: bytes
    upload: Upload
    error: UploadError | None = None


async def stream(new_chain: Callable[[], Chain], upload: Upload, blocks: list[bytes], cuts: set[int]) -> Outcome:
    """Feed ``blocks`` as a session does; after each block whose index is in ``cuts``, save the pipeline, drop
    it, and go on with one restored from the blob alone, in a new chain, for the upload carried as data."""
    pipeline: Pipeline = new_chain().pipeline(upload)
    stored = bytearray()
    try:
        for i, block in enumerate(blocks):
            upload.size += len(block)
            stored += await pipeline.feed(block)
            if i in cuts:
                blob = pipeline.save(UPLOAD_ID)
                await pipeline.close()
                upload = carried(upload)
                pipeline = await new_chain().restore(upload, blob, UPLOAD_ID)
        stored += await pipeline.finish()
    except UploadError as exc:
        return Outcome(bytes(stored), upload, exc)
    finally:
        await pipeline.close()
    return Outcome(bytes(stored), upload)


def age_decrypt(key: AgeKey, ciphertext: bytes, tmp_path: Path) -> bytes:
    path = tmp_path / "stored.age"
    path.write_bytes(ciphertext)
    run = subprocess.run([AGE, "-d", "-i", str(key.path), str(path)], capture_output=True)
    assert run.returncode == 0, run.stderr.decode()
    return run.stdout


BODY = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 5, 300_000]).map(
        lambda n: random.Random(n).randbytes(n)
    ),
)


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=BODY,
    sizes=st.lists(st.integers(1, 2 * CHUNK_SIZE + 3), min_size=1, max_size=4),
    cuts=st.sets(st.integers(0, 12), max_size=5),
)
def test_a_stream_cut_anywhere_gives_the_digests_of_the_uncut_one_and_ciphertext_age_decrypts(
    age_key: AgeKey, tmp_path: Path, body: bytes, sizes: list[int], cuts: set[int]
) -> None:
    data = config_data(age_key.recipient)
    blocks = blocks_of(body, sizes)
    whole = asyncio.run(stream(lambda: chain_of(data), new_upload(digest_headers(body)), blocks, set()))
    cut = asyncio.run(stream(lambda: chain_of(data), new_upload(digest_headers(body)), blocks, cuts))
    assert whole.error is None and cut.error is None, (whole.error, cut.error)
    assert cut.upload.checksums == whole.upload.checksums
    assert cut.upload.checksums["sha256"] == hashlib.sha256(body).hexdigest()
    assert cut.upload.checksums["sha512"] == hashlib.sha512(body).hexdigest()
    assert cut.upload.reports == whole.upload.reports
    assert cut.upload.size == len(body)
    assert len(cut.stored) == len(whole.stored)  # one recipient: headers of one size
    assert age_decrypt(age_key, cut.stored, tmp_path) == body


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.integers(0, 5000),
    max_size=st.integers(0, 5000),
    sizes=st.lists(st.integers(1, 1500), min_size=1, max_size=4),
    cuts=st.sets(st.integers(0, 8), max_size=4),
    wrong_digest=st.booleans(),
)
def test_size_and_digest_verdicts_are_those_of_the_uncut_stream(
    age_key: AgeKey, size: int, max_size: int, sizes: list[int], cuts: set[int], wrong_digest: bool
) -> None:
    body = random.Random(size).randbytes(size)
    headers = digest_headers(body + b"!" if wrong_digest else body)
    data = config_data(age_key.recipient, ["size_limit", "checksum", "encryption"], max_size=max_size)
    blocks = blocks_of(body, sizes)
    whole = asyncio.run(stream(lambda: chain_of(data), new_upload(headers), blocks, set()))
    cut = asyncio.run(stream(lambda: chain_of(data), new_upload(headers), blocks, cuts))
    assert type(cut.error) is type(whole.error)
    assert cut.upload.size == whole.upload.size
    if size > max_size:
        assert isinstance(cut.error, PayloadTooLarge)
    elif wrong_digest:
        assert isinstance(cut.error, ChecksumMismatch)
    else:
        assert cut.error is None


def test_the_core_digest_check_is_carried_over_too(age_key: AgeKey, tmp_path: Path) -> None:
    body = random.Random(1).randbytes(200_000)
    data = config_data(age_key.recipient, ["encryption"])
    blocks = blocks_of(body, [70_000])
    cut = asyncio.run(stream(lambda: chain_of(data), new_upload(digest_headers(body)), blocks, {0, 1}))
    assert cut.error is None
    assert cut.upload.checksums["md5"] == hashlib.md5(body).hexdigest()
    wrong = asyncio.run(stream(lambda: chain_of(data), new_upload(digest_headers(body[1:])), blocks, {0, 1}))
    assert isinstance(wrong.error, ChecksumMismatch)


GO_ON_ELSEWHERE = """
import asyncio, base64, json, sys
from aiouploader.chain import Chain
from aiouploader.config import ConfigError, validate
from aiouploader.hookspecs import Upload
from aiouploader.plugin_manager import make_plugin_manager

async def main() -> None:
    given = json.load(sys.stdin)
    config = validate(given["config"])
    chain = Chain.for_route(make_plugin_manager(entry_points=False), config, config.routes[0])
    upload = Upload(**given["upload"])
    pipeline = await chain.restore(upload, base64.b64decode(given["blob"]), given["id"])
    rest = base64.b64decode(given["rest"])
    upload.size += len(rest)
    stored = await pipeline.feed(rest) + await pipeline.finish()
    await pipeline.close()
    json.dump({"stored": base64.b64encode(stored).decode(), "checksums": upload.checksums}, sys.stdout)

asyncio.run(main())
"""


async def test_another_process_goes_on_with_the_stream_from_the_blob_alone(age_key: AgeKey, tmp_path: Path) -> None:
    body = random.Random(2).randbytes(3 * CHUNK_SIZE + 777)
    data = config_data(age_key.recipient)
    upload = new_upload(digest_headers(body))
    pipeline = chain_of(data).pipeline(upload)
    head = body[: CHUNK_SIZE + 100]
    upload.size += len(head)
    stored = await pipeline.feed(head)
    blob = pipeline.save(UPLOAD_ID)
    await pipeline.close()
    given = {
        "config": data,
        "upload": dataclasses.asdict(upload),
        "blob": base64.b64encode(blob).decode(),
        "id": UPLOAD_ID,
        "rest": base64.b64encode(body[len(head) :]).decode(),
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", GO_ON_ELSEWHERE, stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    out, err = await child.communicate(json.dumps(given).encode())
    assert child.returncode == 0, err.decode()
    there = json.loads(out)
    assert there["checksums"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert there["checksums"]["md5"] == hashlib.md5(body).hexdigest()
    assert age_decrypt(age_key, stored + base64.b64decode(there["stored"]), tmp_path) == body


async def saved(data: dict[str, Any], upload: Upload, body: bytes = b"some bytes", pm: Any = None) -> bytes:
    pipeline = chain_of(data, pm).pipeline(upload)
    upload.size += len(body)
    await pipeline.feed(body)
    blob = pipeline.save(UPLOAD_ID)
    await pipeline.close()
    return blob


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_a_blob_altered_anywhere_is_refused(age_key: AgeKey, position: int, bit: int) -> None:
    data = config_data(age_key.recipient)
    upload = new_upload()
    blob = bytearray(asyncio.run(saved(data, upload)))
    blob[position % len(blob)] ^= 1 << bit
    with pytest.raises(CannotResume) as refused:
        asyncio.run(chain_of(data).restore(carried(upload), bytes(blob), UPLOAD_ID))
    assert refused.value.status == 410
    assert refused.value.to_json()["error"]["message"].endswith("start it again.")


async def test_a_cut_or_empty_blob_is_refused(age_key: AgeKey) -> None:
    data = config_data(age_key.recipient)
    upload = new_upload()
    blob = await saved(data, upload)
    for wrong in (b"", blob[:5], blob[:-1]):
        with pytest.raises(CannotResume):
            await chain_of(data).restore(carried(upload), wrong, UPLOAD_ID)


async def test_state_saved_for_one_upload_is_refused_for_another(age_key: AgeKey) -> None:
    data = config_data(age_key.recipient)
    upload = new_upload()
    blob = await saved(data, upload)
    assert (await chain_of(data).restore(carried(upload), blob, UPLOAD_ID)) is not None
    for other, upload_id in ((carried(upload), "u-2"), (dataclasses.replace(carried(upload), key="other"), UPLOAD_ID)):
        with pytest.raises(CannotResume, match="another upload's"):
            await chain_of(data).restore(other, blob, upload_id)


async def test_state_sealed_under_another_state_key_is_refused(age_key: AgeKey) -> None:
    upload = new_upload()
    blob = await saved(config_data(age_key.recipient), upload)
    elsewhere = config_data(age_key.recipient, state_key="another state key, just as long as it")
    with pytest.raises(CannotResume, match="another state key"):
        await chain_of(elsewhere).restore(carried(upload), blob, UPLOAD_ID)


async def test_state_saved_at_another_offset_is_refused(age_key: AgeKey) -> None:
    data = config_data(age_key.recipient)
    upload = new_upload()
    blob = await saved(data, upload)
    behind = dataclasses.replace(carried(upload), size=upload.size - 1)
    with pytest.raises(CannotResume, match=f"saved at byte {upload.size}, not at byte {upload.size - 1}"):
        await chain_of(data).restore(behind, blob, UPLOAD_ID)


async def test_a_blob_of_another_format_is_refused(age_key: AgeKey) -> None:
    upload = new_upload()
    document = json.dumps({"format": 2, "offset": 0, "stages": []}).encode()
    blob = StateKey(STATE_KEY).seal(document, chain_state.bound_to(upload, UPLOAD_ID))
    with pytest.raises(CannotResume, match="saved in format 2; this server reads 1"):
        await chain_of(config_data(age_key.recipient)).restore(upload, blob, UPLOAD_ID)


async def test_state_is_refused_where_the_routes_plugins_changed(age_key: AgeKey) -> None:
    upload = new_upload()
    blob = await saved(config_data(age_key.recipient, ["checksum", "encryption"]), upload)
    for now in (["checksum"], ["encryption", "checksum"], ["checksum", "virus_scan", "encryption"]):
        with pytest.raises(CannotResume, match="plugins changed since it started: checksum, encryption then"):
            await chain_of(config_data(age_key.recipient, now)).restore(carried(upload), blob, UPLOAD_ID)


async def test_a_stage_whose_kind_changed_is_refused(age_key: AgeKey) -> None:
    upload = new_upload()
    blob = await saved(config_data(age_key.recipient, ["virus_scan"]), upload)
    clamd = config_data(age_key.recipient, ["virus_scan"], virus_scan={"backend": "clamd"})
    with pytest.raises(CannotResume, match="plugins changed"):
        await chain_of(clamd).restore(carried(upload), blob, UPLOAD_ID)


async def test_a_clamd_scan_cannot_move_and_the_error_says_to_start_again(age_key: AgeKey) -> None:
    data = config_data(age_key.recipient, ["checksum", "virus_scan"], virus_scan={"backend": "clamd"})
    pipeline = chain_of(data).pipeline(new_upload())
    assert pipeline.unmovable() == ["virus_scan"]
    with pytest.raises(CannotResume) as refused:
        pipeline.save(UPLOAD_ID)
    await pipeline.close()
    assert refused.value.plugin == "virus_scan"
    assert refused.value.status == 410 and refused.value.code == "cannot_resume"
    assert refused.value.message == (
        "This upload cannot go on (the plugin 'virus_scan' cannot take up its work in another process); start it again."
    )
    stub = chain_of(config_data(age_key.recipient, ["checksum", "virus_scan"])).pipeline(new_upload())
    assert stub.unmovable() == []
    await stub.close()


class _Forgetful(UploadStage):
    """A stage that does not implement saving."""


class _Picky(UploadStage):
    def save(self) -> bytes:
        return b"v2"

    def restore(self, state: bytes) -> None:
        raise ValueError(f"state {state!r} is of a later release")


class _Plugin:
    def __init__(self, stage: type[UploadStage]) -> None:
        self.stage = stage

    @hookimpl
    def aiouploader_upload_stage(self) -> UploadStage:
        return self.stage()


def _with(name: str, stage: type[UploadStage]) -> Any:
    pm = make_plugin_manager(entry_points=False)
    pm.register(_Plugin(stage), name=name)
    return pm


async def test_a_stage_that_does_not_save_its_state_cannot_move(age_key: AgeKey) -> None:
    pipeline = chain_of(config_data(age_key.recipient, ["forgetful"]), _with("forgetful", _Forgetful)).pipeline(
        new_upload()
    )
    with pytest.raises(CannotResume, match="the plugin 'forgetful' does not save its state"):
        pipeline.save(UPLOAD_ID)
    await pipeline.close()


async def test_a_stage_that_cannot_read_its_saved_state_refuses_the_upload(
    age_key: AgeKey, caplog: pytest.LogCaptureFixture
) -> None:
    data = config_data(age_key.recipient, ["picky"])
    upload = new_upload()
    blob = await saved(data, upload, pm=_with("picky", _Picky))
    with pytest.raises(CannotResume, match="the plugin 'picky' cannot take up its saved state"):
        await chain_of(data, _with("picky", _Picky)).restore(carried(upload), blob, UPLOAD_ID)
    assert "plugin picky refused its saved state: state b'v2' is of a later release" in caplog.text


async def test_without_a_state_key_nothing_is_saved_or_restored(age_key: AgeKey) -> None:
    data = config_data(age_key.recipient, state_key=None)
    upload = new_upload()
    pipeline = chain_of(data).pipeline(upload)
    with pytest.raises(CannotResume, match=r"server\.state_key is not set"):
        pipeline.save(UPLOAD_ID)
    await pipeline.close()
    with pytest.raises(CannotResume, match=r"server\.state_key is not set"):
        await chain_of(data).restore(upload, b"\x01" + bytes(40), UPLOAD_ID)


def test_the_state_key_is_a_secret_of_32_characters_or_more(age_key: AgeKey) -> None:
    with pytest.raises(ConfigError, match=r"server\.state_key: must be at least 32 characters"):
        validate(config_data(age_key.recipient, state_key="too short"))
    shown = masked(validate(config_data(age_key.recipient)).model_dump())
    assert shown["server"]["state_key"] == "***"


async def test_the_saved_state_holds_no_readable_payload_key_or_plaintext(age_key: AgeKey) -> None:
    data = config_data(age_key.recipient)
    upload = new_upload()
    body = b"plaintext the stream holds back" * 10
    blob = await saved(data, upload, body)
    assert body[:31] not in blob
    assert b"encryption" not in blob and b"sha256" not in blob


async def test_state_saved_before_the_first_byte_goes_on_as_a_new_upload(age_key: AgeKey, tmp_path: Path) -> None:
    data = config_data(age_key.recipient)
    body = random.Random(3).randbytes(CHUNK_SIZE + 1)
    upload = new_upload(digest_headers(body))
    pipeline = chain_of(data).pipeline(upload)
    blob = pipeline.save(UPLOAD_ID)
    await pipeline.close()
    upload = carried(upload)
    pipeline = await chain_of(data).restore(upload, blob, UPLOAD_ID)
    upload.size += len(body)
    stored = await pipeline.feed(body) + await pipeline.finish()
    await pipeline.close()
    assert upload.checksums["sha256"] == hashlib.sha256(body).hexdigest()
    assert age_decrypt(age_key, stored, tmp_path) == body


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    before=st.integers(0, 300),
    sizes=st.lists(st.integers(1, 80), min_size=1, max_size=4),
    cuts=st.sets(st.integers(0, 12), max_size=6),
)
def test_eicar_split_across_a_cut_is_still_found(
    age_key: AgeKey, before: int, sizes: list[int], cuts: set[int]
) -> None:
    body = bytes(before) + EICAR + bytes(50)
    data = config_data(age_key.recipient, ["virus_scan", "encryption"])
    cut = asyncio.run(stream(lambda: chain_of(data), new_upload(), blocks_of(body, sizes), cuts))
    assert isinstance(cut.error, Infected)


async def test_state_sealed_under_a_previous_key_opens_while_that_key_is_listed(age_key: AgeKey) -> None:
    old, new = STATE_KEY, "the new state key, 32 characters or more"
    upload = new_upload()
    blob = await saved(config_data(age_key.recipient, state_key=old), upload)
    rotating = config_data(age_key.recipient, state_key=new)
    rotating["server"]["previous_state_keys"] = [old]
    pipeline = await chain_of(rotating).restore(carried(upload), blob, UPLOAD_ID)
    resealed = pipeline.save(UPLOAD_ID)
    await pipeline.close()
    only_new = chain_of(config_data(age_key.recipient, state_key=new))
    await (await only_new.restore(carried(upload), resealed, UPLOAD_ID)).close()  # saved again: under the new key
    with pytest.raises(CannotResume, match="another state key"):
        await only_new.restore(carried(upload), blob, UPLOAD_ID)


def test_previous_state_keys_are_secrets_and_need_a_state_key(age_key: AgeKey) -> None:
    data = config_data(age_key.recipient)
    data["server"]["previous_state_keys"] = ["short"]
    with pytest.raises(ConfigError, match=r"server\.previous_state_keys: must be at least 32 characters"):
        validate(data)
    data["server"] = {"previous_state_keys": [STATE_KEY]}
    with pytest.raises(ConfigError, match="previous_state_keys needs state_key"):
        validate(data)
    data["server"] = {"state_key": STATE_KEY, "previous_state_keys": [STATE_KEY[::-1]]}
    assert masked(validate(data).model_dump())["server"]["previous_state_keys"] == ["***"]

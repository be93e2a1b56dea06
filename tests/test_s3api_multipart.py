"""Multipart uploads through the S3 API with aws-cli and boto3: the parts pass the route's plugins once and in
order, whatever order and however often the client sends them; a failure anywhere stores nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import zlib
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from yarl import URL

from aiouploader import Upload, UploadStage, hookimpl
from aiouploader.checksums import b64
from aiouploader.eicar import EICAR
from aiouploader.metrics import METRICS
from aiouploader.plugin_manager import make_plugin_manager
from aiouploader.service import SERVICE
from aiouploader.testing import MakeProxy, Proxy, S3Server
from tests.s3api_clients import CREDENTIALS, client, signed_headers, streaming_put
from tests.test_s3api_awscli import aws
from tests.test_s3api_boto3 import BUCKET, age_decrypted, call, encrypting_s3_api_proxy, error_of, put, s3_api_proxy

MiB = 1024 * 1024


def crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


async def start(s3: Any, key: str, **params: Any) -> str:
    return str((await call(s3.create_multipart_upload, Bucket=BUCKET, Key=key, **params))["UploadId"])


async def send_part(s3: Any, key: str, upload_id: str, number: int, body: bytes, **params: Any) -> dict[str, Any]:
    sent: dict[str, Any] = await call(
        s3.upload_part, Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body, **params
    )
    return sent


async def finish(s3: Any, key: str, upload_id: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    done: dict[str, Any] = await call(
        s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    return done


def nothing_left(s3_server: S3Server, bucket: str) -> bool:
    return s3_server.keys(bucket) == [] and s3_server.multipart_uploads(bucket) == []


# ---- real clients, default settings --------------------------------------------------------------------------


async def test_aws_s3_cp_of_40_mib_sends_parallel_parts_and_stores_the_file(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, tls: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls)
    body = os.urandom(40 * MiB)
    (tmp_path / "up.bin").write_bytes(body)
    status, _, err = await aws(proxy, tmp_path, "s3", "cp", "up.bin", f"s3://{BUCKET}/big.bin")
    assert status == 0, err
    assert s3_server.get(bucket, "raw/big.bin") == body and s3_server.multipart_uploads(bucket) == []
    status, _, err = await aws(proxy, tmp_path, "s3", "cp", f"s3://{BUCKET}/big.bin", "down.bin")
    assert status == 0, err
    assert (tmp_path / "down.bin").read_bytes() == body


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_aws_s3_cp_from_stdin_over_the_part_size_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, tls: Path
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls)
    body = os.urandom(20 * MiB + 5)
    status, _, err = await aws(proxy, tmp_path, "s3", "cp", "-", f"s3://{BUCKET}/piped.bin", stdin=body)
    assert status == 0, err
    assert s3_server.get(bucket, "raw/piped.bin") == body


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize(
    "transfer",
    [TransferConfig(), TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)],
    ids=["default-transfer-config", "5-mib-parts"],
)
async def test_boto3_upload_file_stores_the_file(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path, tls: Path, transfer: TransferConfig
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, tls)
    s3 = client(proxy.s3_api_url or "", verify=str(tls / "cert.pem"))
    body = os.urandom(21 * MiB)
    (tmp_path / "up.bin").write_bytes(body)
    await asyncio.to_thread(s3.upload_file, str(tmp_path / "up.bin"), BUCKET, "file.bin", Config=transfer)
    assert s3_server.get(bucket, "raw/file.bin") == body and s3_server.multipart_uploads(bucket) == []
    await asyncio.to_thread(s3.download_file, BUCKET, "file.bin", str(tmp_path / "down.bin"))
    s3.close()
    assert (tmp_path / "down.bin").read_bytes() == body


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_eicar_split_across_two_parts_is_refused_and_nothing_is_stored(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "eicar.com")
    with pytest.raises(ClientError) as raised:
        first = await send_part(s3, "eicar.com", upload_id, 1, EICAR[:30])
        second = await send_part(s3, "eicar.com", upload_id, 2, EICAR[30:])
        parts = [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
        await finish(s3, "eicar.com", upload_id, parts)
    assert error_of(raised) == (422, "Infected")
    assert nothing_left(s3_server, bucket)
    with pytest.raises(ClientError) as raised:
        await call(s3.list_parts, Bucket=BUCKET, Key="eicar.com", UploadId=upload_id)
    assert error_of(raised) == (404, "NoSuchUpload")


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_an_encrypted_route_stores_age_of_the_whole_multipart_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    proxy, identity = await encrypting_s3_api_proxy(make_proxy, bucket, tmp_path)
    s3 = client(proxy.s3_api_url or "")
    body = os.urandom(12 * MiB + 3)
    (tmp_path / "up.bin").write_bytes(body)
    transfer = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    await asyncio.to_thread(s3.upload_file, str(tmp_path / "up.bin"), BUCKET, "secret.bin", Config=transfer)
    stored = s3_server.get(bucket, "raw/secret.bin")
    assert stored.startswith(b"age-encryption.org/v1\n")
    assert await age_decrypted(stored, identity) == body
    assert (await call(s3.get_object, Bucket=BUCKET, Key="secret.bin"))["Body"] == body


# ---- the operations, one by one --------------------------------------------------------------------------------


async def test_parts_sent_out_of_order_pass_in_order(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    bodies = [os.urandom(MiB) + bytes([n]) for n in range(4)]
    later = [asyncio.create_task(send_part(s3, "k", upload_id, n + 1, bodies[n])) for n in (3, 2, 1)]
    await asyncio.sleep(0)
    first = await send_part(s3, "k", upload_id, 1, bodies[0])
    sent = [first, *reversed(await asyncio.gather(*later))]
    parts = [{"PartNumber": n + 1, "ETag": answer["ETag"]} for n, answer in enumerate(sent)]
    done = await finish(s3, "k", upload_id, parts)
    assert s3_server.get(bucket, "raw/k") == b"".join(bodies)
    assert [answer["ETag"] for answer in sent] == [f'"{hashlib.sha256(b).hexdigest()}"' for b in bodies]
    assert done["ETag"] == f'"{hashlib.md5(b"".join(hashlib.sha256(b).digest() for b in bodies)).hexdigest()}-4"'


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_part_without_a_checksum_is_answered_its_md5_as_etag(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "", request_checksum_calculation="when_required")
    upload_id = await start(s3, "k")
    bodies = [os.urandom(MiB), b"last"]
    sent = [await send_part(s3, "k", upload_id, n + 1, body) for n, body in enumerate(bodies)]
    assert [answer["ETag"] for answer in sent] == [f'"{hashlib.md5(b).hexdigest()}"' for b in bodies]
    assert not any(name.startswith("Checksum") for answer in sent for name in answer)
    again = await send_part(s3, "k", upload_id, 1, bodies[0])
    assert again["ETag"] == sent[0]["ETag"]
    done = await finish(s3, "k", upload_id, [{"PartNumber": n + 1, "ETag": a["ETag"]} for n, a in enumerate(sent)])
    assert done["ETag"] == f'"{hashlib.md5(b"".join(hashlib.md5(b).digest() for b in bodies)).hexdigest()}-2"'
    assert s3_server.get(bucket, "raw/k") == b"".join(bodies)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_part_with_a_content_md5_is_answered_its_md5_as_etag(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    body = b"part with both"
    sent = await send_part(s3, "k", upload_id, 1, body, ContentMD5=b64(hashlib.md5(body).digest()))
    assert sent["ETag"] == f'"{hashlib.md5(body).hexdigest()}"' and sent["ChecksumCRC32"] == b64(crc32(body))
    await finish(s3, "k", upload_id, [{"PartNumber": 1, "ETag": sent["ETag"]}])
    assert s3_server.get(bucket, "raw/k") == body


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_part_with_a_trailing_checksum_is_answered_it_as_etag_and_a_retry_is_recognised_by_it(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k", ChecksumAlgorithm="CRC32")
    query = f"k?partNumber=1&uploadId={upload_id}"
    chunks, trailer = [b"a" * 65536, b"tail"], ("x-amz-checksum-crc32", b64(crc32(b"a" * 65536 + b"tail")))
    answers = []
    for _ in range(2):
        headers, body = streaming_put(f"{proxy.s3_api_url}/{BUCKET}/{query}", chunks, trailer)
        async with proxy.session.put(f"{proxy.s3_api_url}/{BUCKET}/{query}", headers=headers, data=body) as answer:
            assert answer.status == 200, await answer.text()
            answers.append((answer.headers["ETag"], answer.headers["x-amz-checksum-crc32"]))
    assert answers == [(f'"{crc32(b"".join(chunks)).hex()}"', trailer[1])] * 2
    part = {"PartNumber": 1, "ETag": answers[0][0], "ChecksumCRC32": trailer[1]}
    await finish(s3, "k", upload_id, [part])
    assert s3_server.get(bucket, "raw/k") == b"".join(chunks)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_part_waiting_too_long_for_the_ones_before_is_request_timeout_and_the_upload_goes_on(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, s3_api={"multipart_part_wait": 0.2})
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    with pytest.raises(ClientError) as raised:
        await send_part(s3, "k", upload_id, 2, b"second")
    assert error_of(raised) == (400, "RequestTimeout")
    first = await send_part(s3, "k", upload_id, 1, b"first ")
    second = await send_part(s3, "k", upload_id, 2, b"second")
    parts = [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
    await finish(s3, "k", upload_id, parts)
    assert s3_server.get(bucket, "raw/k") == b"first second"


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_retried_part_with_the_same_bytes_is_accepted_once(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    first = await send_part(s3, "k", upload_id, 1, b"one ")
    again = await send_part(s3, "k", upload_id, 1, b"one ")
    assert again["ETag"] == first["ETag"]
    second = await send_part(s3, "k", upload_id, 2, b"two")
    await finish(
        s3, "k", upload_id, [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
    )
    assert s3_server.get(bucket, "raw/k") == b"one two"


async def test_a_part_that_changes_after_it_passed_refuses_the_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    await send_part(s3, "k", upload_id, 1, b"x" * MiB)
    with pytest.raises(ClientError) as raised:
        await send_part(s3, "k", upload_id, 1, b"y" * MiB)
    assert error_of(raised) == (400, "InvalidPart")
    with pytest.raises(ClientError) as raised:
        await send_part(s3, "k", upload_id, 2, b"z")
    assert error_of(raised) == (404, "NoSuchUpload")
    assert nothing_left(s3_server, bucket)


async def test_abort_multipart_upload_leaves_nothing(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    await send_part(s3, "k", upload_id, 1, os.urandom(6 * MiB))
    aborted = await call(s3.abort_multipart_upload, Bucket=BUCKET, Key="k", UploadId=upload_id)
    assert aborted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert nothing_left(s3_server, bucket)
    with pytest.raises(ClientError) as raised:
        await send_part(s3, "k", upload_id, 2, b"late")
    assert error_of(raised) == (404, "NoSuchUpload")


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_abort_after_a_refused_part_answers_204_and_the_upload_stays_gone(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "eicar.com")
    with pytest.raises(ClientError) as raised:
        await send_part(s3, "eicar.com", upload_id, 1, EICAR)
        await finish(s3, "eicar.com", upload_id, [])
    assert error_of(raised) == (422, "Infected")
    for _ in range(2):
        aborted = await call(s3.abort_multipart_upload, Bucket=BUCKET, Key="eicar.com", UploadId=upload_id)
        assert aborted["ResponseMetadata"]["HTTPStatusCode"] == 204
    for key, upload in (("eicar.com", upload_id), ("other", upload_id), ("eicar.com", "not-an-upload-id")):
        with pytest.raises(ClientError) as raised:
            await call(s3.list_parts, Bucket=BUCKET, Key=key, UploadId=upload)
        assert error_of(raised) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as raised:
        await call(s3.abort_multipart_upload, Bucket=BUCKET, Key="other", UploadId=upload_id)
    assert error_of(raised) == (404, "NoSuchUpload")
    assert nothing_left(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_an_unknown_upload_id_is_no_such_upload(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    for key, known in (("k", "not-an-upload-id"), ("other", upload_id)):
        with pytest.raises(ClientError) as raised:
            await send_part(s3, key, known, 1, b"x")
        assert error_of(raised) == (404, "NoSuchUpload")
    assert s3_server.keys(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_list_parts_and_list_multipart_uploads_show_what_this_server_holds(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "dir/k", ChecksumAlgorithm="CRC32")
    other_id = await start(s3, "else")
    first = await send_part(s3, "dir/k", upload_id, 1, b"a" * 1000, ChecksumAlgorithm="CRC32")
    await send_part(s3, "dir/k", upload_id, 2, b"b" * 10, ChecksumAlgorithm="CRC32")
    listed = await call(s3.list_parts, Bucket=BUCKET, Key="dir/k", UploadId=upload_id, MaxParts=1)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed["Parts"]] == [(1, 1000, first["ETag"])]
    assert listed["Parts"][0]["ChecksumCRC32"] == b64(crc32(b"a" * 1000)) and listed["IsTruncated"]
    rest = await call(s3.list_parts, Bucket=BUCKET, Key="dir/k", UploadId=upload_id, PartNumberMarker=1)
    assert [p["PartNumber"] for p in rest["Parts"]] == [2] and not rest["IsTruncated"]
    uploads = await call(s3.list_multipart_uploads, Bucket=BUCKET)
    assert sorted((u["Key"], u["UploadId"]) for u in uploads["Uploads"]) == [("dir/k", upload_id), ("else", other_id)]
    uploads = await call(s3.list_multipart_uploads, Bucket=BUCKET, Prefix="dir/")
    assert [u["Key"] for u in uploads["Uploads"]] == ["dir/k"]


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_complete_with_a_wrong_etag_is_invalid_part_and_the_upload_stays(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    first = await send_part(s3, "k", upload_id, 1, b"a")
    second = await send_part(s3, "k", upload_id, 2, b"b")
    with pytest.raises(ClientError) as raised:
        await finish(s3, "k", upload_id, [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": '"0"'}])
    assert error_of(raised) == (400, "InvalidPart")
    with pytest.raises(ClientError) as raised:
        await finish(s3, "k", upload_id, [{"PartNumber": 1, "ETag": first["ETag"]}])
    assert error_of(raised) == (400, "InvalidPart")
    with pytest.raises(ClientError) as raised:
        parts = [{"PartNumber": 2, "ETag": second["ETag"]}, {"PartNumber": 1, "ETag": first["ETag"]}]
        await finish(s3, "k", upload_id, parts)
    assert error_of(raised) == (400, "InvalidPartOrder")
    assert s3_server.keys(bucket) == []
    await finish(
        s3, "k", upload_id, [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
    )
    assert s3_server.get(bucket, "raw/k") == b"ab"


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize(
    "body",
    [
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
        b'<!DOCTYPE c [<!ENTITY e "1">]><CompleteMultipartUpload/>',
        b"<Upload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Upload>",
    ],
    ids=["unclosed", "entity", "another-root"],
)
async def test_complete_with_a_body_that_is_not_well_formed_is_malformed_xml_and_the_upload_stays(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, body: bytes
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    part = await send_part(s3, "k", upload_id, 1, b"a")
    url = f"{proxy.s3_api_url}/{BUCKET}/k?uploadId={upload_id}"
    headers = signed_headers("POST", url, hashlib.sha256(body).hexdigest())
    async with proxy.session.post(URL(url, encoded=True), headers=headers, data=body) as response:
        assert response.status == 400 and "<Code>MalformedXML</Code>" in await response.text()
    assert s3_server.keys(bucket) == []
    await finish(s3, "k", upload_id, [{"PartNumber": 1, "ETag": part["ETag"]}])
    assert s3_server.get(bucket, "raw/k") == b"a"


async def crc32_upload(s3: Any, kind: str, bodies: list[bytes]) -> tuple[str, list[dict[str, Any]]]:
    """An upload at ``k`` of ``bodies`` as parts, with CRC32 checksums of the type ``kind``, not completed: its id
    and the parts list that completes it (as the parts were answered)."""
    upload_id = await start(s3, "k", ChecksumAlgorithm="CRC32", ChecksumType=kind)
    sent = [await send_part(s3, "k", upload_id, n + 1, b, ChecksumAlgorithm="CRC32") for n, b in enumerate(bodies)]
    return upload_id, [
        {"PartNumber": n + 1, "ETag": a["ETag"], "ChecksumCRC32": a["ChecksumCRC32"]} for n, a in enumerate(sent)
    ]


def object_crc32(kind: str, bodies: list[bytes]) -> str:
    """The CRC32 that CompleteMultipartUpload answers for parts ``bodies``: of all their bytes (``FULL_OBJECT``), or
    of the parts' checksums, with ``-N`` (``COMPOSITE``)."""
    if kind == "FULL_OBJECT":
        return b64(crc32(b"".join(bodies)))
    return b64(crc32(b"".join(crc32(b) for b in bodies))) + f"-{len(bodies)}"


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("kind", ["COMPOSITE", "FULL_OBJECT"])
async def test_complete_answers_the_checksum_of_what_the_client_sent(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, kind: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    bodies = [b"first part " * 1000, b"second"]
    upload_id, parts = await crc32_upload(s3, kind, bodies)
    assert [part["ChecksumCRC32"] for part in parts] == [b64(crc32(b)) for b in bodies]
    done = await finish(s3, "k", upload_id, parts)
    assert done["ChecksumCRC32"] == object_crc32(kind, bodies)
    assert done["ChecksumCRC32"].endswith("-2") == (kind == "COMPOSITE")
    assert done["ChecksumType"] == kind


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("kind", ["COMPOSITE", "FULL_OBJECT"])
async def test_a_complete_whose_checksum_is_not_the_uploads_is_bad_digest_and_the_upload_stays(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, kind: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    bodies = [os.urandom(MiB), b"last"]
    upload_id, parts = await crc32_upload(s3, kind, bodies)
    answered = object_crc32(kind, bodies)
    right = answered.removesuffix("-2")
    complete = {"Bucket": BUCKET, "Key": "k", "UploadId": upload_id, "MultipartUpload": {"Parts": parts}}
    for wrong in (b64(crc32(b"other bytes")), right + "-3" if kind == "COMPOSITE" else "AAAAAA=="):
        with pytest.raises(ClientError) as raised:
            await call(s3.complete_multipart_upload, **complete, ChecksumCRC32=wrong)
        assert error_of(raised) == (400, "BadDigest")
        assert s3_server.keys(bucket) == []
    done = await call(s3.complete_multipart_upload, **complete, ChecksumCRC32=right)
    assert done["ChecksumCRC32"] == answered
    assert s3_server.get(bucket, "raw/k") == b"".join(bodies) and s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
@pytest.mark.parametrize("kind", ["COMPOSITE", "FULL_OBJECT"])
async def test_a_complete_sent_again_after_it_succeeded_answers_the_same_result(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, kind: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    bodies = [os.urandom(MiB), b"last"]
    upload_id, parts = await crc32_upload(s3, kind, bodies)
    first = await finish(s3, "k", upload_id, parts)
    again = await finish(s3, "k", upload_id, parts)
    fields = ("Location", "Bucket", "Key", "ETag", "ChecksumCRC32", "ChecksumType")
    assert {f: again.get(f) for f in fields} == {f: first.get(f) for f in fields}
    assert again["ETag"].endswith('-2"') and again["ChecksumType"] == kind
    assert again["Location"] == f"{proxy.s3_api_url}/{BUCKET}/k"
    assert s3_server.get(bucket, "raw/k") == b"".join(bodies) and s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_completed_upload_is_no_such_upload_to_another_parts_list_and_every_other_operation(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    first = await send_part(s3, "k", upload_id, 1, b"one ")
    second = await send_part(s3, "k", upload_id, 2, b"two")
    parts = [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]
    await finish(s3, "k", upload_id, parts)
    others = [[parts[0]], [parts[0], {"PartNumber": 2, "ETag": first["ETag"]}], [*parts, {**parts[1], "PartNumber": 3}]]
    for other in others:
        with pytest.raises(ClientError) as raised:
            await finish(s3, "k", upload_id, other)
        assert error_of(raised) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as raised:
        await finish(s3, "other-key", upload_id, parts)
    assert error_of(raised) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as raised:
        await call(s3.list_parts, Bucket=BUCKET, Key="k", UploadId=upload_id)
    assert error_of(raised) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as raised:
        await send_part(s3, "k", upload_id, 3, b"late")
    assert error_of(raised) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as raised:
        await call(s3.abort_multipart_upload, Bucket=BUCKET, Key="k", UploadId=upload_id)
    assert error_of(raised) == (404, "NoSuchUpload")
    assert s3_server.get(bucket, "raw/k") == b"one two"
    assert (await finish(s3, "k", upload_id, parts))["ETag"].endswith('-2"')


class _HeldStage(UploadStage):
    def __init__(self, gate: Gate) -> None:
        self._gate = gate

    async def finish(self) -> bytes:
        self._gate.entered.set()
        await self._gate.opened.wait()
        return b""


class Gate:
    """Holds an upload's end (its stage's ``finish``) until ``opened`` is set; ``entered`` tells that it is held."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return _HeldStage(self)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_complete_sent_again_while_the_first_commits_answers_its_result(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    gate, pm = Gate(), make_plugin_manager()
    pm.register(gate, name="gate")
    route = {"path": "/files", "bucket": bucket, "prefix": "raw/", "s3_api_bucket": BUCKET, "plugins": ["gate"]}
    proxy = await make_proxy(routes=[route], pm=pm, s3_api={"port": 0, "credentials": CREDENTIALS})
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    parts = [{"PartNumber": 1, "ETag": (await send_part(s3, "k", upload_id, 1, b"body"))["ETag"]}]
    first = asyncio.create_task(finish(s3, "k", upload_id, parts))
    await gate.entered.wait()
    again = asyncio.create_task(finish(s3, "k", upload_id, parts))
    registry = proxy.app[METRICS].registry
    for _ in range(3000):
        if registry.get_sample_value("aiouploader_uploads_in_flight") == 2:
            break
        await asyncio.sleep(0.01)
    assert s3_server.keys(bucket) == []
    gate.opened.set()
    assert (await again)["ETag"] == (await first)["ETag"]
    assert s3_server.get(bucket, "raw/k") == b"body"


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_tampered_chunk_in_a_part_discards_the_upload(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    query = f"k?partNumber=1&uploadId={upload_id}"
    headers, body = streaming_put(f"{proxy.s3_api_url}/{BUCKET}/{query}", [b"a" * 65536, b"tail"])
    status, text = await put(proxy, query, headers, body.replace(b"tail", b"tale"))
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in text
    with pytest.raises(ClientError) as raised:
        await call(s3.list_parts, Bucket=BUCKET, Key="k", UploadId=upload_id)
    assert error_of(raised) == (404, "NoSuchUpload")
    assert nothing_left(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_an_idle_multipart_upload_is_discarded(make_proxy: MakeProxy, s3_server: S3Server, bucket: str) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, s3_api={"multipart_idle_timeout": 0.2})
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    await send_part(s3, "k", upload_id, 1, os.urandom(6 * MiB))
    for _ in range(200):
        if not (await call(s3.list_multipart_uploads, Bucket=BUCKET)).get("Uploads"):
            break
        await asyncio.sleep(0.05)
    with pytest.raises(ClientError) as raised:
        await send_part(s3, "k", upload_id, 2, b"late")
    assert error_of(raised) == (404, "NoSuchUpload")
    assert nothing_left(s3_server, bucket)


async def test_a_draining_server_discards_what_cannot_finish(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy: Proxy = await s3_api_proxy(make_proxy, bucket)
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    await send_part(s3, "k", upload_id, 1, os.urandom(6 * MiB))
    assert await proxy.app[SERVICE].drain(0) == 1
    assert nothing_left(s3_server, bucket)


@pytest.mark.parametrize("s3_server", ["moto"], indirect=True)
async def test_a_multipart_upload_is_admitted_as_one_upload_while_it_lasts(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await s3_api_proxy(make_proxy, bucket, server={"max_uploads": 1})
    s3 = client(proxy.s3_api_url or "")
    upload_id = await start(s3, "k")
    with pytest.raises(ClientError) as raised:
        await start(s3, "other")
    assert error_of(raised) == (503, "SlowDown")
    await call(s3.abort_multipart_upload, Bucket=BUCKET, Key="k", UploadId=upload_id)
    for _ in range(200):
        if not proxy.app[SERVICE].uploads:
            break
        await asyncio.sleep(0.01)
    await call(s3.abort_multipart_upload, Bucket=BUCKET, Key="other", UploadId=await start(s3, "other"))

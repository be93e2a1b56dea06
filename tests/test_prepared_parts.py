"""UploadPart requests are built once per multipart upload and still sent, signed and checked per part (moto and
rclone)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.credentials import AioCredentials
from botocore.exceptions import ClientError

from aiouploader.app import client_config
from aiouploader.checksums import Data, b64, digest
from aiouploader.config import S3Config
from aiouploader.s3.client import S3
from aiouploader.s3.errors import code_and_status
from aiouploader.s3.loading import s3_session
from aiouploader.s3.prepared import PreparedParts, prepared_parts
from aiouploader.service import SERVICE
from aiouploader.testing import SECRET_KEY, MakeProxy, S3Server

MiB = 1024**2
KEY = "dir/ä b+c=&.bin"
"""A key whose URL needs escaping."""


def events_counted(client: Any, *names: str) -> dict[str, int]:
    """How often each event is emitted from now on (the client's own event system)."""
    counts = dict.fromkeys(names, 0)

    def counter(name: str) -> Any:
        def count(**_: Any) -> None:
            counts[name] += 1

        return count

    for name in names:
        client.meta.events.register(f"{name}.s3.UploadPart", counter(name))
    return counts


@pytest.fixture
async def facade(s3_server: S3Server) -> AsyncIterator[S3]:
    config = S3Config(endpoint_url=s3_server.endpoint_url, region="us-east-1", addressing_style="path")
    async with s3_session().create_client(
        "s3", endpoint_url=config.endpoint_url, config=client_config(config, 1)
    ) as client:
        yield S3(PreparedParts(client), config)


@pytest.mark.parametrize("s3", [{}, {"content_md5": True}, {"checksum_algorithm": "none"}])
async def test_an_uploads_part_requests_are_built_once_and_its_parts_stored_whole(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str, s3: dict[str, Any]
) -> None:
    proxy = await make_proxy(
        routes=[{"path": "/u", "bucket": bucket, "plugins": []}], s3={"part_size": "5MiB", "parts_in_flight": 2} | s3
    )
    client = proxy.app[SERVICE].s3._client._client
    assert isinstance(client, PreparedParts)
    counts = events_counted(client, "before-parameter-build", "before-call", "after-call")
    bodies = {f"k{n}": os.urandom(16 * MiB + n) for n in range(2)}
    for key, body in bodies.items():
        async with proxy.session.put(proxy(f"/u/{key}"), data=body) as response:
            assert response.status == 201, await response.text()
    assert counts == {"before-parameter-build": 2, "before-call": 8, "after-call": 8}
    for key, body in bodies.items():
        assert s3_server.get(bucket, key) == body
    assert not client._prepared  # each completed upload's request is forgotten


async def test_a_part_of_an_aborted_upload_fails_as_the_clients_own_call_does(
    facade: S3, s3_server: S3Server, bucket: str
) -> None:
    upload_id = await facade.create_multipart_upload(bucket, KEY, {})
    body = [os.urandom(5 * MiB)]
    await facade.upload_part(bucket, KEY, upload_id, 1, body, {})
    await facade.abort_multipart_upload(bucket, KEY, upload_id)
    with pytest.raises(ClientError) as prepared:
        await facade.upload_part(bucket, KEY, upload_id, 2, body, {})
    with pytest.raises(ClientError) as own:
        await facade._client._client.upload_part(Bucket=bucket, Key=KEY, UploadId=upload_id, PartNumber=2, Body=body[0])
    assert code_and_status(prepared.value) == code_and_status(own.value)
    status = code_and_status(prepared.value)[1]
    assert status is not None and status >= 400
    assert s3_server.multipart_uploads(bucket) == []


@pytest.mark.parametrize("s3_server", ["rclone"], indirect=True)
async def test_each_part_is_signed_with_the_credentials_of_its_moment(
    facade: S3, s3_server: S3Server, bucket: str
) -> None:
    """rclone checks signatures: a prepared request is signed when each part is sent, not when it was prepared
    (refreshed credentials, such as an instance role's, sign the parts after the refresh)."""
    client: Any = facade._client
    upload_id = await facade.create_multipart_upload(bucket, KEY, {})
    body: list[Data] = [os.urandom(3 * MiB), memoryview(os.urandom(3 * MiB))[: 2 * MiB]]  # a part in its pieces
    first = await facade.upload_part(bucket, KEY, upload_id, 1, body, {})
    signer = client._request_signer
    right = signer._credentials
    signer._credentials = AioCredentials(right.access_key, SECRET_KEY + "-not")
    with pytest.raises(ClientError) as raised:
        await facade.upload_part(bucket, KEY, upload_id, 2, body, {})
    assert code_and_status(raised.value)[1] == 403
    signer._credentials = right
    second = await facade.upload_part(bucket, KEY, upload_id, 2, body, {})
    answer = await facade.complete_multipart_upload(
        bucket,
        KEY,
        upload_id,
        [{"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}],
        if_none_match=False,
    )
    assert answer["ETag"]
    assert s3_server.get(bucket, KEY) == b"".join(body) * 2


async def test_an_upload_whose_parts_cannot_share_a_request_finds_out_once(
    facade: S3, s3_server: S3Server, bucket: str
) -> None:
    """A request botocore builds otherwise than the parts can share (here a handler of the client drops the
    checksum) is found out at the first part; every part then goes by the client's own call, none tries again."""
    client = facade._client._client

    def drop_checksum(params: dict[str, Any], **_: Any) -> None:
        params.pop("ChecksumCRC32C", None)

    client.meta.events.register("before-parameter-build.s3.UploadPart", drop_checksum)
    counts = events_counted(client, "before-parameter-build", "before-call")
    upload_id = await facade.create_multipart_upload(bucket, KEY, {})
    data = os.urandom(5 * MiB)
    checksum = {"ChecksumCRC32C": b64(digest("crc32c", data))}
    parts = []
    for number in (1, 2, 3):
        sent = await facade.upload_part(bucket, KEY, upload_id, number, [data], checksum)
        parts.append({"PartNumber": number, "ETag": sent["ETag"]})
    assert counts == {"before-parameter-build": 1 + 3, "before-call": 3}
    await facade.complete_multipart_upload(bucket, KEY, upload_id, parts, if_none_match=False)
    assert s3_server.get(bucket, KEY) == data * 3


async def test_a_client_without_the_steps_to_prepare_requests_is_used_as_it_is(facade: S3) -> None:
    client = facade._client._client
    assert isinstance(prepared_parts(client), PreparedParts)

    class Older:
        """A client whose aiobotocore makes its calls in one step."""

        async def upload_part(self, **params: Any) -> dict[str, Any]:
            return {}

    older = Older()
    assert prepared_parts(older) is older

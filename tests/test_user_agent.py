"""The S3 client's User-Agent is built once, and is the one botocore builds (moto and rclone)."""

from __future__ import annotations

import os
from typing import Any

from aiouploader.s3.user_agent import BuiltOnce
from aiouploader.service import SERVICE
from aiouploader.testing import MakeProxy, S3Server


async def test_every_request_carries_the_user_agent_botocore_builds_built_once(
    make_proxy: MakeProxy, s3_server: S3Server, bucket: str
) -> None:
    proxy = await make_proxy(routes=[{"path": "/u", "bucket": bucket, "plugins": []}])
    client = proxy.app[SERVICE].s3._client._client
    builder = client._user_agent_creator.to_string
    assert isinstance(builder, BuiltOnce)
    sent: list[str] = []

    def seen(request: Any, **_: Any) -> None:
        sent.append(request.headers["User-Agent"].decode())

    client.meta.events.register("before-send.s3", seen)
    built = []
    original = builder.build

    def counted() -> str:
        built.append(1)
        return str(original())

    builder.build = counted
    for n in range(4):
        async with proxy.session.put(proxy(f"/u/k{n}"), data=os.urandom(100)) as response:
            assert response.status == 201, await response.text()
    assert len(sent) >= 4 and all(agent.startswith("aiobotocore/") for agent in sent)
    assert len(built) == len(set(sent)) < len(sent)  # each User-Agent built once
    assert s3_server.keys(bucket) == [f"k{n}" for n in range(4)]

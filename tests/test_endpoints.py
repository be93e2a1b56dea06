"""S3's endpoint rule set is evaluated once per bucket, and every key still reaches its bucket (moto and rclone)."""

from __future__ import annotations

import os
from typing import Any

from aiouploader.s3.endpoints import KeyedOnWhatMatters, unread_parameters
from aiouploader.service import SERVICE
from aiouploader.testing import MakeProxy, Proxy, S3Server


def provider_of(proxy: Proxy) -> Any:
    client = proxy.app[SERVICE].s3._client._client
    return client._ruleset_resolver._provider


def test_the_rules_of_s3_read_no_key() -> None:
    import botocore.session

    client = botocore.session.get_session().create_client("s3", region_name="us-east-1")
    ruleset = client._ruleset_resolver._provider.ruleset
    unread = unread_parameters(ruleset)
    assert {"Key", "CopySource"} <= unread
    assert not {"Bucket", "Region", "Endpoint", "ForcePathStyle"} & unread


async def test_each_key_reaches_its_bucket_with_one_resolution_per_bucket(
    make_proxy: MakeProxy, s3_server: S3Server
) -> None:
    buckets = [s3_server.create_bucket(), s3_server.create_bucket()]
    routes = [{"path": f"/r{i}", "bucket": bucket, "plugins": ["checksum"]} for i, bucket in enumerate(buckets)]
    proxy = await make_proxy(routes=routes)
    provider = provider_of(proxy)
    assert isinstance(provider, KeyedOnWhatMatters)
    bodies = {(i, f"dir/key-{n}"): os.urandom(100 + n) for i in range(2) for n in range(6)}
    misses = provider.provider.resolve_endpoint.cache_info().misses
    for (i, key), body in bodies.items():
        async with proxy.session.put(proxy(f"/r{i}/{key}"), data=body) as response:
            assert response.status == 201, await response.text()
    assert provider.provider.resolve_endpoint.cache_info().misses - misses <= len(buckets)
    for i, bucket in enumerate(buckets):
        assert s3_server.keys(bucket) == sorted(key for j, key in bodies if j == i)
        for (j, key), body in bodies.items():
            if j == i:
                assert s3_server.get(bucket, key) == body

"""A route's upload limit: the smallest that its plugins announce through ``aiouploader_upload_limit``."""

from __future__ import annotations

from typing import Any

import pytest

from aiouploader.chain import Chain
from aiouploader.config import ConfigError, validate
from aiouploader.hookspecs import hookimpl
from aiouploader.plugin_manager import make_plugin_manager

MiB = 1024**2


class _Announces:
    def __init__(self, limit: Any) -> None:
        self.limit = limit

    @hookimpl
    def aiouploader_upload_limit(self, settings: Any, name: str) -> Any:
        if isinstance(self.limit, Exception):
            raise self.limit
        return self.limit


def chain(plugins: list[str], team_limit: Any = None, max_size: str = "5MiB") -> Chain:
    pm = make_plugin_manager(entry_points=False)
    pm.register(_Announces(team_limit), name="team")
    config = validate(
        {
            "routes": [{"path": "/u", "bucket": "bucket", "plugins": plugins}],
            "plugins": {"size_limit": {"max_size": max_size}},
        }
    )
    return Chain.for_route(pm, config, config.routes[0])


def test_a_routes_limit_is_the_smallest_its_plugins_announce() -> None:
    assert chain(["size_limit", "checksum"]).upload_limit == 5 * MiB
    assert chain(["size_limit", "team"], team_limit=3 * MiB).upload_limit == 3 * MiB
    assert chain(["team", "size_limit"], team_limit=3 * MiB, max_size="1MiB").upload_limit == 1 * MiB
    assert chain(["team", "checksum"], team_limit=None).upload_limit is None
    assert chain(["checksum"]).upload_limit is None


@pytest.mark.parametrize("limit", ["10MiB", -1, 1.5, True, RuntimeError("no limit today")])
def test_a_limit_that_is_not_a_number_of_bytes_stops_start_up_naming_the_plugin(limit: Any) -> None:
    with pytest.raises(ConfigError, match=r"^plugins\.team \(route /u\): aiouploader_upload_limit "):
        chain(["checksum", "team"], team_limit=limit)

"""The User-Agent of the S3 client's requests, built once for each set of SDK features a request names.

botocore builds the header afresh for every request from the same pieces (the
SDK's, the system's and the client's configuration, and the features the call
used), which is a twentieth of a small PutObject's CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.context import get_context


class BuiltOnce:
    """botocore's User-Agent builder, whose string is kept for each set of features."""

    def __init__(self, build: Callable[[], str]) -> None:
        self.build = build
        self._built: dict[frozenset[str], str] = {}

    def __call__(self) -> str:
        context = get_context()
        features = frozenset(context.features) if context is not None else frozenset()
        built = self._built.get(features)
        if built is None:
            built = self._built[features] = self.build()
        return built


def build_once(client: Any) -> bool:
    """Make ``client`` build each User-Agent once; whether it could."""
    creator = getattr(client, "_user_agent_creator", None)
    build = getattr(creator, "to_string", None)
    if creator is None or build is None:
        return False
    if not isinstance(build, BuiltOnce):
        creator.to_string = BuiltOnce(build)
    return True

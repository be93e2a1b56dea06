"""The error tiers: every error the client can get says whose failure it is."""

from __future__ import annotations

import re

import pytest

from aiouploader import errors
from aiouploader.errors import ClientFault, PluginFault, ServerFault, UploadError, UpstreamFault

TIERS = (ClientFault, UpstreamFault, PluginFault, ServerFault)
CONCRETE = [
    cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, UploadError) and cls is not UploadError
    if cls not in TIERS and not cls.__name__.startswith("_")
]


@pytest.mark.parametrize("cls", CONCRETE, ids=lambda cls: cls.__name__)
def test_every_error_belongs_to_exactly_one_tier(cls: type[UploadError]) -> None:
    assert sum(issubclass(cls, tier) for tier in TIERS) == 1


@pytest.mark.parametrize("cls", CONCRETE, ids=lambda cls: cls.__name__)
def test_the_module_docstring_shows_each_error_with_its_status_and_code(cls: type[UploadError]) -> None:
    assert errors.__doc__ is not None
    assert re.search(rf"\b{cls.__name__}\s+{cls.status} {cls.code}\b", errors.__doc__)


def test_client_faults_are_4xx_and_the_other_tiers_5xx() -> None:
    for cls in CONCRETE:
        assert (400 <= cls.status < 500) == issubclass(cls, ClientFault), cls.__name__

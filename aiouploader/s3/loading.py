"""The botocore session behind the S3 client, keeping of botocore's data only what an S3 client reads.

botocore parses its data files into ``OrderedDict`` objects and keeps them as
long as the session lives: among them the endpoints of every AWS service in
every region (about 6.5 MiB of Python objects) for a client of one service.
Here its files are parsed into plain dicts, which keep their order all the
same, with empty documentation strings (botocore reads them only to write
docstrings), and the endpoints file keeps only the services that this
process's clients call: S3, and STS and SSO for the credential providers
that use them.
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

from aiobotocore.session import AioSession, get_session
from botocore.loaders import JSONFileLoader, create_loader

SERVICES = frozenset({"s3", "sts", "sso", "sso-oidc"})
OPENERS: dict[str, Any] = {".json": open, ".json.gz": gzip.open}
DOCUMENTATION = frozenset({"documentation", "documentationUrl"})


def without_documentation(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object with its documentation strings emptied: some of botocore's code expects the key."""
    return {key: "" if key in DOCUMENTATION and isinstance(value, str) else value for key, value in pairs}


def only_services(endpoints: dict[str, Any], services: frozenset[str] = SERVICES) -> dict[str, Any]:
    """botocore's endpoints data with each partition's ``services`` cut to ``services``."""
    for partition in endpoints.get("partitions", []):
        partition["services"] = {name: s for name, s in partition.get("services", {}).items() if name in services}
    return endpoints


class FileLoader(JSONFileLoader):  # type: ignore[misc]
    """botocore's loader of JSON data files, into plain dicts with empty documentation, the endpoints file cut to
    :data:`SERVICES`."""

    def load_file(self, file_path: str) -> Any:
        for extension, opener in OPENERS.items():
            if os.path.isfile(file_path + extension):
                with opener(file_path + extension, "rb") as file:
                    data = json.loads(file.read().decode("utf-8"), object_pairs_hook=without_documentation)
                return only_services(data) if os.path.basename(file_path) == "endpoints" else data
        return None


def s3_session() -> AioSession:
    """A session whose clients are built from botocore's data as :class:`FileLoader` loads it."""
    session = get_session()
    loader = create_loader(session.get_config_variable("data_path"))
    loader.file_loader = FileLoader()
    session.register_component("data_loader", loader)
    return session

"""UploadPart requests built once per multipart upload, not once per part.

For each call botocore emits its parameter events, validates and serialises
the parameters, resolves the endpoint and builds the User-Agent: for the parts
of one upload all of that gives the same request but for the part number, the
body and the checksum headers. Here the first part's request is built by
aiobotocore's own steps and kept; each part after it is that request with
those three changed, sent by aiobotocore's remaining steps as any call is:
the ``before-call`` event, the request checksum, signing with the current
credentials, sending with the client's retries and timeouts, parsing, and the
``after-call`` event. Requests that may differ in anything else (another
upload, other checksum fields) are built afresh.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

from aiobotocore.httpchecksum import apply_request_checksum
from botocore.client import resolve_checksum_context
from botocore.compress import maybe_compress_request
from botocore.utils import percent_encode_sequence

OPERATION = "UploadPart"
KEPT = 256
"""Prepared requests kept, the most recently used: one per multipart upload in progress (each is forgotten once
completed or aborted), a few KiB each."""
PLACEHOLDER = b""
"""The body a request is prepared with, so that a prepared request holds no part."""


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One upload's UploadPart request as botocore built it, less what changes from part to part."""

    request: dict[str, Any]
    base_url: str
    """The URL up to its query string, which holds the part number."""
    headers: dict[str, str]
    """The checksum parameters' header names."""

    def request_for(self, number: int, body: Any, checksums: dict[str, str]) -> dict[str, Any]:
        request = dict(self.request)
        query = request["query_string"] = dict(request["query_string"], partNumber=number)
        request["url"] = self.base_url + percent_encode_sequence(query)
        request["headers"] = dict(request["headers"]) | {self.headers[name]: v for name, v in checksums.items()}
        request["body"] = body
        request["context"] = {k: dict(v) if type(v) is dict else v for k, v in request["context"].items()}
        return request


INTERNALS = ("_emit_api_params", "_resolve_endpoint_ruleset", "_convert_to_request_dict", "_make_request")
"""The steps of aiobotocore's ``_make_api_call`` that preparing a request calls one by one."""


def prepared_parts(client: Any) -> Any:
    """``client`` with its UploadPart requests prepared once per upload, or as it is when its aiobotocore lacks the
    steps that takes."""
    if all(callable(getattr(client, name, None)) for name in INTERNALS):
        return PreparedParts(client)
    return client


class PreparedParts:
    """An aiobotocore S3 client whose ``upload_part`` re-uses each upload's request; anything else passes through."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._prepared: OrderedDict[tuple[str, str, str, frozenset[str]], Prepared | None] = OrderedDict()
        model = client._service_model
        self._model = model.operation_model(OPERATION)
        self._event_suffix = f"{model.service_id.hyphenize()}.{OPERATION}"
        members = self._model.input_shape.members
        self._header_names = {
            name: shape.serialization["name"]
            for name, shape in members.items()
            if (name == "ContentMD5" or name.startswith("Checksum")) and shape.serialization.get("location") == "header"
        }
        """The parameters a part may change, checksums sent as given, and their headers."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def upload_part(
        self, *, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: Any, **checksums: str
    ) -> dict[str, Any]:
        """UploadPart, as the client's; ``checksums`` may hold ``ContentMD5``, ``ChecksumAlgorithm`` and
        ``Checksum*`` (any other parameter is sent by the client's own method)."""
        prepared = await self._prepared_for(Bucket, Key, UploadId, PartNumber, checksums)
        if prepared is None:
            answer: dict[str, Any] = await self._client.upload_part(
                Bucket=Bucket, Key=Key, UploadId=UploadId, PartNumber=PartNumber, Body=Body, **checksums
            )
            return answer
        return await self._send(prepared.request_for(PartNumber, Body, checksums))

    async def _prepared_for(
        self, bucket: str, key: str, upload_id: str, number: int, checksums: dict[str, str]
    ) -> Prepared | None:
        """This upload's request, prepared at its first part and kept; ``None`` when its parts cannot share one
        (also kept: the later parts do not try again)."""
        if not checksums.keys() <= self._header_names.keys():
            return None
        kept = (bucket, key, upload_id, frozenset(checksums))
        if kept in self._prepared:
            self._prepared.move_to_end(kept)
            return self._prepared[kept]
        prepared = self._prepared[kept] = await self._prepare(bucket, key, upload_id, number, checksums)
        while len(self._prepared) > KEPT:
            self._prepared.popitem(last=False)
        return prepared

    async def _prepare(
        self, bucket: str, key: str, upload_id: str, number: int, checksums: dict[str, str]
    ) -> Prepared | None:
        """The request botocore builds for this upload's parts, or ``None`` when it cannot be re-used."""
        client, model = self._client, self._model
        params: dict[str, Any] = dict(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=PLACEHOLDER, **checksums
        )
        context = {
            "client_region": client.meta.region_name,
            "client_config": client.meta.config,
            "has_streaming_input": model.has_streaming_input,
            "auth_type": model.resolved_auth_type,
            "unsigned_payload": model.unsigned_payload,
            "auth_options": client._service_model.metadata.get("auth"),
        }
        params = await client._emit_api_params(api_params=params, operation_model=model, context=context)
        url, headers, properties = await client._resolve_endpoint_ruleset(model, params, context)
        if properties:
            context["endpoint_properties"] = properties
        request = await client._convert_to_request_dict(
            api_params=params, operation_model=model, endpoint_url=url, context=context, headers=headers
        )
        resolve_checksum_context(request, model, params)
        query = percent_encode_sequence(request["query_string"])
        names = {name: self._header_names[name] for name in checksums}
        if (
            request["query_string"].get("partNumber") != number
            or not request["url"].endswith(query)
            or any(request["headers"].get(header) != checksums[name] for name, header in names.items())
        ):
            return None
        request["body"] = PLACEHOLDER
        return Prepared(request, request["url"][: len(request["url"]) - len(query)], names)

    async def _send(self, request: dict[str, Any]) -> dict[str, Any]:
        """The steps of aiobotocore's ``_make_api_call`` after the request is built."""
        client, model, context = self._client, self._model, request["context"]
        events = client.meta.events
        _, response = await events.emit_until_response(
            f"before-call.{self._event_suffix}",
            model=model,
            params=request,
            request_signer=client._request_signer,
            context=context,
        )
        if response is None:
            maybe_compress_request(client.meta.config, request, model)
            apply_request_checksum(request)
            response = await client._make_request(model, request, context)
        http, parsed = response
        await events.emit(
            f"after-call.{self._event_suffix}", http_response=http, parsed=parsed, model=model, context=context
        )
        if http.status_code >= 300:
            code = context.get("error_code_override") or parsed.get("Error", {}).get("Code")
            raise client.exceptions.from_code(code)(parsed, OPERATION)
        answer: dict[str, Any] = parsed
        return answer

    async def complete_multipart_upload(self, **params: Any) -> Any:
        self._forget(params["UploadId"])
        return await self._client.complete_multipart_upload(**params)

    async def abort_multipart_upload(self, **params: Any) -> Any:
        self._forget(params["UploadId"])
        return await self._client.abort_multipart_upload(**params)

    def _forget(self, upload_id: str) -> None:
        for key in [key for key in self._prepared if key[2] == upload_id]:
            del self._prepared[key]

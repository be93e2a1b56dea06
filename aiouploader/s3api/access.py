"""Who sent an S3 API request (its SigV4 signature), and whether their credentials cover what it asks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from aiohttp import web

from ..auth import Grant, beyond_scope
from .errors import AccessDenied, InvalidURI
from .settings import S3ApiConfig, S3ApiCredential
from .sigv4 import VerifiedRequest, verify_request


@dataclass(frozen=True)
class Caller:
    credential: S3ApiCredential
    verified: VerifiedRequest

    @property
    def grant(self) -> Grant:
        """The grant admission counts uploads by, as a token's is."""
        return Grant(f"s3:{self.credential.access_key_id}", self.credential.prefix)


def authenticate(request: web.Request, config: S3ApiConfig) -> Caller:
    """The request's caller; S3's error (`SignatureDoesNotMatch`, `InvalidAccessKeyId`, …) for anyone else."""
    known = {credential.access_key_id: credential for credential in config.credentials}

    def secret(access_key_id: str) -> str | None:
        found = known.get(access_key_id)
        return None if found is None else found.secret_access_key

    target = request.raw_path if request.raw_path.startswith("/") else request.rel_url.raw_path_qs
    if "#" in target:
        # The operation is read from the URL without what follows a "#": the signature must be checked over that.
        raise InvalidURI("Couldn't parse the specified URI: a '#' in it must be percent-encoded (%23).")
    path, _, query = target.partition("?")
    verified = verify_request(request.method, path, query, request.headers, secret, dt.datetime.now(dt.UTC))
    return Caller(known[verified.access_key_id], verified)


def permit(caller: Caller, route_path: str, bucket: str, method: str, key: str | None = None) -> None:
    """Refuse with `AccessDenied` what the caller's credentials do not cover: the route, the method, the key."""
    credential = caller.credential
    place = f"the bucket {bucket}"
    beyond = beyond_scope(credential.routes, credential.methods, credential.prefix, route_path, method, key, place)
    if beyond is not None:
        raise AccessDenied(f"The access key {credential.access_key_id} {beyond}.")

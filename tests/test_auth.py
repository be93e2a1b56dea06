"""Tokens and signed URLs, checked without a server: every way a credential can be wrong."""

from __future__ import annotations

import contextlib
from urllib.parse import parse_qsl

import pytest

from aiouploader.auth import Authorizer, Grant, hash_token, sign
from aiouploader.cli import main
from aiouploader.config import AuthConfig
from aiouploader.errors import Forbidden, PayloadTooLarge, Unauthorized

SECRET = "s" * 40
NOW = 1_800_000_000
AUTH = AuthConfig.model_validate(
    {
        "tokens": [
            {
                "name": "ci",
                "sha256": hash_token("ci-token"),
                "routes": ["/uploads"],
                "methods": ["PUT"],
                "prefix": "ci/",
            },
            {"name": "admin", "sha256": hash_token("admin-token")},
        ],
        "signing_keys": {"k1": SECRET, "k2": "t" * 40},
    }
)


def check(
    *,
    method: str = "PUT",
    route: str = "/uploads",
    key: str | None = "a.pdf",
    headers: dict[str, str] | None = None,
    query: str = "",
    length: int | None = 10,
    schemes: tuple[str, ...] = ("token", "signed"),
) -> Grant | None:
    return Authorizer(AUTH).check(
        schemes=list(schemes),
        method=method,
        route=route,
        key=key,
        headers=headers or {},
        query=dict(parse_qsl(query)),
        content_length=length,
        now=NOW,
    )


def signed(**grant: object) -> str:
    args: dict[str, object] = {"method": "PUT", "route": "/uploads", "key": "a.pdf", "expires": NOW + 60, **grant}
    key_id = str(args.pop("key_id", "k1"))
    return sign(str(args.pop("secret", SECRET)), key_id, **args)  # type: ignore[arg-type]


def test_an_open_route_needs_nothing() -> None:
    assert check(schemes=()) is None


def test_no_credentials_is_unauthorized_and_says_what_is_needed() -> None:
    with pytest.raises(Unauthorized, match="Bearer") as raised:
        check()
    assert raised.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_within_its_scope_is_granted() -> None:
    grant = check(key="ci/build.tar", headers={"Authorization": "Bearer ci-token"})
    assert grant == Grant("token:ci", "ci/")
    assert check(method="DELETE", route="/other", headers={"Authorization": "bearer admin-token"}) == Grant(
        "token:admin"
    )


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"headers": {"Authorization": "Bearer wrong"}}, Unauthorized),
        ({"headers": {"Authorization": "Basic Y2k6Y2k="}}, Unauthorized),
        ({"route": "/elsewhere"}, Forbidden),
        ({"method": "GET"}, Forbidden),
        ({"key": "other/x"}, Forbidden),
    ],
)
def test_a_token_outside_its_scope_is_refused(changes: dict[str, object], error: type[Exception]) -> None:
    request: dict[str, object] = {"key": "ci/x", "headers": {"Authorization": "Bearer ci-token"}, **changes}
    with pytest.raises(error):
        check(**request)  # type: ignore[arg-type]


def test_tokens_are_not_accepted_where_only_signed_urls_are() -> None:
    with pytest.raises(Unauthorized, match="signed URL"):
        check(schemes=("signed",), headers={"Authorization": "Bearer admin-token"})


def test_a_signed_url_grants_its_key_limits_and_type() -> None:
    grant = check(query=signed(max_size=100, content_type="application/pdf"))
    assert grant == Grant("signed:k1", "", max_size=100, content_type="application/pdf", expires=NOW + 60)


def test_a_signed_prefix_covers_keys_under_it_and_generated_keys() -> None:
    query = signed(key=None, prefix="user-7/")
    assert check(key="user-7/photo.jpg", query=query) == Grant("signed:k1", "user-7/", expires=NOW + 60)
    assert check(method="PUT", key=None, query=query) == Grant("signed:k1", "user-7/", expires=NOW + 60)
    with pytest.raises(Forbidden):
        check(key="user-8/photo.jpg", query=query)


@pytest.mark.parametrize(
    ("query", "request_changes", "error"),
    [
        (signed(expires=NOW - 1), {}, Forbidden),
        (signed(secret="x" * 40), {}, Forbidden),
        (signed(key_id="k2"), {}, Forbidden),
        (signed(key_id="nope"), {}, Forbidden),
        (signed(max_size=5), {}, PayloadTooLarge),
        (signed(), {"method": "DELETE"}, Forbidden),
        (signed(), {"route": "/other"}, Forbidden),
        (signed(), {"key": "b.pdf"}, Forbidden),
        (signed(max_size=100).replace("max_size=100", "max_size=1000"), {}, Forbidden),
        (signed(expires=NOW + 60).replace(str(NOW + 60), str(NOW + 6000)), {}, Forbidden),
        (signed(content_type="image/png").replace("image%2Fpng", "text%2Fhtml"), {}, Forbidden),
        (signed()[:-1] + "0", {}, Forbidden),
        (signed().replace("expires=", "expires=x"), {}, Unauthorized),
    ],
)
def test_a_tampered_or_misused_signed_url_is_refused(
    query: str, request_changes: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        check(query=query, **request_changes)  # type: ignore[arg-type]


def test_an_unknown_key_id_is_answered_as_a_bad_signature() -> None:
    answers = []
    for query in (signed(key_id="nope"), signed(secret="x" * 40)):
        with pytest.raises(Forbidden) as raised:
            check(query=query)
        answers.append((raised.value.status, raised.value.to_json()))
    assert answers[0] == answers[1]


def test_signing_keys_must_be_long() -> None:
    with pytest.raises(ValueError, match="32"):
        AuthConfig.model_validate({"signing_keys": {"k": "short"}})


@pytest.mark.parametrize("signature", ["%C3%A9" * 64, "%FF" + "0" * 63], ids=["utf-8", "not-utf-8"])
def test_a_signature_that_is_not_hex_does_not_match(signature: str) -> None:
    query = signed().rsplit("signature=", 1)[0] + "signature=" + signature
    with pytest.raises(Forbidden, match="signature does not match"):
        check(query=query)


def test_a_token_that_is_not_utf8_is_not_valid() -> None:
    with pytest.raises(Unauthorized) as raised:
        check(headers={"Authorization": "Bearer alpha\udcff"})  # how aiohttp decodes the byte 0xff in a header
    assert raised.value.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    ("methods", "method", "allowed"),
    [(["PUT", "GET"], "HEAD", True), (["HEAD"], "HEAD", True), (["PUT"], "HEAD", False), (["HEAD"], "GET", False)],
)
def test_a_token_for_get_covers_head(methods: list[str], method: str, allowed: bool) -> None:
    config = AuthConfig.model_validate({"tokens": [{"name": "t", "sha256": hash_token("t"), "methods": methods}]})
    outcome = contextlib.nullcontext() if allowed else pytest.raises(Forbidden, match=f"does not allow {method}")
    with outcome:
        Authorizer(config).check(
            schemes=["token"],
            method=method,
            route="/uploads",
            key="a",
            headers={"Authorization": "Bearer t"},
            query={},
            content_length=None,
        )


@pytest.mark.parametrize(
    ("signed_for", "method", "allowed"),
    [("GET", "HEAD", True), ("HEAD", "HEAD", True), ("PUT", "HEAD", False), ("HEAD", "GET", False)],
)
def test_a_url_signed_for_get_covers_head(signed_for: str, method: str, allowed: bool) -> None:
    outcome = contextlib.nullcontext() if allowed else pytest.raises(Forbidden, match="signature does not match")
    with outcome:
        check(method=method, query=signed(method=signed_for))


def test_hash_token_takes_a_token_that_starts_with_a_dash_after_double_dash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash-token", "--", "-abc"]) == 0
    assert capsys.readouterr().out == hash_token("-abc") + "\n"
    with pytest.raises(SystemExit):
        main(["hash-token", "-abc"])
    assert "a TOKEN that starts with - goes after --" in capsys.readouterr().err

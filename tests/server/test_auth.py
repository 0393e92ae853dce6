"""Credentials: Basic auth string, Bearer keys, constant-time checks, uniform 401s."""

from __future__ import annotations

import base64
import hmac

import httpx
import pytest
from server_helpers import AUTH_STRING, RunningServer, auth_settings

from headwater.server import auth as auth_module
from headwater.server.auth import Authenticator, parse_keys
from headwater.settings import SecretValue

KEYS = "key-one, key-two,,"
UNAUTHORIZED = {"exception_message": "Unauthorized"}


def basic(value: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_authenticator_accepts_the_auth_string_and_each_key() -> None:
    authenticator = Authenticator(AUTH_STRING, parse_keys(SecretValue(KEYS)))
    assert authenticator.enabled
    assert authenticator.check_header(basic(AUTH_STRING)["Authorization"])
    assert authenticator.check_header("bearer key-two")
    assert authenticator.check_token(AUTH_STRING) and authenticator.check_token("key-one")
    for wrong in [None, "", "Basic", "Basic !!!", basic("admin:other")["Authorization"]]:
        assert not authenticator.check_header(wrong)
    assert not authenticator.check_header("Bearer key-three")
    assert not authenticator.check_header(f"Bearer {AUTH_STRING}")
    assert not authenticator.check_token("")


def test_parse_keys_ignores_blanks() -> None:
    assert parse_keys(SecretValue(KEYS)) == ("key-one", "key-two")
    assert parse_keys(None) == ()


def test_no_credentials_means_auth_is_off() -> None:
    assert not Authenticator().enabled


def test_comparisons_use_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    authenticator = Authenticator(AUTH_STRING, ("key-one", "key-two"))
    assert authenticator.check_header(basic(AUTH_STRING)["Authorization"])
    assert len(calls) == 1
    # Every key is compared even after a match, so timing does not reveal which one matched.
    assert authenticator.check_header("Bearer key-one")
    assert len(calls) == 3
    assert not authenticator.check_token("nope")
    assert len(calls) == 6
    # Digests of equal length are compared, never the raw secrets.
    assert all(len(a) == len(b) == 32 for a, b in calls)


def test_secrets_never_show_in_a_repr() -> None:
    authenticator = Authenticator(AUTH_STRING, ("key-one",))
    settings = auth_settings(AUTH_STRING, "key-one")
    for text in (repr(authenticator), repr(settings), str(settings)):
        assert "s3cret" not in text and "key-one" not in text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic("admin:wrong"),
        basic("admin"),
        {"Authorization": "Basic not-base64!"},
        bearer("key-three"),
        {"Authorization": f"Token {AUTH_STRING}"},
    ],
)
def test_missing_or_wrong_credentials_get_a_bare_401(
    secured: RunningServer, headers: dict[str, str]
) -> None:
    for method, path in [("GET", "/api/webhooks"), ("POST", "/api/events/filter")]:
        response = httpx.request(method, f"{secured.url}{path}", headers=headers)
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


@pytest.mark.parametrize("headers", [basic(AUTH_STRING), bearer("key-one"), bearer("key-two")])
def test_right_credentials_pass(secured: RunningServer, headers: dict[str, str]) -> None:
    response = httpx.post(f"{secured.url}/api/events/filter", json={}, headers=headers)
    assert response.status_code == 200


def test_probes_need_no_credentials(secured: RunningServer) -> None:
    assert httpx.get(f"{secured.url}/api/health").status_code == 200
    assert httpx.get(f"{secured.url}/api/ready").status_code == 200
    assert httpx.post(f"{secured.url}/api/health").status_code == 401


def test_unknown_paths_do_not_reveal_themselves_without_credentials(
    secured: RunningServer,
) -> None:
    response = httpx.get(f"{secured.url}/api/flow_runs/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 401 and response.json() == UNAUTHORIZED

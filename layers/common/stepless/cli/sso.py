"""Single sign-on for OIDC provisioners: the authorization-code flow with PKCE and a loopback redirect.

``oidc_login(entry)`` discovers the provider from the provisioner's ``configurationEndpoint``, listens on
127.0.0.1 (the port of ``listenAddress``, else a random one), opens the browser on the authorization URL
(or only prints it with ``console=True``), waits up to five minutes for the redirect carrying the code,
checks the ``state``, exchanges the code (with the PKCE verifier, and the client secret when the
provisioner has one) at the token endpoint, checks the ID token's ``nonce`` and returns the ID token.
The CA verifies everything else; this side verifies nothing it does not need to.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import secrets
import sys
import threading
import time
import webbrowser
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt

from stepless import oidc_discovery
from stepless.errors import CLIError, StepError

TIMEOUT = 300.0  # seconds to wait for the browser
SCOPES = "openid email profile"
_PAGE = ("<!doctype html><html><head><title>stepless</title></head><body><p>{}</p>"
         "<p>You may close this window.</p></body></html>")


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) as RFC 7636 describes."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def listen_address(entry: dict[str, Any], listen: str | None) -> tuple[str, int]:
    """(host, port) to listen on: ``listen``, else the provisioner's ``listenAddress``, else a random port.

    The host is always a loopback address (127.0.0.1 unless a loopback host is given).
    """
    value = listen or entry.get("listenAddress") or ""
    if not value:
        return "127.0.0.1", 0
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError as e:
        raise CLIError(f"invalid listen address {value!r}: the port must be a number") from e
    if not 0 <= number <= 65535:
        raise CLIError(f"invalid listen address {value!r}: port out of range")
    if host in ("", "localhost") or not oidc_discovery.is_loopback(host):
        host = "127.0.0.1"
    return host, number


class _Result:
    def __init__(self) -> None:
        self.code: str | None = None
        self.error: str | None = None
        self.done = threading.Event()


def _handler(state: str, result: _Result) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the access log
            return

        def _page(self, status: int, text: str) -> None:
            body = _PAGE.format(text).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            query = parse_qs(urlsplit(self.path).query)
            if "code" not in query and "error" not in query:
                self._page(404, "Not found.")
                return
            if query.get("state", [""])[0] != state:
                self._page(400, "Invalid state: this is not the login stepless started.")
                return
            if "error" in query:
                desc = query.get("error_description", [""])[0]
                result.error = query["error"][0] + (f": {desc}" if desc else "")
                self._page(400, "Login failed.")
            else:
                result.code = query["code"][0]
                self._page(200, "Login succeeded.")
            result.done.set()

    return Handler


def authorization_url(endpoint: str, params: dict[str, str]) -> str:
    return endpoint + ("&" if urlsplit(endpoint).query else "?") + urlencode(params)


def exchange(token_endpoint: str, form: dict[str, str]) -> dict[str, Any]:
    """POST the token request; the JSON answer."""
    oidc_discovery.check_url(token_endpoint, "token endpoint")
    try:
        doc = oidc_discovery.get_json(token_endpoint, data=urlencode(form).encode(),
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    except StepError as e:
        raise CLIError(f"error exchanging the authorization code: {e.detail}") from e
    if not isinstance(doc, dict):
        raise CLIError("error exchanging the authorization code: unexpected answer")
    return doc


def oidc_login(provisioner_entry: dict[str, Any], *, console: bool = False, listen: str | None = None,
               timeout: float = TIMEOUT, open_url: Callable[[str], Any] | None = None) -> str:
    """Run the authorization-code flow with PKCE for an OIDC provisioner entry; returns the ID token.

    ``open_url`` replaces ``webbrowser.open`` (tests use a thread that follows the redirect itself).
    """
    client_id = provisioner_entry.get("clientID")
    endpoint = provisioner_entry.get("configurationEndpoint")
    if not client_id or not endpoint:
        raise CLIError(f"provisioner {provisioner_entry.get('name')} has no clientID or configurationEndpoint")
    try:
        config = oidc_discovery.configuration(endpoint)
    except (StepError, ValueError) as e:
        raise CLIError(f"error discovering the identity provider: {getattr(e, 'detail', e)}") from e
    if not config.authorization_endpoint or not config.token_endpoint:
        raise CLIError("the identity provider has no authorization or token endpoint")
    oidc_discovery.check_url(config.authorization_endpoint, "authorization endpoint")

    host, port = listen_address(provisioner_entry, listen)
    result = _Result()
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    verifier, challenge = pkce_pair()
    try:
        server = http.server.HTTPServer((host, port), _handler(state, result))
    except OSError as e:
        raise CLIError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    try:
        redirect_uri = f"http://{host}:{server.server_address[1]}"
        url = authorization_url(config.authorization_endpoint, {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPES,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        })
        print(f"Your default web browser has been opened to visit:\n\n{url}\n" if not console
              else f"Visit the following URL to log in:\n\n{url}\n", file=sys.stderr)
        if not console:
            (open_url or webbrowser.open)(url)
        deadline = time.monotonic() + timeout
        while not result.done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                raise CLIError("timed out waiting for the identity provider's redirect")
            server.timeout = min(left, 1.0)
            server.handle_request()
    finally:
        server.server_close()
    if result.error or not result.code:
        raise CLIError(f"the identity provider refused the login: {result.error or 'no code'}")

    form = {"grant_type": "authorization_code", "code": result.code, "redirect_uri": redirect_uri,
            "client_id": client_id, "code_verifier": verifier}
    if provisioner_entry.get("clientSecret"):
        form["client_secret"] = provisioner_entry["clientSecret"]
    answer = exchange(config.token_endpoint, form)
    id_token = answer.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise CLIError(f"the identity provider returned no id_token ({answer.get('error', 'no error')})")
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise CLIError("the identity provider returned a malformed id_token") from e
    if claims.get("nonce") not in (None, nonce):
        raise CLIError("the id_token's nonce is not the one of this login")
    return id_token

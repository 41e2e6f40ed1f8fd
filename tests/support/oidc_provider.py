"""A small OpenID provider on loopback for tests.

Discovery (``/.well-known/openid-configuration``), a JWKS (``/jwks``) whose keys can be rotated,
``/authorize`` that redirects to the redirect_uri with a code at once (no person: the user is
``provider.user``), ``/token`` that checks the code, the redirect_uri, the client credentials and the PKCE
verifier and returns an ID token. Every request is counted in ``provider.hits`` (by path).

``provider.issue(**claims)`` mints an ID token directly (tests of the CA that need no login flow). Tokens
are IdP-shaped: an opaque ``sub`` that is not the ``email`` (``ALICE``), as real providers issue them.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import http.server
import json
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from stepless import jose

# An ID token's user as real identity providers shape it (Google, Okta, Azure AD): ``sub`` is an opaque,
# stable id that is not the address; the address is in ``email``, vouched for by ``email_verified``.
ALICE: dict[str, Any] = {"sub": "b1417884-5c3e-4f7a-9d2b-6e0f8a1c3d57", "email": "alice@example.com",
                         "email_verified": True}


@dataclasses.dataclass
class SigningKey:
    kid: str
    key: Any
    alg: str

    def jwk(self) -> dict[str, Any]:
        return {**jose.public_jwk(self.key), "kid": self.kid, "alg": self.alg, "use": "sig"}


def new_key(alg: str = "RS256", kid: str | None = None) -> SigningKey:
    key = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else rsa.generate_private_key(65537, 2048)
    return SigningKey(kid or secrets.token_hex(8), key, alg)


class Provider:
    """The provider; ``with Provider(...) as p`` runs it on 127.0.0.1 in a thread."""

    def __init__(self, *, client_id: str = "stepless-test", client_secret: str = "s3cret",
                 alg: str = "RS256") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.keys: list[SigningKey] = [new_key(alg)]
        self.user: dict[str, Any] = dict(ALICE)
        self.hits: collections.Counter[str] = collections.Counter()
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_lifetime = 3600
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Provider:
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Provider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def configuration_endpoint(self) -> str:
        return self.url + "/.well-known/openid-configuration"

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def rotate(self, alg: str | None = None) -> SigningKey:
        """Publish a new key and sign with it from now on (the old one stays published)."""
        key = new_key(alg or self.current.alg)
        self.keys.append(key)
        return key

    def entry(self, name: str = "sso", **extra: Any) -> dict[str, Any]:
        """A provisioner configuration entry for this provider."""
        return {"type": "OIDC", "name": name, "clientID": self.client_id, "clientSecret": self.client_secret,
                "configurationEndpoint": self.configuration_endpoint, **extra}

    # --- tokens -----------------------------------------------------------------------------------

    def issue(self, *, key: SigningKey | None = None, headers: dict[str, Any] | None = None,
              **claims: Any) -> str:
        """An ID token for ``self.user`` (claims override; ``None`` removes a claim)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer, "aud": self.client_id, "azp": self.client_id,
            "iat": now, "exp": now + self.token_lifetime, "nonce": secrets.token_hex(16),
            "at_hash": "x", **self.user,
        }
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        key = key or self.current
        return jwt.encode(payload, key.key, algorithm=key.alg, headers={"kid": key.kid, **(headers or {})})

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": self.url + "/jwks",
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({k.alg for k in self.keys}),
            "code_challenge_methods_supported": ["S256"],
        }


def _handler(p: Provider) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        def _json(self, status: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            p.hits[url.path] += 1
            if url.path == "/.well-known/openid-configuration":
                self._json(200, p.discovery())
            elif url.path == "/jwks":
                self._json(200, {"keys": [k.jwk() for k in p.keys]})
            elif url.path == "/authorize":
                self._authorize({k: v[0] for k, v in parse_qs(url.query).items()})
            else:
                self._json(404, {"error": "not_found"})

        def _authorize(self, q: dict[str, str]) -> None:
            redirect = q.get("redirect_uri", "")
            host = urlsplit(redirect).hostname or ""
            if q.get("client_id") != p.client_id or host not in ("127.0.0.1", "localhost"):
                self._json(400, {"error": "invalid_request"})
                return
            if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" \
                    or not q.get("code_challenge"):
                params = {"error": "invalid_request", "state": q.get("state", "")}
            else:
                code = secrets.token_urlsafe(16)
                p.codes[code] = q
                params = {"code": code, "state": q.get("state", "")}
            self.send_response(302)
            self.send_header("Location", redirect + ("&" if "?" in redirect else "?") + urlencode(params))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            p.hits[url.path] += 1
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if url.path != "/token":
                self._json(404, {"error": "not_found"})
                return
            q = p.codes.pop(form.get("code", ""), None)
            if q is None or form.get("grant_type") != "authorization_code":
                self._json(400, {"error": "invalid_grant"})
                return
            if form.get("client_id") != p.client_id or form.get("client_secret", "") != p.client_secret:
                self._json(401, {"error": "invalid_client"})
                return
            if form.get("redirect_uri") != q.get("redirect_uri"):
                self._json(400, {"error": "invalid_grant", "error_description": "redirect_uri"})
                return
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if digest != q.get("code_challenge"):
                self._json(400, {"error": "invalid_grant", "error_description": "PKCE verification failed"})
                return
            extra = {"nonce": q["nonce"]} if q.get("nonce") else {"nonce": None}
            self._json(200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                             "expires_in": 3600, "id_token": p.issue(**extra)})

    return Handler

"""A minimal RFC 8555 client over the sign function's handler (payload-2.0 events), for integration tests:
it signs exactly what it is told, so tests can also send what a real client never would."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stepless import jose
from tests.support.ca import event

HOST = "ca.test:8443"


def alg_of(key: Any) -> str:
    return jose.default_alg(jose.public_jwk(key))


def jws(key: Any, payload: Any, header: dict[str, Any], alg: str | None = None) -> dict[str, str]:
    """A flattened JWS; ``payload`` None → POST-as-GET (empty payload); ``alg`` only claims an algorithm
    (the signature is always the key's own)."""
    protected = jose.b64e(json.dumps({"alg": alg or alg_of(key), **header}).encode())
    body = "" if payload is None else jose.b64e(json.dumps(payload).encode())
    return {"protected": protected, "payload": body,
            "signature": jose.b64e(jwt.get_algorithm_by_name(alg_of(key)).sign(f"{protected}.{body}".encode(), key))}


def eab(key_id: str, hmac_key: str, account_key: Any, url: str) -> dict[str, str]:
    protected = jose.b64e(json.dumps({"alg": "HS256", "kid": key_id, "url": url}).encode())
    payload = jose.b64e(json.dumps(jose.public_jwk(account_key)).encode())
    sig = hmac.new(jose.b64d(hmac_key), f"{protected}.{payload}".encode(), hashlib.sha256).digest()
    return {"protected": protected, "payload": payload, "signature": jose.b64e(sig)}


class Client:
    """One account key against one ACME provisioner of the sign app."""

    def __init__(self, app: Any, provisioner: str = "acme", key: Any = None, prefix: str = "") -> None:
        self.app, self.key = app, key or ec.generate_private_key(ec.SECP256R1())
        self.base = f"https://{HOST}{prefix}/acme/{provisioner}"
        self.kid: str | None = None
        self.nonce: str | None = None

    def url(self, tail: str) -> str:
        return tail if tail.startswith("https://") else f"{self.base}/{tail}"

    def send(self, method: str, url: str, text: str | None, content_type: str,
             ) -> tuple[int, dict[str, str], str | bytes]:
        """One request through the sign function's handler (revokeCert: the revoke function's): (status,
        lower-case headers, body). A client over another transport overrides this."""
        path = url.removeprefix(f"https://{HOST}")
        app = self.app
        if path.endswith("/revoke-cert"):  # the revoke function's route (template.yaml)
            from stepless.api.revoke import app
        res = app.handler(event(method, path, text, headers={"host": HOST, "content-type": content_type}))
        headers = {k.lower(): v for k, v in res["headers"].items()}
        return res["statusCode"], headers, base64.b64decode(res["body"]) if res.get("isBase64Encoded") else res["body"]

    def raw(self, method: str, url: str, body: Any = None, content_type: str = "application/jose+json",
            ) -> tuple[int, dict[str, str], Any]:
        text = body if isinstance(body, str) or body is None else json.dumps(body)
        status, headers, data = self.send(method, url, text, content_type)
        if "replay-nonce" in headers:
            self.nonce = headers["replay-nonce"]
        with contextlib.suppress(ValueError, TypeError):
            data = json.loads(data)
        return status, headers, data

    def get_nonce(self) -> str:
        self.raw("HEAD", self.url("new-nonce"))
        assert self.nonce
        return self.nonce

    def post(self, tail: str, payload: Any, *, key: Any = None, use_jwk: bool = False, nonce: str | None = None,
             url: str | None = None, alg: str | None = None, extra: dict | None = None) -> tuple[int, dict, Any]:
        target = self.url(tail)
        key = key or self.key
        header: dict[str, Any] = {"nonce": nonce or self.nonce or self.get_nonce(), "url": url or target}
        if use_jwk or self.kid is None:
            header["jwk"] = jose.public_jwk(key)
        else:
            header["kid"] = self.kid
        header.update(extra or {})
        self.nonce = None
        return self.raw("POST", target, jws(key, payload, header, alg))

    def register(self, **payload: Any) -> tuple[int, dict, Any]:
        status, headers, body = self.post("new-account", {"termsOfServiceAgreed": True, **payload}, use_jwk=True)
        if status in (200, 201):
            self.kid = headers["location"]
        return status, headers, body

    def thumbprint(self) -> str:
        return jose.thumbprint(jose.public_jwk(self.key))

    def key_authorization(self, token: str) -> str:
        return f"{token}.{self.thumbprint()}"


class ChallengeServer:
    """An http-01 responder on 127.0.0.1 (a free port): serves the key authorizations put in ``tokens``."""

    def __init__(self) -> None:
        tokens: dict[str, str] = {}
        self.tokens = tokens

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                token = self.path.rsplit("/", 1)[-1]
                body = tokens.get(token, "").encode()
                self.send_response(200 if body else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def csr_der(names: list[str], key: Any = None, cn: str | None = None) -> tuple[str, Any]:
    """(base64url DER CSR, key)."""
    from tests.support.ca import make_csr

    pem, key = make_csr(cn if cn is not None else names[0], names, key)
    from cryptography import x509

    der = x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER)
    return jose.b64e(der), key

"""The renew function's routes: POST /renew (mTLS or x5cInsecure Bearer token) and POST /rekey (mTLS)."""

from __future__ import annotations

from stepless import authority
from stepless.api.app import App
from stepless.api.http import Request, response
from stepless.services import renew as renewal

app = App("renew")


@app.route("POST", "/renew")
def renew(req: Request) -> dict:
    return response(201, renewal.renew(req.client_cert_pem, req.headers.get("authorization"), authority.get()))


@app.route("POST", "/rekey")
def rekey(req: Request) -> dict:
    return response(201, renewal.rekey(req.client_cert_pem, req.json(), authority.get()))

"""The renew function's routes: POST /renew (mTLS or x5cInsecure Bearer token) and POST /rekey (mTLS).

Its handler also answers the scheduled (EventBridge) event that renews the due managed certificates.
"""

from __future__ import annotations

from typing import Any

from stepless import authority
from stepless.api.app import App
from stepless.api.http import Request, response
from stepless.services import renew as renewal

app = App("renew")


@app.scheduled("managed renewal")
def renew_managed(context: Any) -> dict[str, Any]:
    """The scheduled run: renew the due managed certificates; its summary is the invocation's result."""
    from stepless.managed import renewal as managed

    return managed.run(context)


@app.route("POST", "/renew")
def renew(req: Request) -> dict:
    return response(201, renewal.renew(req.client_cert_pem, req.headers.get("authorization"), authority.get()))


@app.route("POST", "/rekey")
def rekey(req: Request) -> dict:
    return response(201, renewal.rekey(req.client_cert_pem, req.json(), authority.get()))

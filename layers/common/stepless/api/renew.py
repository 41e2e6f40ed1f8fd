"""The renew function's routes: POST /renew (mTLS or x5cInsecure Bearer token) and POST /rekey (mTLS).

Its handler also answers the scheduled (EventBridge) event that renews the due managed certificates.
"""

from __future__ import annotations

from typing import Any

from stepless import authority
from stepless.api import schedule
from stepless.api.app import App
from stepless.api.http import Request, response
from stepless.services import renew as renewal


class RenewApp(App):
    """An App whose handler turns a scheduled event into a managed-certificate renewal run."""

    def handler(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        if schedule.is_scheduled(event):
            return schedule.handle(event, context)
        return super().handler(event, context)


app = RenewApp("renew")


@app.route("POST", "/renew")
def renew(req: Request) -> dict:
    return response(201, renewal.renew(req.client_cert_pem, req.headers.get("authorization"), authority.get()))


@app.route("POST", "/rekey")
def rekey(req: Request) -> dict:
    return response(201, renewal.rekey(req.client_cert_pem, req.json(), authority.get()))

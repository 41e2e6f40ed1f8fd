"""The revoke function's routes: POST /revoke, GET /crl, POST /ocsp, GET /ocsp/{b64}.

Its handler also answers the scheduled (EventBridge) event that refreshes the stored CRL.
"""

from __future__ import annotations

import re
from typing import Any

from stepless import authority, clock
from stepless.api import acme, schedule
from stepless.api.app import App
from stepless.api.http import Request, response
from stepless.observability import logger
from stepless.services import crl, ocsp
from stepless.services import revoke as revocation


class RevokeApp(App):
    """An App whose GET /ocsp/ takes the rest of the path (base64 may contain '/'), and whose handler
    turns a scheduled event into a CRL refresh."""

    def route_rest(self, method: str, prefix: str, name: str):  # noqa: ANN201
        """Register ``fn`` for ``prefix/<anything>`` (and under /1.0), captured as ``name``."""

        def register(fn):  # noqa: ANN001, ANN202
            for p in ("", "/1.0"):
                self._routes.append((method, re.compile(f"^{re.escape(p + prefix)}/(?P<{name}>.+)$"), fn))
            return fn

        return register

    def handler(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        if schedule.is_scheduled(event):
            return schedule.run("CRL refresh", event, _refresh_crl)
        return super().handler(event, context)


def _refresh_crl() -> dict[str, Any]:
    out = crl.refresh(authority.get())
    logger.info("scheduled CRL refresh", extra=out)
    return out


app = RevokeApp("revoke")

PKIX_CRL = "application/pkix-crl"


@app.route("POST", "/revoke")
def revoke(req: Request) -> dict:
    return response(200, revocation.revoke(req.json(), req.client_cert_pem, authority.get()))


@app.route("GET", "/crl")
def get_crl(req: Request) -> dict:
    current = crl.current(authority.get())
    headers = {"cache-control": f"public, max-age={int(crl.ttl())}",
               "last-modified": current.this_update.strftime("%a, %d %b %Y %H:%M:%S GMT")}
    if "pem" in req.query:
        return response(200, crl.pem(current.der), {"content-type": "application/x-pem-file", **headers})
    return response(200, current.der, {"content-type": PKIX_CRL, **headers})


def _ocsp_response(result: ocsp.Answer) -> dict:
    return response(200, result.der, {"content-type": ocsp.CONTENT_TYPE, **ocsp.cache_headers(result, clock.now())})


def _ocsp(der: bytes) -> dict:
    return _ocsp_response(ocsp.answer(der, authority.get()))


@app.route("POST", "/ocsp")
def post_ocsp(req: Request) -> dict:
    return _ocsp(req.body)


@app.route_rest("GET", "/ocsp", "request")
def get_ocsp(req: Request) -> dict:
    der = ocsp.decode_get(req.params["request"])
    if der is None:
        return _ocsp_response(ocsp.Answer(ocsp.malformed()))
    return _ocsp(der)



acme.register_revoke(app)

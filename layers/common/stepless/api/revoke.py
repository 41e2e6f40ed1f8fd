"""The revoke function's routes: POST /revoke, GET /crl, POST /ocsp, GET /ocsp/{b64}.

Its handler also answers the scheduled (EventBridge) event that refreshes the stored CRL.
"""

from __future__ import annotations

from typing import Any

from stepless import authority, clock
from stepless.api import acme
from stepless.api.app import App
from stepless.api.http import Request, response
from stepless.observability import logger
from stepless.services import crl, ocsp
from stepless.services import revoke as revocation

app = App("revoke")


@app.scheduled("CRL refresh")
def refresh_crl(context: Any) -> dict[str, Any]:
    """The scheduled run: publish a fresh CRL."""
    out = crl.refresh(authority.get())
    logger.info("scheduled CRL refresh", extra=out)
    return out


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


@app.route("GET", "/ocsp/{request+}")  # base64 may contain "/"
def get_ocsp(req: Request) -> dict:
    der = ocsp.decode_get(req.params["request"])
    if der is None:
        return _ocsp_response(ocsp.Answer(ocsp.malformed()))
    return _ocsp(der)



acme.register_revoke(app)

"""The sign function's routes: POST /sign and the read-only CA endpoints."""

from __future__ import annotations

from stepless import __version__, authority
from stepless.api import acme
from stepless.api.app import App
from stepless.api.http import Request, response
from stepless.services import catalog
from stepless.services import sign as signing

app = App("sign")


@app.route("GET", "/health")
def health(req: Request) -> dict:
    return response(200, {"status": "ok"})


@app.route("GET", "/version")
def version(req: Request) -> dict:
    return response(200, {"version": __version__, "requireClientAuthentication": False})


@app.route("GET", "/root/{sha}")
def root(req: Request) -> dict:
    return response(200, catalog.root(authority.get(), req.params["sha"]))


@app.route("GET", "/roots")
def roots(req: Request) -> dict:
    return response(200, {"crts": authority.get().root_pems})


@app.route("GET", "/federation")
def federation(req: Request) -> dict:
    return response(200, {"crts": authority.get().federated_pems})


@app.route("GET", "/roots.pem")
def roots_pem(req: Request) -> dict:
    return response(200, "".join(authority.get().root_pems), {"content-type": "application/x-pem-file"})


@app.route("GET", "/provisioners")
def provisioners(req: Request) -> dict:
    return response(200, catalog.provisioners(authority.get(), req.query.get("cursor"), req.query.get("limit")))


@app.route("GET", "/provisioners/{kid}/encrypted-key")
def encrypted_key(req: Request) -> dict:
    return response(200, catalog.encrypted_key(authority.get(), req.params["kid"]))


@app.route("POST", "/sign")
def sign(req: Request) -> dict:
    return response(201, signing.sign(req.json(), authority.get()))


acme.register(app)

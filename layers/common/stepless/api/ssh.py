"""The ssh function's routes: sign, renew, rekey, revoke, roots, federation, config, check-host, hosts, KRL,
bastion. Each route imports its service when it is first called: a cold start loads only the modules its
first request needs (tests/unit/test_lambda_imports.py)."""

from __future__ import annotations

from stepless import authority
from stepless.api.app import App
from stepless.api.http import Request, response

app = App("ssh")


@app.route("POST", "/ssh/sign")
def sign(req: Request) -> dict:
    from stepless.services import ssh as ssh_signing

    return response(201, ssh_signing.sign(req.json(), authority.get()))


@app.route("POST", "/ssh/renew")
def renew(req: Request) -> dict:
    from stepless.services import ssh_renew

    return response(201, ssh_renew.renew(req.json(), authority.get()))


@app.route("POST", "/ssh/rekey")
def rekey(req: Request) -> dict:
    from stepless.services import ssh_renew

    return response(201, ssh_renew.rekey(req.json(), authority.get()))


@app.route("POST", "/ssh/revoke")
def revoke(req: Request) -> dict:
    from stepless.services import ssh_revoke

    return response(200, ssh_revoke.revoke(req.json(), authority.get()))


@app.route("GET", "/ssh/roots")
def roots(req: Request) -> dict:
    from stepless.services import ssh_info

    return response(200, ssh_info.roots(authority.get()))


@app.route("GET", "/ssh/federation")
def federation(req: Request) -> dict:
    from stepless.services import ssh_info

    return response(200, ssh_info.federation(authority.get()))


@app.route("POST", "/ssh/config")
def config(req: Request) -> dict:
    from stepless.services import ssh_info

    return response(200, ssh_info.config(req.json(), None, authority.get()))


@app.route("POST", "/ssh/config/{type}")
def config_type(req: Request) -> dict:
    from stepless.services import ssh_info

    return response(200, ssh_info.config(req.json(), req.params["type"], authority.get()))


@app.route("POST", "/ssh/check-host")
def check_host(req: Request) -> dict:
    from stepless.services import ssh_info

    return response(200, ssh_info.check_host(req.json()))


@app.route("GET", "/ssh/hosts")
def hosts(req: Request) -> dict:
    from stepless.services import ssh_info

    return response(200, ssh_info.list_hosts(req.query))


@app.route("GET", "/ssh/krl")
def krl(req: Request) -> dict:
    from stepless.services import ssh_info

    return response(200, ssh_info.krl(authority.get(), req.query.get("type")),
                    {"cache-control": f"public, max-age={int(ssh_info.KRL_TTL)}"})


@app.route("GET", "/ssh/get-hosts")
def get_hosts(req: Request) -> dict:
    """The legacy alias of ``GET /ssh/hosts`` that step-ca 0.19 still serves."""
    return hosts(req)


@app.route("POST", "/ssh/bastion")
def bastion(req: Request) -> dict:
    from stepless.services import ssh_bastion

    return response(200, ssh_bastion.bastion(req.json(), authority.get()))

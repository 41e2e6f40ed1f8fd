"""ACME routes (RFC 8555) on the sign function, at step-ca's URLs ``/acme/<provisioner>/…`` (and ``/1.0/…``).

Thin: each route builds the request's :class:`~stepless.acme.service.Ctx` and calls one use case
(:mod:`~stepless.acme.accounts`, :mod:`~stepless.acme.orders`, :mod:`~stepless.acme.issuance`). Every
response — errors included — carries a fresh ``Replay-Nonce`` and ``Link: <directory>;rel="index"``;
errors are RFC 8555 problem documents (:mod:`stepless.acme.errors`).

The ACME modules are imported by the first ACME request, not with the routes: a cold start of the sign
function whose first request is ``POST /sign`` loads none of them (tests/unit/test_lambda_imports.py).
"""

from __future__ import annotations

import contextlib
import importlib
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from stepless import authority, clock
from stepless.api.app import App
from stepless.api.http import Request, response
from stepless.errors import StepError
from stepless.observability import logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from stepless.acme import service
    from stepless.acme.messages import Links

PATH = re.compile(r"^(?P<prefix>/1\.0)?/acme/(?P<provisioner>[^/]+)/")
# the finalize of the largest order newOrder takes must fit: 98 names of 253 characters, in the CSR of an RSA-4096 key,
# signed by an RSA-4096 account key, is ~47 KiB (32 KiB left orders of 98 names over ~180 characters unfinalizable)
MAX_JWS_BYTES = 56 * 1024


def _links(req: Request) -> tuple[Links, str]:
    """This provisioner's URLs as the request reached them, and the request's own URL."""
    from stepless.acme.errors import malformed
    from stepless.acme.messages import Links

    host = req.headers.get("host", "")
    if not host or any(c in host for c in "/\\@ "):
        raise malformed("the request has no valid Host header")
    m = PATH.match(req.path)
    assert m is not None  # every ACME route matches
    base = f"https://{host}{m['prefix'] or ''}/acme/{quote(m['provisioner'], safe='')}"
    return Links(base), f"https://{host}{quote(req.path, safe='/')}"


def _ctx(req: Request) -> service.Ctx:
    from stepless.acme import service
    from stepless.acme.errors import AcmeError, malformed
    from stepless.provisioners.acme import ACMEProvisioner

    links, url = _links(req)
    auth = authority.get()
    prov = auth.provisioners.get(req.params["provisioner"])
    if not isinstance(prov, ACMEProvisioner):
        raise AcmeError("malformed", f"no ACME provisioner is named {req.params['provisioner'][:64]!r}", status=404)
    if req.method == "POST":
        ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/jose+json":
            raise malformed("the content type must be application/jose+json")
        if len(req.body) > MAX_JWS_BYTES:
            raise AcmeError("malformed", f"the JWS is larger than {MAX_JWS_BYTES // 1024} KiB", status=413)
    return service.Ctx(auth, prov, links, url, int(clock.now().timestamp()))


def _headers(req: Request, extra: dict[str, str]) -> dict[str, str]:
    from stepless.acme import service

    out = {"cache-control": "no-store", **extra}
    try:
        if "replay-nonce" not in out:  # newNonce made its own
            out["replay-nonce"] = service.new_nonce(int(clock.now().timestamp()))
    except StepError:
        logger.warning("no nonce for an ACME response: the store refused it")
    with contextlib.suppress(StepError):  # Link values join with commas (RFC 8288 §3)
        index = f'<{_links(req)[0].directory()}>;rel="index"'
        out["link"] = f"{out['link']}, {index}" if out.get("link") else index
    return out


def _reply(req: Request, rep: service.Reply) -> dict[str, Any]:
    headers = _headers(req, rep.headers)
    if isinstance(rep.body, str):
        headers.setdefault("content-type", "application/pem-certificate-chain" if rep.body else "text/plain")
    return response(rep.status, rep.body, headers)


def problem(req: Request, e: StepError) -> dict[str, Any]:
    """An RFC 8555 problem document with the ACME headers (the App's error renderer for ACME paths)."""
    from stepless.acme.errors import from_step_error

    err = from_step_error(e)
    return response(err.status, err.to_json(), _headers(req, err.headers))


# (path below /acme/{provisioner}, use case as "<module of stepless.acme>.<function>", path parameters), all
# POST; revoke-cert is the revoke function's (only it writes revocations), everything else the sign function's
POSTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/new-account", "accounts.new_account", ()),
    ("/account/{account}", "accounts.account", ("account",)),
    ("/account/{account}/orders", "accounts.orders", ("account",)),
    ("/key-change", "accounts.key_change", ()),
    ("/new-order", "orders.new_order", ()),
    ("/order/{order}", "orders.get_order", ("order",)),
    ("/order/{order}/finalize", "issuance.finalize", ("order",)),
    ("/authz/{authz}", "orders.get_authz", ("authz",)),
    ("/challenge/{authz}/{challenge}", "orders.challenge", ("authz", "challenge")),
    ("/certificate/{certificate}", "issuance.certificate", ("certificate",)),
    ("/certificate/{certificate}/{alternate}", "issuance.certificate", ("certificate", "alternate")),
)
BASE = "/acme/{provisioner}"


def use_case(name: str) -> Callable[..., service.Reply]:
    """The use case ``"<module>.<function>"`` of :mod:`stepless.acme` (its module imported on first use)."""
    module, _, function = name.partition(".")
    return getattr(importlib.import_module(f"stepless.acme.{module}"), function)


def _post(app: App, path: str, use: str, names: tuple[str, ...]) -> None:
    @app.route("POST", BASE + path)
    def handle(req: Request) -> dict[str, Any]:
        return _reply(req, use_case(use)(_ctx(req), req.body, *(req.params[n] for n in names)))


def _directory(req: Request) -> dict[str, Any]:
    from stepless.acme import service

    rep = service.directory(_ctx(req))
    return response(200, rep.body, {"cache-control": "public, max-age=0, no-cache"})


def _nonce(req: Request) -> dict[str, Any]:
    from stepless.acme import service

    nonce = service.new_nonce(_ctx(req).now)  # newNonce's one job: its failure is the answer (a problem document)
    return response(204 if req.method == "GET" else 200, "", _headers(req, {"replay-nonce": nonce}))


def register(app: App) -> None:
    """The sign function's ACME routes: directory, nonces, accounts, orders, challenges, certificates."""
    app.error_renderer(PATH, problem)
    for method in ("GET", "HEAD"):
        app.route(method, BASE + "/directory")(_directory)
        app.route(method, BASE + "/new-nonce")(_nonce)
    for path, use, names in POSTS:
        _post(app, path, use, names)


def register_revoke(app: App) -> None:
    """The revoke function's ACME route: revokeCert (RFC 8555 §7.6)."""
    app.error_renderer(PATH, problem)
    _post(app, "/revoke-cert", "issuance.revoke_cert", ())

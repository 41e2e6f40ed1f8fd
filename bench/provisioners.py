"""X5C and OIDC provisioners: what their verification costs per request, against the JWK path.

Sections (``python -m bench provisioners --only issuance,calls``):

* issuance — in-process, Secrets Manager backend, moto stopped, the AWS write stubbed: POST /sign
  (services.sign) with a JWK token, an X5C token (a device leaf per request, chain leaf → intermediate →
  configured root) and OIDC ID tokens from tests/support/oidc_provider.py (RS256, as most IdPs sign, and
  ES256), a distinct CSR each; rounds alternate. Ratios against the JWK issuance, and the token checks
  alone against the JWK token check; the sign benchmark's baseline for orientation. IdP requests during
  the timed rounds are counted (warm container, known kid: expect 0).
* calls — the real sign handler against moto (KMS backend) on a fresh container: the first OIDC request
  (discovery + JWKS fetched), then warm OIDC issuances: AWS calls (0 reads, 1 TransactWriteItems,
  ≤ 1 kms.Sign) and IdP requests (0); the OIDC verification alone (provisioner.authorize_sign): 0 AWS
  calls and 0 IdP requests. X5C likewise, for AWS calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from bench.common import AWSCalls, Row, expect, interleave, quiet_logger, run_sections
from bench.renew import baseline_row, offline_ca, rate_note
from bench.sign import _ca, _requests, _stub_record, baseline_batch

SECTIONS = ("issuance", "calls")
X5C_NAME = "devices"


@contextlib.contextmanager
def _idps() -> Iterator[dict[str, Any]]:
    """Two test OpenID providers on loopback: RS256 and ES256 signing keys."""
    from tests.support.oidc_provider import Provider

    from stepless import oidc_discovery

    oidc_discovery.reset()
    with Provider(client_id="bench-rs256") as rs, Provider(client_id="bench-es256", alg="ES256") as es:
        try:
            yield {"RS256": rs, "ES256": es}
        finally:
            oidc_discovery.reset()


def _add_provisioners(pki: Any, idps: dict[str, Any]) -> None:
    """The X5C provisioner (trusting ``pki``'s root) and one OIDC provisioner per IdP, in the stored config."""
    from stepless import authority
    from stepless.stores import authority as store

    doc, version = store.load()
    extra = [{"type": "X5C", "name": X5C_NAME, "roots": pki.roots_value()}]
    extra += [idp.entry(name=f"sso-{alg.lower()}", admins=["root@example.com"], domains=["example.com"])
              for alg, idp in idps.items()]
    doc["provisioners"] = [*doc["provisioners"], *extra]
    store.save(doc, expected_version=version)
    authority.reset()


def _x5c_bodies(pki: Any, n: int) -> list[dict[str, str]]:
    """``n`` sign bodies with X5C tokens: a device leaf (own key) per request, its name in the CSR."""
    from tests.support.ca import CA_URL, make_csr
    from tests.support.x5c import make_token, x5c_claims

    bodies = []
    for i in range(n):
        name = f"dev{i}.example.com"
        leaf, key = pki.leaf(name)
        token = make_token([leaf, pki.inter], key, x5c_claims(name, name=X5C_NAME, aud=CA_URL + "/1.0/sign",
                                                              lifetime=3600))
        bodies.append({"ott": token, "csr": make_csr(name)[0]})
    return bodies


def _oidc_bodies(idp: Any, n: int) -> list[dict[str, str]]:
    """``n`` sign bodies with ID tokens (distinct nonces), CSRs as step's CLI makes them (CN = sub, SAN = email)."""
    from tests.support.ca import make_csr

    return [{"ott": idp.issue(), "csr": make_csr(idp.user["sub"], [idp.user["email"]])[0]} for _ in range(n)]


def _idp_hits(idps: dict[str, Any]) -> int:
    return sum(sum(idp.hits.values()) for idp in idps.values())


# --- 1. verification cost per request -------------------------------------------------------------------


def issuance(n: int = 200, rounds: int = 5) -> tuple[list[Row], list[str]]:
    from tests.support.x5c import PKI

    from stepless import authority, clock, tokens
    from stepless.provisioners import Context
    from stepless.provisioners.x5c import chain_from_header
    from stepless.services import sign as signing

    pki = PKI()
    with _idps() as idps, offline_ca("secrets", lambda ca: _add_provisioners(pki, idps)) as (ca, _), \
            _stub_record(), quiet_logger():
        auth = authority.get()
        bodies = {"jwk": _requests(ca, n), "x5c": _x5c_bodies(pki, n)}
        bodies |= {f"oidc_{alg.lower()}": _oidc_bodies(idp, n) for alg, idp in idps.items()}
        x5c = auth.provisioners.get(X5C_NAME)
        chains = [chain_from_header(tokens.unverified(body["ott"])[0]) for body in bodies["x5c"]]

        def issue(kind: str) -> Any:
            def batch() -> int:
                for body in bodies[kind]:
                    signing.sign(body, auth)
                return n
            return batch

        def check(kind: str) -> Any:
            def batch() -> int:
                ctx = Context(auth.hosts, clock.now())
                for body in bodies[kind]:
                    header, claims = tokens.unverified(body["ott"])
                    auth.provisioners.select(header, claims).authorize_sign(body["ott"], header, claims, ctx)
                return n
            return batch

        def chain_only() -> int:
            now = clock.now()
            for chain in chains:
                x5c.verify_chain(chain, now)
            return n

        batches: dict[str, Any] = {"baseline": baseline_batch(n)}
        for kind in bodies:
            batches[kind] = issue(kind)
            batches[f"check_{kind}"] = check(kind)
        batches["chain"] = chain_only
        for batch in batches.values():  # warm: discovery and JWKS fetched, signers loaded
            batch()
        hits0 = _idp_hits(idps)
        t = interleave(batches, rounds=rounds, warmup=0)
        timed_hits = _idp_hits(idps) - hits0

    base, jwk, jwk_check = t["baseline"], t["jwk"], t["check_jwk"]
    rows = [
        baseline_row("provisioners", base),
        Row("provisioners", "JWK issuance in-process (services.sign, write stubbed): the reference",
            "1.00x", "JWK", note=f"{rate_note(jwk)} = {jwk.min / base.min:.2f}x baseline; its token check "
                                 f"{jwk_check.min * 1e6:.0f} us (ES256 verify)"),
    ]
    labels = {"x5c": "X5C token (leaf -> intermediate -> root, ES256)", "oidc_rs256": "OIDC ID token, RS256",
              "oidc_es256": "OIDC ID token, ES256"}
    for kind, label in labels.items():
        full, chk = t[kind], t[f"check_{kind}"]
        rows += [
            Row("provisioners", f"issuance with an {label}", f"{full.min / jwk.min:.2f}x", "JWK issuance",
                note=f"{rate_note(full)}; {(full.min - jwk.min) * 1e6:+.0f} us per request vs JWK; "
                     f"{full.min / base.min:.2f}x baseline"),
            Row("provisioners", f"  token check alone: {label}", f"{chk.min / jwk_check.min:.2f}x",
                "JWK token check", note=f"{chk.min * 1e6:.0f} us CPU/op = {chk.min / base.min:.2f}x baseline"),
        ]
        if kind == "x5c":
            ch = t["chain"]
            rows.append(Row("provisioners", "  X5C chain verification alone (X5CProvisioner.verify_chain)",
                            f"{ch.min / jwk_check.min:.2f}x", "JWK token check",
                            note=f"{ch.min * 1e6:.0f} us CPU/op = {ch.min / base.min:.2f}x baseline, "
                                 f"{ch.min / t['x5c'].min:.0%} of an X5C issuance"))
    rows.append(Row("provisioners", "IdP requests during the timed OIDC rounds (warm, known kid)", f"{timed_hits}",
                    "", "0", timed_hits == 0,
                    f"{rounds} rounds x {n} requests x 2 IdPs; the AWS guard refused any AWS call (none made)"))
    return rows, []


# --- 2. AWS and IdP calls -------------------------------------------------------------------------------


def calls(n: int = 20) -> tuple[list[Row], list[str]]:
    from tests.support.ca import event
    from tests.support.x5c import PKI

    from stepless import authority, aws, clock, oidc_discovery, tokens
    from stepless.api.sign import app
    from stepless.provisioners import Context

    pki = PKI()
    with _idps() as idps, _ca("kms", ttl=None), quiet_logger():
        idp = idps["RS256"]
        _add_provisioners(pki, idps)
        oidc = [event("POST", "/1.0/sign", b) for b in _oidc_bodies(idp, n + 1)]
        x5c = [event("POST", "/1.0/sign", b) for b in _x5c_bodies(pki, n + 1)]
        alone = [idp.issue() for _ in range(n)]

        def container(events: list[dict]) -> tuple[dict[str, int], dict[str, float], float, int, int]:
            aws.reset()  # a fresh container: nothing loaded, no clients, no IdP documents
            authority.reset()
            oidc_discovery.reset()
            counter = AWSCalls().attach()
            hits0 = sum(idp.hits.values())
            expect(app.handler(events[0], None), 201)
            cold, cold_hits = dict(counter.counts), sum(idp.hits.values()) - hits0
            counter.reset()
            hits0 = sum(idp.hits.values())
            for ev in events[1:]:
                expect(app.handler(ev, None), 201)
            return cold, counter.per(n), counter.reads() / n, cold_hits, sum(idp.hits.values()) - hits0

        results = {"OIDC": container(oidc)}
        # the OIDC verification alone, on the same (warm) container
        counter = AWSCalls().attach()
        hits0 = sum(idp.hits.values())
        auth = authority.get()
        ctx = Context(auth.hosts, clock.now())
        for token in alone:
            header, claims = tokens.unverified(token)
            auth.provisioners.select(header, claims).authorize_sign(token, header, claims, ctx)
        verify_aws, verify_hits = sum(counter.counts.values()), sum(idp.hits.values()) - hits0
        results["X5C"] = container(x5c)

    rows = []
    for name, (cold, per, reads, cold_hits, warm_hits) in results.items():
        txn, kms_sign = per.get("dynamodb.TransactWriteItems", 0.0), per.get("kms.Sign", 0.0)
        idp_note = f"; IdP requests: {warm_hits} warm, {cold_hits} on the cold first request" if name == "OIDC" else ""
        ok = reads == 0 and txn == 1 and kms_sign <= 1 and (warm_hits == 0 or name != "OIDC")
        rows += [
            Row("provisioners", f"AWS calls per warm {name} issuance (KMS backend, {n} requests)",
                f"{sum(per.values()):.2f}", "", "reads 0, txn 1, kms.Sign <= 1" + (", IdP 0" if name == "OIDC" else ""),
                ok, ", ".join(f"{k} {v:g}" for k, v in per.items()) + idp_note),
            Row("provisioners", f"  (cold first {name} request, for reference)", f"{sum(cold.values())}", "",
                note=", ".join(f"{k} {v}" for k, v in sorted(cold.items()))),
        ]
    rows.append(Row("provisioners", f"OIDC verification alone, warm, known kid ({n} tokens): AWS calls + IdP requests",
                    f"{verify_aws} + {verify_hits}", "", "0 + 0", verify_aws == 0 and verify_hits == 0,
                    "tokens.unverified + provisioners.select + OIDCProvisioner.authorize_sign"))
    return rows, []


# --- entry ----------------------------------------------------------------------------------------------


def run(only: tuple[str, ...] = SECTIONS, profile: bool = False, full: bool = False, smoke: bool = False,
        **_: object) -> tuple[list[Row], list[str]]:
    """The sections in ``only``; ``full``: more rounds; ``smoke``: minimal rounds (figures mean nothing)."""
    if smoke:
        return run_sections("provisioners", {
            "issuance": lambda: issuance(n=3, rounds=1),
            "calls": lambda: calls(n=2),
        }, only)
    rounds = 9 if full else 5
    return run_sections("provisioners", {
        "issuance": lambda: issuance(rounds=rounds),
        "calls": calls,
    }, only)

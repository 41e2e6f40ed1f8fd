"""ACME (RFC 8555) through the sign function's handler: the whole order flow on both stores, and every bad
input answered with the right problem document and nothing issued."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from stepless import jose
from stepless.acme import nonces
from stepless.admin import provisioners as admin
from stepless.stores import acme as acme_store
from stepless.stores import certificates, revocations
from tests.support.acme import ChallengeServer, Client, csr_der, eab

PROBLEM = "urn:ietf:params:acme:error:"


@pytest.fixture
def http01(monkeypatch):
    server = ChallengeServer()
    monkeypatch.setenv("STEPLESS_ACME_HTTP01_PORT", str(server.port))
    monkeypatch.setenv("STEPLESS_ACME_VALIDATION_HOST", "127.0.0.1")
    yield server
    server.close()


def _app():
    from stepless.api.sign import app

    return app


def _ca(request, name: str) -> None:
    request.getfixturevalue(name)
    admin.add(admin.acme_entry("acme", require_eab=False,
                               policy={"deny": {"dns": ["*.denied.test", "denied.test"]}}))
    admin.add(admin.acme_entry("eab", require_eab=True))


@pytest.fixture(params=["sqlite_ca", "test_ca"])
def ca(request):
    _ca(request, request.param)
    return request.param


def _validate(client: Client, order: dict, server: ChallengeServer) -> None:
    for authz_url in order["authorizations"]:
        status, _, authz = client.post(authz_url, None)
        assert status == 200
        ch = next(c for c in authz["challenges"] if c["type"] == "http-01")
        server.tokens[ch["token"]] = client.key_authorization(ch["token"])
        status, headers, result = client.post(ch["url"], {})
        assert status == 200, result
        assert result["status"] == "valid"
        assert headers["link"] == f'<{authz_url}>;rel="up", <{client.url("directory")}>;rel="index"'


def _order(client: Client, names: list[str]) -> tuple[str, dict]:
    status, headers, order = client.post("new-order", {"identifiers": [{"type": "dns", "value": n} for n in names]})
    assert status == 201, order
    return headers["location"], order


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1()),
                                 rsa.generate_private_key(65537, 2048), ed25519.Ed25519PrivateKey.generate()],
                         ids=["ES256", "ES384", "RS256", "EdDSA"])
def test_order_flow_issues_and_records(ca, http01, key):
    client = Client(_app(), key=key)
    status, headers, directory = client.raw("GET", client.url("directory"))
    assert status == 200 and directory["newAccount"] == client.url("new-account")
    assert directory["meta"] == {"externalAccountRequired": False}
    status, headers, account = client.register(contact=["mailto:ops@example.com"])
    assert status == 201 and account["status"] == "valid" and headers["replay-nonce"]
    assert headers["link"] == f'<{client.url("directory")}>;rel="index"'
    order_url, order = _order(client, ["www.example.test", "example.test"])
    assert order["status"] == "pending" and len(order["authorizations"]) == 2
    _validate(client, order, http01)
    status, _, order = client.post(order_url, None)
    assert order["status"] == "ready"
    csr, _ = csr_der(["www.example.test", "example.test"])
    status, headers, order = client.post(order["finalize"], {"csr": csr})
    assert status == 200 and order["status"] == "valid", order
    status, headers, pem = client.post(order["certificate"], None)
    assert status == 200 and headers["content-type"] == "application/pem-certificate-chain"
    leaf, inter = x509.load_pem_x509_certificates(pem.encode())
    assert order["certificate"] == client.url(f"certificate/{leaf.serial_number}")  # names the certificate
    assert headers["link"] == f'<{client.url("directory")}>;rel="index"'  # one chain: no alternate
    leaf.verify_directly_issued_by(inter)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == ["example.test", "www.example.test"]
    rec = certificates.get(str(leaf.serial_number))
    assert rec is not None and rec.provisioner == "acme" and rec.provisioner_type == "ACME"
    status, _, listed = client.post(f"account/{client.kid.rsplit('/', 1)[1]}/orders", None)
    assert listed == {"orders": [order_url]}
    # revoke by the account
    der = leaf.public_bytes(Encoding.DER)
    from cryptography.x509 import ocsp

    from stepless import authority
    from tests.integration.test_crl_ocsp import ocsp_request, post_ocsp

    query = ocsp_request(leaf, authority.get().intermediate)
    assert post_ocsp(query).certificate_status == ocsp.OCSPCertStatus.GOOD  # a pre-produced "good" stored
    status, _, body = client.post("revoke-cert", {"certificate": jose.b64e(der), "reason": 4})
    assert status == 200, body
    assert revocations.get(str(leaf.serial_number)).reason_code == 4
    answer = post_ocsp(query)  # OCSP says so at once, as for POST /revoke
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED and answer.revocation_reason is not None
    status, _, body = client.post("revoke-cert", {"certificate": jose.b64e(der)})
    assert body["type"] == PROBLEM + "alreadyRevoked"


def test_revoke_by_certificate_key_and_existing_account(ca, http01):
    client = Client(_app(), prefix="/1.0")
    client.register()
    again = Client(_app(), key=client.key, prefix="/1.0")
    status, headers, _ = again.register(onlyReturnExisting=True)
    assert status == 200 and headers["location"] == client.kid
    _, order = _order(client, ["a.example.test"])
    _validate(client, order, http01)
    csr, cert_key = csr_der(["a.example.test"])
    _, _, order = client.post(order["finalize"], {"csr": csr})
    _, _, pem = client.post(order["certificate"], None)
    der = x509.load_pem_x509_certificates(pem.encode())[0].public_bytes(Encoding.DER)
    stranger = Client(_app(), prefix="/1.0")
    stranger.register()
    status, _, body = stranger.post("revoke-cert", {"certificate": jose.b64e(der)})
    assert status == 401 and body["type"] == PROBLEM + "unauthorized"
    status, _, body = Client(_app(), prefix="/1.0").post("revoke-cert", {"certificate": jose.b64e(der)},
                                                         key=cert_key, use_jwk=True)
    assert status == 200, body


def test_valid_order_is_kept_until_the_certificate_expires(ca, http01):
    """A pending order lives 24 h; once valid, it, its authorizations and its certificate link stay until the
    certificate's notAfter (the store's TTL), so a client may download the certificate days later."""
    import datetime as dt

    from stepless import clock

    admin.add(admin.acme_entry("week", require_eab=False,
                               claims={"defaultTLSCertDuration": "168h", "maxTLSCertDuration": "168h"}))
    client = Client(_app(), provisioner="week")
    client.register()
    order_url, order = _order(client, ["late.example.test"])
    _validate(client, order, http01)
    _, _, order = client.post(order["finalize"], {"csr": csr_der(["late.example.test"])[0]})
    leaf = x509.load_pem_x509_certificates(client.post(order["certificate"], None)[2].encode())[0]
    not_after = int(leaf.not_valid_after_utc.timestamp())
    assert not_after - int(clock.now().timestamp()) > 6 * 86400  # a week: longer than the pending order's day
    order_id, authz_id = order_url.rsplit("/", 1)[1], order["authorizations"][0].rsplit("/", 1)[1]
    for kind, id in (("order", order_id), ("authz", authz_id), ("cert", str(leaf.serial_number))):
        assert acme_store.get(kind, id).expires == not_after, kind
    with clock.freeze(leaf.not_valid_after_utc - dt.timedelta(hours=1)):  # two days later, and more
        client.nonce = None  # the last one expired
        status, _, later = client.post(order_url, None)
        assert status == 200 and later["status"] == "valid" and later["certificate"] == order["certificate"]
        assert later["expires"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        status, _, pem = client.post(order["certificate"], None)
        assert status == 200 and x509.load_pem_x509_certificates(pem.encode())[0] == leaf
        status, _, authz = client.post(order["authorizations"][0], None)
        assert status == 200 and authz["status"] == "valid"


def test_finalize_when_an_authorization_changed_meanwhile(ca, http01, monkeypatch):
    """Finalize writes the valid order, its certificate link and the kept authorizations in one transaction; when
    an authorization changed after finalize read it (the certificate is signed already), the order and link are
    still written, and that authorization keeps its pending expiry (logged)."""
    from stepless.acme import issuance

    client = Client(_app())
    client.register()
    order_url, order = _order(client, ["raced.example.test"])
    _validate(client, order, http01)
    authz_id = order["authorizations"][0].rsplit("/", 1)[1]
    pending_expiry = acme_store.get("authz", authz_id).expires
    issue = issuance._issue

    def issue_then_touch(*args):
        out = issue(*args)
        rec = acme_store.get("authz", authz_id)
        acme_store.write(rec.next(rec.doc))  # a concurrent write to the authorization
        return out

    monkeypatch.setattr(issuance, "_issue", issue_then_touch)
    status, _, done = client.post(order["finalize"], {"csr": csr_der(["raced.example.test"])[0]})
    assert status == 200 and done["status"] == "valid", done
    leaf = x509.load_pem_x509_certificates(client.post(done["certificate"], None)[2].encode())[0]
    not_after = int(leaf.not_valid_after_utc.timestamp())
    order_id = order_url.rsplit("/", 1)[1]
    assert acme_store.get("order", order_id).expires == not_after
    link = acme_store.get("cert", str(leaf.serial_number))
    assert link.doc["order"] == order_id and link.doc["pem"] == leaf.public_bytes(Encoding.PEM).decode()
    assert acme_store.get("authz", authz_id).expires == pending_expiry
    # a link an earlier stepless wrote (no PEM in it): the download reads the certificate's record
    acme_store.write(link.next({k: v for k, v in link.doc.items() if k != "pem"}))
    status, _, pem = client.post(done["certificate"], None)
    assert status == 200 and x509.load_pem_x509_certificates(pem.encode())[0] == leaf


@pytest.mark.parametrize("key_backend", ["kms", "secrets"])
def test_certificate_alternate_chain_through_the_replaced_intermediate(request, aws_env, http01, key_backend):
    """RFC 8555 §7.4.2: after ``ca rotate-intermediate`` under the same key, the leaf verifies under both the new
    and the replaced (still valid) intermediate: the download links the other chain; under a new key, none."""
    from stepless import authority
    from stepless.admin.rotate import rotate_intermediate

    _ca(request, "test_ca" if key_backend == "kms" else "secrets_ca")
    old = authority.get().intermediate
    rotate_intermediate(outputs=aws_env)
    new, root = authority.get().intermediate, authority.get().roots[0]
    client = Client(_app())
    client.register()
    _, order = _order(client, ["alt.example.test"])
    _validate(client, order, http01)
    _, _, order = client.post(order["finalize"], {"csr": csr_der(["alt.example.test"])[0]})
    status, headers, pem = client.post(order["certificate"], None)
    assert status == 200
    leaf, inter = x509.load_pem_x509_certificates(pem.encode())
    assert inter == new
    index = f'<{client.url("directory")}>;rel="index"'
    if key_backend == "secrets":  # a new key: the old intermediate does not verify the leaf
        assert headers["link"] == index
        status, _, body = client.post(order["certificate"] + "/" + "00" * 32, None)
        assert status == 404 and body["type"] == PROBLEM + "malformed"
        return
    alt_url = order["certificate"] + "/" + old.fingerprint(hashes.SHA256()).hex()
    assert headers["link"] == f'<{alt_url}>;rel="alternate", {index}'
    status, headers, pem = client.post(alt_url, None)
    assert status == 200 and headers["content-type"] == "application/pem-certificate-chain"
    alt_leaf, alt_inter = x509.load_pem_x509_certificates(pem.encode())
    assert alt_leaf == leaf and alt_inter == old != new
    alt_leaf.verify_directly_issued_by(alt_inter)
    alt_inter.verify_directly_issued_by(root)
    assert headers["link"] == f'<{order["certificate"]}>;rel="alternate", {index}'  # and back
    stranger = Client(_app())
    stranger.register()
    for url in (order["certificate"], alt_url):
        status, _, body = stranger.post(url, None)
        assert status == 401 and body["type"] == PROBLEM + "unauthorized"


def test_challenge_processing_state_and_retry_after(sqlite_ca, request, http01):
    """RFC 8555 §7.5.1: a challenge being validated is ``processing`` (its authorization still ``pending``); a POST
    then answers that state with Retry-After and does not validate again; one left processing past the stale
    limit (a function that died) is validated anew. A pending order poll carries Retry-After (§7.4)."""
    from stepless import clock
    from stepless.acme.orders import PROCESSING_STALE_S

    _ca(request, "sqlite_ca")
    client = Client(_app())
    client.register()
    order_url, order = _order(client, ["busy.example.test"])
    status, headers, polled = client.post(order_url, None)
    assert polled["status"] == "pending" and headers["retry-after"] == "1"
    authz_url = order["authorizations"][0]
    authz_id = authz_url.rsplit("/", 1)[1]
    _, _, authz = client.post(authz_url, None)
    ch = next(c for c in authz["challenges"] if c["type"] == "http-01")

    def set_processing(started: int) -> None:  # as a concurrent request that is validating leaves it
        rec = acme_store.get("authz", authz_id)
        doc = {**rec.doc, "challenges": [{**c, "status": "processing", "started": started}
                                         if c["token"] == ch["token"] else c for c in rec.doc["challenges"]]}
        acme_store.write(rec.next(doc))

    now = int(clock.now().timestamp())
    set_processing(now)
    status, headers, busy = client.post(ch["url"], {})
    assert status == 200 and busy["status"] == "processing" and headers["retry-after"] == "1"
    assert "validated" not in busy  # not validated a second time (it would fail: no answer is served yet)
    _, _, authz = client.post(authz_url, None)
    assert authz["status"] == "pending"  # the authorization reflects it: not valid yet
    assert next(c for c in authz["challenges"] if c["url"] == ch["url"])["status"] == "processing"
    http01.tokens[ch["token"]] = client.key_authorization(ch["token"])
    set_processing(now - PROCESSING_STALE_S)  # the validating function died
    status, headers, done = client.post(ch["url"], {})
    assert status == 200 and done["status"] == "valid" and "retry-after" not in headers
    _, _, authz = client.post(authz_url, None)
    assert authz["status"] == "valid"
    status, headers, polled = client.post(order_url, None)
    assert polled["status"] == "ready" and "retry-after" not in headers


def _problem(res: tuple[int, dict, object], kind: str, status: int = 400) -> dict:
    code, headers, body = res
    assert isinstance(body, dict), body
    assert (code, body.get("type")) == (status, PROBLEM + kind), body
    assert headers["content-type"] == "application/problem+json" and headers["replay-nonce"]
    return body



def test_bad_requests_get_rfc8555_problems(sqlite_ca, http01):
    admin.add(admin.acme_entry("acme", require_eab=False,
                               policy={"allow": {"dns": ["*.example.test", "example.test"]}}))
    client = Client(_app())
    # unknown account (a kid nobody registered)
    client.kid = client.url("account/nobody")
    _problem(client.post("new-order", {"identifiers": [{"type": "dns", "value": "x.example.test"}]}),
             "accountDoesNotExist")
    client.kid = None
    _problem(client.register(onlyReturnExisting=True), "accountDoesNotExist")
    client.register()
    # replayed nonce
    nonce = client.get_nonce()
    one = {"identifiers": [{"type": "dns", "value": "x.example.test"}]}
    assert client.post("new-order", one, nonce=nonce)[0] == 201
    _problem(client.post("new-order", one, nonce=nonce), "badNonce")
    _problem(client.post("new-order", {"identifiers": []}, nonce="made-up"), "badNonce")
    # wrong url in the protected header
    _problem(client.post("new-order", {"identifiers": [{"type": "dns", "value": "x.example.test"}]},
                         url=client.url("new-account")), "unauthorized", 401)
    # account key mismatch: the kid of this account, signed by another key
    _problem(client.post("new-order", {"identifiers": [{"type": "dns", "value": "x.example.test"}]},
                         key=ec.generate_private_key(ec.SECP256R1())), "malformed")
    # alg not allowed / not the key's
    _problem(client.post("new-order", {"identifiers": [{"type": "dns", "value": "x.example.test"}]}, alg="HS256"),
             "badSignatureAlgorithm")
    # identifiers outside the policy
    _problem(client.post("new-order", {"identifiers": [{"type": "dns", "value": "evil.test"}]}), "rejectedIdentifier")
    _problem(client.post("new-order", {"identifiers": [{"type": "ip", "value": "10.0.0.1"}]}), "rejectedIdentifier")
    # finalize before the order is ready
    _, order = _order(client, ["y.example.test"])
    csr, _ = csr_der(["y.example.test"])
    _problem(client.post(order["finalize"], {"csr": csr}), "orderNotReady", 403)
    # a CSR with an extra name
    _validate(client, order, http01)
    csr, _ = csr_der(["y.example.test", "z.example.test"])
    _problem(client.post(order["finalize"], {"csr": csr}), "badCSR")
    csr, _ = csr_der(["y.example.test"], cn="other.example.test")
    _problem(client.post(order["finalize"], {"csr": csr}), "badCSR")
    # another account may not read this order
    other = Client(_app())
    other.register()
    _problem(other.post(order["finalize"], {"csr": csr}), "unauthorized", 401)
    # oversized JWS (over the ACME routes' limit, under the API's 64 KiB)
    from stepless.api.acme import MAX_JWS_BYTES

    _problem(client.post("new-order", {"identifiers": [{"type": "dns", "value": "x.example.test"}],
                                       "pad": "x" * (MAX_JWS_BYTES * 3 // 4 + 1000)}), "malformed", 413)
    code, headers, body = client.raw("POST", client.url("new-order"), "x" * 70_000)
    assert code == 413 and body["type"] == PROBLEM + "malformed"
    # wrong content type, not a JWS
    _problem(client.raw("POST", client.url("new-order"), "{}", content_type="application/json"), "malformed")
    _problem(client.raw("POST", client.url("new-order"), "{}"), "malformed")
    # a failed challenge makes the order invalid
    _, order = _order(client, ["w.example.test"])
    _, _, authz = client.post(order["authorizations"][0], None)
    ch = next(c for c in authz["challenges"] if c["type"] == "http-01")
    http01.tokens[ch["token"]] = "wrong"
    _, _, result = client.post(ch["url"], {})
    assert result["status"] == "invalid" and result["error"]["type"] == PROBLEM + "incorrectResponse"
    csr, _ = csr_der(["w.example.test"])
    _problem(client.post(order["finalize"], {"csr": csr}), "orderNotReady", 403)
    # an order whose validity the provisioner's claims refuse: finalize fails and the order is invalid
    status, headers, order = client.post("new-order", {"identifiers": [{"type": "dns", "value": "v.example.test"}],
                                                       "notAfter": "2099-01-01T00:00:00Z"})
    assert status == 201
    _validate(client, order, http01)
    csr, _ = csr_der(["v.example.test"])
    _problem(client.post(order["finalize"], {"csr": csr}), "malformed")
    _, _, order = client.post(headers["location"], None)
    assert order["status"] == "invalid" and order["error"]["type"] == PROBLEM + "malformed"
    # nothing was issued by any of this
    from stepless.stores import backend

    db = backend.current().certificates.db
    with db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM certificates WHERE record LIKE '%\"ACME\"%'").fetchone()[0] == 0


def test_replayed_forged_altered_or_expired_nonce_is_bad_nonce(ca):
    """A nonce is the CA's authenticated value (its expiry inside), recorded only when used: a second use, one
    the CA did not issue (another key's tag, a changed expiry, another spelling of the same bytes) and an
    expired one are each ``badNonce``, and the request does nothing; the problem's Replay-Nonce is a good one."""
    import datetime as dt
    import hashlib
    import hmac
    import struct

    from stepless import clock

    client = Client(_app())
    client.register()
    one = {"identifiers": [{"type": "dns", "value": "n.example.test"}]}
    orders = lambda: len(client.post(client.kid + "/orders", None)[2]["orders"])  # noqa: E731
    before = orders()

    nonce = client.get_nonce()
    assert client.post("new-order", one, nonce=nonce)[0] == 201
    _problem(client.post("new-order", one, nonce=nonce), "badNonce")  # replayed
    assert client.post("new-order", one)[0] == 201  # the problem's Replay-Nonce works

    raw = jose.b64d(client.get_nonce())
    forged = raw[:-16] + hmac.new(b"k" * 32, raw[:-16], hashlib.sha256).digest()[:16]
    _problem(client.post("new-order", one, nonce=jose.b64e(forged)), "badNonce")  # another key's tag
    later = raw[:1] + struct.pack(">I", struct.unpack(">I", raw[1:5])[0] + 86400) + raw[5:]
    _problem(client.post("new-order", one, nonce=jose.b64e(later)), "badNonce")  # its expiry moved
    _problem(client.post("new-order", one, nonce=jose.b64e(raw)[:-1]), "badNonce")  # truncated

    for _ in range(100):  # a nonce with "-" or "_", which base64 decoders also take as "+" or "/"
        nonce = client.get_nonce()
        if "-" in nonce or "_" in nonce:
            break
    assert client.post("new-order", one, nonce=nonce)[0] == 201
    other = nonce.replace("-", "+").replace("_", "/")
    assert jose.b64d(other) == jose.b64d(nonce)
    _problem(client.post("new-order", one, nonce=other), "badNonce")  # the same nonce, spelled otherwise

    stale = client.get_nonce()
    with clock.freeze(clock.now() + dt.timedelta(seconds=nonces.TTL_S + 1)):
        _problem(client.post("new-order", one, nonce=stale), "badNonce")  # expired
        assert client.post("new-order", one)[0] == 201  # a fresh one, issued now
    assert orders() == before + 4  # the four accepted, nothing for the refused


def test_an_order_names_as_many_identifiers_as_one_write_holds(ca):
    """The order, its authorizations and the account are one transaction (DynamoDB: at most 100 items): an
    order of 98 names is created on both stores, one of 99 is refused with rejectedIdentifier, not a 503."""
    from stepless.acme.orders import MAX_IDENTIFIERS

    client = Client(_app())
    client.register()
    names = [{"type": "dns", "value": f"n{i}.example.test"} for i in range(MAX_IDENTIFIERS + 1)]
    body = _problem(client.post("new-order", {"identifiers": names}), "rejectedIdentifier")
    assert str(MAX_IDENTIFIERS) in body["detail"]
    status, _, order = client.post("new-order", {"identifiers": names[:MAX_IDENTIFIERS]})
    assert status == 201 and len(order["authorizations"]) == MAX_IDENTIFIERS == 98, order


def test_external_account_binding(ca, http01):
    from stepless.acme import eab as eabs
    from stepless.stores.acme import AcmeRecord

    client = Client(_app(), provisioner="eab")
    status, _, directory = client.raw("GET", client.url("directory"))
    assert directory["meta"]["externalAccountRequired"] is True
    _problem(client.register(), "externalAccountRequired")
    key_id, hmac_key, record = eabs.new_key("eab", "ops", 0)
    acme_store.write(record)
    wrong = eab(key_id, "AAAA" + hmac_key[4:], client.key, client.url("new-account"))
    _problem(client.register(externalAccountBinding=wrong), "unauthorized", 401)
    other_key = ec.generate_private_key(ec.SECP256R1())
    _problem(client.register(externalAccountBinding=eab(key_id, hmac_key, other_key, client.url("new-account"))),
             "unauthorized", 401)
    _problem(client.register(externalAccountBinding=eab("unknown", hmac_key, client.key, client.url("new-account"))),
             "unauthorized", 401)
    status, _, account = client.register(externalAccountBinding=eab(key_id, hmac_key, client.key,
                                                                    client.url("new-account")))
    assert status == 201, account
    assert acme_store.get("eab", key_id).doc["account"] == client.kid.rsplit("/", 1)[1]
    # a key binds once
    second = Client(_app(), provisioner="eab")
    _problem(second.register(externalAccountBinding=eab(key_id, hmac_key, second.key, second.url("new-account"))),
             "unauthorized", 401)
    assert isinstance(record, AcmeRecord)


def test_account_update_deactivate_and_key_change(sqlite_ca):
    from tests.support.acme import jws

    admin.add(admin.acme_entry("acme", require_eab=False))
    client = Client(_app())
    client.register()
    status, _, account = client.post(client.kid, {"contact": ["mailto:new@example.com"]})
    assert account["contact"] == ["mailto:new@example.com"]
    _problem(client.post(client.kid, {"contact": ["tel:+1"]}), "unsupportedContact")
    new_key = ec.generate_private_key(ec.SECP256R1())
    url = client.url("key-change")
    inner = jws(new_key, {"account": client.kid, "oldKey": jose.public_jwk(client.key)},
                {"jwk": jose.public_jwk(new_key), "url": url})
    status, _, body = client.post("key-change", inner)
    assert status == 200, body
    _problem(client.post(client.kid, None), "malformed")  # the old key no longer signs for the account
    client.key = new_key
    assert client.post(client.kid, None)[0] == 200
    status, _, account = client.post(client.kid, {"status": "deactivated"})
    assert account["status"] == "deactivated"
    _problem(Client(_app(), key=new_key).register(), "unauthorized", 401)  # its key cannot come back
    _problem(client.post("new-order", {"identifiers": [{"type": "dns", "value": "a.test"}]}), "unauthorized", 401)


def test_nonce_endpoints_and_unknown_provisioner(sqlite_ca):
    admin.add(admin.acme_entry("acme", require_eab=False))
    client = Client(_app())
    status, headers, _ = client.raw("GET", client.url("new-nonce"))
    assert status == 204 and headers["replay-nonce"] and headers["cache-control"] == "no-store"
    status, headers, _ = client.raw("HEAD", client.url("new-nonce"))
    assert status == 200
    first = headers["replay-nonce"]
    assert nonces.use(first, 0) and not nonces.use(first, 0)
    _problem(Client(_app(), provisioner="admin").raw("GET", Client(_app(), provisioner="admin").url("directory")),
             "malformed", 404)
    status, _, listing = client.raw("GET", "https://ca.test:8443/provisioners")
    assert {"type": "ACME", "name": "acme", "requireEAB": False} in listing["provisioners"]
    assert json.dumps(listing)


def test_one_key_holds_an_account_per_provisioner(sqlite_ca):
    admin.add(admin.acme_entry("acme", require_eab=False))
    admin.add(admin.acme_entry("other", require_eab=False))
    one = Client(_app())
    assert one.register()[0] == 201
    two = Client(_app(), provisioner="other", key=one.key)
    assert two.register()[0] == 201 and two.kid != one.kid
    for client, kid in ((Client(_app(), key=one.key), one.kid),
                        (Client(_app(), provisioner="other", key=one.key), two.kid)):
        status, headers, _ = client.register(onlyReturnExisting=True)
        assert (status, headers["location"]) == (200, kid)
    # an account URL of one provisioner is no account of another
    stranger = Client(_app(), provisioner="other", key=one.key)
    stranger.kid = one.kid
    _problem(stranger.post("new-order", {"identifiers": [{"type": "dns", "value": "a.test"}]}), "accountDoesNotExist")

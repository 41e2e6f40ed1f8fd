"""An outside attacker against the ACME server (issue 15's nonce, finalize and download changes), on both stores:
nonces replayed from many threads at once, forged, altered, expired or from another CA; two fresh containers
racing to create the nonce key, and that key deleted or corrupted in the store; finalize raced by itself and by
a deactivation; another account's certificate and a tampered certificate link; the identifier limit. Every
refusal is its RFC 8555 problem document (type and status), never an untyped 500, and nothing is issued."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import importlib.util
import json
import secrets
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from stepless import clock, jose
from stepless.acme import issuance, nonces
from stepless.stores import acme as acme_store
from stepless.stores import backend
from tests.integration import test_acme, test_sign_race
from tests.integration.test_acme import _app, _order, _problem, _validate
from tests.support.acme import Client, csr_der, jws

# test_acme's CAs (both stores) and http-01 responder; test_sign_race's atomic moto and fine thread switching
ca, http01 = test_acme.ca, test_acme.http01
busy_threads, serialized_dynamodb = test_sign_race.busy_threads, test_sign_race.serialized_dynamodb

THREADS = 8
ONE = {"identifiers": [{"type": "dns", "value": "attack.example.test"}]}
KEY_PK = f"{nonces.KEY_KIND}#{nonces.KEY_ID}"


# --- helpers ------------------------------------------------------------------------------------------------

@pytest.fixture
def issued(monkeypatch) -> list[str]:
    """The serial of every certificate the ACME path commits (the store's own write, counted)."""
    out: list[str] = []
    commit = issuance.commit

    def counted(cert, item, *args, **kwargs):
        commit(cert, item, *args, **kwargs)
        out.append(item.serial)

    monkeypatch.setattr(issuance, "commit", counted)
    return out


@pytest.fixture
def fresh_key_cache(monkeypatch):
    """The nonce key cache of this process forgotten (a fresh container), and forgotten again afterwards."""
    monkeypatch.setattr(nonces, "_cache", None)
    yield
    nonces._cache = None


def _order_count(client: Client) -> int:
    status, _, body = client.post(client.kid + "/orders", None)
    assert status == 200, body
    return len(body["orders"])


def _raw_put(pk: str, doc: Any, version: int = 1) -> None:
    """Write an ACME item as a tampering operator (or a bug) would: no conditions, any document."""
    text = doc if isinstance(doc, str) else json.dumps(doc)
    stores = backend.current()
    if hasattr(stores.acme, "db"):
        with stores.acme.db.write() as conn:
            conn.execute("INSERT INTO acme (pk, doc, version, expires) VALUES (?, ?, ?, NULL) ON CONFLICT (pk) "
                         "DO UPDATE SET doc = excluded.doc, version = excluded.version", (pk, text, version))
    else:
        import boto3

        from stepless import settings

        boto3.client("dynamodb").put_item(TableName=settings.table("STEPLESS_ACME_TABLE"),
                                          Item={"pk": {"S": pk}, "doc": {"S": text}, "version": {"N": str(version)}})


def _raw_delete(pk: str) -> None:
    stores = backend.current()
    if hasattr(stores.acme, "db"):
        with stores.acme.db.write() as conn:
            conn.execute("DELETE FROM acme WHERE pk = ?", (pk,))
    else:
        import boto3

        from stepless import settings

        boto3.client("dynamodb").delete_item(TableName=settings.table("STEPLESS_ACME_TABLE"), Key={"pk": {"S": pk}})


def _nonce_with_key(key: bytes, expires: int, version: bytes = b"\x01") -> str:
    """A nonce in the CA's format, tagged with ``key`` (an attacker's guess, or another CA's key)."""
    body = version + struct.pack(">I", expires) + secrets.token_bytes(12)
    return jose.b64e(body + hmac.new(key, body, hashlib.sha256).digest()[:16])


def _container() -> Any:
    """A second copy of :mod:`stepless.acme.nonces` with its own key cache and lock: another function container."""
    spec = importlib.util.find_spec("stepless.acme.nonces")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _now() -> int:
    return int(clock.now().timestamp())


def _at_once(client: Client, url: str, bodies: list[str]) -> list[tuple[int, dict]]:
    """POST each body to ``url`` from its own thread, all released together: (status, body) of each."""
    barrier = threading.Barrier(len(bodies))

    def one(text: str) -> tuple[int, dict]:
        barrier.wait()
        status, _, body = client.send("POST", url, text, "application/jose+json")
        return status, json.loads(body)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(one, bodies))


def _ready_order(client: Client, server, names: list[str]) -> tuple[str, dict]:
    order_url, order = _order(client, names)
    _validate(client, order, server)
    return order_url, order


# --- nonces -------------------------------------------------------------------------------------------------

def test_one_nonce_replayed_from_eight_threads_at_once_is_accepted_once(ca, serialized_dynamodb, busy_threads):
    """The conditional write is the only thing that makes a nonce single use: 8 requests carrying the same nonce,
    released together, create one order; the other 7 are badNonce (round after round)."""
    client = Client(_app())
    client.register()
    before = _order_count(client)
    for n in range(1, 4):
        nonce = client.get_nonce()
        client.nonce = None  # the client's next request fetches its own
        url = client.url("new-order")
        bodies = [json.dumps(jws(client.key, ONE, {"nonce": nonce, "url": url, "kid": client.kid}))
                  for _ in range(THREADS)]
        results = _at_once(client, url, bodies)
        assert sorted(s for s, _ in results) == [201] + [400] * (THREADS - 1), results
        assert all(b["type"] == "urn:ietf:params:acme:error:badNonce" for s, b in results if s == 400), results
        assert _order_count(client) == before + n


def test_nonces_the_ca_did_not_issue_are_refused(ca):
    """Right format, wrong key: a nonce minted by an attacker who knows the format (random key, empty key, the
    all-zero key), or by another CA (its own key), with any expiry, is badNonce and creates nothing."""
    client = Client(_app())
    client.register()
    before = _order_count(client)
    later = _now() + 600
    forged = [_nonce_with_key(k, later) for k in (secrets.token_bytes(32), b"", b"\x00" * 32)]
    forged.append(_nonce_with_key(secrets.token_bytes(32), 2**32 - 1))  # the farthest expiry there is
    other_ca = secrets.token_bytes(32)  # another stack's key: its nonces, as its newNonce hands them out
    saved = nonces._cache
    nonces._cache = (backend.current(), other_ca)
    try:
        forged.append(client.get_nonce())
    finally:
        nonces._cache = saved
    for nonce in forged:
        assert len(nonce) == nonces.LENGTH
        _problem(client.post("new-order", ONE, nonce=nonce), "badNonce")
    assert _order_count(client) == before


def test_altered_spellings_are_refused_and_do_not_spend_the_real_nonce(ca):
    """Truncated, extended, padded, whitespace, case-changed, non-ASCII, another version byte, non-string: each
    is badNonce, and none of them uses the nonce it was made from (that one still works, once)."""
    client = Client(_app())
    client.register()
    before = _order_count(client)
    nonce = client.get_nonce()
    raw = jose.b64d(nonce)
    variants: list[Any] = [
        nonce[:-1], nonce + "A", nonce + "=", nonce + "==", " " + nonce, nonce + " ", nonce + "\n",
        nonce[:20] + " " + nonce[21:], nonce.upper(), nonce.lower(), nonce.swapcase(), nonce[:-1] + "é",
        nonce[1:] + nonce[0], "A" * nonces.LENGTH, "", nonce * 2, "x" * 10_000,
        jose.b64e(b"\x02" + raw[1:]), jose.b64e(raw + b"\x00"), jose.b64e(raw[:-1]),
        0, 12345, None, [nonce], {"nonce": nonce}, True]
    variants = [v for v in variants if v != nonce]  # a case change of an all-digit nonce would be no change
    for bad in variants:
        header = {"nonce": bad, "url": client.url("new-order"), "kid": client.kid}
        res = client.raw("POST", client.url("new-order"), jws(client.key, ONE, header))
        _problem(res, "badNonce")
    header = {"url": client.url("new-order"), "kid": client.kid}  # no nonce at all
    _problem(client.raw("POST", client.url("new-order"), jws(client.key, ONE, header)), "badNonce")
    assert client.post("new-order", ONE, nonce=nonce)[0] == 201  # the real one was never spent
    _problem(client.post("new-order", ONE, nonce=nonce), "badNonce")
    assert _order_count(client) == before + 1


def test_a_nonce_is_good_to_its_expiry_second_and_not_one_second_more(ca):
    client = Client(_app())
    client.register()
    first, second = client.get_nonce(), client.get_nonce()
    expires = struct.unpack(">I", jose.b64d(first)[1:5])[0]
    assert expires - _now() in (nonces.TTL_S, nonces.TTL_S - 1)
    at = dt.datetime.fromtimestamp(expires, dt.UTC)
    with clock.freeze(at + dt.timedelta(milliseconds=999)):
        assert client.post("new-order", ONE, nonce=first)[0] == 201
    expires2 = struct.unpack(">I", jose.b64d(second)[1:5])[0]
    with clock.freeze(dt.datetime.fromtimestamp(expires2 + 1, dt.UTC)):
        _problem(client.post("new-order", ONE, nonce=second), "badNonce")


def _ttl_sweep(at: float) -> None:
    """What the store's TTL does at time ``at``: used-nonce records whose ``expires`` is before it are gone."""
    stores = backend.current()
    if hasattr(stores.acme, "db"):
        with stores.acme.db.write() as conn:
            conn.execute("DELETE FROM acme_nonces WHERE expires < ?", (at,))
        return
    import boto3

    from stepless import settings

    client, table = boto3.client("dynamodb"), settings.table("STEPLESS_ACME_TABLE")
    for item in client.scan(TableName=table)["Items"]:
        if item["pk"]["S"].startswith("nonce#") and int(item["expires"]["N"]) < at:
            client.delete_item(TableName=table, Key={"pk": item["pk"]})


def test_a_used_nonce_record_outlives_the_nonce(ca):
    """DynamoDB's TTL deletes by its own clock, to the sub-second; a function accepts a nonce through its expiry
    second by its own clock, which may lag. The record of a used nonce must still be there then: a TTL sweep just
    after the nonce's expiry, then a replay by a container whose clock says it is the expiry second, is badNonce."""
    client = Client(_app())
    client.register()
    nonce = client.get_nonce()
    expires = struct.unpack(">I", jose.b64d(nonce)[1:5])[0]
    at = lambda s: dt.datetime.fromtimestamp(s, dt.UTC)  # noqa: E731
    with clock.freeze(at(expires - 5)):
        assert client.post("new-order", ONE, nonce=nonce)[0] == 201
    _ttl_sweep(expires + 0.5)
    with clock.freeze(at(expires + 0.5)):  # a lagging clock's "still the expiry second"
        _problem(client.post("new-order", ONE, nonce=nonce), "badNonce")


def test_nonces_are_per_ca_not_per_account_and_single_use_across_accounts(ca):
    """RFC 8555 §6.5 binds a nonce to no account: one account may spend a nonce another fetched (once); a nonce an
    account spent is refused for every other account and provisioner."""
    from stepless.admin import provisioners as admin

    admin.add(admin.acme_entry("other", require_eab=False))
    alice, bob, carol = Client(_app()), Client(_app()), Client(_app(), provisioner="other")
    for c in (alice, bob, carol):
        c.register()
    spent = alice.get_nonce()
    assert alice.post("new-order", ONE, nonce=spent)[0] == 201
    _problem(bob.post("new-order", ONE, nonce=spent), "badNonce")
    _problem(carol.post("new-order", ONE, nonce=spent), "badNonce")
    fetched_by_alice = alice.get_nonce()
    assert bob.post("new-order", ONE, nonce=fetched_by_alice)[0] == 201
    _problem(alice.post("new-order", ONE, nonce=fetched_by_alice), "badNonce")
    from_other_provisioner = carol.get_nonce()  # one CA, one nonce key: any of its ACME provisioners takes it
    assert alice.post("new-order", ONE, nonce=from_other_provisioner)[0] == 201


def test_a_nonce_spent_at_one_function_is_spent_at_the_other(ca):
    """revokeCert is the revoke function's route, every other the sign function's: one used-nonce record serves
    both, so a nonce spent at either is badNonce at the other."""
    client = Client(_app())
    client.register()
    spent_at_sign = client.get_nonce()
    assert client.post("new-order", ONE, nonce=spent_at_sign)[0] == 201
    _problem(client.post("revoke-cert", {"certificate": "AAAA"}, nonce=spent_at_sign), "badNonce")
    spent_at_revoke = client.get_nonce()
    _problem(client.post("revoke-cert", {"certificate": "AAAA"}, nonce=spent_at_revoke), "malformed")
    _problem(client.post("new-order", ONE, nonce=spent_at_revoke), "badNonce")


def test_two_fresh_containers_racing_to_create_the_nonce_key_end_with_one_key(ca, fresh_key_cache, monkeypatch):
    """Both containers read "no key" before either writes: the second write loses its condition, reads the
    winner's key and uses it; each container takes the other's nonces, and so does the function."""
    assert acme_store.get(nonces.KEY_KIND, nonces.KEY_ID) is None  # a CA no ACME request has touched
    one, two = _container(), _container()
    barrier = threading.Barrier(2)
    waited: set[int] = set()
    get = acme_store.get

    def get_after_both_looked(kind: str, id: str):
        rec = get(kind, id)
        if kind == nonces.KEY_KIND and len(waited) < 2 and threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait(timeout=10)  # neither writes before both saw no key
        return rec

    monkeypatch.setattr(acme_store, "get", get_after_both_looked)
    writes: list[int] = []
    write = acme_store.write

    def counted_write(*records):
        writes.append(len(records))
        write(*records)

    monkeypatch.setattr(acme_store, "write", counted_write)
    with ThreadPoolExecutor(max_workers=2) as pool:
        keys = list(pool.map(lambda m: m._key(), (one, two)))
    assert keys[0] == keys[1] and len(keys[0]) == 32 and writes == [1, 1]  # both tried; one key stands
    assert jose.b64d(get(nonces.KEY_KIND, nonces.KEY_ID).doc["key"]) == keys[0]
    now = _now()
    assert two.use(one.issue(now), now) and one.use(two.issue(now), now)
    client = Client(_app())  # the function (a third container, cold) takes both containers' nonces
    client.register()
    assert client.post("new-order", ONE, nonce=one.issue(_now()))[0] == 201
    assert client.post("new-order", ONE, nonce=two.issue(_now()))[0] == 201


def test_nonce_key_deleted_from_the_store(ca, fresh_key_cache):
    """A container that cached the key keeps serving; a fresh one makes a new key, and a nonce of the old key is
    then badNonce there (clients retry with the Replay-Nonce of the problem), not an error."""
    client = Client(_app())
    client.register()
    old = client.get_nonce()
    _raw_delete(KEY_PK)
    assert client.post("new-order", ONE)[0] == 201  # this container still has its key
    nonces._cache = None  # a fresh container: no key in the store, it creates one
    _problem(client.post("new-order", ONE, nonce=old), "badNonce")
    assert client.post("new-order", ONE)[0] == 201  # with the problem's Replay-Nonce
    assert acme_store.get(nonces.KEY_KIND, nonces.KEY_ID) is not None


@pytest.mark.parametrize("doc", [{}, {"key": "%%% not base64 %%%"}, {"key": ""}, {"key": jose.b64e(b"short")},
                                 {"key": 12345}, {"key": None}, {"key": jose.b64e(bytes(33))}, "[]"],
                         ids=["no-key", "not-base64", "empty", "short", "number", "null", "33-bytes", "list"])
def test_corrupted_nonce_key_is_a_clear_server_error_and_forges_nothing(ca, fresh_key_cache, doc):
    """A key record that is not 32 bytes of base64url (a bug, a tampered table) is never used as an HMAC key —
    an empty key would let anyone mint nonces: every ACME request answers serverInternal (a problem document, not
    the bare 500 of an unhandled error), nothing is created, and the record is left for the operator (deleting it
    lets the next container make a new key)."""
    client = Client(_app())
    client.register()
    before = _order_count(client)
    nonce = client.get_nonce()
    _raw_put(KEY_PK, doc)
    nonces._cache = None  # a fresh container reads the corrupted record
    guessed = _nonce_with_key(b"", _now() + 600) if doc == {"key": ""} else nonce
    for res in (client.post("new-order", ONE, nonce=guessed), client.raw("HEAD", client.url("new-nonce"))):
        status, headers, body = res
        assert status == 500 and headers["content-type"] == "application/problem+json", res
        assert body["type"] == "urn:ietf:params:acme:error:serverInternal" and "nonce key" in body["detail"], body
    _raw_delete(KEY_PK)  # the operator's fix
    nonces._cache = None
    client.nonce = None
    assert _order_count(client) == before


def test_nonce_key_that_vanishes_while_being_created_is_a_clear_server_error(ca, fresh_key_cache, monkeypatch):
    """The create-once write loses its condition, yet the winner's record is gone when read back (deleted at that
    moment): serverInternal naming the record, not an AssertionError's bare 500."""
    from stepless.stores.acme import AcmeConflict

    write = acme_store.write

    def key_taken(*records):
        if records[0].kind == nonces.KEY_KIND:
            raise AcmeConflict
        write(*records)

    monkeypatch.setattr(acme_store, "write", key_taken)
    client = Client(_app())
    status, headers, body = client.raw("HEAD", client.url("new-nonce"))
    assert (status, headers["content-type"], body["type"]) == (
        500, "application/problem+json", "urn:ietf:params:acme:error:serverInternal"), body
    assert "noncekey#hmac" in body["detail"] and "replay-nonce" not in headers


# --- finalize -----------------------------------------------------------------------------------------------

def test_finalize_raced_by_eight_threads_issues_one_certificate(ca, http01, issued, serialized_dynamodb,
                                                                busy_threads):
    client = Client(_app())
    client.register()
    _, order = _ready_order(client, http01, ["race.example.test"])
    url = order["finalize"]
    bodies = [json.dumps(jws(client.key, {"csr": csr_der(["race.example.test"])[0]},
                             {"nonce": client.get_nonce(), "url": url, "kid": client.kid})) for _ in range(THREADS)]
    client.nonce = None
    results = _at_once(client, url, bodies)
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] + [403] * (THREADS - 1), results
    assert all(b["type"] == "urn:ietf:params:acme:error:orderNotReady" for s, b in results if s == 403), results
    assert len(issued) == 1
    done = next(b for s, b in results if s == 200)
    assert done["certificate"].endswith("/" + issued[0])


def test_finalize_that_loses_the_race_after_reading_ready_is_order_not_ready(ca, http01, issued, monkeypatch):
    """Deterministic interleaving: a second finalize runs to completion between the first one's read (ready) and
    its write (processing). The first one's write loses its condition: orderNotReady (403), not a 503, and only
    the second one's certificate exists."""
    client = Client(_app())
    client.register()
    order_url, order = _ready_order(client, http01, ["twice.example.test"])
    other = Client(_app(), key=client.key)
    other.kid = client.kid
    check = issuance._check_csr
    inner: list[Any] = []

    def check_then_let_another_finalize_win(req, order_obj):
        sans = check(req, order_obj)
        if not inner:  # the outer finalize only (the inner one passes here too)
            inner.append(None)
            inner[0] = other.post(order["finalize"], {"csr": csr_der(["twice.example.test"])[0]})
        return sans

    monkeypatch.setattr(issuance, "_check_csr", check_then_let_another_finalize_win)
    body = _problem(client.post(order["finalize"], {"csr": csr_der(["twice.example.test"])[0]}),
                    "orderNotReady", 403)
    assert "finalize" in body["detail"] or "processing" in body["detail"] or "valid" in body["detail"], body
    assert inner[0][0] == 200 and inner[0][2]["status"] == "valid", inner
    assert len(issued) == 1
    status, _, now = client.post(order_url, None)
    assert now["status"] == "valid" and now["certificate"].endswith("/" + issued[0])


def test_finalize_after_a_deactivation_is_refused(ca, http01, issued):
    """Sequential: an order whose authorization was deactivated is invalid (orderNotReady); a deactivated account
    is unauthorized. Nothing is issued."""
    client = Client(_app())
    client.register()
    _, order = _ready_order(client, http01, ["deact.example.test"])
    status, _, authz = client.post(order["authorizations"][0], {"status": "deactivated"})
    assert status == 200 and authz["status"] == "deactivated"
    _problem(client.post(order["finalize"], {"csr": csr_der(["deact.example.test"])[0]}), "orderNotReady", 403)
    _, order2 = _ready_order(client, http01, ["deact2.example.test"])
    assert client.post(client.kid, {"status": "deactivated"})[0] == 200
    _problem(client.post(order2["finalize"], {"csr": csr_der(["deact2.example.test"])[0]}), "unauthorized", 401)
    assert issued == []


@pytest.mark.parametrize("what", ["authorization", "account"])
def test_finalize_racing_a_deactivation(ca, http01, issued, monkeypatch, what):
    """A deactivation that lands after finalize read the order ready (and the account valid) but before finalize
    wrote ``processing``: finalize's checks are its point in time, so it completes with one certificate — the
    deactivation is by the same account, whose certificate it is. The deactivation itself is kept: the authorization
    stays deactivated (the kept-authorizations write loses its condition and is logged), the account stays
    deactivated and can do nothing more. Documented here, not refused (refusing would put every authorization into
    finalize's first write as a condition)."""
    client = Client(_app())
    client.register()
    _, order = _ready_order(client, http01, [f"{what}.example.test"])
    check = issuance._check_csr
    done: list[int] = []

    def check_then_deactivate(req, order_obj):
        sans = check(req, order_obj)
        if not done:
            target = order["authorizations"][0] if what == "authorization" else client.kid
            status, _, body = client.post(target, {"status": "deactivated"})
            assert status == 200 and body["status"] == "deactivated", body
            done.append(status)
        return sans

    monkeypatch.setattr(issuance, "_check_csr", check_then_deactivate)
    nonce = client.get_nonce()
    status, _, body = client.post(order["finalize"], {"csr": csr_der([f"{what}.example.test"])[0]}, nonce=nonce)
    assert status == 200 and body["status"] == "valid", body
    assert len(issued) == 1
    if what == "authorization":
        authz_id = order["authorizations"][0].rsplit("/", 1)[1]
        assert acme_store.get("authz", authz_id).doc["status"] == "deactivated"
    else:
        _problem(client.post("new-order", ONE), "unauthorized", 401)
        _problem(client.post(body["certificate"], None), "unauthorized", 401)


def _longest_names(n: int) -> list[str]:
    """``n`` distinct DNS names of 253 characters (the longest there are)."""
    names = [(f"n{i}." + ("a" * 62 + ".") * 4)[:248].rstrip(".") + ".test" for i in range(n)]
    assert {len(name) for name in names} == {253}
    return names


def test_an_order_of_98_names_finalizes_in_one_write_with_every_authorization_kept(ca, issued, monkeypatch):
    """The largest order (98 names, each of 253 characters where the signer allows): its finalize fits the JWS size
    limit; the valid order, its certificate link and 98 authorizations are 100 records — exactly one transaction;
    every authorization is kept until the certificate expires."""
    from stepless.acme.orders import MAX_IDENTIFIERS

    client = Client(_app())
    client.register()
    # the KMS CA under moto: a certificate over 4096 bytes is signed as a digest, which moto's KMS mis-handles
    names = (_longest_names(MAX_IDENTIFIERS) if ca == "sqlite_ca"
             else [f"n{i}.big.example.test" for i in range(MAX_IDENTIFIERS)])
    order_url, order = _order(client, names)
    for url in order["authorizations"]:  # validated (the challenge itself is test_acme's): marked valid directly
        rec = acme_store.get("authz", url.rsplit("/", 1)[1])
        acme_store.write(rec.next({**rec.doc, "status": "valid"}))
    writes: list[int] = []
    write = acme_store.write

    def counted(*records):
        writes.append(len(records))
        write(*records)

    monkeypatch.setattr(acme_store, "write", counted)
    status, _, done = client.post(order["finalize"], {"csr": csr_der(names, cn="")[0]})
    assert status == 200 and done["status"] == "valid", done
    assert writes == [1, 100]  # processing; then order + link + 98 authorizations together
    not_after = acme_store.get("order", order_url.rsplit("/", 1)[1]).expires
    for url in order["authorizations"]:
        assert acme_store.get("authz", url.rsplit("/", 1)[1]).expires == not_after
    assert len(issued) == 1


def test_the_largest_finalize_fits_the_jws_size_limit():
    """Worst case of what newOrder accepts: 98 names of 253 characters, the CSR's key and the account key both
    RSA-4096, long URLs — the finalize JWS is under the ACME routes' size limit."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from stepless.acme.orders import MAX_IDENTIFIERS
    from stepless.api.acme import MAX_JWS_BYTES

    account_key, cert_key = (rsa.generate_private_key(65537, 4096) for _ in range(2))
    host = "https://" + "ca." * 20 + "example.com/1.0/acme/" + "p" * 40
    header = {"nonce": "A" * nonces.LENGTH, "url": f"{host}/order/{'o' * 22}/finalize",
              "kid": f"{host}/account/{'a' * 22}"}
    csr = csr_der(_longest_names(MAX_IDENTIFIERS), key=cert_key, cn="")[0]
    size = len(json.dumps(jws(account_key, {"csr": csr}, header)))
    assert 46 * 1024 < size < MAX_JWS_BYTES, size


# --- identifiers --------------------------------------------------------------------------------------------

def test_identifier_limit_and_duplicates(ca):
    """98 names is the limit (99 and 100 are rejectedIdentifier, counted before duplicates are merged; 10 000 are a
    JWS over the size limit, 413 malformed);
    exact duplicates make one authorization; a case variant or a trailing dot is not a name (rejectedIdentifier);
    a wildcard and its apex are two authorizations."""
    from stepless.acme.orders import MAX_IDENTIFIERS

    client = Client(_app())
    client.register()
    before = _order_count(client)
    name = lambda i: {"type": "dns", "value": f"n{i}.limit.example.test"}  # noqa: E731
    for n in (MAX_IDENTIFIERS + 1, MAX_IDENTIFIERS + 2):
        _problem(client.post("new-order", {"identifiers": [name(i) for i in range(n)]}), "rejectedIdentifier")
    _problem(client.post("new-order", {"identifiers": [name(i) for i in range(10_000)]}), "malformed", 413)
    same = [name(0)] * (MAX_IDENTIFIERS + 1)  # one name 99 times: still over the count
    _problem(client.post("new-order", {"identifiers": same}), "rejectedIdentifier")
    status, _, order = client.post("new-order", {"identifiers": [name(0)] * MAX_IDENTIFIERS})
    assert status == 201 and len(order["authorizations"]) == 1 and order["identifiers"] == [name(0)]
    for bad in ("N0.Limit.Example.Test", "n0.limit.example.test.", "n0.limit.example.test..", " n0.limit.example.test",
                "*.*.limit.example.test", "n0.limit.example.test\x00", "xn--.limit.example.test."):
        _problem(client.post("new-order", {"identifiers": [name(0), {"type": "dns", "value": bad}]}),
                 "rejectedIdentifier")
    _problem(client.post("new-order", {"identifiers": [name(0), {"type": "DNS", "value": "a.example.test"}]}),
             "unsupportedIdentifier")
    status, _, order = client.post("new-order", {"identifiers": [{"type": "dns", "value": "*.w.example.test"},
                                                                 {"type": "dns", "value": "w.example.test"}]})
    assert status == 201 and len(order["authorizations"]) == 2
    assert _order_count(client) == before + 2


# --- download -----------------------------------------------------------------------------------------------

def _issue(client: Client, server, name: str) -> tuple[dict, x509.Certificate]:
    _, order = _ready_order(client, server, [name])
    status, _, done = client.post(order["finalize"], {"csr": csr_der([name])[0]})
    assert status == 200, done
    status, _, pem = client.post(done["certificate"], None)
    assert status == 200, pem
    return done, x509.load_pem_x509_certificates(pem.encode())[0]


def test_another_accounts_certificate_is_refused(ca, http01):
    alice, mallory = Client(_app()), Client(_app())
    alice.register()
    mallory.register()
    done, leaf = _issue(alice, http01, "alice.example.test")
    _problem(mallory.post(done["certificate"], None), "unauthorized", 401)
    _problem(mallory.post(done["certificate"] + "/" + "0" * 64, None), "unauthorized", 401)
    _problem(mallory.post(f"certificate/{leaf.serial_number + 1}", None), "malformed", 404)
    _problem(alice.post(done["certificate"] + "/" + "0" * 64, None), "malformed", 404)  # no such alternate
    _problem(alice.post("certificate/not-a-serial", None), "malformed", 404)


@pytest.mark.parametrize("tamper", ["another-certificate", "not-pem", "garbage-pem", "no-pem", "leaf-and-more"])
def test_a_tampered_certificate_link_never_serves_another_certificate(ca, http01, tamper):
    """The download serves the leaf its certificate link keeps. When that PEM is not the certificate the URL
    names (another certificate, not a PEM at all — a tampered or damaged store), it is not served: the
    certificate's own record is (what a link written without a PEM reads), never a 500, never another leaf; and
    only that one certificate is served, whatever else the PEM holds."""
    client = Client(_app())
    client.register()
    done, leaf = _issue(client, http01, "mine.example.test")
    _, other_leaf = _issue(client, http01, "other.example.test")
    serial = str(leaf.serial_number)
    link = acme_store.get("cert", serial)
    other_pem = other_leaf.public_bytes(Encoding.PEM).decode()
    pem = {"another-certificate": other_pem, "leaf-and-more": link.doc["pem"] + other_pem,
           "not-pem": "hello", "garbage-pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
           "no-pem": None}[tamper]
    doc = {k: v for k, v in link.doc.items() if k != "pem"} | ({} if pem is None else {"pem": pem})
    _raw_put(f"cert#{serial}", doc, link.version)
    status, headers, body = client.post(done["certificate"], None)
    assert status == 200, body
    served = x509.load_pem_x509_certificates(body.encode())
    assert served[0] == leaf and len(served) == 2


# --- what operators see -------------------------------------------------------------------------------------

def test_refusals_are_counted_as_refusals_not_internal_errors(sqlite_ca, monkeypatch):
    """The ``Rejected`` metric's reason of an ACME refusal follows its status (bad_request, unauthorized, not_found,
    payload_too_large), not StepError's default ``internal_error``, which would send operators after a server
    fault that is a client's replayed nonce."""
    from stepless.admin import provisioners as admin
    from stepless.observability.metrics import Metrics

    admin.add(admin.acme_entry("acme", require_eab=False))
    reasons: list[str] = []
    rejected = Metrics.rejected
    monkeypatch.setattr(Metrics, "rejected", lambda self, reason: (reasons.append(reason), rejected(self, reason)))
    client = Client(_app())
    client.register()
    nonce = client.get_nonce()
    assert client.post("new-order", ONE, nonce=nonce)[0] == 201
    _problem(client.post("new-order", ONE, nonce=nonce), "badNonce")
    _problem(client.post("new-order", ONE, url=client.url("new-account")), "unauthorized", 401)  # wrong url
    _problem(client.post("certificate/1", None), "malformed", 404)
    _problem(client.post("new-order", {"identifiers": [{"type": "dns", "value": "x" * 40}] * 2000}), "malformed", 413)
    assert reasons == ["bad_request", "unauthorized", "not_found", "payload_too_large"]


def test_concurrent_new_orders_of_one_account_all_succeed(ca, serialized_dynamodb, busy_threads):
    """cert-manager orders for many Certificates of one Issuer (one account) at once: each newOrder also appends to
    the account's order list, so they meet version conflicts on the account; each is retried on the account as it
    is now, not answered 503 — every order is created and listed once."""
    client = Client(_app())
    client.register()
    before = _order_count(client)
    url = client.url("new-order")
    bodies = [json.dumps(jws(client.key, {"identifiers": [{"type": "dns", "value": f"c{i}.example.test"}]},
                             {"nonce": client.get_nonce(), "url": url, "kid": client.kid})) for i in range(THREADS)]
    client.nonce = None
    results = _at_once(client, url, bodies)
    assert [s for s, _ in results] == [201] * THREADS, results
    status, _, listed = client.post(client.kid + "/orders", None)
    assert len(listed["orders"]) == before + THREADS == len(set(listed["orders"]))


def test_new_order_whose_account_is_deactivated_meanwhile_is_refused(ca, monkeypatch):
    """The retry of newOrder's write re-reads the account: deactivated meanwhile, the order is refused
    (unauthorized) and nothing of it is written."""
    client = Client(_app())
    client.register()
    account_id = client.kid.rsplit("/", 1)[1]
    orders_before = acme_store.get("account", account_id).doc["orders"]
    write = acme_store.write
    attempts: list[list[str]] = []

    def deactivate_first(*records):
        kinds = [r.kind for r in records]
        if "order" in kinds:
            attempts.append(kinds)
            if len(attempts) == 1:  # the account is deactivated between newOrder's read and its write
                status, _, body = client.post(client.kid, {"status": "deactivated"})
                assert status == 200 and body["status"] == "deactivated", body
        write(*records)

    monkeypatch.setattr(acme_store, "write", deactivate_first)
    _problem(client.post("new-order", ONE), "unauthorized", 401)
    assert attempts == [["order", "authz", "account"]]  # one attempt, not retried
    account = acme_store.get("account", account_id)
    assert account.doc["status"] == "deactivated" and account.doc["orders"] == orders_before


# --- accounts -----------------------------------------------------------------------------------------------

def test_one_key_registering_from_eight_threads_at_once_gets_one_account(ca, serialized_dynamodb, busy_threads):
    """RFC 8555 §7.3.1: a newAccount for a key that has an account returns that account (200). Eight at once for
    one new key: one creates it (201), the others get it (200, the same Location), none a 503."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    client = Client(_app(), key=key)
    url = client.url("new-account")
    bodies = [json.dumps(jws(key, {"termsOfServiceAgreed": True},
                             {"nonce": client.get_nonce(), "url": url, "jwk": jose.public_jwk(key)}))
              for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def one(text: str) -> tuple[int, str | None, dict]:
        barrier.wait()
        status, headers, body = client.send("POST", url, text, "application/jose+json")
        return status, headers.get("location"), json.loads(body)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(one, bodies))
    assert sorted(s for s, _, _ in results) == [200] * (THREADS - 1) + [201], results
    assert len({loc for _, loc, _ in results}) == 1


def test_one_eab_key_raced_by_eight_account_keys_binds_one(ca, serialized_dynamodb, busy_threads):
    """An EAB key binds one account, once: eight new account keys presenting it at once — one account is created,
    the others are unauthorized (the key is bound), none a 503."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from stepless.acme import eab as eabs
    from tests.support.acme import eab

    key_id, hmac_key, record = eabs.new_key("eab", "ops", 0)
    acme_store.write(record)
    clients = [Client(_app(), provisioner="eab", key=ec.generate_private_key(ec.SECP256R1())) for _ in range(THREADS)]
    url = clients[0].url("new-account")
    bodies = [json.dumps(jws(c.key, {"termsOfServiceAgreed": True,
                                     "externalAccountBinding": eab(key_id, hmac_key, c.key, url)},
                             {"nonce": c.get_nonce(), "url": url, "jwk": jose.public_jwk(c.key)})) for c in clients]
    results = _at_once(clients[0], url, bodies)
    assert sorted(s for s, _ in results) == [201] + [401] * (THREADS - 1), results
    assert all(b["type"] == "urn:ietf:params:acme:error:unauthorized" for s, b in results if s == 401), results


@pytest.mark.parametrize("winner", ["same-key", "same-eab-key"])
def test_new_account_that_loses_the_race_answers_what_won(ca, monkeypatch, winner):
    """Deterministic interleaving: another newAccount completes between this one's reads and its write. With the
    same account key, the answer is the account that won (200, its Location); with the same EAB key and another
    account key, unauthorized (the EAB key is bound now). Never a 503; one account."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from stepless.acme import eab as eabs
    from tests.support.acme import eab

    key_id, hmac_key, record = eabs.new_key("eab", "ops", 0)
    acme_store.write(record)
    client = Client(_app(), provisioner="eab")
    rival = Client(_app(), provisioner="eab", key=client.key if winner == "same-key" else
                   ec.generate_private_key(ec.SECP256R1()))
    binding = lambda c: eab(key_id, hmac_key, c.key, c.url("new-account"))  # noqa: E731
    write = acme_store.write
    won: list[Any] = []

    def rival_first(*records):
        if not won and any(r.kind == "account" and r.version == 1 for r in records):
            won.append(None)
            won[0] = rival.register(externalAccountBinding=binding(rival))
        write(*records)

    monkeypatch.setattr(acme_store, "write", rival_first)
    res = client.register(externalAccountBinding=binding(client))
    assert won[0][0] == 201, won
    if winner == "same-key":
        assert res[0] == 200 and res[1]["location"] == rival.kid, res
    else:
        _problem(res, "unauthorized", 401)
        assert "already bound" in res[2]["detail"]
    assert acme_store.get("eab", key_id).doc["account"] == rival.kid.rsplit("/", 1)[1]

"""`stepless dev` killed mid-load (SIGKILL of its process group, several times) loses nothing a client was
told, and never lets a token work twice.

Client threads (HTTPS keep-alive) issue certificates continuously (POST /1.0/sign with one-time tokens made
by our CLI's token library, a CSR of one key per name), renew over mTLS and revoke with tokens (after asking
OCSP about the certificate, as a relying party would have: a ``good`` response is stored), recording every
certificate they received (201), every revocation answered 200 and every token they sent. After a random
0.3-2 s the server's process group is SIGKILLed; it is restarted on the same home and checked, with no load:

- it starts: the lock left by the killed process (its .lock still names it) does not block it;
- ``PRAGMA integrity_check`` on db/ca.db is ok;
- every certificate received is recorded (same fingerprint); the last ones and a random few renew over mTLS
  and OCSP says ``good`` for them;
- every revocation answered 200 is recorded; the last ones and a random few cannot renew, OCSP says ``revoked``;
- every token answered 201/200 is recorded as used; the last ones and a random few, replayed, get 401;
- a token whose request got no answer is recorded used together with its effect (the certificate of its
  name, the revocation of its serial) or with neither, and OCSP agrees with the records; it then works at
  most once: sent twice it gets (201|200, 401) when it was not recorded, (401, 401) when it was;
- the root fingerprint is unchanged (defaults.json, and /root/{sha} served to a client trusting the
  original root file).

After the last restart: every revocation answered 200 refuses renewal over mTLS, and OCSP knows every
certificate received (``revoked`` or ``good``, as the clients were told).

Invariants only, no counts: how many requests land before a kill varies from run to run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import random
import shutil
import sqlite3
import ssl
import threading
import time
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from stepless import jose
from stepless.cli import tokens
from stepless.cli.client import CAClient
from stepless.local.devstack import database_path, free_port
from tests.support.dev import Dev

pytestmark = pytest.mark.e2e

ROUNDS = 4  # kills
THREADS = 6
SAMPLE = 5  # of each kind checked over HTTP after a restart: the last ones, and as many at random
TIMEOUT = 10  # seconds for any one request
OK = {"sign": 201, "renew": 201, "revoke": 200}
GOOD, REVOKED = ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED


@dataclasses.dataclass
class Op:
    """One request a client sent: ``subject`` is the name (sign) or the serial (renew, revoke)."""

    kind: str
    subject: str
    body: bytes
    jti: str | None = None
    status: int | None = None  # None: no answer (the server died, or was dead)


class CA:
    """How the clients reach the CA: its URL, the original root, the admin provisioner's key, one leaf key."""

    def __init__(self, url: str, root: Path, issuer: x509.Certificate, password_file: Path, work: Path) -> None:
        self.url, self.root, self.issuer, self.work = url, root, issuer, work
        p = next(p for p in CAClient(url, str(root)).provisioners() if p["name"] == "admin" and p["type"] == "JWK")
        self.signing_key = tokens.jwk_signing_key(p, str(password_file))
        self.kid, self.alg = p["key"]["kid"], p["key"].get("alg") or jose.default_alg(p["key"])
        self.host, port = url.removeprefix("https://").rsplit(":", 1)
        self.port = int(port)
        self.ctx = ssl.create_default_context(cafile=str(root))
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.key_file = work / "leaf.key"
        self.key_file.write_bytes(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))

    def token(self, kind: str, subject: str) -> tuple[str, str]:
        """A one-time token as `stepless ca token` makes it, and its jti."""
        claims = tokens.claims(self.url, str(self.root), "admin", tokens.TokenRequest(kind, subject))
        return jwt.encode(claims, self.signing_key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"}), \
            claims["jti"]

    def sign_op(self, name: str) -> Op:
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
               .sign(self.key, hashes.SHA256()))
        ott, jti = self.token("sign", name)
        body = {"csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "ott": ott}
        return Op("sign", name, json.dumps(body).encode(), jti)

    def revoke_op(self, serial: int) -> Op:
        ott, jti = self.token("revoke", str(serial))
        body = {"serial": str(serial), "ott": ott, "reasonCode": 4, "reason": "crash test", "passive": True}
        return Op("revoke", str(serial), json.dumps(body).encode(), jti)

    def connection(self, client_cert: Path | None = None) -> http.client.HTTPSConnection:
        ctx = self.ctx
        if client_cert is not None:
            ctx = ssl.create_default_context(cafile=str(self.root))
            ctx.load_cert_chain(str(client_cert), str(self.key_file))
        return http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=TIMEOUT)

    def send(self, conn: http.client.HTTPSConnection, op: Op) -> bytes:
        """POST ``op`` on ``conn``; sets its status (left None and raised when no answer came)."""
        path = {"sign": "/1.0/sign", "renew": "/1.0/renew", "revoke": "/1.0/revoke"}[op.kind]
        conn.request("POST", path, body=op.body, headers={"Content-Type": "application/json"})
        res = conn.getresponse()
        payload = res.read()
        op.status = res.status
        return payload

    def renew(self, cert_file: Path, serial: int) -> tuple[Op, bytes]:
        """A renewal over mTLS with the certificate in ``cert_file`` (a connection of its own)."""
        op, conn = Op("renew", str(serial), b""), self.connection(cert_file)
        try:
            return op, self.send(conn, op)
        finally:
            conn.close()

    def once(self, op: Op) -> bytes:
        """``op`` sent again on a new connection."""
        again, conn = dataclasses.replace(op, status=None), self.connection()
        try:
            payload = self.send(conn, again)
        finally:
            conn.close()
        op.status = again.status
        return payload

    def get(self, path: str, body: bytes | None = None, content_type: str = "",
            conn: http.client.HTTPSConnection | None = None) -> tuple[int, bytes]:
        """GET ``path`` (POST with ``body``), on ``conn`` or a connection of its own."""
        own = conn is None
        conn = conn or self.connection()
        try:
            conn.request("POST" if body is not None else "GET", path, body=body,
                         headers={"Content-Type": content_type} if content_type else {})
            res = conn.getresponse()
            return res.status, res.read()
        finally:
            if own:
                conn.close()

    def ocsp(self, cert: x509.Certificate, conn: http.client.HTTPSConnection | None = None) -> ocsp.OCSPCertStatus:
        """What the CA's OCSP responder says of ``cert`` (asked as OpenSSL does: SHA-1 CertID, POST)."""
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, self.issuer, hashes.SHA1()).build()
        status, payload = self.get("/ocsp", request.public_bytes(serialization.Encoding.DER),
                                   "application/ocsp-request", conn)
        assert status == 200
        answer = ocsp.load_der_ocsp_response(payload)
        assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        return answer.certificate_status


class Ledger:
    """What the clients sent and were told, shared by the client threads (under ``lock``)."""

    def __init__(self, ca: CA) -> None:
        self.ca = ca
        self.lock = threading.Lock()
        self.received: dict[int, x509.Certificate] = {}  # answered 201 (sign, renew)
        self.files: dict[int, Path] = {}  # their chains, for mTLS
        self.revoked: list[int] = []  # revocations answered 200
        self.answered: list[Op] = []  # token requests answered as they should be
        self.unanswered: list[Op] = []  # every request that got no answer
        self.unexpected: list[str] = []  # any other answer
        self.pool: list[int] = []  # received, not revoked, not being renewed or revoked now
        self.lost_recorded: list[bool] = []  # for each unanswered token request: was its token recorded?

    def receive(self, payload: bytes) -> int:
        """Record a certificate answered 201; its serial."""
        doc = json.loads(payload)
        chain = "".join(doc.get("certChain") or [doc["crt"], doc["ca"]])
        cert = x509.load_pem_x509_certificate(doc["crt"].encode())
        path = self.ca.work / "certs" / f"{cert.serial_number}.pem"
        path.write_text(chain)
        with self.lock:
            self.received[cert.serial_number] = cert
            self.files[cert.serial_number] = path
            self.pool.append(cert.serial_number)
        return cert.serial_number

    def take(self, rng: random.Random) -> int | None:
        with self.lock:
            return self.pool.pop(rng.randrange(len(self.pool))) if self.pool else None

    def settle(self, op: Op, payload: bytes) -> None:
        """Record what ``op`` was answered."""
        if op.status != OK[op.kind]:
            with self.lock:
                self.unexpected.append(f"{op.kind} {op.subject}: {op.status} {payload[:200]!r}")
            return
        if op.kind in ("sign", "renew"):
            self.receive(payload)
        with self.lock:
            if op.kind == "revoke":
                self.revoked.append(int(op.subject))
            if op.jti is not None:
                self.answered.append(op)

    def client(self, index: int, seed: int, stop: threading.Event) -> None:
        """Sign, renew and revoke until told to stop or the server is gone (then the request that got no
        answer is recorded and the client ends)."""
        rng = random.Random(seed)
        conn, n = self.ca.connection(), 0
        try:
            while not stop.is_set():
                n += 1
                serial = self.take(rng) if rng.random() < 0.4 else None
                op = Op("renew", str(serial), b"") if serial is not None and rng.random() < 0.5 else \
                    self.ca.revoke_op(serial) if serial is not None else \
                    self.ca.sign_op(f"s{seed}-{n}.crash.example.com")
                try:
                    if op.kind == "renew":
                        op, payload = self.ca.renew(self.files[serial], serial)
                    else:
                        if op.kind == "revoke" and self.ca.ocsp(self.received[serial], conn) != GOOD:
                            with self.lock:
                                self.unexpected.append(f"OCSP: {serial} is not good before its revocation")
                        payload = self.ca.send(conn, op)
                except (OSError, http.client.HTTPException):
                    with self.lock:
                        self.unanswered.append(op)
                    return
                self.settle(op, payload)
                if op.kind == "renew" and op.status == 201:
                    with self.lock:
                        self.pool.append(serial)  # the renewed certificate can still be renewed or revoked
        finally:
            conn.close()


def load_until_killed(dev: Dev, ledger: Ledger, rng: random.Random, first_seed: int) -> int:
    """Run the clients, SIGKILL the server after a random 0.3-2 s; the killed pid."""
    stop = threading.Event()
    threads = [threading.Thread(target=ledger.client, args=(i, first_seed + i, stop), daemon=True)
               for i in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.3, 2.0))
    pid = dev.kill()
    stop.set()
    for t in threads:
        t.join(TIMEOUT + 5)
    assert not any(t.is_alive() for t in threads), "a client did not end after the kill"
    return pid


def integrity(db: Path) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def recorded(db: Path) -> tuple[dict[str, dict], set[str], set[str]]:
    """The certificate records (by serial), the used token ids and the revoked serials in the database."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT serial, record FROM certificates")
        certs = {serial: json.loads(record) for serial, record in rows}
        used = {row[0] for row in conn.execute("SELECT id FROM tokens")}
        revoked = {row[0] for row in conn.execute("SELECT serial FROM revocations")}
    return certs, used, revoked


def sample(items: list, rng: random.Random) -> list:
    """The last SAMPLE items and SAMPLE others at random (the most recent are the ones a crash could lose)."""
    last, rest = items[-SAMPLE:], items[:-SAMPLE]
    return last + rng.sample(rest, min(SAMPLE, len(rest)))


def check_after_restart(ca: CA, ledger: Ledger, db: Path, fingerprint: str, rng: random.Random, lost: list[Op]) -> None:
    """Everything the clients were told still holds on the restarted CA; ``lost``: this round's requests
    that got no answer."""
    integrity(db)
    certs, used, revoked = recorded(db)
    for serial, cert in ledger.received.items():
        record = certs.get(str(serial))
        assert record is not None, f"certificate {serial} was answered 201 but is not recorded"
        assert record["fingerprint"] == cert.fingerprint(hashes.SHA256()).hex()
    assert {str(s) for s in ledger.revoked} <= revoked, "a revocation answered 200 is not recorded"
    missing = [op.jti for op in ledger.answered if f"admin#{op.jti}" not in used]
    assert not missing, f"{len(missing)} tokens answered 201/200 but not recorded as used, e.g. {missing[:3]}"

    names = {name for record in certs.values() for name in record.get("sans", ())}
    for op in lost:
        if op.jti is None:  # a renewal over mTLS: no token; its certificate stays renewable (sampled below)
            ledger.pool.append(int(op.subject))
            continue
        was_used = f"admin#{op.jti}" in used
        ledger.lost_recorded.append(was_used)
        # one transaction: the token's use and the certificate of its name (sign) or the revocation (revoke)
        effect = op.subject in names if op.kind == "sign" else op.subject in revoked
        assert was_used == effect, f"{op.kind} {op.subject}: token recorded {was_used}, its effect {effect}"
        if op.kind == "revoke":  # asked before the revocation (a good response stored): now as recorded
            assert ca.ocsp(ledger.received[int(op.subject)]) == (REVOKED if was_used else GOOD), \
                f"OCSP disagrees with the records about {op.subject} (revoked: {was_used})"
        payload = ca.once(op)
        first = op.status
        ca.once(op)
        assert (first, op.status) == ((401, 401) if was_used else (OK[op.kind], 401)), \
            f"unanswered {op.kind} token (recorded: {was_used}) sent twice: {first}, {op.status}"
        if op.kind == "sign" and first == 201:
            ledger.receive(payload)
        if op.kind == "revoke":
            ledger.revoked.append(int(op.subject))

    for op in sample(ledger.answered, rng):
        ca.once(op)
        assert op.status == 401, f"a used {op.kind} token was accepted again ({op.status})"

    for serial in sample(ledger.revoked, rng):
        op, payload = ca.renew(ledger.files[serial], serial)
        assert op.status == 401 and b"revoked" in payload, f"revoked {serial} renewed: {op.status} {payload!r}"
        assert ca.ocsp(ledger.received[serial]) == REVOKED
    for serial in sample(list(ledger.pool), rng):
        assert ca.ocsp(ledger.received[serial]) == GOOD
        op, payload = ca.renew(ledger.files[serial], serial)
        assert op.status == 201, f"{serial}, received before the kill, does not renew: {op.status} {payload!r}"
        ledger.receive(payload)

    status, payload = ca.get(f"/root/{fingerprint}")  # over TLS checked against the original root file
    assert status == 200
    served = x509.load_pem_x509_certificate(json.loads(payload)["ca"].encode())
    assert served.fingerprint(hashes.SHA256()).hex() == fingerprint


def check_everything(ca: CA, ledger: Ledger) -> None:
    """After the last restart, all of it over HTTP: every revocation answered 200 refuses renewal over mTLS;
    OCSP knows every certificate received, as revoked or good as the clients were told."""
    for serial in ledger.revoked:
        op, payload = ca.renew(ledger.files[serial], serial)
        assert op.status == 401 and b"revoked" in payload, f"revoked {serial} renewed: {op.status} {payload!r}"
    revoked, conn = set(ledger.revoked), ca.connection()
    try:
        for serial, cert in ledger.received.items():
            assert ca.ocsp(cert, conn) == (REVOKED if serial in revoked else GOOD), serial
    finally:
        conn.close()


@pytest.fixture
def dev(tmp_path):
    d = Dev(tmp_path / "home", free_port())
    yield d
    d.stop()


def test_killed_mid_load_loses_nothing_told_and_spends_no_token_twice(dev, tmp_path):
    started = time.monotonic()
    seed = random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}")  # shown on failure: the order of operations and the kill times
    defaults = dev.start()
    fingerprint = defaults["fingerprint"]
    work = tmp_path / "client"
    (work / "certs").mkdir(parents=True)
    root = work / "root_ca.crt"  # the original root, kept apart from the home
    shutil.copy(defaults["root"], root)
    issuer = x509.load_pem_x509_certificate((dev.home / "certs" / "intermediate_ca.crt").read_bytes())
    ca = CA(defaults["ca-url"], root, issuer, dev.home / "secrets" / "password", work)
    ledger = Ledger(ca)
    db = database_path(dev.home)

    for round_ in range(ROUNDS):
        before = len(ledger.unanswered)
        pid = load_until_killed(dev, ledger, rng, round_ * THREADS + seed)
        assert not ledger.unexpected, f"{len(ledger.unexpected)} unexpected answers: {ledger.unexpected[:3]}"
        assert (dev.home / ".lock").read_text() == f"pid {pid}"  # the killed process's lock file is left
        again = dev.start()
        assert again["fingerprint"] == fingerprint
        assert (dev.home / ".lock").read_text() == f"pid {dev.proc.pid}"
        check_after_restart(ca, ledger, db, fingerprint, rng, ledger.unanswered[before:])

    assert ledger.revoked and len(ledger.received) > len(ledger.revoked), "the load issued and revoked"
    check_everything(ca, ledger)
    dev.stop()
    integrity(db)
    print(f"{len(ledger.received)} certificates received, {len(ledger.revoked)} revoked, "
          f"{len(ledger.unanswered)} requests unanswered ({sum(ledger.lost_recorded)} of "
          f"{len(ledger.lost_recorded)} token requests recorded), in {time.monotonic() - started:.1f} s")

"""cert-manager's ACME issuer against `stepless dev`, without Kubernetes: its ACME client library
(golang.org/x/crypto/acme — cert-manager vendors a fork of it as third_party/forked/acme, the same RFC 8555
wire calls; the fork adds order profiles, ARI `replaces` and Retry-After on orders, none of which cert-manager
sends by default) driven in the order and with the arguments cert-manager's controllers use. The Go program
is tests/e2e/certmanager_acme/main.go, built here from Debian's golang-golang-x-crypto-dev (GOPATH mode,
offline, as tools/build-step.sh builds step). What it mirrors, in cert-manager's source:

- pkg/issuer/acme/setup.go (Issuer setup): an RSA-2048 account key (``createAccountPrivateKey``);
  ``registerAccount``: ``Register`` with ``acme.AcceptTOS``, the contact ``mailto:<email>`` and the External
  Account Binding {keyID, HMAC key from the Secret decoded as unpadded base64url (``getEABKey``)}, signed
  HS256 by the library; ``ErrAccountAlreadyExists`` -> ``GetReg("")``; ``ensureEmailUpToDate`` ->
  ``UpdateReg``. pkg/acme/accounts/client.go: the client (CA bundle, ``RetryBackoff`` of pkg/acme/util that
  retries only 400s, i.e. badNonce, 5 times).
- pkg/controller/certificaterequests/acme/acme.go ``buildOrder`` + pkg/controller/acmeorders/sync.go
  ``createOrder``: ``AuthorizeOrder(DomainIDs(dnsNames + commonName))`` (no ``notAfter`` unless the Issuer
  enables the duration feature); ``fetchMetadataForAuthorizations``: ``GetAuthorization`` per authorization.
- pkg/controller/acmeorders/util.go + pkg/util/solverpicker/solverpicker.go: a solver per authorization, the
  first of the Issuer's solvers whose challenge type the authorization offers (a wildcard authorization offers
  only dns-01, so an http-01 solver cannot serve it); ``ensureKeysForChallenges``: ``HTTP01ChallengeResponse``
  / ``DNS01ChallengeRecord``.
- pkg/controller/acmechallenges/sync.go: every challenge's ``Present`` (all records in place before any is
  accepted, as cert-manager's dns-01 propagation check makes it in practice), then per challenge, in parallel:
  ``Check`` (pkg/issuer/acme/http/http.go ``testReachability``: GET the challenge URL and compare the key;
  pkg/issuer/acme/dns/dns.go: TXT ``_acme-challenge.<domain>`` asked of the recursive nameserver, as with
  ``--dns01-recursive-nameservers-only``), ``acceptChallenge``: ``Accept`` on a challenge built from its URL and
  token, then ``WaitAuthorization``; ``CleanUp`` removes the record. The http-01 server answers as
  pkg/issuer/acme/http/solver/solver.go: ``/.well-known/acme-challenge/<token>`` for the challenge's host only.
- pkg/controller/acmeorders/sync.go: ``GetOrder`` (``updateOrderStatus``; cert-manager requeues a pending
  order, here ``WaitOrder``), ``finalizeOrder``: ``CreateOrderCert(finalizeURL, csr, bundle=true)`` with the CSR
  of pkg/util/pki/csr.go ``GenerateCSR`` (RSA-2048 key, SAN extension critical when the subject is empty,
  KeyUsage digitalSignature+keyEncipherment); ``syncCertificateData``: ``FetchCert(certURL, true)``.
- Revocation: cert-manager never revokes (its ACME client interface, pkg/acme/client/interfaces.go, has no
  RevokeCert; deleting a Certificate deletes the Secret only), so nothing here revokes.
(Read at cert-manager commit 2d0d7f7f, 2026-08.)

What this does not test: cert-manager itself (its controllers, CRDs, the solver pods and Ingresses, ARI,
profiles) — only its ACME library and call sequence.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from stepless.local.devstack import local_environment

PROGRAM = Path(__file__).parent / "certmanager_acme"
X_CRYPTO_ACME = Path("/usr/share/gocode/src/golang.org/x/crypto/acme")
PROBLEM = "urn:ietf:params:acme:error:"
PROVISIONER = "cert-manager"


def _go() -> str | None:
    found = shutil.which("go") or "/usr/lib/go/bin/go"
    return found if Path(found).exists() and X_CRYPTO_ACME.is_dir() else None


@pytest.fixture(scope="module")
def program() -> Path:
    """The Go program, built offline in GOPATH mode against Debian's x/crypto (the build cache shared with
    tools/build-step.sh) and kept under ~/.cache/stepless-peers/bin by the hash of its source."""
    go = _go()
    if go is None:
        msg = "Go or golang.org/x/crypto/acme is missing (apt-get install golang-go golang-golang-x-crypto-dev)"
        if os.environ.get("CI"):
            pytest.fail(msg + ": CI must run it (tools/build-step.sh installs both)")
        pytest.skip(msg)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stepless-peers"
    digest = hashlib.sha256((PROGRAM / "main.go").read_bytes() + go.encode()).hexdigest()[:16]
    binary = cache / "bin" / f"certmanager-acme-{digest}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GO111MODULE": "off", "GOPROXY": "off", "GOFLAGS": "", "GOTOOLCHAIN": "local",
           "GOPATH": "/usr/share/gocode", "GOCACHE": str(cache / "build" / "gocache")}
    tmp = binary.with_name(binary.name + ".new")
    res = subprocess.run([go, "build", "-o", str(tmp), "."], cwd=PROGRAM, env=env, capture_output=True, text=True,
                         timeout=300)
    if res.returncode != 0:
        pytest.fail(f"go build of {PROGRAM} failed: {res.stderr[-3000:]}")
    tmp.replace(binary)
    for old in binary.parent.glob("certmanager-acme-*"):  # builds of earlier sources
        if old != binary:
            old.unlink(missing_ok=True)
    return binary


class Issuer:
    """A cert-manager ACME Issuer: the directory, the CA bundle, the account key Secret and the EAB Secret."""

    def __init__(self, program: Path, ca, tmp: Path, eab: dict, ports: dict, dns) -> None:
        self.program, self.ca, self.tmp, self.eab, self.ports, self.dns = program, ca, tmp, eab, ports, dns
        self.account_key = tmp / "account.key"

    def run(self, *args: str, email: str = "ops@cm.test", out: Path | None = None) -> dict:
        """Run the flow; its JSON report (``ok``, or the ``stage`` and ``error`` of a refusal)."""
        cmd = [str(self.program), "-directory", f"{self.ca.url}/acme/{PROVISIONER}/directory",
               "-ca-file", str(self.ca.root), "-account-key", str(self.account_key), "-email", email,
               "-eab-kid", self.eab["keyID"], "-eab-hmac-key", self.eab["hmacKey"],
               "-http01-address", f"127.0.0.1:{self.ports['http']}", "-dns01-records", str(self.dns.records_file),
               "-dns01-nameserver", f"127.0.0.1:{self.dns.port}", "-out-dir", str(out or self.tmp), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        try:
            report = json.loads(res.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            pytest.fail(f"no report ({res.returncode}): {res.stdout[-2000:]} {res.stderr[-2000:]}")
        assert res.returncode == (0 if report["ok"] else 2), res.stderr
        return report


@pytest.fixture(scope="module")
def issuer(program, acme_ca, ports, dns, tmp_path_factory) -> Issuer:
    """An EAB-only ACME provisioner limited to cm.test, one label under it and under wild.cm.test, an EAB key from
    our admin CLI, and the Issuer's account registered once (what makes the Issuer Ready)."""
    tmp = tmp_path_factory.mktemp("cert-manager")
    env = {**acme_ca.env(), **local_environment(acme_ca.home)}
    policy = tmp / "policy.json"
    policy.write_text(json.dumps({"allow": {"dns": ["cm.test", "*.cm.test", "*.wild.cm.test"]}}))
    acme_ca.stepless("ca", "provisioner", "add", PROVISIONER, "--type", "ACME", "--acme-policy", str(policy),
                     cwd=acme_ca.home, env=env)
    eab = json.loads(acme_ca.stepless("ca", "acme", "eab", "add", PROVISIONER, "cert-manager issuer",
                                      cwd=acme_ca.home, env=env).stdout)
    issuer = Issuer(program, acme_ca, tmp, eab, ports, dns)
    first = issuer.run("-register-only")
    assert first["ok"] and not first["account_existed"] and first["contact"] == ["mailto:ops@cm.test"], first
    return issuer


def _certificate(issuer: Issuer, out: Path, names: list[str]) -> x509.Certificate:
    """The leaf of ``out``/tls.crt, after checking the chain verifies against our root alone (openssl), names
    exactly ``names`` and certifies the public key of ``out``/tls.key."""
    chain = x509.load_pem_x509_certificates((out / "tls.crt").read_bytes())
    assert len(chain) == 2, "leaf and intermediate (bundle=true)"
    (out / "leaf.pem").write_bytes(chain[0].public_bytes(serialization.Encoding.PEM))
    (out / "intermediate.pem").write_bytes(chain[1].public_bytes(serialization.Encoding.PEM))
    res = subprocess.run(["openssl", "verify", "-CAfile", str(issuer.ca.root), "-untrusted",
                          str(out / "intermediate.pem"), str(out / "leaf.pem")], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip().endswith(": OK"), res.stdout + res.stderr
    leaf = chain[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(names)
    key = serialization.load_pem_private_key((out / "tls.key").read_bytes(), None)
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    return leaf


def _issued_for(ca, name: str) -> int:
    """How many certificates the CA's store records for ``name``."""
    from stepless.stores import backend

    stores = backend.open_backend(local_environment(ca.home)[backend.STORE])
    try:
        with stores.certificates.db.read() as conn:
            return conn.execute("SELECT COUNT(*) FROM certificates WHERE record LIKE ?", (f'%"{name}"%',)).fetchone()[0]
    finally:
        stores.close()


def test_http01_with_external_account_binding(issuer, tmp_path):
    report = issuer.run("-dns-names", "web.cm.test,www.cm.test", "-common-name", "web.cm.test", "-solvers",
                        "http-01", out=tmp_path)
    assert report["ok"], report
    # cert-manager sends the Issuer's EAB with every Register: the key already bound to this account is no
    # refusal, the account is found by its key (Register -> 200 -> ErrAccountAlreadyExists -> GetReg)
    assert report["account_existed"] and report["contact"] == ["mailto:ops@cm.test"]
    assert [(a["identifier"], a["solver"], a["status"]) for a in report["authorizations"]] == [
        ("web.cm.test", "http-01", "valid"), ("www.cm.test", "http-01", "valid")]
    assert all(set(a["offered"]) == {"http-01", "dns-01", "tls-alpn-01"} for a in report["authorizations"])
    assert report["order_status"] == "valid" and report["chain_length"] == 2 and report["refetch_same"]
    leaf = _certificate(issuer, tmp_path, ["web.cm.test", "www.cm.test"])
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "web.cm.test"


def test_wildcard_needs_a_dns01_solver(issuer, tmp_path):
    """An Issuer with only an http-01 solver cannot take a wildcard: the CA offers dns-01 alone for it."""
    report = issuer.run("-dns-names", "*.cm.test", "-solvers", "http-01", out=tmp_path)
    assert report["stage"] == "solver" and "offered [dns-01]" in report["error"]["detail"], report
    assert not (tmp_path / "tls.crt").exists()


@pytest.mark.parametrize("solvers,apex,domain", [("http-01,dns-01", "http-01", "cm.test"),
                                                 ("dns-01", "dns-01", "wild.cm.test")])
def test_wildcard_through_dns01(issuer, tmp_path, solvers, apex, domain):
    """A name and its wildcard in one order: the wildcard through dns-01, the name itself through the first
    solver it offers. With dns-01 alone, ``_acme-challenge.<name>`` holds both authorizations' values at once."""
    report = issuer.run("-dns-names", f"{domain},*.{domain}", "-solvers", solvers, email="pki@cm.test",
                        out=tmp_path)
    assert report["ok"], report
    assert report["contact"] == ["mailto:pki@cm.test"], "the Issuer's new email, sent with UpdateReg"
    assert sorted((a["identifier"], a["wildcard"], a["solver"], a["status"]) for a in report["authorizations"]) == [
        (domain, False, apex, "valid"), (domain, True, "dns-01", "valid")]
    assert [a["offered"] for a in report["authorizations"] if a["wildcard"]] == [["dns-01"]]
    leaf = _certificate(issuer, tmp_path, [domain, f"*.{domain}"])
    # no commonName in the CSR: the CA names the subject after the first identifier (as for every ACME order)
    assert [a.value for a in leaf.subject] in ([domain], [f"*.{domain}"])
    assert not issuer.dns.records(), "the solver's CleanUp removed the TXT records"


def test_identifier_outside_the_policy_is_refused(issuer, tmp_path):
    report = issuer.run("-dns-names", "web.cm.test,mail.other.test", "-solvers", "http-01,dns-01", out=tmp_path)
    assert not report["ok"] and report["stage"] == "order", report
    assert report["error"]["status"] == 400 and report["error"]["type"] == PROBLEM + "rejectedIdentifier"
    assert "mail.other.test" in report["error"]["detail"]
    assert not (tmp_path / "tls.crt").exists() and _issued_for(issuer.ca, "mail.other.test") == 0

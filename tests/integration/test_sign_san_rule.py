"""POST /sign: step-ca's per-type SAN rule, and every SAN shape a CSR or a token can carry (never a 500).

step-ca 0.19 (``authority/provisioner/sign_options.go``: ``defaultSANsValidator`` → dns/ip/email/uris
validators) checks a SAN type only when the CSR has names of that type, and then wants exactly the token's
names of that type; the certificate's SANs come from the token (the default leaf template). The JWK, X5C
and OIDC provisioners all go through ``services.sign._check_names``; OIDC administrators keep the CSR's
names, which must be names a certificate can carry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, NameOID, ObjectIdentifier

from stepless import authority
from stepless.api.sign import app
from stepless.stores import authority as store
from tests.support.ca import call, make_csr, make_key

CN = "svc.example.com"
ADMIN = "root@example.com"


def sign(csr: str, token: str) -> tuple[int, dict]:
    return call(app, "POST", "/1.0/sign", {"csr": csr, "ott": token})


def sans_of(body: dict) -> dict[str, list[str]]:
    cert = x509.load_pem_x509_certificate(body["crt"].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {"dns": san.get_values_for_type(x509.DNSName),
            "ips": [str(i) for i in san.get_values_for_type(x509.IPAddress)],
            "emails": san.get_values_for_type(x509.RFC822Name),
            "uris": san.get_values_for_type(x509.UniformResourceIdentifier),
            "cn": [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]}


def certificates() -> int:
    return boto3.client("dynamodb").describe_table(TableName="test-certificates")["Table"]["ItemCount"]


# --- the per-type rule ------------------------------------------------------------------------------


def test_csr_without_sans_gets_the_tokens_name(test_ca):
    """``openssl req -new -subj /CN=ci-runner``: no SAN extension; step-ca issues it with SAN DNS:ci-runner."""
    csr, _ = make_csr("ci-runner", [])
    status, body = sign(csr, test_ca.token("ci-runner"))
    assert status == 201, body
    assert sans_of(body) == {"dns": ["ci-runner"], "ips": [], "emails": [], "uris": [], "cn": ["ci-runner"]}


def test_csr_without_any_name_gets_the_tokens_names(test_ca):
    csr, _ = make_csr("", [])
    status, body = sign(csr, test_ca.token("api.internal", sans=["api.internal", "10.0.0.5"]))
    assert status == 201, body
    assert sans_of(body)["dns"] == ["api.internal"] and sans_of(body)["ips"] == ["10.0.0.5"]
    assert sans_of(body)["cn"] == ["api.internal"]


@pytest.mark.parametrize("csr_sans", [["api.internal"], ["10.0.0.5"], ["api.internal", "10.0.0.5"]],
                         ids=["dns-only", "ip-only", "both"])
def test_a_type_the_csr_does_not_name_passes(test_ca, csr_sans):
    """Token DNS + IP; a CSR with only one of the types is issued with both (the token's SANs)."""
    csr, _ = make_csr("api.internal", csr_sans)
    status, body = sign(csr, test_ca.token("api.internal", sans=["api.internal", "10.0.0.5"]))
    assert status == 201, body
    got = sans_of(body)
    assert (got["dns"], got["ips"]) == (["api.internal"], ["10.0.0.5"])


@pytest.mark.parametrize(("csr_sans", "token_sans", "text"), [
    (["api.internal", "10.0.0.6"], ["api.internal", "10.0.0.5"],
     "IP addresses requested ['10.0.0.6'], token allows ['10.0.0.5']"),
    (["api.internal", "10.0.0.5", "10.0.0.6"], ["api.internal", "10.0.0.5"], "IP addresses requested"),
    (["api.internal"], ["api.internal", "www.internal"],
     "DNS names requested ['api.internal'], token allows ['api.internal', 'www.internal']"),
    (["api.internal", "evil.internal"], ["api.internal"], "DNS names requested ['api.internal', 'evil.internal']"),
    (["api.internal", "ops@example.com"], ["api.internal"],
     "email addresses requested ['ops@example.com'], token allows []"),
    (["10.0.0.5"], ["api.internal"], "IP addresses requested ['10.0.0.5'], token allows []"),
], ids=["other-ip", "extra-ip", "fewer-dns", "extra-dns", "extra-email", "ip-where-token-has-none"])
def test_a_type_the_csr_names_must_match_exactly(test_ca, csr_sans, token_sans, text):
    before = certificates()
    csr, _ = make_csr("api.internal", csr_sans)
    status, body = sign(csr, test_ca.token("api.internal", sans=token_sans))
    assert status == 403, body
    assert "SANs do not match the token" in body["message"] and text in body["message"]
    assert certificates() == before


def test_x5c_csr_without_sans(test_ca):
    """X5C goes through the same rule: a device's CSR without SANs gets the token's (= the leaf's) name."""
    from tests.integration.test_x5c import claims
    from tests.support.x5c import PKI, make_token

    pki = PKI()
    doc, version = store.load()
    doc["provisioners"].append({"type": "X5C", "name": "devices", "roots": pki.roots_value()})
    store.save(doc, expected_version=version)
    authority.reset()
    leaf, key = pki.leaf("dev1.example.com")
    csr, _ = make_csr("dev1.example.com", [])
    status, body = sign(csr, make_token([leaf, pki.inter], key, claims("dev1.example.com")))
    assert status == 201, body
    assert sans_of(body)["dns"] == ["dev1.example.com"]


@pytest.fixture
def oidc_ca(test_ca, idp):
    doc, version = store.load()
    doc["provisioners"].append(idp.entry(admins=[ADMIN]))
    store.save(doc, expected_version=version)
    authority.reset()
    return test_ca


def test_oidc_csr_without_sans_gets_the_email(oidc_ca, idp):
    csr, _ = make_csr(idp.user["sub"], [])
    status, body = sign(csr, idp.issue())
    assert status == 201, body
    assert sans_of(body)["emails"] == [idp.user["email"]] and sans_of(body)["dns"] == []
    assert sans_of(body)["cn"] == [idp.user["sub"]]


def test_oidc_csr_with_another_email_is_refused(oidc_ca, idp):
    csr, _ = make_csr(idp.user["sub"], ["mallory@example.com"])
    status, body = sign(csr, idp.issue())
    assert status == 403 and "email addresses requested ['mallory@example.com']" in body["message"], body


# --- SAN shapes: a clear 400 for every name no certificate carries, for JWK and OIDC admins alike ---------


def _der_length(n: int) -> bytes:
    if n < 128:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def _csr(names: list[x509.GeneralName] | None = None, raw: list[bytes] | None = None, cn: str = CN) -> str:
    """A CSR with CN and a SAN made of ``names`` (cryptography's types) or of raw DER GeneralNames
    (for the shapes cryptography cannot build: 8-byte iPAddress, x400Address, ediPartyName, non-ASCII IA5)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if raw is not None:
        value = _tlv(0x30, _tlv(0x82, CN.encode()) + b"".join(raw))
        builder = builder.add_extension(x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, value),
                                        critical=False)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(CN), *(names or [])]),
                                        critical=False)
    return builder.sign(make_key(), hashes.SHA256()).public_bytes(Encoding.PEM).decode()


SHAPES: list = [
    pytest.param(lambda: _csr(raw=[_tlv(0x87, bytes([10, 0, 0, 0, 255, 0, 0, 0]))]),
                 "IP address SAN 10.0.0.0/8 is a network", id="ip-network-8-bytes"),
    pytest.param(lambda: _csr(raw=[_tlv(0x87, bytes(16) + bytes(16))]), "IP address SAN ::/0 is a network",
                 id="ip-network-32-bytes"),
    pytest.param(lambda: _csr(raw=[_tlv(0x87, bytes([10, 0, 0, 0, 1]))]), "does not appear to be an IPv4 or IPv6",
                 id="ip-5-bytes"),
    pytest.param(lambda: _csr(raw=[_tlv(0x87, b"")]), "does not appear to be an IPv4 or IPv6", id="ip-empty"),
    pytest.param(lambda: _csr([x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x03abc")]),
                 "type otherName are not supported", id="other-name-upn"),
    pytest.param(lambda: _csr([x509.RegisteredID(ObjectIdentifier("1.2.3.4"))]),
                 "type registeredID are not supported", id="registered-id"),
    pytest.param(lambda: _csr([x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))]),
                 "type directoryName are not supported", id="directory-name"),
    pytest.param(lambda: _csr(raw=[_tlv(0xA3, _tlv(0x30, b""))]), "x400Address or ediPartyName", id="x400-address"),
    pytest.param(lambda: _csr(raw=[_tlv(0xA5, _tlv(0xA1, _tlv(0x0C, b"x")))]), "x400Address or ediPartyName",
                 id="edi-party-name"),
    pytest.param(lambda: _csr(raw=[_tlv(0x82, b"")]), "a DNS name SAN is empty", id="dns-empty"),
    pytest.param(lambda: _csr(raw=[_tlv(0x81, b"")]), "an email address SAN is empty", id="email-empty"),
    pytest.param(lambda: _csr(raw=[_tlv(0x86, b"")]), "a URI SAN is empty", id="uri-empty"),
    pytest.param(lambda: _csr(raw=[_tlv(0x82, "café.example.com".encode())]),
                 "use its IDNA form 'xn--caf-dma.example.com'", id="dns-unicode-utf8"),
    pytest.param(lambda: _csr(raw=[_tlv(0x82, "café.example.com".encode("latin-1"))]), "invalid csr",
                 id="dns-latin1-bytes"),
    pytest.param(lambda: _csr(raw=[_tlv(0x81, "é@example.com".encode())]), "is not printable ASCII",
                 id="email-unicode"),
    pytest.param(lambda: _csr(raw=[_tlv(0x86, "https://é.example.com".encode())]), "percent-encode",
                 id="uri-unicode"),
    pytest.param(lambda: _csr([x509.UniformResourceIdentifier("::::")]), "has no scheme", id="uri-without-scheme"),
    pytest.param(lambda: _csr(raw=[_tlv(0x81, b"nobody")]), "is not of the form local@domain", id="email-without-at"),
    pytest.param(lambda: _csr([x509.DNSName("a b.example.com")]), "contains a space", id="dns-with-space"),
    pytest.param(lambda: _empty_san_csr(), "invalid csr", id="san-no-names"),
]


def _empty_san_csr() -> str:
    """A SAN extension holding an empty GeneralNames sequence (RFC 5280 wants at least one name)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CN)])).add_extension(
        x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, _tlv(0x30, b"")), critical=False)
    return builder.sign(make_key(), hashes.SHA256()).public_bytes(Encoding.PEM).decode()


def _refused(csr: str, token: str, text: str) -> None:
    before = certificates()
    status, body = sign(csr, token)
    assert status == 400, body
    assert body["message"].startswith("The request could not be completed: invalid csr") and text in body["message"]
    assert certificates() == before


@pytest.mark.parametrize(("build", "text"), SHAPES)
def test_san_shape_is_a_400_for_a_jwk_token(test_ca, build: Callable[[], str], text: str):
    _refused(build(), test_ca.token(CN), text)


@pytest.mark.parametrize(("build", "text"), SHAPES)
def test_san_shape_is_a_400_for_an_oidc_admin(oidc_ca, idp, build: Callable[[], str], text: str):
    """OIDC administrators get the CSR's names: the 8-byte iPAddress that answered 500 (issue 10, item 4)."""
    idp.user = {"sub": "7f1c7c5e-admin", "email": ADMIN, "email_verified": True}
    _refused(build(), idp.issue(), text)


def test_oidc_admin_still_gets_odd_but_valid_names(oidc_ca, idp):
    """Control: an admin's IDNA name and IPv4-mapped IPv6 address are names a certificate carries."""
    idp.user = {"sub": "7f1c7c5e-admin", "email": ADMIN, "email_verified": True}
    mapped = ipaddress.ip_address("::ffff:10.0.0.1")
    status, body = sign(_csr([x509.DNSName("xn--caf-dma.example.com"), x509.IPAddress(mapped)]), idp.issue())
    assert status == 201, body
    assert sans_of(body)["dns"] == [CN, "xn--caf-dma.example.com"] and sans_of(body)["ips"] == [str(mapped)]


# --- the token's names go through the same check ---------------------------------------------------------


@pytest.mark.parametrize(("token_sans", "text"), [
    (["café.example.com"], "DNS name 'café.example.com' is not ASCII: use its IDNA form 'xn--caf-dma.example.com'"),
    (["a b"], "contains a space"),
    (["é@example.com"], "is not printable ASCII"),
    (["://nothing"], "has no scheme"),
], ids=["dns-unicode", "dns-space", "email-unicode", "uri-without-scheme"])
def test_token_names_no_certificate_carries_are_a_400(test_ca, token_sans, text):
    before = certificates()
    csr, _ = make_csr("x", [])
    status, body = sign(csr, test_ca.token("x", sans=token_sans))
    assert status == 400 and text in body["message"], body
    assert certificates() == before


def test_oidc_token_with_a_unicode_email_is_a_400(oidc_ca, idp):
    idp.user = {"sub": "00u1x2y3", "email": "zoë@example.com", "email_verified": True}
    status, body = sign(make_csr("00u1x2y3", [])[0], idp.issue())
    assert status == 400 and "'zoë@example.com' is not printable ASCII" in body["message"], body

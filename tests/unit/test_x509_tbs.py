"""The DER-template leaf (x509.tbs) is byte-for-byte the leaf cryptography's builder makes."""

from __future__ import annotations

import datetime as dt
import functools
import string

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from stepless.signers.memory import MemorySigner
from stepless.x509 import der, profile, tbs
from stepless.x509.csr import SANs

UTC = dt.UTC


@functools.cache
def _ca(kind: str) -> tuple[x509.Certificate, MemorySigner]:
    key = {"p256": lambda: ec.generate_private_key(ec.SECP256R1()),
           "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
           "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
           "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)}[kind]()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"Tests Intermediate CA ({kind})")])
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, MemorySigner(key)


@functools.cache
def _leaf_key(kind: str) -> object:
    return {"p256": lambda: ec.generate_private_key(ec.SECP256R1()),
            "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
            "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ed25519": ed25519.Ed25519PrivateKey.generate}[kind]().public_key()


def _both(ca: str, leaf: str, serial: int = 1 << 100, **fields: object) -> tuple[x509.Certificate, x509.Certificate]:
    """The same leaf from cryptography's builder and from the DER template."""
    issuer, signer = _ca(ca)
    args = dict(public_key=_leaf_key(leaf), issuer=issuer, provisioner=(1, "admin", "kid-1"), serial=serial,
                **fields)
    return profile._sign(profile.leaf_builder(tbs.Leaf(**args)), signer), profile.leaf(signer=signer, **args)


LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
DNS = st.builds(lambda parts: ".".join(parts), st.lists(LABEL, min_size=1, max_size=4))
IP = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
EMAIL = st.builds(lambda a, d: f"{a}@{d}", LABEL, DNS)
URI = st.builds(lambda d, p: f"spiffe://{d}/{p}", DNS, LABEL)
TIME = st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(UTC))


# names over the CN's 64-octet bound (long DNS names up to 253, e-mail addresses, OIDC subjects), multi-byte too
LONG_NAME = st.one_of(
    st.builds(lambda parts: ".".join(parts), st.lists(st.text(string.ascii_lowercase, min_size=20, max_size=63),
                                                      min_size=2, max_size=4)).map(lambda n: n[:253]),
    st.text(min_size=33, max_size=120))
PROVISIONER = st.tuples(st.integers(min_value=-5, max_value=300), st.text(max_size=40), st.text(max_size=60))


@settings(max_examples=60, deadline=None)
@given(ca=st.sampled_from(["p256", "p384", "p521", "rsa"]), leaf=st.sampled_from(["p256", "p521", "rsa", "ed25519"]),
       cn=st.one_of(st.just(""), DNS, st.text(min_size=1, max_size=70), LONG_NAME),
       names=st.lists(st.one_of(DNS, IP, EMAIL, URI), max_size=6),
       start=TIME, hours=st.integers(min_value=0, max_value=24 * 365 * 30), provisioner=PROVISIONER,
       crl=st.one_of(st.none(), st.just("https://ca.example.com/1.0/crl"), URI),
       serial=st.integers(min_value=1, max_value=(1 << 159) - 1))
def test_template_tbs_is_the_builders(ca: str, leaf: str, cn: str, names: list[str], start: dt.datetime,
                                      hours: int, provisioner: tuple[int, str, str], crl: str | None,
                                      serial: int) -> None:
    """Same bytes, or the same refusal (ValueError) when the builder refuses the fields."""
    issuer, signer = _ca(ca)
    fields = dict(public_key=_leaf_key(leaf), common_name=cn, sans=SANs.split(names), not_before=start,
                  not_after=start + dt.timedelta(hours=hours), issuer=issuer, provisioner=provisioner,
                  serial=serial, crl_url=crl)
    try:
        built = profile._sign(profile.leaf_builder(tbs.Leaf(**fields)), signer)
    except ValueError:
        with pytest.raises(ValueError):
            profile.leaf(signer=signer, **fields)
        return
    templated = profile.leaf(signer=signer, **fields)
    assert templated.tbs_certificate_bytes == built.tbs_certificate_bytes
    assert templated.signature_algorithm_oid == built.signature_algorithm_oid
    templated.verify_directly_issued_by(issuer)
    kept = len(cn.encode()) <= 64  # the CN is carried only within RFC 5280's bound
    assert templated.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == (
        [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn and kept else [])


def test_microseconds_and_timezones_are_dropped_as_the_builder_does() -> None:
    start = dt.datetime(2049, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    built, templated = _both("p256", "p256", common_name="a.example.com", sans=SANs.split(["a.example.com"]),
                             not_before=start, not_after=start + dt.timedelta(hours=1))
    assert templated.tbs_certificate_bytes == built.tbs_certificate_bytes
    assert templated.not_valid_before_utc.year == 2050  # 04:59:59 UTC on 2050-01-01: GeneralizedTime


def test_an_ed25519_ca_key_uses_the_builder() -> None:
    key = ed25519.Ed25519PrivateKey.generate()

    class Ed25519Signer:
        ref = "memory:"

        def public_key(self) -> object:
            return key.public_key()

        def hash_algorithm(self) -> None:
            raise AssertionError("not used")

        def sign(self, data: bytes) -> bytes:
            return key.sign(data)

    issuer, _ = _ca("p256")
    assert profile.leaf_template(issuer, Ed25519Signer(), (1, "a", "b"), None) is None


LONG_DNS = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters, the longest DNS name


@pytest.mark.parametrize("path", ["template-p256", "template-rsa", "builder-p256", "builder-ed25519"])
@pytest.mark.parametrize(("cn", "kept"), [("x" * 64, True), ("x" * 65, False), (LONG_DNS, False),
                                          ("ü" * 32, True), ("ü" * 33, False)])
def test_a_common_name_over_64_is_left_out_and_the_san_is_critical(path: str, cn: str, kept: bool) -> None:
    """RFC 5280's ub-common-name: over it the subject is empty (never a ValueError, i.e. a 500), the SANs
    name the certificate and their extension is critical, on the DER template and on cryptography's
    builder (renewals, CA keys without a template) alike; pkilint finds nothing to say."""
    issuer, signer = _ca("rsa" if path.endswith("rsa") else "p256")
    spec = tbs.Leaf(_leaf_key("p256"), cn, SANs.split([cn if "." in cn else "a.example.com"]),
                    dt.datetime(2030, 1, 1, tzinfo=UTC), dt.datetime(2030, 1, 2, tzinfo=UTC), issuer,
                    (1, "admin", "kid"), 5)
    if path.startswith("template"):
        cert = profile.leaf(signer=signer, **spec._asdict())
    elif path == "builder-p256":
        cert = profile._sign(profile.leaf_builder(spec), signer)
    else:
        cert = profile.leaf_builder(spec).sign(ed25519.Ed25519PrivateKey.generate(), None)
    assert cert.subject == (x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if kept else x509.Name([]))
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical is not kept
    assert pkilint(cert) == ""


def pkilint(cert: x509.Certificate) -> str:
    """pkilint's findings (WARNING and above) on ``cert``; '' when clean."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    tool = Path(sys.executable).parent / "lint_pkix_cert"
    with tempfile.NamedTemporaryFile(suffix=".pem") as f:
        f.write(cert.public_bytes(Encoding.PEM))
        f.flush()
        out = subprocess.run([str(tool), "lint", "-s", "WARNING", f.name], capture_output=True, text=True, check=False)
    assert out.returncode in (0, 1), out.stderr
    return out.stdout.strip()


@pytest.mark.parametrize(("fields", "message"), [
    (dict(not_before=dt.datetime(2030, 1, 2, tzinfo=UTC), not_after=dt.datetime(2030, 1, 1, tzinfo=UTC)),
     "after the not valid before"),
    (dict(not_before=dt.datetime(1949, 12, 31, tzinfo=UTC), not_after=dt.datetime(2030, 1, 1, tzinfo=UTC)),
     "1950"),
    (dict(sans=SANs.split(["bücher.example"])), "A-label"),
])
def test_bad_fields_fail_like_the_builder(fields: dict, message: str) -> None:
    issuer, signer = _ca("p256")
    args = dict(public_key=_leaf_key("p256"), common_name="a.example.com", sans=SANs.split(["a.example.com"]),
                not_before=dt.datetime(2030, 1, 1, tzinfo=UTC), not_after=dt.datetime(2030, 1, 2, tzinfo=UTC),
                issuer=issuer, provisioner=(1, "admin", "kid"), serial=5) | fields
    with pytest.raises(ValueError, match=message):
        profile.leaf(signer=signer, **args)
    with pytest.raises(ValueError):
        profile._sign(profile.leaf_builder(tbs.Leaf(**args)), signer)


@pytest.mark.parametrize("kind", ["p256", "p521", "rsa", "ed25519"])
def test_subject_key_id_is_cryptographys(kind: str) -> None:
    key = _leaf_key(kind)
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]
    assert der.subject_key_id(spki) == x509.SubjectKeyIdentifier.from_public_key(key).digest  # type: ignore[arg-type]


@given(st.lists(st.integers(min_value=0, max_value=2**56), min_size=1, max_size=6))  # cryptography: OIDs of <= 63 bytes
def test_oid_encoding(arcs: list[int]) -> None:
    dotted = ".".join(map(str, [1, 3, *arcs]))
    theirs = x509.Name([x509.NameAttribute(x509.ObjectIdentifier(dotted), "v")]).public_bytes()
    ours = der.sequence(der.tlv(der.SET, der.sequence(der.oid(dotted), der.tlv(0x0C, b"v"))))
    assert ours == theirs


@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 256, 65535, 65536, -1, -128, -129, 1 << 127, (1 << 128) - 1])
def test_integer_and_length_encoding(n: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    # cryptography's DER for SEQUENCE { INTEGER n, INTEGER 0 } (r, s of a DSS signature) for non-negative n
    if n >= 0:
        assert encode_dss_signature(n, 0) == der.sequence(der.integer(n), der.integer(0))
    tag, start, end = der.read(der.integer(n))
    assert tag == der.INTEGER and int.from_bytes(der.integer(n)[start:end], "big", signed=True) == n


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x05\x00", b"\x30\x85\x00\x00\x00\x00\x01", b"\x30\x81"])
def test_read_refuses_malformed_der(data: bytes) -> None:
    with pytest.raises(ValueError):
        der.read(data)


def test_a_csr_whose_subject_does_not_decode_is_a_400() -> None:
    """A signed CSR with invalid UTF-8 in its CN: 400 with the reason, never a 500."""
    import base64

    from stepless.errors import BadRequest
    from stepless.x509 import csr

    key = ec.generate_private_key(ec.SECP256R1())
    name = der.sequence(der.tlv(der.SET, der.sequence(der.oid("2.5.4.3"), der.tlv(0x0C, b"\xff\xfe"))))
    info = der.sequence(der.integer(0), name,
                        key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
                        der.tlv(0xA0, b""))
    body = der.sequence(info, der.sequence(der.oid("1.2.840.10045.4.3.2")),
                        der.bit_string(key.sign(info, ec.ECDSA(hashes.SHA256()))))
    pem = ("-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(body).decode()
           + "-----END CERTIFICATE REQUEST-----\n")
    with pytest.raises(BadRequest, match="invalid csr"):
        csr.read(pem)

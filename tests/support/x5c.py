"""A small X5C PKI for tests and benchmarks: root -> intermediate -> leaves, X5C token claims and tokens."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from stepless.cli.x5c import x5c_header
from stepless.provisioners.x5c import encode_roots

CA = "https://ca.example.com"
HOSTS = frozenset({"ca.example.com"})
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)

# --- a small PKI -----------------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ku(*, sign: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(sign, False, False, False, False, cert_sign, cert_sign, False, False)


def certificate(cn: str, key: Any, *, issuer: tuple[x509.Certificate | None, Any], ca: bool = False,
                sans: list[str] | None = None, digital_signature: bool = True, eku: list | None = None,
                not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
                path_length: int | None = None) -> x509.Certificate:
    issuer_cert, issuer_key = issuer
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(hours=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if ca:
        b = b.add_extension(_ku(cert_sign=True), critical=True)
    elif digital_signature:
        b = b.add_extension(_ku(sign=True), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(False, True, True, False, False, False, False, False, False), critical=True)
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if sans:
        names: list[x509.GeneralName] = [x509.RFC822Name(s) if "@" in s else x509.DNSName(s) for s in sans]
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(issuer_key, algorithm)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


class PKI:
    """root → intermediate → leaves."""

    def __init__(self, name: str = "Devices") -> None:
        self.root_key, self.inter_key = ec_key(), ec_key()
        self.root = certificate(f"{name} Root", self.root_key, issuer=(None, self.root_key), ca=True)
        self.inter = certificate(f"{name} Intermediate", self.inter_key, issuer=(self.root, self.root_key),
                                 ca=True, path_length=0)

    def leaf(self, cn: str = "dev1.example.com", key: Any = None, **kw: Any) -> tuple[x509.Certificate, Any]:
        key = key or ec_key()
        kw.setdefault("sans", [cn])
        return certificate(cn, key, issuer=(self.inter, self.inter_key), **kw), key

    def roots_value(self) -> str:
        return encode_roots([self.root])


def x5c_claims(sub: str, *, name: str = "devices", path: str = "/1.0/sign", sans: list[str] | None = None,
               lifetime: int = 300, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": name, "aud": CA + path, "sub": sub, "iat": now, "nbf": now, "exp": now + lifetime,
              "jti": uuid.uuid4().hex, "sans": sans if sans is not None else [sub], **extra}
    return {k: v for k, v in claims.items() if v is not None}


def make_token(chain: list[x509.Certificate], key: Any, claims: dict[str, Any], alg: str | None = None) -> str:
    alg = alg or ("EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey)
                  else "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
    return jwt.encode(claims, key, algorithm=alg, headers={"x5c": x5c_header(chain)})

"""Render certificates and CSRs like step: the ``--short`` layout, full text and JSON."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from stepless.cli.keys import describe_key, pem_blocks
from stepless.errors import CLIError
from stepless.x509 import extensions

X509Object = x509.Certificate | x509.CertificateSigningRequest

PROVISIONER_OID = extensions.OID
PROVISIONER_TYPES = extensions.TYPE_NAMES

EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "Server Authentication",
    ExtendedKeyUsageOID.CLIENT_AUTH: "Client Authentication",
    ExtendedKeyUsageOID.CODE_SIGNING: "Code Signing",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "E-mail Protection",
    ExtendedKeyUsageOID.TIME_STAMPING: "Time Stamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSP Signing",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "Any Extended Key Usage",
}
EKU_JSON = {
    ExtendedKeyUsageOID.SERVER_AUTH: "server_auth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "client_auth",
    ExtendedKeyUsageOID.CODE_SIGNING: "code_signing",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "email_protection",
    ExtendedKeyUsageOID.TIME_STAMPING: "time_stamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "ocsp_signing",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "any",
}
KEY_USAGES = (
    ("digital_signature", "Digital Signature"),
    ("content_commitment", "Content Commitment"),
    ("key_encipherment", "Key Encipherment"),
    ("data_encipherment", "Data Encipherment"),
    ("key_agreement", "Key Agreement"),
    ("key_cert_sign", "Certificate Sign"),
    ("crl_sign", "CRL Sign"),
    ("encipher_only", "Encipher Only"),
    ("decipher_only", "Decipher Only"),
)
EXTENSION_NAMES = {
    ExtensionOID.KEY_USAGE: "X509v3 Key Usage",
    ExtensionOID.EXTENDED_KEY_USAGE: "X509v3 Extended Key Usage",
    ExtensionOID.SUBJECT_KEY_IDENTIFIER: "X509v3 Subject Key Identifier",
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER: "X509v3 Authority Key Identifier",
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME: "X509v3 Subject Alternative Name",
    ExtensionOID.ISSUER_ALTERNATIVE_NAME: "X509v3 Issuer Alternative Name",
    ExtensionOID.BASIC_CONSTRAINTS: "X509v3 Basic Constraints",
    ExtensionOID.NAME_CONSTRAINTS: "X509v3 Name Constraints",
    ExtensionOID.CRL_DISTRIBUTION_POINTS: "X509v3 CRL Distribution Points",
    ExtensionOID.CERTIFICATE_POLICIES: "X509v3 Certificate Policies",
    ExtensionOID.AUTHORITY_INFORMATION_ACCESS: "Authority Information Access",
    PROVISIONER_OID: "X509v3 Step Provisioner",
}
SIGNATURE_NAMES = {
    "1.2.840.10045.4.3.2": "ECDSA-SHA256",
    "1.2.840.10045.4.3.3": "ECDSA-SHA384",
    "1.2.840.10045.4.3.4": "ECDSA-SHA512",
    "1.2.840.113549.1.1.5": "SHA1-RSA",
    "1.2.840.113549.1.1.11": "SHA256-RSA",
    "1.2.840.113549.1.1.12": "SHA384-RSA",
    "1.2.840.113549.1.1.13": "SHA512-RSA",
    "1.2.840.113549.1.1.10": "RSASSA-PSS",
    "1.3.101.112": "Ed25519",
}
NAME_ATTRS = {
    NameOID.COMMON_NAME: ("CN", "common_name"),
    NameOID.COUNTRY_NAME: ("C", "country"),
    NameOID.ORGANIZATION_NAME: ("O", "organization"),
    NameOID.ORGANIZATIONAL_UNIT_NAME: ("OU", "organizational_unit"),
    NameOID.LOCALITY_NAME: ("L", "locality"),
    NameOID.STATE_OR_PROVINCE_NAME: ("ST", "province"),
    NameOID.STREET_ADDRESS: ("STREET", "street_address"),
    NameOID.POSTAL_CODE: ("postalCode", "postal_code"),
    NameOID.SERIAL_NUMBER: ("serialNumber", "serial_number"),
    NameOID.EMAIL_ADDRESS: ("emailAddress", "email_address"),
    NameOID.DOMAIN_COMPONENT: ("DC", "domain_component"),
}


def provisioner_extension(cert: X509Object) -> tuple[int, str, str] | None:
    """``(type, name, credential id)`` from step's provisioner extension, or None when absent/malformed."""
    try:
        ext = cert.extensions.get_extension_for_oid(PROVISIONER_OID)
    except (x509.ExtensionNotFound, ValueError):
        return None
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        return None
    try:
        return extensions.decode(value.value)
    except ValueError:
        return None


# --- helpers ------------------------------------------------------------------------------------


def abbreviate(text: str) -> str:
    """Step's ``1234...7890`` form for strings longer than 8 characters."""
    return f"{text[:4]}...{text[-4:]}" if len(text) > 8 else text


def rfc3339(when: dt.datetime) -> str:
    """UTC time as ``2026-11-30T05:50:00Z``."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%b %d %H:%M:%S %Y UTC")


def name_text(name: x509.Name) -> str:
    """A distinguished name in openssl's order and style: ``CN=foo,O=bar``."""
    parts = []
    for attr in name:
        short = NAME_ATTRS.get(attr.oid, (attr.oid.dotted_string, ""))[0]
        parts.append(f"{short}={attr.value!s}")
    return ",".join(parts)


def _name_json(name: x509.Name) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for attr in name:
        key = NAME_ATTRS.get(attr.oid, ("", attr.oid.dotted_string))[1]
        out.setdefault(key, []).append(str(attr.value))
    return out


def _common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _hexcolon(data: bytes, upper: bool = True) -> str:
    text = data.hex(":")
    return text.upper() if upper else text


def _hexlines(data: bytes, indent: str, per_line: int = 15) -> list[str]:
    return [indent + data[i : i + per_line].hex(":") for i in range(0, len(data), per_line)] or [indent]


def _extensions(obj: X509Object) -> list[x509.Extension[x509.ExtensionType]]:
    try:
        return list(obj.extensions)
    except ValueError as e:
        raise CLIError(f"error parsing certificate extensions: {e}") from e


def _ext(obj: X509Object, cls: type) -> Any:
    for ext in _extensions(obj):
        if isinstance(ext.value, cls):
            return ext.value
    return None


def san_strings(obj: X509Object) -> list[str]:
    """The SANs as plain strings, in step's order: DNS names, IPs, emails, URIs."""
    san = _ext(obj, x509.SubjectAlternativeName)
    if san is None:
        return []
    out = [str(v) for v in san.get_values_for_type(x509.DNSName)]
    out += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    out += [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
    out += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    return out


def signature_algorithm_name(obj: X509Object) -> str:
    """Go's name for the signature algorithm (``ECDSA-SHA256``, ``SHA256-RSA``, ``Ed25519``)."""
    oid = obj.signature_algorithm_oid
    return SIGNATURE_NAMES.get(oid.dotted_string, getattr(oid, "_name", oid.dotted_string))


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:
        return False
    return True


def certificate_type(cert: x509.Certificate) -> str:
    """``Root CA``, ``Intermediate CA``, ``TLS`` or ``""``, as step's short text names them."""
    bc = _ext(cert, x509.BasicConstraints)
    if bc is not None and bc.ca:
        return "Root CA" if _is_self_signed(cert) else "Intermediate CA"
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if eku is not None and (ExtendedKeyUsageOID.SERVER_AUTH in eku or ExtendedKeyUsageOID.CLIENT_AUTH in eku):
        return "TLS"
    return ""


def _subject_lines(obj: X509Object) -> list[str]:
    cn = _common_name(obj.subject)
    sans = [s for s in san_strings(obj) if s != cn]
    if not cn and sans:
        cn, sans = sans[0], sans[1:]
    return [f"  Subject:     {cn}"] + [f"               {s}" for s in sans]


# --- short text ---------------------------------------------------------------------------------


def short_text(obj: X509Object) -> str:
    """Step's ``inspect --short`` layout for a certificate or CSR (no trailing newline)."""
    key = describe_key(obj.public_key())
    if isinstance(obj, x509.CertificateSigningRequest):
        return "\n".join([f"X.509v3 Certificate Signing Request ({key})", *_subject_lines(obj)])
    kind = certificate_type(obj)
    title = f"X.509v3 {kind} Certificate" if kind else "X.509v3 Certificate"
    lines = [f"{title} ({key}) [Serial: {abbreviate(str(obj.serial_number))}]", *_subject_lines(obj)]
    lines.append(f"  Issuer:      {_common_name(obj.issuer) or name_text(obj.issuer)}")
    prov = provisioner_extension(obj)
    if prov is not None:
        lines.append(f"  Provisioner: {prov[1]} [ID: {abbreviate(prov[2])}]")
    lines.append(f"  Valid from:  {rfc3339(obj.not_valid_before_utc)}")
    lines.append(f"          to:  {rfc3339(obj.not_valid_after_utc)}")
    return "\n".join(lines)


# --- full text ----------------------------------------------------------------------------------


def _public_key_lines(pub: object, indent: str) -> list[str]:
    i2 = indent + "    "
    if isinstance(pub, ec.EllipticCurvePublicKey):
        nums = pub.public_numbers()
        size = (pub.curve.key_size + 7) // 8
        return [
            f"{indent}Public Key Algorithm: ECDSA",
            f"{i2}Public-Key: ({pub.curve.key_size} bit)",
            f"{i2}X:",
            *_hexlines(nums.x.to_bytes(size, "big"), i2 + "    "),
            f"{i2}Y:",
            *_hexlines(nums.y.to_bytes(size, "big"), i2 + "    "),
            f"{i2}Curve: {describe_key(pub).removeprefix('ECDSA ')}",
        ]
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        modulus = nums.n.to_bytes((pub.key_size + 7) // 8, "big")
        return [
            f"{indent}Public Key Algorithm: RSA",
            f"{i2}Public-Key: ({pub.key_size} bit)",
            f"{i2}Modulus:",
            *_hexlines(b"\x00" + modulus if modulus[0] & 0x80 else modulus, i2 + "    "),
            f"{i2}Exponent: {nums.e} (0x{nums.e:x})",
        ]
    if isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return [
            f"{indent}Public Key Algorithm: Ed25519",
            f"{i2}Public-Key: (256 bit)",
            *_hexlines(raw, i2 + "    "),
        ]
    return [f"{indent}Public Key Algorithm: {type(pub).__name__}"]


def _general_name(gn: x509.GeneralName) -> str:
    if isinstance(gn, x509.DNSName):
        return f"DNS:{gn.value}"
    if isinstance(gn, x509.IPAddress):
        return f"IP Address:{gn.value}"
    if isinstance(gn, x509.RFC822Name):
        return f"email:{gn.value}"
    if isinstance(gn, x509.UniformResourceIdentifier):
        return f"URI:{gn.value}"
    if isinstance(gn, x509.DirectoryName):
        return f"DirName:{name_text(gn.value)}"
    if isinstance(gn, x509.RegisteredID):
        return f"Registered ID:{gn.value.dotted_string}"
    if isinstance(gn, x509.OtherName):
        return f"othername:{gn.type_id.dotted_string}:{gn.value.hex()}"
    return str(gn)


def key_usage_names(ku: x509.KeyUsage) -> list[str]:
    """The names of the bits set in a key usage extension."""
    names = []
    for attr, label in KEY_USAGES:
        try:
            if getattr(ku, attr):
                names.append(label)
        except ValueError:  # encipher/decipher_only without key_agreement
            continue
    return names


def _ext_body(ext: x509.Extension[x509.ExtensionType]) -> list[str]:
    v = ext.value
    if isinstance(v, x509.KeyUsage):
        return [", ".join(key_usage_names(v))]
    if isinstance(v, x509.ExtendedKeyUsage):
        return [", ".join(EKU_NAMES.get(o, o.dotted_string) for o in v)]
    if isinstance(v, x509.SubjectKeyIdentifier):
        return [_hexcolon(v.digest)]
    if isinstance(v, x509.AuthorityKeyIdentifier):
        out = [f"keyid:{_hexcolon(v.key_identifier)}"] if v.key_identifier else []
        for gn in v.authority_cert_issuer or []:
            out.append(_general_name(gn))
        if v.authority_cert_serial_number is not None:
            out.append(f"serial:{v.authority_cert_serial_number:X}")
        return out
    if isinstance(v, x509.SubjectAlternativeName | x509.IssuerAlternativeName):
        return [", ".join(_general_name(g) for g in v)]
    if isinstance(v, x509.BasicConstraints):
        text = "CA:TRUE" if v.ca else "CA:FALSE"
        return [text + (f", pathlen:{v.path_length}" if v.path_length is not None else "")]
    if isinstance(v, x509.CRLDistributionPoints):
        return [_general_name(g) for dp in v for g in (dp.full_name or [])]
    if isinstance(v, x509.AuthorityInformationAccess):
        names = {"1.3.6.1.5.5.7.48.1": "OCSP", "1.3.6.1.5.5.7.48.2": "CA Issuers"}
        return [
            f"{names.get(d.access_method.dotted_string, d.access_method.dotted_string)} - "
            f"{_general_name(d.access_location)}"
            for d in v
        ]
    if isinstance(v, x509.CertificatePolicies):
        return [f"Policy: {p.policy_identifier.dotted_string}" for p in v]
    if isinstance(v, x509.NameConstraints):
        out = []
        for label, trees in (("Permitted", v.permitted_subtrees), ("Excluded", v.excluded_subtrees)):
            if trees:
                out.append(f"{label}:")
                out += [f"  {_general_name(g)}" for g in trees]
        return out
    if isinstance(v, x509.UnrecognizedExtension):
        if ext.oid == PROVISIONER_OID:
            try:
                kind, name, cred = extensions.decode(v.value)
                return [
                    f"Type: {PROVISIONER_TYPES.get(kind, str(kind))}",
                    f"Name: {name}",
                    f"CredentialID: {cred}",
                ]
            except ValueError:
                pass
        return [v.value.hex(":")]
    try:
        return [v.public_bytes().hex(":")]
    except Exception:
        return [str(v)]


def _extension_lines(obj: X509Object, indent: str) -> list[str]:
    lines = []
    for ext in _extensions(obj):
        label = EXTENSION_NAMES.get(ext.oid, ext.oid.dotted_string)
        lines.append(f"{indent}{label}:" + (" critical" if ext.critical else ""))
        lines += [f"{indent}    {line}" for line in _ext_body(ext)]
    return lines


def full_text(obj: X509Object) -> str:
    """The whole certificate or CSR, readably (openssl ``-text`` / step certinfo style)."""
    sig = [
        f"    Signature Algorithm: {signature_algorithm_name(obj)}",
        *_hexlines(obj.signature, "         ", 18),
    ]
    exts = _extension_lines(obj, "            ")
    if isinstance(obj, x509.CertificateSigningRequest):
        lines = [
            "Certificate Request:",
            "    Data:",
            "        Version: 0 (0x0)",
            f"        Subject: {name_text(obj.subject)}",
            "        Subject Public Key Info:",
            *_public_key_lines(obj.public_key(), "            "),
        ]
        if exts:
            lines += ["        Requested Extensions:", *exts]
        return "\n".join(lines + sig)
    version = 3 if obj.version == x509.Version.v3 else 1
    lines = [
        "Certificate:",
        "    Data:",
        f"        Version: {version} (0x{version - 1:x})",
        f"        Serial Number: {obj.serial_number} (0x{obj.serial_number:x})",
        f"    Signature Algorithm: {signature_algorithm_name(obj)}",
        f"        Issuer: {name_text(obj.issuer)}",
        "        Validity",
        f"            Not Before: {_text_time(obj.not_valid_before_utc)}",
        f"            Not After : {_text_time(obj.not_valid_after_utc)}",
        f"        Subject: {name_text(obj.subject)}",
        "        Subject Public Key Info:",
        *_public_key_lines(obj.public_key(), "            "),
    ]
    if exts:
        lines += ["        X509v3 extensions:", *exts]
    return "\n".join(lines + sig)


# --- JSON ---------------------------------------------------------------------------------------


def _public_key_json(pub: object) -> dict[str, Any]:
    if isinstance(pub, ec.EllipticCurvePublicKey):
        nums = pub.public_numbers()
        size = (pub.curve.key_size + 7) // 8
        return {
            "key_algorithm": {"name": "ECDSA"},
            "ecdsa_public_key": {
                "curve": describe_key(pub).removeprefix("ECDSA "),
                "length": pub.curve.key_size,
                "x": base64.b64encode(nums.x.to_bytes(size, "big")).decode(),
                "y": base64.b64encode(nums.y.to_bytes(size, "big")).decode(),
            },
        }
    if isinstance(pub, rsa.RSAPublicKey):
        nums = pub.public_numbers()
        modulus = nums.n.to_bytes((pub.key_size + 7) // 8, "big")
        return {
            "key_algorithm": {"name": "RSA"},
            "rsa_public_key": {
                "exponent": nums.e,
                "length": pub.key_size,
                "modulus": base64.b64encode(modulus).decode(),
            },
        }
    if isinstance(pub, ed25519.Ed25519PublicKey):
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"key_algorithm": {"name": "Ed25519"}, "ed25519_public_key": base64.b64encode(raw).decode()}
    return {"key_algorithm": {"name": type(pub).__name__}}


def _extensions_json(obj: X509Object) -> dict[str, Any]:
    out: dict[str, Any] = {}
    unknown = []
    for ext in _extensions(obj):
        v = ext.value
        if isinstance(v, x509.KeyUsage):
            ku: dict[str, Any] = {}
            for attr, _ in KEY_USAGES:
                try:
                    if getattr(v, attr):
                        ku[attr] = True
                except ValueError:
                    continue
            out["key_usage"] = ku
        elif isinstance(v, x509.ExtendedKeyUsage):
            eku: dict[str, Any] = {}
            for o in v:
                if o in EKU_JSON:
                    eku[EKU_JSON[o]] = True
                else:
                    eku.setdefault("unknown", []).append(o.dotted_string)
            out["extended_key_usage"] = eku
        elif isinstance(v, x509.SubjectKeyIdentifier):
            out["subject_key_id"] = v.digest.hex()
        elif isinstance(v, x509.AuthorityKeyIdentifier):
            out["authority_key_id"] = v.key_identifier.hex() if v.key_identifier else ""
        elif isinstance(v, x509.SubjectAlternativeName):
            out["subject_alt_name"] = {
                "dns_names": [str(x) for x in v.get_values_for_type(x509.DNSName)],
                "ip_addresses": [str(x) for x in v.get_values_for_type(x509.IPAddress)],
                "email_addresses": [str(x) for x in v.get_values_for_type(x509.RFC822Name)],
                "uniform_resource_identifiers": [
                    str(x) for x in v.get_values_for_type(x509.UniformResourceIdentifier)
                ],
            }
        elif isinstance(v, x509.BasicConstraints):
            out["basic_constraints"] = {"is_ca": v.ca, "max_path_len": v.path_length}
        elif ext.oid == PROVISIONER_OID and isinstance(v, x509.UnrecognizedExtension):
            try:
                kind, name, cred = extensions.decode(v.value)
                out["step_provisioner"] = {
                    "type": PROVISIONER_TYPES.get(kind, str(kind)),
                    "name": name,
                    "credential_id": cred,
                }
            except ValueError:
                unknown.append(
                    {"id": ext.oid.dotted_string, "critical": ext.critical, "value": v.value.hex()}
                )
        else:
            lines = _ext_body(ext)
            unknown.append(
                {
                    "id": ext.oid.dotted_string,
                    "name": EXTENSION_NAMES.get(ext.oid, ""),
                    "critical": ext.critical,
                    "value": lines if len(lines) != 1 else lines[0],
                }
            )
    if unknown:
        out["other"] = unknown
    return out


def to_json(obj: X509Object) -> dict[str, Any]:
    """A JSON-ready dict of the certificate or CSR fields (zcrypto/step-like key names)."""
    base: dict[str, Any] = {
        "subject": _name_json(obj.subject),
        "subject_dn": name_text(obj.subject),
        "subject_key_info": _public_key_json(obj.public_key()),
        "extensions": _extensions_json(obj),
        "signature_algorithm": {
            "name": signature_algorithm_name(obj),
            "oid": obj.signature_algorithm_oid.dotted_string,
        },
        "signature": {"value": base64.b64encode(obj.signature).decode()},
        "names": san_strings(obj),
    }
    if isinstance(obj, x509.CertificateSigningRequest):
        return {"version": 0, **base, "signature": {**base["signature"], "valid": obj.is_signature_valid}}
    encoded = obj.public_bytes(serialization.Encoding.DER)
    nb, na = obj.not_valid_before_utc, obj.not_valid_after_utc
    return {
        "version": 3 if obj.version == x509.Version.v3 else 1,
        "serial_number": str(obj.serial_number),
        "serial_number_hex": f"{obj.serial_number:x}",
        "issuer": _name_json(obj.issuer),
        "issuer_dn": name_text(obj.issuer),
        "validity": {"start": rfc3339(nb), "end": rfc3339(na), "length": int((na - nb).total_seconds())},
        **base,
        "signature": {**base["signature"], "self_signed": _is_self_signed(obj)},
        "fingerprint_sha256": hashlib.sha256(encoded).hexdigest(),
    }


# --- parsing ------------------------------------------------------------------------------------


def parse_objects(data: bytes, name: str = "input") -> list[X509Object]:
    """Certificates and CSRs in ``data``: PEM blocks in order, or one DER certificate/CSR."""
    if b"-----BEGIN" in data:
        out: list[X509Object] = []
        for kind, block in pem_blocks(data):
            try:
                if kind == "CERTIFICATE":
                    out.append(x509.load_pem_x509_certificate(block))
                elif kind in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
                    out.append(x509.load_pem_x509_csr(block))
            except ValueError as e:
                raise CLIError(f"error parsing {name}: invalid {kind.lower()}") from e
        if not out:
            raise CLIError(f"error decoding {name}: no certificate or certificate request found")
        return out
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        pass
    try:
        return [x509.load_der_x509_csr(data)]
    except ValueError as e:
        raise CLIError(f"error parsing {name}: not a certificate or certificate request") from e

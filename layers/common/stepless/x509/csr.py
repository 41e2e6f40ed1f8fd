"""Parse and check a certificate signing request: PEM, signature, key type and size, SANs."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import warnings

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from stepless.errors import BadRequest, InvalidCSR

_CURVES = {"secp256r1", "secp384r1", "secp521r1"}
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
MAX_SANS = 100
_BREAKS = re.compile(r"[\x00\r\n]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
IP_ADDRESSES = (ipaddress.IPv4Address, ipaddress.IPv6Address)
_SUPPORTED = (x509.DNSName, x509.IPAddress, x509.RFC822Name, x509.UniformResourceIdentifier)
_SUPPORTED_TYPES = "only DNS names, IP addresses, email addresses and URIs"
_TYPE_NAMES = {x509.OtherName: "otherName", x509.RegisteredID: "registeredID", x509.DirectoryName: "directoryName"}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# A CSR may carry a CN longer than RFC 5280's 64 (step's Go CLI builds them): reading it is fine (the leaf
# leaves it out, tbs.subject_common_name); cryptography's warning about it would be a log line per request.
warnings.filterwarnings("ignore", message="Attribute's length must be", category=UserWarning)


def ascii_lower(name: str) -> str:
    """DNS case folding: A-Z only. ``str.lower`` would fold e.g. KELVIN SIGN (U+212A) to an ASCII 'k',
    making a token's non-ASCII name equal to a different ASCII one."""
    return name.translate(_ASCII_LOWER)


SAN_TYPES = {"dns": "DNS names", "ips": "IP addresses", "emails": "email addresses", "uris": "URIs"}


MAX_DNS_NAME = 253  # RFC 1035 (in text form, without the final dot)
MAX_DNS_LABEL = 63
MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1


def _dns_in_bounds(name: str) -> bool:
    name = name.removesuffix(".")
    return len(name) <= MAX_DNS_NAME and all(len(label) <= MAX_DNS_LABEL for label in name.split("."))


@dataclasses.dataclass(frozen=True)
class SANs:
    """Subject alternative names split by type (step's SplitSANs)."""

    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()

    @classmethod
    def split(cls, names: list[str] | tuple[str, ...]) -> SANs:
        """Type each name like step does: IP, email (has @), URI (has ://), else DNS."""
        dns, ips, emails, uris = [], [], [], []
        for name in names:
            if ":" in name or name[:1].isdigit():  # every IP address has one or the other
                try:
                    ips.append(str(ipaddress.ip_address(name)))
                    continue
                except ValueError:
                    pass
            if "://" in name:
                uris.append(name)
            elif "@" in name:
                emails.append(name)
            else:
                dns.append(ascii_lower(name))
        return cls(tuple(dns), tuple(ips), tuple(emails), tuple(uris))

    @classmethod
    def of(cls, obj: x509.Certificate | x509.CertificateSigningRequest) -> SANs:
        """The SANs of a certificate or CSR."""
        try:
            ext = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return cls()
        return cls._of(ext)

    @classmethod
    def _of(cls, ext: x509.SubjectAlternativeName) -> SANs:
        return cls(
            tuple(ascii_lower(n) for n in ext.get_values_for_type(x509.DNSName)),
            tuple(str(i) for i in ext.get_values_for_type(x509.IPAddress)),
            tuple(ext.get_values_for_type(x509.RFC822Name)),
            tuple(ext.get_values_for_type(x509.UniformResourceIdentifier)),
        )

    @classmethod
    def requested(cls, req: x509.CertificateSigningRequest) -> SANs:
        """A CSR's SANs, refusing (400) what no certificate of ours carries: an iPAddress that is a network
        (8 or 32 bytes: address and mask; Go's parser, hence step-ca, refuses it too) and the name types
        other than DNS, IP, email and URI (step-ca drops those silently; a requested name is never dropped
        here). ``read`` then checks the names themselves (:meth:`problem`)."""
        try:
            ext = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return cls()
        except x509.UnsupportedGeneralNameType as e:
            raise InvalidCSR(f"invalid csr: subject alternative names of type x400Address or ediPartyName "
                             f"are not supported ({_SUPPORTED_TYPES})") from e
        if not len(ext):  # RFC 5280: at least one name (cryptography 50 parses an empty sequence, 51 refuses it)
            raise InvalidCSR("invalid csr: the subject alternative name extension holds no names")
        for name in ext:
            if not isinstance(name, _SUPPORTED):
                kind = _TYPE_NAMES.get(type(name), type(name).__name__)
                raise InvalidCSR(f"invalid csr: subject alternative names of type {kind} are not supported "
                                 f"({_SUPPORTED_TYPES})")
            if isinstance(name, x509.IPAddress) and not isinstance(name.value, IP_ADDRESSES):
                raise InvalidCSR(f"invalid csr: IP address SAN {name.value} is a network (address and mask), "
                                 "not an address")
        return cls._of(ext)

    def problem(self) -> str | None:
        """Why these names cannot go into a certificate (RFC 5280: DNS names, emails and URIs are
        IA5String — a Unicode DNS name goes in its IDNA A-label form), or None."""
        for name in self.dns:
            if not name:
                return "a DNS name SAN is empty"
            if not name.isascii():
                return f"DNS name {name!r} is not ASCII: use its IDNA form{_a_label(name)}"
            if not _PRINTABLE.fullmatch(name):
                return f"DNS name {name!r} contains a space or a character that is not printable ASCII"
            if not _dns_in_bounds(name):  # no host has it, and the certificate would be malformed
                return (f"DNS name {name[:80]!r} is longer than DNS allows ({MAX_DNS_NAME} characters, "
                        f"{MAX_DNS_LABEL} per label)")
        for name in self.emails:
            if not name:
                return "an email address SAN is empty"
            if not name.isascii() or not _PRINTABLE.fullmatch(name):
                return f"email address {name!r} is not printable ASCII (RFC 5280 rfc822Name)"
            local, _, domain = name.rpartition("@")
            if not local or not domain:
                return f"email address {name!r} is not of the form local@domain"
            if len(local) > MAX_LOCAL_PART or not _dns_in_bounds(domain):
                return (f"email address {name[:80]!r} is longer than SMTP allows ({MAX_LOCAL_PART} characters "
                        f"before the @, {MAX_DNS_NAME} after)")
        for name in self.uris:
            if not name:
                return "a URI SAN is empty"
            if not name.isascii() or not _PRINTABLE.fullmatch(name):
                return f"URI {name!r} is not printable ASCII: percent-encode it"
            if not _URI_SCHEME.match(name):
                return f"URI {name!r} has no scheme"
        return None

    def names(self) -> list[str]:
        return [*self.dns, *self.ips, *self.emails, *self.uris]

    def mismatches(self, allowed: SANs) -> list[str]:
        """step-ca's per-type rule (its dnsNames/ipAddresses/emailAddresses/urisValidator): the types for
        which these requested names differ from ``allowed``'s. A type with no requested names passes; a
        type with names must equal the allowed names of that type as a set (extra or missing names fail)."""
        return [kind for kind in SAN_TYPES
                if getattr(self, kind) and set(getattr(self, kind)) != set(getattr(allowed, kind))]

    def general_names(self) -> list[x509.GeneralName]:
        return [
            *(x509.DNSName(n) for n in self.dns),
            *(x509.IPAddress(ipaddress.ip_address(n)) for n in self.ips),
            *(x509.RFC822Name(n) for n in self.emails),
            *(x509.UniformResourceIdentifier(n) for n in self.uris),
        ]


def _a_label(name: str) -> str:
    """`` 'xn--…'`` (the IDNA form of a Unicode DNS name) for a message, or '' when it has none."""
    try:
        return f" {name.encode('idna').decode()!r}"
    except UnicodeError:
        return ""


def check_public_key(key: object) -> None:
    """Accept EC P-256/384/521, RSA 2048–8192 and Ed25519; anything else is a 400 with the reason."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            raise BadRequest(f"unsupported elliptic curve {key.curve.name}; use P-256, P-384 or P-521",
                             reason="unsupported_key")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise BadRequest(f"RSA key of {key.key_size} bits is too small; at least {MIN_RSA_BITS} bits are required")
        if key.key_size > MAX_RSA_BITS:
            raise BadRequest(f"RSA key of {key.key_size} bits is too large; at most {MAX_RSA_BITS} bits")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise BadRequest(f"unsupported public key type {type(key).__name__.removeprefix('_')}",
                         reason="unsupported_key")


@dataclasses.dataclass(frozen=True)
class Request:
    """A checked CSR, and what issuance reads from it (read once)."""

    csr: x509.CertificateSigningRequest
    public_key: PublicKeyTypes
    sans: SANs
    common_name: str


def read(pem: object) -> Request:
    """A CSR whose PEM parses, whose signature verifies and whose key is acceptable."""
    if not isinstance(pem, str) or not pem.strip():
        raise InvalidCSR("missing csr")
    if "-----BEGIN CERTIFICATE REQUEST-----" not in pem and "-----BEGIN NEW CERTIFICATE REQUEST-----" not in pem:
        raise InvalidCSR("invalid csr: not a PEM certificate request")
    try:
        req = x509.load_pem_x509_csr(pem.encode())
        valid = req.is_signature_valid
        key = req.public_key()
    except (ValueError, TypeError) as e:
        raise InvalidCSR(f"invalid csr: {str(e).splitlines()[0][:120]}") from e
    except Exception as e:  # unsupported algorithms surface as various exception types
        raise InvalidCSR("invalid csr: unsupported key or signature algorithm") from e
    if not valid:
        raise InvalidCSR("invalid csr: signature does not verify")
    check_public_key(key)
    try:
        sans, cn = SANs.requested(req), common_name(req)
    except (ValueError, x509.DuplicateExtension) as e:
        raise InvalidCSR(f"invalid csr: {e}") from e
    names = sans.names()
    if len(names) > MAX_SANS:
        raise InvalidCSR(f"invalid csr: more than {MAX_SANS} subject alternative names")
    if any(map(_BREAKS.search, names)):
        raise InvalidCSR("invalid csr: subject alternative names may not contain control characters")
    problem = sans.problem()
    if problem:
        raise InvalidCSR(f"invalid csr: {problem}")
    return Request(req, key, sans, cn)


def check_names(names: list[str]) -> None:
    """400 unless every name going into a certificate (CN, SANs) is free of control characters and is
    text UTF-8 can encode (a JSON token may carry lone surrogates)."""
    for name in names:
        if _CONTROL.search(name):
            raise BadRequest(f"certificate name {name!r} may not contain control characters")
        if not name.isascii():
            try:
                name.encode()
            except UnicodeEncodeError as e:
                raise BadRequest(f"certificate name {name!r} is not valid Unicode text") from e


def common_name(req: x509.CertificateSigningRequest) -> str:
    """The CSR subject's common name, or ''."""
    attrs = req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""

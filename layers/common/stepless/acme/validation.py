"""Challenge validation from the function: http-01 (RFC 8555 §8.3), dns-01 (§8.4), tls-alpn-01 (RFC 8737).

Production reaches ``<domain>:80`` / ``<domain>:443`` and the system resolver. For the local CA and the tests
only (as Pebble does), environment variables change that — never set in the template:
``STEPLESS_ACME_HTTP01_PORT``, ``STEPLESS_ACME_TLSALPN01_PORT``, ``STEPLESS_ACME_DNS_RESOLVER`` (``host:port``),
``STEPLESS_ACME_VALIDATION_HOST`` (connect there instead of resolving the identifier; the Host header / SNI
still name it).
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import secrets
import socket
import ssl
import struct

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from stepless import jose
from stepless.acme.errors import AcmeError
from stepless.acme.messages import Identifier

TIMEOUT_S = 5.0
MAX_RESPONSE = 8192
ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")
HTTP01_PORT, TLSALPN01_PORT = "STEPLESS_ACME_HTTP01_PORT", "STEPLESS_ACME_TLSALPN01_PORT"
DNS_RESOLVER, VALIDATION_HOST = "STEPLESS_ACME_DNS_RESOLVER", "STEPLESS_ACME_VALIDATION_HOST"


def key_authorization(token: str, thumbprint: str) -> str:
    return f"{token}.{thumbprint}"


def _port(var: str, default: int) -> int:
    value = os.environ.get(var, "")
    return int(value) if value.isdigit() else default


def _target(ident: Identifier) -> str:
    return os.environ.get(VALIDATION_HOST) or ident.value


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def http01(ident: Identifier, token: str, key_auth: str) -> None:
    """GET http://<identifier>:<port>/.well-known/acme-challenge/<token> must answer the key authorization
    (no redirects followed)."""
    port = _port(HTTP01_PORT, 80)
    conn = http.client.HTTPConnection(_target(ident), port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", f"/.well-known/acme-challenge/{token}",
                     headers={"Host": f"{_url_host(ident.value)}:{port}" if port != 80 else _url_host(ident.value),
                              "User-Agent": "stepless-acme", "Accept": "*/*"})
        res = conn.getresponse()
        body = res.read(MAX_RESPONSE + 1)
    except (OSError, http.client.HTTPException) as e:
        raise AcmeError("connection", f"http-01: cannot reach {ident.value}:{port}: {type(e).__name__}") from e
    finally:
        conn.close()
    if res.status != 200:
        raise AcmeError("incorrectResponse", f"http-01: {ident.value} answered HTTP {res.status}")
    if body.strip().decode(errors="replace") != key_auth:
        raise AcmeError("incorrectResponse", "http-01: the key authorization does not match")


def tlsalpn01(ident: Identifier, key_auth: str) -> None:
    """A TLS handshake with SNI = the identifier and ALPN ``acme-tls/1``: the certificate must name only the
    identifier and carry the critical id-pe-acmeIdentifier extension = SHA-256(key authorization)."""
    port = _port(TLSALPN01_PORT, 443)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["acme-tls/1"])
    # RFC 8738 §6: an IP identifier's SNI is its reverse-DNS name
    sni = ident.value if ident.type == "dns" else ipaddress.ip_address(ident.value).reverse_pointer
    try:
        with socket.create_connection((_target(ident), port), timeout=TIMEOUT_S) as raw, \
                ctx.wrap_socket(raw, server_hostname=sni) as tls:
            alpn, der = tls.selected_alpn_protocol(), tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as e:
        raise AcmeError("tls", f"tls-alpn-01: handshake with {ident.value}:{port} failed: {type(e).__name__}") from e
    if alpn != "acme-tls/1" or not der:
        raise AcmeError("tls", "tls-alpn-01: the server did not negotiate acme-tls/1")
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    except x509.ExtensionNotFound as e:
        raise AcmeError("incorrectResponse", "tls-alpn-01: the certificate lacks the SAN or acmeIdentifier "
                                             "extension") from e
    names = [str(n) for n in san.get_values_for_type(x509.DNSName)] + \
            [str(n) for n in san.get_values_for_type(x509.IPAddress)]
    if names != [ident.value] or len(list(san)) != 1:
        raise AcmeError("incorrectResponse", "tls-alpn-01: the certificate must name exactly the identifier")
    expected = b"\x04\x20" + hashlib.sha256(key_auth.encode()).digest()  # DER OCTET STRING of the digest
    if not ext.critical or ext.value.value != expected:
        raise AcmeError("incorrectResponse", "tls-alpn-01: the acmeIdentifier extension does not match")


def dns01(ident: Identifier, key_auth: str) -> None:
    """A TXT record at ``_acme-challenge.<domain>`` must be base64url(SHA-256(key authorization))."""
    expected = jose.b64e(hashlib.sha256(key_auth.encode()).digest())
    name = "_acme-challenge." + ident.value.removeprefix("*.")
    if expected not in txt_records(name):
        raise AcmeError("incorrectResponse", f"dns-01: no TXT record at {name} has the expected value")


def _resolver() -> tuple[str, int]:
    value = os.environ.get(DNS_RESOLVER, "")
    if value:
        host, _, port = value.rpartition(":")
        return host.strip("[]"), int(port)
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return parts[1], 53
    except OSError:
        pass
    return "127.0.0.1", 53


def _qname(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\x00"


def _skip_name(data: bytes, i: int) -> int:
    while True:
        n = data[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1


def txt_records(name: str) -> list[str]:
    """The TXT strings of ``name`` (one UDP query, recursion desired; each record's strings joined)."""
    host, port = _resolver()
    qid = secrets.randbelow(65536)
    query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _qname(name) + struct.pack(">HH", 16, 1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(TIMEOUT_S)
            s.sendto(query, (host, port))
            data = s.recv(4096)
    except OSError as e:
        raise AcmeError("dns", f"dns-01: TXT lookup of {name} failed: {type(e).__name__}") from e
    try:
        rid, flags, qd, an = struct.unpack(">HHHH", data[:8])
        if rid != qid:
            raise AcmeError("dns", "dns-01: the DNS answer does not match the query")
        if flags & 0x000F not in (0, 3):
            raise AcmeError("dns", f"dns-01: the DNS server answered rcode {flags & 0x000F}")
        i = 12
        for _ in range(qd):
            i = _skip_name(data, i) + 4
        out = []
        for _ in range(an):
            i = _skip_name(data, i)
            rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", data[i:i + 10])
            i += 10
            rdata, i = data[i:i + rdlen], i + rdlen
            if rtype == 16:
                parts, j = [], 0
                while j < len(rdata):
                    n = rdata[j]
                    parts.append(rdata[j + 1:j + 1 + n].decode(errors="replace"))
                    j += n + 1
                out.append("".join(parts))
        return out
    except (struct.error, IndexError) as e:
        raise AcmeError("dns", "dns-01: the DNS answer is malformed") from e

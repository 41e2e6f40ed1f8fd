"""The local gateway's HTTP framing, driven over raw TLS sockets: every malformed length is a 400 with an
answer, a chunked body is decoded (never read as a second request), a refused body closes the connection,
and a stalled client holds neither a thread forever nor the accept loop."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stepless.local import gateway
from stepless.local.template import Route

HANDLER = '''
import json
CALLS = []

def handler(event, context):
    CALLS.append(event["rawPath"])
    body = {"path": event["rawPath"], "body": event["body"], "calls": len(CALLS)}
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    gw = make_gateway(tmp_path_factory.mktemp("gw"))
    gw.start()
    yield gw.server_address[0], gw.server_address[1]
    gw.shutdown()
    gw.server_close()


def make_gateway(root: Path, **kwargs) -> gateway.Gateway:
    """A gateway over one echo route, with its own self-signed TLS certificate."""
    (root / "echo").mkdir()
    (root / "echo" / "app.py").write_text(HANDLER)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    crt, pem_key = root / "gw.crt", root / "gw.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    routes = [Route("Echo", method, "/echo", "echo", "app.handler") for method in ("POST", "GET")]
    return gateway.Gateway(("127.0.0.1", 0), routes, Path(root), gateway.tls_context(str(crt), str(pem_key), str(crt)),
                           **kwargs)


def connect(server: tuple[str, int], timeout: float = 10) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    sock = socket.create_connection(server, timeout=timeout)
    return ctx.wrap_socket(sock, server_hostname="localhost")


def exchange(server: tuple[str, int], raw: bytes, timeout: float = 10) -> bytes:
    """Send ``raw`` and read until the server closes the connection (or ``timeout``: a socket.timeout)."""
    with connect(server, timeout) as s:
        s.sendall(raw)
        out = b""
        while True:
            try:
                data = s.recv(65536)
            except ssl.SSLError:  # the server's close without close_notify
                break
            if not data:
                break
            out += data
    return out


def responses(raw: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of each HTTP/1.1 response in ``raw`` (Content-Length framed)."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        fields = dict((k.lower(), v) for k, _, v in (line.partition(b":") for line in lines[1:]))
        length = int(fields[b"content-length"])
        out.append((status, rest[:length]))
        raw = rest[length:]
    return out


def request(headers: str, body: bytes = b"", method: str = "POST") -> bytes:
    head = f"{method} /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{headers}\r\n"
    return head.encode() + body


SMUGGLED = b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "1_0", " 0x10", "\u0665", "5, 5", ""])
def test_malformed_content_length_is_a_400(server, value: str) -> None:
    """``abc`` used to drop the connection with no answer; ``-1`` hung a thread reading to EOF."""
    raw = f"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: {value}\r\n\r\n".encode() + b"hello"
    start = time.monotonic()
    got = responses(exchange(server, raw, timeout=5))
    assert time.monotonic() - start < 5
    assert [status for status, _ in got] == [400], got
    assert "Content-Length" in json.loads(got[0][1])["message"]


def test_duplicate_content_length_is_a_400(server) -> None:
    got = responses(exchange(server, request("Content-Length: 2\r\nContent-Length: 40\r\n", b"{}" + SMUGGLED)))
    assert [status for status, _ in got] == [400]


def test_chunked_body_is_decoded_not_read_as_a_request(server) -> None:
    """The chunks' data is the body; a request-looking payload inside it never runs."""
    payload = b'{"a":1}' + b"\r\n" + SMUGGLED
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:5], payload[5:])) + b"0\r\n\r\n"
    got = responses(exchange(server, request("Transfer-Encoding: chunked\r\nConnection: close\r\n", chunked)))
    assert len(got) == 1 and got[0][0] == 200, got
    assert json.loads(got[0][1])["body"] == payload.decode()


def test_chunked_keeps_the_connection_for_the_next_request(server) -> None:
    chunked = b"2\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n"
    got = responses(exchange(server, request("Transfer-Encoding: chunked\r\n", chunked)
                             + request("Content-Length: 2\r\nConnection: close\r\n", b"[]")))
    assert [(s, json.loads(b)["body"]) for s, b in got] == [(200, "{}"), (200, "[]")]


@pytest.mark.parametrize(("headers", "body"), [
    ("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", b"0\r\n\r\n" + SMUGGLED),  # CL.TE / TE.CL
    ("Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n" + SMUGGLED),
    ("Transfer-Encoding: chunked\r\n", b"zz\r\nab\r\n0\r\n\r\n" + SMUGGLED),  # not hex
    ("Transfer-Encoding: chunked\r\n", b"0x2\r\nab\r\n0\r\n\r\n" + SMUGGLED),  # int(..., 16) would take it
    ("Transfer-Encoding: chunked\r\n", b"2\r\nabcd\r\n0\r\n\r\n" + SMUGGLED),  # chunk longer than its size
    ("Transfer-Encoding: chunked\r\n", b"2\nab\n0\n\n" + SMUGGLED),  # bare LF
])
def test_ambiguous_or_malformed_chunked_is_refused_and_closed(server, headers: str, body: bytes) -> None:
    got = responses(exchange(server, request(headers, body)))
    assert [status for status, _ in got] == [400], got


def test_a_body_over_the_limit_is_413_and_never_parsed_as_a_request(server, monkeypatch) -> None:
    monkeypatch.setattr(gateway, "MAX_BODY", 64)
    body = b"x" * 40 + SMUGGLED
    got = responses(exchange(server, request(f"Content-Length: {len(body)}\r\n", body)))
    assert [status for status, _ in got] == [413]
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    got = responses(exchange(server, request("Transfer-Encoding: chunked\r\n", chunked)))
    assert [status for status, _ in got] == [413]


def test_a_short_body_times_out_instead_of_holding_a_thread(server, monkeypatch) -> None:
    assert 0 < gateway._Handler.timeout <= 60  # a connection that stalls is closed (none was before)
    monkeypatch.setattr(gateway._Handler, "timeout", 1)
    start = time.monotonic()
    exchange(server, request("Content-Length: 100\r\n", b"{}"), timeout=10)  # the server closes the connection
    assert time.monotonic() - start < 5


def test_a_client_that_never_handshakes_does_not_stop_the_gateway(server) -> None:
    """The TLS handshake runs in the connection's thread: a silent TCP client blocks nobody else."""
    with socket.create_connection(server, timeout=10):
        got = responses(exchange(server, request("Content-Length: 2\r\nConnection: close\r\n", b"{}"), timeout=5))
    assert [status for status, _ in got] == [200]


def test_oversized_header_line_is_refused(server) -> None:
    got = responses(exchange(server, request("X-Big: " + "a" * 70_000 + "\r\nContent-Length: 0\r\n")))
    assert [status for status, _ in got] == [431]


def closed_by_server(sock: ssl.SSLSocket) -> bool:
    """Whether the server has closed ``sock`` (waits up to its timeout for a sign)."""
    try:
        return sock.recv(1) == b""
    except (ssl.SSLError, ConnectionError):
        return True
    except TimeoutError:
        return False


def test_a_request_trickled_byte_by_byte_is_cut_off_at_the_deadline(server, monkeypatch) -> None:
    """Slowloris: one byte every 29 s of a 30 s per-read timeout kept a thread forever; the whole request
    must now arrive within the timeout (here 1.5 s, a byte every 0.3 s)."""
    monkeypatch.setattr(gateway._Handler, "timeout", 1.5)
    raw = request("Content-Length: 2\r\n", b"{}") * 10
    with connect(server) as s:
        s.settimeout(0.3)
        start = time.monotonic()
        for i in range(len(raw)):
            try:
                s.sendall(raw[i:i + 1])
            except OSError:
                break
            if closed_by_server(s):
                break
        elapsed = time.monotonic() - start
    assert 1.2 < elapsed < 4, elapsed  # cut off at the deadline, not after the whole trickle


def test_a_trickled_body_is_cut_off_too(server, monkeypatch) -> None:
    monkeypatch.setattr(gateway._Handler, "timeout", 1.5)
    with connect(server) as s:
        s.sendall(request("Content-Length: 100\r\n"))
        s.settimeout(0.3)
        start = time.monotonic()
        while not closed_by_server(s):
            s.sendall(b"x")
            assert time.monotonic() - start < 4
    assert time.monotonic() - start > 1


def test_connections_past_the_cap_get_a_503_and_a_slot_frees_when_one_closes(tmp_path) -> None:
    """One thread per connection had no cap: idle or trickling clients could exhaust the process."""
    gw = make_gateway(tmp_path, max_connections=2)
    gw.start()
    addr = gw.server_address[:2]
    try:
        holders = [connect(addr) for _ in range(2)]  # handshaken, sending nothing: each holds a thread
        time.sleep(0.2)
        got = responses(exchange(addr, request("Content-Length: 2\r\n", b"{}"), timeout=5))
        assert got == [(503, b'{"message":"Service Unavailable: too many connections"}')]
        holders.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the freed slot serves the next connection
            got = responses(exchange(addr, request("Content-Length: 2\r\nConnection: close\r\n", b"{}"), timeout=5))
            if got[0][0] == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert [status for status, _ in got] == [200]
        for h in holders:
            h.close()
    finally:
        gw.shutdown()
        gw.server_close()

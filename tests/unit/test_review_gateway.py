"""Review findings in the local gateway's HTTP handling (raw TLS sockets, as tests/unit/test_gateway_http.py)."""

from __future__ import annotations

from tests.unit.test_gateway_http import connect, server  # noqa: F401 - the module-scoped gateway fixture


def test_a_head_answer_has_no_body_so_the_next_pipelined_answer_stays_framed(server) -> None:  # noqa: F811
    """HEAD is routed like any method (404 here, as API Gateway answers an undeclared route), but its answer
    must carry no body (RFC 9110 §9.3.2): a client reads none, so the body bytes were taken as the start of
    the next response on the connection (response desynchronisation)."""
    with connect(server) as s:
        s.sendall(b"HEAD /echo HTTP/1.1\r\nHost: localhost\r\n\r\n"
                  b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        raw = b""
        while True:
            data = s.recv(65536)
            if not data:
                break
            raw += data
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404")
    assert b"content-length: 23" in head.lower()  # the length a GET would have, without its bytes
    assert rest.startswith(b"HTTP/1.1 200"), rest[:80]  # the second answer starts right after the headers

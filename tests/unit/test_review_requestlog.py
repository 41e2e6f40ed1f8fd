"""Review finding: the readable dev log printed request paths (and logged fields) raw to the terminal.

``GET /ocsp/<anything>`` is routed whatever follows, so one unauthenticated request line carrying ESC
sequences reached the operator's terminal: retitle it, recolour or clear the screen, hide the lines above,
or (terminals that honour OSC 52) write the clipboard. Control characters are now shown escaped.
"""

from __future__ import annotations

import io

from stepless.local.requestlog import RequestLog


def test_control_characters_in_a_request_line_reach_the_terminal_escaped() -> None:
    out = io.StringIO()
    log = RequestLog(out)
    log.begin()
    log.end("GET", "/ocsp/\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J\r\x9b31m", 200, 1.0)
    line = out.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in line[:-1]), repr(line)
    assert "/ocsp/\\x1b]52;c;ZWNobyBwd25lZA==\\x07\\x1b[2J\\r\\x9b31m 200" in line

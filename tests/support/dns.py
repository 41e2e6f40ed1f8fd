"""A TXT-only DNS responder on 127.0.0.1 (UDP, a free port) for dns-01 tests: answers from a JSON file
``{"name": ["value", ...]}`` that hooks may write (certbot's manual auth hook runs in another process)."""

from __future__ import annotations

import json
import socket
import struct
import tempfile
import threading
from pathlib import Path


def _name(data: bytes, i: int) -> tuple[str, int]:
    labels = []
    while data[i]:
        n = data[i]
        labels.append(data[i + 1:i + 1 + n].decode())
        i += n + 1
    return ".".join(labels), i + 1


class TxtServer:
    def __init__(self) -> None:
        self.records_file = Path(tempfile.mkdtemp()) / "txt.json"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def records(self) -> dict[str, list[str]]:
        try:
            return json.loads(self.records_file.read_text())
        except (OSError, ValueError):
            return {}

    def _serve(self) -> None:
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            qid = data[:2]
            name, end = _name(data, 12)
            question = data[12:end + 4]
            answers = b""
            values = self.records().get(name.lower(), [])
            for value in values:
                raw = value.encode()
                rdata = bytes([len(raw)]) + raw
                answers += b"\xc0\x0c" + struct.pack(">HHIH", 16, 1, 60, len(rdata)) + rdata
            header = qid + struct.pack(">HHHHH", 0x8180 if values else 0x8183, 1, len(values), 0, 0)
            self.sock.sendto(header + question + answers, peer)

    def close(self) -> None:
        self._stop = True
        self.sock.close()

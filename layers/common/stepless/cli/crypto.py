"""``stepless crypto jwt inspect``: decode a compact JWT from standard input, as step prints it."""

from __future__ import annotations

import binascii
import json
import sys
from typing import Any

import click
from jwt.utils import base64url_decode

from stepless.cli.main import jwt
from stepless.errors import CLIError


def _segment(part: str, what: str) -> Any:
    try:
        raw = base64url_decode(part)
    except (binascii.Error, ValueError) as e:
        raise CLIError(f"error parsing token: invalid base64 in the {what}") from e
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CLIError(f"error parsing token: the {what} is not JSON") from e
    if not isinstance(value, dict):
        raise CLIError(f"error parsing token: the {what} is not a JSON object")
    return value


def decode_token(token: str) -> dict[str, Any]:
    """``{"header", "payload", "signature"}`` of a compact JWS, without verifying it."""
    token = token.strip()
    if not token:
        raise CLIError("error parsing token: no token given on standard input")
    parts = token.split(".")
    if len(parts) != 3:
        raise CLIError("error parsing token: compact JWS format must have three parts")
    if any(c.isspace() for c in token):
        raise CLIError("error parsing token: the token contains whitespace")
    header = _segment(parts[0], "header")
    payload = _segment(parts[1], "payload")
    try:
        base64url_decode(parts[2])
    except (binascii.Error, ValueError) as e:
        raise CLIError("error parsing token: invalid base64 in the signature") from e
    return {"header": header, "payload": payload, "signature": parts[2]}


@jwt.command("inspect")
@click.option("--insecure", is_flag=True, help="Required: the token is decoded, not verified.")
def inspect_cmd(insecure: bool) -> None:
    """Print the header, payload and signature of a JWT read from standard input (not verified)."""
    if not insecure:
        raise CLIError("'stepless crypto jwt inspect' requires the '--insecure' flag")
    try:
        data = sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError as e:
        raise CLIError("error parsing token: the token is not UTF-8 text") from e
    click.echo(json.dumps(decode_token(data), indent=2, sort_keys=True, ensure_ascii=False))

"""``stepless ca revoke``: revoke a certificate by serial (with a token) or by itself (mutual TLS)."""

from __future__ import annotations

import datetime as dt

import click

from stepless import clienthome
from stepless.cli import keys, options, tokens
from stepless.cli.client import CAClient
from stepless.cli.main import ca
from stepless.cli.renew import check_issued_under, mtls_client
from stepless.errors import CLIError


@ca.command("revoke")
@click.argument("serial", required=False)
@options.connection
@click.option("--cert", "cert_file", metavar="FILE", help="Revoke this certificate, authenticated by it (mTLS).")
@click.option("--key", "key_file", metavar="FILE", help="The private key of --cert.")
@options.token
@options.provisioner
@options.provisioner_password_file
@click.option("--reason", default="", help="The reason for the revocation.")
@click.option("--reasonCode", "--reason-code", "reason_code", type=int, default=0, help="RFC 5280 reason code.")
@click.option("--lineage", is_flag=True, help="Also revoke every certificate renewed from this one.")
def revoke_cmd(serial, ca_url, root, cert_file, key_file, token, provisioner, password_file, reason, reason_code,
               lineage) -> None:
    """Revoke a certificate: by SERIAL with a token, or with --cert/--key over mutual TLS."""
    url, root_file = clienthome.ca_url(ca_url), clienthome.root(root)
    body = {"reasonCode": reason_code, "reason": reason, "passive": True}
    if lineage:
        body["lineage"] = True
    if cert_file or key_file:
        if not (cert_file and key_file):
            raise CLIError("flags --cert and --key must be used together")
        if token:
            raise CLIError("flags --cert and --token are incompatible")
        chain = keys.load_certificates(cert_file)
        leaf = chain[0]
        serial = str(leaf.serial_number)
        check_issued_under(chain, root_file, cert_file)
        if dt.datetime.now(dt.UTC) > leaf.not_valid_after_utc:
            raise CLIError(f"the certificate in {cert_file} has expired, so the CA refuses it for mutual TLS: "
                           f"revoke it by serial with a token (stepless ca revoke {serial})")
        key = keys.load_private_key(key_file, None)
        client = mtls_client(url, root_file, cert_file, key)
        client.post("/revoke", {"serial": serial, **body})
    else:
        if not serial:
            raise CLIError("missing SERIAL (or use --cert and --key)")
        serial = normalize_serial(serial)
        client = CAClient(url, root_file)
        if not token:
            token = tokens.generate(client, root_file, tokens.TokenRequest("revoke", serial),
                                    tokens.Credentials(provisioner, password_file))
        client.post("/revoke", {"serial": serial, "ott": token, **body})
    click.echo(f"Certificate with Serial Number {serial} has been revoked.")


def normalize_serial(serial: str) -> str:
    """A decimal serial (hex accepted with a 0x prefix or colons)."""
    s = serial.strip()
    try:
        if s.lower().startswith("0x"):
            return str(int(s[2:], 16))
        if ":" in s:
            return str(int(s.replace(":", ""), 16))
        return str(int(s, 10))
    except ValueError as e:
        raise CLIError(f"invalid serial number {serial!r}") from e

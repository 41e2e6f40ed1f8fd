"""Flags shared by several commands, spelled as in step."""

from __future__ import annotations

from collections.abc import Callable

import click

ca_url = click.option("--ca-url", "ca_url", metavar="URI", help="The URI of the targeted Step Certificate Authority.")
root = click.option("--root", metavar="FILE", help="The path to the PEM file used as the root certificate authority.")
force = click.option("-f", "--force", is_flag=True, help="Force the overwrite of files without asking.")
provisioner = click.option("--provisioner", "--issuer", "provisioner", metavar="NAME",
                           help="The provisioner NAME to use.")
provisioner_password_file = click.option(
    "--provisioner-password-file", "--password-file", "password_file", metavar="FILE",
    help="The path to the FILE containing the password to decrypt the one-time token generating key.",
)
token = click.option("--token", metavar="TOKEN", help="The one-time TOKEN used to authenticate with the CA.")
not_before = click.option("--not-before", "not_before", metavar="TIME|DURATION", default="",
                          help="The time or duration (e.g. 5m) when the certificate validity period starts.")
not_after = click.option("--not-after", "not_after", metavar="TIME|DURATION", default="",
                         help="The time or duration (e.g. 24h) when the certificate validity period ends.")
san = click.option("--san", multiple=True, metavar="NAME",
                   help="Add a DNS name, IP address, email or URI Subject Alternative Name (repeatable).")
kty = click.option("--kty", default="EC", show_default=True, type=click.Choice(["EC", "RSA", "OKP"]),
                   help="The key type to create.")
crv = click.option("--crv", "--curve", "crv", default=None, help="The elliptic curve (P-256, P-384, P-521, Ed25519).")
stack = click.option(
    "--stack", "stack_name", default=None, metavar="NAME",
    help="The CloudFormation stack deployed from template.yaml [default: $STEPLESS_STACK; else the local CA "
         "that `stepless dev` runs; else stepless] (stepless.admin.target).",
)
size = click.option("--size", default=None, type=int, help="The RSA key size in bits.")


def compose(*decorators: Callable) -> Callable:
    """Apply several click options at once."""

    def apply(fn: Callable) -> Callable:
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return apply


connection = compose(ca_url, root)
x5c = compose(
    click.option("--x5c-cert", metavar="FILE", help="Certificate (chain) for an X5C provisioner token."),
    click.option("--x5c-key", metavar="FILE", help="The private key of --x5c-cert."),
    click.option("--console", is_flag=True, help="OIDC: print the login URL instead of opening a browser."),
)
key_flags = compose(kty, crv, size)

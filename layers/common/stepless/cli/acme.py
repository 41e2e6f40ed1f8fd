"""``stepless ca acme eab add PROVISIONER [REFERENCE]``: External Account Binding keys (administrator)."""

from __future__ import annotations

import click

from stepless.admin import acme as admin
from stepless.admin import target
from stepless.cli import options, ui
from stepless.cli.main import ca
from stepless.cli.provisioner import _emit


@ca.group("acme")
def acme() -> None:
    """ACME (RFC 8555) administration."""


@acme.group("eab")
def eab() -> None:
    """External Account Binding keys: a client registers an account only with one (requireEAB)."""


@eab.command("add")
@click.argument("provisioner")
@click.argument("reference", required=False, default="")
@options.stack
def add_cmd(provisioner: str, reference: str, stack_name: str | None) -> None:
    """Create an EAB key for the ACME PROVISIONER; prints its key id and HMAC key (shown once) as JSON."""
    target.use(stack_name)
    key = admin.add_eab_key(provisioner, reference)
    ui.done("EAB key", f"{key.key_id} for {provisioner}" + (f" ({reference})" if reference else ""))
    _emit({"provisioner": key.provisioner, "keyID": key.key_id, "hmacKey": key.hmac_key, "reference": reference})

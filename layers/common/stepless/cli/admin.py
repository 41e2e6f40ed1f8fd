"""Administrator commands (AWS credentials): ``stepless ca init``, ``rotate-intermediate``, ``upgrade``, ``claims``."""

from __future__ import annotations

import json
import os

import click

from stepless.admin import target
from stepless.cli import options, ui
from stepless.cli.main import ca
from stepless.cli.provisioner import claims_flags, claims_from
from stepless.errors import ClientError, ConfigError


def _stack_outputs(stack_name: str | None) -> dict[str, str]:
    """The target stack's outputs (``stepless.admin.target``); these commands need a stack, not bare tables."""
    where = target.use(stack_name)
    if not where.stack:
        raise ClientError("name the stack with --stack (or STEPLESS_STACK)")
    return where.outputs


@ca.command("init")
@options.stack
@click.option("--name", default="stepless", show_default=True, help="The name of the PKI (certificate subjects).")
@click.option("--dns", multiple=True, required=True, help="A DNS name or IP of the CA (repeatable).")
@click.option("--provisioner", default="admin", show_default=True, help="The first JWK provisioner's name.")
@click.option("--password-file", metavar="FILE", help="The provisioner password (asked otherwise).")
@click.option("--key-backend", type=click.Choice(["kms", "secrets"]), default=None,
              help="Where the CA keys live (default: the stack's KeyBackend).")
@click.option("--ssh", is_flag=True, help="Also create the SSH user and host CAs and an SSHPOP provisioner.")
@click.option("-f", "--force", is_flag=True, help="Replace an existing CA (new keys, new root).")
def init_cmd(stack_name, name, dns, provisioner, password_file, key_backend, ssh, force) -> None:
    """Create the root, the intermediate and the first provisioner of a deployed stack."""
    from stepless.admin.init import init

    outputs = _stack_outputs(stack_name)
    if target.current().is_local:
        raise ClientError("`stepless dev` initializes the local CA itself (a new one: stop it and start it again); "
                          "name a deployed stack with --stack")
    backend = key_backend or outputs.get("KeyBackend") or "kms"
    password = ui.password(password_file, "Please enter the password to encrypt the provisioner key: ",
                           confirm=True, flag="--password-file")
    try:
        result = init(outputs=outputs, backend=backend, name=name, dns_names=list(dns), provisioner=provisioner,
                      password=password, ssh=ssh, force=force)
    except ConfigError as e:
        raise ClientError(str(e)) from e
    ui.done("Root certificate", "stored in the authority configuration")
    ui.done("Root fingerprint", result.fingerprint)
    ui.done("Provisioner", f"{result.provisioner} (JWK) [kid: {result.kid}]")
    click.echo(result.fingerprint)


@ca.command("rotate-intermediate")
@options.stack
@click.option("--distrust-previous", is_flag=True,
              help="After a key compromise: leaves of replaced intermediates can no longer renew or revoke over mTLS.")
def rotate_intermediate_cmd(stack_name, distrust_previous) -> None:
    """Issue a new intermediate under the same root and switch the CA to it.

    Secrets backend: a new key too. KMS backend: the same key, a new certificate. Leaves of the replaced
    intermediate stay renewable and revocable until it expires.
    """
    from stepless.admin.rotate import rotate_intermediate

    rotation = rotate_intermediate(outputs=_stack_outputs(stack_name), distrust_previous=distrust_previous)
    new, old = rotation.intermediate, rotation.replaced
    ui.done("Intermediate", f"serial {new.serial_number}, valid until {new.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
    ui.done("Key", "new (a new secret version)" if rotation.new_key else "unchanged (the stack's KMS key)")
    until = f"its leaves renewable until {old.not_valid_after_utc:%Y-%m-%d}"
    ui.done("Replaced", f"serial {old.serial_number} ({'no longer trusted' if distrust_previous else until})")
    click.echo(f"configuration version {rotation.version}")
    ui.info(target.current().propagation())


@ca.command("upgrade")
@options.stack
def upgrade_cmd(stack_name) -> None:
    """Bring records written by an earlier stepless up to this version (safe to run again).

    Today: links each recorded renewal from its parent, which `ca revoke --lineage` follows; fills the SSH
    host index and the revoked-SSH set (check-host, hosts and the KRL read them instead of scanning).
    """
    from stepless import settings
    from stepless.admin import stack
    from stepless.admin.indexes import backfill_ssh
    from stepless.stores import certificates
    from stepless.stores.dynamodb.objects import BUCKET

    outputs = target.use(stack_name).outputs
    ui.done("Renewal links", f"{certificates.link_renewals()} renewals linked to their parents")
    if stack.local_outputs() is None:  # AWS tables (the local CA's SQLite store has every index)
        if settings.HOSTS_TABLE not in os.environ:
            raise ClientError(f"stack {stack_name} has no HostsTableName output: deploy this version's template "
                              "first")
        if outputs.get("CrlBucketName"):
            os.environ[BUCKET] = outputs["CrlBucketName"]
    filled = backfill_ssh()
    ui.done("SSH host index", f"{filled.hosts} host certificates indexed")
    ui.done("SSH KRL", f"{filled.revoked} revocations" + (", published to the bucket" if filled.krl_published else ""))


@ca.command("claims")
@options.stack
@claims_flags
def claims_cmd(stack_name, **claim_params) -> None:
    """Show the CA-wide claims (lifetimes every provisioner inherits), or change them with the flags.

    The flags are those of `ca provisioner update`, e.g. `stepless ca claims --x509-max-dur 48h`. Prints the
    configured and effective claims as JSON.
    """
    from stepless.admin import claims

    changes = claims_from(claim_params)
    where = target.use(stack_name)
    if not changes:
        click.echo(json.dumps(claims.show(), indent=2))
        return
    change = claims.update(changes)
    ui.done("Authority claims", f"updated (configuration version {change.version})")
    ui.info(where.propagation())
    click.echo(json.dumps(change.entry, indent=2))

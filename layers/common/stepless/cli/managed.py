"""``stepless ca managed …`` (administrator, AWS credentials): certificates kept in Secrets Manager and
renewed by the renew function's schedule.

    stepless ca managed issue SUBJECT NAME [--san …] [--not-after 72h] [--rekey] [--force]
    stepless ca managed list [--json] | show NAME | renew NAME | remove NAME [--delete-secret]

The certificate, its chain and its private key live in the secret ``<stack>/managed/<NAME>``;
workloads read it (and may listen for ``stepless.CertificateRenewed`` events to reload).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator

import click

from stepless.admin import stack, target
from stepless.cli import keys, options, ui
from stepless.cli.main import ca
from stepless.durations import format_duration, parse_duration
from stepless.errors import CLIError
from stepless.managed import renewal
from stepless.stores import managed as store
from stepless.stores.managed import Managed


def use_stack(stack_name: str | None) -> str:
    """Point the library at the target CA's tables (the managed table too); the secrets prefix."""
    where = target.use(stack_name)
    if stack.local_outputs() is not None:  # the local CA's SQLite engine: its registry and secrets are there
        return where.secrets_prefix
    if not where.stack:  # the environment's tables
        if not os.environ.get(store.MANAGED_TABLE):
            raise CLIError(f"{store.MANAGED_TABLE} is not set: name the stack with --stack")
        return where.secrets_prefix
    if "ManagedTableName" not in where.outputs:
        raise CLIError(f"stack {where.stack} has no ManagedTableName output; update the stack to this version")
    os.environ[store.MANAGED_TABLE] = where.outputs["ManagedTableName"]
    return where.secrets_prefix


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The library's JSON log lines (meant for CloudWatch) stay off the terminal: warnings only."""
    from stepless.observability import logger

    previous = logger.log_level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _time(epoch: int | None) -> str:
    if not epoch:
        return "-"
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _show(item: Managed) -> dict:
    return {
        "name": item.name, "subject": item.subject, "sans": item.sans,
        "duration": format_duration(dt.timedelta(seconds=item.duration)), "rekey": item.rekey,
        "serial": item.serial, "notBefore": _time(item.not_before), "notAfter": _time(item.not_after),
        "renewAt": _time(item.renew_at), "status": item.status, "failures": item.failures,
        "lastError": item.last_error, "secretArn": item.secret_arn, "version": item.version,
        "renewedAt": _time(item.renewed_at) if item.renewed_at else None,
        "leaseUntil": _time(item.lease_until) if item.lease_until else None,
        "acmArn": item.acm_arn,
    }


@ca.group("managed")
def managed() -> None:
    """Certificates kept in Secrets Manager and renewed on a schedule (administrator, AWS credentials)."""


@managed.command("issue")
@click.argument("subject")
@click.argument("name")
@options.stack
@options.san
@click.option("--not-after", "not_after", default="24h", show_default=True, metavar="DURATION",
              help="The certificate lifetime (a duration: every renewal keeps it), e.g. 72h.")
@click.option("--rekey", is_flag=True, help="A new private key at every renewal (default: keep the key).")
@options.key_flags
@click.option("-f", "--force", is_flag=True, help="Replace an existing managed certificate NAME.")
@click.option("--acm", "acm_import", is_flag=True,
              help="Also import it into ACM as a new certificate; every renewal is re-imported into it.")
@click.option("--acm-arn", metavar="ARN", default=None,
              help="Re-import it into this ACM certificate (e.g. the API domain's DomainCertificateArn) now and "
                   "at every renewal.")
def issue_cmd(subject, name, stack_name, san, not_after, rekey, kty, crv, size, force, acm_import=False,
              acm_arn=None) -> None:
    """Issue a certificate for SUBJECT kept in the secret <stack>/managed/NAME, renewed automatically."""
    if acm_import and acm_arn:
        raise CLIError("--acm imports a new ACM certificate, --acm-arn re-imports into one: choose one")
    if acm_arn and not (acm_arn.startswith("arn:") and ":acm:" in acm_arn):
        raise CLIError(f"--acm-arn {acm_arn!r} is not an ACM certificate ARN")
    try:
        duration = parse_duration(not_after)
    except ValueError as e:
        raise CLIError(f"--not-after must be a duration such as 72h for a managed certificate: {e}") from e
    prefix = use_stack(stack_name)
    key = keys.generate_key(kty, crv, size)
    with _quiet():
        item = renewal.issue(name=name, subject=subject, sans=list(san) or [subject], duration=duration,
                             rekey=rekey, prefix=prefix, key=key, replace=force, acm_import=acm_import,
                             acm_arn=acm_arn)
    ui.done("Managed certificate", item.name)
    ui.done("Serial", item.serial)
    ui.done("Not after", _time(item.not_after))
    ui.done("Renews at", _time(item.renew_at))
    ui.done("Secret", item.secret_arn)
    if item.acm_arn:
        ui.done("ACM certificate", item.acm_arn)
    click.echo(item.secret_arn)


@managed.command("list")
@options.stack
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_cmd(stack_name, as_json) -> None:
    """List the managed certificates."""
    use_stack(stack_name)
    items = store.list_all()
    if as_json:
        click.echo(json.dumps([_show(i) for i in items], indent=2))
        return
    rows = [("NAME", "SUBJECT", "STATUS", "NOT AFTER", "RENEW AT", "FAILURES")]
    rows += [(i.name, i.subject, i.status, _time(i.not_after), _time(i.renew_at), str(i.failures)) for i in items]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@managed.command("show")
@click.argument("name")
@options.stack
def show_cmd(name, stack_name) -> None:
    """Print one managed certificate's registry entry as JSON."""
    use_stack(stack_name)
    click.echo(json.dumps(_show(store.require(name)), indent=2))


@managed.command("renew")
@click.argument("name")
@options.stack
def renew_cmd(name, stack_name) -> None:
    """Renew NAME now, due or not (as the schedule would: new secret version, event)."""
    use_stack(stack_name)
    with _quiet():
        outcome, item = renewal.renew_now(name)
    if outcome not in (renewal.RENEWED, renewal.ADOPTED):
        reason = {renewal.LEASED: "a renewal run holds it right now; retry later",
                  renewal.LOST: "it changed meanwhile; retry",
                  renewal.REVOKED: "its certificate is revoked; it is no longer renewed"}.get(
            outcome, item.last_error or outcome)
        raise CLIError(f"managed certificate {name} was not renewed: {reason}")
    ui.done("Renewed", item.name)
    ui.done("Serial", item.serial)
    ui.done("Not after", _time(item.not_after))
    click.echo(item.serial)


@managed.command("remove")
@click.argument("name")
@options.stack
@click.option("--delete-secret", is_flag=True,
              help="Also schedule the secret's deletion (Secrets Manager's recovery window applies).")
def remove_cmd(name, stack_name, delete_secret) -> None:
    """Stop renewing NAME (its secret is kept unless --delete-secret; the certificate is not revoked)."""
    use_stack(stack_name)
    item = renewal.remove(name, delete_secret=delete_secret)
    ui.done("Removed", item.name)
    ui.done("Secret", f"{item.secret_arn} ({'deletion scheduled' if delete_secret else 'kept'})")

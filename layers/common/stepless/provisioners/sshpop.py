"""SSHPOP provisioner: tokens signed by the key of an SSH certificate our host CA issued."""

from __future__ import annotations

from stepless.provisioners.base import Provisioner


class SSHPOPProvisioner(Provisioner):
    """step-ca's SSHPOP provisioner (renew, rekey and revoke of SSH host certificates)."""

    type = "SSHPOP"

    @property
    def id(self) -> str:
        return f"sshpop/{self.name}"

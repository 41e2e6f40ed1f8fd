"""Find a deployed stack's outputs and point this process at its tables (administrator commands)."""

from __future__ import annotations

import os

from stepless import authority, aws, settings
from stepless.errors import ClientError

TABLE_OUTPUTS = {
    settings.AUTHORITY_TABLE: "AuthorityTableName",
    settings.TOKENS_TABLE: "TokensTableName",
    settings.CERTIFICATES_TABLE: "CertificatesTableName",
    settings.REVOCATIONS_TABLE: "RevocationsTableName",
}
OPTIONAL_OUTPUTS = {"STEPLESS_MANAGED_TABLE": "ManagedTableName", settings.HOSTS_TABLE: "HostsTableName",
                    settings.OCSP_TABLE: "OcspTableName", "STEPLESS_ACME_TABLE": "AcmeTableName"}


def outputs(stack_name: str) -> dict[str, str]:
    """The stack's outputs (OutputKey → OutputValue)."""
    try:
        stacks = aws.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except Exception as e:  # noqa: BLE001 - no credentials, no stack, no network: one line for the user
        raise ClientError(f"cannot read stack {stack_name}: {aws.error_code(e) or e}") from e
    outs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    params = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stacks[0].get("Parameters", [])}
    if params.get("ConfigTtlSeconds"):  # how long the functions keep a configuration (the true delay of a change)
        outs.setdefault("ConfigTtlSeconds", params["ConfigTtlSeconds"])
    return outs


def local_outputs() -> dict[str, str] | None:
    """The local CA's "outputs" when this process targets its SQLite store (``STEPLESS_STORE=sqlite:…``, as
    ``stepless dev`` writes in dev.env): where its encrypted key files are. None otherwise."""
    from stepless.signers.files import PASSWORD_FILE
    from stepless.stores.backend import STORE

    if not os.environ.get(STORE, "").startswith("sqlite:"):
        return None
    password = os.environ.get(PASSWORD_FILE)
    if not password:
        raise ClientError(f"{STORE} names a local CA but {PASSWORD_FILE} is not set (source its dev.env)")
    return {"KeyDirectory": os.path.dirname(password)}


def use(stack_name: str) -> dict[str, str]:
    """Read the outputs and set the table environment variables the library uses (the local CA's SQLite
    store, when the environment names one, instead of any stack)."""
    local = local_outputs()
    if local is not None:
        authority.reset()
        return local
    outs = outputs(stack_name)
    for var, key in TABLE_OUTPUTS.items():
        if key not in outs:
            raise ClientError(f"stack {stack_name} has no {key} output; is it a stepless stack?")
        os.environ[var] = outs[key]
    for var, key in OPTIONAL_OUTPUTS.items():
        if key in outs:
            os.environ[var] = outs[key]
    outs.setdefault("SecretsPrefix", stack_name)
    authority.reset()
    return outs

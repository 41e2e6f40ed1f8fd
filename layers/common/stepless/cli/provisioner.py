"""``stepless ca provisioner list|add|update|remove``: provisioner administration (AWS credentials).

Like ``step ca provisioner``, but the configuration is the stack's authority item in DynamoDB rather than a
``ca.json``: no restart is needed, warm functions see a change within ``STEPLESS_CONFIG_TTL`` seconds (the
local CA at its next request). Which CA: ``stepless.admin.target``; ``list`` without a stack asks the CA's
public ``GET /provisioners``, as step does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from stepless import clienthome
from stepless.admin import provisioners as admin
from stepless.admin import target
from stepless.cli import options, ui
from stepless.cli.main import ca
from stepless.errors import CLIError

# flag → step's claims key
DURATION_FLAGS = {
    "x509_min_dur": ("--x509-min-dur", "minTLSCertDuration", "minimum X.509 certificate duration"),
    "x509_max_dur": ("--x509-max-dur", "maxTLSCertDuration", "maximum X.509 certificate duration"),
    "x509_default_dur": ("--x509-default-dur", "defaultTLSCertDuration", "default X.509 certificate duration"),
    "ssh_user_min_dur": ("--ssh-user-min-dur", "minUserSSHCertDuration", "minimum SSH user certificate duration"),
    "ssh_user_max_dur": ("--ssh-user-max-dur", "maxUserSSHCertDuration", "maximum SSH user certificate duration"),
    "ssh_user_default_dur": ("--ssh-user-default-dur", "defaultUserSSHCertDuration",
                             "default SSH user certificate duration"),
    "ssh_host_min_dur": ("--ssh-host-min-dur", "minHostSSHCertDuration", "minimum SSH host certificate duration"),
    "ssh_host_max_dur": ("--ssh-host-max-dur", "maxHostSSHCertDuration", "maximum SSH host certificate duration"),
    "ssh_host_default_dur": ("--ssh-host-default-dur", "defaultHostSSHCertDuration",
                             "default SSH host certificate duration"),
}
TOGGLES = {
    "ssh": ("enableSSHCA", "--ssh/--no-ssh", "Allow (or not) SSH certificates."),
    "disable_renewal": ("disableRenewal", "--disable-renewal/--allow-renewal",
                        "Refuse (or allow) renewals of certificates from this provisioner."),
    "allow_renewal_after_expiry": ("allowRenewalAfterExpiry",
                                   "--allow-renewal-after-expiry/--disallow-renewal-after-expiry",
                                   "Allow (or not) renewing expired certificates."),
}


def claims_flags(fn: Any) -> Any:
    """The claims flags (durations and switches), shared by ``ca provisioner add|update`` and ``ca claims``."""
    for param, (flag, _, text) in reversed(list(DURATION_FLAGS.items())):
        fn = click.option(flag, param, metavar="DURATION", default=None,
                          help=f"The {text} (a Go duration such as 8h; \"\" reverts to the authority's).")(fn)
    for param, (_, flags, text) in reversed(list(TOGGLES.items())):
        fn = click.option(flags, param, default=None, help=text)(fn)
    return fn


def claims_from(params: dict[str, Any]) -> dict[str, Any]:
    """The claims the user gave (step JSON keys); unset flags are left out."""
    out: dict[str, Any] = {}
    for param, (_, key, _) in DURATION_FLAGS.items():
        if params.get(param) is not None:
            out[key] = params[param]
    for param, (key, _, _) in TOGGLES.items():
        if params.get(param) is not None:
            out[key] = params[param]
    return out


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CLIError(f"error reading {what} {path}: {e.strerror or e}") from e


def _read_json(path: str, what: str) -> Any:
    try:
        return json.loads(_read(path, what))
    except ValueError as e:
        raise CLIError(f"{what} {path} is not JSON: {e}") from e


def _emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def _propagation_note(where: target.Target | None = None) -> None:
    """When the CA applies the change, truthfully for the target (the last one used when not given)."""
    ui.info((where or target.current()).propagation())


@ca.group("provisioner")
def provisioner() -> None:
    """Create, update, list and remove provisioners (administrator: a deployed stack, or the local CA)."""


@provisioner.command("list")
@options.stack
@options.connection
def list_cmd(stack_name: str | None, ca_url: str | None, root: str | None) -> None:
    """Print the provisioners as a JSON array, as `step ca provisioner list` does.

    With --stack (or STEPLESS_STACK) they are read from the stack's configuration (administrator
    credentials); otherwise from the CA's public GET /provisioners (--ca-url/--root or the saved defaults).
    """
    if target.administrator(stack_name) or not (ca_url or clienthome.defaults().get("ca-url")):
        target.use(stack_name)
        provisioners = admin.list_provisioners()
    else:
        from stepless.cli.ca import connect

        provisioners = connect(ca_url, root)[0].provisioners()
    click.echo(json.dumps([step_order(p) for p in provisioners], indent=3))  # step's MarshalIndent(…, "", "   ")


# the field order of step's provisioner structs (type and name first, claims last) and of its JWKs
_ENTRY_ORDER = ("type", "name", "key", "encryptedKey", "clientID", "clientSecret", "configurationEndpoint",
                "admins", "domains", "groups", "listenAddress", "roots", "claims")
_JWK_ORDER = ("use", "kty", "kid", "crv", "alg", "x", "y", "n", "e")


def step_order(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry with its keys in the order `step ca provisioner list` prints them."""

    def ordered(d: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
        return {**{k: d[k] for k in order if k in d}, **{k: v for k, v in d.items() if k not in order}}

    out = ordered(entry, _ENTRY_ORDER)
    if isinstance(out.get("key"), dict):
        out["key"] = ordered(out["key"], _JWK_ORDER)
    return out


@provisioner.command("add")
@click.argument("name")
@click.argument("key_file", required=False, metavar="[JWK-FILE]")
@options.stack
@click.option("--type", "type_", default="JWK", show_default=True, metavar="TYPE",
              help="The provisioner type: JWK, OIDC, X5C, SSHPOP or ACME (case-insensitive).")
@click.option("--create", is_flag=True, help="JWK: create a new P-256 key pair, encrypted with a password.")
@click.option("--public-key", metavar="FILE", help="JWK: the provisioner's public key (a JWK or PEM file).")
@click.option("--password-file", "password_file", metavar="FILE",
              help="JWK --create: the FILE holding the password that encrypts the new key (asked otherwise).")
@click.option("--client-id", metavar="ID", help="OIDC: the client id (the audience of ID tokens).")
@click.option("--client-secret", metavar="SECRET", default="", help="OIDC: the client secret.")
@click.option("--configuration-endpoint", metavar="URL",
              help="OIDC: the OpenID configuration URL (https; plain http only on loopback addresses).")
@click.option("--domain", "domains", multiple=True, metavar="DOMAIN",
              help="OIDC: an allowed email domain (repeatable).")
@click.option("--admin", "admins", multiple=True, metavar="EMAIL",
              help="OIDC: an administrator's email; admins may ask for any name (repeatable).")
@click.option("--group", "groups", multiple=True, metavar="GROUP", help="OIDC: a required group (repeatable).")
@click.option("--listen-address", default="", metavar="ADDRESS",
              help="OIDC: the callback address of the login flow (e.g. :10000).")
@click.option("--x5c-root", "x5c_roots", multiple=True, metavar="FILE",
              help="X5C: a PEM file of root certificate(s) the token chains must lead to (repeatable).")
@click.option("--require-eab/--no-require-eab", "require_eab", default=True, show_default=True,
              help="ACME: require External Account Binding (keys from `stepless ca acme eab add`).")
@click.option("--acme-policy", "acme_policy", metavar="FILE",
              help='ACME: a JSON identifier policy {"allow": {"dns": [...], "ip": [...]}, "deny": {...}}.')
@claims_flags
def add_cmd(name, key_file, stack_name, type_, create, public_key, password_file, client_id, client_secret,
            configuration_endpoint, domains, admins, groups, listen_address, x5c_roots, require_eab, acme_policy,
            **claim_params) -> None:
    """Add the provisioner NAME (JWK: --create or a public key; OIDC; X5C; SSHPOP; ACME)."""
    kind = admin.normalize_type(type_)
    claims = claims_from(claim_params)
    admin.check_name(name)
    admin.check_claims(claims)
    _check_flags(kind, key_file=key_file, create=create, public_key=public_key, password_file=password_file,
                 client_id=client_id, client_secret=client_secret, endpoint=configuration_endpoint,
                 oidc_lists=domains or admins or groups or listen_address, x5c_roots=x5c_roots)
    if acme_policy and kind != "ACME":
        raise CLIError(f"--acme-policy does not apply to {kind} provisioners")
    where = target.use(stack_name)
    summary: dict[str, Any] = {}
    if kind == "JWK":
        if create:
            password = ui.password(password_file, "Please enter a password to encrypt the provisioner private key: ",
                                   confirm=True, flag="--password-file")
            entry = admin.jwk_entry(name, password=password, claims=claims)
        else:
            path = public_key or key_file
            entry = admin.jwk_entry(name, public_key=_read(path, "public key"), claims=claims, source=path)
    elif kind == "OIDC":
        entry, config = admin.oidc_entry(
            name, client_id=client_id or "", client_secret=client_secret,
            configuration_endpoint=configuration_endpoint or "", domains=domains, admins=admins, groups=groups,
            listen_address=listen_address, claims=claims,
        )
        summary["issuer"] = (config or {}).get("issuer")
        ui.done("Issuer", str(summary["issuer"]))
    elif kind == "X5C":
        pem = b"".join(_read(p, "X5C root file") + b"\n" for p in x5c_roots)
        entry = admin.x5c_entry(name, pem, claims=claims)
    elif kind == "ACME":
        policy = _read_json(acme_policy, "ACME policy") if acme_policy else None
        entry = admin.acme_entry(name, require_eab=require_eab, policy=policy, claims=claims)
    else:
        entry = admin.sshpop_entry(name, claims=claims)
    change = admin.add(entry, summary=summary)
    kid = (change.entry.get("key") or {}).get("kid")
    ui.done("Provisioner", f"{name} ({kind}) added" + (f" [kid: {kid}]" if kid else ""))
    _propagation_note(where)
    _emit(change.entry)


def _check_flags(kind: str, *, key_file, create, public_key, password_file, client_id, client_secret, endpoint,
                 oidc_lists, x5c_roots) -> None:
    """Refuse flags that belong to another provisioner type (one line, like step's flag errors)."""
    jwk_given = bool(key_file or create or public_key or password_file)
    oidc_given = bool(client_id or client_secret or endpoint or oidc_lists)
    if kind != "JWK" and jwk_given:
        raise CLIError(f"--create, --public-key, --password-file and JWK-FILE are for JWK provisioners, not {kind}")
    if kind != "OIDC" and oidc_given:
        raise CLIError(f"the OIDC flags (--client-id, --configuration-endpoint, …) do not apply to {kind}")
    if kind != "X5C" and x5c_roots:
        raise CLIError(f"--x5c-root does not apply to {kind} provisioners")
    if kind == "JWK":
        sources = [bool(create), bool(public_key), bool(key_file)]
        if sum(sources) != 1:
            raise CLIError("a JWK provisioner needs exactly one of --create, --public-key FILE or JWK-FILE")
        if password_file and not create:
            raise CLIError("--password-file only applies with --create")
    if kind == "OIDC":
        if not client_id:
            raise CLIError("flag --client-id is required with --type OIDC")
        if not endpoint:
            raise CLIError("flag --configuration-endpoint is required with --type OIDC")
    if kind == "X5C" and not x5c_roots:
        raise CLIError("flag --x5c-root is required with --type X5C")


@provisioner.command("update")
@click.argument("name")
@options.stack
@claims_flags
def update_cmd(name, stack_name, **claim_params) -> None:
    """Change the claims (lifetimes, SSH, renewal) of the provisioner NAME."""
    claims = claims_from(claim_params)
    admin.check_claims(claims)
    if not claims:
        raise CLIError("nothing to update: give at least one claims flag (see --help)")
    where = target.use(stack_name)
    change = admin.update(name, claims)
    ui.done("Provisioner", f"{name} updated")
    _propagation_note(where)
    _emit(change.entry)


@provisioner.command("remove")
@click.argument("name")
@options.stack
@click.option("--type", "type_", default=None, metavar="TYPE",
              help="Only remove NAME if it is of this type.")
def remove_cmd(name, stack_name, type_) -> None:
    """Remove the provisioner NAME (refused for the last one that can issue certificates)."""
    where = target.use(stack_name)
    change = admin.remove(name, type_=type_)
    ui.done("Provisioner", f"{name} ({change.entry.get('type')}) removed")
    _propagation_note(where)

"""Entry point: the ``stepless`` command group and one-line error handling."""

from __future__ import annotations

import sys

import click

from stepless.errors import ClientError, ConfigError, StepError

# click ≥ 8.2 raises this for a group called without a command (8.1 printed the help and exited 0 itself)
_NO_ARGS_IS_HELP: type[click.UsageError] = getattr(click.exceptions, "NoArgsIsHelpError",
                                                   type("_Never", (click.UsageError,), {}))
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="stepless", prog_name="stepless")
def cli() -> None:
    """stepless: a step-ca compatible certificate authority on AWS Lambda."""


@cli.group()
def ca() -> None:
    """Talk to the certificate authority: tokens, certificates, renewals, administration."""


@cli.group()
def certificate() -> None:
    """Create, inspect and check X.509 certificates and CSRs locally."""


@cli.group()
def crypto() -> None:
    """Cryptographic helpers."""


@crypto.group()
def jwt() -> None:
    """JSON Web Tokens."""


@cli.group()
def ssh() -> None:
    """SSH certificates."""


@cli.group()
def local() -> None:
    """The local stack (moto + HTTPS gateway)."""


def _register() -> None:
    """Import the command modules, which attach their commands to the groups above."""
    import importlib

    modules = ("certificate", "crypto", "ca", "admin", "ssh", "dev", "provisioner", "renew", "managed", "ssh_bastion",
               "acme")
    for name in modules:
        importlib.import_module(f"stepless.cli.{name}")  # a missing module fails loudly


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; errors are one line on stderr and a non-zero exit."""
    _register()
    try:
        rv = cli.main(args=argv, prog_name="stepless", standalone_mode=False)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(130)
    except _NO_ARGS_IS_HELP as e:  # a bare group (`stepless`, `stepless ca`): its help, like `--help`
        click.echo(e.ctx.get_help() if e.ctx else e.format_message())
        sys.exit(0)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(e.exit_code if e.exit_code else 2)
    except (ClientError, ConfigError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except StepError as e:
        click.echo(f"error: {e.message}", err=True)
        sys.exit(1)
    except OSError as e:  # a file, network or TLS failure no command turned into a message: still one line
        from stepless.cli.client import describe

        click.echo(f"error: {describe(e)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    from stepless.cli.main import main as _main  # the registered groups live in the imported module

    _main()

"""``stepless dev`` (a whole CA on this machine) and ``stepless local invoke`` (one handler, one event)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click

from stepless import clienthome
from stepless.cli import ui
from stepless.cli.main import cli, local
from stepless.errors import CLIError


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return (host.strip("[]") or "127.0.0.1"), int(port)
    except ValueError as e:
        raise CLIError(f"invalid --address {value!r}: use HOST:PORT") from e


def _period(value: str | None) -> float | None:
    if not value:
        return None
    from stepless.durations import parse_duration

    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError as e:
        raise CLIError(f"invalid --schedule-every {value!r}: {e}") from e
    if seconds <= 0:
        raise CLIError("--schedule-every must be positive")
    return seconds


def _report_schedule(result: dict) -> None:
    if "error" in result:
        ui.info(f"scheduled renewal failed: {result['error']}")
    elif result.get("due") or result.get("caExpiringSoon"):
        ui.info("scheduled renewal: " + ", ".join(f"{k} {result[k]}" for k in
                                                  ("due", "renewed", "failed", "revoked", "deferred") if result.get(k)))


@cli.command("dev")
@click.option("--address", default="127.0.0.1:8443", show_default=True, help="Where the HTTPS gateway listens.")
@click.option("--home", type=click.Path(path_type=Path),
              help="State directory (default $STEPLESS_HOME or ~/.stepless).")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The dev provisioner's password (default: generated and saved under the home).")
@click.option("--aws-emulation", "aws_emulation", is_flag=True,
              help="Run the CA on moto (the template's tables and KMS keys, created anew on each start) instead "
                   "of the persistent SQLite store.")
@click.option("--reset", is_flag=True, help="Start over: a new CA (root, provisioners, records all discarded).")
@click.option("--key-backend", type=click.Choice(["kms", "secrets"]), default="kms", show_default=True,
              help="With --aws-emulation: where the CA keys live, KMS keys or PEM keys in Secrets Manager (both "
                   "emulated). The SQLite engine keeps them as encrypted files under the home.")
@click.option("--provisioner", default="admin", show_default=True, help="The JWK provisioner's name.")
@click.option("--dns", multiple=True, help="Another DNS name or IP for the CA (repeatable).")
@click.option("--schedule-every", "schedule_every", metavar="DURATION", default=None,
              help="Also run the scheduled managed-certificate renewal every DURATION (e.g. 10s); off by default.")
@click.option("--log-format", type=click.Choice(["auto", "text", "json"]), default="auto", show_default=True,
              help="text: one readable line per request; json: the functions' JSON log and EMF metric lines, "
                   "as in CloudWatch; auto: text in a terminal, else json.")
def dev_cmd(address, home, password_file, aws_emulation, reset, key_backend, provisioner, dns,
            schedule_every, log_format) -> None:
    """Run a local CA behind an HTTPS gateway: on a persistent SQLite store under the home (the default), or
    on moto with the template's resources (--aws-emulation). Ctrl-C stops it."""
    from stepless.errors import ConfigError, StepError
    from stepless.local.devstack import DevStack, DevStackError

    if home is not None:
        os.environ["STEPLESS_HOME"] = str(home)
    period = _period(schedule_every)
    from stepless.local import requestlog

    observer = requestlog.install(sys.stdout) if requestlog.wanted(log_format, sys.stdout) else None
    stack = DevStack(home=clienthome.home(), address=_address(address), password_file=password_file,
                     key_backend=key_backend, dns_names=list(dns), provisioner=provisioner,
                     schedule_every=period, on_schedule=_report_schedule, observer=observer,
                     engine="aws" if aws_emulation else "sqlite", reset=reset)
    try:
        stack.start()
    except DevStackError as e:
        stack.stop()
        raise CLIError(str(e)) from e
    except (OSError, ConfigError, StepError) as e:
        stack.stop()
        raise CLIError(f"cannot start the local CA: {getattr(e, 'detail', None) or e}") from e
    generated = password_file is None and stack.password_file is not None and stack.password_file.exists()
    ui.info(f"stepless dev: CA ready at {stack.url}")
    ui.done("CA URL", stack.url)
    ui.done("Root fingerprint", stack.fingerprint)
    ui.done("Root certificate", str(stack.home / "certs" / "root_ca.crt"))
    ui.done("Store", f"SQLite {stack.home / 'db' / 'ca.db'}" if stack.engine == "sqlite"
            else f"AWS emulation (moto at {stack.moto_url}; discarded on exit)")
    ui.done("Provisioner", f"{provisioner} (JWK)")
    if generated:
        ui.info(f"Provisioner password (saved in {stack.password_file}): {stack.password_file.read_text().strip()}")
    if stack.password_file is not None:
        ui.done("Password file", str(stack.password_file))
    ui.done("Defaults", str(clienthome.defaults_path()))
    ui.done("Administration", "stepless ca provisioner|claims … need no --stack: they find this CA "
            f"through the defaults ({stack.home / 'config' / 'dev.env'} is for other tools)")
    if period:
        ui.done("Scheduled renewal", f"every {schedule_every}")
    ui.info("Press Ctrl-C to stop.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        stack.stop()
        ui.info("stepless dev: stopped")


def _logs_to_stderr() -> None:
    """Point every stream handler of the library's loggers at stderr."""
    for name in ("stepless", os.environ.get("POWERTOOLS_SERVICE_NAME", "stepless")):
        for h in logging.getLogger(name).handlers:
            if isinstance(h, logging.StreamHandler):
                h.setStream(sys.stderr)


@local.command("invoke")
@click.argument("function_id")
@click.option("-e", "--event", "event_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The event JSON file.")
@click.option("--home", type=click.Path(path_type=Path), help="State directory of the local stack.")
def invoke_cmd(function_id, event_file, home) -> None:
    """Run one handler of template.yaml against a fresh local stack, like `sam local invoke`."""
    from stepless.local import gateway, stack, template
    from stepless.local.devstack import DevStack, free_port

    path = stack.default_template_path()
    routes = template.routes(template.load_template(path))
    fns = template.functions(template.load_template(path))
    if function_id not in fns:
        raise CLIError(f"no function {function_id} in {path} (have {', '.join(fns)})")
    try:
        event = json.loads(Path(event_file).read_text())
    except ValueError as e:
        raise CLIError(f"{event_file} is not JSON: {e}") from e
    if home is not None:
        os.environ["STEPLESS_HOME"] = str(home)
    dev = DevStack(home=clienthome.home(), address=("127.0.0.1", free_port()), engine="aws")
    dev.start()
    try:
        route = next((r for r in routes if r.function_id == function_id), None)
        fn_props = fns[function_id]
        if route is None:
            route = template.Route(function_id, "ANY", "/", fn_props["CodeUri"], fn_props["Handler"])
        handler = gateway.load_handler(path.parent, route)
        _logs_to_stderr()
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the result, like sam local invoke
            result = handler(event, None)
    finally:
        dev.stop()
    click.echo(json.dumps(result, indent=2))

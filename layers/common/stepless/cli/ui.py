"""Terminal output in step's style: ``✔ Label: value`` lines on stderr, prompts, one-line errors."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from stepless.errors import ClientError

T = TypeVar("T")


def done(label: str, value: str) -> None:
    """Print ``✔ Label: value`` on stderr, as step does."""
    click.echo(f"✔ {label}: {value}", err=True)


def info(text: str) -> None:
    click.echo(text, err=True)


def select(question: str, items: list[T], label: Callable[[T], str], *, on_no_terminal: str,
           name: Callable[[T], str], announce: str) -> T:
    """Ask which of ``items`` to use when a terminal is there (as step does); otherwise a one-line error,
    ``on_no_terminal`` with ``{names}`` replaced by the items' names. The choice is announced as ``✔ announce: …``."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise ClientError(on_no_terminal.format(names=", ".join(name(i) for i in items)))
    info(question)
    for n, item in enumerate(items, 1):
        info(f"  {n}) {label(item)}")
    choice = click.prompt(f"Choose 1-{len(items)}", type=click.IntRange(1, len(items)), err=True)
    picked = items[choice - 1]
    done(announce, label(picked))
    return picked


def read_password_file(path: str) -> str:
    """The first line of a password file, without its newline."""
    try:
        data = Path(path).read_text()
    except OSError as e:
        raise ClientError(f"error reading {path}: {e.strerror or e}") from e
    return data.splitlines()[0] if data else ""


def ask_password(prompt: str, *, confirm: bool = False, flag: str | None = None) -> str:
    """Ask a password on the terminal; refuses to hang when stdin is not a terminal, naming the command's
    password-file ``flag`` that gives it instead."""
    if not sys.stdin.isatty() and not os.environ.get("STEPLESS_ALLOW_STDIN_PASSWORD"):
        how = f"give it with {flag} FILE" if flag else "this command reads it only from a terminal"
        raise ClientError(f"{prompt.rstrip(': ')}: there is no terminal to ask on; {how}")
    while True:
        value = getpass.getpass(prompt)
        if not confirm:
            return value
        again = getpass.getpass("Confirm: " if prompt.endswith(": ") else "Confirm:")
        if value == again:
            return value
        info("passwords do not match, try again")


def password(file_flag: str | None, prompt: str, *, confirm: bool = False, flag: str | None = None) -> str:
    """A password from the file ``file_flag`` (the value of the command's ``flag``) when given, else asked."""
    if file_flag:
        return read_password_file(file_flag)
    return ask_password(prompt, confirm=confirm, flag=flag)


def confirm_overwrite(path: str | Path, force: bool) -> None:
    """Ask "Would you like to overwrite FILE [y/n]" unless ``force`` or the file is new."""
    p = Path(path)
    if force or not p.exists():
        return
    if not sys.stdin.isatty():
        raise ClientError(f"file {p} already exists; use --force to overwrite it")
    answer = click.prompt(f"Would you like to overwrite {p} [y/n]", default="", show_default=False)
    if answer.strip().lower() not in ("y", "yes"):
        raise ClientError(f"file {p} was not overwritten")


def write_files(files: dict[str | Path, bytes], *, mode: int = 0o600, force: bool = False) -> None:
    """Write several files all or nothing: check every target first, then write via temp + rename."""
    for path in files:
        confirm_overwrite(path, force)
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            target = Path(path)
            tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            staged.append((tmp, target))
    except OSError as e:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise ClientError(f"error writing {e.filename}: {e.strerror}") from e
    for tmp, target in staged:
        os.replace(tmp, target)

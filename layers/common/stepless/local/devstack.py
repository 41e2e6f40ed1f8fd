"""``stepless dev``: an initialized CA behind the HTTPS gateway, on one of two engines.

- ``sqlite`` (the default): the SQLite store (:mod:`stepless.stores.sqlite`) in ``$STEPLESS_HOME/db/ca.db``
  and the CA keys as encrypted PEM files in ``$STEPLESS_HOME/secrets`` (password in
  ``secrets/key-password``). It survives restarts: the CA is created on the first start only; later
  starts open the same root, provisioners, records, revocations and used tokens (the root key is not
  opened again). ``reset`` starts over.
- ``aws`` (``--aws-emulation``): moto server (serialized, see :mod:`stepless.local.moto`) with the
  template's resources, and a CA initialized anew on each start.

The home is locked by the running CA (``$STEPLESS_HOME/.lock``, an fcntl lock): a second start on the
same home says so and changes nothing; the address is checked before anything is written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import secrets
import shutil
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stepless import authority, aws, clienthome, clock, settings
from stepless.admin import target
from stepless.local import gateway, stack, template
from stepless.signers.files import write_private
from stepless.stores import backend
from stepless.stores.sqlite import private
from stepless.x509 import profile

LOCAL_NAMES = ["localhost", "127.0.0.1", "::1"]
STACK_NAME = "stepless-dev"
ENGINES = ("sqlite", "aws")
# what --reset removes from the home (the client's own files, e.g. config/defaults.json, are rewritten)
STATE = ("db", "secrets", "certs", "tls", "state", "config/dev.env")


class DevStackError(Exception):
    """The local CA cannot start (home in use, address taken, …): one line for the user."""


def quiet_moto() -> None:
    """moto's server logs every request and warns about each resource type it skips: keep it quiet."""
    import logging
    import warnings

    for name in ("werkzeug", "moto", "botocore.credentials"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"moto\..*")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_address(address: tuple[str, int]) -> None:
    """DevStackError unless the gateway could listen on ``address`` (checked before anything is written)."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the gateway does
        try:
            s.bind((host, port))
        except OSError as e:
            raise DevStackError(f"cannot listen on {host}:{port}: {e.strerror}") from e


def lock_home(home: Path) -> int:
    """Lock ``home`` for this process (the descriptor holds the lock until closed or the process ends)."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        owner = (home / ".lock").read_text().strip() or "another process"
        raise DevStackError(f"{home} is in use by a running stepless dev ({owner}); stop it first, "
                            "or use another --home") from e
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()}".encode())
    return fd


def database_path(home: Path) -> Path:
    """The local CA's SQLite file under ``home``."""
    return home / "db" / "ca.db"


def local_environment(home: Path) -> dict[str, str]:
    """What a process needs to reach the local CA's store and keys (the serving process, admin commands)."""
    from stepless.signers.files import PASSWORD_FILE

    return {backend.STORE: f"sqlite:{database_path(home)}", PASSWORD_FILE: str(home / "secrets" / "key-password")}


@dataclass
class DevStack:
    """Everything ``stepless dev`` starts; :meth:`stop` ends it all."""

    home: Path
    address: tuple[str, int] = ("127.0.0.1", 8443)
    password_file: Path | None = None
    key_backend: str = "kms"  # aws engine only; the sqlite engine keeps encrypted key files
    engine: str = "sqlite"
    reset: bool = False  # start over: remove the home's CA state first (after taking the lock)
    dns_names: list[str] = field(default_factory=list)
    provisioner: str = "admin"
    url: str = ""
    fingerprint: str = ""
    moto_url: str = ""
    schedule_every: float | None = None  # seconds between scheduled renewal runs (None: off)
    on_schedule: Callable[[dict], None] | None = None  # gets each run's result (or {"error": ...})
    observer: gateway.RequestObserver | None = None  # told of each request (readable log lines)
    _moto: object = None
    _gateway: gateway.Gateway | None = None
    _stop_schedule: threading.Event = field(default_factory=threading.Event)
    _scheduler: threading.Thread | None = None
    _lock: int | None = None

    def start(self) -> None:
        """Bring the stack up (blocking until the gateway listens); DevStackError when it cannot."""
        if self.engine not in ENGINES:
            raise DevStackError(f"unknown engine {self.engine!r} (sqlite or aws)")
        self._lock = lock_home(self.home)
        check_address(self.address)
        if self.reset:
            self._wipe()
        for name in ("db", "secrets", "tls"):  # the records and keys: this user's only, even in an older home
            private(self.home / name)
        ttl = os.environ.get("STEPLESS_CONFIG_TTL")  # the caller's, before the template's default (30) lands
        # the gateway asks every client for a certificate on all its names: each is an "mTLS domain"
        os.environ[settings.MTLS_DOMAIN] = ",".join(self.names)
        if self.engine == "sqlite":
            self._start_sqlite()
        else:
            self._start_moto()
        # a safety net only: administrator changes made through the CLI are applied at once (config_stamp)
        os.environ["STEPLESS_CONFIG_TTL"] = ttl or "5"
        self._serve()
        if self.schedule_every:
            self._scheduler = threading.Thread(target=self._schedule_loop, name="stepless-dev-schedule", daemon=True)
            self._scheduler.start()

    def schedule_event(self) -> dict:
        """An EventBridge "Scheduled Event" like events/schedule.json, for now."""
        return {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": os.environ.get("AWS_REGION", "us-east-1"),
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/stepless-dev-RenewFunctionScheduledRenewal"],
            "detail": {},
        }

    def run_schedule_once(self) -> dict:
        """Invoke the renew function's handler (from the template) with a scheduled event."""
        path = stack.default_template_path()
        fn = template.functions(template.load_template(path))["RenewFunction"]
        route = template.Route("RenewFunction", "ANY", "/", fn["CodeUri"], fn["Handler"])
        return gateway.load_handler(path.parent, route)(self.schedule_event(), _LocalContext(fn.get("Timeout", 300)))

    def _schedule_loop(self) -> None:
        assert self.schedule_every
        while not self._stop_schedule.wait(self.schedule_every):
            try:
                result = self.run_schedule_once()
            except Exception as e:  # noqa: BLE001 - keep the local stack up; report and try next period
                result = {"error": f"{type(e).__name__}: {e}"}
            if self.on_schedule is not None:
                self.on_schedule(result)

    def _wipe(self) -> None:
        """Remove the CA's state from the home (``--reset``)."""
        for name in STATE:
            path = self.home / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def _start_sqlite(self) -> None:
        """The SQLite store and encrypted key files; the CA is created only when the store has none."""
        from stepless.stores import authority as store

        env = local_environment(self.home)
        os.environ.update(env)
        backend.reset()
        authority.reset()
        if not store.exists():
            _secret_file(Path(env["STEPLESS_KEY_PASSWORD_FILE"]), overwrite=False)
            self._init_ca({"KeyDirectory": str(self.home / "secrets")}, "files")
        elif self.password_file is None:
            self.password_file = self.home / "secrets" / "password"
        self._publish(authority.get().root_pems[0], authority.get().intermediate_pem, env,
                      {"engine": "sqlite", **env})

    def _start_moto(self) -> None:
        """moto server (serialized) with the template's resources, and a new CA."""
        from stepless.local.moto import SerializedMotoServer

        quiet_moto()
        port = free_port()
        self._moto = SerializedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._moto.start()  # type: ignore[attr-defined]
        self.moto_url = f"http://127.0.0.1:{port}"
        resources = stack.deploy_local_stack(self.moto_url, stack_name=STACK_NAME, key_backend=self.key_backend)
        envs = stack.function_env(resources, endpoint_url=self.moto_url)
        os.environ.pop(backend.STORE, None)
        for env in envs.values():  # in-process: every function shares this process's environment
            os.environ.update(env)
        aws.reset()
        backend.reset()
        authority.reset()
        self._init_ca(resources, self.key_backend)
        self._publish(authority.get().root_pems[0], authority.get().intermediate_pem, {
            "AWS_ENDPOINT_URL": self.moto_url, **target.LOCAL_CREDENTIALS,
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "STEPLESS_STACK": STACK_NAME},
            {"engine": "moto", "endpoint": self.moto_url, "region": "us-east-1"})

    def _password(self) -> str:
        if self.password_file is not None:
            return self.password_file.read_text().splitlines()[0]
        path = self.home / "secrets" / "password"
        self.password_file = path
        return _secret_file(path, overwrite=True)

    def _init_ca(self, outputs: dict[str, str], key_backend: str) -> None:
        from stepless.admin.init import init

        init(outputs=outputs, backend=key_backend, name="stepless dev", dns_names=self.names,
             provisioner=self.provisioner, password=self._password(), ssh=True, force=True)

    def _publish(self, root_pem: str, intermediate_pem: str, env: dict[str, str], engine: dict[str, str]) -> None:
        """What a client needs to bootstrap (URL, fingerprint, root); how administrator commands reach this CA
        (``engine``: the local record's engine part, see :meth:`local_record`); ``env`` for other tools."""
        from cryptography import x509

        host, port = self.address
        self.fingerprint = authority.fingerprint(x509.load_pem_x509_certificate(root_pem.encode()))
        shown = f"[{host}]" if ":" in host else host
        self.url = f"https://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else shown}:{port}"
        certs = self.home / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "root_ca.crt").write_text(root_pem)
        (certs / "intermediate_ca.crt").write_text(intermediate_pem)
        clienthome.save_defaults({"ca-url": self.url, "fingerprint": self.fingerprint,
                              "root": str(certs / "root_ca.crt"), target.LOCAL_KEY: self.local_record(engine)})
        path = self.home / "config" / "dev.env"  # for other tools; our commands find the CA through the defaults
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.config_stamp.parent.mkdir(parents=True, exist_ok=True)
        self.config_stamp.write_text("0\n")

    @property
    def names(self) -> list[str]:
        """The CA's names (its certificate, the gateway's, the mTLS domains): local ones, the address, --dns."""
        return list(dict.fromkeys([*LOCAL_NAMES, self.address[0], *self.dns_names]))

    @property
    def config_stamp(self) -> Path:
        """Touched by administrator commands after a change; the gateway then reloads the configuration."""
        return self.home / "state" / "config-changed"

    def local_record(self, engine: dict[str, str]) -> dict[str, str]:
        """What administrator commands need to reach this CA (``stepless.admin.target``): its engine
        (``moto``: endpoint and region; ``sqlite``: the store and the key password file) and stack name."""
        return {**engine, "stack": STACK_NAME, "ca-url": self.url, "config-stamp": str(self.config_stamp)}

    def _tls_files(self) -> tuple[Path, Path]:
        """A server certificate for the gateway, issued by the CA's own intermediate."""
        auth = authority.get()
        key = ec.generate_private_key(ec.SECP256R1())
        now = clock.now()
        from stepless.x509.csr import SANs

        cert = profile.leaf(public_key=key.public_key(), common_name="localhost", sans=SANs.split(self.names),
                            not_before=now - dt.timedelta(minutes=1), not_after=now + dt.timedelta(days=30),
                            issuer=auth.intermediate, signer=auth.intermediate_signer,
                            provisioner=(1, "stepless-dev-gateway", ""))
        tls = self.home / "tls"
        tls.mkdir(parents=True, exist_ok=True, mode=0o700)
        crt, key_path = tls / "gateway.crt", tls / "gateway.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                        + auth.intermediate_pem.encode())
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a file left by an earlier version keeps its mode through O_CREAT
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        return crt, key_path

    def _serve(self) -> None:
        crt, key = self._tls_files()
        ctx = gateway.tls_context(str(crt), str(key), str(self.home / "certs" / "root_ca.crt"))
        path = stack.default_template_path()
        routes = template.routes(template.load_template(path))
        self._gateway = gateway.Gateway(self.address, routes, path.parent, ctx,
                                        access_log=bool(os.environ.get("STEPLESS_ACCESS_LOG")),
                                        config_stamp=self.config_stamp, observer=self.observer)
        self._gateway.start()

    def stop(self) -> None:
        """Stop the scheduler, the gateway and moto."""
        self._stop_schedule.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout=30)
        if self._gateway is not None:
            self._gateway.shutdown()
            self._gateway.server_close()
        if self._moto is not None:
            self._moto.stop()  # type: ignore[attr-defined]
            self._moto = None
        if self.engine == "sqlite":
            backend.reset()  # closes this process's database connections
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = None


def _secret_file(path: Path, *, overwrite: bool) -> str:
    """The value in ``path`` (a new random one written with mode 0600 when missing, empty or ``overwrite``)."""
    if path.exists() and not overwrite:
        lines = path.read_text().splitlines()
        if lines and lines[0]:
            return lines[0]
    value = secrets.token_urlsafe(24)
    write_private(path, (value + "\n").encode())  # replaced whole: a run killed mid-write leaves no empty file
    return value


class _LocalContext:
    """The part of a Lambda context the renewal run reads: the time left before the timeout."""

    def __init__(self, timeout_s: float) -> None:
        import time

        self._deadline = time.monotonic() + float(timeout_s)

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(0, int((self._deadline - time.monotonic()) * 1000))

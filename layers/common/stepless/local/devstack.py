"""``stepless dev``: moto server + the template's resources + an initialized CA + the HTTPS gateway."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stepless import authority, aws, clock, settings
from stepless.admin import target
from stepless.local import gateway, stack, template
from stepless.x509 import profile

LOCAL_NAMES = ["localhost", "127.0.0.1", "::1"]
STACK_NAME = "stepless-dev"


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


@dataclass
class DevStack:
    """Everything ``stepless dev`` starts; :meth:`stop` ends it all."""

    home: Path
    address: tuple[str, int] = ("127.0.0.1", 8443)
    password_file: Path | None = None
    key_backend: str = "kms"
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

    def start(self) -> None:
        """Bring the stack up (blocking until the gateway listens)."""
        from moto.server import ThreadedMotoServer

        quiet_moto()
        self.home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._moto.start()  # type: ignore[attr-defined]
        self.moto_url = f"http://127.0.0.1:{port}"
        resources = stack.deploy_local_stack(self.moto_url, stack_name=STACK_NAME, key_backend=self.key_backend)
        ttl = os.environ.get("STEPLESS_CONFIG_TTL")  # the caller's, before the template's default (30) lands
        envs = stack.function_env(resources, endpoint_url=self.moto_url)
        for env in envs.values():  # in-process: every function shares this process's environment
            os.environ.update(env)
        # a safety net only: administrator changes made through the CLI are applied at once (config_stamp)
        os.environ["STEPLESS_CONFIG_TTL"] = ttl or "5"
        # the gateway asks every client for a certificate on all its names: each is an "mTLS domain"
        os.environ[settings.MTLS_DOMAIN] = ",".join(dict.fromkeys([*LOCAL_NAMES, self.address[0], *self.dns_names]))
        aws.reset()
        authority.reset()
        self._init_ca(resources)
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

    def _password(self) -> str:
        if self.password_file is not None:
            return self.password_file.read_text().splitlines()[0]
        path = self.home / "secrets" / "password"
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = secrets.token_urlsafe(18)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        self.password_file = path
        return value

    def _init_ca(self, resources: dict[str, str]) -> None:
        from stepless.admin.init import init

        host, port = self.address
        names = list(dict.fromkeys([*LOCAL_NAMES, host, *self.dns_names]))
        result = init(outputs=resources, backend=self.key_backend, name="stepless dev", dns_names=names,
                      provisioner=self.provisioner, password=self._password(), ssh=True, force=True)
        self.fingerprint = result.fingerprint
        shown = f"[{host}]" if ":" in host else host
        self.url = f"https://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else shown}:{port}"
        certs = self.home / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "root_ca.crt").write_text(result.root_pem)
        (certs / "intermediate_ca.crt").write_text(result.intermediate_pem)
        from stepless.cli import config

        config.save_defaults({"ca-url": self.url, "fingerprint": self.fingerprint,
                              "root": str(certs / "root_ca.crt"), target.LOCAL_KEY: self.local_record()})
        env = self.home / "config" / "dev.env"  # for other AWS tools (aws …); our commands use the defaults
        env.write_text("".join(f"{k}={v}\n" for k, v in {
            "AWS_ENDPOINT_URL": self.moto_url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "STEPLESS_STACK": STACK_NAME}.items()))
        self.config_stamp.parent.mkdir(parents=True, exist_ok=True)
        self.config_stamp.write_text("0\n")

    @property
    def config_stamp(self) -> Path:
        """Touched by administrator commands after a change; the gateway then reloads the configuration."""
        return self.home / "state" / "config-changed"

    def local_record(self) -> dict[str, str]:
        """What administrator commands need to reach this CA (``stepless.admin.target``)."""
        return {"engine": "moto", "stack": STACK_NAME, "endpoint": self.moto_url, "region": "us-east-1",
                "ca-url": self.url, "config-stamp": str(self.config_stamp)}

    def _tls_files(self) -> tuple[Path, Path]:
        """A server certificate for the gateway, issued by the CA's own intermediate."""
        auth = authority.get()
        key = ec.generate_private_key(ec.SECP256R1())
        now = clock.now()
        names = list(dict.fromkeys([*LOCAL_NAMES, self.address[0], *self.dns_names]))
        from stepless.x509.csr import SANs

        cert = profile.leaf(public_key=key.public_key(), common_name="localhost", sans=SANs.split(names),
                            not_before=now - dt.timedelta(minutes=1), not_after=now + dt.timedelta(days=30),
                            issuer=auth.intermediate, signer=auth.intermediate_signer,
                            provisioner=(1, "stepless-dev-gateway", ""))
        tls = self.home / "tls"
        tls.mkdir(parents=True, exist_ok=True, mode=0o700)
        crt, key_path = tls / "gateway.crt", tls / "gateway.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                        + auth.intermediate_pem.encode())
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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


class _LocalContext:
    """The part of a Lambda context the renewal run reads: the time left before the timeout."""

    def __init__(self, timeout_s: float) -> None:
        import time

        self._deadline = time.monotonic() + float(timeout_s)

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(0, int((self._deadline - time.monotonic()) * 1000))

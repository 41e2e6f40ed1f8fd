"""Timing, memory and AWS-call helpers shared by the benchmarks, and the result table."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARK = "BENCH-RESULT "  # prefix of the line a child process reports its figures on
# the peer step-ca 0.19 and step CLI (tools/build-step.sh), for the benchmarks that run step-ca beside stepless
STEP_CA = Path.home() / ".cache" / "stepless-peers" / "bin" / "step-ca"
STEP = STEP_CA.with_name("step")


# --- timing -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds per operation, one sample per round: CPU time of this process, and wall time.

    CPU time is what "per core" means and is robust to other processes sharing the machine; wall
    time is kept as a note.
    """

    samples: tuple[float, ...]  # CPU seconds per operation
    walls: tuple[float, ...]  # wall seconds per operation
    number: int

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def wall(self) -> float:
        return min(self.walls)

    @property
    def rate(self) -> float:
        """Operations per CPU second (best round)."""
        return 1.0 / self.min


def _timed(batch: Callable[[], int]) -> tuple[float, float, int]:
    w0, c0 = time.perf_counter(), time.process_time()
    number = batch()
    c1, w1 = time.process_time(), time.perf_counter()
    return (c1 - c0) / number, (w1 - w0) / number, number


def interleave(batches: dict[str, Callable[[], int]], *, rounds: int = 7, warmup: int = 1) -> dict[str, Timing]:
    """Time several batches round-robin (so load changes hit them alike); each returns its op count."""
    for _ in range(warmup):
        for batch in batches.values():
            batch()
    cpu: dict[str, list[float]] = {k: [] for k in batches}
    wall: dict[str, list[float]] = {k: [] for k in batches}
    numbers: dict[str, int] = {}
    for _ in range(rounds):
        for name, batch in batches.items():
            c, w, numbers[name] = _timed(batch)
            cpu[name].append(c)
            wall[name].append(w)
    return {k: Timing(tuple(cpu[k]), tuple(wall[k]), numbers[k]) for k in batches}


def repeat(fn: Callable[[], Any], *, number: int = 1, repeat: int = 5, warmup: int = 1) -> Timing:
    """Time ``fn`` ``number`` times per round, ``repeat`` rounds."""

    def batch() -> int:
        for _ in range(number):
            fn()
        return number

    return interleave({"fn": batch}, rounds=repeat, warmup=warmup)["fn"]


# --- memory -----------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB.

    On Linux the high-water mark of this process image (``VmHWM``): ``getrusage().ru_maxrss`` of a
    child started by ``subprocess`` also counts the parent's pages from before ``exec`` (the kernel
    carries the old image's peak across exec), so a child of a large parent would report the parent's
    size. Elsewhere, ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / (1024 * 1024)


# --- AWS calls --------------------------------------------------------------------------------------------


class AWSCalls:
    """Counts API calls (``service.Operation``) made through botocore clients, via a before-call hook.

    ``attach()`` hooks the clients ``stepless.aws.client`` hands out (the cached ones for ``services``)
    and the shared session, so clients created later are counted too. A retried call counts once.
    """

    READS = {"GetItem", "BatchGetItem", "Query", "Scan", "GetSecretValue", "GetPublicKey", "DescribeKey"}

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._uid = f"stepless-bench-calls-{id(self)}"

    def _on_call(self, event_name: str = "", **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        self.counts[f"{service}.{operation}"] += 1

    def attach(self, services: tuple[str, ...] = ("dynamodb", "kms", "secretsmanager")) -> AWSCalls:
        from stepless import aws, awssession

        awssession.session().register("before-call.*.*", self._on_call, unique_id=self._uid)  # clients made later
        for service in services:
            aws.client(service).meta.events.register("before-call.*.*", self._on_call, unique_id=self._uid)
        return self

    def reset(self) -> None:
        self.counts.clear()

    def reads(self) -> int:
        return sum(n for name, n in self.counts.items() if name.split(".", 1)[1] in self.READS)

    def per(self, n: int) -> dict[str, float]:
        return {name: count / n for name, count in sorted(self.counts.items())}



class CallCounter:
    """AWS calls on either path: the lean one (``stepless.awsclient.observers``) and the full botocore
    client (:class:`AWSCalls`'s before-call hook). ``calls.attach()`` and ``with attached():`` both count."""

    def __init__(self) -> None:
        self.calls = AWSCalls()

    def lean(self, service: str, operation: str) -> None:
        self.calls.counts[f"{service}.{operation}"] += 1

    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        from stepless import awsclient

        awsclient.observers.append(self.lean)
        try:
            yield
        finally:
            awsclient.observers.remove(self.lean)


def expect(res: dict, status: int) -> dict:
    """A handler's response, which must have ``status`` (else the benchmark stops with the response)."""
    if res["statusCode"] != status:
        raise RuntimeError(f"expected {status}: {res}")
    return res


def warm_counts(send: Callable[[Any], None], items: list[Any]) -> tuple[dict[str, int], dict[str, float], float]:
    """A fresh container (no clients, nothing loaded): the first request, then the rest counted per request.

    Returns (the first request's counts, calls per warm request by operation, reads per warm request).
    """
    from stepless import authority, aws

    aws.reset()
    authority.reset()
    counter = AWSCalls().attach()
    send(items[0])
    cold = dict(counter.counts)
    counter.reset()
    for item in items[1:]:
        send(item)
    n = len(items) - 1
    return cold, counter.per(n), counter.reads() / n

# --- environment and child processes ----------------------------------------------------------------------


@contextlib.contextmanager
def environ(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables for the duration of the block."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment for a child: no AWS profile/endpoint leaking in, the repo importable."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "STEPLESS_", "POWERTOOLS_")) and k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


@contextlib.contextmanager
def serving(args: list[str], env: dict[str, str], what: str) -> Iterator[tuple[int, int]]:
    """``python *args`` in a child process for the block, a server that prints ``PORT <n>`` once it listens:
    (that port, its pid); stopped (SIGTERM, then SIGKILL) after the block."""
    from tests.support.procs import stop

    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"{what} did not start: {line!r}")
        yield int(line.split()[1]), proc.pid
    finally:
        stop(proc)


def run_python(code: str, env: dict[str, str], *, args: tuple[str, ...] = (), timeout: float = 120,
               ) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``python [args] -c code``; (wall seconds, completed process). Raises on a non-zero exit."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args, "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall, proc


def child_result(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON a child printed after :data:`MARK`."""
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"child reported nothing:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def report(values: dict[str, Any]) -> None:
    """Called in a child: print figures for :func:`child_result`."""
    print(MARK + json.dumps(values), flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_stack(backend: str) -> Iterator[Any]:
    """An initialized CA whose tables and keys live in a moto server process (``bench.motoserver``, AWS calls
    over keep-alive HTTP); stepless caches reset."""
    from tests.support import ca as support

    from bench import motoserver
    from stepless import authority, aws

    with motoserver.running(fast_transactions=True) as (url, _), \
            environ({**support.env(), "AWS_ENDPOINT_URL": url, "STEPLESS_CONFIG_TTL": None, "AWS_PROFILE": None,
                     "STEPLESS_AWS_LEAN": None}):
        aws.reset()
        authority.reset()
        try:
            ca = support.initialize(support.create_resources(), backend=backend)
            aws.reset()
            authority.reset()
            yield ca
        finally:
            aws.reset()
            authority.reset()


@contextlib.contextmanager
def step_ca_server(acme: bool = False) -> Iterator[tuple[str, int, Path, Any, str]]:
    """A running step-ca 0.19 (its default badger DB) with a JWK provisioner ``bench`` and, with ``acme``, an
    ACME provisioner ``acme`` (``step ca provisioner add acme --type ACME``): (URL, pid, root cert path, the
    JWK provisioner's private key, its kid)."""
    import http.client
    import shutil
    import ssl
    import tempfile

    from cryptography.hazmat.primitives.asymmetric import ec

    from stepless import jose

    home = Path(tempfile.mkdtemp(prefix="stepless-bench-stepca-"))
    port = free_port()
    env = {**os.environ, "STEPPATH": str(home), "HOME": str(home)}
    (home / "pw").write_text("bench-password")
    config = home / "config" / "ca.json"
    proc = None
    try:
        subprocess.run([str(STEP), "ca", "init", "--name", "bench", "--dns", "127.0.0.1",
                        "--address", f"127.0.0.1:{port}", "--provisioner", "admin",
                        "--password-file", str(home / "pw"), "--provisioner-password-file", str(home / "pw")],
                       env=env, check=True, capture_output=True, timeout=120)
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = jose.public_jwk(key)
        kid = jose.thumbprint(jwk)
        pub = home / "bench.pub.json"
        pub.write_text(json.dumps({**jwk, "kid": kid, "use": "sig", "alg": "ES256"}))
        subprocess.run([str(STEP), "ca", "provisioner", "add", "bench", str(pub), "--ca-config", str(config)],
                       env=env, check=True, capture_output=True, timeout=60)
        if acme:
            subprocess.run([str(STEP), "ca", "provisioner", "add", "acme", "--type", "ACME", "--ca-config",
                            str(config)], env=env, check=True, capture_output=True, timeout=60)
        proc = subprocess.Popen([str(STEP_CA), str(config), "--password-file", str(home / "pw")],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        root = home / "certs" / "root_ca.crt"
        ctx = ssl.create_default_context(cafile=str(root))
        for _ in range(200):
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=2)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("step-ca did not start")
        yield f"https://127.0.0.1:{port}", proc.pid, root, key, kid
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def quiet_logger() -> Iterator[None]:
    """Send stepless's log lines to /dev/null (still formatted, so their cost stays in the figures)."""
    from stepless.observability import logger

    handler = logger.registered_handler
    with open(os.devnull, "w") as sink:
        old = handler.setStream(sink)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            handler.setStream(old)  # type: ignore[attr-defined]


# --- results ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    """One line of the result table."""

    bench: str
    measure: str
    value: str  # the ratio (or count) the row is about
    baseline: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""  # absolute figures, for orientation only


def table(rows: list[Row]) -> str:
    header = ("bench", "measure", "value", "baseline", "target", "met", "note")
    cells = [header] + [
        (r.bench, r.measure, r.value, r.baseline, r.target,
         "" if r.met is None else ("yes" if r.met else "NO"), r.note)
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header) - 1)]
    lines = []
    for n, c in enumerate(cells):
        lines.append("  ".join(v.ljust(w) for v, w in zip(c[:-1], widths, strict=True)) + "  " + c[-1])
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 4)
    return "\n".join(line.rstrip() for line in lines)


def run_sections(bench: str, sections: dict[str, Callable[[], tuple[list[Row], list[str]]]],
                 only: tuple[str, ...]) -> tuple[list[Row], list[str]]:
    """Run the named sections of one benchmark in order, timing each on stderr; rows and details joined."""
    rows: list[Row] = []
    details: list[str] = []
    for name in only:
        if name not in sections:
            raise ValueError(f"unknown section {name!r}; choose from {', '.join(sections)}")
        t0 = time.perf_counter()
        r, d = sections[name]()
        print(f"  {bench}/{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        rows += r
        details += d
    return rows, details


# A fresh interpreter imports a function's app.py and serves one event: the cold-start measure (sign, real).
APP_INIT_CODE = """\
import time
t0 = time.perf_counter()
import importlib.util
spec = importlib.util.spec_from_file_location("app", {path!r})
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
t1 = time.perf_counter()
res = app.handler({event!r}, None)
t2 = time.perf_counter()
assert res["statusCode"] == {status}, res
print({mark!r} + '{{"import": %f, "first": %f}}' % (t1 - t0, t2 - t1))
"""

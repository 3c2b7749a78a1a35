"""Serve a room from several app processes: ``python -m app.ui.replicas --replicas 2 [--port 8501]`` (``make serve``).

One Streamlit process runs its sessions' scripts under one GIL; a room of 50 viewers on a laptop is held by one (see
docs/load.md), and beyond that the app scales out the way Streamlit deployments do:

- **N replicas** — ``app.ui.serve`` processes on loopback ports, each with ``cores / N`` torch threads;
- **haproxy** (Debian's) in front on ``--address:--port``, with **sticky sessions**: its first answer sets a cookie
  naming the replica, and the websocket, the uploads and the media of that browser stay there. Replicas are checked
  every second (``/_stcore/health``); a dead one's browsers are sent to a live one (``option redispatch``), where
  Streamlit's frontend reconnects by itself and the page comes back from its URL (every control is in the URL);
- **Redis** (Debian's) on loopback, no persistence: the presenter rooms (``app.room_redis``), so that a presenter
  and an audience on different replicas share one room;
- a supervisor that restarts a replica that died (its log says why) and stops everything on Ctrl-C.

All replicas share one ``server.cookieSecret`` (made at start), so a browser moved to another replica keeps a valid
XSRF token. Logs and haproxy's configuration go to a fresh temporary folder (printed at start).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from app.paths import ROOT
from app.room import ROOMS_URL_ENV
from app.ui.serve import ServeError, free_port, stop, wait_healthy

COOKIE = "ofa_replica"  # haproxy's sticky-session cookie: the replica's name
HEALTH = "/_stcore/health"


def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if not path:
        raise ServeError(f"{name} is not installed: `make serve` installs it from Debian (apt-get install {name}).")
    return path


# ----------------------------------------------------------------------------------------------- Redis
@contextmanager
def redis_server(port: int | None = None, log: Path | None = None, timeout: float = 20.0) -> Iterator[str]:
    """A Redis server on 127.0.0.1 for the rooms: no persistence, bounded memory; yields its URL, stops it on exit."""
    import redis

    port = port or free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen([_tool("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--maxmemory", "64mb", "--maxmemory-policy", "volatile-ttl"],
                            stdout=out, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.RedisError:
                if proc.poll() is not None:
                    raise ServeError(f"redis-server exited with code {proc.returncode} at start") from None
                if time.monotonic() > deadline:
                    raise ServeError(f"redis-server did not answer within {timeout:.0f} s") from None
                time.sleep(0.1)
        client.close()
        yield url
    finally:
        stop(proc)
        if log:
            out.close()


# ----------------------------------------------------------------------------------------------- haproxy
def haproxy_config(address: str, port: int, replicas: list["Replica"]) -> str:
    """haproxy's configuration: sticky by cookie, health-checked, websockets kept open, a dead replica's browsers sent
    to a live one."""
    servers = "\n".join(f"  server {r.name} 127.0.0.1:{r.port} check cookie {r.name}" for r in replicas)
    bind = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return f"""# written by app/ui/replicas.py
global
  maxconn 4096

defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-request 30s
  # a websocket is a tunnel: the app's sessions stay open while the tab is
  timeout tunnel 4h
  timeout client-fin 5s
  # a dead replica's requests go to a live one: connection refused, or a kept-alive connection to it reset (a
  # request without a body — a page, the websocket's upgrade — is safe to send again), every retry redispatched
  option redispatch 1
  retries 3
  retry-on conn-failure empty-response response-timeout

frontend app
  bind {bind}
  default_backend replicas

backend replicas
  balance leastconn
  cookie {COOKIE} insert indirect nocache httponly
  option httpchk GET {HEALTH}
  http-check expect status 200
  default-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2
{servers}
"""


# ----------------------------------------------------------------------------------------------- replicas
@dataclass
class Replica:
    name: str
    port: int
    log: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """Running replicas behind haproxy, rooms in Redis."""

    url: str  # haproxy's address: what browsers open
    replicas: list[Replica]
    redis_url: str
    workdir: Path
    proxy: subprocess.Popen
    _stopping: threading.Event = field(default_factory=threading.Event)

    def kill(self, name: str) -> None:
        """Kill one replica at once (SIGKILL, as a crash would); the supervisor restarts it."""
        replica = next(r for r in self.replicas if r.name == name)
        if replica.proc is not None:
            replica.proc.kill()
            replica.proc.wait()

    def pids(self) -> dict[str, int]:
        return {r.name: r.proc.pid for r in self.replicas if r.proc is not None and r.proc.poll() is None}


def _start_replica(r: Replica, env: dict[str, str], secret: str, server_args: list[str]) -> None:
    log = open(r.log, "ab")
    try:
        r.proc = subprocess.Popen(
            [sys.executable, "-m", "app.ui.serve", "--server.port", str(r.port), "--server.address", "127.0.0.1",
             *server_args],
            cwd=ROOT, env={**env, "STREAMLIT_SERVER_COOKIE_SECRET": secret}, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()  # the child holds its own descriptor


def _supervise(cluster: Cluster, env: dict[str, str], secret: str, server_args: list[str]) -> None:
    """Restart a replica that exited (not while stopping), waiting longer after each quick death (1 s .. 30 s)."""
    while not cluster._stopping.wait(0.5):
        for r in cluster.replicas:
            if r.proc is not None and r.proc.poll() is not None and not cluster._stopping.is_set():
                code = r.proc.returncode
                with open(r.log, "a") as f:
                    f.write(f"\n[replicas] {r.name} exited with code {code}; restarting\n")
                print(f"replica {r.name} exited (code {code}); restarting it", file=sys.stderr, flush=True)
                if cluster._stopping.wait(min(30.0, 1.0 * 2 ** min(r.restarts, 5))):
                    return
                r.restarts += 1
                _start_replica(r, env, secret, server_args)


@contextmanager
def serving_replicas(replicas: int = 2, *, port: int | None = None, address: str = "127.0.0.1",
                     threads: int | None = None, env: dict[str, str] | None = None, server_args: list[str] | None = None,
                     workdir: Path | None = None, timeout: float = 180.0) -> Iterator[Cluster]:
    """Start Redis, ``replicas`` app processes and haproxy in front (on ``address:port``, a free port by default);
    yields once every replica is healthy and the proxy answers; stops all of them on exit."""
    if replicas < 1:
        raise ServeError("--replicas must be at least 1")
    haproxy = _tool("haproxy")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="ofa-explorer-serve-"))
    workdir.mkdir(parents=True, exist_ok=True)
    threads = threads or max(1, (os.cpu_count() or 1) // replicas)
    secret = secrets.token_hex(32)
    server_args = list(server_args or [])
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(log=workdir / "redis.log"))
        child_env = {**os.environ, "PYTHONPATH": str(ROOT), "OFA_EXPLORER_THREADS": str(threads),
                     ROOMS_URL_ENV: redis_url, **(env or {})}
        members = [Replica(f"r{i + 1}", free_port(), workdir / f"replica-r{i + 1}.log") for i in range(replicas)]
        stopping = threading.Event()
        try:
            for r in members:
                _start_replica(r, child_env, secret, server_args)
            try:
                for r in members:
                    wait_healthy(r.url, r.proc, f"replica {r.name}", timeout)
            except ServeError as exc:
                raise ServeError(f"{exc} (its log is in {workdir})") from None
            port = port or free_port(address if address not in ("0.0.0.0", "::") else "127.0.0.1")
            cfg = workdir / "haproxy.cfg"
            cfg.write_text(haproxy_config(address, port, members))
            check = subprocess.run([haproxy, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True)
            if check.returncode != 0:
                raise ServeError(f"haproxy refused its configuration: {(check.stderr or check.stdout).strip()[:200]}")
            proxy_log = open(workdir / "haproxy.log", "ab")
            proxy = subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=proxy_log, stderr=subprocess.STDOUT)
            proxy_log.close()
            stack.callback(stop, proxy)
            host = "127.0.0.1" if address in ("0.0.0.0", "::") else address
            url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
            wait_healthy(url, proxy, "haproxy", 30.0)
            cluster = Cluster(url, members, redis_url, workdir, proxy, stopping)
            watcher = threading.Thread(target=_supervise, args=(cluster, child_env, secret, server_args),
                                       name="replica-supervisor", daemon=True)
            watcher.start()
            yield cluster
        finally:
            stopping.set()
            for r in members:
                stop(r.proc)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=2, help="app processes (default 2: one per core here)")
    ap.add_argument("--port", type=int, default=8501, help="where browsers connect (haproxy)")
    ap.add_argument("--address", default="0.0.0.0",
                    help="haproxy's address (default every interface, so phones in the room can join)")
    ap.add_argument("--threads", type=int, help="torch threads per replica (default cores / replicas)")
    ap.add_argument("streamlit", nargs="*", help="more options for each replica's Streamlit, after --")
    args = ap.parse_args(argv)
    try:
        with serving_replicas(args.replicas, port=args.port, address=args.address, threads=args.threads,
                              server_args=args.streamlit) as cluster:
            shown = f"http://{'localhost' if args.address in ('0.0.0.0', '::') else args.address}:{args.port}"
            print(f"OFA Explorer: {len(cluster.replicas)} replicas behind haproxy at {shown} "
                  f"(rooms in Redis; logs in {cluster.workdir}). Ctrl-C stops all.", flush=True)
            done = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: done.set())
            try:
                while not done.wait(1.0):
                    if cluster.proxy.poll() is not None:
                        raise ServeError(f"haproxy exited with code {cluster.proxy.returncode} "
                                         f"(see {cluster.workdir / 'haproxy.log'})")
            except KeyboardInterrupt:
                pass
    except ServeError as exc:
        raise SystemExit(f"make serve: {exc}") from None
    print("stopped", flush=True)


if __name__ == "__main__":
    main()

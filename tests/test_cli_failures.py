"""Every failure of ``livefleet`` is one line on stderr and a documented exit status, never a traceback.

Real subprocesses, run concurrently:

- every command and action of the parser (enumerated from it, so a new one is covered) with an option it
  does not take: argparse's usage and error lines, status 2, before any server is touched;
- every command that talks to Redis or MongoDB (``crawlers.cli.main.SERVICES``, plus ``status`` and
  ``queue``, which read Redis themselves) with ``REDIS_URL`` and ``MONGO_URI`` on a closed loopback port:
  one line naming the server, status 3, within seconds;
- input the commands refuse themselves: an unknown spider (the message names those that exist), an unknown
  platform; status 2.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from crawlers.cli import main as cli
from settings.config import child_environment

ROOT = Path(__file__).resolve().parents[1]

#: Commands that talk to no server (or start their own), so an unreachable one cannot fail them.
NO_SERVICES = {"parse", "demo", "sandbox", "completion", "stop"}
#: Commands that read Redis themselves with short timeouts (not through ``main``'s check).
OWN_CHECK = {"status": ["status"], "queue": ["queue", "dead"]}
#: A valid command line for each entry of ``SERVICES`` that needs a server.
VALID: dict[str | tuple[str, str], list[str]] = {
    "crawl": ["crawl", "bilibili", "--room", "5440"],
    "worker": ["worker", "--spider", "bilibili", "--idle-close", "1"],
    "summary": ["summary"],
    "monitor": ["monitor", "list"],
    "campaign": ["campaign", "runs"],
    "scheduler": ["scheduler", "--once"],
    "spool": ["spool", "replay"],
    "services": ["services", "start"],
    "feed": ["feed", "info"],
    "webhooks": ["webhooks", "list"],
    "api": ["api", "--port", "1"],
    "rank": ["rank", "rooms", "--platform", "douyin", "--by", "peak_viewers"],
    "export": ["export", "rooms", "--out", "-"],
    "migrate": ["migrate", "kuaishou-ids", "--dry-run"],
    "sessions": ["sessions", "list"],
    "watch": ["watch", "list"],
    ("watch", "run"): ["watch", "run"],
}


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _command_paths(sub, (*prefix, name))


class Run:
    """One finished ``livefleet`` process and how long it took."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "crawlers", *argv], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.seconds = time.monotonic() - started
        self.returncode, self.stdout, self.stderr = done.returncode, done.stdout, done.stderr


def _run_all(runs: list[list[str]], env: dict[str, str]) -> list[Run]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda argv: Run(argv, env), runs))


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound by this test and not listening: a connection to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _usage_error(where: str, code: int | str | None, stdout: str, stderr: str) -> None:
    assert code == cli.EXIT_USAGE, where
    assert "Traceback" not in stderr and stdout == "", where
    lines = stderr.strip().splitlines()
    # argparse's usage (wrapped over lines when long), then one error line.
    assert lines[0].startswith("usage: ") and ": error: " in lines[-1], where
    assert sum(": error: " in line for line in lines) == 1, where


@pytest.mark.integration  # dozens of processes: out of the fast loop, in the full suite
def test_every_command_refuses_a_bad_option_with_usage_and_status_2(tmp_path):
    """Each command as a real process; its actions (``monitor add``...) in this one, through ``main``."""
    commands = sorted(dict.fromkeys(path[0] for path in _command_paths(cli.build_parser())))
    assert commands == sorted(cli.COMMANDS)  # the enumeration sees every command
    env = child_environment(LIVEFLEET_VAR_DIR=str(tmp_path / "var"), REDIS_URL="", MONGO_URI="")
    results = _run_all([[command, "--no-such-option"] for command in commands], env)
    for command, result in zip(commands, results, strict=True):
        _usage_error(f"livefleet {command} --no-such-option: {result.stderr!r}", result.returncode, result.stdout,
                     result.stderr)
    assert not (tmp_path / "var").exists()  # nothing was started, nothing written


def test_every_action_refuses_a_bad_option_the_same_way(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LIVEFLEET_VAR_DIR", str(tmp_path / "var"))
    actions = [path for path in _command_paths(cli.build_parser()) if len(path) > 1]
    assert ("watch", "alert", "add") in actions and ("monitor", "stop") in actions
    for path in actions:
        with pytest.raises(SystemExit) as exited:
            cli.main([*path, "--no-such-option"])
        captured = capsys.readouterr()
        _usage_error(f"livefleet {' '.join(path)} --no-such-option: {captured.err!r}", exited.value.code,
                     captured.out, captured.err)
    assert not (tmp_path / "var").exists()


@pytest.mark.integration  # dozens of processes: out of the fast loop, in the full suite
def test_unreachable_servers_are_one_line_and_status_3(tmp_path, closed_port):
    classified = {key if isinstance(key, str) else key[0] for key in cli.SERVICES} | NO_SERVICES | set(OWN_CHECK)
    assert classified == set(cli.COMMANDS), "a command is missing from SERVICES (or from this test's lists)"
    needing = [key for key, needed in cli.SERVICES.items() if needed]
    assert set(VALID) == set(needing), "give this test a valid command line for each entry of SERVICES"
    runs = [VALID[key] for key in needing] + list(OWN_CHECK.values())
    env = child_environment(REDIS_URL=f"redis://:secret@127.0.0.1:{closed_port}/0",
                            MONGO_URI=f"mongodb://u:secret@127.0.0.1:{closed_port}/?directConnection=true",
                            LIVEFLEET_VAR_DIR=str(tmp_path / "var"), LIVEFLEET_API_TOKEN="t")
    results = _run_all(runs, env)
    for argv, result in zip(runs, results, strict=True):
        where = f"livefleet {' '.join(argv)}: {result.returncode} {result.stderr!r} in {result.seconds:.1f}s"
        assert result.returncode == cli.EXIT_UNREACHABLE, where
        # The check gives up after CHECK_TIMEOUT (3 s), where the clients' own retries and server selection
        # took 30 s and more; the rest is starting Python, with room for a loaded machine.
        assert result.seconds < 15, where
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"livefleet {argv[0]}"), where
        assert ("Redis" in lines[0] or "MongoDB" in lines[0]) and f"127.0.0.1:{closed_port}" in lines[0], where
        assert "secret" not in result.stderr + result.stdout, where


@pytest.mark.integration  # real processes: out of the fast loop, in the full suite
def test_refused_input_is_one_line_and_status_2(tmp_path):
    env = child_environment(LIVEFLEET_VAR_DIR=str(tmp_path / "var"), REDIS_URL="", MONGO_URI="")
    runs = [["worker", "--spider", "nosuch"], ["crawl", "myspace", "--room", "1"],
            ["crawl", "bilibili", "--seed", "{not json"]]
    results = _run_all(runs, env)
    for argv, result in zip(runs, results, strict=True):
        where = f"livefleet {' '.join(argv)}: {result.returncode} {result.stderr!r}"
        assert result.returncode == cli.EXIT_USAGE and "Traceback" not in result.stderr, where
        assert len(result.stderr.strip().splitlines()) == 1, where
    assert "'nosuch'" in results[0].stderr
    assert all(name in results[0].stderr for name in ("bilibili", "douyin", "kuaishou", "taobao"))
    assert "myspace" in results[1].stderr and "--seed" in results[2].stderr
    assert not (tmp_path / "var" / "run").exists()  # refused before any server started


def test_help_lists_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for code, meaning in cli.EXIT_CODES.items():
        assert f"  {code:<4} {meaning}" in out


def test_an_unexpected_error_is_one_line_and_the_traceback_is_behind_v(monkeypatch, capsys):
    from crawlers.cli import summary

    def broken(args: argparse.Namespace, config: object) -> int:
        raise TypeError("unsupported operand")

    monkeypatch.setattr(summary, "run", broken)
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("MONGO_URI", "")
    assert cli.main(["summary"]) == cli.EXIT_BUG
    err = capsys.readouterr().err
    assert err == ("livefleet summary: unexpected error TypeError: unsupported operand (a bug: run again with -v "
                   "for the traceback)\n")
    assert cli.main(["-v", "summary"]) == cli.EXIT_BUG
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and 'raise TypeError("unsupported operand")' in err

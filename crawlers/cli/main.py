"""``livefleet``: the command line of the fleet (also ``python -m crawlers``).

Each command is one module of this package with ``add_parsers(sub)`` and
``run(args, config)``; this module only builds the parser and dispatches.

    livefleet parse --platform bilibili FILE...     parse saved payloads, print JSON lines
    livefleet crawl bilibili --areas                 push seeds to the shared queue
    livefleet worker [--spider bilibili]             run a worker of the fleet
    livefleet sandbox [--streamers N ...]            serve the platform replicas locally
    livefleet demo                                   a short campaign on embedded services
    livefleet summary                                counts of what is in MongoDB
    livefleet status [--json]                        workers, queues, leases, dead letters, rates
    livefleet monitor add douyin URL|ID --every 30s --for 6h   watch a room; monitor list|stop
    livefleet watch add NAME --platform P URL|ID... [--tier hot]   watchlists: import|list|remove|stop|alert
    livefleet campaign validate|run|runs             campaign files: check, run one now, list runs
    livefleet scheduler [--dir DIR] [--once]         every campaign of a folder on its schedule
    livefleet queue dead|retry-dead                  dead letters: list, or put back into the queue
    livefleet spool replay|status                    write spooled records back to MongoDB
    livefleet migrate kuaishou-ids [--dry-run]       re-key stored Kuaishou documents by user id
    livefleet services start|status|stop             the embedded Redis / MongoDB
    livefleet feed read COLLECTION --group G [--follow]   stored changes as JSON lines; feed info
    livefleet webhooks [add|list|remove|failures|replay]  deliver changes to webhooks (default: run)
    livefleet api [--host H] [--port P]              the same operations over HTTP (LIVEFLEET_API_TOKEN)
    livefleet stop                                   stop everything livefleet left running
    livefleet rank rooms --platform P --by peak_viewers --since 24h   a reference ranking (crawlers/reports/ranking.py)
    livefleet export rooms --platform P --since 24h --format csv --out F   a collection to JSONL or CSV
    livefleet sessions run|rebuild|list              live sessions (直播场次) from the feeds
    livefleet completion bash|zsh                    a shell completion script

Global options come before the command: ``-v`` (routine service lines; tracebacks of unexpected errors),
``-vv`` (DEBUG), ``-q`` (warnings only), ``--version``. Every failure ends in one line on stderr and an exit
status of its kind (:data:`EXIT_CODES`, listed by ``livefleet --help``): the expected kinds are caught here,
once, not in each command. A command that needs a Redis or MongoDB given by ``REDIS_URL``/``MONGO_URI`` checks
first that it answers, within seconds (:func:`check_services`), instead of waiting out the clients' retries.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from importlib import metadata
from types import ModuleType

import pymongo.errors
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from crawlers.cli.logs import configure
from crawlers.redis.connection import redact
from models.errors import LivefleetError, StoreUnavailableError
from settings.config import Config

#: Every command, and the module of ``crawlers.cli`` that adds its parser and runs it.
COMMANDS: dict[str, str] = {
    "parse": "parse", "crawl": "crawl", "worker": "worker", "sandbox": "sandbox", "demo": "demo",
    "summary": "summary", "status": "status", "monitor": "monitor", "campaign": "campaign",
    "scheduler": "campaign", "queue": "queue", "spool": "spool", "services": "services", "stop": "services",
    "feed": "feed", "webhooks": "feed", "api": "api", "rank": "rank", "export": "export",
    "migrate": "migrate", "sessions": "sessions", "watch": "watch", "completion": "completion",
}

#: The servers each command talks to, checked before it runs when they come from the environment
#: (``REDIS_URL``, ``MONGO_URI``). Not listed: a command that talks to none (``parse``, ``completion``), one that
#: starts its own (``demo``, ``sandbox``), and ``status`` and ``queue``, which read Redis with short timeouts
#: themselves and explain what they find. A (command, action) pair overrides its command.
SERVICES: dict[str | tuple[str, str], tuple[str, ...]] = {
    "crawl": ("redis",), "worker": ("redis", "mongo"), "summary": ("mongo",), "monitor": ("redis",),
    "campaign": ("redis", "mongo"), ("campaign", "validate"): (), "scheduler": ("redis", "mongo"),
    "spool": ("mongo",), ("spool", "status"): (), "services": ("redis", "mongo"), ("services", "status"): (),
    ("services", "stop"): (), "feed": ("redis",), "webhooks": ("redis",), "api": ("redis", "mongo"),
    "rank": ("mongo",), "export": ("mongo",), "migrate": ("mongo",), "sessions": ("redis", "mongo"),
    "watch": ("redis",), ("watch", "run"): ("redis", "mongo"),
}

EXIT_OK = 0
#: The command ran and the work failed (a campaign run failed, a file could not be replayed, problems found).
EXIT_FAILED = 1
#: Bad arguments (argparse's own status) or bad input: an unknown spider, platform or ID, a malformed value.
EXIT_USAGE = 2
#: Redis or MongoDB does not answer, or refuses livefleet's credentials.
EXIT_UNREACHABLE = 3
#: An unexpected error: a bug. ``-v`` shows its traceback.
EXIT_BUG = 4
EXIT_INTERRUPTED = 130
EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done",
    EXIT_FAILED: "the work failed (a run failed, records left unreplayed, problems found)",
    EXIT_USAGE: "bad arguments or input (unknown spider, platform, ID; a malformed value)",
    EXIT_UNREACHABLE: "Redis or MongoDB unreachable, or refusing livefleet's credentials",
    EXIT_BUG: "an unexpected error (a bug): run again with -v for the traceback",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

#: Seconds a command waits for a Redis or MongoDB from the environment to answer before it gives up.
CHECK_TIMEOUT = 3.0


class ServiceUnreachable(Exception):
    """A server the command needs does not answer (the message names it, its URL redacted)."""


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"crawlers.cli.{name}")


def version_text() -> str:
    """``livefleet X (Scrapy Y, Python Z)``: the installed distributions' versions."""

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    python = ".".join(str(part) for part in sys.version_info[:3])
    return f"livefleet {installed('livefleet')} (Scrapy {installed('scrapy')}, Python {python})"


def _epilog() -> str:
    codes = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items())
    return (f"exit status:\n{codes}\n\nEvery failure is one line on stderr. Global options go before the "
            "command:\nlivefleet -v status. Completion: livefleet completion bash|zsh.")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global options, then every command's parser."""
    parser = argparse.ArgumentParser(prog="livefleet", description="A crawler fleet for live-commerce data.",
                                     epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="also log the embedded servers' start and reuse, and show the traceback of an "
                             "unexpected error; -vv: DEBUG")
    parser.add_argument("-q", "--quiet-logs", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in dict.fromkeys(COMMANDS.values()):  # each module once, in the order above
        _module(name).add_parsers(sub)
    return parser


def _action(args: argparse.Namespace) -> str | None:
    for attribute in ("action", "campaign_action"):
        value = getattr(args, attribute, None)
        if isinstance(value, str):
            return value
    return None


def services_needed(args: argparse.Namespace) -> tuple[str, ...]:
    """The servers (``redis``, ``mongo``) the parsed command talks to (:data:`SERVICES`)."""
    action = _action(args)
    if action is not None and (args.command, action) in SERVICES:
        return SERVICES[(args.command, action)]
    return SERVICES.get(args.command, ())


def _reason(exc: BaseException) -> str:
    """An exception's text on one line, credentials redacted; pymongo's topology dump cut off."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.split(", Timeout: ")[0].split(" Topology Description: ")[0]
    return redact(text)


def check_services(config: Config, needed: Sequence[str], timeout: float = CHECK_TIMEOUT) -> None:
    """Ping the servers in ``needed`` that the environment names; :class:`ServiceUnreachable` when one does not
    answer within ``timeout`` seconds. Embedded servers are not checked: the command starts or reuses them."""
    if "redis" in needed and config.redis_url:
        client = redis.Redis.from_url(config.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                      retry=Retry(NoBackoff(), 0))
        try:
            client.ping()
        except redis.RedisError as exc:
            raise ServiceUnreachable(f"Redis at {redact(config.redis_url)} (REDIS_URL) does not answer: "
                                     f"{_reason(exc)}") from exc
        finally:
            client.close()
    if "mongo" in needed and config.mongo_uri:
        millis = int(timeout * 1000)
        mongo: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            config.mongo_uri, serverSelectionTimeoutMS=millis, connectTimeoutMS=millis, socketTimeoutMS=millis)
        try:
            mongo.admin.command("ping")
        except pymongo.errors.PyMongoError as exc:
            raise ServiceUnreachable(f"MongoDB at {redact(config.mongo_uri)} (MONGO_URI) does not answer: "
                                     f"{_reason(exc)}") from exc
        finally:
            mongo.close()


def _classify(exc: BaseException) -> tuple[int, str]:
    """The exit status and one-line message of an expected failure; (EXIT_BUG, ...) for anything else."""
    if isinstance(exc, ServiceUnreachable):
        return EXIT_UNREACHABLE, str(exc)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):  # AuthenticationError is a ConnectionError
        return EXIT_UNREACHABLE, f"Redis does not answer: {_reason(exc)}"
    if isinstance(exc, redis.RedisError):
        return EXIT_FAILED, f"Redis refused a command: {_reason(exc)}"
    if isinstance(exc, pymongo.errors.ConnectionFailure | pymongo.errors.ServerSelectionTimeoutError):
        return EXIT_UNREACHABLE, f"MongoDB does not answer: {_reason(exc)}"
    if isinstance(exc, pymongo.errors.ConfigurationError):  # a malformed MONGO_URI, an unknown option
        return EXIT_USAGE, f"MongoDB is misconfigured: {_reason(exc)}"
    if isinstance(exc, pymongo.errors.OperationFailure) and exc.code in (13, 18):  # unauthorized, auth failed
        return EXIT_UNREACHABLE, f"MongoDB refuses livefleet's credentials: {_reason(exc)}"
    if isinstance(exc, pymongo.errors.PyMongoError):
        return EXIT_FAILED, f"MongoDB refused an operation: {_reason(exc)}"
    if isinstance(exc, StoreUnavailableError):
        return EXIT_UNREACHABLE, _reason(exc)
    if isinstance(exc, LivefleetError):
        return EXIT_FAILED, _reason(exc)
    if isinstance(exc, KeyError):  # a name looked up in a registry: KeyError's text is the repr of the key
        return EXIT_USAGE, redact(" ".join(str(exc.args[0] if exc.args else exc).split()))
    if isinstance(exc, ValueError):
        return EXIT_USAGE, _reason(exc)
    if isinstance(exc, RuntimeError | OSError):
        return EXIT_FAILED, _reason(exc)
    return EXIT_BUG, (f"unexpected error {type(exc).__name__}: {_reason(exc)} (a bug: run again with -v for "
                      "the traceback)")


def _command_of(argv: Sequence[str]) -> str | None:
    """The first word of ``argv`` that is not a global option: the command."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if _command_of(args_list) == "sandbox":  # the sandbox has its own option parser
        return _module("sandbox").run_sandbox(args_list[args_list.index("sandbox") + 1:])
    args = build_parser().parse_args(args_list)
    verbose = int(args.verbose)
    try:
        config = Config.from_env()
    except ValueError as exc:
        print(f"livefleet: {_reason(exc)}", file=sys.stderr)
        return EXIT_USAGE
    # A worker logs this way until its CrawlerProcess is built, then Scrapy's way (LOG_LEVEL; crawlers/cli/logs.py).
    configure(log_format=config.log_format, level=config.log_level, verbose=verbose, quiet=args.quiet_logs)
    try:
        check_services(config, services_needed(args))
        return int(_module(COMMANDS[args.command]).run(args, config))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place failures become a line and an exit status
        code, message = _classify(exc)
        if verbose >= (1 if code == EXIT_BUG else 2):
            traceback.print_exc()
        print(f"livefleet {args.command}: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())

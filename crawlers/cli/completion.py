"""``livefleet completion bash|zsh``: print a shell completion script for livefleet.

shtab writes the script from the argparse parser itself, once: the shell then completes commands, actions
and options without running livefleet (argcomplete would run the command, importing Scrapy, at every TAB, and
needs a hook in it). Regenerate the script after an upgrade that adds commands or options.

    livefleet completion bash > ~/.local/share/bash-completion/completions/livefleet
    livefleet completion zsh > "${fpath[1]}/_livefleet"
"""

from __future__ import annotations

import argparse
from typing import Any

from settings.config import Config

SHELLS = ("bash", "zsh")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("completion", help="print a bash or zsh completion script for livefleet")
    p.add_argument("shell", choices=SHELLS)


def run(args: argparse.Namespace, config: Config) -> int:
    import shtab

    from crawlers.cli.main import build_parser

    print(shtab.complete(build_parser(), shell=args.shell), end="")
    return 0

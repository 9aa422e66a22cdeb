"""``livefleet --version`` and ``livefleet completion bash|zsh``."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata

import pytest

from crawlers.cli.main import COMMANDS, main


def test_version_names_livefleet_and_scrapy(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"livefleet {metadata.version('livefleet')} (Scrapy {metadata.version('scrapy')}, Python ")


def test_bash_completion_is_valid_bash_and_knows_the_commands(tmp_path, capsys):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    path = tmp_path / "livefleet.bash"
    path.write_text(script)
    bash = shutil.which("bash")
    assert bash is not None
    checked = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    for command in COMMANDS:
        assert command in script
    assert "retry-dead" in script and "--idle-close" in script  # actions and options, not only commands
    # Loaded into a shell, it completes `livefleet st` to the commands that start so.
    probe = subprocess.run([bash, "-c", f'source "{path}"; COMP_WORDS=(livefleet st); COMP_CWORD=1; '
                            'COMP_LINE="livefleet st"; COMP_POINT=${#COMP_LINE}; _shtab_livefleet; '
                            'printf "%s\\n" "${COMPREPLY[@]}"'], capture_output=True, text=True, timeout=30)
    assert set(probe.stdout.split()) == {"status", "stop"}, probe.stderr


def test_zsh_completion_is_a_compdef_script(capsys):
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef livefleet") and "worker" in script and "campaign" in script

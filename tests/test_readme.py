"""The README stays true: its configuration sample loads, and its two set-up commands are what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from contactd.config import load_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_sample_configuration_loads(tmp_path: Path) -> None:
    sample = re.search(r"```toml\n(.*?)```", README, re.S).group(1)
    path = tmp_path / "contactd.toml"
    path.write_text(sample, encoding="utf-8")
    config = load_config(path, env={})
    assert config.ami.host == "127.0.0.1" and config.pbx.queue == "support"
    assert config.sms.driver == "outbox" and config.hours.holidays


def test_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    setup = re.search(r"## Set up.*?```sh\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in setup.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")

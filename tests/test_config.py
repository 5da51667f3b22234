"""Configuration: TOML file, environment overrides, one clear message naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from contactd.config import ConfigError, load_config, public_view


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "contactd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_file_and_use_sqlite_and_the_in_process_bus() -> None:
    config = load_config(None, env={})
    assert config.db.url.startswith("sqlite")
    assert config.bus.redis_url == ""
    assert config.uses_simulator


def test_file_values_and_env_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, '[ami]\nhost = "pbx.local"\nport = 5039\nsecret = "from-file"\n[web]\nport = 9000\n')
    config = load_config(path, env={"CONTACTD_AMI__SECRET": "from-env", "CONTACTD_WEB__PORT": "9100",
                                    "UNRELATED": "x", "CONTACTD_HOURS__HOLIDAYS": "2026-12-25, 2027-01-01"})
    assert (config.ami.host, config.ami.port, config.ami.secret) == ("pbx.local", 5039, "from-env")
    assert config.web.port == 9100
    assert config.hours.holidays == ["2026-12-25", "2027-01-01"]
    assert not config.uses_simulator


@pytest.mark.parametrize(
    ("text", "env", "named"),
    [
        ('[ami]\nport = "abc"\n', {}, "ami.port"),
        ("[ami]\nprot = 1\n", {}, "ami.prot"),
        ("[amii]\nport = 1\n", {}, "amii"),
        ("[web]\nport = 70000\n", {}, "web.port"),
        ('[ami]\nhost = "pbx"\n', {}, "ami.secret"),
        ("", {"CONTACTD_AGI__PORT": "four"}, "agi.port"),
        ("", {"CONTACTD_AGI__NOPE": "1"}, "agi.nope"),
        ('[bus]\nredis_url = "localhost:6379"\n', {}, "bus.redis_url"),
        ("[ami\nhost=", {}, "invalid TOML"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env=env)
    assert named in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_secrets_never_shown(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[ami]\nhost = "pbx"\nsecret = "s3cr3t-value"\n'), env={})
    assert "s3cr3t-value" not in repr(config)
    assert "s3cr3t-value" not in str(public_view(config))

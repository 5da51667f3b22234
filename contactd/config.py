"""contactd's configuration: one TOML file, every key overridable by an environment variable.

`CONTACTD_AMI__SECRET=x` overrides `[ami] secret`. The whole configuration is one `Config` object that
`app.py` passes down explicitly; nothing reads the environment behind its back.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "CONTACTD_"


class ConfigError(Exception):
    """A configuration key is missing or invalid; the message names the key."""


@dataclass
class AMIConfig:
    # Empty host = no PBX configured: `contactd run` starts the built-in simulator instead.
    host: str = ""
    port: int = 5038
    username: str = "contactd"
    secret: str = dataclasses.field(default="", repr=False)
    auth: str = "plain"  # plain | md5
    ping_interval: float = 10.0
    action_timeout: float = 10.0
    reconnect_max_delay: float = 30.0


@dataclass
class AGIConfig:
    host: str = "127.0.0.1"
    port: int = 4573
    header_timeout: float = 5.0
    idle_timeout: float = 600.0


@dataclass
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    session_key: str = dataclasses.field(default="", repr=False)  # empty = random per start
    language: str = "ko"


@dataclass
class DBConfig:
    url: str = "sqlite+aiosqlite:///var/contactd.sqlite3"
    # CDRs the database refuses (down, locked) wait here on disk and are written when it is back.
    cdr_spool: str = "var/cdr-spool.jsonl"


@dataclass
class BusConfig:
    redis_url: str = ""  # empty = in-process
    queue_size: int = 1000
    # Several nodes (redis_url set): seconds the AMI-stream owner's Redis lease lasts unless renewed; a dead
    # owner is replaced within about 1.3x this, a live one renews every third of it.
    leader_ttl: float = 10.0


@dataclass
class RecordingsConfig:
    dir: str = "var/recordings"
    retention_days: int = 0  # 0 = keep forever


@dataclass
class PBXConfig:
    """How contactd names things inside Asterisk (must match dialplans/extensions_contactd.conf)."""

    queue: str = "support"
    vip_queue: str = "support-vip"
    agent_context: str = "contactd-agents"
    warning_context: str = "contactd-warning"
    click_to_call_context: str = "contactd-click2call"
    blacklist_family: str = "contactd-blacklist"
    shop_caller_id: str = ""
    channel_tech: str = "PJSIP"


@dataclass
class SimulatorConfig:
    # Seconds between demo calls when `contactd run` uses the simulator (0 = no demo calls).
    call_interval: float = 8.0


@dataclass
class HoursConfig:
    timezone: str = "Asia/Seoul"
    # Weekday (mon..sun) -> "HH:MM-HH:MM" or "" for closed.
    mon: str = "09:00-18:00"
    tue: str = "09:00-18:00"
    wed: str = "09:00-18:00"
    thu: str = "09:00-18:00"
    fri: str = "09:00-18:00"
    sat: str = ""
    sun: str = ""
    holidays: list[str] = field(default_factory=list)  # ISO dates


@dataclass
class IncidentsConfig:
    auto_blacklist_after: int = 0  # 0 = off


@dataclass
class SmsConfig:
    sender: str = ""  # the shop's registered sender number (발신번호)
    driver: str = "outbox"  # outbox (records + spool file, for demos) | http
    spool_dir: str = "var/sms-outbox"
    http_url: str = ""
    http_auth_header: str = "Authorization"
    http_token: str = dataclasses.field(default="", repr=False)
    http_timeout: float = 10.0
    http_retries: int = 3
    report_token: str = dataclasses.field(default="", repr=False)  # shared secret for delivery-report callbacks
    quiet_hours: str = "21:00-08:00"  # automatic messages wait until it ends; "" = none
    max_image_kb: int = 300
    history_days: int = 366


@dataclass
class Config:
    ami: AMIConfig = field(default_factory=AMIConfig)
    agi: AGIConfig = field(default_factory=AGIConfig)
    web: WebConfig = field(default_factory=WebConfig)
    db: DBConfig = field(default_factory=DBConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    recordings: RecordingsConfig = field(default_factory=RecordingsConfig)
    pbx: PBXConfig = field(default_factory=PBXConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    hours: HoursConfig = field(default_factory=HoursConfig)
    incidents: IncidentsConfig = field(default_factory=IncidentsConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)

    @property
    def uses_simulator(self) -> bool:
        return not self.ami.host


def _convert(key: str, raw: Any, target: Any) -> Any:
    origin = typing.get_origin(target)
    if origin is list:
        if isinstance(raw, str):
            raw = [item.strip() for item in raw.split(",") if item.strip()]
        if not isinstance(raw, list):
            raise ConfigError(f"{key}: expected a list, got {raw!r}")
        return [str(item) for item in raw]
    if target is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return raw.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{key}: expected true or false, got {raw!r}")
    if target is int:
        if isinstance(raw, bool):
            raise ConfigError(f"{key}: expected an integer, got {raw!r}")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {raw!r}") from None
    if target is float:
        if isinstance(raw, bool):
            raise ConfigError(f"{key}: expected a number, got {raw!r}")
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {raw!r}") from None
    if target is str:
        if isinstance(raw, dict | list):
            raise ConfigError(f"{key}: expected a string, got {raw!r}")
        return str(raw)
    raise ConfigError(f"{key}: unsupported type")  # pragma: no cover - only for new field types


def _section_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read `path` (optional), then apply `CONTACTD_SECTION__KEY` variables from `env`."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path}: not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None

    config = Config()
    sections = _section_types(Config)
    for section_name, section_value in data.items():
        if section_name not in sections:
            raise ConfigError(f"{section_name}: unknown section (known: {', '.join(sections)})")
        if not isinstance(section_value, dict):
            raise ConfigError(f"{section_name}: expected a [{section_name}] table")
        section = getattr(config, section_name)
        fields = _section_types(type(section))
        for key, raw in section_value.items():
            if key not in fields:
                raise ConfigError(f"{section_name}.{key}: unknown key (known: {', '.join(fields)})")
            setattr(section, key, _convert(f"{section_name}.{key}", raw, fields[key]))

    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section_name, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        if section_name not in sections:
            raise ConfigError(f"{name}: unknown section {section_name!r}")
        section = getattr(config, section_name)
        fields = _section_types(type(section))
        if key not in fields:
            raise ConfigError(f"{name}: unknown key {section_name}.{key}")
        setattr(section, key, _convert(f"{section_name}.{key} (from {name})", raw, fields[key]))

    _validate(config)
    return config


def _validate(config: Config) -> None:
    for key, port in (("ami.port", config.ami.port), ("agi.port", config.agi.port), ("web.port", config.web.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{key}: must be between 0 and 65535, got {port}")
    if config.ami.auth not in ("plain", "md5"):
        raise ConfigError(f"ami.auth: must be 'plain' or 'md5', got {config.ami.auth!r}")
    if config.ami.host and not config.ami.secret:
        raise ConfigError("ami.secret: required when ami.host is set")
    if not config.db.url:
        raise ConfigError("db.url: must not be empty")
    if config.bus.redis_url and not config.bus.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"bus.redis_url: must start with redis:// or rediss://, got {config.bus.redis_url!r}")
    if not config.bus.leader_ttl > 0:
        raise ConfigError(f"bus.leader_ttl: must be a positive number of seconds, got {config.bus.leader_ttl!r}")
    if config.sms.driver not in ("outbox", "http"):
        raise ConfigError(f"sms.driver: must be 'outbox' or 'http', got {config.sms.driver!r}")
    if config.sms.driver == "http" and not config.sms.http_url:
        raise ConfigError("sms.http_url: required when sms.driver is 'http'")
    if config.web.language not in ("ko", "en"):
        raise ConfigError(f"web.language: must be 'ko' or 'en', got {config.web.language!r}")


def public_view(config: Config) -> dict[str, Any]:
    """The configuration as a dict with secrets masked, for logs and the panel."""
    out: dict[str, Any] = {}
    for section_field in dataclasses.fields(config):
        section = getattr(config, section_field.name)
        values = dataclasses.asdict(section)
        for secret_key in ("secret", "session_key", "http_token", "report_token"):
            if values.get(secret_key):
                values[secret_key] = "***"
        if values.get("redis_url") and "@" in values["redis_url"]:
            values["redis_url"] = "redis://***@" + values["redis_url"].rsplit("@", 1)[1]
        out[section_field.name] = values
    return out


__all__ = ["Config", "ConfigError", "load_config", "public_view"]

"""Node configuration: environment first, then an optional TOML file, then defaults.

`Config` is frozen and validated before any child starts; a bad value stops the
node with one line naming the variable and what it accepts.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = frozenset({"ingest", "process", "deliver"})
Fraction = float  # a share from 0 to 1 (its own parser and message below)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Config:
    database_url: str | None = None
    data_dir: Path = Path("./var")
    host: str = "127.0.0.1"
    port: int = 4000
    reuse_port: bool = False  # SO_REUSEPORT: several processes of this user share PORT
    roles: frozenset[str] = ROLES
    migrate: bool = True
    admin_token: str | None = None
    pool_size: int = 50
    endpoint_concurrency: int = 10
    disable_webhook_delivery: bool = False
    db_pool_size: int = 10
    writer_queue: int = 20_000
    writer_max_batch: int = 1_000
    writer_concurrency: int = 3
    commit_timeout: float = 5.0
    statement_timeout: float = 3.0
    acquire_timeout: float = 1.0
    idle_in_transaction_timeout: float = 30.0
    dedup_cache_size: int = 100_000
    dedup_ttl: float = 86_400.0
    key_cache_ttl: float = 0.5
    shutdown_timeout: float = 10.0
    db_connect_timeout: float = 30.0
    stuck_after: float = 180.0
    log_format: str = "auto"
    log_level: str = "INFO"
    log_delivered_sample: Fraction = 0.0  # the share of successful attempts logged
    allow_private_targets: bool = False
    allow_unverified_sources: bool = False
    request_timeout: float = 15.0
    max_request_timeout: float = 60.0  # the most an endpoint's own timeout_s may be
    retry_schedule: str = "5s,30s,2m,10m,30m,1h,3h"
    breaker_threshold: int = 20
    breaker_cooldown: float = 30.0
    disable_after: float = 5 * 86_400.0
    alert_webhook_url: str | None = None
    poll_interval: float = 0.1
    rescue_interval: float = 5.0
    retention: float = 30 * 86_400.0
    prune_interval: float = 60.0
    heartbeat_interval: float = 5.0
    route_batch: int = 100
    route_timeout: float = 1.0  # the budget of one routing statement (filters included)
    max_rescues: int = 3
    http_keepalive_timeout: float = 15.0
    http_body_timeout: float = 30.0
    http_max_connections: int = 4096
    open_signup: bool = False
    metrics_public: bool = False
    tier_limits: str = "free=100,pro=1000,business=10000,enterprise=100000"

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"PORT must be 1..65535, got {self.port}")
        if not self.roles or not self.roles <= ROLES:
            raise ConfigError(f"TRIGGERD_ROLES must be a subset of {sorted(ROLES)}")
        for name in ("pool_size", "db_pool_size", "writer_queue", "writer_max_batch",
                     "writer_concurrency", "dedup_cache_size", "route_batch",
                     "endpoint_concurrency", "max_rescues", "http_max_connections"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{_env_name(name)} must be at least 1")
        if self.breaker_threshold < 0:
            raise ConfigError("TRIGGERD_BREAKER_THRESHOLD must be 0 (off) or more")
        try:
            parse_durations(self.retry_schedule)
        except ValueError as exc:
            raise ConfigError(f"TRIGGERD_RETRY_SCHEDULE: {exc}") from None
        for name in ("commit_timeout", "statement_timeout", "acquire_timeout",
                     "idle_in_transaction_timeout", "dedup_ttl", "key_cache_ttl",
                     "shutdown_timeout", "request_timeout", "max_request_timeout",
                     "breaker_cooldown", "disable_after",
                     "poll_interval", "rescue_interval", "retention", "prune_interval",
                     "http_keepalive_timeout", "http_body_timeout", "route_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{_env_name(name)} must be positive")
        try:
            parse_tier_limits(self.tier_limits)
        except ValueError as exc:
            raise ConfigError(f"TRIGGERD_TIER_LIMITS: {exc}") from None
        if not (self.admin_token or self.open_signup or listens_locally(self.host)):
            raise ConfigError(
                f"TRIGGERD_HOST={self.host} serves other machines: set TRIGGERD_ADMIN_TOKEN "
                "(creating organizations and the dashboard then need it), or "
                "TRIGGERD_OPEN_SIGNUP=true to let anyone create free organizations")
        self._check_logging()
        for name in ("db_connect_timeout", "stuck_after", "heartbeat_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{_env_name(name)} must be positive")
        for name in ("statement_timeout", "idle_in_transaction_timeout"):
            if getattr(self, name) < 0.001:  # PostgreSQL counts in ms, and 0 turns it off
                raise ConfigError(f"{_env_name(name)} must be at least 1ms")
        if self.max_request_timeout < self.request_timeout:
            raise ConfigError("TRIGGERD_MAX_REQUEST_TIMEOUT must be at least "
                              "TRIGGERD_REQUEST_TIMEOUT")
        if self.writer_concurrency >= self.db_pool_size:
            raise ConfigError("TRIGGERD_WRITER_CONCURRENCY must be below TRIGGERD_DB_POOL_SIZE")

    def _check_logging(self) -> None:
        if self.log_format not in ("auto", "json", "text"):
            raise ConfigError("TRIGGERD_LOG_FORMAT must be auto, json or text")
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"TRIGGERD_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} "
                              f"(any case), got {self.log_level!r}")
        if not 0.0 <= self.log_delivered_sample <= 1.0:
            raise ConfigError("TRIGGERD_LOG_DELIVERED_SAMPLE must be from 0 (none) to 1 "
                              f"(every success), got {self.log_delivered_sample:g}")

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


TIERS = ("free", "pro", "business", "enterprise")


def parse_tier_limits(raw: str) -> dict[str, int]:
    """Requests per minute per tier from 'free=100,pro=1000,...'; tiers left out keep
    their defaults."""
    limits = {"free": 100, "pro": 1_000, "business": 10_000, "enterprise": 100_000}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        tier, _, value = part.partition("=")
        tier = tier.strip()
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r} (tiers: {', '.join(TIERS)})")
        if not value.strip().isdigit() or not 1 <= int(value) <= 100_000_000:
            raise ValueError(f"{tier}: a whole number of requests per minute, "
                             f"1 to 100000000, got {value.strip()!r}")
        limits[tier] = int(value)
    return limits


def listens_locally(host: str) -> bool:
    """True when `host` is a loopback address or name: only this machine can connect."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")


def parse_duration(raw: str) -> float:
    """Seconds from '500ms', '30s', '2m', '1h', '5d' or a bare number of seconds."""
    match = _DURATION.match(raw.strip())
    if match is None:
        raise ValueError(f"not a duration: {raw!r} (use e.g. 500ms, 30s, 2m, 1h, 5d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_durations(raw: str) -> tuple[float, ...]:
    """A comma-separated list of durations, e.g. a retry schedule '5s,30s,2m'."""
    delays = tuple(parse_duration(part) for part in raw.split(",") if part.strip())
    if not delays:
        raise ValueError("needs at least one duration, e.g. 5s,30s,2m")
    return delays


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def _parse_fraction(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"not a number from 0 to 1: {raw!r}") from None


def _parse_roles(raw: str) -> frozenset[str]:
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


# Names kept from the reference deployment; every other variable is TRIGGERD_<FIELD>.
_PLAIN_ENV = {"database_url": "DATABASE_URL", "port": "PORT", "pool_size": "POOL_SIZE",
              "disable_webhook_delivery": "DISABLE_WEBHOOK_DELIVERY"}


def _env_name(field_name: str) -> str:
    return _PLAIN_ENV.get(field_name, "TRIGGERD_" + field_name.upper())


env_name = _env_name  # the variable that sets a field, for messages elsewhere


def _parse_int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"not a whole number: {raw!r}") from None


_BY_TYPE: dict[str, Callable[[str], Any]] = {
    "int": _parse_int,
    "float": parse_duration,
    "Fraction": _parse_fraction,
    "bool": _parse_bool,
    "Path": Path,
    "frozenset[str]": _parse_roles,
    "str": str,
    "str | None": lambda raw: raw or None,
}


def _convert(name: str, raw: Any) -> Any:
    """Turns an environment string (or a TOML value) into the field's type."""
    kind = str(Config.__dataclass_fields__[name].type)
    if isinstance(raw, str):
        return _BY_TYPE[kind](raw)
    types, expected = _NATIVE[kind]
    if not _native(raw, types, kind == "bool"):
        raise TypeError(f"expected {expected}, got {raw!r}")
    return frozenset(raw) if kind == "frozenset[str]" else raw


def _native(raw: object, types: tuple[type, ...], boolean: bool) -> bool:
    """True when a TOML value already has the field's type (a bool is not a number)."""
    if isinstance(raw, list):
        return list in types and all(isinstance(item, str) for item in raw)
    return isinstance(raw, bool) == boolean and isinstance(raw, types)


# The TOML types each field accepts besides a string, and how to say so when it is wrong.
_NATIVE: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "a whole number"), "float": ((int, float), "a number of seconds"),
    "Fraction": ((int, float), "a number from 0 to 1"),
    "bool": ((bool,), "true or false"), "Path": ((), "a path string"),
    "frozenset[str]": ((list,), "a list of strings"), "str": ((), "a string"),
    "str | None": ((), "a string"),
}


def load(config_file: Path | None = None, environ: Mapping[str, str] | None = None,
         **overrides: Any) -> Config:
    """Builds the Config: overrides (CLI flags) > environment > TOML file > defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            document = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from None
        unknown = set(document) - set(Config.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown keys in {config_file}: {', '.join(sorted(unknown))}")
        values.update(document)
    for name in Config.__dataclass_fields__:
        if _env_name(name) in env:
            values[name] = env[_env_name(name)]
    values.update({k: v for k, v in overrides.items() if v is not None})
    converted: dict[str, Any] = {}
    for name, raw in values.items():
        try:
            converted[name] = _convert(name, raw)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{_env_name(name)}: {exc}") from None
    return Config(**converted)

"""Reload (SIGHUP): applies the settings that can change while the node runs.

The configuration is read again exactly as at start (environment, the --config file,
the command line's flags). Reloaded:

- TRIGGERD_LOG_LEVEL and TRIGGERD_LOG_FORMAT: at once, for every logger;
- TRIGGERD_TIER_LIMITS: the rate limit of each tier, for every organization within
  TRIGGERD_KEY_CACHE_TTL (the cached keys carry their organization's limit);
- TRIGGERD_ALERT_WEBHOOK_URL: the Alerter (a permanent child of Maintenance) is stopped
  and its supervisor starts a new one, built from the node's config; alerts raised in
  the few milliseconds between are dropped (alerts are fire-and-forget anyway), and the
  restart counts toward Maintenance's intensity like any other.

Any other change is logged as waiting for the next start (names only: values may be
secrets) and kept out of the running configuration. An invalid configuration (a bad
value, a TOML file that does not parse) is refused as a whole, in one line, and the
node keeps running on what it had.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from supervisor.node import logs
from supervisor.node.config import Config, ConfigError, env_name, parse_tier_limits
from supervisor.node.tree import Node
from workers.alerter import Alerter

log = logging.getLogger(__name__)

RELOADABLE = ("log_level", "log_format", "alert_webhook_url", "tier_limits")
# Reloadable settings whose values may be logged (the alert URL may hold a secret).
_SHOWN = ("log_level", "log_format", "tier_limits")


class Reloader:
    """Holds the running configuration; `reload()` moves it to what `load()` reads now."""

    def __init__(self, node: Node, running: Config, load: Callable[[], Config]) -> None:
        self.node = node
        self.running = running
        self._load = load

    def __repr__(self) -> str:
        return f"Reloader(log_level={self.running.log_level!r})"

    async def reload(self) -> bool:
        """True when the new configuration was read (applied in full or in part)."""
        try:
            new = self._load()
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return False
        old = self.running
        changed = [f.name for f in dataclasses.fields(Config)
                   if getattr(old, f.name) != getattr(new, f.name)]
        waiting = [name for name in changed if name not in RELOADABLE]
        if waiting:
            log.warning("reload: %s changed; applied at the next start only",
                        ", ".join(env_name(name) for name in waiting))
        applied = [name for name in changed if name in RELOADABLE]
        self.running = old.replace(**{name: getattr(new, name) for name in applied})
        if "log_level" in applied or "log_format" in applied:
            logs.setup(new.log_format, new.log_level)
        if "tier_limits" in applied:  # cached keys follow within TRIGGERD_KEY_CACHE_TTL
            self.node.keys.tier_limits = parse_tier_limits(new.tier_limits)
        if "alert_webhook_url" in applied:
            self.node.config = self.node.config.replace(alert_webhook_url=new.alert_webhook_url)
            await self._restart_alerter()
        log.info("configuration reloaded: %s",
                 ", ".join(_describe(name, old, new) for name in applied) or "nothing to change")
        return True

    async def _restart_alerter(self) -> None:
        alerter = self.node.child("maintenance", "alerter", Alerter)
        if alerter is not None:  # else it is (re)starting, and reads the new URL anyway
            await alerter.stop(ALERTER_STOP_S)


ALERTER_STOP_S = 6.0  # its ChildSpec's shutdown: posts under way get their 5 s


def _describe(name: str, old: Config, new: Config) -> str:
    before, after = getattr(old, name), getattr(new, name)
    if name in _SHOWN:
        return f"{env_name(name)} {before} -> {after}"
    return f"{env_name(name)} {'changed' if before and after else 'set' if after else 'unset'}"

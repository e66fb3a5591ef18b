"""What a running gateway offers of each upstream's definitions (TC-1..TC-3): tool pinning
against the pin database, and the hold of poisoned-looking prompts, resources and templates
until an admin approves them (``guard.pins.hold_poisoned``, kept in the same database).

``UpstreamScreens`` opens both stores from the configuration (a pin database that anyone else
may write is a ``ConfigError``, said before anything listens; so is an audit database, through
``refuse_unsafe``); ``tools`` and ``definitions`` are the gateway's ``tool_screen`` and
``definition_screen``. Each screens in a worker thread (DS-4) and audits every change to the
pins and every hold in the audit log of the moment (``audit``; none while it is off). Tools
held but left unrecorded because the held table is full are logged and audited once per
change of their number (``pin.held-unlisted``), not one by one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import anyio
import msgspec

from bastion._shown import shown
from bastion._sqlite import UnsafeFileError, check_private_db
from bastion._types import JSONObject
from bastion.audit.log import AuditLog
from bastion.audit.record import AuditRecord
from bastion.config.model import Config
from bastion.errors import ConfigError
from bastion.guard.held import HeldDefinitions
from bastion.guard.pins import PinStore
from bastion.guard.poison import PoisonScanner
from bastion.guard.screen import DefinitionScreen
from bastion.guard.settings import default_pin_db
from bastion.pipeline.build import schema_validator

__all__ = ["UpstreamScreens", "refuse_unsafe"]

logger = logging.getLogger(__name__)

_LOGGED_NAME: Final = 160  # characters of an upstream's tool name in a log line


class UpstreamScreens:
    """Both stores, or None when off: ``pins`` with ``guard.pins.enabled``, and
    ``held_definitions`` with ``hold_poisoned`` too. Close when the gateway stops."""

    def __init__(self, config: Config, audit: Callable[[], AuditLog | None]) -> None:
        """Raises:
        ConfigError: the pin database is one that anyone else may write.
        """
        self._audit = audit
        self.pins: PinStore | None = None
        self.held_definitions: HeldDefinitions | None = None  # in the pin database
        self._definitions: DefinitionScreen | None = None
        if config.guard.pins.enabled:
            pins = config.guard.pins
            pin_db = Path(pins.db_path) if pins.db_path else default_pin_db(os.environ)
            refuse_unsafe("guard.pins.db_path", pin_db)
            self.pins = PinStore(
                pin_db,
                scanner=PoisonScanner(separator=config.gateway.separator),
                validator=schema_validator(config),
                trust_on_first_use=pins.trust_on_first_use,
                hold_poisoned=pins.hold_poisoned,
            )
            if pins.hold_poisoned:
                scanner = PoisonScanner(separator=config.gateway.separator)
                self.held_definitions = HeldDefinitions(pin_db)
                self._definitions = DefinitionScreen(scanner, store=self.held_definitions)

    def close(self) -> None:
        if self.pins is not None:
            self.pins.close()
        if self.held_definitions is not None:
            self.held_definitions.close()

    async def tools(
        self, server: str, tools: list[JSONObject], others: dict[str, list[str]]
    ) -> list[JSONObject]:
        """Tool pinning (TC-1..TC-3): only approved or clean first-seen definitions pass;
        every change to the pins is audited, with the diff's summary."""
        assert self.pins is not None
        pins = self.pins
        review = await anyio.to_thread.run_sync(lambda: pins.review(server, tools, others=others))
        for held in review.held:
            logger.warning(
                "held back %s's tool %s (%s) until an admin approves it",
                server,
                held.tool[:_LOGGED_NAME],
                held.reason,
            )
        log = self._audit()
        if review.overflow is not None:
            overflow = review.overflow
            logger.warning(
                "held back %d more of %s's tools, unlisted: %d tools wait for an admin already",
                overflow.unlisted,
                server,
                overflow.limit,
            )
            if log is not None:
                await log.record(
                    _pin_record(server, "held-unlisted", server, "held-table-full", overflow)
                )
        for event in review.events:
            if log is not None:
                outcome = event.reason or "ok"
                await log.record(_pin_record(server, event.action, event.tool, outcome, event))
        return review.allowed

    async def definitions(
        self, server: str, kind: str, items: list[JSONObject], others: dict[str, list[str]]
    ) -> list[JSONObject]:
        """Poisoned-looking prompts, resources and templates are held back until an admin
        approves them (TC-1); each hold is audited once."""
        assert self._definitions is not None
        screen = self._definitions
        kept, held = await anyio.to_thread.run_sync(
            lambda: screen.screen(server, kind, items, others)
        )
        for item in held:
            name = shown(item.name[:_LOGGED_NAME])  # the upstream's text (IN-5)
            logger.warning("held back %s's %s %s: it looks poisoned", server, item.kind, name)
            log = self._audit()
            if log is not None:
                await log.record(_pin_record(server, "held", item.name, item.reason, item))
        return kept


def refuse_unsafe(setting: str, db: Path) -> None:
    """A database someone else may write is a configuration error, said before anything
    listens (a missing directory is fine: it is created 0700 when the database opens).

    Raises:
        ConfigError: naming the setting, the file and the command that fixes it.
    """
    try:
        check_private_db(db)
    except FileNotFoundError:
        return
    except UnsafeFileError as exc:
        raise ConfigError(f"{setting}: {exc}") from exc


def _pin_record(server: str, action: str, target: str, outcome: str, detail: object) -> AuditRecord:
    """The audit record of what the guard did with ``server``'s definition ``target``:
    ``action`` (held, approved, ...: a hold or an overflow is a deny), with ``detail``."""
    return AuditRecord(
        time=time.time(),
        kind="pin",
        principal=f"upstream:{server}",
        method=f"pin.{action}",
        target=target,
        decision="deny" if action.startswith("held") else "allow",
        outcome=outcome,
        detail=msgspec.to_builtins(detail),
    )

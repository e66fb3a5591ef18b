"""The API key a running gateway lends the local hub (role ``local``), for the hub's
registry entry, and the clean-up of keys lent by gateways that died (AU-5).

``lent_hub_key`` creates the key when the block starts and revokes it when it ends; first
it revokes the active hub keys whose gateway process is gone (killed or crashed before it
could revoke its own), which would otherwise stay valid for ``HUB_KEY_TTL``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from bastion.auth.keys import KeyStore, KeyStoreError
from bastion.auth.roles import HUB_KEY_PREFIX, LOCAL_ROLE

__all__ = ["HUB_KEY_TTL", "HUB_ROLE", "lent_hub_key"]

HUB_ROLE: Final = LOCAL_ROLE  # the role of the key a running gateway lends the local hub
HUB_KEY_TTL: Final = 7 * 24 * 3600.0
_HUB_KEY_NAME: Final = re.compile(HUB_KEY_PREFIX + r"(?P<pid>[0-9]{1,10})-[0-9a-f]{6}")

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def lent_hub_key(keys_db: Path | None) -> Iterator[str | None]:
    """A new key (role ``HUB_ROLE``) in ``keys_db``, revoked when the block ends; None when
    API keys are not in use (``keys_db`` None: the face needs no credential, or takes only
    tokens the hub cannot mint) or no key could be made (logged)."""
    if keys_db is None:
        yield None
        return
    store = KeyStore(keys_db)
    name = f"{HUB_KEY_PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
    try:
        _revoke_orphaned_hub_keys(store)
        key, plaintext = store.create(name, [HUB_ROLE], expires_in=HUB_KEY_TTL, reserved=True)
    except KeyStoreError as exc:
        logger.warning("no key for the local hub: %s", exc)
        store.close()
        yield None
        return
    try:
        yield plaintext
    finally:
        store.revoke(key.id)
        store.close()


def _revoke_orphaned_hub_keys(store: KeyStore) -> None:
    """Revoke the active hub keys whose gateway process is gone: a gateway killed before it
    could revoke its own would otherwise leave a ``local`` key valid for ``HUB_KEY_TTL``."""
    now = time.time()
    for key in store.list():
        found = _HUB_KEY_NAME.fullmatch(key.name)
        if found is None or key.state(now) != "active" or _alive(int(found["pid"])):
            continue
        store.revoke(key.id)
        logger.warning(
            "revoked %s: the gateway that made it (pid %s) is gone", key.name, found["pid"]
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True

"""Authentication (AU-*): who is calling, from an API key, a JWT, a client certificate, or
the configured local user, as one ``Principal`` the rest of the pipeline decides on."""

from __future__ import annotations

from bastion.auth.principal import AuthMethod, Principal, Unauthenticated

__all__ = ["AuthMethod", "Principal", "Unauthenticated"]

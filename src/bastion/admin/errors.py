"""What a backend raises to refuse an admin request, with the HTTP status it maps to.

Every message is client-safe: backends choose it from values they validated (a policy
problem names the offending path and what is wrong, never a file name or exception text).

    BastionError
    └── AdminError           500  unexpected; generic message on the wire
        ├── NotFound         404  no such key / approval
        ├── Conflict         409  the object is not in a state that allows this
        └── InvalidInput     400  the request body or query is not acceptable
            └── InvalidPolicy     the policy does not load (message names the problem)
"""

from __future__ import annotations

from typing import ClassVar

from bastion.errors import BastionError

__all__ = ["AdminError", "Conflict", "InvalidInput", "InvalidPolicy", "NotFound"]


class AdminError(BastionError):
    status: ClassVar[int] = 500
    error: ClassVar[str] = "internal_error"
    message = "internal error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message, message=message)


class NotFound(AdminError):
    status = 404
    error = "not_found"
    message = "not found"


class Conflict(AdminError):
    status = 409
    error = "conflict"
    message = "conflict"


class InvalidInput(AdminError):
    status = 400
    error = "invalid_request"
    message = "invalid request"


class InvalidPolicy(InvalidInput):
    error = "invalid_policy"
    message = "invalid policy"

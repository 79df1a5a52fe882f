"""The refusals an operation or a request ends with: a status, a message for a person,
and extra fields.

Operations (`ingestor.ops_*`) raise `NotFound`, `Conflict` or `Invalid`; input parsers
raise `Invalid` (or a plain `ApiError(400, ...)`). The HTTP layer answers any
`ApiError` as `{"error": message, **extra}` with its status (`http.errors`); a command
line prints the message and exits by the status. Nothing here knows of aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """A refusal: status, message, and extra fields or headers of its answer."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The answer's JSON body."""
        return {"error": self.message, **self.extra}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.message!r})"


class Invalid(ApiError):
    """An argument that is not acceptable (400)."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(400, message, **extra)


class NotFound(ApiError):
    """Unknown, deleted, or another organization's (404): never told apart."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(404, message, **extra)


class Conflict(ApiError):
    """Refused in the object's current state (409); `extra` says which."""

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(409, message, **extra)

"""Secret field types for blocks: values that never show themselves.

A block field typed :class:`SecretStr` or :class:`SecretDict` is encrypted when the block is
saved, and masked wherever the block is shown: ``repr``, ``str``, f-strings, log lines,
error messages, events and the API. Code that needs the value asks for it explicitly with
``get_secret_value()``, which makes every use of a secret easy to find in a review.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "SecretDict", "SecretStr"]

MASK = "**********"
"""What a secret looks like wherever it is shown."""


class SecretStr:
    """A string that shows as ``**********``; ``get_secret_value()`` returns it.

    Same name and behaviour as pydantic's ``SecretStr``, which Prefect blocks use.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"SecretStr takes a string, not {type(value).__name__}")
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself."""
        return self._value

    def __repr__(self) -> str:
        return f"SecretStr({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash((SecretStr, self._value))


class SecretDict:
    """A mapping whose values are secret: its keys show, its values show as ``**********``.

    Used by the custom webhook for the values its templates may insert (tokens, passwords).
    """

    __slots__ = ("_value",)

    def __init__(self, value: Mapping[str, Any] | None = None) -> None:
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"SecretDict takes a mapping, not {type(value).__name__}")
        items = dict(value or {})
        if not all(isinstance(key, str) for key in items):
            raise TypeError("SecretDict keys must be strings")
        self._value = items

    def get_secret_value(self) -> dict[str, Any]:
        """A copy of the secret mapping."""
        return dict(self._value)

    def keys(self) -> list[str]:
        """The keys, which are not secret."""
        return list(self._value)

    def masked(self) -> dict[str, str]:
        """The mapping with every value replaced by the mask."""
        return dict.fromkeys(self._value, MASK)

    def __repr__(self) -> str:
        return f"SecretDict({self.masked()!r})"

    def __str__(self) -> str:
        return str(self.masked())

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretDict) and other._value == self._value

    __hash__ = None  # type: ignore[assignment]  # mutable contents, like a dict

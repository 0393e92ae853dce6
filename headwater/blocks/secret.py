"""``Secret``: one secret value saved as a block (``prefect.blocks.system``).

``Secret(value="hunter2").save("db-password")`` encrypts the value at rest;
``Secret.load("db-password").get()`` gives it back. Any JSON value may be kept: it is stored
as its JSON text, and ``get()`` decodes strings that are JSON, as Prefect's does.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import msgspec

from headwater.blocks.block import Block
from headwater.blocks.fields import SecretStr
from headwater.exceptions import InvalidBlockError

__all__ = ["Secret"]


class Secret(Block, kw_only=True):
    """A secret value: shown as ``**********`` everywhere, encrypted when saved.

    Attributes:
        value: the secret; a string, or any JSON value (kept as its JSON text).
    """

    _block_type_slug: ClassVar[str] = "secret"

    value: SecretStr

    def __post_init__(self) -> None:
        value: Any = self.value
        if not isinstance(value, (str, SecretStr)):
            try:
                self.value = SecretStr(msgspec.json.encode(value).decode())
            except (TypeError, msgspec.EncodeError):
                raise InvalidBlockError(
                    f"Secret.value must be a string or a JSON value, not {type(value).__name__}"
                ) from None
        super().__post_init__()

    def get(self) -> Any:
        """The secret value; a string holding JSON is decoded (``'{"a": 1}'`` gives a dict)."""
        text = self.value.get_secret_value()
        try:
            return json.loads(text)
        except ValueError:
            return text

"""The Secret block: any JSON value, masked and encrypted, decoded by get()."""

from __future__ import annotations

from pathlib import Path

import pytest
from blocks_helpers import iter_bytes

from headwater.blocks import Block
from headwater.blocks.system import Secret
from headwater.exceptions import BlockAlreadyExistsError, InvalidBlockError


def test_save_and_load_a_secret(home: Path) -> None:
    Secret(value="hunter2-and-more").save("db-password")
    secret = Secret.load("db-password")
    assert secret.get() == "hunter2-and-more"
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert Block.load("secret/db-password").get() == "hunter2-and-more"
    assert not any(b"hunter2" in content for content in iter_bytes(home))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ('{"user": "u", "port": 5}', {"user": "u", "port": 5}),
        ("123", 123),
        ({"nested": [1, True, None]}, {"nested": [1, True, None]}),
        ([1, 2], [1, 2]),
        (42, 42),
    ],
)
def test_get_decodes_json_like_prefect(value: object, expected: object) -> None:
    assert Secret(value=value).get() == expected  # type: ignore[arg-type]
    Secret(value=value).save("s", overwrite=True)  # type: ignore[arg-type]
    assert Secret.load("s").get() == expected


def test_overwrite_rules() -> None:
    Secret(value="a").save("s")
    with pytest.raises(BlockAlreadyExistsError):
        Secret(value="b").save("s")
    Secret(value="b").save("s", overwrite=True)
    assert Secret.load("s").get() == "b"


def test_a_value_that_is_not_json_is_refused() -> None:
    with pytest.raises(InvalidBlockError, match="Secret.value must be a string or a JSON value"):
        Secret(value=object())  # type: ignore[arg-type]

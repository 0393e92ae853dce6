"""Block documents: typed fields, saving and loading, secrets encrypted at rest, events."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import uuid
from pathlib import Path
from typing import ClassVar

import pytest
from blocks_helpers import iter_bytes
from support import EventLog

from headwater.blocks import Block, SecretDict, SecretStr
from headwater.events import get_bus
from headwater.exceptions import (
    BlockAlreadyExistsError,
    BlockKeyError,
    BlockNotFoundError,
    InvalidBlockError,
)

PASSWORD = "correct-horse-battery-staple"


class DatabaseConfig(Block, kw_only=True):
    _block_type_slug: ClassVar[str] = "database-config"

    host: str
    port: int = 5432
    password: SecretStr
    options: SecretDict | None = None


def make() -> DatabaseConfig:
    return DatabaseConfig(host="db.internal", password=PASSWORD, options={"token": "tok-1234"})


def test_fields_are_checked_and_coerced_when_built() -> None:
    config = make()
    assert isinstance(config.password, SecretStr)
    assert config.password.get_secret_value() == PASSWORD
    assert config.options is not None and config.options.get_secret_value() == {"token": "tok-1234"}
    with pytest.raises(InvalidBlockError, match=r"DatabaseConfig\.port: Expected `int`, got `str`"):
        DatabaseConfig(host="h", port="x", password="p")  # type: ignore[arg-type]
    with pytest.raises(InvalidBlockError, match=r"DatabaseConfig\.password") as caught:
        DatabaseConfig(host="h", password=12345678)  # type: ignore[arg-type]
    assert "12345678" not in str(caught.value)


def test_secrets_never_show_in_repr_str_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    config = make()
    shown = [repr(config), str(config), f"{config}", f"{config.password}", str(config.options)]
    logging.getLogger("test").warning("config %s %r", config, config)
    shown.append(caplog.text)
    for text in shown:
        assert PASSWORD not in text and "tok-1234" not in text
    assert "SecretStr('**********')" in repr(config)
    assert config.public_data() == {
        "host": "db.internal",
        "port": 5432,
        "password": "**********",
        "options": {"token": "**********"},
    }


def test_save_then_load_round_trips(home: Path) -> None:
    document_id = make().save("prod")
    loaded = DatabaseConfig.load("prod")
    assert loaded == make()
    assert loaded.password.get_secret_value() == PASSWORD
    assert loaded._block_document_id == document_id
    assert loaded._block_document_name == "prod"
    assert Block.load("database-config/prod") == loaded
    assert DatabaseConfig.load("database-config/prod") == loaded
    assert Block.load_from_id(document_id) == loaded
    assert DatabaseConfig.load_from_id(str(document_id)) == loaded


@pytest.mark.anyio
async def test_async_twins_round_trip() -> None:
    document_id = await make().asave("prod")
    loaded = await DatabaseConfig.aload("prod")
    assert loaded.password.get_secret_value() == PASSWORD
    assert (await Block.aload_from_id(document_id)) == loaded
    await DatabaseConfig.adelete("prod")
    with pytest.raises(BlockNotFoundError):
        await DatabaseConfig.aload("prod")


def test_saving_a_taken_name_needs_overwrite() -> None:
    first = make().save("prod")
    with pytest.raises(BlockAlreadyExistsError, match="database-config block named 'prod'") as e:
        DatabaseConfig(host="other", password="p").save("prod")
    assert isinstance(e.value, ValueError)
    assert DatabaseConfig.load("prod").host == "db.internal"
    second = DatabaseConfig(host="other", password="p").save("prod", overwrite=True)
    assert second == first  # the document keeps its id
    assert DatabaseConfig.load("prod").host == "other"


def test_loading_a_missing_block_names_it() -> None:
    with pytest.raises(ValueError, match="no database-config block named 'nope'"):
        DatabaseConfig.load("nope")
    with pytest.raises(BlockNotFoundError, match="no block with id"):
        Block.load_from_id(uuid.uuid4())
    with pytest.raises(InvalidBlockError, match="slug>/<name>"):
        Block.load("prod")
    with pytest.raises(BlockNotFoundError, match="no never-defined block named 'prod'"):
        Block.load("never-defined/prod")


def test_loading_a_type_this_process_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    make().save("prod")
    monkeypatch.delitem(Block._registry, "database-config")
    with pytest.raises(BlockNotFoundError, match="import the module that defines its class"):
        Block.load("database-config/prod")


def test_the_same_name_may_be_used_by_two_block_types() -> None:
    from headwater.blocks.system import Secret

    make().save("prod")
    Secret(value="s").save("prod")
    assert Secret.load("prod").get() == "s"
    with pytest.raises(BlockNotFoundError, match="cannot load a secret block"):
        DatabaseConfig.load("secret/prod")


@pytest.mark.parametrize("name", ["", "Prod", "has space", "under_score", "-x", "a" * 256])
def test_bad_names_are_refused_clearly(name: str) -> None:
    with pytest.raises(InvalidBlockError, match="cannot name a database-config block"):
        make().save(name)


def test_delete() -> None:
    make().save("prod")
    DatabaseConfig.delete("prod")
    with pytest.raises(BlockNotFoundError):
        DatabaseConfig.load("prod")
    with pytest.raises(BlockNotFoundError, match="no database-config block named 'prod'"):
        DatabaseConfig.delete("prod")


def test_secrets_are_encrypted_at_rest(home: Path) -> None:
    make().save("prod")
    get_bus().flush(timeout=10)
    for content in iter_bytes(home):
        assert PASSWORD.encode() not in content
        assert b"tok-1234" not in content
    with sqlite3.connect(home / "headwater.db") as connection:
        (data,) = connection.execute("SELECT data FROM block_documents").fetchone()
    connection.close()
    assert '"host":"db.internal"' in data  # plain fields stay readable
    assert '"password":{"$encrypted":"' in data


def test_key_file_is_created_private(home: Path) -> None:
    make().save("prod")
    key = home / "blocks.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir() if p.name.startswith(".blocks.key")] == []


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_key_file_others_can_read_is_refused(home: Path) -> None:
    make().save("prod")
    key = home / "blocks.key"
    key.chmod(0o644)
    with pytest.raises(BlockKeyError, match="chmod 600") as caught:
        DatabaseConfig.load("prod")
    assert str(key) in str(caught.value)
    assert key.read_text().strip() not in str(caught.value)


def test_a_replaced_or_missing_key_is_reported(home: Path) -> None:
    make().save("prod")
    key = home / "blocks.key"
    key.unlink()
    with pytest.raises(BlockKeyError, match="is missing"):
        DatabaseConfig.load("prod")
    DatabaseConfig(host="x", password="p").save("other")  # creates a new key
    with pytest.raises(BlockKeyError, match="saved with another key"):
        DatabaseConfig.load("prod")
    key.write_text("not a key\n")
    with pytest.raises(BlockKeyError, match="does not hold a valid key"):
        DatabaseConfig.load("other")


def test_changes_are_events_without_secrets(events: EventLog) -> None:
    document_id = make().save("prod")
    make().save("prod", overwrite=True)
    DatabaseConfig.delete("prod")
    get_bus().flush(timeout=10)
    mine = events.for_resource(f"headwater.block-document.{document_id}")
    assert [e.event for e in mine] == [
        "headwater.block-document.created",
        "headwater.block-document.updated",
        "headwater.block-document.deleted",
    ]
    for event in mine:
        assert event.resource.name == "prod"
        assert event.resource_in_role("block-type") is not None
        encoded = str(event.payload) + str(event.resource)
        assert PASSWORD not in encoded and "tok-1234" not in encoded


def test_listing_documents_shows_no_data() -> None:
    from headwater.blocks import read_block_documents
    from headwater.blocks.system import Secret

    make().save("b")
    make().save("a")
    Secret(value="s").save("a")
    listed = read_block_documents()
    assert [(d.block_type, d.name) for d in listed] == [
        ("database-config", "a"),
        ("database-config", "b"),
        ("secret", "a"),
    ]
    assert [d.name for d in read_block_documents("secret")] == ["a"]
    assert PASSWORD not in repr(listed)


@pytest.mark.anyio
async def test_listing_documents_async() -> None:
    from headwater.blocks import aread_block_documents

    await make().asave("a")
    (document,) = await aread_block_documents("database-config")
    assert document.id == (await DatabaseConfig.aload("a"))._block_document_id
    assert document.created <= document.updated


def test_another_process_loads_a_builtin_block_type_by_slug(home: Path) -> None:
    import subprocess
    import sys

    from headwater.blocks.notifications import SlackWebhook

    SlackWebhook(url="https://hooks.slack.com/services/T0AAAA/B0BBBB/XsecretX").save("alerts")
    script = (
        "import sys\n"
        "from headwater.blocks import Block\n"
        "assert 'headwater.blocks.notifications' not in sys.modules\n"
        "block = Block.load('slack-webhook/alerts')\n"
        "print(type(block).__name__, block.url.get_secret_value().endswith('XsecretX'))\n"
    )
    env = {**os.environ, "HEADWATER_HOME": str(home), "HEADWATER_DATABASE_URL": ""}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SlackWebhook", "True"]


def test_a_secret_nested_in_another_field_is_not_saved_masked() -> None:
    class Pool(Block, kw_only=True):
        passwords: list[SecretStr]

    pool = Pool(passwords=[SecretStr("a-password")])
    assert "a-password" not in repr(pool)
    with pytest.raises(InvalidBlockError, match="give it a field of its own"):
        pool.save("pool")

"""``Block``: a typed, named configuration document saved in the database (``prefect.blocks.core``).

A block type is a class with typed fields; a block document is one saved instance of it,
identified by the type's slug and a name. Saving writes its fields as JSON with the secret
fields (:class:`~headwater.blocks.fields.SecretStr`, :class:`~headwater.blocks.fields.SecretDict`)
encrypted; loading decrypts and validates them again. Every change is an event
(``headwater.block-document.created/updated/deleted``) that names the document, never its data.

Blocks are msgspec Structs, so a field's type is checked when the block is built (a wrong
type fails at once, naming the field, not later inside a flow), and the repr shows secrets
masked.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.to_thread
import msgspec

from headwater.blocks import crypto, store
from headwater.blocks.fields import MASK, SecretDict, SecretStr
from headwater.blocks.store import BlockDocument
from headwater.engine.dispatch import in_async_context
from headwater.events.emit import emit_event
from headwater.exceptions import BlockKeyError, BlockNotFoundError, InvalidBlockError
from headwater.storage.database import Database

__all__ = ["Block", "BlockDocument", "aread_block_documents", "read_block_documents"]

B = TypeVar("B", bound="Block")
T = TypeVar("T")

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,254}")
_ENCRYPTED = "$encrypted"
_SECRET_TYPES = (SecretStr, SecretDict)
# Built-in block types, imported on first use so that Block.load("slack-webhook/x") works
# without importing apprise for programs that never notify.
_BUILTIN_MODULES = {
    "secret": "headwater.blocks.secret",
    "slack-webhook": "headwater.blocks.notifications",
    "ms-teams-webhook": "headwater.blocks.notifications",
    "custom-webhook": "headwater.blocks.notifications",
    "apprise": "headwater.blocks.notifications",
}


def _dec_hook(type_: type, value: Any) -> Any:
    if type_ in _SECRET_TYPES:
        if isinstance(value, type_):
            return value
        if type_ is SecretStr and isinstance(value, str):
            return SecretStr(value)
        if type_ is SecretDict and isinstance(value, dict):
            return SecretDict(value)
        # msgspec turns a TypeError into a ValidationError; the value is not in the message
        raise TypeError(f"expected {type_.__name__}, got {type(value).__name__}")
    raise TypeError(f"unsupported type {type_!r}")


def _enc_hook(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, SecretDict):
        return value.masked()
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _nested_secret(value: Any) -> Any:
    if isinstance(value, _SECRET_TYPES):
        raise InvalidBlockError(
            "a secret inside another value cannot be saved encrypted; give it a field of its "
            "own typed SecretStr or SecretDict"
        )
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


class Block(msgspec.Struct, kw_only=True, dict=True):
    """Base class of block types: subclass it with typed fields.

    Example:
        ``class Database(Block): host: str; password: SecretStr`` then
        ``Database(host="db", password="pw").save("prod")`` and
        ``Database.load("prod").password.get_secret_value()``.

    Class attributes:
        _block_type_slug: the type's id in the database (default: the class name in
            kebab-case); ``Block.load("<slug>/<name>")`` finds the class by it.
        _abstract: True on a base class that is not itself a block type.
    """

    _block_type_slug: ClassVar[str] = "block"
    _abstract: ClassVar[bool] = False
    _registry: ClassVar[dict[str, type[Block]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        slug = cls.__dict__.get("_block_type_slug") or _kebab(cls.__name__)
        cls._block_type_slug = slug
        if not cls.__dict__.get("_abstract", False):  # base classes are not loadable types
            Block._registry[slug] = cls

    def __post_init__(self) -> None:
        # Check (and coerce: a plain str becomes a SecretStr) every field against its type.
        for field in msgspec.structs.fields(self):
            value = getattr(self, field.name)
            try:
                converted = msgspec.convert(value, field.type, dec_hook=_dec_hook)
            except msgspec.ValidationError as exc:
                raise InvalidBlockError(f"{type(self).__name__}.{field.name}: {exc}") from None
            if converted is not value:
                setattr(self, field.name, converted)

    # -- identity --------------------------------------------------------------------------

    @property
    def _block_document_id(self) -> uuid.UUID | None:
        """The id of the document this block was loaded from or saved as, else None."""
        return self.__dict__.get("_document_id")

    @property
    def _block_document_name(self) -> str | None:
        """The name this block was loaded from or saved under, else None."""
        return self.__dict__.get("_document_name")

    @classmethod
    def get_block_type_slug(cls) -> str:
        """The slug of this block type, as stored in the database."""
        return cls._block_type_slug

    def public_data(self) -> dict[str, Any]:
        """The fields as JSON-ready values with every secret masked, for APIs and displays."""
        return {
            field.name: msgspec.to_builtins(getattr(self, field.name), enc_hook=_enc_hook)
            for field in msgspec.structs.fields(self)
        }

    # -- saving ----------------------------------------------------------------------------

    def save(self, name: str, overwrite: bool = False) -> uuid.UUID:
        """Save this block as the document ``name`` of its type.

        Returns:
            The document id.

        Raises:
            InvalidBlockError: the name is not lowercase letters, digits and dashes.
            BlockAlreadyExistsError: (a ValueError) the name is taken and overwrite is False.
            BlockKeyError: the key file that encrypts secrets is unsafe or unreadable.

        In async code (an async flow or task) it returns an awaitable, as Prefect's does.
        """
        if in_async_context():
            return self.asave(name, overwrite)  # type: ignore[return-value]
        return store.run_sync(self._save_with(name, overwrite))

    async def asave(self, name: str, overwrite: bool = False) -> uuid.UUID:
        """Async twin of :meth:`save`."""
        return await store.run_async(self._save_with(name, overwrite))

    def _save_with(self, name: str, overwrite: bool) -> Callable[[Database], Awaitable[uuid.UUID]]:
        slug = self._block_type_slug
        _check_name(slug, name)

        async def work(database: Database) -> uuid.UUID:
            # The key file may be created (written and synced): not on the event loop.
            data = await anyio.to_thread.run_sync(self._stored_data)
            document_id, created = await store.write_document(
                database, slug, name, data, overwrite=overwrite
            )
            self.__dict__["_document_id"] = document_id
            self.__dict__["_document_name"] = name
            _emit_change("created" if created else "updated", document_id, slug, name)
            return document_id

        return work

    def _stored_data(self) -> str:
        fernet = None
        data: dict[str, Any] = {}
        for field in msgspec.structs.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, _SECRET_TYPES):
                fernet = fernet or crypto.load_fernet(create=True)
                assert fernet is not None
                plaintext = msgspec.json.encode(value.get_secret_value())
                data[field.name] = {_ENCRYPTED: crypto.encrypt(fernet, plaintext)}
            else:
                data[field.name] = msgspec.to_builtins(value, enc_hook=_nested_secret)
        return msgspec.json.encode(data).decode()

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls: type[B], name: str) -> B:
        """Load the document ``name`` of this type; on ``Block`` itself, ``"<slug>/<name>"``.

        Raises:
            BlockNotFoundError: (a ValueError) there is no such document.
            BlockKeyError: its secrets cannot be decrypted with the key file.

        In async code it returns an awaitable, as Prefect's does.
        """
        if in_async_context():
            return cls.aload(name)  # type: ignore[return-value]
        slug, name = cls._resolve(name)
        return store.run_sync(cls._load_with(slug, name))

    @classmethod
    async def aload(cls: type[B], name: str) -> B:
        """Async twin of :meth:`load`."""
        slug, name = cls._resolve(name)
        return await store.run_async(cls._load_with(slug, name))

    @classmethod
    def load_from_id(cls: type[B], block_document_id: uuid.UUID | str) -> B:
        """Load a document by id (automation actions refer to blocks by id).

        Raises:
            BlockNotFoundError: no document has this id (or it is not of this type).
        """
        if in_async_context():
            return cls.aload_from_id(block_document_id)  # type: ignore[return-value]
        return store.run_sync(cls._load_by_id_with(_uuid(block_document_id)))

    @classmethod
    async def aload_from_id(cls: type[B], block_document_id: uuid.UUID | str) -> B:
        """Async twin of :meth:`load_from_id`."""
        return await store.run_async(cls._load_by_id_with(_uuid(block_document_id)))

    @classmethod
    def _resolve(cls, name: str) -> tuple[str, str]:
        if "/" in name:
            slug, _, name = name.partition("/")
            if cls is not Block and slug != cls._block_type_slug:
                raise BlockNotFoundError(
                    f"{cls.__name__} cannot load a {slug} block ({slug}/{name}); "
                    f"use {cls.__name__}.load({name!r}) or Block.load({slug + '/' + name!r})"
                )
            return slug, name
        if cls is Block:
            raise InvalidBlockError(
                f"Block.load() needs '<block-type-slug>/<name>', e.g. 'slack-webhook/{name}'"
            )
        return cls._block_type_slug, name

    @classmethod
    def _load_with(cls: type[B], slug: str, name: str) -> Callable[[Database], Awaitable[B]]:
        async def work(database: Database) -> B:
            row = await store.read_document(database, slug, name)
            if row is None:
                raise BlockNotFoundError(f"no {slug} block named {name!r}")
            return await anyio.to_thread.run_sync(cls._from_row, row)

        return work

    @classmethod
    def _load_by_id_with(
        cls: type[B], document_id: uuid.UUID
    ) -> Callable[[Database], Awaitable[B]]:
        async def work(database: Database) -> B:
            row = await store.read_document_by_id(database, document_id)
            if row is None or (cls is not Block and row.block_type != cls._block_type_slug):
                kind = "block" if cls is Block else f"{cls._block_type_slug} block"
                raise BlockNotFoundError(f"no {kind} with id {document_id}")
            return await anyio.to_thread.run_sync(cls._from_row, row)

        return work

    @classmethod
    def _from_row(cls: type[B], row: store.BlockDocumentRow) -> B:
        target = _block_class(row.block_type) if cls is Block else cls
        data = msgspec.json.decode(row.data)
        fernet = None
        for key, value in data.items():
            if isinstance(value, dict) and set(value) == {_ENCRYPTED}:
                fernet = fernet or crypto.load_fernet(create=False)
                what = f"{row.block_type} block {row.name!r}"
                if fernet is None:
                    raise BlockKeyError(
                        str(crypto.key_path()),
                        f"is missing, so the secret fields of the {what} cannot be decrypted",
                    )
                data[key] = msgspec.json.decode(
                    crypto.decrypt(fernet, value[_ENCRYPTED], what=what)
                )
        try:
            block = msgspec.convert(data, target, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            raise InvalidBlockError(
                f"the saved {row.block_type} block {row.name!r} no longer fits "
                f"{target.__name__}: {exc}"
            ) from None
        block.__dict__["_document_id"] = row.id
        block.__dict__["_document_name"] = row.name
        return block  # type: ignore[return-value]

    # -- deleting --------------------------------------------------------------------------

    @classmethod
    def delete(cls, name: str) -> None:
        """Delete the document ``name`` of this type (``"<slug>/<name>"`` on ``Block``).

        Raises:
            BlockNotFoundError: there is no such document.
        """
        if in_async_context():
            return cls.adelete(name)  # type: ignore[return-value]
        slug, name = cls._resolve(name)
        store.run_sync(_delete_with(slug, name))

    @classmethod
    async def adelete(cls, name: str) -> None:
        """Async twin of :meth:`delete`."""
        slug, name = cls._resolve(name)
        await store.run_async(_delete_with(slug, name))


def _delete_with(slug: str, name: str) -> Callable[[Database], Awaitable[None]]:
    async def work(database: Database) -> None:
        document_id = await store.delete_document(database, slug, name)
        if document_id is None:
            raise BlockNotFoundError(f"no {slug} block named {name!r}")
        _emit_change("deleted", document_id, slug, name)

    return work


def _check_name(slug: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = name if isinstance(name, str) and len(name) <= 300 else f"{str(name)[:60]}..."
        raise InvalidBlockError(
            f"{shown!r} cannot name a {slug} block: use 1 to 255 lowercase letters, digits "
            "and dashes, starting with a letter or digit"
        )


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BlockNotFoundError(f"{value!r} is not a block document id") from None


def _block_class(slug: str) -> type[Block]:
    cls = Block._registry.get(slug)
    if cls is None and slug in _BUILTIN_MODULES:
        import importlib

        importlib.import_module(_BUILTIN_MODULES[slug])
        cls = Block._registry.get(slug)
    if cls is None:
        raise BlockNotFoundError(
            f"block type {slug!r} is not known to this process; import the module that "
            "defines its class before loading it"
        )
    return cls


def _emit_change(action: str, document_id: uuid.UUID, slug: str, name: str) -> None:
    emit_event(
        f"headwater.block-document.{action}",
        resource={
            "headwater.resource.id": f"headwater.block-document.{document_id}",
            "headwater.resource.name": name,
            "headwater.block-type.slug": slug,
        },
        related=[
            {
                "headwater.resource.id": f"headwater.block-type.{slug}",
                "headwater.resource.role": "block-type",
                "headwater.resource.name": slug,
            }
        ],
        payload={"block_type": slug, "name": name},
    )


def read_block_documents(block_type: str | None = None) -> list[BlockDocument]:
    """Every saved block (of one type slug, if given), by type then name; never their data."""
    return store.run_sync(functools.partial(store.list_documents, block_type=block_type))


async def aread_block_documents(block_type: str | None = None) -> list[BlockDocument]:
    """Async twin of :func:`read_block_documents`."""
    return await store.run_async(functools.partial(store.list_documents, block_type=block_type))

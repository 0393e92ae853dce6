"""Serializers: how a persisted result becomes bytes and back (Prefect's ``prefect.serializers``).

``"pickle"`` (the default) uses cloudpickle, which also handles lambdas, closures and classes
defined in ``__main__``: what tasks return in practice. ``"json"`` uses msgspec and keeps only
JSON types (a datetime comes back as its ISO string), for results other programs read.
``"compressed/pickle"`` and ``"compressed/json"`` add zlib.

A serializer writes into a file object (:meth:`Serializer.dump`), so a large result streams
to storage without a second copy in memory; the storage layer makes the write atomic.
"""

from __future__ import annotations

import pickle
import zlib
from typing import IO, Any

import msgspec

from headwater.exceptions import SerializationError

__all__ = [
    "CompressedJSONSerializer",
    "CompressedPickleSerializer",
    "CompressedSerializer",
    "JSONSerializer",
    "PickleSerializer",
    "Serializer",
    "resolve_serializer",
]


class Serializer:
    """Turns a result into bytes and back; subclass it for a format of your own.

    Attributes:
        type: the name stored in each record, used to decode it in any process.
    """

    type: str = ""

    def dumps(self, obj: Any) -> bytes:
        raise NotImplementedError

    def loads(self, blob: bytes) -> Any:
        raise NotImplementedError

    def dump(self, obj: Any, file: IO[bytes]) -> None:
        """Write ``obj`` into ``file``; override to stream instead of building the bytes."""
        file.write(self.dumps(obj))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash((type(self), self.type))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PickleSerializer(Serializer):
    """cloudpickle: any Python object, read back by the same Python and library versions."""

    type = "pickle"

    def __init__(self, picklelib: str = "cloudpickle") -> None:
        if picklelib not in ("cloudpickle", "pickle"):
            raise ValueError(f"picklelib must be 'cloudpickle' or 'pickle', got {picklelib!r}")
        self.picklelib = picklelib

    def dumps(self, obj: Any) -> bytes:
        return self._pickler().dumps(obj)  # type: ignore[no-any-return]

    def dump(self, obj: Any, file: IO[bytes]) -> None:
        self._pickler().dump(obj, file)

    def loads(self, blob: bytes) -> Any:
        # cloudpickle writes standard pickles: the stdlib reads them
        return pickle.loads(blob)

    def _pickler(self) -> Any:
        if self.picklelib == "pickle":
            return pickle
        import cloudpickle  # imported on first use: a plain `import headwater` stays light

        return cloudpickle


class JSONSerializer(Serializer):
    """JSON through msgspec: builtins, dataclasses, msgspec Structs, datetimes, UUIDs."""

    type = "json"

    def dumps(self, obj: Any) -> bytes:
        return msgspec.json.encode(obj)

    def loads(self, blob: bytes) -> Any:
        return msgspec.json.decode(blob)


class CompressedSerializer(Serializer):
    """Another serializer's bytes, zlib-compressed."""

    def __init__(self, serializer: Serializer | str = "pickle", level: int = 6) -> None:
        inner = resolve_serializer(serializer)
        if isinstance(inner, CompressedSerializer):
            raise ValueError("a compressed serializer cannot wrap another compressed one")
        self.serializer = inner
        self.level = level
        self.type = f"compressed/{inner.type}"

    def dumps(self, obj: Any) -> bytes:
        return zlib.compress(self.serializer.dumps(obj), self.level)

    def loads(self, blob: bytes) -> Any:
        return self.serializer.loads(zlib.decompress(blob))

    def __repr__(self) -> str:
        return f"CompressedSerializer({self.serializer!r})"


class CompressedPickleSerializer(CompressedSerializer):
    def __init__(self, level: int = 6) -> None:
        super().__init__(PickleSerializer(), level)


class CompressedJSONSerializer(CompressedSerializer):
    def __init__(self, level: int = 6) -> None:
        super().__init__(JSONSerializer(), level)


_BY_NAME: dict[str, type[Serializer]] = {
    "pickle": PickleSerializer,
    "json": JSONSerializer,
    "compressed/pickle": CompressedPickleSerializer,
    "compressed/json": CompressedJSONSerializer,
}


def resolve_serializer(spec: Serializer | str) -> Serializer:
    """A serializer from a name (``"pickle"``, ``"json"``, ``"compressed/pickle"``...) or itself.

    Raises:
        ValueError: an unknown name.
    """
    if isinstance(spec, Serializer):
        return spec
    if isinstance(spec, str):
        factory = _BY_NAME.get(spec.lower())
        if factory is not None:
            return factory()
        if spec.lower().startswith("compressed/"):
            return CompressedSerializer(spec.split("/", 1)[1])
    raise ValueError(
        f"unknown result serializer {spec!r}; use one of {sorted(_BY_NAME)} or a Serializer"
    )


def dump_or_raise(serializer: Serializer, obj: Any, file: IO[bytes]) -> None:
    """``serializer.dump`` with failures as :class:`SerializationError` naming the type."""
    try:
        serializer.dump(obj, file)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize a {type(obj).__name__} result with the {serializer.type!r} "
            f"serializer: {type(exc).__name__}: {exc}"
        ) from exc


def load_or_raise(serializer: Serializer, blob: bytes, where: str) -> Any:
    try:
        return serializer.loads(blob)
    except Exception as exc:
        raise SerializationError(
            f"cannot decode the persisted result {where} with the {serializer.type!r} "
            f"serializer: {type(exc).__name__}: {exc}"
        ) from exc

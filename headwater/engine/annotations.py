"""Wrappers that change how the engine treats a task argument (Prefect's annotations)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

__all__ = ["BaseAnnotation", "allow_failure", "freeze", "opaque", "quote", "unmapped"]

T = TypeVar("T")


class BaseAnnotation(tuple, Generic[T]):  # type: ignore[type-arg]
    """A one-element tuple around a value; equality requires the same wrapper type."""

    __slots__ = ()

    def __new__(cls, value: T) -> BaseAnnotation[T]:
        return super().__new__(cls, (value,))

    def unwrap(self) -> T:
        return self[0]  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and tuple.__eq__(self, other)  # type: ignore[arg-type]

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self[0]!r})"


class unmapped(BaseAnnotation[T]):
    """Pass the value whole to every call of ``.map()`` instead of iterating it."""

    __slots__ = ()

    def __getitem__(self, _: Any) -> T:  # type: ignore[override]
        # map() indexes every argument by call number; an unmapped value answers the same
        return super().__getitem__(0)  # type: ignore[no-any-return]


class allow_failure(BaseAnnotation[T]):
    """Let a task run even when this upstream failed; it receives the exception as the value."""

    __slots__ = ()


class quote(BaseAnnotation[T]):
    """Pass the value untouched: no future resolution and no traversal."""

    __slots__ = ()

    def unquote(self) -> T:
        return self.unwrap()


class opaque(BaseAnnotation[T]):
    """Resolve a top-level future or state, but do not look inside the value."""

    __slots__ = ()


class freeze(BaseAnnotation[T]):
    """Mark a deployment parameter as locked; the value must be JSON-serialisable."""

    __slots__ = ()

    def __new__(cls, value: T) -> freeze[T]:
        import msgspec

        try:
            msgspec.json.encode(value)
        except (TypeError, msgspec.EncodeError) as exc:
            raise ValueError(f"freeze() needs a JSON-serialisable value: {exc}") from None
        return super().__new__(cls, value)  # type: ignore[return-value]

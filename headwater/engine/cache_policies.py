"""Cache policies: how a task run's cache key is computed (Prefect's ``prefect.cache_policies``).

A key is a pure function of the run (its inputs, its task's source, its flow run...), so two
runs with the same key are taken to compute the same value: the second is served from the
record the first one persisted. ``None`` means "do not cache this run".

Policies combine with ``+`` (the key covers every part) and ``INPUTS - "name"`` leaves a
parameter out. A compound key hashes the *sorted* sub-keys, so ``A + B`` and ``B + A`` agree
(Prefect users were surprised when order mattered).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from headwater.exceptions import CacheKeyError

__all__ = [
    "task_input_hash",
    "DEFAULT",
    "FLOW_PARAMETERS",
    "INPUTS",
    "NONE",
    "NO_CACHE",
    "RUN_ID",
    "TASK_SOURCE",
    "CacheKeyFnPolicy",
    "CachePolicy",
    "CompoundCachePolicy",
    "FlowParameters",
    "Inputs",
    "RunId",
    "TaskSource",
    "hash_objects",
]

_json = msgspec.json.Encoder(order="sorted")


def _digest(*parts: bytes) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        hasher.update(len(part).to_bytes(8, "little"))
        hasher.update(part)
    return hasher.hexdigest()


def _value_bytes(value: Any) -> bytes:
    """Stable bytes for a value: JSON when it is JSON-like, else its (cloud)pickle."""
    try:
        return b"j" + _json.encode(value)
    except (TypeError, msgspec.EncodeError, OverflowError):
        pass
    import cloudpickle

    return b"p" + cloudpickle.dumps(value)


def hash_objects(*objects: Any) -> str:
    """A hex digest of ``objects``.

    Raises:
        CacheKeyError: one of them is neither JSON-like nor picklable.
    """
    try:
        return _digest(*(_value_bytes(value) for value in objects))
    except Exception as exc:
        raise CacheKeyError(f"cannot hash {type(exc).__name__}: {exc}") from exc


def task_input_hash(context: Any, arguments: dict[str, Any]) -> str | None:
    """Prefect's classic ``cache_key_fn``: the task's key, its code and its inputs.

    Returns None (no caching) when an input cannot be hashed, as Prefect's does.
    """
    task = context.task
    code = getattr(getattr(task, "fn", None), "__code__", None)
    try:
        return hash_objects(
            getattr(task, "task_key", getattr(task, "name", "")),
            None if code is None else code.co_code.hex(),
            arguments,
        )
    except CacheKeyError:
        return None


class CachePolicy:
    """Base class: subclass it and implement :meth:`compute_key` for a policy of your own.

    Attributes:
        key_storage: where this policy's cache records live, instead of the result storage.
        isolation_level: ``"READ_COMMITTED"`` or ``"SERIALIZABLE"`` (an IsolationLevel).
        lock_manager: the lock manager for SERIALIZABLE runs (default: file locks).
    """

    def __init__(
        self, key_storage: Any = None, isolation_level: Any = None, lock_manager: Any = None
    ) -> None:
        self.key_storage = key_storage
        self.isolation_level = isolation_level
        self.lock_manager = lock_manager

    def compute_key(
        self,
        task_ctx: Any,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        raise NotImplementedError

    def configure(
        self, key_storage: Any = None, lock_manager: Any = None, isolation_level: Any = None
    ) -> CachePolicy:
        """A copy with storage, lock manager or isolation level set (the others kept)."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        if key_storage is not None:
            clone.key_storage = key_storage
        if lock_manager is not None:
            clone.lock_manager = lock_manager
        if isolation_level is not None:
            clone.isolation_level = isolation_level
        return clone

    def __add__(self, other: CachePolicy) -> CachePolicy:
        if not isinstance(other, CachePolicy):
            return NotImplemented
        if isinstance(other, _None):
            return self
        settings = {}
        for name in ("key_storage", "isolation_level", "lock_manager"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None and mine != theirs:
                raise ValueError(
                    f"cannot add cache policies with different {name}: {mine!r} and {theirs!r}"
                )
            settings[name] = mine if mine is not None else theirs
        return CompoundCachePolicy([self, other], **settings)

    def __sub__(self, name: str) -> CachePolicy:
        if not isinstance(name, str):
            raise TypeError("only parameter names (str) can be subtracted from a cache policy")
        return self  # a policy that does not look at inputs does not change

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _None(CachePolicy):
    """No key: the run is neither looked up nor cached."""

    def compute_key(self, task_ctx: Any, inputs: Any, flow_parameters: Any, **kw: Any) -> None:
        return None

    def __add__(self, other: CachePolicy) -> CachePolicy:
        return other

    def __repr__(self) -> str:
        return "NO_CACHE"


class TaskSource(CachePolicy):
    """The task function's source code (its bytecode when the source cannot be read)."""

    def compute_key(self, task_ctx: Any, inputs: Any, flow_parameters: Any, **kw: Any) -> str:
        task = task_ctx.task
        cached = getattr(task, "_source_key", None)
        if cached is None:
            fn = task.fn
            try:
                source = inspect.getsource(fn).encode()
            except (OSError, TypeError):
                code = getattr(fn, "__code__", None)
                source = code.co_code if code is not None else repr(fn).encode()
            # kept on the task (and so through pickling): the file may change later
            cached = task._source_key = _digest(source)
        return str(cached)


class FlowParameters(CachePolicy):
    """The parent flow run's parameters (None outside a flow)."""

    def compute_key(
        self, task_ctx: Any, inputs: Any, flow_parameters: dict[str, Any] | None, **kw: Any
    ) -> str | None:
        if not flow_parameters:
            return None
        return _hash_mapping(flow_parameters, "flow parameter")


class RunId(CachePolicy):
    """The flow run's id (the task run's own id outside a flow)."""

    def compute_key(self, task_ctx: Any, inputs: Any, flow_parameters: Any, **kw: Any) -> str:
        task_run = task_ctx.task_run
        run_id = task_run.flow_run_id if task_run.flow_run_id is not None else task_run.id
        return str(run_id)


class Inputs(CachePolicy):
    """The task run's arguments, all but those in ``exclude``.

    Raises (from compute_key):
        CacheKeyError: an argument can be neither JSON-encoded nor pickled; the message names it.
    """

    def __init__(self, exclude: Iterable[str] = (), **settings: Any) -> None:
        super().__init__(**settings)
        self.exclude = sorted(set(exclude))

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: Any, **kw: Any
    ) -> str | None:
        kept = {name: value for name, value in inputs.items() if name not in self.exclude}
        if not kept:
            return None
        return _hash_mapping(kept, "input")

    def __sub__(self, name: str) -> CachePolicy:
        if not isinstance(name, str):
            raise TypeError("only parameter names (str) can be subtracted from a cache policy")
        clone = self.configure()
        clone.exclude = sorted({*self.exclude, name})  # type: ignore[attr-defined]
        return clone

    def __repr__(self) -> str:
        return f"Inputs(exclude={self.exclude!r})" if self.exclude else "INPUTS"


def _hash_mapping(values: dict[str, Any], what: str) -> str:
    parts = []
    for name in sorted(values):
        try:
            parts.append(name.encode() + b"=" + _value_bytes(values[name]))
        except Exception as exc:
            raise CacheKeyError(
                f"the {what} {name!r} ({type(values[name]).__name__}) cannot be hashed for the "
                f"cache key: {type(exc).__name__}: {exc}. Use cache_policy=NO_CACHE, leave it "
                f'out with INPUTS - "{name}", or give the task a cache_key_fn'
            ) from exc
    return _digest(*parts)


class CompoundCachePolicy(CachePolicy):
    """Several policies at once: the key hashes their (sorted) non-None keys."""

    def __init__(self, policies: Iterable[CachePolicy] = (), **settings: Any) -> None:
        super().__init__(**settings)
        flat: list[CachePolicy] = []
        excludes: set[str] | None = None
        for policy in policies:
            members = policy.policies if isinstance(policy, CompoundCachePolicy) else [policy]
            for member in members:
                if isinstance(member, Inputs):
                    excludes = (excludes or set()) | set(member.exclude)
                elif not isinstance(member, _None) and member not in flat:
                    flat.append(member)
        if excludes is not None:
            flat.append(Inputs(exclude=excludes))
        self.policies: list[CachePolicy] = flat

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: Any, **kw: Any
    ) -> str | None:
        keys = []
        for policy in self.policies:
            key = policy.compute_key(task_ctx, inputs, flow_parameters, **kw)
            if key is not None:
                keys.append(key)
        if not keys:
            return None
        return _digest(*(key.encode() for key in sorted(keys)))

    def __sub__(self, name: str) -> CachePolicy:
        if not isinstance(name, str):
            raise TypeError("only parameter names (str) can be subtracted from a cache policy")
        clone = self.configure()
        clone.policies = [policy - name for policy in self.policies]  # type: ignore[attr-defined]
        return clone

    def __repr__(self) -> str:
        return " + ".join(repr(policy) for policy in self.policies) or "NO_CACHE"


class CacheKeyFnPolicy(CachePolicy):
    """A user function ``(TaskRunContext, parameters) -> str | None`` as a policy."""

    def __init__(self, cache_key_fn: Callable[..., str | None], **settings: Any) -> None:
        super().__init__(**settings)
        self.cache_key_fn = cache_key_fn

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: Any, **kw: Any
    ) -> str | None:
        key = self.cache_key_fn(task_ctx, inputs)
        return None if key is None else str(key)

    def __repr__(self) -> str:
        name = getattr(self.cache_key_fn, "__qualname__", repr(self.cache_key_fn))
        return f"CacheKeyFnPolicy({name})"


NO_CACHE: CachePolicy = _None()
NONE: CachePolicy = NO_CACHE
INPUTS: CachePolicy = Inputs()
TASK_SOURCE: CachePolicy = TaskSource()
FLOW_PARAMETERS: CachePolicy = FlowParameters()
RUN_ID: CachePolicy = RunId()
DEFAULT: CachePolicy = INPUTS + TASK_SOURCE + RUN_ID

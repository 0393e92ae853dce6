"""Parameters: binding call arguments to a signature and validating them against type hints.

Validation uses ``msgspec.convert`` in lax mode (so "3" becomes 3 for an ``int``, as
Prefect's pydantic validation does) and pydantic for hints that involve pydantic models.
The work is planned once per function: a function without annotations costs nothing.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from headwater.exceptions import ParameterTypeError, ReservedArgumentError

__all__ = ["ParameterSchema"]

RESERVED_PARAMETERS = frozenset({"return_state", "wait_for"})

Validator = Callable[[Any], Any]


class ParameterSchema:
    """How to bind and validate the arguments of one flow or task function."""

    __slots__ = ("_hints", "_simple", "_validators", "owner", "signature")

    def __init__(self, fn: Callable[..., Any], owner: str) -> None:
        self.owner = owner
        self.signature = inspect.signature(fn)
        reserved = RESERVED_PARAMETERS & set(self.signature.parameters)
        if reserved:
            raise ReservedArgumentError(
                f"{owner} declares the parameter(s) {sorted(reserved)}, which headwater reserves "
                "for the call itself (return_state=..., wait_for=...); rename them"
            )
        try:
            hints = typing.get_type_hints(fn)
        except Exception:
            # unresolvable forward references: validate only what resolves on its own
            hints = {
                name: p.annotation
                for name, p in self.signature.parameters.items()
                if p.annotation is not inspect.Parameter.empty and not isinstance(p.annotation, str)
            }
        hints.pop("return", None)
        self._hints = {
            name: hint
            for name, hint in hints.items()
            if name in self.signature.parameters and hint is not Any
        }
        self._validators: dict[str, Validator] | None = None
        # only plain positional-or-keyword parameters: binding can skip inspect's machinery
        self._simple = all(
            p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
            for p in self.signature.parameters.values()
        )

    @property
    def has_hints(self) -> bool:
        return bool(self._hints)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Map call arguments to parameter names, defaults applied.

        Raises:
            ParameterTypeError: missing, unexpected or duplicated arguments.
        """
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ParameterTypeError(self.owner, None, str(exc)) from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def validate(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """Return the parameters converted to their hinted types.

        Raises:
            ParameterTypeError: a value does not fit its hint; names the parameter, the
                expected type and the value.
        """
        validators = self._validators
        if validators is None:
            validators = self._validators = self._plan()
        if not validators:
            return parameters
        validated = dict(parameters)
        for name, validator in validators.items():
            if name not in validated:
                continue
            value = validated[name]
            try:
                validated[name] = validator(value)
            except (msgspec.ValidationError, ValueError, TypeError) as exc:
                raise ParameterTypeError(
                    self.owner,
                    name,
                    _first_line(exc),
                    expected=_type_name(self._hints[name]),
                    value=value,
                ) from None
        return validated

    def json_schema(self) -> dict[str, Any]:
        """The parameters as a JSON schema (Prefect's ``parameter_openapi_schema``).

        Stored with a deployment, so that a run requested from the CLI, another process or
        a server is checked without importing the flow: required names, unknown names
        (unless there is ``**kwargs``) and each hinted type. A hint with no JSON form (a
        Protocol, an arbitrary class) accepts anything, as the engine does.
        """
        properties: dict[str, Any] = {}
        required: list[str] = []
        definitions: dict[str, Any] = {}
        extra = False
        for position, (name, parameter) in enumerate(self.signature.parameters.items()):
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                extra = True
                continue
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            hint = self._hints.get(name)
            schema = {} if hint is None else _hint_schema(hint, definitions)
            schema = {"title": name, "position": position, **schema}
            if parameter.default is inspect.Parameter.empty:
                required.append(name)
            else:
                try:
                    schema["default"] = msgspec.to_builtins(parameter.default)
                except TypeError:
                    pass  # a default with no JSON form: the flow applies it itself
            properties[name] = schema
        schema = {
            "title": "Parameters",
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": extra,
        }
        if definitions:
            schema["definitions"] = definitions
        return schema

    def to_call(self, parameters: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Turn a parameters mapping back into ``(args, kwargs)`` for the function."""
        if self._simple:
            return (), parameters
        # BoundArguments passes positional-or-keyword parameters positionally when a
        # *args parameter follows them (as keywords they would collide with *args)
        names = self.signature.parameters
        ordered = {name: parameters[name] for name in names if name in parameters}
        bound = inspect.BoundArguments(self.signature, ordered)  # type: ignore[arg-type]
        return bound.args, bound.kwargs

    def _plan(self) -> dict[str, Validator]:
        validators: dict[str, Validator] = {}
        for name, hint in self._hints.items():
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                hint = tuple[hint, ...]  # type: ignore[valid-type]
            elif kind is inspect.Parameter.VAR_KEYWORD:
                hint = dict[str, hint]  # type: ignore[valid-type]
            validator = _validator_for(hint)
            if validator is not None:
                validators[name] = validator
        return validators


def _validator_for(hint: Any) -> Validator | None:
    if _mentions_pydantic(hint):
        from pydantic import TypeAdapter

        adapter = TypeAdapter(hint)
        return adapter.validate_python
    try:
        msgspec.inspect.type_info(hint)
    except (TypeError, ValueError):
        return None  # a hint msgspec cannot check (a Protocol, a TypeVar...): trust the caller

    def convert(value: Any) -> Any:
        return msgspec.convert(value, hint, strict=False)

    return convert


def _hint_schema(hint: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    if _mentions_pydantic(hint):
        from pydantic import TypeAdapter

        try:
            schema = TypeAdapter(hint).json_schema(ref_template="#/definitions/{model}")
        except Exception:
            return {}
        definitions.update(schema.pop("$defs", {}))
        return schema
    try:
        (schema,), components = msgspec.json.schema_components(
            (hint,), ref_template="#/definitions/{name}"
        )
    except (TypeError, ValueError):
        return {}
    definitions.update(components)
    return schema


def _mentions_pydantic(hint: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return False
    if isinstance(hint, type) and issubclass(hint, pydantic.BaseModel):
        return True
    return any(_mentions_pydantic(arg) for arg in typing.get_args(hint))


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return repr(hint).replace("typing.", "")


def _first_line(exc: BaseException) -> str:
    """One line of detail: pydantic spreads its explanation over several lines."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    detail = "; ".join(line for line in lines if not line.startswith("For further information"))
    return detail if len(detail) <= 300 else detail[:297] + "..."

"""Action templates: Jinja in a sandbox, compiled once per source, rendered per firing.

Subjects, bodies, webhook payloads and emitted events are Jinja templates rendered with
``automation``, ``event`` (the triggering event), ``labels`` (the firing's for_each labels)
and ``firing`` always in scope, plus ``flow_run``, ``flow`` and ``task_run`` when the
template mentions them (loaded from the database by the caller; see
:func:`referenced_names`). The sandbox (``jinja2.sandbox.ImmutableSandboxedEnvironment``)
refuses attribute access to internals and mutation of the objects passed in, so a template
written by one user cannot reach the process.

A render error is reported, never raised through the reactor: :func:`render` raises
:class:`TemplateRenderError`, which the action runner turns into a failed action whose
event carries ``template_error`` and ``template_source``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "TemplateRenderError",
    "is_template",
    "referenced_names",
    "render",
    "template_syntax_error",
]

LAZY_NAMES = frozenset({"flow_run", "flow", "task_run"})
"""Context names loaded only when a template mentions them."""


class TemplateRenderError(Exception):
    """A template failed to compile or render; ``error`` says why, ``source`` is the template."""

    def __init__(self, error: str, source: str) -> None:
        self.error = error
        self.source = source
        super().__init__(error)


def _tojson(value: Any, indent: int | None = None) -> str:
    # Plain JSON (not Jinja's HTML-escaped form): payloads are JSON, not HTML.
    import msgspec

    return json.dumps(msgspec.to_builtins(value, str_keys=True), indent=indent, default=str)


_environment = ImmutableSandboxedEnvironment(
    autoescape=False, undefined=jinja2.Undefined, keep_trailing_newline=True
)
_environment.filters["tojson"] = _tojson


def is_template(text: str) -> bool:
    """Whether ``text`` holds Jinja markup (otherwise it is used as it is)."""
    return "{{" in text or "{%" in text or "{#" in text


@functools.lru_cache(maxsize=512)
def _compile(source: str) -> tuple[jinja2.Template, frozenset[str]]:
    parsed = _environment.parse(source)
    names = frozenset(jinja2.meta.find_undeclared_variables(parsed))
    return _environment.from_string(parsed), names


def template_syntax_error(source: str) -> str | None:
    """Why ``source`` does not compile, or None when it does (used when validating)."""
    if not is_template(source):
        return None
    try:
        _compile(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"{exc.message} (line {exc.lineno})"
    return None


def referenced_names(*sources: str) -> frozenset[str]:
    """The lazily loaded names (``flow_run``, ``flow``, ``task_run``) these templates use."""
    names: set[str] = set()
    for source in sources:
        if is_template(source):
            try:
                names |= _compile(source)[1]
            except jinja2.TemplateSyntaxError:
                continue
    return frozenset(names & LAZY_NAMES)


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render ``source`` with ``context``; text without markup is returned as it is.

    Raises:
        TemplateRenderError: it does not compile, or rendering failed (an undefined
            attribute, a sandbox violation, an error in a filter).
    """
    if not is_template(source):
        return source
    try:
        template, _ = _compile(source)
        return template.render(dict(context))
    except jinja2.TemplateError as exc:
        raise TemplateRenderError(f"{type(exc).__name__}: {exc}", source) from None
    except Exception as exc:
        # Anything an expression raises (ZeroDivisionError, TypeError...) is the template's.
        raise TemplateRenderError(f"{type(exc).__name__}: {exc}", source) from None


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside ``value`` (dicts and lists are walked), keeping the rest."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value

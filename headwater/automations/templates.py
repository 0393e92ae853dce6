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

Pure: compiling and inspecting templates. Rendering, with its time and output budget, is
:mod:`headwater.automations.rendering`; the sandbox here already refuses ``*``/``**`` that
would build a value past :data:`RENDER_MAX_CHARS`.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "RENDER_MAX_CHARS",
    "TemplateRenderError",
    "compile_template",
    "is_template",
    "referenced_names",
    "template_syntax_error",
]

LAZY_NAMES = frozenset({"flow_run", "flow", "task_run"})
"""Context names loaded only when a template mentions them."""

RENDER_MAX_CHARS = 1_000_000
"""The most characters one template may produce."""


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


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, where ``*`` and ``**`` cannot build a value past the output budget."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 256:
            raise TemplateRenderError(f"exponent {right} is over 256", "")
        if operator == "*":
            for sized, times in ((left, right), (right, left)):
                if (
                    isinstance(sized, (str, list, tuple))
                    and isinstance(times, int)
                    and len(sized) * times > RENDER_MAX_CHARS
                ):
                    raise TemplateRenderError(
                        f"a value of {len(sized) * times} items is over the budget", ""
                    )
        return super().call_binop(context, operator, left, right)


_environment = _BoundedEnvironment(
    autoescape=False, undefined=jinja2.Undefined, keep_trailing_newline=True
)
_environment.filters["tojson"] = _tojson


def is_template(text: str) -> bool:
    """Whether ``text`` holds Jinja markup (otherwise it is used as it is)."""
    return "{{" in text or "{%" in text or "{#" in text


@functools.lru_cache(maxsize=512)
def compile_template(source: str) -> tuple[jinja2.Template, frozenset[str]]:
    """The compiled template and the names it does not define (cached per source)."""
    parsed = _environment.parse(source)
    names = frozenset(jinja2.meta.find_undeclared_variables(parsed))
    return _environment.from_string(parsed), names


def template_syntax_error(source: str) -> str | None:
    """Why ``source`` does not compile, or None when it does (used when validating)."""
    if not is_template(source):
        return None
    try:
        compile_template(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"{exc.message} (line {exc.lineno})"
    return None


def referenced_names(*sources: str) -> frozenset[str]:
    """The lazily loaded names (``flow_run``, ``flow``, ``task_run``) these templates use."""
    names: set[str] = set()
    for source in sources:
        if is_template(source):
            try:
                names |= compile_template(source)[1]
            except jinja2.TemplateSyntaxError:
                continue
    return frozenset(names & LAZY_NAMES)

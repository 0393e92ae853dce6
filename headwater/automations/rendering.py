"""Rendering action templates within a budget: time, output, and values built.

At most :data:`RENDER_SECONDS` of work (a trace function keeps the time, so a loop that
prints nothing is stopped too) and :data:`~headwater.automations.templates.RENDER_MAX_CHARS`
of output: a heavy template fails its action instead of stalling what renders it. Callers
render in a worker thread, never on an event loop.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

import jinja2

from headwater.automations.templates import (
    RENDER_MAX_CHARS,
    TemplateRenderError,
    compile_template,
    is_template,
)

__all__ = ["RENDER_SECONDS", "render", "render_value"]

RENDER_SECONDS = 2.0
"""The most time one template may take to render."""


class _OverTime(Exception):
    pass


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render ``source`` with ``context``; text without markup is returned as it is.

    Raises:
        TemplateRenderError: it does not compile, or rendering failed (an undefined
            attribute, a sandbox violation, an error in a filter).
    """
    if not is_template(source):
        return source
    try:
        template, _ = compile_template(source)
        return _bounded(template, dict(context))
    except TemplateRenderError as exc:
        raise TemplateRenderError(exc.error, source) from None
    except _OverTime:
        raise TemplateRenderError(f"rendering took over {RENDER_SECONDS:g} s", source) from None
    except jinja2.TemplateError as exc:
        raise TemplateRenderError(f"{type(exc).__name__}: {exc}", source) from None
    except Exception as exc:
        # Anything an expression raises (ZeroDivisionError, TypeError...) is the template's.
        raise TemplateRenderError(f"{type(exc).__name__}: {exc}", source) from None


def _bounded(template: jinja2.Template, context: dict[str, Any]) -> str:
    """Render within the time and output budget (a trace function keeps the time)."""
    deadline = time.monotonic() + RENDER_SECONDS
    previous = sys.gettrace()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise _OverTime
        return tracer

    chunks: list[str] = []
    size = 0
    sys.settrace(tracer)
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > RENDER_MAX_CHARS:
                raise TemplateRenderError(f"output over {RENDER_MAX_CHARS} characters", "")
            chunks.append(chunk)
    finally:
        sys.settrace(previous)
    return "".join(chunks)


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside ``value`` (dicts and lists are walked), keeping the rest."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    return value

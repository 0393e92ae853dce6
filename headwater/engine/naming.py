"""Readable names for runs: "crimson-fox" for flow runs, "<task>-<k>" for task runs."""

from __future__ import annotations

import contextvars
import random
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["generate_slug", "render_run_name"]

_ADJECTIVES = [
    "amber",
    "azure",
    "bold",
    "brave",
    "bright",
    "calm",
    "clever",
    "cobalt",
    "crimson",
    "curious",
    "daring",
    "dazzling",
    "eager",
    "electric",
    "emerald",
    "fearless",
    "fierce",
    "gentle",
    "golden",
    "graceful",
    "hidden",
    "humble",
    "icy",
    "jade",
    "jolly",
    "keen",
    "lively",
    "lucky",
    "marvellous",
    "mellow",
    "merry",
    "misty",
    "noble",
    "olive",
    "patient",
    "placid",
    "proud",
    "quick",
    "quiet",
    "radiant",
    "rapid",
    "rustic",
    "scarlet",
    "serene",
    "shiny",
    "silent",
    "silver",
    "smart",
    "steady",
    "swift",
    "tidy",
    "vivid",
    "wandering",
    "warm",
    "wise",
    "witty",
    "zealous",
]
_NOUNS = [
    "badger",
    "bear",
    "beaver",
    "bison",
    "caracal",
    "cheetah",
    "cobra",
    "condor",
    "coyote",
    "crane",
    "dolphin",
    "eagle",
    "falcon",
    "ferret",
    "finch",
    "fox",
    "gecko",
    "gibbon",
    "heron",
    "hornet",
    "ibis",
    "jackal",
    "jaguar",
    "kestrel",
    "koala",
    "lemur",
    "leopard",
    "lynx",
    "marmot",
    "marten",
    "mink",
    "moose",
    "narwhal",
    "newt",
    "ocelot",
    "orca",
    "osprey",
    "otter",
    "owl",
    "panda",
    "panther",
    "pelican",
    "puffin",
    "quail",
    "raven",
    "robin",
    "salmon",
    "seal",
    "shrike",
    "sparrow",
    "stork",
    "swan",
    "tapir",
    "tiger",
    "toucan",
    "trout",
    "viper",
    "walrus",
    "weasel",
    "wolf",
    "wombat",
    "wren",
    "yak",
    "zebra",
]

_random = random.Random()


def generate_slug() -> str:
    """A two-word name such as ``"swift-otter"``."""
    return f"{_random.choice(_ADJECTIVES)}-{_random.choice(_NOUNS)}"


naming: contextvars.ContextVar[tuple[str, Mapping[str, Any]] | None] = contextvars.ContextVar(
    "headwater_naming", default=None
)
"""``(kind, parameters)`` while a run name callable runs: ``headwater.runtime.flow_run`` /
``task_run.parameters`` answer from it, as Prefect's name callables expect (the run's own
context does not exist yet when its name is made)."""


def render_run_name(
    template: str | Callable[..., str],
    parameters: Mapping[str, Any],
    owner: str,
    kind: str = "flow-run",
) -> str:
    """Render a ``flow_run_name``/``task_run_name``: a format string over the parameters,
    or a callable taking no arguments or ``parameters=``.

    Raises:
        ValueError: the template names a parameter the call does not have, or the callable
            returns something other than a string; the message names the flow or task.
    """
    if callable(template):
        import inspect

        try:
            accepts_parameters = "parameters" in inspect.signature(template).parameters
        except (TypeError, ValueError):
            accepts_parameters = False
        token = naming.set((kind, parameters))
        try:
            name = template(parameters=dict(parameters)) if accepts_parameters else template()
        finally:
            naming.reset(token)
        if not isinstance(name, str):
            raise ValueError(
                f"{owner}: the run name callable returned {type(name).__name__}, expected str"
            )
        return name
    try:
        return template.format(**parameters)
    except KeyError as exc:
        raise ValueError(
            f"{owner}: run name template {template!r} refers to {exc.args[0]!r}, which is not "
            f"a parameter (parameters: {sorted(parameters)})"
        ) from None

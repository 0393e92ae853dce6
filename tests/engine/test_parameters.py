"""Parameters: binding call arguments and validating them against type hints."""

from __future__ import annotations

import dataclasses
from typing import Any

import pydantic
import pytest
from support import assert_transitions

from headwater import flow, task
from headwater.engine.parameters import ParameterSchema
from headwater.events import get_bus
from headwater.exceptions import ParameterTypeError, ReservedArgumentError
from headwater.runtime import flow_run


class Point(pydantic.BaseModel):
    x: int
    y: int = 0


@dataclasses.dataclass
class Box:
    size: int


# -- validation --------------------------------------------------------------------------


def test_lax_conversion_from_type_hints(events):
    @flow
    def typed(n: int, ratio: float, flag: bool, names: list[str]):
        return n, ratio, flag, names

    assert typed("3", "0.5", "true", ["a"]) == (3, 0.5, True, ["a"])


def test_runtime_parameters_are_the_validated_ones(events):
    @flow
    def typed(n: int):
        return flow_run.parameters

    assert typed("7") == {"n": 7}


def test_bad_parameter_fails_before_the_body_runs(events):
    ran = []

    @flow
    def typed(n: int):
        ran.append(n)

    with pytest.raises(ParameterTypeError) as info:
        typed("abc")
    assert ran == []
    error = info.value
    assert (error.parameter, error.expected, error.value) == ("n", "int", "abc")
    message = str(error)
    assert "'n'" in message
    assert "flow 'typed'" in message
    assert "expected int" in message
    assert "'abc'" in message
    assert isinstance(error, TypeError)


def test_bad_parameter_run_ends_failed_with_validation_message(events):
    @flow
    def typed(n: int):
        return n

    state = typed("abc", return_state=True)
    assert state.is_failed()
    assert isinstance(state.data, ParameterTypeError)
    assert state.message is not None
    assert state.message.startswith("Validation of flow parameters failed")
    assert_transitions(events, state.state_details.flow_run_id, ["Pending", "Failed"])
    final = events.for_resource(f"headwater.flow-run.{state.state_details.flow_run_id}")[-1]
    assert "Validation of flow parameters failed" in final.resource["headwater.state-message"]


@pytest.mark.anyio
async def test_bad_parameter_in_an_async_flow(events):
    @flow
    async def typed(n: int):
        return n

    assert await typed("4") == 4
    with pytest.raises(ParameterTypeError, match="'n'"):
        await typed([1])


def test_validate_parameters_false_skips_validation(events):
    @flow(validate_parameters=False)
    def loose(n: int):
        return n

    assert loose("3") == "3"
    assert loose("abc") == "abc"


def test_unhinted_and_any_parameters_are_not_checked(events):
    @flow
    def loose(a, b: Any):
        return a, b

    assert loose("x", object) == ("x", object)


def test_optional_and_default_values(events):
    @flow
    def opt(n: int | None = None, k: int = 2):
        return n, k

    assert opt() == (None, 2)
    assert opt("5") == (5, 2)


def test_dataclass_parameter_from_a_dict(events):
    @flow
    def boxed(box: Box):
        return box

    assert boxed({"size": "3"}) == Box(size=3)
    assert boxed(Box(size=1)) == Box(size=1)


# -- pydantic ------------------------------------------------------------------------------


def test_pydantic_model_parameter_from_a_dict(events):
    @flow
    def plotted(point: Point):
        return point

    result = plotted({"x": "1"})
    assert isinstance(result, Point)
    assert (result.x, result.y) == (1, 0)
    same = Point(x=2, y=3)
    assert plotted(same) == same


def test_bad_pydantic_model_parameter(events):
    ran = []

    @flow
    def plotted(point: Point):
        ran.append(point)

    with pytest.raises(ParameterTypeError) as info:
        plotted({"x": "not a number"})
    assert ran == []
    assert info.value.parameter == "point"
    assert "Point" in str(info.value)
    assert "not a number" in str(info.value)


def test_pydantic_model_in_a_container(events):
    @flow
    def many(points: list[Point]):
        return [p.x for p in points]

    assert many([{"x": 1}, {"x": "2"}]) == [1, 2]
    with pytest.raises(ParameterTypeError, match="'points'"):
        many([{"y": 1}])


# -- reserved names --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["return_state", "wait_for"])
def test_reserved_parameter_names_are_refused_at_decoration(name):
    namespace: dict[str, Any] = {}
    exec(f"def fn({name}=None):\n    return 1", namespace)
    with pytest.raises(ReservedArgumentError, match=name):
        flow(namespace["fn"])
    with pytest.raises(ReservedArgumentError, match=name):
        task(namespace["fn"])


# -- binding ------------------------------------------------------------------------------


def test_missing_argument_is_a_parameter_type_error(events):
    @flow
    def needs(a, b):
        return a + b

    with pytest.raises(ParameterTypeError, match="missing a required argument: 'b'") as info:
        needs(1)
    assert info.value.parameter is None
    assert "flow 'needs'" in str(info.value)
    get_bus().flush(timeout=10)
    assert events.names("headwater.flow-run.") == []


def test_extra_arguments_are_a_parameter_type_error(events):
    @flow
    def needs(a):
        return a

    with pytest.raises(ParameterTypeError, match="too many positional arguments"):
        needs(1, 2)
    with pytest.raises(ParameterTypeError, match="unexpected keyword argument 'c'"):
        needs(1, c=3)


def test_var_args_and_kwargs(events):
    @flow
    def variadic(first, *rest, **options):
        return first, rest, options

    assert variadic(1, 2, 3, key="v") == (1, (2, 3), {"key": "v"})
    assert variadic(1) == (1, (), {})


def test_var_args_and_kwargs_are_validated_per_item(events):
    @flow
    def variadic(first: int, *rest: int, **options: float):
        return first, rest, options

    assert variadic("1", "2", "3", scale="0.5") == (1, (2, 3), {"scale": 0.5})
    with pytest.raises(ParameterTypeError, match="'rest'"):
        variadic(1, "x")
    with pytest.raises(ParameterTypeError, match="'options'"):
        variadic(1, scale="big")


def test_positional_only_and_keyword_only_parameters(events):
    @flow
    def shaped(a: int, /, b: int, *, c: int = 3):
        return a, b, c

    assert shaped("1", b="2") == (1, 2, 3)
    assert shaped(1, 2, c="4") == (1, 2, 4)
    with pytest.raises(ParameterTypeError):
        shaped(a=1, b=2)


def test_tasks_with_var_args_and_positional_only(events):
    @task
    def variadic(first, /, *rest, **options):
        return first, rest, options

    @flow
    def pipeline():
        return variadic(1, 2, k=3)

    assert pipeline() == (1, (2,), {"k": 3})


# -- schema ---------------------------------------------------------------------------------


def test_schema_round_trips_calls():
    def fn(a, /, b, *args, c, d=4, **kw):
        return a, b, args, c, d, kw

    schema = ParameterSchema(fn, "flow 'fn'")
    parameters = schema.bind((1, 2, 3), {"c": 5, "z": 6})
    assert parameters == {"a": 1, "b": 2, "args": (3,), "c": 5, "d": 4, "kw": {"z": 6}}
    args, kwargs = schema.to_call(parameters)
    assert fn(*args, **kwargs) == (1, 2, (3,), 5, 4, {"z": 6})


def test_schema_without_hints_validates_nothing():
    def fn(a, b=1):
        return a

    schema = ParameterSchema(fn, "flow 'fn'")
    assert not schema.has_hints
    assert schema.validate({"a": "x", "b": 2}) == {"a": "x", "b": 2}

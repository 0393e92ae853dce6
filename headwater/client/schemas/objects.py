"""Run states and their types (Prefect's ``prefect.client.schemas.objects``)."""

from headwater.engine.states import State, StateDetails, StateType

__all__ = ["State", "StateDetails", "StateType"]

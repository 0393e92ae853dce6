"""Events and resources (Prefect's ``prefect.events.schemas.events``)."""

from headwater.automations.model import ResourceSpecification
from headwater.events.schema import Event, RelatedResource, Resource

__all__ = ["Event", "RelatedResource", "Resource", "ResourceSpecification"]

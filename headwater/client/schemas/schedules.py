"""Schedule shapes (Prefect's ``prefect.client.schemas.schedules``)."""

from headwater.deployments.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

__all__ = ["CronSchedule", "IntervalSchedule", "RRuleSchedule"]

"""Schedules (Prefect's ``prefect.schedules``): when a deployment's runs are due."""

from headwater.deployments.schedules import (
    Cron,
    CronSchedule,
    DeploymentSchedule,
    Interval,
    IntervalSchedule,
    RRule,
    RRuleSchedule,
    Schedule,
)

__all__ = [
    "Cron",
    "CronSchedule",
    "DeploymentSchedule",
    "Interval",
    "IntervalSchedule",
    "RRule",
    "RRuleSchedule",
    "Schedule",
]

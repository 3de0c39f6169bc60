"""What the README names is importable from `corral`, and statuses' enums have name helpers."""
from __future__ import annotations

import corral
from corral.engines.agent import AgentConfig
from corral.engines.scheduler import SchedulerConfig
from corral.engines.scheduler.reconcile import Progress, RoundKind


def test_configs_and_progress_are_importable_from_corral() -> None:
    assert corral.SchedulerConfig is SchedulerConfig
    assert corral.AgentConfig is AgentConfig
    assert corral.Progress is Progress and corral.RoundKind is RoundKind
    assert {"SchedulerConfig", "AgentConfig", "Progress", "reason_name", "source_name"} <= set(corral.__all__)


def test_reason_and_source_have_name_helpers_like_state_name() -> None:
    status = corral.TaskStatus(reason=corral.TaskStatus.REASON_EXECUTOR_TERMINATED,
                               source=corral.TaskStatus.SOURCE_AGENT)
    assert corral.reason_name(status.reason) == "REASON_EXECUTOR_TERMINATED"
    assert corral.source_name(status.source) == "SOURCE_AGENT"
    assert corral.state_name(corral.TASK_RUNNING) == "TASK_RUNNING"

"""Trigger rules: when a task runs, given the states of its upstream task instances.

The semantics are Airflow's (with ``flag_upstream_failed``): a rule is evaluated against counters of
upstream task-instance states and yields one of four decisions. Rules that can be decided early do so:
``all_success`` becomes ``upstream_failed`` as soon as one upstream failed, ``one_success`` runs as soon
as one upstream succeeded, and so on. A task with no upstream runs whatever its rule.

===============================  =======================================  ===============================
rule                             runs when                                otherwise
===============================  =======================================  ===============================
all_success (default)            every upstream succeeded                 any failed/upstream_failed ->
                                                                          upstream_failed; else any
                                                                          skipped -> skipped
all_failed                       every upstream failed or upstream_failed any success/skipped -> skipped
all_done                         every upstream is done (any state)       -
all_done_min_one_success         all done and at least one succeeded      all done, none succeeded: any
                                                                          failed -> upstream_failed, else
                                                                          skipped
all_skipped                      every upstream skipped                   any success/failed -> skipped
one_success                      at least one succeeded (no waiting)      all done, none succeeded:
                                                                          all skipped -> skipped, else
                                                                          upstream_failed
one_failed                       at least one failed/upstream_failed      all done, none failed -> skipped
one_done                         at least one succeeded or failed         all done, none -> skipped
none_failed                      all done, none failed/upstream_failed    any failed -> upstream_failed
none_failed_min_one_success      all done, none failed, >= 1 success      any failed -> upstream_failed;
                                                                          all skipped -> skipped
none_skipped                     all done, none skipped                   any skipped -> skipped
always                           immediately, without waiting             -
===============================  =======================================  ===============================

"upstream_failed" is what makes failures travel down a DAG while "skipped" travels down branches: with
the default rule a failure ends the downstream in ``upstream_failed`` and a skip in ``skipped``.

**Deterministic early decisions.** A rule decides before every upstream has finished only when no
later upstream state could change the decision, so the final state never depends on the order in
which upstream tasks finish. The one place this differs from Airflow's timing: with ``all_success``,
a skipped upstream makes the task ``skipped`` once the other upstreams are done (Airflow may skip it
at once and miss a failure that arrives later, which should win as ``upstream_failed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from engine.orchestration.exceptions import DagDefinitionError


class TriggerRule(str, Enum):
    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_DONE_MIN_ONE_SUCCESS = "all_done_min_one_success"
    ALL_SKIPPED = "all_skipped"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_SKIPPED = "none_skipped"
    ALWAYS = "always"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: "TriggerRule | str", *, where: str = "") -> "TriggerRule":
        if isinstance(value, TriggerRule):
            return value
        try:
            return cls(str(value))
        except ValueError:
            choices = ", ".join(r.value for r in cls)
            raise DagDefinitionError(f"{where}unknown trigger_rule {value!r}; choose one of: {choices}") from None


class Decision(str, Enum):
    WAIT = "wait"
    RUN = "run"
    SKIP = "skipped"
    UPSTREAM_FAILED = "upstream_failed"


@dataclass
class UpstreamCounts:
    """Counters of upstream task-instance states for one task of one run.

    ``waiting`` is the number of upstream *tasks* that are not finished yet (a mapped upstream task is
    finished when all of its expanded instances are). The other counters count *instances*.
    """

    total_tasks: int = 0
    waiting: int = 0
    success: int = 0
    failed: int = 0
    upstream_failed: int = 0
    skipped: int = 0
    removed: int = 0

    @property
    def done(self) -> bool:
        return self.waiting == 0


def evaluate(rule: TriggerRule, c: UpstreamCounts) -> Decision:
    """The decision for a task with trigger ``rule`` given its upstream counters ``c``."""
    if c.total_tasks == 0 or rule is TriggerRule.ALWAYS:
        return Decision.RUN
    failed = c.failed + c.upstream_failed
    done = c.done
    if rule is TriggerRule.ALL_SUCCESS:
        if failed:
            return Decision.UPSTREAM_FAILED
        if not done:
            # Not SKIP yet even if one upstream was skipped: a later failure must still win, so the
            # outcome does not depend on which upstream happened to finish first.
            return Decision.WAIT
        return Decision.SKIP if c.skipped else Decision.RUN
    if rule is TriggerRule.ALL_FAILED:
        if c.success or c.skipped:
            return Decision.SKIP
        return Decision.RUN if done else Decision.WAIT
    if rule is TriggerRule.ALL_DONE:
        return Decision.RUN if done else Decision.WAIT
    if rule is TriggerRule.ALL_DONE_MIN_ONE_SUCCESS:
        if not done:
            return Decision.WAIT
        if c.success:
            return Decision.RUN
        return Decision.UPSTREAM_FAILED if failed else Decision.SKIP
    if rule is TriggerRule.ALL_SKIPPED:
        if c.success or failed:
            return Decision.SKIP
        return Decision.RUN if done else Decision.WAIT
    if rule is TriggerRule.ONE_SUCCESS:
        if c.success:
            return Decision.RUN
        if not done:
            return Decision.WAIT
        return Decision.UPSTREAM_FAILED if failed else Decision.SKIP
    if rule is TriggerRule.ONE_FAILED:
        if failed:
            return Decision.RUN
        return Decision.SKIP if done else Decision.WAIT
    if rule is TriggerRule.ONE_DONE:
        if c.success or c.failed:
            return Decision.RUN
        return Decision.SKIP if done else Decision.WAIT
    if rule is TriggerRule.NONE_FAILED:
        if failed:
            return Decision.UPSTREAM_FAILED
        return Decision.RUN if done else Decision.WAIT
    if rule is TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS:
        if failed:
            return Decision.UPSTREAM_FAILED
        if not done:
            return Decision.WAIT
        return Decision.RUN if c.success else Decision.SKIP
    if rule is TriggerRule.NONE_SKIPPED:
        if c.skipped:
            return Decision.SKIP
        return Decision.RUN if done else Decision.WAIT
    raise AssertionError(f"unhandled trigger rule {rule!r}")  # pragma: no cover

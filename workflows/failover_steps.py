"""The failover's phases in the order its state machine runs them, named by the step labels (state Comments) the
builder (:mod:`workflows.failover`) gives their states.

``pilotlight failover --help`` prints this list; a test walks the failover definition of every example plan and
checks that its states run in this order and carry these labels, so the help says what the workflow does.
Standard library only: the CLI reads it to print its help without importing the plan model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    title: str
    summary: str
    steps: tuple[str, ...]  # labels of the phase's top-level states
    within: tuple[str, ...] = ()  # labels of the states inside them (Parallel branches, Map iterations)


PHASES: tuple[Phase, ...] = (
    Phase("Load plan", "the plan baked into the definition, and the run's options (--mode)", ("Load plan",)),
    Phase("Guard rails",
          "refuses while another failover of the plan runs, an alarm-started run within "
          "triggers.min_interval_minutes of the previous run, and a run while every trigger alarm is OK (unless "
          "--force); then stops a running drill of the plan; with triggers.failover: approval an alarm-started "
          "run waits for `pilotlight approve` (a run started from the CLI carries its operator's approval)",
          ("Guard rails", "Await approval")),
    Phase("Restore",
          "runs in parallel: reads each DR replica's lag (the RPO) and promotes it, resized to the failover class "
          "first only when the plan sets resize_before_cutover; moves each Aurora Global Database's writer to "
          "its DR cluster (--mode); writes and reads back each DynamoDB global table's DR replica; launches each "
          "standby Beanstalk environment from its DR saved configuration; scales each DR Auto Scaling group to "
          "its failover capacity. An active-active plan with a health_check cutover takes the failed region out "
          "of the routing at the same time",
          ("Restore",),
          ("Promote DR replica", "Resize to failover class", "Move Aurora writer", "Verify DR table",
           "Launch DR environment", "Scale DR group", "Repoint DNS")),
    Phase("Repoint DNS",
          "once every restore branch is done; with cutover: health_check it sets the DR-region alarm behind the "
          "primary's Route 53 health check (no Route 53 control-plane call), with cutover: records it UPSERTs the "
          "record to the DR target and waits until it is in sync",
          ("Repoint DNS",)),
    Phase("Verify service",
          "environments Ready and Green, databases writable, the record answering with the DR target; service "
          "is restored here, which is where the RTO is measured",
          ("Verify service", "Service restored")),
    Phase("Harden",
          "once traffic has moved, enables Multi-AZ, then resizes each database to its failover class (unless "
          "done before cutover); resizes the new Aurora writer and adds its readers",
          ("Harden", "Harden Aurora"),
          ("Enable Multi-AZ", "Resize to failover class", "Add Aurora readers")),
    Phase("Summary", "the run's output: guard rails, what was restored and hardened, DNS, the objectives",
          ("Summary",)),
)


def phase_of(step: str) -> int:
    """The index in :data:`PHASES` of the phase whose top-level states carry ``step``."""
    for i, phase in enumerate(PHASES):
        if step in phase.steps:
            return i
    raise KeyError(f"{step!r} is not a top-level step of any failover phase")


def help_paragraphs() -> list[str]:
    """The phases as numbered paragraphs, for ``pilotlight failover --help``."""
    return [f"{i}. {phase.title}: {phase.summary}." for i, phase in enumerate(PHASES, start=1)]

"""What an HTTP(S) Route 53 health check of a plan's targets sees in the sandbox.

Route 53's checkers request each region's target (``dns.primary_target`` / ``dns.dr_target``) from the
internet; the sandbox answers for them from the estate instead (:data:`World.endpoints` in
``sandbox/adapters_route53.py``), read straight from moto's backends, never through boto3 (the probe runs
inside a Route 53 call):

- a region the sandbox has taken down (:meth:`sandbox.Sandbox.simulate_disaster`, ``start_outage``) fails;
- with Auto Scaling groups in the plan, a region answers while at least one of its groups has an instance in
  service (past its modeled launch time, ``sandbox/adapters_autoscaling.py``), so a pilot light scaled to 0
  fails until the failover scales it up;
- otherwise (Beanstalk environments, or no compute in the plan) a region that is up answers.

The probe answers at once: Route 53's own reaction time (``FailureThreshold`` x ``RequestInterval``) is not
modeled for endpoint checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from workflows.plan import Plan


def _in_service(region: str, groups: list[str], launched_at: Callable[[str], float], now: float) -> int:
    from moto.autoscaling.models import autoscaling_backends

    backend = autoscaling_backends[DEFAULT_ACCOUNT_ID][region]
    count = 0
    for name in groups:
        group = backend.autoscaling_groups.get(name)
        for state in (group.instance_states if group is not None else []):
            if state.lifecycle_state == "InService" and state.health_status == "Healthy" \
                    and launched_at(state.instance.id) <= now:
                count += 1
    return count


def probe(region: str, groups: list[str], down: set[str], autoscaling: Any,
          now: Callable[[], float]) -> Callable[[], tuple[bool, str]]:
    def answer() -> tuple[bool, str]:
        if region in down:
            return False, f"Failure: the endpoint in {region} does not answer (the region is down)"
        if not groups:
            return True, f"Success: HTTP Status Code 200, OK ({region})"
        count = _in_service(region, groups, autoscaling.launched_at, now())
        if count == 0:
            return False, f"Failure: no instance in service behind the endpoint in {region} ({', '.join(groups)})"
        return True, f"Success: HTTP Status Code 200, OK ({count} instance{'s' if count != 1 else ''} in {region})"
    return answer


def register(world: Any, plan: Plan, down: set[str], autoscaling: Any, now: Callable[[], float],
             web: Any = None) -> None:
    """Probes for the plan's two targets (nothing without a DNS section or its targets); a plan without Beanstalk
    environments also gets its targets served over HTTP on loopback (sandbox/web.py), answering as the probe."""
    if plan.dns is None:
        return
    sides = ((plan.dns_primary_target, plan.primary_region, [g.name for g in plan.compute]),
             (plan.dns_dr_target, plan.dr_region, [g.dr_group_name for g in plan.compute]))
    for target, region, groups in sides:
        if target:
            answer = probe(region, groups, down, autoscaling, now)
            world.endpoints[target.rstrip(".").lower()] = answer
            if web is not None and not plan.environments:
                web.serve_target(region, target.rstrip(".").lower(), answer)

"""EC2 Auto Scaling launch time, which moto 5.2 does not model.

moto launches a group's instances the moment CreateAutoScalingGroup / UpdateAutoScalingGroup / SetDesiredCapacity
answers, shows them ``InService`` and ``Healthy`` at once, and registers them ``healthy`` in the group's target
groups at once. Here, on the same event system as the other adapters:

- an instance a call launches is shown ``Pending`` (HealthStatus ``Healthy``) by ``DescribeAutoScalingGroups``
  until :data:`ASG_LAUNCH` has passed (modeled time), then ``InService``;
- ``DescribeTargetHealth`` does not list it while it is Pending (Auto Scaling registers an instance as it enters
  InService), then shows it ``initial`` (``Elb.InitialHealthChecking``) for :data:`TARGET_HEALTHY`, then
  ``healthy``.

Instances the adapter did not see launched (seeded with the latency model off, or before it was installed) are
taken as launched long ago. Everything else (ForceDelete, scaling in, the EC2 instance's own state) is moto's:
a deleted group is gone at once, and DescribeInstances shows the instances ``running`` while Pending.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import clock, latency, responses

# The modeled figures (p50, p95) and their sources are in the latency table (sandbox/latency.py).
ASG_LAUNCH = latency.DURATIONS["autoscaling.launch_instance"]
TARGET_HEALTHY = latency.DURATIONS["elb.target_healthy"]

_LAUNCHING = ("CreateAutoScalingGroup", "UpdateAutoScalingGroup", "SetDesiredCapacity",
              "AttachLoadBalancerTargetGroups", "ExecutePolicy")


class World:
    def __init__(self, latency: Any = None) -> None:
        self.latency = latency
        self.in_service_at: dict[str, float] = {}  # instance id -> modeled time it is InService
        self.lock = threading.Lock()

    def _figure(self, figures: tuple[float, float]) -> float:
        if self.latency is None or not self.latency.enabled:
            return 0.0
        return (figures[1] if self.latency.profile == "p95" else figures[0]) + float(getattr(self.latency, "skew", 0))

    def note_launches(self, region: str) -> None:
        """Give every instance of the region's groups not seen before its launch time from now."""
        from moto.autoscaling.models import autoscaling_backends

        backend = autoscaling_backends[DEFAULT_ACCOUNT_ID][region]
        until = clock.now() + self._figure(ASG_LAUNCH)
        with self.lock:
            for group in list(backend.autoscaling_groups.values()):
                for state in group.instance_states:
                    self.in_service_at.setdefault(state.instance.id, until)

    def launched_at(self, instance_id: str) -> float:
        with self.lock:
            return self.in_service_at.setdefault(instance_id, float("-inf"))

    # -- hooks --------------------------------------------------------------------------------------
    def after_launching_call(self, http_response: Any, context: dict[str, Any], **_: Any) -> None:
        if getattr(http_response, "status_code", 200) < 300:
            self.note_launches(context.get("client_region") or "us-east-1")

    def after_describe_groups(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if getattr(http_response, "status_code", 200) >= 300:
            return
        now = clock.now()
        for group in parsed.get("AutoScalingGroups") or []:
            for instance in group.get("Instances") or []:
                if instance.get("LifecycleState") == "InService" and now < self.launched_at(instance["InstanceId"]):
                    instance["LifecycleState"] = "Pending"
                    instance["HealthStatus"] = "Healthy"

    def after_target_health(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if getattr(http_response, "status_code", 200) >= 300:
            return
        now, healthy = clock.now(), self._figure(TARGET_HEALTHY)
        shown = []
        for entry in parsed.get("TargetHealthDescriptions") or []:
            start = self.launched_at(entry["Target"]["Id"])
            if now < start:
                continue  # still Pending: Auto Scaling has not registered it
            if now < start + healthy:
                entry["TargetHealth"] = {"State": "initial", "Reason": "Elb.InitialHealthChecking",
                                         "Description": "Initial health checks in progress"}
            shown.append(entry)
        parsed["TargetHealthDescriptions"] = shown

    def hooks(self) -> responses.Hooks:
        return [*((f"after-call.auto-scaling.{op}", self.after_launching_call) for op in _LAUNCHING),
                ("after-call.auto-scaling.DescribeAutoScalingGroups", self.after_describe_groups),
                ("after-call.elastic-load-balancing-v2.DescribeTargetHealth", self.after_target_health)]


_installed: dict[str, World] = {}


def install(events: Any, latency: Any = None) -> World:
    world = World(latency)
    responses.hook(events, world.hooks(), "autoscaling")
    _installed["world"] = world
    return world


def uninstall(events: Any) -> None:
    world = _installed.pop("world", None)
    if world is not None:
        responses.unhook(events, world.hooks(), "autoscaling")

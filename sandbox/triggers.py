"""EventBridge in the sandbox: the plan's rules as deployed, fed by CloudWatch alarms and Step Functions.

What moto 5.2 does on its own, and what it does not (read in ``moto/events``, ``moto/cloudwatch``
and ``moto/stepfunctions``):

- it stores rules and targets (``PutRule``, ``PutTargets``, ``ListRules``, ``ListTargetsByRule``)
  and matches event patterns (``moto.events.models.EventPattern``): both are used here as they are;
- CloudWatch never emits a "CloudWatch Alarm State Change" event when an alarm changes state, and
  Step Functions never emits a "Step Functions Execution Status Change" event;
- its ``PutEvents`` delivers to SQS, CloudWatch Logs, archives and other event buses only (a Step
  Functions or SNS target raises ``NotImplementedError``), re-stamps an event forwarded to another
  Region's bus with that Region (AWS keeps the event as it was sent), and fills an input template
  with raw strings.

What this module adds, in modeled time:

- **Alarm events.** Every alarm transition the alarm model notes (``adapters_route53.World``:
  metric data evaluated over the alarm's evaluation periods, or ``SetAlarmState``) is scheduled
  with :func:`sandbox.clock.call_at` at the modeled time it takes effect; then, if the state
  really changed, the event is put on the default bus of the alarm's region, shaped as AWS
  documents it (``detail.alarmName``, ``state``, ``previousState``, ``configuration.metrics``).
- **Execution events.** When an execution of a standard state machine ends (SUCCEEDED, FAILED,
  TIMED_OUT, ABORTED), its status-change event is put on its region's default bus at that instant.
- **Delivery** (:meth:`EventBridge.put_event`): the enabled rules of the bus whose pattern matches
  (moto's matcher) get the event; targets are served as AWS does: a state machine is started with
  the event (or the target's input) as execution input, an event bus in another Region receives the
  very same event and matches its own rules, an SNS topic gets the message (input transformer
  applied). Delivery is immediate in modeled time and is not retried; every delivery, good or
  failed, is kept in :attr:`EventBridge.deliveries`.
- **Rules** (:func:`deploy_rules`): what the CDK app deploys, from the same functions
  (``workflows/triggers.py``).
- **Outages** (:class:`Outage`): the primary failing as its alarms see it: each period, a
  breaching datum for the metric of every trigger alarm of the plan, until the alarms are in ALARM.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3

from sandbox import clock
from workflows import triggers as patterns
from workflows.plan import Plan


@dataclass
class Delivery:
    """One event handed to one target of one rule."""

    at: float  # modeled time
    region: str  # of the bus whose rule matched
    rule: str
    target: str  # target ARN
    event: dict[str, Any]
    result: str = ""  # what the target made of it: an execution ARN, a message id, "forwarded"
    error: str | None = None


@dataclass
class Emitted:
    """An event put on a region's default bus (by a service, or forwarded from another Region)."""

    at: float
    region: str
    event: dict[str, Any]
    forwarded_from: str | None = None


def _iso(at: float, millis: bool = False) -> str:
    moment = dt.datetime.fromtimestamp(at, dt.UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _millis(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    return int(float(value) * 1000)


class EventBridge:
    """The default buses of every region of the sandbox, and their rules' targets."""

    def __init__(self, account: str, on_start: Callable[[str], None] | None = None) -> None:
        self.account = account
        self.on_start = on_start  # told of every execution a rule starts (the sandbox stops them at exit)
        self.emitted: list[Emitted] = []
        self.deliveries: list[Delivery] = []
        # (region, alarm) -> (state, reason, modeled time) of the state its last event announced.
        self._alarm_states: dict[tuple[str, str], tuple[str, str, float]] = {}
        self._quiet = False
        self._world: Any = None
        self._closed = False
        self._lock = threading.RLock()
        self._saved_terminated: Any = None

    # -- lifecycle -------------------------------------------------------------------------------
    def install(self, world: Any) -> None:
        """Listen to the alarm model's transitions and to the end of every execution."""
        from moto.stepfunctions.parser.backend import execution as sfn_execution

        self._world = world
        world.listeners.append(self._on_alarm_transition)
        comm = sfn_execution.BaseExecutionWorkerCommunication
        original = comm.terminated
        bridge = self

        def terminated(self: Any) -> None:  # moto: called once when an execution ends, whatever the end
            original(self)
            bridge._on_execution_end(self.execution)

        self._saved_terminated = original
        comm.terminated = terminated  # type: ignore[method-assign]

    def close(self) -> None:
        """Deliver nothing more (the sandbox is closing: stopping executions must not notify anyone).

        Waits for a delivery under way, so none reaches a service after the sandbox is gone."""
        with self._lock:
            self._closed = True

    def uninstall(self) -> None:
        from moto.stepfunctions.parser.backend import execution as sfn_execution

        self.close()
        if self._world is not None and self._on_alarm_transition in self._world.listeners:
            self._world.listeners.remove(self._on_alarm_transition)
        if self._saved_terminated is not None:
            sfn_execution.BaseExecutionWorkerCommunication.terminated = self._saved_terminated  # type: ignore[method-assign]
            self._saved_terminated = None

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Alarm transitions noted meanwhile emit no event (the sandbox's hand-set outage, see
        :meth:`sandbox.Sandbox.simulate_disaster`); later transitions are judged against them."""
        with self._lock:
            self._quiet = True
        try:
            yield
        finally:
            with self._lock:
                self._quiet = False

    # -- CloudWatch alarm events -----------------------------------------------------------------
    def _on_alarm_transition(self, region: str, alarm: str, at: float, state: str, reason: str) -> None:
        key = (region, alarm)
        with self._lock:
            if key not in self._alarm_states:
                self._alarm_states[key] = self._initial(region, alarm)
            if self._quiet:
                self._alarm_states[key] = (state, reason, at)
                return
        clock.call_at(at, lambda: self._alarm_due(region, alarm, at))

    def _initial(self, region: str, name: str) -> tuple[str, str, float]:
        """The state an alarm had before its first modeled transition (moto's, at creation)."""
        from moto.cloudwatch.models import cloudwatch_backends

        alarm = cloudwatch_backends[self.account][region].alarms.get(name)
        state = self._world.initial.get((region, name)) or (alarm.state_value if alarm is not None else "OK")
        since = alarm.state_updated_timestamp.replace(tzinfo=dt.UTC).timestamp() if alarm is not None else clock.now()
        return state, (alarm.state_reason if alarm is not None else "") or "Unchecked: Initial alarm creation", since

    def _alarm_due(self, region: str, name: str, at: float) -> None:
        """A noted transition takes effect: if the state changed, CloudWatch emits its event."""
        from moto.cloudwatch.models import cloudwatch_backends

        with self._lock:
            if self._closed:
                return
            state = self._world.state_at(region, name, at)
            previous = self._alarm_states.get((region, name)) or self._initial(region, name)
            if state is None or state == previous[0]:
                return
            reason = self._world.reason_at(region, name, at) or ""
            self._alarm_states[(region, name)] = (state, reason, at)
            self._world.materialize(region)  # what DescribeAlarms shows from now on
            alarm = cloudwatch_backends[self.account][region].alarms.get(name)
            if alarm is None:
                return
            self.put_event(region, alarm_event(alarm, region, self.account, at, (state, reason), previous))

    # -- Step Functions execution events ---------------------------------------------------------
    def _on_execution_end(self, execution: Any) -> None:
        if getattr(getattr(execution, "sm_type", None), "value", "STANDARD") == "EXPRESS":
            return  # Express workflows emit no events to EventBridge
        event = execution_event(execution, clock.now())
        region = execution.region_name
        clock.call_at(clock.now(), lambda: self.put_event(region, event))

    # -- the buses ---------------------------------------------------------------------------------
    def put_event(self, region: str, event: dict[str, Any], *, forwarded_from: str | None = None) -> None:
        """An event arrives on ``region``'s default bus: every enabled rule that matches gets it."""
        from moto.events.models import EventPattern

        with self._lock:  # held throughout, so close() waits for a delivery under way
            if self._closed:
                return
            self.emitted.append(Emitted(clock.now(), region, event, forwarded_from))
            client = boto3.client("events", region_name=region)
            for rule in _rules(client):
                if rule.get("State") != "ENABLED" or not rule.get("EventPattern"):
                    continue
                if not EventPattern.load(rule["EventPattern"]).matches_event(event):
                    continue
                for target in client.list_targets_by_rule(Rule=rule["Name"]).get("Targets", []):
                    self._deliver(region, rule, target, event)

    def _deliver(self, region: str, rule: dict[str, Any], target: dict[str, Any], event: dict[str, Any]) -> None:
        arn = target["Arn"]
        delivery = Delivery(clock.now(), region, rule["Name"], arn, event)
        self.deliveries.append(delivery)
        service, target_region = arn.split(":")[2], arn.split(":")[3]
        try:
            if service == "states":
                out = boto3.client("stepfunctions", region_name=target_region).start_execution(
                    stateMachineArn=arn, name=str(uuid.uuid4()), input=target_input(target, event, rule))
                delivery.result = out["executionArn"]
                if self.on_start is not None:
                    self.on_start(out["executionArn"])
            elif service == "events" and ":event-bus/" in arn:
                if target_region == region:
                    raise ValueError("a rule may not target its own bus")
                delivery.result = "forwarded"
                self.put_event(target_region, event, forwarded_from=region)
            elif service == "sns":
                out = boto3.client("sns", region_name=target_region).publish(
                    TopicArn=arn, Message=target_input(target, event, rule))
                delivery.result = out["MessageId"]
            else:
                raise NotImplementedError(f"the sandbox delivers to state machines, event buses and SNS topics, "
                                          f"not to {service}")
        except Exception as exc:  # noqa: BLE001 - EventBridge records a failed invocation and carries on
            delivery.error = f"{type(exc).__name__}: {exc}"

    # -- what happened -------------------------------------------------------------------------------
    def alarm_events(self, *, state: str | None = None) -> list[Emitted]:
        """The alarm state-change events emitted by CloudWatch (not the forwarded copies)."""
        return [e for e in self.emitted if e.forwarded_from is None and e.event.get("source") == patterns.ALARM_SOURCE
                and (state is None or e.event["detail"]["state"]["value"] == state)]

    def started(self, state_machine_arn: str | None = None) -> list[Delivery]:
        """Deliveries that started an execution (of ``state_machine_arn``)."""
        return [d for d in self.deliveries if d.target.split(":")[2] == "states" and d.error is None
                and (state_machine_arn is None or d.target == state_machine_arn)]


def _rules(client: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = client.list_rules(**kwargs)
        out += page.get("Rules", [])
        if not page.get("NextToken"):
            return out
        kwargs = {"NextToken": page["NextToken"]}


# -- events as AWS documents them ------------------------------------------------------------------


def alarm_event(alarm: Any, region: str, account: str, at: float, state: tuple[str, str],
                previous: tuple[str, str, float]) -> dict[str, Any]:
    """A "CloudWatch Alarm State Change" event of a single-metric alarm (moto's FakeAlarm).

    ``state``: (value, reason) entered at ``at``; ``previous``: (value, reason, since)."""
    arn = f"arn:aws:cloudwatch:{region}:{account}:alarm:{alarm.name}"
    metric = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, arn)),
        "metricStat": {
            "metric": {"namespace": alarm.namespace, "name": alarm.metric_name,
                       "dimensions": {d.name: d.value for d in alarm.dimensions or []}},
            "period": int(alarm.period or 60),
            "stat": alarm.statistic or alarm.extended_statistic,
        },
        "returnData": True,
    }
    data = json.dumps({"version": "1.0", "queryDate": _iso(at, millis=True), "threshold": alarm.threshold})
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": patterns.ALARM_DETAIL_TYPE,
        "source": patterns.ALARM_SOURCE,
        "account": account,
        "time": _iso(at),
        "region": region,
        "resources": [arn],
        "detail": {
            "alarmName": alarm.name,
            "state": {"value": state[0], "reason": state[1], "reasonData": data, "timestamp": _iso(at, millis=True)},
            "previousState": {"value": previous[0], "reason": previous[1], "timestamp": _iso(previous[2], millis=True)},
            "configuration": {"description": alarm.description or "", "metrics": [metric]},
        },
    }


def execution_event(execution: Any, at: float) -> dict[str, Any]:
    """A "Step Functions Execution Status Change" event of a moto execution that has just ended."""
    status = execution.exec_status.value if execution.exec_status is not None else "RUNNING"
    succeeded = status == "SUCCEEDED"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": patterns.EXECUTION_DETAIL_TYPE,
        "source": patterns.EXECUTION_SOURCE,
        "account": execution.account_id,
        "time": _iso(at),
        "region": execution.region_name,
        "resources": [execution.exec_arn],
        "detail": {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine.arn,
            "name": execution.name,
            "status": status,
            "startDate": _millis(execution.start_date),
            "stopDate": _millis(execution.stop_date) or int(at * 1000),
            "input": json.dumps(execution.input_data, separators=(",", ":")),
            "output": json.dumps(execution.output, separators=(",", ":")) if succeeded else None,
            "inputDetails": {"included": True},
            "outputDetails": {"included": True} if succeeded else None,
            "error": execution.error,
            "cause": execution.cause,
        },
    }


# -- target input ------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]+)>")


def _path(event: dict[str, Any], path: str) -> Any:
    """An EventBridge input path (``$.detail.name``, dot notation) in the event; None when absent."""
    node: Any = event
    for part in path.removeprefix("$").strip(".").split("."):
        if not part:
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def transform(transformer: dict[str, Any], event: dict[str, Any], rule: dict[str, Any] | None = None) -> str:
    """Apply an input transformer as EventBridge does.

    A placeholder outside a JSON string takes the value as JSON (a string is quoted and escaped, an
    absent path is ``null``); inside a string it takes the value's text, unescaped (EventBridge does
    not escape there), an absent path being empty. Reserved names: ``aws.events.rule-arn``,
    ``aws.events.rule-name``, ``aws.events.event`` and ``aws.events.event.json`` (the event).
    """
    values = {name: _path(event, path) for name, path in (transformer.get("InputPathsMap") or {}).items()}
    if rule is not None:
        values.setdefault("aws.events.rule-arn", rule.get("Arn"))
        values.setdefault("aws.events.rule-name", rule.get("Name"))
    values.setdefault("aws.events.event", event)
    values.setdefault("aws.events.event.json", event)
    template = transformer.get("InputTemplate", "")
    out, in_string, escaped, i = [], False, False, 0
    while i < len(template):
        char = template[i]
        match = _PLACEHOLDER.match(template, i) if char == "<" else None
        if match and match.group(1) in values:
            value = values[match.group(1)]
            if in_string:
                out.append("" if value is None else value if isinstance(value, str) else json.dumps(value))
            else:
                out.append(json.dumps(value))
            i = match.end()
            continue
        out.append(char)
        if in_string and escaped:
            escaped = False
        elif in_string and char == "\\":
            escaped = True
        elif char == '"':
            in_string = not in_string
        i += 1
    return "".join(out)


def target_input(target: dict[str, Any], event: dict[str, Any], rule: dict[str, Any] | None = None) -> str:
    """What a target receives: its constant ``Input``, the ``InputPath`` part, the transformed event, or the event."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        return json.dumps(_path(event, target["InputPath"]))
    if target.get("InputTransformer"):
        return transform(target["InputTransformer"], event, rule)
    return json.dumps(event)


# -- the plan's rules, as CDK deploys them ------------------------------------------------------------


def _role(name: str, description: str) -> str:
    iam = boto3.client("iam")
    try:
        return iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        return iam.create_role(RoleName=name, Description=description, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]


def _put_rule(region: str, name: str, description: str, pattern: dict[str, Any], targets: list[dict[str, Any]]) -> str:
    client = boto3.client("events", region_name=region)
    arn = client.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED", Description=description)[
        "RuleArn"]
    stale = [t["Id"] for t in client.list_targets_by_rule(Rule=name).get("Targets", [])
             if t["Id"] not in {w["Id"] for w in targets}]
    if stale:
        client.remove_targets(Rule=name, Ids=stale)
    client.put_targets(Rule=name, Targets=targets)
    return arn


def deploy_rules(plan: Plan, account: str, machines: dict[str, str], topic_arn: str) -> dict[str, str]:
    """Create (or update) the plan's EventBridge rules; ``{rule name: rule ARN}``.

    ``machines``: workflow -> state machine ARN. The same rules, patterns, names and target inputs
    as ``infra/stacks.py``: the failover trigger per alarm region and the forwarding rule in each
    alarm region other than the DR region (when the plan has trigger alarms and a failover), and the
    failure notification to the plan's topic.
    """
    out: dict[str, str] = {}
    failover = machines.get("failover")
    if failover is not None and plan.triggers.alarms:
        start_role = _role(f"pilotlight-{plan.name}-alarm-trigger", "start failover on the plan's alarms")
        for region, names in patterns.alarm_regions(plan).items():
            name = patterns.failover_rule_name(plan, region)
            out[name] = _put_rule(plan.dr_region, name,
                                  f"pilotlight {plan.name}: plan alarms in {region} entering ALARM start failover",
                                  patterns.alarm_event_pattern(region, names),
                                  [{"Id": "Target0", "Arn": failover, "RoleArn": start_role}])
        forward_role = _role(f"pilotlight-{plan.name}-forward-alarms", f"put alarm events on the {plan.dr_region} bus")
        for region, names in patterns.forwarded_regions(plan).items():
            name = patterns.forward_rule_name(plan)
            out[f"{region}/{name}"] = _put_rule(
                region, name, f"pilotlight {plan.name}: plan alarms entering ALARM, to {plan.dr_region}",
                patterns.alarm_event_pattern(region, names),
                [{"Id": "Target0", "Arn": patterns.event_bus_arn(plan.dr_region, account), "RoleArn": forward_role}])
    drill, teardown = machines.get("drill"), machines.get("drill-teardown")
    if drill is not None and teardown is not None:
        name = patterns.drill_teardown_rule_name(plan)
        role = _role(f"pilotlight-{plan.name}-drill-teardown", "start the drill teardown when a drill ends")
        out[name] = _put_rule(plan.dr_region, name, f"pilotlight {plan.name}: a drill that ends starts its teardown",
                              patterns.drill_end_pattern(drill),
                              [{"Id": "Target0", "Arn": teardown, "RoleArn": role}])
    workflows = patterns.notified_workflows(machines)
    if workflows:
        name = patterns.notify_rule_name(plan)
        out[name] = _put_rule(plan.dr_region, name,
                              f"pilotlight {plan.name}: unsuccessful executions notify the plan's topic",
                              patterns.execution_status_pattern([machines[w] for w in workflows]),
                              [{"Id": "Topic", "Arn": topic_arn,  # no RoleArn: SNS authorizes by its topic policy
                                "InputTransformer": patterns.failure_notification_input(plan)}])
    return out


# -- an outage of the primary, as its alarms see it -----------------------------------------------


_BREACH: dict[str, Callable[[float], float]] = {
    "GreaterThanThreshold": lambda t: max(t * 10, t + 1),
    "GreaterThanOrEqualToThreshold": lambda t: max(t * 10, t + 1),
    "LessThanThreshold": lambda t: t - max(abs(t), 1),
    "LessThanOrEqualToThreshold": lambda t: t - max(abs(t), 1),
}


@dataclass
class _Metric:
    region: str
    namespace: str
    name: str
    dimensions: list[dict[str, str]]
    value: float
    period: int
    alarms: list[str] = field(default_factory=list)


class Outage:
    """The primary failing: its trigger alarms' metrics breach, one datum per period, from now on.

    Only the metrics move (``PutMetricData``, as the primary's load balancer or health checks would
    report them); each alarm reaches ALARM through its own evaluation periods and delay
    (``adapters_route53``). Data stops once every alarm of the plan the outage drives is in ALARM
    (missing data keeps a state), or at :meth:`stop`, or after ``max_periods`` periods.
    """

    def __init__(self, plan: Plan, world: Any, *, max_periods: int = 60) -> None:
        self.plan = plan
        self.world = world
        self.started_at = clock.now()
        self.max_periods = max_periods
        self.published = 0
        self._stopped = False
        self.metrics = self._metrics()
        for metric in self.metrics:
            self._tick(metric, 0)

    def _metrics(self) -> list[_Metric]:
        out: dict[tuple[Any, ...], _Metric] = {}
        for region, names in patterns.alarm_regions(self.plan).items():
            found = boto3.client("cloudwatch", region_name=region).describe_alarms(AlarmNames=names)["MetricAlarms"]
            for alarm in found:
                breach = _BREACH.get(alarm.get("ComparisonOperator", ""))
                if breach is None or "MetricName" not in alarm:
                    continue  # anomaly-detection and metric-math alarms are not modeled
                dims = sorted(alarm.get("Dimensions") or [], key=lambda d: d["Name"])
                key = (region, alarm["Namespace"], alarm["MetricName"], tuple((d["Name"], d["Value"]) for d in dims))
                metric = out.setdefault(key, _Metric(region, alarm["Namespace"], alarm["MetricName"], dims,
                                                     breach(float(alarm["Threshold"])), int(alarm["Period"])))
                metric.period = min(metric.period, int(alarm["Period"]))
                metric.alarms.append(alarm["AlarmName"])
        return list(out.values())

    @property
    def alarms(self) -> list[tuple[str, str]]:
        return sorted((m.region, a) for m in self.metrics for a in m.alarms)

    def in_alarm(self, at: float | None = None) -> bool:
        """Every alarm the outage drives is in ALARM (per the alarm model) at ``at`` (default: now)."""
        at = clock.now() if at is None else at
        return bool(self.metrics) and all(self.world.state_at(r, a, at) == "ALARM" for r, a in self.alarms)

    def stop(self) -> None:
        """The primary recovers as far as its metrics go: no more breaching data."""
        self._stopped = True

    def _tick(self, metric: _Metric, n: int) -> None:
        if self._stopped or n >= self.max_periods or all(
                self.world.state_at(metric.region, a, clock.now()) == "ALARM" for a in metric.alarms):
            return
        boto3.client("cloudwatch", region_name=metric.region).put_metric_data(
            Namespace=metric.namespace,
            MetricData=[{"MetricName": metric.name, "Dimensions": metric.dimensions, "Value": metric.value}])
        self.published += 1
        clock.call_at(self.started_at + (n + 1) * metric.period, lambda: self._tick(metric, n + 1))

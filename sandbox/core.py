"""The sandbox: an in-process AWS that runs the deployed state machines for real.

Usage::

    with Sandbox() as sb:
        sb.seed(plan)
        arns = sb.deploy(plan)
        execution = sb.start(plan, "failover", {"source": "cli"})

Inside the ``with`` block every boto3 client created through ``boto3.client`` talks to the sandbox.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import pkgutil
import uuid
from typing import Any

import boto3
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

import lambdas
from sandbox import (
    adapters,
    adapters_aurora,
    adapters_aurora_data,
    adapters_autoscaling,
    adapters_beanstalk,
    adapters_dynamodb,
    adapters_ec2,
    adapters_quotas,
    adapters_rds_data,
    adapters_route53,
    adapters_s3,
    clock,
    endpoints,
    jitter,
    seed,
    triggers,
    web,
)
from sandbox.faults import Fault, Faults, FaultSpec
from sandbox.iam_enforce import Enforcer
from sandbox.lambda_host import LambdaHost
from sandbox.latency import LatencyModel, snapshot_before_modify
from workflows import asl, render
from workflows.plan import Plan

_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_SESSION_TOKEN": "sandbox",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_CLEARED_ENV = ("AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONFIG_FILE",
                "AWS_SHARED_CREDENTIALS_FILE")


_INTERPRETER_LOG = logging.getLogger("moto.stepfunctions.parser")


class Sandbox:
    account_id = DEFAULT_ACCOUNT_ID

    def __init__(self, pace: float | None = None, latency: str = "p50", jitter_seed: int = 0) -> None:
        """``pace``: at most this many modeled seconds per wall second, for a human watching (None:
        as fast as the CPU allows). It never changes a modeled figure. ``jitter_seed``: the Retry
        back-offs' FULL jitter is drawn from it (sandbox/jitter.py): the same faults, the same timeline."""
        if latency not in ("p50", "p95", "none"):
            raise ValueError("latency must be p50, p95 or none")
        if pace is not None and pace <= 0:
            raise ValueError("pace must be positive")
        self.pace = pace
        self.jitter_seed = jitter_seed
        self.latency = LatencyModel("p95" if latency == "p95" else "p50")
        self.latency.enabled = latency != "none"
        self.iam = Enforcer(self.account_id)
        self.lambdas = LambdaHost(self.latency.delay("lambda.invoke"), self.iam)
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._events: Any = None
        self._started: list[str] = []
        # EventBridge: the plan's rules (deploy), fed by alarm and execution events (sandbox/triggers.py).
        self.eventbridge = triggers.EventBridge(self.account_id, on_start=self._started.append)
        self.faults: Faults
        # Regions whose endpoints answer no health checker (sandbox/endpoints.py): the primary, once it fails.
        self.down_regions: set[str] = set()
        self.dns: adapters_route53.World
        self.aurora: adapters_aurora.World
        self.dynamodb: adapters_dynamodb.World
        # RDS instances' rows, in a real PostgreSQL server started on first need (sandbox/adapters_rds_data.py).
        self.databases: adapters_rds_data.World | None = None
        # The RDS Data API on Aurora clusters, in the same server (sandbox/adapters_aurora_data.py).
        self.aurora_data: adapters_aurora_data.World | None = None
        # Each Beanstalk environment's URL, served on loopback as its health says (sandbox/web.py).
        self.web: web.Web | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        for key in (*_FAKE_ENV, *_CLEARED_ENV):
            self._saved_env[key] = os.environ.get(key)
        os.environ.update(_FAKE_ENV)
        for key in _CLEARED_ENV:
            os.environ.pop(key, None)
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        # moto's interpreter logs every failed state with its whole parse tree; the execution
        # history already carries the error and cause, which is what the CLI and tests report.
        self._interpreter_log_level = _INTERPRETER_LOG.level
        _INTERPRETER_LOG.setLevel(logging.CRITICAL)
        boto3.setup_default_session()
        self._events = boto3.DEFAULT_SESSION.events
        clock.install(self.pace)
        for module in pkgutil.iter_modules(lambdas.__path__):
            importlib.import_module(f"lambdas.{module.name}")
        clock.patch_modules("lambdas.")
        self.lambdas.install(self._events)
        self.iam.install(self._events)
        adapters.install(self._events)
        adapters_beanstalk.install(self._events, self.latency.delay("beanstalk.terminate_environment"))
        adapters_ec2.install(self._events)
        adapters_s3.install(self._events, self.latency.delay("s3.replicate"))
        self.dns = adapters_route53.install(self._events, self.latency)
        self.dynamodb = adapters_dynamodb.install(self._events, self.latency, self.dns.on_datum)
        self.autoscaling = adapters_autoscaling.install(self._events, self.latency)
        self.eventbridge.install(self.dns)
        adapters_quotas.install(self._events)
        self.aurora = adapters_aurora.install(self._events, self.latency)
        self.databases = adapters_rds_data.install(self._events, self.latency)
        self.aurora_data = adapters_aurora_data.install(self._events, self.databases, self.aurora)
        self.web = web.install(self._events, self.dns)
        self._events.register_first("before-call.rds.ModifyDBInstance", snapshot_before_modify,
                                    unique_id="pilotlight-snapshot-modify")
        self.latency.install(self._events)
        self.faults = Faults(self._events, self.lambdas.in_function)
        jitter.install(self.jitter_seed)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.eventbridge.close()
        self.stop_executions()
        self.faults.clear()
        jitter.uninstall()
        self.latency.uninstall(self._events)
        self.eventbridge.uninstall()
        adapters_dynamodb.uninstall(self._events)
        adapters_autoscaling.uninstall(self._events)
        adapters_aurora.uninstall(self._events)
        adapters_aurora_data.uninstall(self._events, self.aurora_data)
        adapters_rds_data.uninstall(self._events, self.databases)
        web.uninstall(self._events, self.web)
        adapters_route53.uninstall(self._events)
        adapters_quotas.uninstall(self._events)
        adapters_s3.uninstall(self._events)
        adapters_ec2.uninstall(self._events)
        adapters_beanstalk.uninstall(self._events)
        adapters.uninstall(self._events)
        self.lambdas.uninstall(self._events)
        self.iam.uninstall(self._events)
        clock.uninstall()
        _INTERPRETER_LOG.setLevel(self._interpreter_log_level)
        self._mock.stop()
        boto3.DEFAULT_SESSION = None
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # -- building the world --------------------------------------------------------------------
    def set_pace(self, pace: float | None) -> None:
        """Pace modeled time differently from now on (None: unpaced), e.g. an unwatched replicate first."""
        clock.set_pace(pace)
        self.pace = pace

    def seed(self, plan: Plan, *, pilot_light: bool = False) -> dict[str, Any]:
        """Create the plan's primary estate, instantly: seeding takes no modeled time.

        ``pilot_light=True`` also creates the DR replicas directly, for tests of the sandbox itself;
        everything else builds the pilot light with the product (:meth:`build_pilot_light`).
        """
        enabled, self.latency.enabled = self.latency.enabled, False
        if plan.dns is not None:
            # DNS answers are given for a resolver where the primary serves (TestDNSAnswer).
            loc = plan.dns.primary_location if plan.dns.routing == "geolocation" else None
            self.dns.place_resolver(plan.primary_region, loc.continent_code if loc else None,
                                    loc.country_code if loc else None)
        try:
            out = seed.seed_primary(plan)
            if pilot_light:
                out.update(seed.seed_pilot_light(plan))
        finally:
            self.latency.enabled = enabled
        endpoints.register(self.dns, plan, self.down_regions, self.autoscaling, clock.now, self.web)
        return out

    def substitutions(self, plan: Plan) -> dict[str, str]:
        subs = {
            asl.function_key(service): self.function_arn(plan, service)
            for service in sorted(render.services_used(plan))
        }
        subs[asl.NOTIFICATION_TOPIC_KEY] = self.topic_arn(plan)
        return subs

    def topic_arn(self, plan: Plan) -> str:
        return f"arn:aws:sns:{plan.dr_region}:{self.account_id}:{render.topic_name(plan)}"

    def set_quota(self, region: str, service_code: str, quota_code: str, value: float) -> None:
        """Set a Service Quotas value the sandbox answers (EC2 vCPUs, RDS DB instances)."""
        adapters_quotas.set_quota(region, service_code, quota_code, value)

    def simulate_disaster(self, plan: Plan) -> list[str]:
        """Put every trigger alarm of the plan into ALARM at once, for a failover an operator starts.

        The alarms are set by hand (``SetAlarmState``) and EventBridge is not told, so the plan's
        alarm rule starts nothing: the caller starts the failover (``pilotlight failover --sandbox``,
        the failover's own tests). The outage as deployed, alarm-driven, is :meth:`start_outage`.
        """
        self.down_regions.add(plan.primary_region)  # its endpoints stop answering Route 53's health checkers
        with self.eventbridge.quiet():
            for alarm in plan.triggers.alarms:
                boto3.client("cloudwatch", region_name=alarm.region or plan.primary_region).set_alarm_state(
                    AlarmName=alarm.name, StateValue="ALARM", StateReason="sandbox: simulated outage of the primary")
        return [a.name for a in plan.triggers.alarms]

    def recover(self, plan: Plan) -> list[str]:
        """The primary region answers again (after :meth:`simulate_disaster` or :meth:`start_outage`): its endpoints
        answer Route 53's health checkers and the plan's trigger alarms return to OK (set by hand, EventBridge not
        told), as before a failback."""
        self.down_regions.discard(plan.primary_region)
        with self.eventbridge.quiet():
            for alarm in plan.triggers.alarms:
                boto3.client("cloudwatch", region_name=alarm.region or plan.primary_region).set_alarm_state(
                    AlarmName=alarm.name, StateValue="OK", StateReason="sandbox: the primary region recovered")
        return [a.name for a in plan.triggers.alarms]

    def inject(self, spec: str | FaultSpec) -> Fault:
        """Inject a fault written ``SERVICE:OPERATION:KIND[:N|:xK]`` (sandbox/faults.py), e.g.
        ``rds:PromoteReadReplica:Throttling:x2``; counted from now, on the functions' calls only."""
        return self.faults.add(spec)

    def region_unreachable(self, region: str, service: str = "*") -> Any:
        """A context manager: calls to ``service`` (botocore's name, e.g. ``rds``; ``*`` for all) in ``region``
        fail to connect (``EndpointConnectionError``) until it ends, as a regional outage looks to a client."""
        from sandbox import outage_api

        return outage_api.region_unreachable(self, region, service)

    def start_outage(self, plan: Plan, **kwargs: Any) -> triggers.Outage:
        """The primary starts failing now, as its trigger alarms see it: their metrics breach, one datum
        per period (no alarm state is set by hand). Each alarm enters ALARM after its evaluation
        periods; CloudWatch's state-change event reaches the plan's rules (forwarded to the DR region
        when the alarm lives elsewhere) and the failover rule starts the failover with the event as
        input. ``kwargs``: see :class:`sandbox.triggers.Outage`."""
        self.down_regions.add(plan.primary_region)
        return triggers.Outage(plan, self.dns, **kwargs)

    def function_arn(self, plan: Plan, service: str) -> str:
        return f"arn:aws:lambda:{plan.dr_region}:{self.account_id}:function:{render.function_name(plan, service)}"

    def deploy(self, plan: Plan) -> dict[str, str]:
        """Register the Lambda functions, create every state machine from the rendered ASL, and the
        plan's EventBridge rules (alarm trigger, forwarding, failure notification)."""
        from infra import iam as plan_iam

        for service in render.services_used(plan):
            name = self.lambdas.register(render.function_name(plan, service), service)
            # The very statements CDK attaches to the function's role (infra/iam.py).
            self.iam.attach(name, plan_iam.statements(
                plan_iam.registry_for(service), plan, account=self.account_id,
                extra={"topic": [self.topic_arn(plan)], "key": []}))
        iam = boto3.client("iam")
        role_name = f"pilotlight-{plan.name}-states"
        try:
            role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            role_arn = iam.create_role(
                RoleName=role_name,
                AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"},
                     "Action": "sts:AssumeRole"}]}),
            )["Role"]["Arn"]
        boto3.client("sns", region_name=plan.dr_region).create_topic(Name=render.topic_name(plan))
        self._claim_table(plan)
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        subs = self.substitutions(plan)
        arns = {}
        for workflow, text in render.render_all(plan).items():
            definition = asl.substitute(asl.compact(text), subs)  # as CDK deploys it
            name = render.state_machine_name(plan, workflow)
            existing = self.state_machine_arn(plan, workflow)
            try:
                sfn.describe_state_machine(stateMachineArn=existing)
                sfn.update_state_machine(stateMachineArn=existing, definition=definition, roleArn=role_arn)
                arns[workflow] = existing
            except sfn.exceptions.StateMachineDoesNotExist:
                arns[workflow] = sfn.create_state_machine(name=name, definition=definition, roleArn=role_arn)[
                    "stateMachineArn"]
        # The plan's EventBridge rules, as the CDK app deploys them (workflows/triggers.py).
        triggers.deploy_rules(plan, self.account_id, arns, self.topic_arn(plan))
        return arns

    @staticmethod
    def _claim_table(plan: Plan) -> None:
        """The failover claim table, as infra/claim.py makes it (on-demand, key ``plan``)."""
        from lambdas import guard

        ddb = boto3.client("dynamodb", region_name=plan.dr_region)
        # Deployed again: the table and its claim stay, as a stack update keeps them.
        with contextlib.suppress(ddb.exceptions.ResourceInUseException):
            ddb.create_table(TableName=guard.claim_table(plan.name), BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": guard.CLAIM_KEY, "AttributeType": "S"}],
                             KeySchema=[{"AttributeName": guard.CLAIM_KEY, "KeyType": "HASH"}])

    def run_replicate(
        self, plan: Plan, *, pace: float | None = None, source: str = "sandbox", on_progress: Any = None
    ) -> Any:
        """Run the deployed replicate workflow to the end; its :class:`workflows.executions.Result`.

        It runs unpaced (the pilot light is usually not what is being watched) unless ``pace`` says
        otherwise; the sandbox's own pace is restored afterwards.
        """
        from workflows.executions import follow

        previous = self.pace
        self.set_pace(pace)
        try:
            arn = self.start(plan, "replicate", {"source": source})
            sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
            return follow(sfn, arn, on_progress=on_progress, poll_seconds=0.02)
        finally:
            self.set_pace(previous)

    def build_pilot_light(self, plan: Plan) -> dict[str, Any]:
        """Deploy the plan and run its replicate workflow to the end; its summary document."""
        self.deploy(plan)
        result = self.run_replicate(plan)
        if result.status != "SUCCEEDED":
            raise RuntimeError(f"replicate {result.status}: {result.error}: {result.cause}")
        return result.output

    def state_machine_arn(self, plan: Plan, workflow: str) -> str:
        return (f"arn:aws:states:{plan.dr_region}:{self.account_id}:stateMachine:"
                f"{render.state_machine_name(plan, workflow)}")

    def start(self, plan: Plan, workflow: str, execution_input: dict[str, Any] | None = None) -> str:
        sfn = boto3.client("stepfunctions", region_name=plan.dr_region)
        arn = sfn.start_execution(
            stateMachineArn=self.state_machine_arn(plan, workflow),
            name=f"{workflow}-{uuid.uuid4().hex[:12]}",
            input=json.dumps(execution_input or {}),
        )["executionArn"]
        self._started.append(arn)
        return arn

    def stop_executions(self) -> None:
        """Stop what is still running so no interpreter thread outlives the sandbox."""
        for arn in self._started:
            sfn = boto3.client("stepfunctions", region_name=arn.split(":")[3])
            try:
                if sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
                    sfn.stop_execution(executionArn=arn, error="SandboxClosed", cause="the sandbox was closed")
            except Exception:  # noqa: BLE001 - best effort during teardown
                pass
        self._started.clear()

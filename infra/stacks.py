"""The stacks of one plan: everything in the DR region, plus alarm forwarding from other regions.

Nothing here knows which workflows or services exist: functions come from
``render.services_used(plan)``, state machines from ``render.render_all(plan)``, schedules from
the plan's ``schedules`` fields that name a workflow in ``render.BUILDERS``, and IAM from each
service's action registry (``infra.iam``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import (
    Aws,
    Duration,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra import claim, nag, vpc
from infra import iam as plan_iam
from reports.store import bucket_name as reports_bucket_name
from workflows import asl, plan_accounts, render
from workflows.plan import Plan
from workflows.triggers import (  # noqa: F401  (alarm_regions, alarm_event_pattern: also used by importers)
    alarm_event_pattern,
    alarm_regions,
    drill_end_pattern,
    drill_teardown_rule_name,
    event_bus_arn,
    execution_status_pattern,
    failover_rule_name,
    failure_notification_input,
    forward_rule_name,
    notified_workflows,
    notify_rule_name,
    rule_arn,
)

METRICS_NAMESPACE = plan_iam.METRICS_NAMESPACE
# Metric names the dashboard shows; the readiness, replicate and drill workflows publish them
# in namespace `pilotlight` with dimension Plan=<plan name>.
DASHBOARD_METRICS: tuple[tuple[str, str, str], ...] = (
    ("ReadinessScore", "Readiness score (%)", "Minimum"),
    ("ReplicaLagSeconds", "Replica lag (s)", "Maximum"),
    ("AmiAgeHours", "Newest DR AMI age (h)", "Maximum"),
    ("DrillRtoSeconds", "Last drill RTO (s)", "Maximum"),
)
LOG_RETENTION = logs.RetentionDays.ONE_YEAR
# Reports are audit evidence: current versions stay; older versions (a report rewritten) expire after
# REPORTS_NONCURRENT_DAYS, access logs after REPORTS_LOG_DAYS. No transition to infrequent access: S3 does not
# transition objects under 128 KB by default, and a report is 5-40 KB, so such a rule would never act.
REPORTS_NONCURRENT_DAYS = 365
REPORTS_LOG_DAYS = 365
# A Lambda must give up before the Task state that calls it does (asl.TASK_TIMEOUT_SECONDS).
FUNCTION_TIMEOUT = Duration.seconds(asl.TASK_TIMEOUT_SECONDS - 20)
RUNTIME = lambda_.Runtime.PYTHON_3_12


def dr_stack_name(plan: Plan) -> str:
    return f"pilotlight-{plan.name}-dr"


def forwarder_stack_name(plan: Plan, region: str) -> str:
    return f"pilotlight-{plan.name}-alarms-{region}"


def _events_pattern(pattern: dict[str, Any]) -> events.EventPattern:
    return events.EventPattern(
        source=pattern["source"],
        detail_type=pattern["detail-type"],
        region=pattern.get("region"),
        detail=pattern["detail"],
    )


# Packages the Lambda runtime lacks that the dashboard widget (lambdas/widget.py) renders with. Both are pure
# Python (MarkupSafe's C speedups are left out: the build machine's may not match the runtime's Python, and
# MarkupSafe falls back to its own Python code without them).
BUNDLED_PACKAGES = ("jinja2", "markupsafe")
# The PostgreSQL driver of the canary function (lambdas/canary.py) and what it imports: pure Python, each copied
# whole with its dist-info (pg8000 and scramp read their own version from it at import).
BUNDLED_DISTRIBUTIONS = ("pg8000", "scramp", "asn1crypto", "python-dateutil", "six")


def stage_lambda_code(dest: Path) -> Path:
    """Copy the ``lambdas`` package (sources and templates), :data:`BUNDLED_PACKAGES` and
    :data:`BUNDLED_DISTRIBUTIONS` into ``dest``; the asset is that directory."""
    import importlib
    import importlib.metadata

    import lambdas

    src = Path(lambdas.__file__).resolve().parent
    target = dest / "lambdas"
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"))
    for package in BUNDLED_PACKAGES:
        module = importlib.import_module(package)
        shutil.copytree(Path(module.__file__).resolve().parent, dest / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.pyd"))
    for name in BUNDLED_DISTRIBUTIONS:
        dist = importlib.metadata.distribution(name)
        for file in dist.files or []:
            parts = Path(str(file)).parts
            if parts[0] == ".." or "__pycache__" in parts or file.suffix in (".pyc", ".so", ".pyd"):
                continue  # scripts installed outside site-packages, compiled files
            (dest / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(str(file.locate())).resolve(), dest / file)
    return dest


class DrStack(Stack):
    """Functions, state machines, triggers, schedules, topic and dashboard in the DR region."""

    def __init__(
        self,
        scope: Construct,
        plan: Plan,
        *,
        code_dir: Path,
        builders: dict[str, Any] | None = None,
        env: cdk.Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            "Dr",
            stack_name=dr_stack_name(plan),
            env=env or cdk.Environment(region=plan.dr_region),
            description=f"pilotlight DR resources for plan {plan.name} ({plan.primary_region} -> {plan.dr_region})",
        )
        self.plan = plan
        self.key = kms.Key(
            self,
            "Key",
            alias=f"alias/pilotlight-{plan.name}",
            description=f"pilotlight {plan.name}: notifications topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.topic = sns.Topic(
            self,
            "Notifications",
            topic_name=f"pilotlight-{plan.name}-notifications",
            display_name=f"pilotlight {plan.name}",
            master_key=self.key,
            enforce_ssl=True,
        )
        # EventBridge Scheduler and CloudWatch publish nothing to the topic; the functions that publish
        # need the key, granted per principal below, and EventBridge publishes the failure notices
        # (topic and key statements scoped to that one rule, in _failure_notifications).
        self.reports_bucket = self._reports_bucket()
        self.claim = claim.table(self, plan)  # the guard rails' one-failover-at-a-time claim
        self.functions = self._functions(code_dir)
        self.machines = self._state_machines(render.render_all(plan) if builders is None else builders)
        self._alarm_trigger()
        self._drill_teardown()
        self._failure_notifications()
        self.schedules = add_schedules(self, plan, self.machines)
        self.widget = self._widget(code_dir)
        self._dashboard()
        cdk.CfnOutput(self, "TopicArn", value=self.topic.topic_arn)
        cdk.CfnOutput(self, "ReportsBucketName", value=self.reports_bucket.bucket_name)
        for workflow, machine in self.machines.items():
            cdk.CfnOutput(self, f"{workflow.capitalize()}StateMachineArn", value=machine.state_machine_arn)

    # Reports ----------------------------------------------------------------------------------

    def _reports_bucket(self) -> s3.Bucket:
        """Where `pilotlight drill` (and later the scheduled drills) keep the reports handed to auditors.

        Named by ``reports.store.bucket_name`` so the CLI finds it without reading the stack. No function may
        write to it: the CLI writes with the operator's credentials; the dashboard widget only reads the
        plan's reports (s3:GetObject on <bucket>/<plan>/*) to link them. Server access logs go to a bucket of
        their own (SSE-S3: S3 server access logging cannot deliver to SSE-KMS buckets), which the logging
        service writes to through its bucket policy, not ACLs (the flag below; ACLs stay disabled).
        """
        scope = Construct(self, "Reports")
        scope.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        logs_bucket = s3.Bucket(
            scope,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(REPORTS_LOG_DAYS))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        nag.suppress(logs_bucket, ("AwsSolutions-S1", "This bucket receives the reports bucket's server access logs; "
                                   "logging it too would only log the log deliveries."))
        return s3.Bucket(
            scope,
            "Bucket",
            bucket_name=reports_bucket_name(self.plan.name, Aws.ACCOUNT_ID, self.plan.dr_region),
            encryption=s3.BucketEncryption.S3_MANAGED,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=logs_bucket,
            server_access_logs_prefix="reports/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="older-report-versions",
                    noncurrent_version_expiration=Duration.days(REPORTS_NONCURRENT_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    # Lambda functions -------------------------------------------------------------------------

    def _functions(self, code_dir: Path) -> dict[str, lambda_.Function]:
        code = lambda_.Code.from_asset(str(code_dir))
        out: dict[str, lambda_.Function] = {}
        for service in sorted(render.services_used(self.plan)):
            name = render.function_name(self.plan, service)
            cid = service.capitalize()
            role = iam.Role(
                self,
                f"{cid}Role",
                # Named, so readiness can be granted policy simulation on exactly these roles.
                role_name=render.function_role_name(self.plan, service),
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=f"pilotlight {self.plan.name}: {service} steps (least privilege from lambdas/{service}.py)",
            )
            for statement in plan_iam.statements(
                plan_iam.registry_for(service),
                self.plan,
                account=Aws.ACCOUNT_ID,
                partition=Aws.PARTITION,
                extra={"topic": [self.topic.topic_arn], "key": [self.key.key_arn]},
            ):
                role.add_to_policy(
                    iam.PolicyStatement(
                        actions=statement["Action"],
                        resources=statement["Resource"],
                        conditions=statement.get("Condition"),
                    )
                )
                if "sns:Publish" in statement["Action"]:
                    # Publishing to the KMS-encrypted topic needs the data key, on this key only.
                    role.add_to_policy(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"],
                                                           resources=[self.key.key_arn]))
            log_group = self._log_group(f"{cid}Logs", f"/aws/lambda/{name}")
            fn = lambda_.Function(
                self,
                f"{cid}Function",
                function_name=name,
                description=f"pilotlight {self.plan.name}: {service} steps",
                runtime=RUNTIME,
                handler=f"lambdas.{service}.handler",
                code=code,
                role=role,
                timeout=FUNCTION_TIMEOUT,
                memory_size=256,
                log_group=log_group,
                # A cross-account plan adds the roles to assume and the names of the SSM parameters holding their
                # external ids (workflows/plan_accounts.py): the external ids never appear in the template.
                environment={"PILOTLIGHT_PLAN": self.plan.name, "PILOTLIGHT_TOPIC_ARN": self.topic.topic_arn,
                             **plan_accounts.environment(self.plan)},
            )
            # Grant writes on the function's own log group only (instead of the managed basic role).
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn],
                )
            )
            nag.suppress(
                fn,
                ("AwsSolutions-L1", ("The handlers are tested on Python 3.12 (the runtime pinned here); "
                 "moving runtimes is a deliberate, tested change.")),
            )
            self._suppress_scoped_wildcards(role)
            if vpc.attached(self.plan, service):
                self._attach_to_vpc(fn, role, cid)
            out[service] = fn
        return out

    def _attach_to_vpc(self, fn: lambda_.Function, role: iam.Role, cid: str) -> None:
        """The function's interfaces in the plan's DR subnets and security groups (``canary_network``), with the
        network-interface permissions Lambda uses to create them (infra/vpc.py), in a policy of their own that
        the function waits for: Lambda checks them when the function is created."""
        config = vpc.vpc_config(self.plan)
        cfn = fn.node.default_child
        assert isinstance(cfn, lambda_.CfnFunction)
        cfn.vpc_config = lambda_.CfnFunction.VpcConfigProperty(
            subnet_ids=config["SubnetIds"], security_group_ids=config["SecurityGroupIds"])
        policy = iam.Policy(self, f"{cid}VpcAccess", roles=[role], statements=[
            iam.PolicyStatement(actions=s["Action"], resources=s["Resource"])
            for s in vpc.statements(self.plan, account=Aws.ACCOUNT_ID, partition=Aws.PARTITION)])
        fn.node.add_dependency(policy)
        nag.suppress(policy, *nag.vpc_access_findings(self.plan))

    def _suppress_scoped_wildcards(self, role: iam.Role) -> None:
        """Acknowledge the wildcards infra.iam grants on purpose, each with why (infra/nag.py)."""
        packs = [
            NagPackSuppression(id="AwsSolutions-IAM5", reason=reason, applies_to=[finding])
            for finding, reason in sorted(nag.scoped_wildcard_reasons(self.plan).items())
        ]
        NagSuppressions.add_resource_suppressions(role, packs, apply_to_children=True)
        # CDK moves statements past IAM's inline size into OverflowPolicyN managed policies while synthesizing,
        # after this runs: the same findings are acknowledged for the stack, where those land. The '*' among them
        # holds stack-wide (test_only_aws_services_without_resource_types_get_wildcards_anywhere).
        NagSuppressions.add_stack_suppressions(self, packs)

    def _log_group(self, construct_id: str, name: str) -> logs.LogGroup:
        """A log group kept when the stack is deleted (an audit trail outlives the deployment)."""
        return logs.LogGroup(self, construct_id, log_group_name=name, retention=LOG_RETENTION,
                             removal_policy=RemovalPolicy.RETAIN)

    # State machines ---------------------------------------------------------------------------

    def _state_machines(self, rendered: dict[str, str]) -> dict[str, sfn.StateMachine]:
        out: dict[str, sfn.StateMachine] = {}
        for workflow, text in rendered.items():
            definition = json.loads(text)
            services = sorted(asl.services_called(definition))
            known = {asl.function_key(s) for s in services if s in self.functions} | {asl.NOTIFICATION_TOPIC_KEY}
            unknown = sorted(asl.placeholders(definition) - known)
            if unknown:
                raise ValueError(f"{workflow}: no deployed value for placeholder ${{{unknown[0]}}}")
            role = iam.Role(
                self,
                f"{workflow.capitalize()}StateMachineRole",
                assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
                description=f"pilotlight {self.plan.name}: {workflow} state machine",
            )
            invoked = [self.functions[s].function_arn for s in services]
            substitutions = {asl.function_key(s): arn for s, arn in zip(services, invoked, strict=True)}
            if asl.NOTIFICATION_TOPIC_KEY in asl.placeholders(definition):
                # Passed to the function that publishes; the state machine itself does not.
                substitutions[asl.NOTIFICATION_TOPIC_KEY] = self.topic.topic_arn
            if invoked:
                # The definitions call the unqualified function ARNs, so no ":*" version wildcard.
                role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=invoked))
            log_group = self._log_group(
                f"{workflow.capitalize()}StateMachineLogs",
                f"/aws/vendedlogs/states/{render.state_machine_name(self.plan, workflow)}",
            )
            machine = sfn.StateMachine(
                self,
                f"{workflow.capitalize()}StateMachine",
                state_machine_name=render.state_machine_name(self.plan, workflow),
                definition_body=sfn.DefinitionBody.from_string(asl.compact(text)),
                definition_substitutions=substitutions,
                role=role,
                logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
                tracing_enabled=True,
            )
            nag.suppress(
                role,
                ("AwsSolutions-IAM5", ("X-Ray (PutTraceSegments, GetSampling*) and CloudWatch Logs delivery "
                 "(CreateLogDelivery, ...) for Step Functions support only Resource '*'."),
                 ["Resource::*"]),
            )
            out[workflow] = machine
        return out

    # Triggers ---------------------------------------------------------------------------------

    def _alarm_trigger(self) -> None:
        """The plan's alarms entering ALARM start the failover workflow, with the event as input."""
        failover = self.machines.get("failover")
        if failover is None or not self.plan.triggers.alarms:
            return
        role = iam.Role(
            self,
            "AlarmTriggerRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description=f"pilotlight {self.plan.name}: start failover on the plan's alarms",
        )
        # Alarms from other regions arrive forwarded to this region's default bus, keeping their
        # own `region`, so one rule per alarm region matches (name, region) exactly.
        for region, names in alarm_regions(self.plan).items():
            events.Rule(
                self,
                f"AlarmTrigger{_cid(region)}",
                rule_name=failover_rule_name(self.plan, region),
                description=f"pilotlight {self.plan.name}: plan alarms in {region} entering ALARM start failover",
                event_pattern=_events_pattern(alarm_event_pattern(region, names)),
                targets=[targets.SfnStateMachine(failover, role=role)],
            )

    def _drill_teardown(self) -> None:
        """A drill execution that ends, whatever the end, starts the drill teardown with the event as input.

        An aborted or timed-out execution runs no Catch, so the teardown is not a step of the drill.
        """
        drill, teardown = self.machines.get("drill"), self.machines.get("drill-teardown")
        if drill is None or teardown is None:
            return
        role = iam.Role(
            self,
            "DrillTeardownRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description=f"pilotlight {self.plan.name}: start the drill teardown when a drill ends",
        )
        events.Rule(
            self,
            "DrillTeardown",
            rule_name=drill_teardown_rule_name(self.plan),
            description=f"pilotlight {self.plan.name}: a drill that ends starts its teardown",
            event_pattern=_events_pattern(drill_end_pattern(drill.state_machine_arn)),
            targets=[targets.SfnStateMachine(teardown, role=role)],
        )

    def _failure_notifications(self) -> None:
        """Failover, replicate and readiness executions that end FAILED, TIMED_OUT or ABORTED notify the topic.

        An L1 rule, so the input transformer is exactly ``workflows.triggers.failure_notification_input``
        (what the sandbox delivers too) and no publish grant is added beyond the two statements here:
        the topic policy and the key policy each allow ``events.amazonaws.com`` for this rule only
        (``aws:SourceArn``). The rule's ARN is spelled from its name rather than referenced, because
        the key policy cannot depend on the rule (rule -> topic -> key). No RoleArn on the target:
        EventBridge reaches SNS through the topic's resource policy (a role breaks delivery to
        KMS-encrypted topics).
        """
        workflows = notified_workflows(self.machines)
        if not workflows:
            return
        name = notify_rule_name(self.plan)
        arn = rule_arn(Aws.REGION, Aws.ACCOUNT_ID, name, Aws.PARTITION)
        transformer = failure_notification_input(self.plan)
        events.CfnRule(
            self,
            "FailureNotification",
            name=name,
            description=f"pilotlight {self.plan.name}: {', '.join(workflows)} executions that fail, time out "
            f"or are aborted notify the plan's topic",
            state="ENABLED",
            event_pattern=execution_status_pattern([self.machines[w].state_machine_arn for w in workflows]),
            targets=[
                events.CfnRule.TargetProperty(
                    id="Topic",
                    arn=self.topic.topic_arn,
                    input_transformer=events.CfnRule.InputTransformerProperty(
                        input_paths_map=transformer["InputPathsMap"],
                        input_template=transformer["InputTemplate"],
                    ),
                )
            ],
        )
        events_principal = iam.ServicePrincipal("events.amazonaws.com")
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="FailureNoticesFromEventBridge",
                principals=[events_principal],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"ArnEquals": {"aws:SourceArn": arn}},
            )
        )
        topic_arn = f"arn:{Aws.PARTITION}:sns:{Aws.REGION}:{Aws.ACCOUNT_ID}:{render.topic_name(self.plan)}"
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="FailureNoticesFromEventBridge",
                principals=[events_principal],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    "ArnEquals": {"aws:SourceArn": arn},
                    "StringEquals": {"kms:EncryptionContext:aws:sns:topicArn": topic_arn},
                },
            )
        )

    def _dashboard(self) -> None:
        widgets: list[cw.IWidget] = []
        for metric_name, label, stat in DASHBOARD_METRICS:
            metric = cw.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=metric_name,
                dimensions_map={"Plan": self.plan.name},
                statistic=stat,
                period=Duration.minutes(30),
                label=label,
                region=self.plan.dr_region,
            )
            widgets.append(cw.GraphWidget(title=label, left=[metric], width=6, height=6))
        rows: list[list[cw.IWidget]] = [widgets]
        if self.widget is not None:
            # The plan at a glance, with its buttons (lambdas/widget.py), above the metrics.
            rows.insert(0, [cw.CustomWidget(
                function_arn=self.widget.function_arn,
                title=f"pilotlight {self.plan.name}: readiness, drills, failover",
                width=24,
                height=12,
                update_on_refresh=True,
                update_on_resize=False,
                update_on_time_range_change=False,
            )])
        cw.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"pilotlight-{self.plan.name}",
            widgets=rows,
        )

    def _widget(self, code_dir: Path) -> lambda_.Function | None:
        """The dashboard's custom widget function (lambdas/widget.py), when the plan has the state machines it
        shows and starts.

        Its role holds what ``lambdas.widget.registry`` declares, scoped by ``infra.iam``: start executions of
        this plan's drill and drill-teardown state machines only, answer task tokens of its failover state
        machine only, read its failover, drill and teardown executions, its readiness parameter and its reports.
        CloudWatch invokes it with the dashboard user's credentials: who may press its buttons is who holds
        ``lambda:InvokeFunction`` on it (no resource policy is added).
        """
        wanted = ("drill", "drill-teardown", "failover")
        if any(w not in self.machines for w in wanted):
            return None
        name = render.function_name(self.plan, "widget")
        role = iam.Role(
            self,
            "WidgetRole",
            role_name=render.function_role_name(self.plan, "widget"),
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"pilotlight {self.plan.name}: dashboard widget (least privilege from lambdas/widget.py)",
        )
        for statement in plan_iam.statements(plan_iam.registry_for("widget"), self.plan, account=Aws.ACCOUNT_ID,
                                             partition=Aws.PARTITION):
            role.add_to_policy(iam.PolicyStatement(actions=statement["Action"], resources=statement["Resource"],
                                                   conditions=statement.get("Condition")))
        log_group = self._log_group("WidgetLogs", f"/aws/lambda/{name}")
        role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                                               resources=[log_group.log_group_arn]))
        fn = lambda_.Function(
            self,
            "WidgetFunction",
            function_name=name,
            description=f"pilotlight {self.plan.name}: CloudWatch dashboard custom widget",
            runtime=RUNTIME,
            handler="lambdas.widget.handler",
            code=lambda_.Code.from_asset(str(code_dir)),
            role=role,
            timeout=Duration.seconds(30),
            memory_size=256,
            log_group=log_group,
            environment={
                "PILOTLIGHT_PLAN": self.plan.name,
                "PILOTLIGHT_REGION": self.plan.dr_region,
                "PILOTLIGHT_DRILL_MACHINE_ARN": self.machines["drill"].state_machine_arn,
                "PILOTLIGHT_TEARDOWN_MACHINE_ARN": self.machines["drill-teardown"].state_machine_arn,
                "PILOTLIGHT_FAILOVER_MACHINE_ARN": self.machines["failover"].state_machine_arn,
                "PILOTLIGHT_REPORTS_BUCKET": reports_bucket_name(self.plan.name, Aws.ACCOUNT_ID, self.plan.dr_region),
            },
        )
        nag.suppress(fn, ("AwsSolutions-L1", "The handlers are tested on Python 3.12 (the runtime pinned here); moving "
                          "runtimes is a deliberate, tested change."))
        tokens = {"account": "<AWS::AccountId>", "partition": "<AWS::Partition>"}
        reasons = {
            "plan_execution": "Execution names are minted per run: the widget reads executions of the plan's "
            "failover, drill and drill-teardown state machines only (execution:<machine>:*).",
            "report_object": "Reports are named per execution: the widget checks (reads) only the plan's own "
            "prefix of its reports bucket.",
        }
        packs = [NagPackSuppression(id="AwsSolutions-IAM5", reason=why, applies_to=[f"Resource::{arn}"])
                 for kind, why in reasons.items()
                 for arn in plan_iam.resource_arns(self.plan, kind, **tokens) if isinstance(arn, str) and "*" in arn]
        NagSuppressions.add_resource_suppressions(role, packs, apply_to_children=True)
        return fn


# Plan schedule fields that are not named after the workflow they start, with the input they give it:
# the drill sweep is the drill teardown selecting every drill not running and older than drills.keep_hours.
SCHEDULE_TARGETS: dict[str, tuple[str, dict[str, Any]]] = {
    "drill": ("drill", {"trigger": "schedule", "workflow": "drill", "source": "schedule"}),
    "drill_sweep": ("drill-teardown", {"trigger": "schedule", "workflow": "drill-teardown", "sweep": True}),
}


def add_schedules(scope: Construct, plan: Plan, machines: dict[str, sfn.IStateMachine]) -> dict[str, Any]:
    """One EventBridge Scheduler schedule per plan schedule whose workflow is deployed.

    The plan's ``schedules`` fields are named after workflows (``replicate``, ``readiness``); a
    field whose workflow is not in ``render.BUILDERS`` (not built yet) gets no schedule.
    """
    out: dict[str, Any] = {}
    wanted = {}
    for field, expr in plan.schedules.model_dump().items():
        workflow, payload = SCHEDULE_TARGETS.get(field, (field, {"trigger": "schedule", "workflow": field}))
        if expr and workflow in render.BUILDERS and workflow in machines:
            wanted[field] = (workflow, expr, payload)
    if not wanted:
        return out
    role = iam.Role(
        scope,
        "SchedulerRole",
        assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
        ),
        description=f"pilotlight {plan.name}: start scheduled workflows",
    )
    granted: set[str] = set()
    for field, (workflow, expression, payload) in sorted(wanted.items()):
        machine = machines[workflow]
        if workflow not in granted:
            machine.grant_start_execution(role)
            granted.add(workflow)
        cid = "".join(part.capitalize() for part in field.split("_"))
        out[field] = scheduler.CfnSchedule(
            scope,
            f"{cid}Schedule",
            name=f"pilotlight-{plan.name}-{field.replace('_', '-')}",
            description=f"pilotlight {plan.name}: run {workflow} {expression}",
            schedule_expression=expression,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            target=scheduler.CfnSchedule.TargetProperty(
                arn=machine.state_machine_arn,
                role_arn=role.role_arn,
                input=json.dumps(payload),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=2),
            ),
        )
    return out


class AlarmForwarderStack(Stack):
    """In a region other than the DR region: forward the plan's alarms entering ALARM to the DR bus."""

    def __init__(self, scope: Construct, plan: Plan, region: str, names: list[str]) -> None:
        super().__init__(
            scope,
            f"Alarms{_cid(region)}",
            stack_name=forwarder_stack_name(plan, region),
            env=cdk.Environment(region=region),
            description=f"pilotlight {plan.name}: forward trigger alarms in {region} to {plan.dr_region}",
        )
        bus_arn = event_bus_arn(plan.dr_region, Aws.ACCOUNT_ID, Aws.PARTITION)
        role = iam.Role(
            self,
            "ForwardRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description=f"pilotlight {plan.name}: put alarm events on the {plan.dr_region} default bus",
        )
        role.add_to_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[bus_arn]))
        events.Rule(
            self,
            "Forward",
            rule_name=forward_rule_name(plan),
            description=f"pilotlight {plan.name}: plan alarms entering ALARM, to {plan.dr_region}",
            event_pattern=_events_pattern(alarm_event_pattern(region, names)),
            targets=[targets.EventBus(events.EventBus.from_event_bus_arn(self, "DrBus", bus_arn), role=role)],
        )


def _cid(region: str) -> str:
    return "".join(part.capitalize() for part in region.split("-"))


def code_staging() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="pilotlight-lambdas-")

"""IAM in the sandbox: each Lambda's AWS calls are checked against the policy its role gets.

moto enforces no IAM, so a handler that calls an API its role does not grant passes every sandbox
test and fails with AccessDenied on its first real run. Here each function deployed by
:meth:`sandbox.Sandbox.deploy` carries the very statements ``infra/iam.py`` generates for its role
(the ones CDK attaches), and every call a handler makes is evaluated against them before moto sees
it: the IAM action of the operation, and the resource ARN where the request names it. A call
outside the policy fails with the error AWS answers (``AccessDenied``, ``UnauthorizedOperation``
for EC2, ``AccessDeniedException`` for JSON-protocol services), which the handlers map as they
would on AWS. As in AWS, an S3 delete that names a version (DeleteObject with a ``VersionId``, each
such object of DeleteObjects) is checked as ``s3:DeleteObjectVersion``, and an RDS call naming a DB
snapshot against the snapshot's ARN (``snapshot:<id>``) as well as the instance's (``db:<id>``).

Where AWS acts with the caller's permissions (Elastic Beanstalk building an environment through
CloudFormation, Auto Scaling, EC2 and ELB, and deleting it all when the environment is terminated;
EC2 copying an encrypted image with KMS), the caller must also hold the permissions AWS documents
for that work (``CALLER_PERMISSIONS``).

Beanstalk's ``DescribeEnvironments`` is not refused: as in AWS, its answer leaves out the
environments the caller may not describe. A Beanstalk request that names an environment but not its
application (``TerminateEnvironment``, ``DescribeEnvironmentHealth``) is checked against the
environment's ARN, its application read from the sandbox's Beanstalk.

The same engine answers ``iam:SimulatePrincipalPolicy`` for the function roles (readiness asks it
which of the actions a failover will call are allowed).

What is modeled (docs/sandbox.md lists it as a divergence): Allow statements of identity policies,
action wildcards, resource ARN wildcards, and the condition keys ``aws:RequestedRegion``,
``cloudwatch:namespace`` and ``kms:ViaService``; other condition keys are taken as met. A request
whose resource cannot be derived is checked by action only. Explicit denies, SCPs, permission
boundaries and resource policies are not modeled.
"""

from __future__ import annotations

import contextlib
import fnmatch
import threading
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from sandbox import adapters_beanstalk, responses

# botocore's event service name -> IAM service prefix, where they differ.
_PREFIX = {"elastic-beanstalk": "elasticbeanstalk", "sfn": "states", "service-quotas": "servicequotas",
           "elastic-load-balancing-v2": "elasticloadbalancing", "route-53": "route53", "eventbridge": "events",
           "resource-groups-tagging-api": "tag", "application-auto-scaling": "application-autoscaling",
           "auto-scaling": "autoscaling", "secrets-manager": "secretsmanager"}

# S3 operations authorize as differently named IAM actions.
_S3_ACTIONS = {
    "HeadObject": "GetObject", "GetObject": "GetObject", "GetObjectAttributes": "GetObject",
    "CopyObject": "PutObject", "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket", "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions", "GetBucketReplication": "GetReplicationConfiguration",
    "PutBucketReplication": "PutReplicationConfiguration", "DeleteBucketReplication": "PutReplicationConfiguration",
    "DeleteObjects": "DeleteObject", "GetObjectVersion": "GetObjectVersion",
}
# A delete that names a version is authorized as s3:DeleteObjectVersion (DeleteObject with a VersionId, and
# each object of DeleteObjects that has one: S3 authorizes every key of the batch on its own).
_S3_VERSION_DELETE = "s3:DeleteObjectVersion"
_GLOBAL = {"route53", "iam", "cloudfront"}
# Calls every identity may make.
_ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}

# Work AWS does with the caller's permissions, per operation: the caller must hold these too.
CALLER_PERMISSIONS: dict[str, tuple[str, ...]] = {
    # Elastic Beanstalk builds the environment as the caller: a CloudFormation stack that creates the
    # Auto Scaling group, its launch template and instances, security groups and the load balancer,
    # reading the source bundle, and passing the service role and instance profile.
    "elasticbeanstalk:CreateEnvironment": (
        "cloudformation:CreateStack",
        "autoscaling:CreateAutoScalingGroup",
        "ec2:RunInstances",
        "ec2:CreateSecurityGroup",
        "elasticloadbalancing:CreateLoadBalancer",
        "iam:PassRole",
        "s3:GetObject",
    ),
    # Terminating it (with its resources) makes Beanstalk delete that stack as the caller, and the stack what
    # it built: instances, the Auto Scaling group, security groups, the load balancer.
    "elasticbeanstalk:TerminateEnvironment": (
        "cloudformation:DeleteStack",
        "autoscaling:DeleteAutoScalingGroup",
        "ec2:TerminateInstances",
        "ec2:DeleteSecurityGroup",
        "elasticloadbalancing:DeleteLoadBalancer",
    ),
    # Creating an Auto Scaling group on a launch template: Auto Scaling launches its instances with the caller's
    # ec2:RunInstances (EC2 Auto Scaling User Guide, "Amazon EC2 Auto Scaling API permissions").
    "autoscaling:CreateAutoScalingGroup": ("ec2:RunInstances",),
}

_DESCRIBE_ENVIRONMENTS = "after-call.elastic-beanstalk.DescribeEnvironments"

_ERROR_CODES = {"ec2": "UnauthorizedOperation", "lambda": "AccessDeniedException", "states": "AccessDeniedException",
                "ssm": "AccessDeniedException", "kms": "AccessDeniedException", "servicequotas":
                "AccessDeniedException", "events": "AccessDeniedException", "sns": "AuthorizationError",
                "tag": "AccessDeniedException", "dynamodb": "AccessDeniedException"}


def iam_action(service: str, operation: str) -> str:
    prefix = _PREFIX.get(service, service)
    if prefix == "s3":
        return f"s3:{_S3_ACTIONS.get(operation, operation)}"
    return f"{prefix}:{operation}"


class Denied(Exception):
    """A call the policy does not allow (raised as the ClientError AWS would answer)."""


class Enforcer:
    def __init__(self, account: str, partition: str = "aws") -> None:
        self.account, self.partition = account, partition
        self.policies: dict[str, list[dict[str, Any]]] = {}  # function name -> statements
        self.enabled = True
        self.denials: list[dict[str, str]] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    # -- who is calling ------------------------------------------------------------------------
    def attach(self, function_name: str, statements: list[dict[str, Any]]) -> None:
        self.policies[function_name] = statements

    def role_arn(self, function_name: str) -> str:
        """The function's role (workflows.render.function_role_name: the function's name + ``-role``)."""
        return f"arn:{self.partition}:iam::{self.account}:role/{function_name}-role"

    def function_of_role(self, role_arn: str) -> str | None:
        return next((f for f in self.policies if self.role_arn(f) == role_arn), None)

    @contextlib.contextmanager
    def acting_as(self, function_name: str) -> Iterator[None]:
        previous = getattr(self._local, "function", None)
        self._local.function = function_name
        try:
            yield
        finally:
            self._local.function = previous

    def _handlers(self) -> list[tuple[str, Any]]:
        return [
            ("before-parameter-build", self._check),
            ("before-parameter-build.iam.SimulatePrincipalPolicy", responses.stash_api_params),
            ("before-call.iam.SimulatePrincipalPolicy", self._simulate_principal_policy),
            ("before-parameter-build.lambda.GetFunctionConfiguration", responses.stash_api_params),
            ("before-call.lambda.GetFunctionConfiguration", self._get_function_configuration),
        ]

    def install(self, events: Any) -> None:
        for event, handler in self._handlers():
            events.register(event, handler, unique_id=f"pilotlight-iam-{event}")
        # Last: after the Beanstalk adapter has made the answer.
        events.register_last(_DESCRIBE_ENVIRONMENTS, self._described_environments,
                             unique_id=f"pilotlight-iam-{_DESCRIBE_ENVIRONMENTS}")

    def uninstall(self, events: Any) -> None:
        for event, _ in self._handlers():
            events.unregister(event, unique_id=f"pilotlight-iam-{event}")
        events.unregister(_DESCRIBE_ENVIRONMENTS, unique_id=f"pilotlight-iam-{_DESCRIBE_ENVIRONMENTS}")

    def _described_environments(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """DescribeEnvironments "only returns information about environments that the calling principal has IAM
        permissions to access" (its API reference): the others are left out of the answer, not refused."""
        function = getattr(self._local, "function", None)
        if not self.enabled or function is None or function not in self.policies:
            return
        ctx = {"aws:RequestedRegion": context.get("client_region") or "us-east-1"}
        action, statements = "elasticbeanstalk:DescribeEnvironments", self.policies[function]
        parsed["Environments"] = [e for e in parsed.get("Environments") or []
                                  if self.allowed(statements, action, e.get("EnvironmentArn"), ctx)]

    # -- what moto lacks: the policy simulator, and the functions' configuration ----------------
    def _simulate_principal_policy(self, context: dict[str, Any], **_: Any) -> Any:
        p = responses.api_params(context)
        function = self.function_of_role(p.get("PolicySourceArn", ""))
        if function is None:
            return None  # not a function's role: the roles moto holds are simulated by sandbox/adapters_iam.py
        ctx = {e["ContextKeyName"]: (e.get("ContextKeyValues") or [""])[0] for e in p.get("ContextEntries") or []}
        results = []
        for action in p.get("ActionNames") or []:
            per = []
            for resource in p.get("ResourceArns") or ["*"]:
                ok = self.allowed(self.policies[function], action, None if resource == "*" else resource, ctx)
                per.append({"EvalResourceName": resource, "EvalResourceDecision": "allowed" if ok else "implicitDeny",
                            "MatchedStatements": [], "MissingContextValues": []})
            decision = "allowed" if all(r["EvalResourceDecision"] == "allowed" for r in per) else "implicitDeny"
            results.append({"EvalActionName": action, "EvalResourceName": per[0]["EvalResourceName"],
                            "EvalDecision": decision, "MatchedStatements": [], "MissingContextValues": [],
                            "ResourceSpecificResults": per})
        return responses.ok({"EvaluationResults": results, "IsTruncated": False})

    def _get_function_configuration(self, context: dict[str, Any], **_: Any) -> Any:
        name = str(responses.api_params(context).get("FunctionName", "")).rsplit(":function:", 1)[-1].split(":")[0]
        if name not in self.policies:
            return responses.error("ResourceNotFoundException", f"Function not found: {name}", 404)
        region = context.get("client_region") or "us-east-1"
        return responses.ok({
            "FunctionName": name,
            "FunctionArn": f"arn:{self.partition}:lambda:{region}:{self.account}:function:{name}",
            "Role": self.role_arn(name),
            "Runtime": "python3.12",
            "Handler": f"lambdas.{name.rsplit('-', 1)[-1]}.handler",
            "State": "Active",
        })

    # -- evaluation ----------------------------------------------------------------------------
    def allowed(self, statements: list[dict[str, Any]], action: str, resource: str | None,
                context: dict[str, str]) -> bool:
        """Does any Allow statement grant ``action`` on ``resource`` (None: by action only)?"""
        if action in _ALWAYS_ALLOWED:
            return True
        for statement in statements:
            if statement.get("Effect", "Allow") != "Allow":
                continue
            if not any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in _as_list(statement["Action"])):
                continue
            if resource is not None and not any(_arn_match(p, resource) for p in _as_list(statement["Resource"])):
                continue
            if not _conditions_met(statement.get("Condition") or {}, context):
                continue
            return True
        return False

    def _check(self, params: dict[str, Any], model: Any, context: dict[str, Any], event_name: str,
               **_: Any) -> None:
        function = getattr(self._local, "function", None)
        if not self.enabled or function is None or function not in self.policies:
            return
        _, service, operation = event_name.split(".", 2)
        action = iam_action(service, operation)
        # Global services are signed in us-east-1 whatever region the client names: that is aws:RequestedRegion.
        glob = _PREFIX.get(service, service) in _GLOBAL
        region = "us-east-1" if glob else context.get("client_region") or "us-east-1"
        ctx = {"aws:RequestedRegion": region, "cloudwatch:namespace": str(params.get("Namespace", "")),
               "kms:ViaService": ""}
        statements = self.policies[function]
        for needed_action, resource in self.requests(service, operation, params, region):
            if not self.allowed(statements, needed_action, resource, ctx):
                self._deny(function, service, operation, needed_action, resource)
        for needed in CALLER_PERMISSIONS.get(action, ()):
            if not self.allowed(statements, needed, None, ctx):
                self._deny(function, service, operation, needed, None,
                           why=f" ({action} acts with the caller's permissions)")

    def _deny(self, function: str, service: str, operation: str, action: str, resource: str | None,
              why: str = "") -> None:
        target = resource or "*"
        message = (f"User: arn:{self.partition}:sts::{self.account}:assumed-role/{function}-role/{function} is not "
                   f"authorized to perform: {action} on resource: {target} because no identity-based policy "
                   f"allows the {action} action{why}")
        with self._lock:
            self.denials.append({"function": function, "action": action, "resource": target})
        prefix = _PREFIX.get(service, service)
        code = _ERROR_CODES.get(prefix, "AccessDenied")
        raise ClientError({"Error": {"Code": code, "Message": message},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, operation)

    # -- resources named by a request ------------------------------------------------------------
    def requests(self, service: str, operation: str, p: dict[str, Any], region: str) -> list[tuple[str, str | None]]:
        """(IAM action, resource ARN or None) pairs a request is authorized on: the operation's action on each
        resource it names, except where AWS authorizes part of it as another action (a versioned S3 delete)."""
        action = iam_action(service, operation)
        if action == "s3:DeleteObject" and p.get("Bucket"):
            return self._s3_deletes(operation, p)
        if action == "dynamodb:UpdateTable" and p.get("ReplicaUpdates"):
            return self._dynamodb_replica_updates(p, region)
        if action == "rds-data:ExecuteStatement":
            # On the cluster; the Data API reads the secret with the caller's permissions (Aurora User Guide,
            # "Authorizing access to RDS Data API").
            return [(action, p.get("resourceArn")), ("secretsmanager:GetSecretValue", p.get("secretArn"))]
        return [(action, r) for r in self.resources(service, operation, p, region) or [None]]

    def _s3_deletes(self, operation: str, p: dict[str, Any]) -> list[tuple[str, str | None]]:
        def one(obj: dict[str, Any]) -> tuple[str, str | None]:
            arn = f"arn:{self.partition}:s3:::{p['Bucket']}/{obj['Key']}" if obj.get("Key") else None
            return (_S3_VERSION_DELETE if obj.get("VersionId") else "s3:DeleteObject", arn)

        if operation == "DeleteObjects":
            objects = (p.get("Delete") or {}).get("Objects") or []
            return [one(o) for o in objects] or [("s3:DeleteObject", None)]
        return [one(p)]

    # Creating a replica (UpdateTable ReplicaUpdates Create): DynamoDB creates and fills the replica's table with
    # the caller's permissions there (Developer Guide, "DynamoDB global tables security"); deleting one, likewise.
    _REPLICA_CREATE = ("dynamodb:CreateTable", "dynamodb:CreateTableReplica", "dynamodb:Scan", "dynamodb:Query",
                       "dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem",
                       "dynamodb:BatchWriteItem")
    _REPLICA_DELETE = ("dynamodb:DeleteTable", "dynamodb:DeleteTableReplica")

    def _dynamodb_replica_updates(self, p: dict[str, Any], region: str) -> list[tuple[str, str | None]]:
        name = str(p.get("TableName", "")).rsplit("/", 1)[-1]
        out: list[tuple[str, str | None]] = [("dynamodb:UpdateTable", self._arn("dynamodb", region, f"table/{name}"))]
        for update in p.get("ReplicaUpdates") or []:
            for kind, needed in (("Create", self._REPLICA_CREATE), ("Delete", self._REPLICA_DELETE)):
                target = (update.get(kind) or {}).get("RegionName")
                if target:
                    out += [(a, self._arn("dynamodb", target, f"table/{name}")) for a in needed]
        return out

    def _arn(self, service: str, region: str, resource: str, account: str | None = None) -> str:
        acct = self.account if account is None else account
        return f"arn:{self.partition}:{service}:{region}:{acct}:{resource}"

    def resources(self, service: str, operation: str, p: dict[str, Any], region: str) -> list[str]:
        """ARNs a request acts on, as far as the request names them ([] when it names none)."""
        service = _PREFIX.get(service, service)
        if service == "rds":
            return self._rds(operation, p, region)
        if service == "elasticbeanstalk":
            return self._beanstalk(operation, p, region)
        if service == "s3":
            return self._s3(operation, p)
        if service == "ec2":
            return [*self._ec2(operation, p, region), *_launch_template_arns(self, operation, p, region)]
        if service == "autoscaling":
            return _autoscaling_arns(self, operation, p, region)
        if service == "cloudwatch":
            names = p.get("AlarmNames") or ([p["AlarmName"]] if p.get("AlarmName") else [])
            return [self._arn("cloudwatch", region, f"alarm:{n}") for n in names]
        if service == "ssm" and p.get("Name"):
            return [self._arn("ssm", region, "parameter" + ("" if p["Name"].startswith("/") else "/") + p["Name"])]
        if service == "dynamodb" and isinstance(p.get("TableName"), str):
            # A table's name, or its ARN (item calls and DescribeTable, UpdateTable...).
            name = p["TableName"]
            return [name if name.startswith("arn:") else self._arn("dynamodb", region, f"table/{name}")]
        if service == "secretsmanager" and isinstance(p.get("SecretId"), str):
            return [_secret_arn(self, p["SecretId"], region)]
        if service == "sns" and p.get("TopicArn"):
            return [p["TopicArn"]]
        if service == "route53":
            return self._route53(p)
        if service == "states":
            return [v for k, v in p.items() if k in ("stateMachineArn", "executionArn") and isinstance(v, str)]
        if service == "sts" and isinstance(p.get("RoleArn"), str):
            return [p["RoleArn"]]  # AssumeRole: authorized on the role (a cross-account plan's, infra/iam.py)
        if service == "iam" and p.get("RoleName"):
            return [f"arn:{self.partition}:iam::{self.account}:role/{p['RoleName']}"]
        if service == "kms" and isinstance(p.get("KeyId"), str) and not p["KeyId"].startswith("alias/"):
            key = p["KeyId"]
            return [key if key.startswith("arn:") else self._arn("kms", region, f"key/{key}")]
        return []

    def _rds(self, operation: str, p: dict[str, Any], region: str) -> list[str]:
        out = []
        snapshot = p.get("DBSnapshotIdentifier")
        if isinstance(snapshot, str) and snapshot:
            # CreateDBSnapshot (the new snapshot), DeleteDBSnapshot, DescribeDBSnapshots of one snapshot,
            # RestoreDBInstanceFromDBSnapshot (its source): authorized on the snapshot's ARN.
            out.append(snapshot if snapshot.startswith("arn:") else self._arn("rds", region, f"snapshot:{snapshot}"))
        elif operation == "DescribeDBSnapshots" and not p.get("DBInstanceIdentifier"):
            # Without an identifier the call lists the region's snapshots: it needs snapshot:* there.
            out.append(self._arn("rds", region, "snapshot:*"))
        if isinstance(p.get("ResourceName"), str) and p["ResourceName"].startswith("arn:"):
            out.append(p["ResourceName"])  # ListTagsForResource, AddTagsToResource, RemoveTagsFromResource
        if p.get("DBInstanceIdentifier"):
            ident = p["DBInstanceIdentifier"]
            out.append(ident if ident.startswith("arn:") else self._arn("rds", region, f"db:{ident}"))
        elif operation == "DescribeDBInstances":
            ids = [v for f in p.get("Filters") or [] if f.get("Name") == "db-instance-id" for v in f.get("Values", [])]
            # Without an identifier the call lists the region's instances: it needs db:* there.
            out.extend(v if v.startswith("arn:") else self._arn("rds", region, f"db:{v}") for v in ids)
            if not ids:
                out.append(self._arn("rds", region, "db:*"))
        source = p.get("SourceDBInstanceIdentifier")
        if isinstance(source, str) and source.startswith("arn:"):
            out.append(source)
        out.extend(self._rds_aurora(operation, p, region))
        return out

    def _rds_aurora(self, operation: str, p: dict[str, Any], region: str) -> list[str]:
        """Aurora: DB clusters (``cluster:<id>``, or their ARN as the global cluster operations name them),
        global clusters (account-level ARNs without a region) and cluster snapshots."""
        out = []
        for key in ("DBClusterIdentifier", "DbClusterIdentifier", "TargetDbClusterIdentifier",
                    "SourceDBClusterIdentifier"):
            ident = p.get(key)
            if isinstance(ident, str) and ident:
                out.append(ident if ident.startswith("arn:") else self._arn("rds", region, f"cluster:{ident}"))
        if operation == "DescribeDBClusters" and not p.get("DBClusterIdentifier"):
            out.append(self._arn("rds", region, "cluster:*"))  # a listing of the region's clusters
        ident = p.get("GlobalClusterIdentifier")
        if isinstance(ident, str) and ident:
            out.append(ident if ident.startswith("arn:") else self._arn("rds", "", f"global-cluster:{ident}"))
        elif operation == "DescribeGlobalClusters":
            out.append(self._arn("rds", "", "global-cluster:*"))
        snapshot = p.get("DBClusterSnapshotIdentifier")
        if operation == "RestoreDBClusterFromSnapshot":
            snapshot = p.get("SnapshotIdentifier")
        if isinstance(snapshot, str) and snapshot:
            out.append(snapshot if snapshot.startswith("arn:") else
                       self._arn("rds", region, f"cluster-snapshot:{snapshot}"))
        return out

    def _beanstalk(self, operation: str, p: dict[str, Any], region: str) -> list[str]:
        if isinstance(p.get("ResourceArn"), str):  # tags of an application, version, template or environment
            return [p["ResourceArn"]]
        app = p.get("ApplicationName")
        names = p.get("EnvironmentNames") or ([p["EnvironmentName"]] if p.get("EnvironmentName") else [])
        if not app and operation != "DescribeEnvironments":
            # An operation naming one environment (TerminateEnvironment, DescribeEnvironmentHealth, ...) is
            # authorized on its ARN, which names its application. DescribeEnvironments is not refused: AWS
            # answers it with the environments the caller may describe.
            found = adapters_beanstalk.environment_of(region, p.get("EnvironmentName"), p.get("EnvironmentId"))
            if found is not None:
                app, names = found[0], [found[1]]
        if not app:
            return []
        out = []
        out.extend(self._arn("elasticbeanstalk", region, f"environment/{app}/{n}") for n in names)
        if p.get("TemplateName"):
            out.append(self._arn("elasticbeanstalk", region, f"configurationtemplate/{app}/{p['TemplateName']}"))
        labels = p.get("VersionLabels") or ([p["VersionLabel"]] if p.get("VersionLabel") else [])
        out.extend(self._arn("elasticbeanstalk", region, f"applicationversion/{app}/{v}") for v in labels)
        return out or [self._arn("elasticbeanstalk", region, f"application/{app}")]

    def _s3(self, operation: str, p: dict[str, Any]) -> list[str]:
        bucket = p.get("Bucket")
        if not bucket:
            return []
        if p.get("Key") and operation not in ("ListObjectsV2", "ListObjects", "ListObjectVersions"):
            return [f"arn:{self.partition}:s3:::{bucket}/{p['Key']}"]
        if operation == "DeleteObjects":
            keys = [o["Key"] for o in (p.get("Delete") or {}).get("Objects", [])]
            return [f"arn:{self.partition}:s3:::{bucket}/{k}" for k in keys]
        return [f"arn:{self.partition}:s3:::{bucket}"]

    def _ec2(self, operation: str, p: dict[str, Any], region: str) -> list[str]:
        if operation.startswith("Describe"):
            return []
        named = [p[k] for k in ("ImageId", "SnapshotId", "InstanceId") if p.get(k)]
        ids = [*_as_list(p.get("Resources") or []), *named]
        out = []
        for rid in ids:
            if rid.startswith("ami-"):
                out.append(self._arn("ec2", region, f"image/{rid}", account=""))
            elif rid.startswith("snap-"):
                out.append(self._arn("ec2", region, f"snapshot/{rid}", account=""))
            elif rid.startswith("i-"):
                out.append(self._arn("ec2", region, f"instance/{rid}"))
        if operation in ("CopyImage", "CreateImage"):
            out.append(self._arn("ec2", region, "image/*", account=""))
        return out

    def _route53(self, p: dict[str, Any]) -> list[str]:
        if p.get("HostedZoneId"):
            return [f"arn:{self.partition}:route53:::hostedzone/{p['HostedZoneId'].rsplit('/', 1)[-1]}"]
        if p.get("HealthCheckId"):
            return [f"arn:{self.partition}:route53:::healthcheck/{p['HealthCheckId']}"]
        if p.get("Id"):
            return [f"arn:{self.partition}:route53:::change/{p['Id'].rsplit('/', 1)[-1]}"]
        return []


def _autoscaling_arns(enforcer: Enforcer, operation: str, p: dict[str, Any], region: str) -> list[str]:
    """An Auto Scaling group's ARN (autoScalingGroup:<uuid>:autoScalingGroupName/<name>): the group's own when it
    exists, else with a uuid the new group would get (policies name it with a wildcard). Describe* lists: none."""
    if operation.startswith("Describe"):
        return []
    names = [p["AutoScalingGroupName"]] if p.get("AutoScalingGroupName") else []
    names += [t["ResourceId"] for t in p.get("Tags") or [] if operation == "CreateOrUpdateTags" and t.get("ResourceId")]
    from moto.autoscaling.models import autoscaling_backends

    groups = autoscaling_backends[enforcer.account][region].autoscaling_groups
    out = []
    for name in dict.fromkeys(names):
        group = groups.get(name)
        arn = getattr(group, "arn", None) if group is not None else None
        out.append(arn or enforcer._arn("autoscaling", region,
                                        f"autoScalingGroup:00000000-0000-0000-0000-000000000000:"
                                        f"autoScalingGroupName/{name}"))
    return out


def _launch_template_arns(enforcer: Enforcer, operation: str, p: dict[str, Any], region: str) -> list[str]:
    """EC2 launch templates, named in an ARN by their id: the one a request names (by id, or by name resolved in
    the sandbox's EC2), or launch-template/* for CreateLaunchTemplate (the id is minted by the call)."""
    if operation.startswith("Describe") or "LaunchTemplate" not in operation:
        return []
    if operation == "CreateLaunchTemplate":
        return [enforcer._arn("ec2", region, "launch-template/*")]
    ident = p.get("LaunchTemplateId")
    if not ident and p.get("LaunchTemplateName"):
        from moto.ec2.models import ec2_backends

        try:
            ident = ec2_backends[enforcer.account][region].get_launch_template_by_name(p["LaunchTemplateName"]).id
        except Exception:  # noqa: BLE001 - no such template: EC2 answers that itself
            return []
    return [enforcer._arn("ec2", region, f"launch-template/{ident}")] if ident else []


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _arn_match(pattern: str, arn: str) -> bool:
    if pattern == "*":
        return True
    # In an IAM resource, * and ? are wildcards within the whole ARN (including across ':' and '/').
    return fnmatch.fnmatchcase(arn, pattern)


def _conditions_met(conditions: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, entries in conditions.items():
        for key, expected in entries.items():
            if key not in context or not context[key]:
                continue  # a key the sandbox does not model is taken as met
            values = _as_list(expected)
            actual = context[key]
            if operator.endswith("StringEquals") and actual not in values:
                return False
            if operator.endswith("StringLike") and not any(fnmatch.fnmatchcase(actual, v) for v in values):
                return False
    return True


def _secret_arn(enforcer: Any, secret_id: str, region: str) -> str:
    """A secret's ARN from its name or ARN: Secrets Manager's ARN carries a random suffix the name lacks."""
    if secret_id.startswith("arn:"):
        return secret_id
    from moto.secretsmanager.models import secretsmanager_backends

    found = secretsmanager_backends[enforcer.account][region].secrets.get(secret_id)
    return found.arn if found is not None else enforcer._arn("secretsmanager", region, f"secret:{secret_id}")

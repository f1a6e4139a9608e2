"""The sandbox's Elastic Beanstalk state, its lifecycle and the checks Beanstalk makes
(:mod:`sandbox.adapters_beanstalk` answers the API from it and installs the hooks).

- What moto 5.2 does not keep: environments (:class:`EnvState`: configuration, version label, platform,
  when it became Ready, its termination), saved configurations, application versions and forced health,
  in :data:`STORE`, which :func:`reset` replaces on every install: read it through this module
  (``adapters_beanstalk_store.STORE``), never bound by ``from ... import STORE``.
- The termination lifecycle: an environment is ``Terminating`` for its modeled duration
  (:func:`terminate_delay`, :data:`TERMINATE_SECONDS`), then ``Terminated``; :func:`settle` then removes it
  from moto, so its name can be launched again.
- The options every environment reports (:func:`default_options`, :func:`derived_options`) and the
  refusals Beanstalk makes in AWS (:func:`validate_options`, :func:`check_platform`, :func:`app_exists`,
  :func:`env_named`), raised as :class:`Refused`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

from sandbox import clock

READ_ONLY_NAMESPACES = {"aws:cloudformation:template:parameter"}
# Modeled seconds from TerminateEnvironment to Terminated (p50, p95): the stack's deletion (instances, load
# balancer, Auto Scaling group, security groups); a few minutes, as Beanstalk's own events show it.
TERMINATE_SECONDS = (240.0, 600.0)
_IDS = re.compile(r"\b(ami|vpc|subnet|sg)-[0-9a-f]{8,17}\b")


def now() -> dt.datetime:
    return clock.datetime_now()  # modeled time in the sandbox, like every other service's timestamps


def platform_arn(region: str, solution_stack: str) -> str:
    """``64bit Amazon Linux 2023 v4.3.0 running Python 3.11`` -> its platform ARN in ``region``."""
    m = re.match(r"64bit (Amazon Linux \d+) v([\d.]+) running (.+)$", solution_stack or "")
    name = f"{m.group(3)} running on 64bit {m.group(1)}/{m.group(2)}" if m else (solution_stack or "unknown")
    return f"arn:aws:elasticbeanstalk:{region}::platform/{name}"


def default_options(region: str) -> list[dict[str, str]]:
    """Options every environment reports besides the ones it was created with."""
    return [
        {"Namespace": "aws:autoscaling:asg", "OptionName": "MinSize", "Value": "1"},
        {"Namespace": "aws:autoscaling:asg", "OptionName": "MaxSize", "Value": "4"},
        {"Namespace": "aws:autoscaling:launchconfiguration", "OptionName": "InstanceType", "Value": "t3.small"},
        {
            "Namespace": "aws:autoscaling:launchconfiguration",
            "OptionName": "IamInstanceProfile",
            "Value": "aws-elasticbeanstalk-ec2-role",
        },
        {"Namespace": "aws:elasticbeanstalk:environment", "OptionName": "EnvironmentType", "Value": "LoadBalanced"},
        {"Namespace": "aws:elasticbeanstalk:environment", "OptionName": "LoadBalancerType", "Value": "application"},
        {
            "Namespace": "aws:elasticbeanstalk:environment",
            "OptionName": "ServiceRole",
            "Value": "aws-elasticbeanstalk-service-role",
        },
        {"Namespace": "aws:elasticbeanstalk:healthreporting:system", "OptionName": "SystemType", "Value": "enhanced"},
    ]


def derived_options(options: list[dict[str, str]]) -> list[dict[str, str]]:
    """The read-only options Beanstalk derives from the others (and reports back)."""
    props = [o for o in options if o["Namespace"] == "aws:elasticbeanstalk:application:environment"]
    return [
        {
            "Namespace": "aws:cloudformation:template:parameter",
            "OptionName": "EnvironmentVariables",
            "Value": ",".join(f"{o['OptionName']}={o.get('Value', '')}" for o in props),
        },
        {"Namespace": "aws:cloudformation:template:parameter", "OptionName": "InstancePort", "Value": "80"},
    ]


def merge(base: list[dict[str, Any]], over: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = {(o["Namespace"], o["OptionName"], o.get("ResourceName", "")): dict(o) for o in base}
    for o in over:
        out[(o["Namespace"], o["OptionName"], o.get("ResourceName", ""))] = dict(o)
    return list(out.values())


@dataclass
class EnvState:
    application: str
    name: str
    environment_id: str
    version_label: str | None
    solution_stack: str
    platform_arn: str
    cname: str
    options: list[dict[str, Any]]
    created: dt.datetime = field(default_factory=now)
    ready_at: dt.datetime | None = None  # first seen Ready: AWS's DateUpdated at the end of the launch
    terminating_at: dt.datetime | None = None  # TerminateEnvironment accepted
    terminated_at: float | None = None  # modeled time its termination ends

    def termination(self) -> str | None:
        """``Terminating`` or ``Terminated`` once TerminateEnvironment was accepted, else None."""
        if self.terminated_at is None:
            return None
        return "Terminated" if clock.now() >= self.terminated_at else "Terminating"


@dataclass(frozen=True)
class Health:
    """A health a test forces on an environment once it is Ready (enhanced health's view)."""

    color: str  # Green, Yellow, Red, Grey
    status: str  # Ok, Warning, Degraded, Severe, ...
    causes: tuple[str, ...] = ()


@dataclass
class Store:
    envs: dict[tuple[str, str], EnvState] = field(default_factory=dict)
    templates: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    versions: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    health: dict[tuple[str, str], Health] = field(default_factory=dict)  # (region, environment name)
    lock: threading.Lock = field(default_factory=threading.Lock)


STORE = Store()


def _terminate_p50() -> float:
    return TERMINATE_SECONDS[0]


# () -> modeled seconds a termination takes (install() may pass reset() the latency model's figure).
_terminate_delay: Any = _terminate_p50


def terminate_delay() -> float:
    """Modeled seconds the termination that starts now takes."""
    return _terminate_delay()


def reset(delay: Any = None) -> None:
    """A fresh, empty state; ``delay``: () -> modeled seconds a termination takes (default: its p50)."""
    global STORE, _terminate_delay
    STORE = Store()
    _terminate_delay = delay or _terminate_p50


def force_health(region: str, environment: str, color: str = "Red", status: str = "Severe",
                 causes: list[str] | None = None) -> None:
    """Make ``environment`` (now or once launched) report this health when Ready, until cleared."""
    default = ["100.0 % of the requests are failing with HTTP 5xx.",
               "ELB health is failing or not available for all instances."]
    with STORE.lock:
        STORE.health[(region, environment)] = Health(color, status, tuple(default if causes is None else causes))


def clear_health(region: str, environment: str) -> None:
    with STORE.lock:
        STORE.health.pop((region, environment), None)


def health_of(region: str, name: str) -> Health:
    return STORE.health.get((region, name)) or Health("Green", "Ok")


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def invalid(message: str) -> Refused:
    return Refused("InvalidParameterValue", message)


# -- moto lookups --------------------------------------------------------------------------------
def eb_backend(region: str) -> Any:
    from moto.elasticbeanstalk.models import eb_backends

    return eb_backends[DEFAULT_ACCOUNT_ID][region]


def ec2_backend(region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[DEFAULT_ACCOUNT_ID][region]


def s3_backend() -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


def app_exists(region: str, application: str) -> None:
    if application not in eb_backend(region).applications:
        raise invalid(f"No Application named '{application}' found.")


def _id_regions(value: str) -> dict[str, str]:
    """Resource ids in ``value`` -> the region where they exist ('' when nowhere in the sandbox)."""
    from moto.ec2.models import ec2_backends

    found: dict[str, str] = {}
    for match in _IDS.finditer(value):
        ident, kind = match.group(0), match.group(1)
        found[ident] = ""
        for region, backend in ec2_backends[DEFAULT_ACCOUNT_ID].items():
            pools = {"ami": backend.amis, "vpc": backend.vpcs, "sg": None, "subnet": None}
            if kind == "sg":
                hit = any(ident in groups for groups in backend.groups.values())
            elif kind == "subnet":
                hit = any(ident in subnets for subnets in backend.subnets.values())
            else:
                hit = ident in pools[kind]
            if hit:
                found[ident] = region
                break
    return found


def validate_options(region: str, options: list[dict[str, Any]]) -> None:
    for opt in options:
        ns, name = opt.get("Namespace", ""), opt.get("OptionName", "")
        if ns in READ_ONLY_NAMESPACES:
            raise invalid(
                f"Invalid option specification (Namespace: '{ns}', OptionName: '{name}'): "
                "the option is read-only and cannot be set"
            )
    for opt in options:
        ns, name, value = opt.get("Namespace", ""), opt.get("OptionName", ""), opt.get("Value") or ""
        for ident, where in _id_regions(value).items():
            if ident.startswith("ami-") and where != region:
                raise invalid(
                    f"Invalid option value: '{value}' (Namespace: '{ns}', OptionName: '{name}'): "
                    f"No AMI with ID '{ident}' in region {region}"
                )
            if where and where != region:
                raise invalid(
                    f"Invalid option value: '{value}' (Namespace: '{ns}', OptionName: '{name}'): "
                    f"'{ident}' does not exist in region {region}"
                )


def check_platform(region: str, arn: str | None) -> None:
    if arn and arn.split(":")[3] != region:
        raise invalid(f"Invalid platform ARN '{arn}': not a platform of region {region}")


# -- environments by name ------------------------------------------------------------------------
def env_named(region: str, params: dict[str, Any]) -> EnvState:
    """The environment a request names; a terminated one is found no more, as in AWS."""
    name = params.get("EnvironmentName")
    ident = params.get("EnvironmentId")
    for (r, n), env in STORE.envs.items():
        if r == region and (n == name or (ident and env.environment_id == ident)) and (
                env.termination() != "Terminated"):
            return env
    raise invalid(f"No Environment found for EnvironmentName = '{name or ident}'.")


def environment_of(region: str, name: str | None = None, environment_id: str | None = None) -> tuple[str, str] | None:
    """``(application, name)`` of an environment the sandbox knows (for IAM: its ARN names both)."""
    for (r, n), env in STORE.envs.items():
        if r == region and (n == name or (environment_id and env.environment_id == environment_id)):
            return env.application, env.name
    return None


def settle(region: str) -> None:
    """Environments whose termination has ended leave moto: their name can be launched again and their tags
    are gone (DescribeEnvironments still lists them from the store while deleted ones are included)."""
    with STORE.lock:
        ended = [env for (r, _), env in STORE.envs.items() if r == region and env.termination() == "Terminated"]
        for env in ended:
            app = eb_backend(region).applications.get(env.application)
            if app is not None and env.name in app.environments:
                app.environments.pop(env.name, None)

"""Beanstalk saved configurations: regional rewriting of a primary configuration, and which DR one to use.

A primary environment's configuration cannot be replayed in another region as it is: read-only
options are refused, and AMI, VPC, subnets, security groups, key pair, certificates, platform ARN
and environment properties naming primary resources are regional. :func:`dr_option_settings`
rewrites what the plan maps and flags what it cannot.

The DR saved configuration of an environment is kept under one stable name. Replacing it never
leaves none: the new one is created under a staging name first, the old one is deleted only once the
new one exists, then the new one takes the stable name and the staging copy goes.
:func:`find_template` is how the failover (and readiness) find the one to use, whichever of the two
exists.

A drill launches from the same saved configuration, with its environment properties pointed at the
drill's database copies instead of the live DR replicas (:func:`drill_overrides`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from lambdas import redact
from lambdas.common import CONNECTION_ERRORS, raise_mapped

ENV_PROPERTIES = "aws:elasticbeanstalk:application:environment"
LAUNCH = "aws:autoscaling:launchconfiguration"
VPC = "aws:ec2:vpc"
# Namespaces Beanstalk reports but refuses as input (derived from the other options).
READ_ONLY_NAMESPACES = {"aws:cloudformation:template:parameter"}
# Single options that are reported but not settable.
READ_ONLY_OPTIONS = {("aws:elasticbeanstalk:environment", "EnvironmentType_ReadOnly")}
_ID = re.compile(r"\b(ami|vpc|subnet|sg)-[0-9a-f]{8,17}\b")


def template_name(plan: str, environment: str) -> str:
    """The stable name of an environment's DR saved configuration."""
    return f"pilotlight-{plan}-{environment}"


STAGING_SUFFIX = "-next"


def staging_template_name(plan: str, environment: str) -> str:
    """Where a replacement DR saved configuration is created before the stable one is deleted."""
    return template_name(plan, environment) + STAGING_SUFFIX


def read_template(eb: Any, application: str, name: str) -> dict[str, Any] | None:
    """A saved configuration's settings; None when there is no such template (or application)."""
    try:
        return eb.describe_configuration_settings(ApplicationName=application, TemplateName=name)[
            "ConfigurationSettings"][0]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "InvalidParameterValue":  # no such template (or application)
            return None
        raise_mapped(exc, f"read saved configuration {name}")
    except CONNECTION_ERRORS as exc:
        raise_mapped(exc, f"read saved configuration {name}")
    return None


def find_template(
    eb: Any, application: str, plan: str, environment: str, *, newest: bool = True
) -> tuple[str, dict[str, Any]] | None:
    """The DR saved configuration to launch from, as ``(name, settings)``; None when there is none.

    A replacement stopped midway leaves the new configuration under the staging name (with or without
    the stable one). With ``newest`` both names are read and the newer one wins (on a tie, the stable
    one); without it the stable one is used whenever it exists (one call in the usual case: the two
    only coexist for the moment between the staging copy's creation and the stable one's deletion).
    """
    stable, staging = template_name(plan, environment), staging_template_name(plan, environment)
    found: list[tuple[str, dict[str, Any]]] = []
    for name in (stable, staging):
        settings = read_template(eb, application, name)
        if settings is not None:
            found.append((name, settings))
            if not newest:
                break
    if not found:
        return None

    def age(item: tuple[str, dict[str, Any]]) -> tuple[float, bool]:
        created = item[1].get("DateCreated")
        if not hasattr(created, "timestamp"):  # a datetime (duck-typed: the sandbox patches the class)
            return 0.0, item[0] == stable
        return (created if created.tzinfo else created.replace(tzinfo=dt.UTC)).timestamp(), item[0] == stable

    return max(found, key=age)


_VERSION_IN_DESCRIPTION = re.compile(r"; application version (\S+)$")


def describe_template(environment: str, version_label: str | None) -> str:
    """The saved configuration's description; it records the application version to launch with, so a
    failover needs nothing from the primary region."""
    text = f"pilotlight DR configuration of {environment}"
    return f"{text}; application version {version_label}" if version_label else text


def version_of_template(description: str | None) -> str | None:
    match = _VERSION_IN_DESCRIPTION.search(description or "")
    return match.group(1) if match else None


def dr_platform_arn(arn: str | None, dr_region: str) -> str | None:
    if not arn or not arn.startswith("arn:"):
        return arn
    parts = arn.split(":")
    parts[3] = dr_region
    return ":".join(parts)


def dr_option_settings(
    options: list[dict[str, Any]],
    *,
    primary_region: str,
    image_id: str,
    network: dict[str, Any],
    replacements: dict[str, str],
    properties: dict[str, str] | None = None,
) -> tuple[list[dict[str, str]], list[str]]:
    """The DR option settings for a primary configuration, and what could not be made regional.

    ``replacements`` maps primary values (DB endpoints, bucket names) to their DR counterparts
    inside environment properties. ``properties`` are environment properties set to the given values
    (added when the primary has none of that name), e.g. the write region of a global table's
    application. Flags name every remaining value that mentions the primary region or a primary
    resource id.
    """
    subnets = ",".join(network["subnets"])
    elb_subnets = ",".join(network.get("elb_subnets") or network["subnets"])
    groups = ",".join(network["security_groups"])
    certs: dict[str, str] = network.get("certificate_arns") or {}
    fixed = {
        (LAUNCH, "ImageId"): image_id,
        (LAUNCH, "SecurityGroups"): groups,
        (VPC, "VPCId"): network["vpc_id"],
        (VPC, "Subnets"): subnets,
        (VPC, "ELBSubnets"): elb_subnets,
    }
    primary_ids: set[str] = set()
    out: list[dict[str, str]] = []
    flags: list[str] = []
    for opt in options:
        ns, name, value = opt.get("Namespace", ""), opt.get("OptionName", ""), opt.get("Value")
        primary_ids.update(m.group(0) for m in _ID.finditer(value or ""))
        if ns in READ_ONLY_NAMESPACES or (ns, name) in READ_ONLY_OPTIONS or value is None:
            continue
        if (ns, name) in fixed:
            value = fixed[(ns, name)]
        elif (ns, name) == (LAUNCH, "EC2KeyName"):
            if not network.get("key_name"):
                flags.append(f"{ns}:{name}: key pair {value!r} exists only in {primary_region}; dropped")
                continue
            value = network["key_name"]
        elif value in certs:
            value = certs[value]
        elif ns == ENV_PROPERTIES:
            for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
                value = value.replace(old, new)
        setting = {"Namespace": ns, "OptionName": name, "Value": value}
        if opt.get("ResourceName"):
            setting["ResourceName"] = opt["ResourceName"]
        out.append(setting)
    for prop, wanted in sorted((properties or {}).items()):
        found = next((s for s in out if s["Namespace"] == ENV_PROPERTIES and s["OptionName"] == prop), None)
        if found is None:
            out.append({"Namespace": ENV_PROPERTIES, "OptionName": prop, "Value": str(wanted)})
        else:
            found["Value"] = str(wanted)
    for setting in out:
        value = setting["Value"]
        stale = sorted(i for i in primary_ids if i in value)
        if primary_region in value or stale:
            what = ", ".join(stale) or primary_region
            flags.append(f"{setting['Namespace']}:{setting['OptionName']}: still refers to {what}")
    return out, flags


def _host(host: str) -> re.Pattern[str]:
    """``host`` as a whole host name inside a value (``postgres://u@HOST:5432/db``), in any case: not the tail
    of a longer name (``x-HOST``)."""
    return re.compile(r"(?<![A-Za-z0-9-])" + re.escape(host) + r"(?![A-Za-z0-9-])", re.IGNORECASE)


def drill_overrides(
    options: list[dict[str, Any]], *, copies: dict[str, str], production: dict[str, str]
) -> tuple[list[dict[str, str]], list[str]]:
    """The environment-property overrides that point a drill at its database copies, and what would still
    reach production.

    ``copies`` maps a live DR replica's endpoint host to its drill copy's host: every occurrence inside an
    environment property is replaced. ``production`` maps each production host (live replicas, primaries)
    to what it is. Any settable option, of any namespace, whose value still names one of them once the
    overrides apply is returned as ``"<namespace>:<name> (<what>)"``: only environment properties are
    rewritten, so a host anywhere else (a custom option, say) is never silently kept.
    """
    rewrites = [(_host(old), new) for old, new in sorted(copies.items(), key=lambda kv: -len(kv[0]))]
    forbidden = [(_host(host), what) for host, what in sorted(production.items())]
    overrides: list[dict[str, str]] = []
    problems: list[str] = []
    for opt in settable(options):
        ns, name, value = opt["Namespace"], opt["OptionName"], str(opt["Value"])
        if ns == ENV_PROPERTIES:
            new = value
            for pattern, copy in rewrites:
                new = pattern.sub(copy, new)
            if new != value:
                overrides.append({"Namespace": ns, "OptionName": name, "Value": new})
                value = new
        problems += [f"{ns}:{name} ({what})" for pattern, what in forbidden if pattern.search(value)]
    return overrides, problems


def option_key(settings: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """The identity of a set of options: what makes two saved configurations the same."""
    return {(s["Namespace"], s["OptionName"], s.get("Value", ""), s.get("ResourceName", "")) for s in settings}


def settable(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The options that can be set (what a saved configuration is made of): read-only ones dropped."""
    return [
        o
        for o in options
        if o.get("Namespace") not in READ_ONLY_NAMESPACES
        and (o.get("Namespace"), o.get("OptionName")) not in READ_ONLY_OPTIONS
        and o.get("Value") is not None
    ]


def option_drift(expected: list[dict[str, Any]], actual: list[dict[str, Any]],
                 secret: Iterable[str] = ()) -> list[str]:
    """One line per option whose value differs between what replicate would save and what is saved.

    Uses the same identity as the "unchanged" test of :func:`save_configuration`, so an option that
    replicate would rewrite is never reported here, and one reported here is one replicate would update.
    Values are shown as :mod:`lambdas.redact` allows: a secret environment property (``secret``: the names the
    plan marks; names like ``*PASSWORD*`` always) is named, its values never.
    """

    def by_option(settings: list[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
        return {(s["Namespace"], s["OptionName"], s.get("ResourceName", "")): s.get("Value", "") for s in settings}

    want, have = by_option(expected), by_option(actual)
    secret = set(secret)
    out = []
    for key in sorted(set(want) | set(have)):
        if want.get(key) != have.get(key):
            ns, name, resource = key
            label = f"{ns}:{name}" + (f" ({resource})" if resource else "")

            def shown(text: str, name: str = name) -> str:
                return repr(redact.option_value(name, text, secret))

            if key not in have:
                out.append(f"{label}: missing from the saved configuration (primary implies {shown(want[key])})")
            elif key not in want:
                out.append(f"{label}: {shown(have[key])} is not in the primary configuration")
            elif redact.is_secret(name, secret):
                out.append(f"{label}: the saved value differs from the primary's (secret: values not shown)")
            else:
                out.append(f"{label}: saved {shown(have[key])}, primary implies {shown(want[key])}")
    return out

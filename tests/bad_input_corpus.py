"""The bad-input corpus: plans, events and command lines an operator or an upstream system gets wrong, each with
the message fragment it must produce. ``tests/test_bad_input_corpus.py`` runs them.

Plans are written as a user writes them (YAML text: the reference plan with one thing wrong), so the cases
that only YAML text can have (a key given twice, a tab, ``yes`` for true, a null document) are here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from tests.conftest import REFERENCE

TEXT = REFERENCE.read_text()


@dataclass(frozen=True)
class BadPlan:
    id: str
    content: bytes
    fragment: str  # in the problem line the CLI prints, after "<file>: "


# The environment's DR network (the canary network lists the same subnets further down).
ENV_NET = "vpc_id: vpc-0d1a2b3c4d5e6f701\n      "


def _edit(old: str, new: str) -> bytes:
    assert TEXT.count(old) == 1, old
    return TEXT.replace(old, new).encode()


def _mutate(change: Callable[[dict[str, Any]], Any]) -> bytes:
    data = yaml.safe_load(TEXT)
    change(data)
    return yaml.safe_dump(data, sort_keys=False).encode()


def _db(data: dict[str, Any]) -> dict[str, Any]:
    return data["databases"][0]


def _env(data: dict[str, Any]) -> dict[str, Any]:
    return data["environments"][0]


BAD_PLANS = [
    # What YAML text alone can get wrong.
    BadPlan("duplicate_top_level_key", _edit("name: shop\n", "name: shop\nname: other\n"),
            "(yaml): line 4, column 1: duplicate key 'name' (first given at line 3"),
    BadPlan("duplicate_nested_key", _edit("  rpo_minutes: 5\n", "  rpo_minutes: 5\n  rto_minutes: 30\n"),
            "duplicate key 'rto_minutes' (first given at line 7"),
    BadPlan("duplicate_key_in_a_list_item",
            _edit("    engine: postgres\n", "    engine: postgres\n    engine: mysql\n"), "duplicate key 'engine'"),
    BadPlan("null_document", b"~\n", "(plan): the document is null (~), expected a mapping of plan fields"),
    BadPlan("empty_file", b"", "(plan): the file is empty"),
    BadPlan("only_comments", b"# a plan, one day\n\n", "(plan): the file is empty"),
    BadPlan("top_level_list", b"- name: shop\n", "(plan): expected a mapping of fields at the top level, got"),
    BadPlan("top_level_string", b"shop\n", "got 'shop' (a string)"),
    BadPlan("top_level_number", b"42\n", "got 42 (a number)"),
    BadPlan("two_documents", TEXT.encode() + b"---\nname: other\n", "(a plan file is one document)"),
    BadPlan("tab_indentation", _edit("  rto_minutes: 15\n", "\trto_minutes: 15\n"), "(yaml): line 7"),
    BadPlan("unclosed_flow_list",
            _edit("security_groups: [sg-0d1a2b3c4d5e6f731]", "security_groups: [sg-0d1a2b3c4d5e6f731"), "(yaml): line"),
    BadPlan("unhashable_key", b"? [a, b]\n: 1\n", "found unhashable key"),
    BadPlan("nested_too_deeply", b"[" * 3000 + b"]" * 3000, "nested too deeply"),
    BadPlan("not_utf8", b"name: \xff\xfe shop\n", "(file): cannot be read"),
    BadPlan("python_object_tag", _edit("name: shop\n", "name: !!python/object/apply:os.system [id]\n"),
            "could not determine a constructor for the tag"),
    BadPlan("undefined_alias", _edit("name: shop\n", "name: *shop\n"), "found undefined alias 'shop'"),
    # Strict types: nothing is coerced into a number, a flag or a string.
    BadPlan("rto_true", _edit("rto_minutes: 15", "rto_minutes: true"),
            "objectives.rto_minutes: expected a whole number, got true (a boolean)"),
    BadPlan("rto_yes", _edit("rto_minutes: 15", "rto_minutes: yes"),
            "objectives.rto_minutes: expected a whole number, got true (a boolean)"),
    BadPlan("rto_quoted_number", _edit("rto_minutes: 15", "rto_minutes: '15'"),
            "objectives.rto_minutes: expected a whole number, got '15' (a string)"),
    BadPlan("rto_fraction", _edit("rto_minutes: 15", "rto_minutes: 15.5"),
            "objectives.rto_minutes: expected a whole number, got 15.5 (a number)"),
    BadPlan("rpo_null", _edit("rpo_minutes: 5", "rpo_minutes: ~"),
            "objectives.rpo_minutes: expected a whole number, got ~ (null)"),
    BadPlan("ttl_false", _edit("ttl: 60", "ttl: false"), "dns.ttl: expected a whole number, got false (a boolean)"),
    BadPlan("interval_float", _edit("min_interval_minutes: 60", "min_interval_minutes: 60.0"),
            "triggers.min_interval_minutes: expected a whole number, got 60.0 (a number)"),
    BadPlan("retention_true", _edit("retention: 3", "retention: true"), "ami.retention: expected a whole number"),
    BadPlan("max_age_with_unit", _edit("max_age_hours: 24", "max_age_hours: 24h"),
            "ami.max_age_hours: expected a whole number, got '24h' (a string)"),
    BadPlan("flag_quoted", _edit("multi_az_on_failover: true", "multi_az_on_failover: 'true'"),
            "databases[0].multi_az_on_failover: expected true or false, got 'true' (a string)"),
    BadPlan("flag_number", _edit("replicate_delete_markers: true", "replicate_delete_markers: 1"),
            "buckets[1].replicate_delete_markers: expected true or false, got 1 (a number)"),
    BadPlan("name_number", _edit("name: shop\n", "name: 123\n"), "name: expected a string, got 123 (a number)"),
    BadPlan("name_date", _edit("name: shop\n", "name: 2024-01-01\n"),
            "name: expected a string, got 2024-01-01 (a date)"),
    BadPlan("alarm_name_number", _edit("- name: shop-prod-5xx-high", "- name: 500"),
            "triggers.alarms[0].name: expected a string, got 500 (a number)"),
    BadPlan("subnets_not_a_list", _edit(f"{ENV_NET}subnets: [subnet-0d1a2b3c4d5e6f711, subnet-0d1a2b3c4d5e6f712]",
                                        f"{ENV_NET}subnets: subnet-0d1a2b3c4d5e6f711"),
            "environments[0].dr_network.subnets: expected a list, got 'subnet-0d1a2b3c4d5e6f711' (a string)"),
    BadPlan("objectives_a_list", _mutate(lambda d: d.update(objectives=[15, 5])),
            "objectives: expected a mapping of fields, got [15, 5] (a list)"),
    BadPlan("databases_a_mapping", _mutate(lambda d: d.update(databases=_db(d))), "databases: expected a list"),
    # Values and the rules between fields.
    BadPlan("unknown_region", _edit("dr_region: us-west-2", "dr_region: us-westt-2"),
            "dr_region: 'us-westt-2' is not an AWS region name"),
    BadPlan("same_region_twice", _edit("dr_region: us-west-2", "dr_region: us-east-1"),
            "dr_region: must differ from primary_region (us-east-1)"),
    BadPlan("unknown_top_level_field", _mutate(lambda d: d.update(regions=["us-east-1"])),
            "regions: unknown field (not part of the plan schema; check the spelling)"),
    BadPlan("misspelled_nested_field", _mutate(lambda d: _db(d).update(replica_clas="db.t3.medium")),
            "databases[0].replica_clas: unknown field"),
    BadPlan("missing_objectives", _mutate(lambda d: d.pop("objectives")), "objectives: required field is missing"),
    BadPlan("missing_name", _mutate(lambda d: d.pop("name")), "name: required field is missing"),
    BadPlan("missing_dr_network", _mutate(lambda d: _db(d).pop("dr_network")),
            "databases[0].dr_network: required field is missing: the DR replica's DB subnet group"),
    BadPlan("name_upper_case", _edit("name: shop\n", "name: Shop\n"), "name: 'Shop' does not match"),
    BadPlan("instance_class_without_db_prefix", _edit("failover_instance_class: db.r6g.large",
                                                      "failover_instance_class: r6g.large"),
            "databases[0].failover_instance_class: 'r6g.large' does not match"),
    BadPlan("unknown_engine", _edit("engine: postgres", "engine: oracle"), "databases[0].engine: "),
    BadPlan("unknown_database_kind", _mutate(lambda d: _db(d).update(kind="oracle")),
            "databases[0]: kind must be rds or aurora-global"),
    BadPlan("encrypted_without_dr_key", _mutate(lambda d: _db(d).update(storage_encrypted=True)),
            "databases[0].dr_kms_key_id: required when storage_encrypted is true"),
    BadPlan("dr_key_in_the_primary_region", _mutate(lambda d: _db(d).update(
        storage_encrypted=True, dr_kms_key_id="arn:aws:kms:us-east-1:123456789012:key/abc")),
        "databases[0].dr_kms_key_id: the key must be in the DR region us-west-2"),
    BadPlan("encrypted_volumes_without_key", _mutate(lambda d: _env(d).update(encrypted_volumes=True)),
            "ami.dr_kms_key_id: required because environments[0] (shop-prod) has encrypted_volumes"),
    BadPlan("replica_id_used_twice", _mutate(lambda d: d["databases"].append(dict(_db(d), identifier="other-db"))),
            "databases[1].dr_replica_identifier: 'shop-db-dr' is used twice"),
    BadPlan("environment_listed_twice", _mutate(lambda d: d["environments"].append(dict(_env(d)))),
            "environments[1].name: 'shop-prod' is used twice"),
    BadPlan("bucket_replicates_to_itself", _mutate(lambda d: d["buckets"][0].update(destination="shop-assets-use1")),
            "buckets[0].destination: must differ from source"),
    BadPlan("bad_subnet_id", _edit(f"{ENV_NET}subnets: [subnet-0d1a2b3c4d5e6f711,", f"{ENV_NET}subnets: [subnet-xyz,"),
            "environments[0].dr_network.subnets[0]: 'subnet-xyz' does not match"),
    BadPlan("subnet_listed_twice", _edit(f"{ENV_NET}subnets: [subnet-0d1a2b3c4d5e6f711, subnet-0d1a2b3c4d5e6f712",
                                         f"{ENV_NET}subnets: [subnet-0d1a2b3c4d5e6f711, subnet-0d1a2b3c4d5e6f711"),
            "environments[0].dr_network.subnets: listed more than once: subnet-0d1a2b3c4d5e6f711"),
    BadPlan("bad_vpc_id", _edit("vpc_id: vpc-0d1a2b3c4d5e6f701", "vpc_id: vpc-1"),
            "environments[0].dr_network.vpc_id: 'vpc-1' does not match"),
    BadPlan("bad_security_group", _edit("security_groups: [sg-0d1a2b3c4d5e6f741]", "security_groups: [default]"),
            "databases[0].dr_network.security_groups[0]: 'default' does not match"),
    BadPlan("default_subnet_group", _edit("subnet_group: shop-db-dr", "subnet_group: default"),
            "databases[0].dr_network.subnet_group: 'default' is RDS's own subnet group"),
    BadPlan("az2_in_another_region", _edit("availability_zone: us-east-1b", "availability_zone: us-west-2b"),
            "databases[0].az2_replica.availability_zone: must be a zone of the primary region us-east-1"),
    BadPlan("rto_too_long", _edit("rto_minutes: 15", "rto_minutes: 2000"),
            "objectives.rto_minutes: Input should be less than or equal to 1440"),
    BadPlan("rto_zero", _edit("rto_minutes: 15", "rto_minutes: 0"),
            "objectives.rto_minutes: Input should be greater than or equal to 1"),
    BadPlan("negative_ttl", _edit("ttl: 60", "ttl: -5"), "dns.ttl: Input should be greater than or equal to 0"),
    BadPlan("unknown_cutover", _edit("cutover: records", "cutover: magic"), "dns.cutover: "),
    BadPlan("bad_hosted_zone", _edit("hosted_zone_id: Z0PILOTLIGHTSHOP", "hosted_zone_id: zone-1"),
            "dns.hosted_zone_id: 'zone-1' does not match"),
    BadPlan("dns_names_an_unknown_environment", _mutate(lambda d: d["dns"].update(environment="nope-env")),
            "dns.environment: 'nope-env' is not one of the plan's environments"),
    BadPlan("alarm_in_a_third_region", _edit("      region: us-east-1\n", "      region: eu-west-1\n"),
            "triggers.alarms[1].region: must be the primary region, the DR region or us-east-1"),
    BadPlan("unknown_trigger_mode", _edit("failover: approval", "failover: sometimes"), "triggers.failover: "),
    BadPlan("bad_schedule", _edit("readiness: rate(30 minutes)", "readiness: every 30 minutes"),
            "schedules.readiness: 'every 30 minutes' does not match"),
    BadPlan("nothing_to_protect", _mutate(lambda d: [d.pop(k) for k in ("environments", "databases", "buckets",
                                                                       "dns")]),
            "environments: the plan names no environment, database, table or bucket"),
]


@dataclass(frozen=True)
class BadEvent:
    """An event a handler receives (``module.handler(event)``), the named error it must raise and its message."""

    id: str
    module: str
    event: Any
    error: str
    fragment: str
    env: dict[str, str] | None = None  # the function's environment (the widget's)


_ARN = "arn:aws:states:us-west-2:123456789012"
_GUARD = {"action": "check", "state_machine_arn": f"{_ARN}:stateMachine:pilotlight-shop-failover",
          "execution_arn": f"{_ARN}:execution:pilotlight-shop-failover:x",
          "alarms": [{"name": "shop-prod-5xx-high", "region": "us-east-1"}], "min_interval_minutes": 60,
          "trigger": {"source": "pilotlight failover"}, "region": "us-west-2", "plan": "shop"}
_WIDGET_ENV = {"PILOTLIGHT_PLAN": "shop", "PILOTLIGHT_REGION": "us-west-2",
               "PILOTLIGHT_DRILL_MACHINE_ARN": f"{_ARN}:stateMachine:pilotlight-shop-drill",
               "PILOTLIGHT_TEARDOWN_MACHINE_ARN": f"{_ARN}:stateMachine:pilotlight-shop-drill-teardown",
               "PILOTLIGHT_FAILOVER_MACHINE_ARN": f"{_ARN}:stateMachine:pilotlight-shop-failover"}


def _without(event: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != key}


BAD_EVENTS = [
    BadEvent("event_not_an_object", "rds", "promote", "InvalidInput", "rds: the event must be a JSON object"),
    BadEvent("event_without_action", "rds", {"region": "us-west-2"}, "InvalidInput", "rds: unknown action None"),
    BadEvent("unknown_action", "rds", {"action": "drop_database"}, "InvalidInput", "unknown action 'drop_database'"),
    BadEvent("action_not_a_string", "dns", {"action": ["upsert_record"]}, "InvalidInput", "unknown action"),
    BadEvent("missing_field", "rds", {"action": "promote_replica", "region": "us-west-2"}, "InvalidInput",
             "rds.promote_replica: missing identifier"),
    BadEvent("extra_field", "rds", {"action": "promote_replica", "region": "us-west-2", "identifier": "shop-db-dr",
                                    "force": True}, "InvalidInput", "rds.promote_replica: unknown force"),
    BadEvent("region_null", "rds", {"action": "promote_replica", "region": None, "identifier": "shop-db-dr"},
             "InvalidInput", "region must be a string, got null"),
    BadEvent("number_as_string", "dns", {"action": "upsert_record", "zone_id": "Z1", "name": "a.example.com",
                                         "record_type": "CNAME", "ttl": "60", "value": "b.example.com"},
             "InvalidInput", "ttl must be a whole number, got a string"),
    BadEvent("flag_as_number", "rds", {"action": "promote_replica", "region": "us-west-2", "identifier": "x",
                                       "backup_retention_days": True}, "InvalidInput",
             "backup_retention_days must be a whole number, got a boolean"),
    BadEvent("execution_input_an_array", "guard", {**_GUARD, "trigger": ["alarm"]}, "InvalidInput",
             "guard.check: trigger must be an object, got an array"),
    BadEvent("execution_input_a_string", "guard", {**_GUARD, "trigger": "go"}, "InvalidInput",
             "trigger must be an object, got a string"),
    BadEvent("execution_without_trigger", "guard", _without(_GUARD, "trigger"), "InvalidInput",
             "guard.check: missing trigger"),
    BadEvent("alarms_an_object", "guard", {**_GUARD, "alarms": {"name": "x"}}, "InvalidInput",
             "alarms must be an array, got an object"),
    BadEvent("interval_as_text", "guard", {**_GUARD, "min_interval_minutes": "60"}, "InvalidInput",
             "min_interval_minutes must be a whole number, got a string"),
    BadEvent("verify_environments_an_object", "verify", {"action": "verify_service", "region": "us-west-2",
                                                         "environments": {"application": "shop"}}, "InvalidInput",
             "environments must be an array or null, got an object"),
    BadEvent("change_id_a_number", "dns", {"action": "check_change", "change_id": 7}, "InvalidInput",
             "change_id must be a string or null, got a number"),
    BadEvent("launch_without_plan", "beanstalk", {"action": "launch_environment", "region": "us-west-2",
                                                  "application": "shop", "environment": "shop-prod",
                                                  "dr_environment": "shop-dr", "cname_prefix": "shop-dr"},
             "InvalidInput", "beanstalk.launch_environment: missing plan"),
    BadEvent("widget_event_not_an_object", "widget", [1, 2], "InvalidInput", "widget: the event must be a JSON object",
             env=_WIDGET_ENV),
    BadEvent("widget_without_its_plan", "widget", {}, "Misconfigured", "PILOTLIGHT_PLAN is not set",
             env={k: v for k, v in _WIDGET_ENV.items() if k != "PILOTLIGHT_PLAN"}),
    BadEvent("widget_garbled_machine_arn", "widget", {}, "Misconfigured",
             "PILOTLIGHT_DRILL_MACHINE_ARN='pilotlight-shop-drill' is not",
             env={**_WIDGET_ENV, "PILOTLIGHT_DRILL_MACHINE_ARN": "pilotlight-shop-drill"}),
    BadEvent("widget_garbled_region", "widget", {}, "Misconfigured", "PILOTLIGHT_REGION='US West' is not",
             env={**_WIDGET_ENV, "PILOTLIGHT_REGION": "US West"}),
]


@dataclass(frozen=True)
class BadCommand:
    """A command line with a mistake in it: its exit code and message (the plan argument is the reference)."""

    id: str
    args: list[str]
    exit_code: int
    fragment: str


BAD_COMMANDS = [
    BadCommand("unknown_failover_mode", ["failover", "{plan}", "--mode", "bogus"], 2, "Invalid value for '--mode'"),
    BadCommand("mode_without_aurora", ["failover", "{plan}", "--sandbox", "--mode", "graceful"], 2,
               "plan shop has none"),
    BadCommand("negative_pace", ["failover", "{plan}", "--sandbox", "--pace", "-1"], 2, "Invalid value for '--pace'"),
    BadCommand("not_a_drill_id", ["drill-cleanup", "{plan}", "--drill", "xyz"], 2, "'xyz' is not a drill id"),
    BadCommand("plan_and_example", ["demo", "--plan", "{plan}", "--example", "reference"], 2,
               "give --plan or --example, not both"),
    BadCommand("history_of_none", ["history", "{plan}", "--last", "0"], 2, "Invalid value for '--last'"),
    BadCommand("missing_plan_argument", ["readiness"], 2, "Missing argument 'PLAN'"),
    BadCommand("plan_is_a_directory", ["validate", "{dir}"], 3, "(file): is a directory, not a plan file"),
    BadCommand("plan_does_not_exist", ["failover", "{dir}/nope.yaml"], 3, "(file): no such file"),
]

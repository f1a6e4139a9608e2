"""`pilotlight validate`: exit 0 on a good plan; exit 3 naming the field on a bad one, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cli import cli
from tests.conftest import REFERENCE, ROOT


def _reference() -> dict:
    return yaml.safe_load(REFERENCE.read_text())


def _write(tmp_path: Path, data, name="plan.yaml") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def _validate(path: str, *extra: str):
    return CliRunner().invoke(cli, ["validate", path, *extra])


def test_reference_plan_is_valid():
    result = _validate(str(REFERENCE))
    assert result.exit_code == 0, result.output
    assert "valid plan 'shop'" in result.output


def _mutate(fn):
    data = _reference()
    fn(data)
    return data


MALFORMED = {
    "bad_region": (lambda d: d.update(dr_region="us-westt-2"), "dr_region: 'us-westt-2' is not an AWS region name"),
    "same_region_twice": (lambda d: d.update(dr_region="us-east-1"), "dr_region: must differ from primary_region"),
    "unknown_field": (lambda d: d["databases"][0].update(replica_clas="db.t3.medium"),
                      "databases[0].replica_clas: unknown field"),
    "wrong_type": (lambda d: d["objectives"].update(rto_minutes="fast"), "objectives.rto_minutes: "),
    "missing_required_part": (lambda d: d.pop("objectives"), "objectives: required field is missing"),
    "bad_instance_class": (lambda d: d["databases"][0].update(failover_instance_class="r6g.large"),
                           "databases[0].failover_instance_class: 'r6g.large' does not match"),
    "encrypted_without_dr_key": (lambda d: d["databases"][0].update(storage_encrypted=True),
                                 "databases[0].dr_kms_key_id: required when storage_encrypted is true"),
    "encrypted_volumes_without_dr_key": (lambda d: d["environments"][0].update(encrypted_volumes=True),
                                         "ami.dr_kms_key_id: required because environments[0] (shop-prod) has "
                                         "encrypted_volumes"),
    "dr_key_in_wrong_region": (
        lambda d: d["databases"][0].update(storage_encrypted=True,
                                           dr_kms_key_id="arn:aws:kms:us-east-1:123456789012:key/abc"),
        "databases[0].dr_kms_key_id: the key must be in the DR region us-west-2"),
    "duplicate_replica_id": (lambda d: d["databases"].append(dict(d["databases"][0], identifier="other-db")),
                             "databases[1].dr_replica_identifier: 'shop-db-dr' is used twice"),
    "bad_subnet_id": (lambda d: d["environments"][0]["dr_network"].update(subnets=["subnet-xyz"]),
                      "environments[0].dr_network.subnets[0]: 'subnet-xyz' does not match"),
    "dns_unknown_environment": (lambda d: d["dns"].update(environment="nope-env"),
                                "dns.environment: 'nope-env' is not one of the plan's environments"),
    "negative_ttl": (lambda d: d["dns"].update(ttl=-5), "dns.ttl: Input should be greater than or equal to 0"),
    "bad_cutover_mode": (lambda d: d["dns"].update(cutover="magic"), "dns.cutover: "),
    "alarm_in_records_mode": (lambda d: d["dns"].update(health_check_alarm="x"),
                              "dns.health_check_alarm: only used with cutover: health_check"),
    "location_in_records_mode": (lambda d: d["dns"].update(primary_location={"country_code": "US"}),
                                 "dns.primary_location: only used with routing: geolocation (routing is failover)"),
    "endpoint_check_on_a_simple_record": (
        lambda d: d["dns"].update(endpoint_check={"path": "/health"}),
        "dns.endpoint_check: records mode with routing: failover has one simple record"),
    "endpoint_check_bad_path": (
        lambda d: d["dns"].update(cutover="health_check", endpoint_check={"path": "health"}),
        "dns.endpoint_check.path: "),
    "endpoint_check_bad_interval": (
        lambda d: d["dns"].update(cutover="health_check", endpoint_check={"request_interval": 20}),
        "dns.endpoint_check.request_interval: "),
    "geolocation_without_location": (lambda d: d["dns"].update(cutover="health_check", routing="geolocation"),
                                     "dns.primary_location: required with routing: geolocation"),
    "geolocation_with_both_codes": (
        lambda d: d["dns"].update(cutover="health_check", routing="geolocation",
                                  primary_location={"continent_code": "NA", "country_code": "US"}),
        "dns.primary_location: give exactly one of continent_code and country_code"),
    "location_with_failover_routing": (
        lambda d: d["dns"].update(cutover="health_check", primary_location={"country_code": "US"}),
        "dns.primary_location: only used with routing: geolocation (routing is failover)"),
    "bad_continent_code": (
        lambda d: d["dns"].update(cutover="health_check", routing="geolocation",
                                  primary_location={"continent_code": "XX"}),
        "dns.primary_location.continent_code: "),
    "bad_country_code": (
        lambda d: d["dns"].update(cutover="health_check", routing="geolocation",
                                  primary_location={"country_code": "usa"}),
        "dns.primary_location.country_code: 'usa' does not match"),
    "bad_routing": (lambda d: d["dns"].update(cutover="health_check", routing="multivalue"), "dns.routing: "),
    "az2_in_other_region": (lambda d: d["databases"][0]["az2_replica"].update(availability_zone="us-west-2b"),
                            "databases[0].az2_replica.availability_zone: must be a zone of the primary region"),
    "bad_schedule": (lambda d: d["schedules"].update(readiness="every 5 minutes"), "schedules.readiness: "),
    "canary_network_bad_subnet": (lambda d: d["canary_network"].update(subnets=["subnet-xyz"]),
                                  "canary_network.subnets[0]: 'subnet-xyz' does not match"),
    "canary_network_without_security_group": (lambda d: d["canary_network"].update(security_groups=[]),
                                              "canary_network.security_groups: "),
    "canary_network_too_many_security_groups": (
        lambda d: d["canary_network"].update(security_groups=[f"sg-0d1a2b3c4d5e6f75{i}" for i in range(6)]),
        "canary_network.security_groups: "),
    "canary_network_subnet_twice": (
        lambda d: d["canary_network"].update(subnets=["subnet-0d1a2b3c4d5e6f711", "subnet-0d1a2b3c4d5e6f711"]),
        "canary_network.subnets: listed more than once: subnet-0d1a2b3c4d5e6f711"),
    "canary_network_without_rds": (lambda d: d.pop("databases"),
                                   "canary_network: the plan has no RDS database"),
    "nothing_to_protect": (lambda d: [d.pop(k) for k in ("environments", "databases", "buckets", "dns")],
                           "environments: the plan names no environment, database, table or bucket"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_plan_exits_3_with_the_field_path(tmp_path, case):
    mutate, expected = MALFORMED[case]
    result = _validate(_write(tmp_path, _mutate(mutate)))
    assert result.exit_code == 3, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: shop\nprimary_region: [us-east-1\n", "(yaml): line 3, column 1"),
        ("", "(plan): the file is empty"),
        ("- just\n- a list\n", "(plan): expected a mapping of fields at the top level, got ['just', 'a list'] "
                                 "(a list)"),
        ("name: shop\n\tdr_region: x\n", "(yaml): line 2"),
    ],
    ids=["yaml_syntax_error", "empty_file", "not_a_mapping", "tab_indent"],
)
def test_unparseable_files_exit_3_without_traceback(tmp_path, content, expected):
    result = _validate(_write(tmp_path, content))
    assert result.exit_code == 3
    assert expected in result.output
    assert "Traceback" not in result.output


def test_missing_file_exits_3(tmp_path):
    result = _validate(str(tmp_path / "nope.yaml"))
    assert result.exit_code == 3
    assert "(file): no such file" in result.output


def test_directory_instead_of_file_exits_3(tmp_path):
    result = _validate(str(tmp_path))
    assert result.exit_code == 3
    assert "is a directory" in result.output


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    data = _reference()
    data["databases"][0]["failover_instance_class"] = "big"
    data["dns"]["ttl"] = "sixty"
    data["surprise"] = 1
    result = _validate(_write(tmp_path, data))
    assert result.exit_code == 3
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 3
    assert {line.split(": ")[1] for line in lines} == {"databases[0].failover_instance_class", "dns.ttl", "surprise"}


def test_validate_json_lists_problems(tmp_path):
    result = _validate(_write(tmp_path, _mutate(lambda d: d.update(dr_region="us-east-1"))), "--json")
    assert result.exit_code == 3
    doc = json.loads(result.stdout)  # the problems are on stderr too, one line each
    assert doc["valid"] is False
    assert doc["problems"] == ["dr_region: must differ from primary_region (us-east-1)"]
    assert doc["error"]["code"] == "InvalidPlan" and doc["error"]["exit"] == 3


def test_health_check_example_is_valid_and_names_its_alarm():
    from workflows.plan import load_plan

    example = REFERENCE.parent / "health-check.yaml"
    result = _validate(str(example))
    assert result.exit_code == 0, result.output
    plan = load_plan(example)
    assert plan.dns.cutover == "health_check" and plan.dns.routing == "failover"
    assert plan.health_check_alarm == "pilotlight-shop-primary-health"
    assert plan.dns_primary_target == "shop-prod.us-east-1.elasticbeanstalk.com"
    assert load_plan(REFERENCE).health_check_alarm is None  # records mode has no alarm


def test_a_dumped_plan_reads_back():
    from workflows.plan import load_plan, parse_plan

    for name in ("reference.yaml", "health-check.yaml"):
        plan = load_plan(REFERENCE.parent / name)
        assert parse_plan(plan.model_dump()) == plan
        assert parse_plan(plan.model_dump(exclude_none=True)) == plan


@pytest.mark.parametrize(
    ("dns", "alarm"),
    [
        ({"routing": "latency"}, "pilotlight-shop-primary-health"),
        ({"routing": "geolocation", "primary_location": {"continent_code": "NA"}}, "pilotlight-shop-primary-health"),
        ({"routing": "geolocation", "primary_location": {"country_code": "US"}, "health_check_alarm": "shop-up"},
         "shop-up"),
    ],
    ids=["latency", "geolocation_continent", "geolocation_country_own_alarm"],
)
def test_health_check_routing_settings_are_accepted(tmp_path, dns, alarm):
    from workflows.plan import load_plan

    path = _write(tmp_path, _mutate(lambda d: d["dns"].update(cutover="health_check", **dns)))
    result = _validate(path)
    assert result.exit_code == 0, result.output
    assert load_plan(path).health_check_alarm == alarm


def test_schema_is_json_schema_of_the_plan():
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "pilotlight plan"
    assert {"name", "primary_region", "dr_region", "objectives"} <= set(schema["required"])
    assert schema["additionalProperties"] is False
    dns = schema["$defs"]["Dns"]["properties"]
    assert set(dns["routing"]["enum"]) == {"failover", "latency", "geolocation", "weighted"}
    assert {"primary_location", "health_check_alarm"} <= set(dns)


def test_compute_topology_and_weights_are_checked_with_their_paths():
    import yaml

    from workflows.plan import PlanError, parse_plan

    doc = yaml.safe_load((ROOT / "examples" / "bookstore.yaml").read_text())
    group = doc["compute"][0]
    group["failover_capacity"] = {"instances": 4, "percent_of_primary": 100}
    group["max_size"] = 1
    doc["compute"].append({**group, "failover_capacity": {"instances": 2}, "max_size": None})  # same names
    doc["dns"]["weights"] = {"primary": 50, "dr": 50}  # routing is failover
    with pytest.raises(PlanError) as err:
        parse_plan(doc)
    problems = "\n".join(err.value.problems)
    assert "compute[0].failover_capacity: give exactly one of instances and percent_of_primary" in problems
    assert "compute[0].max_size: 1 is below the capacity the group must reach (4)" in problems
    assert "compute[1].name: 'bookstore-use1' is used twice" in problems
    assert "compute[1].dr_group_name: 'bookstore-usw2' is used twice" in problems
    assert "dns.weights: only used with routing: weighted (routing is failover)" in problems
    pilot = yaml.safe_load((ROOT / "examples" / "bookstore.yaml").read_text())
    pilot["topology"] = "pilot-light"
    with pytest.raises(PlanError) as err:
        parse_plan(pilot)
    assert any(p.startswith("compute[0].pilot_size: a pilot light runs no instance") for p in err.value.problems)
    warm = yaml.safe_load((ROOT / "examples" / "bookstore.yaml").read_text())
    warm["topology"], warm["compute"][0]["pilot_size"] = "warm-standby", 0
    with pytest.raises(PlanError) as err:
        parse_plan(warm)
    assert any(p.startswith("compute[0].pilot_size: topology warm-standby keeps instances running") for p in
               err.value.problems)

"""The CloudFormation template lints clean and states what DESIGN.md §5-7 promise."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]  # no types-PyYAML in dev deps
from cfnlint.api import ManualArgs, lint_file

from a2i_worker.ledger import dynamodb_table as ledger_table

from .cfn import TEMPLATE, load_template
from .dockerfile import read_dockerfile

REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1"]
A2I_DETAIL_TYPE = "SageMaker A2I HumanLoop Status Change"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]  # type: ignore[no-any-return]


def _props(resources: dict[str, Any], name: str) -> dict[str, Any]:
    return resources[name]["Properties"]  # type: ignore[no-any-return]


def _container(resources: dict[str, Any], name: str = "a2i-worker") -> dict[str, Any]:
    definitions = _props(resources, "TaskDefinition")["ContainerDefinitions"]
    for item in definitions:
        # The collector sidecar is an Fn::If [HasCollector, <definition>, AWS::NoValue].
        found = item["Fn::If"][1] if "Fn::If" in item else item
        if found["Name"] == name:
            return found  # type: ignore[no-any-return]
    raise AssertionError(f"no container {name}")


def test_cfn_lint_reports_nothing() -> None:
    matches = lint_file(TEMPLATE, ManualArgs(regions=REGIONS))
    assert [f"{m.rule.id} {m.linenumber}: {m.message}" for m in matches] == []


def test_cfn_lint_does_catch_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        TEMPLATE.read_text().replace("PointInTimeRecoveryEnabled: true", "PitrOn: true")
    )
    matches = lint_file(broken, ManualArgs(regions=REGIONS))
    assert any(m.rule.id.startswith("E") for m in matches)


@pytest.mark.parametrize(
    ("queue", "dlq"),
    [
        ("RequestsQueue", "RequestsDeadLetterQueue"),
        ("EventsQueue", "EventsDeadLetterQueue"),
        ("ResultsQueue", "ResultsDeadLetterQueue"),
    ],
)
def test_every_queue_redrives_to_its_own_dlq(
    resources: dict[str, Any], queue: str, dlq: str
) -> None:
    redrive = _props(resources, queue)["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert _props(resources, dlq)["MessageRetentionPeriod"] == 1209600
    for name in (queue, dlq):
        assert _props(resources, name)["SqsManagedSseEnabled"] is True


def test_rule_matches_a2i_status_changes_and_targets_events_queue(
    resources: dict[str, Any],
) -> None:
    rule = _props(resources, "HumanLoopStatusRule")
    assert rule["EventPattern"]["source"] == ["aws.sagemaker"]
    assert rule["EventPattern"]["detail-type"] == [A2I_DETAIL_TYPE]
    assert rule["EventPattern"]["detail"]["flowDefinitionArn"] == {"Ref": "FlowDefinitionArns"}
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}


def test_events_queue_policy_admits_only_the_rule(resources: dict[str, Any]) -> None:
    policy = _props(resources, "EventsQueuePolicy")
    assert {"Ref": "EventsQueue"} in policy["Queues"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["HumanLoopStatusRule", "Arn"]}}
    }


def test_ledger_table_key_design_ttl_pitr_sse(resources: dict[str, Any]) -> None:
    table = resources["LedgerTable"]
    assert table["DeletionPolicy"] == "Retain"
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "request_id", "KeyType": "HASH"}]
    attributes = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    assert attributes["request_id"] == "S"
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    assert indexes["by_loop"]["KeySchema"] == [{"AttributeName": "loop_name", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True


def test_ledger_table_is_the_schema_the_dynamodb_ledger_expects(
    resources: dict[str, Any],
) -> None:
    props = _props(resources, "LedgerTable")
    expected = ledger_table.TABLE_DEFINITION

    def by_name(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return {item[key]: item for item in items}

    assert props["BillingMode"] == expected["BillingMode"]
    assert props["KeySchema"] == expected["KeySchema"]
    assert by_name(props["AttributeDefinitions"], "AttributeName") == by_name(
        expected["AttributeDefinitions"], "AttributeName"
    )
    assert by_name(props["GlobalSecondaryIndexes"], "IndexName") == by_name(
        expected["GlobalSecondaryIndexes"], "IndexName"
    )
    assert props["TimeToLiveSpecification"]["AttributeName"] == ledger_table.TTL_ATTRIBUTE


def test_stop_timeout_exceeds_every_allowed_shutdown_grace(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    grace = template["Parameters"]["ShutdownGraceSeconds"]
    container = _container(resources)
    assert container["StopTimeout"] <= 120  # Fargate's maximum
    assert container["StopTimeout"] >= int(grace["MaxValue"]) + 15
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["A2I_WORKER_SHUTDOWN_GRACE_SECONDS"] == {"Ref": "ShutdownGraceSeconds"}
    assert container["LinuxParameters"]["InitProcessEnabled"] is True


def test_container_health_check_is_the_image_health_check(
    resources: dict[str, Any], repo: Path
) -> None:
    image_check = read_dockerfile(repo / "Dockerfile").final.last("HEALTHCHECK")
    assert image_check is not None
    exec_form = image_check.raw[image_check.raw.index("CMD") + 3 :].strip()
    container = _container(resources)
    command = container["HealthCheck"]["Command"]
    assert command == ["CMD", *json.loads(exec_form)]
    assert command[1:] == ["python", "-m", "a2i_worker.probe", "livez"]


def test_the_health_port_is_one_parameter(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    port = {"Ref": "HealthPort"}
    assert template["Parameters"]["HealthPort"]["Default"] == 8080
    container = _container(resources)
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["A2I_WORKER_HEALTH_PORT"] == port
    assert {"ContainerPort": port, "Protocol": "tcp", "Name": "health"} in container["PortMappings"]
    ingress = _props(resources, "MetricsScrapeIngress")
    assert (ingress["FromPort"], ingress["ToPort"]) == (port, port)
    scrape = _container(resources, "metrics-collector")["Environment"][0]["Value"]["Fn::Sub"]
    assert '"127.0.0.1:${HealthPort}"' in scrape
    assert "8080" not in json.dumps(container)


def test_no_fixed_desired_count_beside_auto_scaling(resources: dict[str, Any]) -> None:
    assert "DesiredCount" not in _props(resources, "Service")
    target = _props(resources, "ScalableTarget")
    assert target["MinCapacity"] == {"Ref": "MinTasks"}
    assert target["MaxCapacity"] == {"Ref": "MaxTasks"}


def test_metrics_collector_sidecar_scrapes_metrics_into_cloudwatch(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    (sidecar,) = [
        c for c in _props(resources, "TaskDefinition")["ContainerDefinitions"] if "Fn::If" in c
    ]
    condition, definition, otherwise = sidecar["Fn::If"]
    assert condition == "HasCollector"
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert definition["Essential"] is False, "a collector failure must not stop the worker"
    assert definition["Image"] == {"Ref": "CollectorImage"}
    assert template["Parameters"]["CollectorImage"]["Default"].startswith(
        "public.ecr.aws/aws-observability/aws-otel-collector:v"
    )
    (config_var,) = definition["Environment"]
    assert config_var["Name"] == "AOT_CONFIG_CONTENT"
    config = yaml.safe_load(config_var["Value"]["Fn::Sub"])
    assert config["service"]["pipelines"]["metrics"]["receivers"] == ["prometheus"]
    assert config["service"]["pipelines"]["metrics"]["exporters"] == ["awsemf"]
    emf = config["exporters"]["awsemf"]
    assert emf["namespace"] == "${MetricsNamespace}"
    assert emf["log_group_name"] == "${MetricsLogGroup}"
    # The metrics the runbook alarms on are among those exported.
    selectors = [s for d in emf["metric_declarations"] for s in d["metric_name_selectors"]]
    for metric in (
        "a2i_worker_requests_total",
        "a2i_worker_rejections_total",
        "a2i_worker_queue_lag_seconds",
        "a2i_worker_quota_gate_open",
        "a2i_worker_dependency_errors_total",
        "a2i_worker_throttles_total",
    ):
        assert any(re.fullmatch(s, metric) for s in selectors), metric
    assert resources["MetricsLogGroup"]["Condition"] == "HasCollector"


def test_a_prometheus_server_may_be_let_in_on_the_health_port_only(
    resources: dict[str, Any],
) -> None:
    assert "SecurityGroupIngress" not in _props(resources, "TaskSecurityGroup")
    ingress = resources["MetricsScrapeIngress"]
    assert ingress["Condition"] == "HasScraper"
    assert ingress["Properties"]["SourceSecurityGroupId"] == {
        "Ref": "MetricsScraperSecurityGroupId"
    }
    assert "CidrIp" not in ingress["Properties"]


def test_container_runs_non_root_read_only(resources: dict[str, Any]) -> None:
    container = _container(resources)
    uid, _, gid = container["User"].partition(":")
    assert int(uid) > 0
    assert int(gid) > 0
    assert container["ReadonlyRootFilesystem"] is True
    mounted = {m["ContainerPath"] for m in container["MountPoints"]}
    assert {"/tmp", "/var/lib/a2i-worker"} <= mounted
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_scaling_tracks_backlog_per_running_task(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    target = _props(resources, "ScalableTarget")
    assert target["ScalableDimension"] == "ecs:service:DesiredCount"
    assert int(template["Parameters"]["MinTasks"]["MinValue"]) >= 1  # no division by zero
    policy = _props(resources, "BacklogPerTaskScalingPolicy")
    assert policy["PolicyType"] == "TargetTrackingScaling"
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    metrics = {m["Id"]: m for m in config["CustomizedMetricSpecification"]["Metrics"]}
    returned = [m for m in metrics.values() if m["ReturnData"]]
    assert returned == [metrics["e1"]]
    # Visible + in flight, per task: what KEDA counts with scaleOnInFlight.
    assert metrics["e1"]["Expression"].replace(" ", "") == "(m1+m3)/m2"
    for metric_id, name in [
        ("m1", "ApproximateNumberOfMessagesVisible"),
        ("m3", "ApproximateNumberOfMessagesNotVisible"),
    ]:
        backlog = metrics[metric_id]["MetricStat"]["Metric"]
        assert (backlog["Namespace"], backlog["MetricName"]) == ("AWS/SQS", name)
        assert backlog["Dimensions"] == [
            {"Name": "QueueName", "Value": {"Fn::GetAtt": ["RequestsQueue", "QueueName"]}}
        ]
    tasks = metrics["m2"]["MetricStat"]["Metric"]
    assert (tasks["Namespace"], tasks["MetricName"]) == (
        "ECS/ContainerInsights",
        "RunningTaskCount",
    )
    settings = _props(resources, "Cluster")["ClusterSettings"]
    assert {"Name": "containerInsights", "Value": "enabled"} in settings

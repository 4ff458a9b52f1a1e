"""AwsExecutor against a moto server over HTTP (``python -m moto.server``), IAM enforcement on.

Set-up runs with moto's auth off: an IAM user ``sentinel`` whose only right is
``sts:AssumeRole`` on one role, an ``admin`` user for the test's own checks, the role
(trust policy naming the ``sentinel`` user; permissions for the two actions and the
inventory reads), two EC2 instances and an ECS service. Then ``/moto-api/reset-auth 0``
makes moto check every request's signature and IAM policies.

What moto enforces: request signatures, the caller's identity policies (action level; for
EC2 and ECS it checks against resource ``*``, so ARN-scoped role policies cannot be
exercised here) and the role's trust policy on AssumeRole. What it does not: session
policies (it stores the ``Policy`` of AssumeRole and ignores it) and DurationSeconds
bounds. So the tests check the session policy document Sentinel sends names exactly one
action and one ARN, and that the result (the audit record) carries it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import httpx
import pytest

from sentinel.core.redact import redact
from sentinel.executors.aws import AwsExecutor, AwsSettings, session_name
from sentinel.policy.facts import Inventory
from tests.conftest import free_port, need, port_open, wait_for

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
ROLE_NAME = "sentinel-actions"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"


@dataclass
class World:
    """The moto server and what the set-up created in it."""

    url: str
    sentinel_keys: tuple[str, str]
    admin_keys: tuple[str, str]
    instance_ids: list[str]
    cluster: str
    service: str

    def session(self, keys: tuple[str, str]) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=keys[0], aws_secret_access_key=keys[1], region_name=REGION
        )

    def admin(self, service: str) -> Any:
        return self.session(self.admin_keys).client(service, endpoint_url=self.url)


def _moto_importable() -> bool:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    need(_moto_importable(), "moto[server] (the dev dependency group)")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: port_open("127.0.0.1", port), timeout=30, what="moto server")
        yield _build_world(url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _build_world(url: str, log: Path) -> World:
    boot = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    iam = boot.client("iam", endpoint_url=url)
    iam.create_user(UserName="sentinel")
    iam.put_user_policy(
        UserName="sentinel",
        PolicyName="assume-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ROLE_ARN}
                ],
            }
        ),
    )
    k = iam.create_access_key(UserName="sentinel")["AccessKey"]
    sentinel_keys = (k["AccessKeyId"], k["SecretAccessKey"])
    iam.create_user(UserName="admin")
    iam.put_user_policy(
        UserName="admin",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    k = iam.create_access_key(UserName="admin")["AccessKey"]
    admin_keys = (k["AccessKeyId"], k["SecretAccessKey"])
    iam.create_role(
        RoleName=ROLE_NAME,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/sentinel"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    iam.put_role_policy(
        RoleName=ROLE_NAME,
        PolicyName="sentinel-actions",
        # Resource "*" only because moto checks EC2/ECS calls against "*" (see docstring);
        # docs/ssh-aws.md gives the ARN-scoped policy for real accounts.
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": [
                            "ec2:RebootInstances",
                            "ec2:DescribeInstances",
                            "ecs:UpdateService",
                            "ecs:DescribeServices",
                            "ecs:ListClusters",
                            "ecs:ListServices",
                        ],
                        "Resource": "*",
                    }
                ],
            }
        ),
    )
    ec2 = boot.client("ec2", endpoint_url=url)
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    run = ec2.run_instances(
        ImageId=ami,
        MinCount=2,
        MaxCount=2,
        InstanceType="t3.micro",
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "service", "Value": "checkout"}],
            }
        ],
    )
    instance_ids = [i["InstanceId"] for i in run["Instances"]]
    ecs = boot.client("ecs", endpoint_url=url)
    ecs.create_cluster(clusterName="prod")
    ecs.register_task_definition(
        family="checkout",
        containerDefinitions=[{"name": "app", "image": "nginx", "memory": 128}],
    )
    ecs.create_service(
        cluster="prod",
        serviceName="checkout",
        taskDefinition="checkout",
        desiredCount=1,
        tags=[{"key": "service", "value": "checkout"}],
    )
    # From here on moto checks signatures and IAM policies on every request.
    httpx.post(f"{url}/moto-api/reset-auth", content=b"0", timeout=10).raise_for_status()
    return World(
        url=url,
        sentinel_keys=sentinel_keys,
        admin_keys=admin_keys,
        instance_ids=instance_ids,
        cluster="prod",
        service="checkout",
    )


def make_executor(world: World, **kw: Any) -> AwsExecutor:
    settings = AwsSettings(role_arn=ROLE_ARN, region=REGION, endpoint_url=world.url)
    return AwsExecutor(settings, session=world.session(world.sentinel_keys), **kw)


def reboot(instance_id: str) -> dict[str, Any]:
    return {
        "action_id": "reboot_ec2_instance",
        "params": {"instance_id": instance_id},
        "target": f"ec2:{instance_id}",
    }


def force(cluster: str, service: str) -> dict[str, Any]:
    return {
        "action_id": "ecs_force_new_deployment",
        "params": {"cluster": cluster, "service": service},
        "target": f"ecs:{cluster}/service/{service}",
    }


INCIDENT = "5f1c2a9e-0b7d-4c1e-9a3f-2d4b6c8e0a1f"
KEY = f"{INCIDENT}:remediate:execute"


def assert_one_action_one_arn(result: dict[str, Any], action: str, arn: str) -> None:
    policy = result["session_policy"]
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "SentinelJustInTime", "Effect": "Allow", "Action": [action], "Resource": [arn]}
        ],
    }
    assert json.loads(result["session_policy_json"]) == policy
    assert len(result["session_policy_json"]) <= 2048
    assert result["jit"]["scope"]["actions"] == [action]
    assert result["jit"]["scope"]["resources"] == [arn]


def assert_no_secrets(result: dict[str, Any], world: World) -> None:
    text = json.dumps(result)
    for word in ("SecretAccessKey", "SessionToken", "AccessKeyId", world.sentinel_keys[1]):
        assert word not in text
    # The audit log's redactor leaves the record whole: the session's scope stays visible.
    assert redact(result) == result


def test_the_standing_identity_can_only_assume_the_role(world: World) -> None:
    ec2 = world.session(world.sentinel_keys).client("ec2", endpoint_url=world.url)
    with pytest.raises(botocore.exceptions.ClientError) as err:
        ec2.reboot_instances(InstanceIds=[world.instance_ids[0]])
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_reboot_of_an_existing_instance_under_a_scoped_session(world: World) -> None:
    ex = make_executor(world)
    iid = world.instance_ids[0]
    r = ex.execute(reboot(iid), KEY)
    assert r["ok"] is True, r
    arn = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{iid}"
    assert r["resource_arn"] == arn and r["api"] == "ec2:RebootInstances"
    assert r["request"] == {"InstanceIds": [iid]}
    assert_one_action_one_arn(r, "ec2:RebootInstances", arn)
    assert r["session_name"] == f"sentinel-{INCIDENT}"
    assert (
        r["assumed_role_arn"]
        == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/sentinel-{INCIDENT}"
    )
    assert r["session_duration_seconds"] == 900
    assert r["jit"]["mechanism"] == "sts_assume_role"
    assert r["jit"]["identity"] == r["assumed_role_arn"]
    assert r["http_status"] == 200 and r["may_have_run"] is True
    assert_no_secrets(r, world)
    state = world.admin("ec2").describe_instances(InstanceIds=[iid])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"
    # A reboot leaves nothing to prove it from: reconcile cannot tell.
    assert ex.reconcile(reboot(iid), KEY) is None


def test_reboot_of_a_missing_instance_is_refused(world: World) -> None:
    ex = make_executor(world)
    r = ex.execute(reboot("i-0123456789abcdef0"), KEY)
    assert r["ok"] is False and r["may_have_run"] is False, r
    assert r["rejected_by_aws"] is True
    assert r["error_code"] == "InvalidInstanceID.NotFound"
    assert r["stage"] == "call"
    # The scoped session was still minted, and its scope is in the record.
    assert_one_action_one_arn(
        r, "ec2:RebootInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"
    )
    # A malformed id never reaches AWS.
    bad = ex.execute(reboot("i-nothex; rm -rf"), KEY)
    assert bad["refused"] is True and "session_policy" not in bad


def test_ecs_force_new_deployment_and_reconcile(world: World) -> None:
    ecs = world.admin("ecs")
    before = ecs.describe_services(cluster=world.cluster, services=[world.service])
    old_ids = {d["id"] for d in before["services"][0]["deployments"]}
    intent_at = datetime.now(UTC) - timedelta(seconds=1)
    ex = make_executor(world, intent_started_at=lambda key: intent_at if key == KEY else None)
    r = ex.execute(force(world.cluster, world.service), KEY)
    assert r["ok"] is True, r
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{world.cluster}/{world.service}"
    assert_one_action_one_arn(r, "ecs:UpdateService", arn)
    assert r["request"] == {
        "cluster": world.cluster,
        "service": world.service,
        "forceNewDeployment": True,
    }
    assert r["deployment"]["id"] not in old_ids
    assert_no_secrets(r, world)
    after = ecs.describe_services(cluster=world.cluster, services=[world.service])
    assert r["deployment"]["id"] in {d["id"] for d in after["services"][0]["deployments"]}

    seen = ex.reconcile(force(world.cluster, world.service), KEY)
    assert seen is not None and seen["ok"] is True and seen["reconciled"] is True
    assert seen["deployment"]["id"] == r["deployment"]["id"]
    assert_one_action_one_arn(seen, "ecs:DescribeServices", arn)
    # No deployment after the intent: cannot tell.
    later = make_executor(
        world, intent_started_at=lambda key: datetime.now(UTC) + timedelta(hours=1)
    )
    assert later.reconcile(force(world.cluster, world.service), KEY) is None
    # A service that does not exist is refused by AWS, and nothing ran.
    missing = ex.execute(force(world.cluster, "no-such-service"), KEY)
    assert missing["ok"] is False and missing["may_have_run"] is False, missing


def test_inventory_reads_instances_and_services(world: World) -> None:
    inv = make_executor(world).inventory()
    assert inv["errors"] == []
    assert inv["read_as"].startswith(f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/")
    ids = {i["instance_id"] for i in inv["ec2_instances"]}
    assert set(world.instance_ids) <= ids
    web = next(i for i in inv["ec2_instances"] if i["instance_id"] == world.instance_ids[0])
    assert web["name"] == "web" and web["service"] == "checkout"
    assert {
        "cluster": "prod",
        "name": "checkout",
        "tags": {"service": "checkout"},
        "service": "checkout",
    } in inv["ecs_services"]
    facts = Inventory.model_validate(
        {"ec2_instances": inv["ec2_instances"], "ecs_services": inv["ecs_services"]}
    )
    assert facts.ec2_instance(world.instance_ids[0]) is not None
    assert facts.ecs_service("prod", "checkout") is not None
    assert facts.ec2_instance("i-0123456789abcdef0") is None


def test_failures_are_results_not_exceptions(world: World) -> None:
    wrong = AwsExecutor(
        AwsSettings(role_arn=f"arn:aws:iam::{ACCOUNT}:role/not-trusted", endpoint_url=world.url),
        session=world.session(world.sentinel_keys),
    )
    r = wrong.execute(reboot(world.instance_ids[1]), KEY)
    assert r["ok"] is False and r["stage"] == "assume_role" and r["may_have_run"] is False, r
    assert "AccessDenied" in r["error"]
    assert wrong.inventory()["errors"]
    ex = make_executor(world)
    assert ex.execute({"action_id": "scale_deployment", "params": {}}, KEY)["refused"] is True
    assert ex.execute("not a dict", KEY)["refused"] is True  # type: ignore[arg-type]


def test_session_name_carries_the_incident_id_within_sts_limits() -> None:
    assert session_name("sentinel", KEY) == f"sentinel-{INCIDENT}"
    odd = session_name("sentinel", "inc #42/ünïcode:remediate:execute")
    assert odd == "sentinel-inc-42-n-code"
    long = session_name("sentinel", "x" * 200 + ":remediate")
    assert len(long) == 64 and long.startswith("sentinel-xxx")

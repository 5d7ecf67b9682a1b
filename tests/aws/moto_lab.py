#!/usr/bin/env python3
"""Sets up and inspects a moto EC2 world for fip-claim's tests, with boto3 (moto's own
client library), so what the test asserts never comes from hakit's code.

  moto_lab.py setup URL [N]      -> JSON: instances, ENIs, N route tables (default 2) whose
                                    default route targets the primary, EIP, IAM keys
  moto_lab.py state URL ALLOC    -> JSON: EIP holder, each table's default route target,
                                    source/dest check of every instance
  moto_lab.py steal URL ALLOC I  -> associate the EIP with instance I (a third owner)
  moto_lab.py steal-eni URL ALLOC -> associate the EIP with a fresh ENI attached to nothing
  moto_lab.py auth URL [N]       -> switch moto's signature checking on after N free requests
                                    (default 0: every request)
  moto_lab.py role URL           -> JSON: role "hakit-fip" (ec2:* only) and a user "base"
                                    whose keys may only assume it (sts:AssumeRole, no ec2)
"""
import json
import sys
import urllib.request

import boto3

SETUP_KEYS = dict(aws_access_key_id="setup", aws_secret_access_key="setup")


def clients(url):
    # Once signature checking is on, only the IAM user's key is valid (MOTO_KEY/MOTO_SECRET).
    import os
    keys = SETUP_KEYS
    if os.environ.get("MOTO_KEY"):
        keys = dict(aws_access_key_id=os.environ["MOTO_KEY"], aws_secret_access_key=os.environ["MOTO_SECRET"])
    kw = dict(endpoint_url=url, region_name="us-east-1", **keys)
    return boto3.client("ec2", **kw), boto3.client("iam", **kw)


def setup(url, count="2"):
    ec2, iam = clients(url)
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="198.51.100.0/24")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="198.51.100.0/25")["Subnet"]["SubnetId"]
    inst = ec2.run_instances(ImageId=ami, MinCount=3, MaxCount=3, SubnetId=subnet)["Instances"]
    ids = [i["InstanceId"] for i in inst]
    enis = [i["NetworkInterfaces"][0]["NetworkInterfaceId"] for i in inst]
    tables = []
    for _ in range(int(count)):
        rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", InstanceId=ids[0])
        tables.append(rt)
    # IPv6 egress through the primary too, in the first table.
    ec2.create_route(RouteTableId=tables[0], DestinationIpv6CidrBlock="::/0", InstanceId=ids[0])
    # An unrelated NAT instance (the third) with its own table: never this pair's to take.
    unrelated = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=unrelated, DestinationCidrBlock="0.0.0.0/0", InstanceId=ids[2])
    eip = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=ids[0])
    iam.create_user(UserName="fip")
    key = iam.create_access_key(UserName="fip")["AccessKey"]
    iam.put_user_policy(
        UserName="fip",
        PolicyName="fip-claim",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}
        ),
    )
    print(json.dumps({
        "primary": ids[0], "secondary": ids[1], "third": ids[2],
        "primary_eni": enis[0], "secondary_eni": enis[1],
        "tables": tables, "unrelated_table": unrelated, "subnet": subnet,
        "ip": eip["PublicIp"], "allocation": eip["AllocationId"],
        "key": key["AccessKeyId"], "secret": key["SecretAccessKey"],
    }))


def state(url, alloc):
    ec2, _ = clients(url)
    addr = ec2.describe_addresses(AllocationIds=[alloc])["Addresses"][0]
    routes, routes6 = {}, {}
    for rt in ec2.describe_route_tables()["RouteTables"]:
        for r in rt["Routes"]:
            if r.get("DestinationCidrBlock") == "0.0.0.0/0":
                routes[rt["RouteTableId"]] = r.get("NetworkInterfaceId") or r.get("InstanceId")
            if r.get("DestinationIpv6CidrBlock") == "::/0":
                routes6[rt["RouteTableId"]] = r.get("NetworkInterfaceId") or r.get("InstanceId")
    checks = {}
    for res in ec2.describe_instances()["Reservations"]:
        for i in res["Instances"]:
            a = ec2.describe_instance_attribute(InstanceId=i["InstanceId"], Attribute="sourceDestCheck")
            checks[i["InstanceId"]] = a["SourceDestCheck"]["Value"]
    print(json.dumps({
        "instance": addr.get("InstanceId"), "eni": addr.get("NetworkInterfaceId"),
        "routes": routes, "routes6": routes6, "source_dest_check": checks,
    }))


def steal(url, alloc, instance):
    ec2, _ = clients(url)
    ec2.associate_address(AllocationId=alloc, InstanceId=instance, AllowReassociation=True)


def steal_eni(url, alloc, subnet):
    ec2, _ = clients(url)
    eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    ec2.associate_address(AllocationId=alloc, NetworkInterfaceId=eni, AllowReassociation=True)
    print(json.dumps({"eni": eni}))


def role(url):
    _, iam = clients(url)
    iam.create_user(UserName="base")
    user = iam.get_user(UserName="base")["User"]["Arn"]
    key = iam.create_access_key(UserName="base")["AccessKey"]
    iam.put_user_policy(UserName="base", PolicyName="assume", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": user}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/example"},
         "Action": "sts:AssumeRoleWithWebIdentity"}]}
    arn = iam.create_role(RoleName="hakit-fip", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName="hakit-fip", PolicyName="fip-claim", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}))
    print(json.dumps({"role_arn": arn, "base_key": key["AccessKeyId"], "base_secret": key["SecretAccessKey"]}))


def auth(url, free="0"):
    req = urllib.request.Request(url + "/moto-api/reset-auth", data=free.encode(), headers={"Content-Type": "text/plain"}, method="POST")
    urllib.request.urlopen(req).read()


if __name__ == "__main__":
    cmd, url, *rest = sys.argv[1:]
    {"setup": setup, "state": state, "steal": steal, "steal-eni": steal_eni, "auth": auth, "role": role}[cmd](url, *rest)

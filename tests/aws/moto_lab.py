#!/usr/bin/env python3
"""Sets up and inspects a moto EC2 world for fip-claim's tests, with boto3 (moto's own
client library), so what the test asserts never comes from hakit's code.

  moto_lab.py setup URL [N]      -> JSON: instances, ENIs, N route tables (default 2) whose
                                    default route targets the primary, EIP, IAM keys
  moto_lab.py setup3 URL [EIP [SHARED]] -> JSON: the AWS example's layout: two instances, each with a
                                    WAN (device 0), a LAN and a sync ENI; the private table's
                                    default route targets the primary's LAN ENI, the EIP its WAN ENI
  moto_lab.py enis URL           -> JSON: every ENI's source/dest check
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


def setup3(url, address=None, shared=None):
    ec2, iam = clients(url)
    ami = ec2.describe_images()["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="198.51.100.0/24")["Vpc"]["VpcId"]
    sub = {name: ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
           for name, cidr in [("lan", "198.51.100.0/26"), ("wan", "198.51.100.64/26"), ("sync", "198.51.100.128/26")]}
    out = {}
    for role, host in [("primary", 10), ("secondary", 11)]:
        inst = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, NetworkInterfaces=[
            {"DeviceIndex": 0, "SubnetId": sub["wan"], "PrivateIpAddress": f"198.51.100.{64 + host}"}])["Instances"][0]
        out[role] = inst["InstanceId"]
        out[role + "_wan_eni"] = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
        out[role + "_wan_mac"] = inst["NetworkInterfaces"][0]["MacAddress"]
        out[role + "_wan_ip"] = f"198.51.100.{64 + host}"
        for i, (name, base) in enumerate([("lan", 0), ("sync", 128)], start=1):
            nic = ec2.create_network_interface(SubnetId=sub[name], PrivateIpAddress=f"198.51.100.{base + host}")["NetworkInterface"]
            eni = nic["NetworkInterfaceId"]
            ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=inst["InstanceId"], DeviceIndex=i)
            out[f"{role}_{name}_eni"] = eni
            out[f"{role}_{name}_mac"] = nic["MacAddress"]
            out[f"{role}_{name}_ip"] = f"198.51.100.{base + host}"
    rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", NetworkInterfaceId=out["primary_lan_eni"])
    ec2.associate_route_table(RouteTableId=rt, SubnetId=sub["lan"])
    eip = ec2.allocate_address(Domain="vpc", **({"Address": address} if address else {}))
    # With SHARED: a secondary private IP of the primary's WAN ENI carries the EIP.
    extra = {}
    if shared:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=out["primary_wan_eni"], PrivateIpAddresses=[shared])
        extra = {"PrivateIpAddress": shared}
    ec2.associate_address(AllocationId=eip["AllocationId"], NetworkInterfaceId=out["primary_wan_eni"], **extra)
    key = iam.create_access_key(UserName=iam.create_user(UserName="fip")["User"]["UserName"])["AccessKey"]
    iam.put_user_policy(UserName="fip", PolicyName="fip-claim", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}))
    out.update({"tables": [rt], "ip": eip["PublicIp"], "allocation": eip["AllocationId"],
                "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]})
    print(json.dumps(out))


def enis(url):
    ec2, _ = clients(url)
    print(json.dumps({n["NetworkInterfaceId"]: {"check": n["SourceDestCheck"], "ips": [a["PrivateIpAddress"] for a in n["PrivateIpAddresses"]]}
                      for n in ec2.describe_network_interfaces()["NetworkInterfaces"]}))


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
        "instance": addr.get("InstanceId"), "eni": addr.get("NetworkInterfaceId"), "private_ip": addr.get("PrivateIpAddress"),
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
    {"setup": setup, "setup3": setup3, "enis": enis, "state": state, "steal": steal, "steal-eni": steal_eni, "auth": auth, "role": role}[cmd](url, *rest)

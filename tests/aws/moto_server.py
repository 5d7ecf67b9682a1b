#!/usr/bin/env python3
"""moto's EC2 server with the two semantics of a secondary private IP that moto 5.2 leaves
out, as AWS documents them (checked against moto 5.2.1's source; everything else is moto's):

1. AssociateAddress with PrivateIpAddress maps the Elastic IP to that private IPv4 of the
   ENI ("PrivateIpAddress: The primary or secondary private IP address to associate with the
   Elastic IP address. If no private IP address is specified, the Elastic IP address is
   associated with the primary private IP address": EC2 API Reference, AssociateAddress).
   moto records the ENI only and always answers its primary address.
2. AssignPrivateIpAddresses with AllowReassignment moves an address another ENI holds
   ("Indicates whether to allow an IP address that is already assigned to another network
   interface or instance to be reassigned to the specified network interface": EC2 API
   Reference, AssignPrivateIpAddresses), and the address keeps its Elastic IP association
   ("If you reassign a secondary private IPv4 address ... its Elastic IP address remains
   associated with it": EC2 UG, MultipleIP.md). Without AllowReassignment an address in use
   is refused (PrivateIpAddressInUse). moto adds the address to the new ENI and leaves it on
   the old one.

Usage: moto_server.py -H HOST -p PORT (as moto_server).
"""
import sys

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import elastic_ip_addresses as eips
from moto.ec2.models import elastic_network_interfaces as enis
from moto.ec2.responses import elastic_ip_addresses as eip_responses
from moto.ec2.responses import elastic_network_interfaces as eni_responses


def _private_ip(self):
    if not self.eni:
        return None
    return getattr(self, "_hakit_private_ip", None) or self.eni.private_ip_address


eips.ElasticAddress.private_ip_address = property(_private_ip)

_associate = eip_responses.ElasticIPAddresses.associate_address


def associate_address(self):
    want = self._get_param("PrivateIpAddress")
    eni_id = self._get_param("NetworkInterfaceId")
    if want and eni_id:
        held = [a["PrivateIpAddress"] for a in self.ec2_backend.get_network_interface(eni_id).private_ip_addresses]
        if want not in held:
            raise EC2ClientError("InvalidParameterValue", f"{want} is not a private IP address of {eni_id}")
    result = _associate(self)
    alloc = self._get_param("AllocationId")
    if alloc:
        self.ec2_backend.address_by_allocation([alloc])[0]._hakit_private_ip = want
    return result


eip_responses.ElasticIPAddresses.associate_address = associate_address

_assign = eni_responses.ElasticNetworkInterfaces.assign_private_ip_addresses


def assign_private_ip_addresses(self):
    eni_id = self._get_param("NetworkInterfaceId")
    wanted = self._get_param("PrivateIpAddresses", []) or []
    allow = str(self._get_param("AllowReassignment", False)).lower() == "true"
    backend = self.ec2_backend
    for other in backend.get_all_network_interfaces():
        if other.id == eni_id:
            continue
        for ip in wanted:
            held = [a for a in other.private_ip_addresses if a["PrivateIpAddress"] == ip]
            if not held:
                continue
            if held[0].get("Primary") or not allow:
                raise EC2ClientError("PrivateIpAddressInUse", f"{ip} is assigned to {other.id}")
            other.private_ip_addresses.remove(held[0])
            for eip in backend.addresses:
                if eip.eni is other and getattr(eip, "_hakit_private_ip", None) == ip:
                    eip.eni = backend.get_network_interface(eni_id)
    return _assign(self)


eni_responses.ElasticNetworkInterfaces.assign_private_ip_addresses = assign_private_ip_addresses

if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])

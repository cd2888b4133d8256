"""WAFv2 IP sets: addresses as networks, the never-block check, and edits under a LockToken.

UpdateIPSet replaces the whole address list and must carry the LockToken of the read it is
based on; when someone else changed the set in between, WAF answers WAFOptimisticLockException
and nothing changed, so the edit is read again and re-applied, a bounded number of times.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from remediator.actions.aws.common import Refused
from remediator.aws.clients import AwsCallError, AwsCalls
from remediator.model import FailureReason
from remediator.settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IP_SET_ARN = re.compile(
    r"^arn:aws[a-z-]*:wafv2:(?P<region>[a-z0-9-]+):[0-9]{12}:(?P<scope>regional|global)/ipset/"
    r"(?P<name>[A-Za-z0-9_-]{1,128})/(?P<id>[A-Za-z0-9-]{1,128})$")
# The widest range `allow_prefix` may block: a /24 of IPv4, a /48 of IPv6 (one site).
WIDEST_PREFIX = {4: 24, 6: 48}


def to_network(value: object) -> Network:
    """An address or CIDR as a network: a bare address is a /32 or /128, host bits must be zero,
    and an IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes the IPv4 address it is."""
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        net: Network = value
    elif isinstance(value, str):
        net = ipaddress.ip_network(value.strip(), strict=True)
    else:
        raise ValueError("an IP address or CIDR")
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
        if net.prefixlen < 96:
            raise ValueError(f"{net} mixes IPv4-mapped and other IPv6 addresses")
        net = ipaddress.IPv4Network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}")
    return net


def waf_form(net: Network) -> str:
    """How an address is written into an IP set (IPv6 in full, as the WAF documentation shows it)."""
    return net.exploded if net.version == 6 else net.compressed


def never_block(settings: Settings, action_type: str) -> list[Network]:
    """The ranges no block may touch: `aws.waf.never_block` plus protected CIDRs for this action."""
    ranges: list[Network] = list(settings.aws.waf.never_block)
    for protected in settings.guardrails.protected:
        if not fnmatchcase(action_type, protected.action):
            continue
        for target in protected.targets:
            try:
                ranges.append(ipaddress.ip_network(target, strict=False))
            except ValueError:
                continue  # a name glob, not a range
    return ranges


def allow_listed(net: Network, ranges: Sequence[Network]) -> Network | None:
    """The first never-block range `net` overlaps (a /24 holding one allowed address counts)."""
    for allowed in ranges:
        if allowed.version == net.version and net.overlaps(allowed):
            return allowed
    return None


@dataclass(frozen=True, slots=True)
class IpSetRef:
    """An IP set named by its ARN: what GetIPSet/UpdateIPSet need, and the region to call."""

    arn: str
    name: str
    id: str
    scope: str  # REGIONAL | CLOUDFRONT
    region: str

    @classmethod
    def from_arn(cls, arn: str) -> IpSetRef:
        found = IP_SET_ARN.match(arn)
        if found is None:
            raise ValueError(f"{arn!r} is not a WAFv2 IP set ARN")
        scope = "CLOUDFRONT" if found["scope"] == "global" else "REGIONAL"
        region = "us-east-1" if scope == "CLOUDFRONT" else found["region"]  # CloudFront sets live there
        return cls(arn, found["name"], found["id"], scope, region)

    def key(self) -> dict[str, str]:
        return {"Name": self.name, "Scope": self.scope, "Id": self.id}


@dataclass(frozen=True, slots=True)
class IpSetState:
    addresses: list[str]
    lock_token: str
    version: int  # 4 or 6
    description: str

    def holds(self, net: Network) -> bool:
        return any(_parsed(a) == net for a in self.addresses)


def _parsed(address: str) -> Network | None:
    try:
        return to_network(address)
    except ValueError:
        return None


async def read_ip_set(calls: AwsCalls, ref: IpSetRef) -> IpSetState:
    answer = await calls.call("wafv2", "GetIPSet", ref.key(), region=ref.region)
    ip_set = answer["IPSet"]
    return IpSetState(list(ip_set.get("Addresses", [])), str(answer["LockToken"]),
                      6 if ip_set.get("IPAddressVersion") == "IPV6" else 4, str(ip_set.get("Description") or ""))


def update_call_args(ref: IpSetRef, state: IpSetState, addresses: list[str]) -> dict[str, Any]:
    args: dict[str, Any] = {**ref.key(), "Addresses": addresses, "LockToken": state.lock_token}
    if state.description:
        args["Description"] = state.description  # omitted, UpdateIPSet would erase it
    return args


Change = Callable[[IpSetState], list[str] | None]


async def edit_ip_set(calls: AwsCalls, ref: IpSetRef, change: Change, *, retries: int,
                      never_add: Sequence[Network], first: IpSetState | None = None) -> tuple[bool, int]:
    """Apply `change` (new address list, or None: nothing to do) under the LockToken.

    Returns (changed, lock conflicts met). Every address the change would add is checked against
    `never_add` right before UpdateIPSet: the last line of defence of the never-block list.
    """
    conflicts = 0
    state = first
    for _ in range(retries + 1):
        state = state or await read_ip_set(calls, ref)
        addresses = change(state)
        if addresses is None:
            return False, conflicts
        for added in set(addresses) - set(state.addresses):
            net = _parsed(added)
            if net is None or allow_listed(net, never_add) is not None:
                raise Refused(FailureReason.PRECHECK_FAILED, f"{added} is in a never-block range: not added")
        try:
            await calls.call("wafv2", "UpdateIPSet", update_call_args(ref, state, addresses), region=ref.region)
            return True, conflicts
        except AwsCallError as err:
            if err.failure.code != "WAFOptimisticLockException":
                raise
            conflicts += 1
            state = None  # someone else changed the set: read it again
    raise Refused(FailureReason.CONFLICT, f"IP set {ref.name} kept changing under us ({conflicts} lock conflicts)",
                  retryable=True)


def without(net: Network) -> Change:
    def change(state: IpSetState) -> list[str] | None:
        kept = [a for a in state.addresses if _parsed(a) != net]
        return kept if len(kept) != len(state.addresses) else None

    return change

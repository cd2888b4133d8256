"""Protected targets: addresses and resources an action type must never touch.

A pattern that parses as an IP network protects every target network that overlaps it (so a
/32 inside a protected /8 is refused, and so is a /4 that contains it); any other pattern is a
glob on the target name.

Protection keeps remediator from restricting a target; it never keeps a restriction in place.
The expiry of remediator's own block (`lifts_own_restriction`) of an address protected since
passes, with the protection noted in its decision.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Sequence

from remediator.guardrails.base import GuardInput, lifts_own_restriction
from remediator.model import Decision, DecisionReason
from remediator.settings import ProtectedTargets

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def as_network(text: str) -> Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def protects(pattern: str, target: str) -> bool:
    """Whether one protected pattern covers a target."""
    pattern_net, target_net = as_network(pattern), as_network(target)
    if pattern_net is not None and target_net is not None:
        return pattern_net.version == target_net.version and pattern_net.overlaps(target_net)
    return fnmatch.fnmatchcase(target, pattern)


class ProtectedTargetGuard:
    name = "allowlist"

    def __init__(self, protected: Sequence[ProtectedTargets]) -> None:
        self.protected = list(protected)

    async def check(self, given: GuardInput) -> Decision | None:
        target = given.request.target
        for entry in self.protected:
            if not fnmatch.fnmatchcase(given.request.action, entry.action):
                continue
            for pattern in entry.targets:
                if protects(pattern, target):
                    why = f" ({entry.reason})" if entry.reason else ""
                    detail = f"{target} is protected by {pattern}{why}"
                    if lifts_own_restriction(given):
                        return Decision.allow(f"{detail}; let through: an expiry only lifts remediator's own "
                                              "restriction")
                    return Decision.deny(DecisionReason.PROTECTED_TARGET, detail, self.name)
        return None

"""The action extension point: protocol, context and explicit registry (DESIGN.md §2).

An action is data plus three coroutines. Its class declares:

- `type_name`   the name policies use (`ecs.force_new_deployment`);
- `Params`      a pydantic model that forbids unknown keys; values from alert labels are
                validated into these types before anything runs;
- `permissions` the IAM actions (or other privileges) it needs, for `remediator actions --iam`;
- `risk`        `high` actions are always held for approval;
- `follow_ups`  action types the daemon runs later on its behalf (their permissions are needed too);
- a docstring with a YAML example in a ```yaml fence, loaded by the contract test.

At run time the engine calls `refusal` (what the parameters and settings forbid, whatever the
live state: never-block ranges, unknown targets), `precheck` (live preconditions: reads only,
never a write), then `run` (returns an `Execution`: outcome, retryable, reason, detail — it
never raises for expected failures) and, later, `verify` (what "recovered" means). Dry-run
calls `refusal` and `precheck` exactly as enforce does, so that it records what enforce would,
then `plan_calls` instead of `run`: it describes exactly what `run` would call and calls nothing
that changes anything. Where live state cannot be read (`remediator simulate` and `test`),
`precheck` is skipped and the record says so.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from remediator.model import ActionRequest, Execution, Risk

if TYPE_CHECKING:
    import aiohttp
    import structlog

    from remediator.clock import Clock
    from remediator.settings import Settings


class ActionParams(BaseModel):
    """Base of every action's `Params`: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=ActionParams)


@dataclass(frozen=True, slots=True)
class ShownToPeople:
    """Marks a text parameter people read (a notification's title and text): when a policy
    template fills it, each value taken from the alert is put on one line without terminal
    controls (`plaintext.one_line`), so that an alert cannot add lines to the daemon's message."""


PeopleText = Annotated[str, ShownToPeople()]


def shown_to_people(params: type[ActionParams]) -> frozenset[str]:
    """The names of `params`' fields declared `PeopleText`."""
    return frozenset(name for name, info in params.model_fields.items()
                     if any(isinstance(m, ShownToPeople) for m in info.metadata))


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One call an action would make: what dry-run prints and records."""

    service: str
    operation: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "operation": self.operation, "args": dict(self.args)}


@dataclass(slots=True)
class ActionDeps:
    """Long-lived resources actions may use; opened and closed by the app's cleanup context."""

    settings: Settings
    clock: Clock
    http: aiohttp.ClientSession | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # False where AWS, databases and caches are not reached (simulate, test): prechecks are skipped.
    live_state: bool = True


class TimelineWriter(ABC):
    """Lets an action put findings (diagnostics, counts) on the incident timeline."""

    @abstractmethod
    async def note(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> None: ...


@dataclass(slots=True)
class ActionContext:
    """What one invocation of an action sees."""

    request: ActionRequest
    deps: ActionDeps
    timeline: TimelineWriter
    log: structlog.typing.FilteringBoundLogger
    dry_run: bool = False
    fencing_token: int = 0  # from the target lease; actions that write state may record it
    # Set by the engine when it calls `verify`: the run's Execution, whose detail holds what the
    # run recorded (a deployment id, the old writer) that "recovered" is judged against.
    execution: Execution | None = None

    @property
    def clock(self) -> Clock:
        return self.deps.clock


class Action(ABC, Generic[P]):
    """Base class of actions; see the module docstring for the contract."""

    type_name: ClassVar[str]
    Params: type[P]
    permissions: ClassVar[tuple[str, ...]] = ()
    risk: ClassVar[Risk] = Risk.NORMAL
    # Needs shared limits (rate limits, leases) to run: denied when coordination is unavailable.
    needs_coordination: ClassVar[bool] = True
    # Counts against the global action budget (notifications do not: they must get out).
    budgeted: ClassVar[bool] = True
    # Takes the target's lease while it runs, so no two actions work on one resource at once.
    # Notifications do not: two messages to one channel are not a conflict, and a lease would
    # turn the second into a TARGET_BUSY denial (a lost page).
    exclusive: ClassVar[bool] = True
    # Action types the daemon runs later on this one's behalf (waf.block_ip's expiry runs
    # waf.unblock_ip): a configuration that uses this action needs their permissions too.
    follow_ups: ClassVar[tuple[str, ...]] = ()
    # Only lifts a restriction (an unblock). A request for it of origin "system" is the daemon
    # ending its own restriction on schedule: it passes the kill switch and is never held.
    only_loosens: ClassVar[bool] = False
    # Changes nothing in the estate (notifications, diagnostics): never held for its severity alone.
    changes_nothing: ClassVar[bool] = False

    @abstractmethod
    def target(self, params: P) -> str:
        """The resource this request acts on: the key of cooldowns, leases and protected lists."""

    def refusal(self, params: P, ctx: ActionContext) -> str | None:
        """What forbids this request whatever the live state (settings, never-block ranges, target
        names): None when nothing does, else why. Reads nothing; runs in every mode, offline too."""
        return None

    async def precheck(self, params: P, ctx: ActionContext) -> str | None:
        """Live preconditions, read-only. Return None when the action may run, else why it must not."""
        return None

    @abstractmethod
    async def plan_calls(self, params: P, ctx: ActionContext) -> Sequence[PlannedCall]:
        """Exactly what `run` would call, with which arguments (read-only calls allowed)."""

    @abstractmethod
    async def run(self, params: P, ctx: ActionContext) -> Execution:
        """Do it. Expected failures come back as a failed Execution, never as an exception."""

    async def verify(self, params: P, ctx: ActionContext) -> bool | None:
        """Has the target recovered? None: this action has no condition of its own."""
        return None

    @classmethod
    def example_yaml(cls) -> str:
        """The YAML example in the class docstring (a ```yaml fence)."""
        found = re.search(r"```yaml\n(.*?)```", cls.__doc__ or "", re.S)
        return found.group(1) if found else ""


class ReadOnlyAction(Action[P]):
    """Base of actions that only read (diagnostics, reports, checks) and put what they saw on the
    timeline: no target lease, no share of the budget, never held for the severity alone, and they
    still run when shared limits are down (an incident is when their findings matter most)."""

    needs_coordination = False
    budgeted = False
    exclusive = False
    changes_nothing = True


AnyAction = Action[Any]


def reads_live_state(action: AnyAction) -> bool:
    """Whether the action's precheck reads live state (it has one of its own)."""
    return type(action).precheck is not Action.precheck


class ActionRegistry:
    """An explicit set of actions by type name; built by a function, never by import side effects."""

    def __init__(self, actions: Iterable[AnyAction]) -> None:
        self._by_type: dict[str, AnyAction] = {}
        for action in actions:
            if action.type_name in self._by_type:
                raise ValueError(f"action type {action.type_name!r} registered twice")
            self._by_type[action.type_name] = action

    def get(self, type_name: str) -> AnyAction | None:
        return self._by_type.get(type_name)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._by_type

    def __iter__(self) -> Iterator[AnyAction]:
        return iter(sorted(self._by_type.values(), key=lambda a: a.type_name))

    def names(self) -> list[str]:
        return sorted(self._by_type)

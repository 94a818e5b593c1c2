"""The store's operation language, defined once.

A `Plan` (engine/store/base.py) is a list of these operations over the keys
of one player. The planner emits them; every store executes them with the
same meaning (engine/store/sqlite.py op by op, engine/store/encoder.py
translates them for lua/apply.lua, whose op numbers are `code` here). `key`
indexes `Plan.keys`; op *i* leaves its result in register R[i] for later ops:

    Add(key, amount, expire_at)       INCRBY; result: new value
    Max(key, value, expire_at)        keep the larger integer; result: new value
    Distinct(key, member, expire_at)  add to a set; result: set size
    Get(key)                          integer value, 0 when missing
    Card(key)                         set size, 0 when missing
    Streak(key, period, register, minimum, freeze_max, earn_every)
                                      extend streak hash `key` for period index
                                      `period` when R[register] >= minimum;
                                      result: current length
    Claim(field, conditions, requires, unlock, extras)
                                      when R[register] >= threshold for every
                                      condition and every field in `requires` is
                                      present, set `field` in the unlocks hash if
                                      absent; on a new claim also set each extra
                                      (field, unlock or None) if absent. Every newly
                                      set field with an unlock (the unlock value,
                                      engine.unlocks.unlock_value: epoch
                                      milliseconds) is appended to the outbox and
                                      published; a field set with None is a marker
                                      (stored as ""). result: 1 when newly claimed
    Steps(register, steps)            milestone tiers: for each Step in turn,
                                      stopping at the first with R[register] <
                                      threshold, what a Claim with that one
                                      condition and no requires does; steps by
                                      rising threshold. result: steps newly claimed
    Rank(key, register, expire_at)    put the plan's player on board `key` (a sorted
                                      set) with score R[register], replacing their
                                      score there; result: 1 when they joined

`expire_at` is a Unix time in seconds (0: never) that a key gets when it
starts: `Max` and `Distinct` set it when they create the key, `Add` when the
new value equals the amount (a new key, or one that was at zero), `Rank`
when a player joins the board. Otherwise the key keeps its expiry, so a
bucket's lifetime is fixed by its first event.

Boards order players by score, highest first, and equal scores by player id
in byte order (both stores keep the score negated and sort ascending, as
ZRANGE does). Scores are integers below 2**53 (Redis keeps them as doubles).

Streak state is a hash with `last` (period index), `current`, `longest`,
`freezes`: the same period again changes nothing, an older period changes
nothing, the next period extends, a gap of g periods is bridged when
g <= freezes (consuming g), else the streak restarts at 1; a freeze is earned
whenever current is a multiple of `earn_every`, up to `freeze_max`.

Any value of an op but its key indexes and registers may be an `Arg`: the
value at that index of `Plan.args`. Ops are frozen and hashable, so plans of
one shape share one list of them (`Shape`) and a store translates it once.

Registers that no later op reads need not be computed, and reads (`Get`,
`Card`) may be deferred until a condition needs them: nothing observable
depends on it. `needed_registers`, `read_timing` and `claims_may_wait` work
that out once per shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple


@dataclass(frozen=True, slots=True)
class Arg:
    """Stands for `Plan.args[index]` as a value in an op."""

    index: int


#: A value in `Plan.args`.
Scalar = int | str
#: An integer as an op holds it.
Number = int | Arg
#: A string (an unlock field, an unlock value) as an op holds it.
Text = str | Arg


class Condition(NamedTuple):
    """Met when R[register] >= threshold."""

    register: int
    threshold: Number


class Extra(NamedTuple):
    """A field a claim also sets when newly claimed: with an unlock, or a marker (None)."""

    field: Text
    unlock: Text | None


class Step(NamedTuple):
    """One tier of a `Steps` op."""

    threshold: Number
    field: Text
    unlock: Text | None
    extras: tuple[Extra, ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    """What every op tells about itself: its name and number, and which
    registers it reads and which key it writes (the register analysis)."""

    #: The op's name, in messages.
    name: ClassVar[str]
    #: The op's number in lua/apply.lua (tests/test_store_contract.py checks the script).
    code: ClassVar[int]

    def registers(self) -> tuple[int, ...]:
        """The registers this op reads."""
        return ()

    def written(self) -> int | None:
        """The counter key this op writes, when it writes one."""
        return None


@dataclass(frozen=True, slots=True)
class Add(Operation):
    name = "add"
    code = 1
    key: int
    amount: Number
    expire_at: Number

    def written(self) -> int | None:
        return self.key


@dataclass(frozen=True, slots=True)
class Max(Operation):
    name = "max"
    code = 2
    key: int
    value: Number
    expire_at: Number

    def written(self) -> int | None:
        return self.key


@dataclass(frozen=True, slots=True)
class Distinct(Operation):
    name = "distinct"
    code = 3
    key: int
    member: Scalar | Arg
    expire_at: Number

    def written(self) -> int | None:
        return self.key


@dataclass(frozen=True, slots=True)
class Get(Operation):
    name = "get"
    code = 4
    key: int


@dataclass(frozen=True, slots=True)
class Card(Operation):
    name = "card"
    code = 5
    key: int


@dataclass(frozen=True, slots=True)
class Streak(Operation):
    name = "streak"
    code = 6
    key: int
    period: Number
    register: int
    minimum: Number
    freeze_max: Number
    earn_every: Number

    def registers(self) -> tuple[int, ...]:
        return (self.register,)


@dataclass(frozen=True, slots=True)
class Claim(Operation):
    name = "claim"
    code = 7
    field: Text
    conditions: tuple[Condition, ...] = ()
    requires: tuple[Text, ...] = ()
    unlock: Text | None = None
    extras: tuple[Extra, ...] = ()

    def registers(self) -> tuple[int, ...]:
        return tuple(condition.register for condition in self.conditions)


@dataclass(frozen=True, slots=True)
class Steps(Operation):
    name = "steps"
    code = 8
    register: int
    steps: tuple[Step, ...]

    def registers(self) -> tuple[int, ...]:
        return (self.register,)


@dataclass(frozen=True, slots=True)
class Rank(Operation):
    name = "rank"
    code = 9
    key: int
    register: int
    expire_at: Number

    def registers(self) -> tuple[int, ...]:
        return (self.register,)


Op = Add | Max | Distinct | Get | Card | Streak | Claim | Steps | Rank
#: Every op, by number.
OPS: tuple[type[Operation], ...] = (Add, Max, Distinct, Get, Card, Streak, Claim, Steps, Rank)

#: When a `Get` or `Card` is read (`read_timing`).
NEVER, WHEN_NEEDED, AT_ONCE = 0, 1, 2


def name_of(op: object) -> str:
    """An op's name for messages, also for an object that is no op at all."""
    return getattr(op, "name", type(op).__name__)


def needed_registers(ops: Sequence[Op]) -> set[int]:
    """Registers some op reads: conditions of claims and steps, streak counters, scores."""
    return {register for op in ops for register in op.registers()}


def read_timing(ops: Sequence[Op], index: int, needed: set[int]) -> int:
    """When the `Get` or `Card` at `index` must be read: NEVER (nothing needs
    it), WHEN_NEEDED, or AT_ONCE (a later op writes its key, so later is too late)."""
    if index not in needed:
        return NEVER
    read = ops[index]
    if not isinstance(read, Get | Card):
        raise TypeError(f"op {index} ({name_of(read)}) reads no key")
    if any(op.written() == read.key for op in ops[index + 1 :]):
        return AT_ONCE
    return WHEN_NEEDED


def claims_may_wait(ops: Sequence[Op], needed: set[int]) -> bool:
    """Whether every claim may be settled at the end of the plan: no op reads
    what a `Claim` or `Steps` returns."""
    return not any(
        isinstance(op, Claim | Steps) and index in needed for index, op in enumerate(ops)
    )

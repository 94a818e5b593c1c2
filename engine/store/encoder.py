"""Plans as arguments of lua/apply.lua, and the script's answer as `Applied`.

The script reads ops as numbers (`Operation.code`, engine/store/ops.py) and
each shape as words in one string, which Lua takes from one `string.byte`
call and reads in place, far cheaper than converting an argument per number.
What Lua would have to work out per plan is worked out here, once per shape
(`Shape.compiled`): which registers a later op reads, when each read is due,
and whether claims can wait for the end of the plan. The layout is in the
script's header.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal, cast

import hiredis
from redis.exceptions import ResponseError

from engine.store import ops
from engine.store.base import Applied, OutboxEntry, Plan

APPLY_LUA = resources.files("engine.store").joinpath("lua/apply.lua").read_text("utf-8")
#: The key of this encoding of a shape in `Shape.compiled`.
COMPILED = "redis"

#: An argument of a Redis command.
Argument = ops.Scalar | bytes
#: hiredis packs commands in C; its stub wrongly types the argument as a 1-tuple.
_pack_command = cast(Callable[[tuple[Argument, ...]], bytes], hiredis.pack_command)
#: What the script answers a plan with.
_Status = Literal["ok", "duplicate", "stale"]


class Refused(Exception):
    """A plan lua/apply.lua cannot take; it is not sent, and fails alone."""


@dataclass(frozen=True, slots=True)
class Compiled:
    """A shape as lua/apply.lua reads it: arguments and their RESP encoding."""

    arguments: tuple[Argument, ...]
    packed: bytes


class Chunk:
    """Plans as one EVALSHA of lua/apply.lua, and each plan's share of its reply.

    Each shape travels once per chunk, however many of its plans the chunk
    holds; a plan without a shape gets one of its own. A shape's arguments
    are flattened and packed once (`Shape.compiled`) and reused by every
    chunk after.
    """

    def __init__(self, plans: list[Plan], channel: str) -> None:
        self.channel = channel
        self.refused: dict[int, str] = {}
        self.keys: list[str] = []
        self.shapes: list[Compiled] = []
        self.tail: list[ops.Scalar] = []
        self.count = len(plans)
        numbers: dict[int, int] = {}  # id of a Shape -> its number; the plans hold them
        for index, plan in enumerate(plans):
            shape = plan.shape
            try:
                if shape is None:
                    self.shapes.append(compile_shape(plan.ops))
                    number = len(self.shapes)
                elif (number := numbers.get(id(shape), 0)) == 0:
                    compiled = shape.compiled.get(COMPILED)
                    if not isinstance(compiled, Compiled):
                        compiled = shape.compiled[COMPILED] = compile_shape(shape.ops)
                    self.shapes.append(compiled)
                    number = numbers[id(shape)] = len(self.shapes)
            except Refused as error:
                self.refused[index] = str(error)
                continue
            self.keys += plan.keys
            self.tail += (
                number,
                len(plan.keys),
                plan.player_id,
                plan.profile_version,
                plan.dedupe_ttl,
                len(plan.args),
            )
            self.tail += plan.args
        self.sent = bool(self.tail)

    def arguments(self, sha: str) -> tuple[Argument, ...]:
        """The EVALSHA command as arguments (for redis-py, which routes them by key)."""
        flat = [argument for shape in self.shapes for argument in shape.arguments]
        return (*self._head(sha), *flat, *self.tail)

    def packed(self, sha: str) -> bytes:
        """The EVALSHA command in RESP, splicing in the shapes packed beforehand."""
        head, tail = self._head(sha), tuple(self.tail)
        count = len(head) + sum(len(shape.arguments) for shape in self.shapes) + len(tail)
        return b"".join(
            [
                b"*%d\r\n" % count,
                _unframed(_pack_command(head)),
                *(shape.packed for shape in self.shapes),
                _unframed(_pack_command(tail)),
            ]
        )

    def replies(self, answer: list[str] | Exception | None) -> list[Applied | Exception]:
        """Each plan's outcome from the script's flat answer (None when nothing
        was sent), or its error: its own, or the one that refused the whole call."""
        pairs = iter(answer) if isinstance(answer, list) else None
        replies: list[Applied | Exception] = []
        for index in range(self.count):
            if index in self.refused:
                replies.append(ResponseError(self.refused[index]))
            elif pairs is None:
                replies.append(
                    answer if isinstance(answer, Exception) else ResponseError("no answer")
                )
            else:
                status, payload = next(pairs), next(pairs)
                if status == "error":
                    replies.append(ResponseError(payload))
                else:
                    replies.append(_applied(cast(_Status, status), payload))
        return replies

    def _head(self, sha: str) -> tuple[Argument, ...]:
        return ("EVALSHA", sha, len(self.keys), *self.keys, self.channel, len(self.shapes))


#: A word of a shape's body: a number as it is, or a value named by ("arg",
#: index in Plan.args) or ("constant", index in the shape's constants).
_Word = int | tuple[Literal["arg", "constant"], int]


def compile_shape(operations: Sequence[ops.Op]) -> Compiled:
    """A shape as lua/apply.lua reads it: the count of its constants, its ops as
    words in one string (see the script's header), then the constants."""
    for op in operations:
        if not isinstance(op, ops.OPS):
            raise Refused(f"unknown plan operation: {ops.name_of(op)}")
    needed = ops.needed_registers(operations)
    body: list[_Word] = []
    constants: list[ops.Scalar] = []
    numbered: dict[tuple[type, ops.Scalar], int] = {}

    def value(given: ops.Scalar | ops.Arg | None) -> None:
        if isinstance(given, ops.Arg):
            body.append(("arg", given.index))
        elif given is None:
            body.append(0)
        else:
            key = (type(given), given)
            if key not in numbered:
                numbered[key] = len(constants)
                constants.append(given)
            body.append(("constant", numbered[key]))

    def required(given: ops.Scalar | ops.Arg | None) -> None:
        if given is None:
            raise Refused("a number is missing")
        value(given)

    def extras(pairs: tuple[ops.Extra, ...]) -> None:
        body.append(len(pairs))
        for extra in pairs:
            value(extra.field)
            value(extra.unlock)

    for index, op in enumerate(operations):
        start = len(body)
        body += (op.code, 0)
        try:
            if isinstance(op, ops.Add | ops.Max):
                amount: ops.Number = op.amount if isinstance(op, ops.Add) else op.value
                body.append(op.key)
                required(amount)
                required(op.expire_at)
            elif isinstance(op, ops.Distinct):
                body.append(op.key)
                required(op.member)
                required(op.expire_at)
                body.append(int(index in needed))
            elif isinstance(op, ops.Get | ops.Card):
                body += (op.key, ops.read_timing(operations, index, needed))
            elif isinstance(op, ops.Streak):
                body.append(op.key)
                required(op.period)
                body.append(op.register)
                for given in (op.minimum, op.freeze_max, op.earn_every):
                    required(given)
            elif isinstance(op, ops.Claim):
                value(op.field)
                body.append(len(op.conditions))
                for condition in op.conditions:
                    body.append(condition.register)
                    required(condition.threshold)
                body.append(len(op.requires))
                for field in op.requires:
                    value(field)
                value(op.unlock)
                extras(op.extras)
            elif isinstance(op, ops.Rank):
                body += (op.key, op.register)
                required(op.expire_at)
            else:
                assert isinstance(op, ops.Steps)
                body += (op.register, len(op.steps))
                for step in op.steps:
                    required(step.threshold)
                    value(step.field)
                    value(step.unlock)
                    extras(step.extras)
        except (TypeError, ValueError) as error:
            raise Refused(f"malformed plan operation {op!r}: {error}") from None
        body[start + 1] = len(body) - start - 2
    named = 1 + max(
        (item[1] for item in body if isinstance(item, tuple) and item[0] == "arg"), default=-1
    )
    words = [named, int(ops.claims_may_wait(operations, needed))] + [
        item if isinstance(item, int) else item[1] + (1 if item[0] == "arg" else named + 1)
        for item in body
    ]
    try:
        width = 1 if max(words) < 256 and min(words) >= 0 else 2
        blob = bytes([width]) + struct.pack(f">{len(words)}{'BH'[width - 1]}", *words)
    except struct.error as error:
        raise Refused(f"a plan too large for Redis: {error}") from None
    arguments = (len(constants), blob, *constants)
    return Compiled(arguments, _unframed(_pack_command(arguments)))


def _unframed(packed: bytes) -> bytes:
    """A packed command without its leading `*<count>` line: its arguments alone."""
    return packed[packed.index(b"\r\n") + 2 :]


def _applied(status: _Status, payload: str) -> Applied:
    entries = [OutboxEntry(*entry) for entry in json.loads(payload)] if len(payload) > 2 else []
    return Applied(status, entries)

"""Typed GraphQL errors: every refusal carries `extensions.code`.

Codes (documented for client developers in the README):
UNAUTHENTICATED, FORBIDDEN, BAD_EVENT, EVENT_TOO_OLD, EVENT_IN_FUTURE,
BATCH_TOO_LARGE, BAD_CURSOR, BAD_PROGRAM, STORE_UNAVAILABLE, BAD_REQUEST
(bad arguments), INTERNAL (masked unexpected errors; the message is only
shown in development mode), plus GraphQL's own validation errors. Points
and redemptions add INSUFFICIENT_POINTS, OUT_OF_STOCK, LIMIT_REACHED,
TIER_REQUIRED, UNKNOWN_REWARD, IDEMPOTENCY_KEY_REUSED and BAD_POINTS;
leaderboards UNKNOWN_LEADERBOARD and BAD_LEADERBOARD.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension

from engine.errors import QuestlineError

logger = logging.getLogger("questline.graphql")


class BadRequestError(QuestlineError):
    code = "BAD_REQUEST"


def coded(error: QuestlineError) -> GraphQLError:
    """Our error as a GraphQL error, for places extensions do not reach
    (errors raised inside a subscription's stream)."""
    return GraphQLError(str(error), extensions={"code": error.code})


def typed(error: GraphQLError, development: bool) -> GraphQLError:
    """The error as a client should see it."""
    original = error.original_error
    if original is None:
        return error  # parsing and validation errors: already precise
    if isinstance(original, QuestlineError):
        code = original.code
        message = str(original)
    else:
        logger.error("unexpected error in %s", error.path, exc_info=original)
        code = "INTERNAL"
        message = str(error) if development else "internal error; it has been logged"
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={**(error.extensions or {}), "code": code},
    )


class TypedErrors(SchemaExtension):
    """Give every execution error its code, and mask unexpected ones in production."""

    development = False

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [typed(error, self.development) for error in errors]  # type: ignore[union-attr]


def typed_errors(development: bool) -> type[TypedErrors]:
    return type("TypedErrors", (TypedErrors,), {"development": development})

"""Typed GraphQL errors: every refusal carries `extensions.code` and `extensions.retryable`.

The codes of our own errors come from the one `engine.errors` tree; the
request itself adds the three codes below, for what is refused before any
resolver runs. The README lists every code a client can
get, and a test keeps that table equal to `all_codes()`.

Expected refusals (a bad argument, not enough points, a forbidden read) are
logged at INFO in one line; only INTERNAL, a bug, is logged with its
traceback, and its message is masked outside development.
"""

from __future__ import annotations

import logging

from graphql import GraphQLSyntaxError, VariableDefinitionNode
from graphql.error import GraphQLError

from engine import errors
from engine.errors import QuestlineError

logger = logging.getLogger("questline.graphql")

#: The body is not a GraphQL request: not JSON, not UTF-8, not an object, nested too deeply.
MALFORMED_REQUEST = "MALFORMED_REQUEST"
#: The document does not parse or validate (depth and token limits included).
INVALID_QUERY = "INVALID_QUERY"
#: The body is over QUESTLINE_MAX_BODY_BYTES (HTTP 413).
BODY_TOO_LARGE = "BODY_TOO_LARGE"
#: Codes of requests refused before execution; alone in an answer, they make it an HTTP 400.
REQUEST_CODES = frozenset(
    {MALFORMED_REQUEST, INVALID_QUERY, BODY_TOO_LARGE, errors.InvalidArgumentError.code}
)
#: A bug (logged with its traceback); the message is only shown in development.
INTERNAL = QuestlineError.code


def all_codes() -> dict[str, bool]:
    """Every code the server can send, with whether a client may retry it."""
    found = {MALFORMED_REQUEST: False, INVALID_QUERY: False, BODY_TOO_LARGE: False}
    pending: list[type[QuestlineError]] = [QuestlineError]
    while pending:
        kind = pending.pop()
        if "code" in vars(kind):  # a class that only groups (TransientError) adds no code
            found[kind.code] = kind.retryable
        pending += kind.__subclasses__()
    return found


def request_error(code: str, message: str) -> dict[str, object]:
    """An error of the GraphQL response format, for answers built outside execution."""
    return {"message": message, "extensions": {"code": code, "retryable": False}}


def coded(error: QuestlineError) -> GraphQLError:
    """Our error as a GraphQL error that already says its code, for places
    that must raise rather than return (an extension refusing an operation)."""
    return GraphQLError(str(error), extensions=_extensions(error.code, error.retryable))


def typed(error: GraphQLError, development: bool) -> GraphQLError:
    """The error as a client should see it: with its code, masked if it is a bug."""
    if error.extensions and "code" in error.extensions:
        return error  # already typed: raised with its code (`coded`)
    original = error.original_error
    message = error.message
    retryable = False
    if isinstance(original, QuestlineError):
        code, retryable, message = original.code, original.retryable, str(original)
    elif original is None or isinstance(error, GraphQLSyntaxError):
        code = INVALID_QUERY
    elif _is_variable_error(error):
        code = errors.InvalidArgumentError.code
    else:
        code = INTERNAL
    if code == INTERNAL and not development:
        message = "internal error; it has been logged"
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={**(error.extensions or {}), **_extensions(code, retryable)},
    )


def process_errors(errors: list[GraphQLError], operation: str | None, development: bool) -> None:
    """Log the errors of a result, then type them in place (the list is the
    result's own): every error passes here once, on every path Strawberry
    takes (parse, validation, execution, streamed results over WebSocket)."""
    _log(errors, operation)
    errors[:] = [typed(error, development) for error in errors]


def _log(errors: list[GraphQLError], operation: str | None) -> None:
    """Refusals in one INFO line each; a bug with its traceback."""
    for error in errors:
        original = error.original_error
        if isinstance(error, GraphQLSyntaxError) or original is None or _is_variable_error(error):
            logger.info("refused %s: %s", operation or "request", error.message)
        elif isinstance(original, QuestlineError) and original.code != INTERNAL:
            logger.info("refused %s at %s: %s %s", operation, error.path, original.code, original)
        else:
            logger.error("unexpected error in %s at %s", operation, error.path, exc_info=original)


def _is_variable_error(error: GraphQLError) -> bool:
    """A variable's value that does not coerce to its type ("now" for a DateTime)."""
    return any(isinstance(node, VariableDefinitionNode) for node in error.nodes or ())


def _extensions(code: str, retryable: bool) -> dict[str, object]:
    return {"code": code, "retryable": retryable}

"""The Strawberry schema: its types, limits, error handling and committed SDL."""

from __future__ import annotations

from functools import partial
from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.types import ExecutionContext
from strawberry.types.base import StrawberryObjectDefinition, StrawberryType

from schema.errors import process_errors
from schema.limits import IntrospectionForApiKeys, depth_rule
from schema.mutation import Mutation
from schema.query import Query
from schema.subscription import Subscription

#: Distinct documents whose parse and validation are kept; clients send few.
DOCUMENT_CACHE = 256


class QuestlineSchema(strawberry.Schema):
    """Strawberry's schema, whose errors all get `extensions.code` and are
    logged our way (refusals in one line, tracebacks only for bugs)."""

    def __init__(self, *, development: bool, **options: Any) -> None:
        super().__init__(**options)
        self.development = development

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        operation = execution_context.operation_name if execution_context else None
        process_errors(errors, operation, self.development)


#: Generic types are named after their node ("UnlockConnection"); the ledger's
#: were published before they were generic, under these names.
PUBLISHED_NAMES = {"LedgerEntryConnection": "LedgerConnection", "LedgerEntryEdge": "LedgerEdge"}


class _Names(NameConverter):
    def from_generic(
        self, generic_type: StrawberryObjectDefinition, types: list[StrawberryType | type]
    ) -> str:
        name = super().from_generic(generic_type, types)
        return PUBLISHED_NAMES.get(name, name)


def build_schema(
    development: bool = False,
    max_depth: int = 12,
    max_tokens: int = 2000,
    open_introspection: bool = True,
) -> strawberry.Schema:
    # One depth rule for the schema's lifetime: a rule class made per request
    # (what QueryDepthLimiter does) defeats the validation cache, and
    # validation was most of the GraphQL cost of a small mutation.
    extensions: list[Any] = [
        partial(MaxTokensLimiter, max_token_count=max_tokens),
        partial(ParserCache, maxsize=DOCUMENT_CACHE),
        partial(AddValidationRules, [depth_rule(max_depth)]),
        partial(ValidationCache, maxsize=DOCUMENT_CACHE),
    ]
    if not open_introspection:
        extensions.append(IntrospectionForApiKeys)
    return QuestlineSchema(
        development=development,
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(name_converter=_Names()),
    )


def sdl() -> str:
    return build_schema().as_str() + "\n"

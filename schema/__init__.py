"""The GraphQL surface of Questline (Strawberry): thin, it calls the engine."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.query_depth_limiter import create_validator

from schema.errors import typed_errors
from schema.mutation import Mutation
from schema.query import Query
from schema.subscription import Subscription

#: Distinct documents whose parse and validation are kept; clients send few.
DOCUMENT_CACHE = 256


def build_schema(
    development: bool = False, max_depth: int = 12, max_tokens: int = 2000
) -> strawberry.Schema:
    # One depth rule for the schema's lifetime: a rule class made per request
    # (what QueryDepthLimiter does) defeats the validation cache, and
    # validation was most of the GraphQL cost of a small mutation.
    depth_rule = create_validator(max_depth, None)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            partial(MaxTokensLimiter, max_token_count=max_tokens),
            partial(ParserCache, maxsize=DOCUMENT_CACHE),
            partial(AddValidationRules, [depth_rule]),
            partial(ValidationCache, maxsize=DOCUMENT_CACHE),
            typed_errors(development),
        ],
    )


#: The committed SDL the mobile teams generate code from (`questline export-schema`).
SDL_PATH = Path(__file__).with_name("schema.graphql")


def sdl() -> str:
    return build_schema().as_str() + "\n"

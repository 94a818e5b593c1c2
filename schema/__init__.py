"""The GraphQL surface of Questline (Strawberry): thin, it calls the engine."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import strawberry
from strawberry.extensions import MaxTokensLimiter, QueryDepthLimiter

from schema.errors import typed_errors
from schema.mutation import Mutation
from schema.query import Query
from schema.subscription import Subscription


def build_schema(
    development: bool = False, max_depth: int = 12, max_tokens: int = 2000
) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            partial(QueryDepthLimiter, max_depth=max_depth),
            partial(MaxTokensLimiter, max_token_count=max_tokens),
            typed_errors(development),
        ],
    )


#: The committed SDL the mobile teams generate code from (`questline export-schema`).
SDL_PATH = Path(__file__).with_name("schema.graphql")


def sdl() -> str:
    return build_schema().as_str() + "\n"

"""The GraphQL surface of Questline (Strawberry): thin, it calls the service.

`schema.build` makes the Strawberry schema; `schema.service` is the
framework-free contract the app implements, importable without Strawberry.
"""

from pathlib import Path

#: The committed SDL the mobile teams generate code from (`questline export-schema`).
SDL_PATH = Path(__file__).with_name("schema.graphql")

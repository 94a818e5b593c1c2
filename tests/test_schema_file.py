"""The SDL the mobile teams generate code from is committed and current."""

from schema import SDL_PATH
from schema.build import sdl


def test_the_committed_schema_graphql_is_current() -> None:
    assert SDL_PATH.read_text() == sdl(), "run `questline export-schema` and commit the result"


def test_the_fixed_contract_names_are_in_the_schema() -> None:
    text = sdl()
    for line in [
        "recordEvent(event: EventInput!): RecordEventResult!",
        "recordEvents(events: [EventInput!]!): [RecordEventResult!]!",
        "me: Player!",
        "player(id: ID!): Player",
        "unlocks(playerId: ID = null, since: String = null): Unlock!",
        "unlocks(first: Int = 20, after: String = null): UnlockConnection!",
    ]:
        assert line in text, line

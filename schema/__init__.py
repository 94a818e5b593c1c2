"""The GraphQL surface of Questline (Strawberry): thin, it calls the engine."""

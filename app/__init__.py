"""The Questline service: settings, app factory, CLI, auth and durable records."""

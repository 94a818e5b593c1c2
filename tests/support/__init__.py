"""What the tests share, one module per concept; fixtures stay in conftest.py.

- `clock`: the injected clock and the dates the tests derive from it
- `programs`: the example seed, the test programs, a copy of the seed to break
- `graphql_client`: test credentials, settings, the app behind a TestClient, GraphQL posts
- `loyalty`: the loyalty program's GraphQL documents and reads
- `services`: throwaway PostgreSQL databases, the store's clock (Redis and
  Questline servers come from `app.launch`, which the benchmarks share)
- `engines`: an engine on a real store, and a sender of numbered events
- `histories`: a realistic journal of a coffee shop's last days
- `polling`: waiting for what another thread, process or server does
- `processes`: several OS processes doing the same work at once
- `webhook_receiver`, `identity_provider`, `browser`: the other ends of a test
"""

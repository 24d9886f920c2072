"""An agent and a conductor for tests of code that drives virtactor agents.

- `agent.testing.deployment`: `running_deployment(settings, directory)` runs one agent and a
  conductor on SQLite, on the in-process bus or a real RabbitMQ.
- `agent.testing.guests`: `NewInstances`, instances to spawn, destroyed after the test.
- `agent.testing.pytest_plugin` and `agent.testing.fixtures`: the pytest plugin
  (docs/testing-with-virtactor.md).

Nothing is re-exported here: pytest imports the plugin in every run wherever virtactor is
installed, and this package must stay as cheap to import as its `settings` module.
"""

"""The suite's fixtures are tests/fixtures.py's, a plugin, so that the bench's tests share them (one server)."""

pytest_plugins = ["tests.fixtures"]

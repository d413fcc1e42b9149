"""The bench's tests run on the suite's server and fixtures (tests/fixtures.py)."""

pytest_plugins = ["tests.fixtures"]

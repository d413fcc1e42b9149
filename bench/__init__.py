"""The benchmark harness: users-api beside the ORM way and the ceilings, measured in one run."""

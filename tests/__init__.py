"""users-api's test suite: one module per module of api/, and the helpers they share."""

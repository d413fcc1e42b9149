"""Operations: what starts, migrates, provisions and seeds the service. The request path never imports it."""

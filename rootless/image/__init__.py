"""Images: references, OCI types, transports and the one copy routine between them."""

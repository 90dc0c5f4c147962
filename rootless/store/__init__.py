"""Per-user storage: the sqlite catalog, the blob store, unpacked layers, locks and paths."""

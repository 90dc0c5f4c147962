"""One container's sandbox: id maps, namespaces, mounts, the process and its monitor."""

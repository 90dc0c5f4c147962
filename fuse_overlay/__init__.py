"""fuse_overlay: an overlay (union) filesystem in Python on pyfuse3 and trio.

Standalone: it imports nothing from `rootless`. Mounted with the same options as
fuse-overlayfs (`-o lowerdir=A:B,upperdir=U,workdir=W`), so either can stand in for the other.
"""

__version__ = "0.1.0"

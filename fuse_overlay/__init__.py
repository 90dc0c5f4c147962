"""fuse_overlay: an overlay (union) filesystem in Python on pyfuse3.

Standalone: it imports nothing from `rootless`. Mounted with the same options as
fuse-overlayfs (`-o lowerdir=A:B,upperdir=U,workdir=W`), so either can stand in for the other.

Entry points:
- the library: fuse_overlay.server.run(lowerdirs, upperdir, workdir, mountpoint, *,
  ready_fd=None, options=None), and server.abort(mountpoint) for a server that hangs;
- the command: `fuse-overlay [-f] [-d] -o lowerdir=L1:L2[,upperdir=U,workdir=W][,...] MNT`.

Modules: metadata (the on-disk format: ownership xattr, whiteouts, opaque dirs), options
(parsing and checking mount options), fs (the overlay operations), copyup (copying between
layers), fdops (the *at system calls os lacks), loop (the runner pyfuse3's main loop runs
on), server (mount and serve), warm (the handlers on scratch layers, for a process that
forks servers), cli.

Layers are reached only through descriptors, one name at a time without following symlinks
(fs.py), and a server that may chroot (root of a user namespace, as rl runs it) confines
itself to an empty directory once mounted; the command run by a plain user cannot chroot
and is not confined.

Options of our own besides fuse-overlayfs's: ready_fd=N (write "1" there once mounted),
realchown (also chown on disk when the id is mapped), squash_unmapped (show ids the namespace
does not map as 0, for single-id-mapping containers), writeback=1 (the kernel's writeback
cache), loop=trio (run pyfuse3 on trio instead of the direct runner), fsname=NAME.
Importing this package loads neither pyfuse3 nor trio.
"""

__version__ = "0.1.0"

"""Raw tar entries for unpacking tests, including the ones no honest tool writes."""

from __future__ import annotations

import io
import tarfile

MTIME = 1_700_000_000


class RawTar:
    """Append arbitrary entries (any name, type, link target, pax header)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def add(self, name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", *,
            mode: int = 0o644, uid: int = 0, gid: int = 0, linkname: str = "",
            major: int = 0, minor: int = 0, pax: dict | None = None) -> RawTar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode, info.uid, info.gid = mode, uid, gid
        info.mtime = MTIME
        info.linkname = linkname
        info.devmajor, info.devminor = major, minor
        if pax:
            info.pax_headers = dict(pax)
        if kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
            info.size = len(data)
            self.tar.addfile(info, io.BytesIO(data))
        else:
            self.tar.addfile(info)
        return self

    def dir(self, name: str, **kw) -> RawTar:
        return self.add(name, tarfile.DIRTYPE, mode=kw.pop("mode", 0o755), **kw)

    def file(self, name: str, data: bytes = b"", **kw) -> RawTar:
        return self.add(name, tarfile.REGTYPE, data, **kw)

    def symlink(self, name: str, target: str, **kw) -> RawTar:
        return self.add(name, tarfile.SYMTYPE, mode=0o777, linkname=target, **kw)

    def hardlink(self, name: str, target: str) -> RawTar:
        return self.add(name, tarfile.LNKTYPE, linkname=target)

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()

"""Read the entries of a tar stream (ustar, PAX, GNU long names) for the unpacker.

Hand-written because the library choices cost too much per entry where a layer has
thousands of small files: the stdlib's tarfile spent ~50 us of Python per header and
member (its generic _Stream with seek-by-read, a TarInfo of twenty attributes, an
extractfile object per member; 20,000 headers: 1.0 s, this reader 0.26 s) — the largest
part of a pull of many small files after the kernel's creates; libarchive-c (libarchive
through ctypes) was not measured: a foreign call per field read and a C library more on
the host. This reads one 512-byte block per header from a buffered stream, checks its
checksum, and slices the few fields the unpacker uses.

What it accepts follows Go's archive/tar, which Docker and containerd unpack layers with:
- V7, ustar (its prefix field), GNU (base-256 numbers, 'L'/'K' long names) and PAX
  ('x' records: path, linkpath, size, uid, gid, mtime, xattrs) headers;
- 'g' global PAX headers are skipped, as Docker ignores them;
- the archive ends at a zero block or at the end of the stream on a header boundary;
- a bad checksum, a number that is not one, a PAX record that does not parse, a stream that
  ends inside a header or an entry's data are errors (TarFormatError), never a silent end;
- PAX and GNU long-name headers are limited to 1 MiB (Go's maxSpecialFileSize), so a
  hostile size cannot make us hold gigabytes;
- sparse files (GNU 'S' headers, PAX GNU.sparse.* 0.0, 0.1 and 1.0, as GNU tar --sparse
  writes them) come with their map (`Entry.sparse`: data segments, checked sorted, inside
  the file, adding up to the data stored, and ending where the file does, as GNU tar
  writes them; at most MAX_SPARSE_SIZE); the unpacker writes the segments and leaves
  the holes as holes, so a hostile size cannot make it write zeros without end;
- an entry of a type this does not know has the data its size says (skipped), as Go's.
Names are decoded as the filesystem encoding does (UTF-8, undecodable bytes kept as
surrogates), so os.open gets back the tar's very bytes.
"""

from __future__ import annotations

import io

BLOCK = 512
MAX_SPECIAL = 1 << 20  # a PAX or long-name header's data, as Go's archive/tar
# The size of a sparse file, ours (Go's archive/tar takes any int64, GNU tar any off_t): a
# hole costs no disk, but whatever later reads the file whole (an export, `build -o`, a
# copy in the container) gets its zeros.
MAX_SPARSE_SIZE = 1 << 40
_ZERO = bytes(BLOCK)

REGULAR_TYPES = frozenset(b"07\0")  # '7' (contiguous) is a regular file to everyone
_HEADER_ONLY = frozenset(b"123456")  # link, symlink, char, block, dir, fifo: no data


class TarFormatError(ValueError):
    """The stream is not a tar we accept (one line, for the unpacker's error)."""


class Entry:
    """One member: the fields the unpacker reads, named as tarfile.TarInfo's."""

    __slots__ = (
        "devmajor",
        "devminor",
        "gid",
        "linkname",
        "mode",
        "mtime",
        "name",
        "pax_headers",
        "size",
        "sparse",
        "type",
        "uid",
    )

    def isreg(self) -> bool:
        return self.type in REGULAR_TYPES

    def isdir(self) -> bool:
        return self.type == 53  # '5'

    def islnk(self) -> bool:
        return self.type == 49  # '1'

    def issym(self) -> bool:
        return self.type == 50  # '2'

    def ischr(self) -> bool:
        return self.type == 51  # '3'

    def isblk(self) -> bool:
        return self.type == 52  # '4'

    def isfifo(self) -> bool:
        return self.type == 54  # '6'

    @property
    def typechar(self) -> str:
        return chr(self.type)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstr(field: bytes) -> bytes:
    end = field.find(0)
    return field if end < 0 else field[:end]


_NUMBERS: dict[bytes, int] = {}  # field bytes -> value: a layer repeats modes, ids, times


def _number(field: bytes, what: str) -> int:
    """An octal field (NUL- or space-terminated), or GNU's base-256 (first bit set)."""
    value = _NUMBERS.get(field)
    if value is not None:
        return value
    first = field[0]
    if first & 0x80:
        value = int.from_bytes(bytes([first & 0x7F]) + field[1:], "big")
        if first & 0x40:  # negative, two's complement over the field's bits
            value -= 1 << (8 * len(field) - 1)
        if not -_INT63 - 1 <= value <= _INT63:  # as Go's: it must fit an int64
            raise TarFormatError(f"tar header field {what} is out of range")
    else:
        text = _cstr(field).strip(b" ")
        if not text:
            value = 0
        elif not text.isdigit():  # int(x, 8) would take '+', '-', '_' and inner spaces
            raise TarFormatError(f"tar header field {what} is not a number: {text[:20]!r}")
        else:
            try:
                value = int(text, 8)
            except ValueError:  # an 8 or a 9
                raise TarFormatError(f"tar header field {what} is not octal: {text[:20]!r}"
                                     ) from None
    if len(_NUMBERS) < 16384:
        _NUMBERS[field] = value
    return value


def _check_sum(block: bytes) -> None:
    want = _number(block[148:156], "chksum")
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32  # the field counts as spaces
    if want == unsigned:
        return
    signed = sum(b - 256 if b > 127 else b for b in block) \
        - sum(b - 256 if b > 127 else b for b in block[148:156]) + 8 * 32
    if want != signed:
        raise TarFormatError("tar header checksum mismatch (not a tar, or corrupted)")


def parse_pax(data: bytes) -> dict[str, bytes]:
    """PAX records `"%d %s=%s\\n"` (the length counts the whole record) -> {key: raw value};
    trailing NUL padding is tolerated, anything else malformed is an error."""
    out: dict[str, bytes] = {}
    gnu00: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end and data[pos] != 0:
        space = data.find(b" ", pos, pos + 21)
        digits = data[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise TarFormatError("malformed PAX header: a record has no length")
        length = int(digits)
        stop = pos + length
        if stop > end or stop <= space + 1 or data[stop - 1] != 10:  # '\n'
            raise TarFormatError("malformed PAX header: a record's length is wrong")
        key, eq, value = data[space + 1:stop - 1].partition(b"=")
        if not eq or not key:
            raise TarFormatError("malformed PAX header: a record has no key=value")
        name = _decode(key)
        if name in ("GNU.sparse.offset", "GNU.sparse.numbytes"):  # sparse 0.0: in order
            gnu00.append(value)
        else:
            out[name] = value
        pos = stop
    if gnu00:  # as Go's archive/tar: into the 0.1 form
        out["GNU.sparse.map"] = b",".join(gnu00)
    return out


_INT63 = (1 << 63) - 1


def _int63(raw: bytes, what: str) -> int:
    """Decimal digits that fit Go's int64, as archive/tar wants them (a longer number
    would overflow the syscalls it ends in, and int() of one over 4300 digits raises a
    ValueError of its own)."""
    if len(raw) > 19 or int(raw) > _INT63:
        raise TarFormatError(f"{what} {raw[:20]!r} is out of range")
    return int(raw)


def _pax_int(pax: dict[str, bytes], key: str) -> int:
    raw = pax[key]
    if not raw.isdigit():
        raise TarFormatError(f"PAX header {key}={raw[:20]!r} is not a number")
    return _int63(raw, f"PAX header {key}")


def _pairs(raw: list[bytes], octal: bool = False) -> list[tuple[int, int]]:
    if len(raw) % 2:
        raise TarFormatError("a sparse map with an odd number of values")
    nums = []
    for r in raw:
        if octal:
            nums.append(_number(r, "sparse map"))
        elif r.isdigit():
            nums.append(_int63(r, "a sparse map value"))
        else:
            raise TarFormatError(f"a sparse map value is not a number: {r[:20]!r}")
    return list(zip(nums[::2], nums[1::2], strict=True))


def _check_sparse(segments: list[tuple[int, int]], realsize: int, stored: int,
                  name: bytes) -> None:
    """As Go's validateSparseEntries: sorted, not overlapping, inside the file; and the
    data stored is exactly the segments'."""
    end = 0
    for offset, length in segments:
        if offset < end or length < 0 or offset + length > realsize:
            raise TarFormatError(f"sparse entry {_decode(name)[:200]!r} has a bad map")
        end = offset + length
    if sum(length for _, length in segments) != stored:
        raise TarFormatError(f"sparse entry {_decode(name)[:200]!r}: its map does not "
                             "match the data stored")
    # A size beyond the map's end is a trailing hole, as Go (so Docker) takes it: GNU tar
    # writes an empty last segment there, other writers (libarchive) need not. Its bound
    # is rl's own: a lying size would otherwise make a file of any apparent size.
    if realsize > MAX_SPARSE_SIZE:
        raise TarFormatError(f"sparse entry {_decode(name)[:200]!r} is too large "
                             f"({realsize} bytes; rl takes at most {MAX_SPARSE_SIZE})")


class TarReader:
    """Iterate over the entries of a tar stream; read each regular file's data with
    `read_data` / `readinto_data` before asking for the next (what is left is skipped)."""

    def __init__(self, fileobj) -> None:
        self.f = fileobj  # read(n) returning short only at the end (a BufferedReader)
        self._left = 0  # data of the current entry not read yet
        self._pad = 0  # and its padding to the next block

    def _read_exact(self, n: int, what: str) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise TarFormatError(f"the tar ends inside {what}")
        return data

    def _skip_rest(self) -> None:
        n = self._left + self._pad
        self._left = self._pad = 0
        while n > 0:
            chunk = self.f.read(min(n, 1 << 20))
            if not chunk:
                raise TarFormatError("the tar ends inside an entry's data")
            n -= len(chunk)

    def _special(self, size: int, what: str) -> bytes:
        if size < 0 or size > MAX_SPECIAL:
            raise TarFormatError(f"{what} of {size} bytes is larger than the "
                                 f"{MAX_SPECIAL} allowed")
        data = self._read_exact(size, what)
        pad = -size % BLOCK
        if pad:
            self._read_exact(pad, what)
        return data

    def __iter__(self):
        return self

    def __next__(self) -> Entry:
        self._skip_rest()
        pax: dict[str, bytes] | None = None
        long_name = long_link = None
        while True:
            block = self.f.read(BLOCK)
            if not block or block == _ZERO:
                if pax is not None or long_name is not None or long_link is not None:
                    raise TarFormatError("the tar ends after an extended header")
                raise StopIteration
            if len(block) != BLOCK:
                raise TarFormatError("the tar ends inside a header")
            _check_sum(block)
            kind = block[156]
            size = _number(block[124:136], "size")
            if kind == 120:  # 'x': PAX for the next entry
                # a second one replaces the first, as in Go: what is held stays bounded
                pax = parse_pax(self._special(size, "a PAX header"))
                continue
            if kind == 103:  # 'g': global PAX, ignored as Docker does
                self._special(size, "a global PAX header")
                continue
            if kind == 76:  # 'L': GNU long name of the next entry
                long_name = _cstr(self._special(size, "a GNU long name"))
                continue
            if kind == 75:  # 'K': GNU long link target
                long_link = _cstr(self._special(size, "a GNU long link name"))
                continue
            break
        e = Entry()
        e.type = kind
        e.mode = _number(block[100:108], "mode")
        e.uid = _number(block[108:116], "uid")
        e.gid = _number(block[116:124], "gid")
        e.mtime = _number(block[136:148], "mtime")
        end = block.find(0, 0, 100)
        name = block[:end] if end >= 0 else block[:100]
        if block[257:263] == b"ustar\0":  # POSIX ustar: a prefix may hold the leading dirs
            prefix = _cstr(block[345:500])
            if prefix:
                name = prefix + b"/" + name
        if long_name is not None:
            name = long_name
        if long_link is not None:
            link = long_link
        elif kind in (49, 50):  # hard and symbolic links: the target
            link = _cstr(block[157:257])
        else:
            link = b""
        if kind in (51, 52):  # char, block
            e.devmajor = _number(block[329:337], "devmajor")
            e.devminor = _number(block[337:345], "devminor")
        else:
            e.devmajor = e.devminor = 0
        e.sparse = None
        realsize = None
        if kind == 83:  # 'S': old GNU sparse, the map in this header and extension blocks
            e.sparse, realsize = self._gnu_sparse_map(block)
            e.type = kind = 48
        if pax:
            if "path" in pax:
                name = pax["path"]
            if "linkpath" in pax:
                link = pax["linkpath"]
            if "size" in pax:
                size = _pax_int(pax, "size")
            if "uid" in pax:
                e.uid = _pax_int(pax, "uid")
            if "gid" in pax:
                e.gid = _pax_int(pax, "gid")
            if "mtime" in pax:
                try:  # as tarfile did: the unpacker turns what no file holds into 0
                    e.mtime = float(pax["mtime"])
                except ValueError:
                    e.mtime = 0
            e.pax_headers = pax
            if "GNU.sparse.major" in pax or "GNU.sparse.map" in pax:
                name, realsize = pax.get("GNU.sparse.name", name), None
                for key in ("GNU.sparse.realsize", "GNU.sparse.size"):
                    if key in pax:
                        realsize = _pax_int(pax, key)
                if realsize is None:
                    raise TarFormatError(f"sparse entry {_decode(name)[:200]!r} has no size")
                if pax.get("GNU.sparse.major") == b"1":  # 1.0: the map opens the data
                    e.sparse, used = self._pax_sparse_map(size)
                    size -= used
                else:
                    e.sparse = _pairs(pax.get("GNU.sparse.map", b"").split(b","))
        else:
            e.pax_headers = {}
        if e.sparse is not None:
            _check_sparse(e.sparse, realsize, size, name)
        if size < 0 or e.mode < 0 or e.uid < 0 or e.gid < 0:
            raise TarFormatError(f"entry {_decode(name)[:200]!r} has a negative number "
                                 "in its header")
        if kind == 0 and name.endswith(b"/"):  # old tars: a directory
            e.type = kind = 53
        e.name = _decode(name)
        e.linkname = _decode(link) if link else ""
        if kind in _HEADER_ONLY:
            size = 0
        e.size = size if e.sparse is None else realsize
        self._left = size
        self._pad = -size % BLOCK
        return e

    def _gnu_sparse_map(self, block: bytes) -> tuple[list[tuple[int, int]], int]:
        """Old GNU sparse: 4 (offset, numbytes) in the header, 21 in each extension block."""
        fields = [block[386 + 24 * i:410 + 24 * i] for i in range(4)]
        extended = block[482]
        realsize = _number(block[483:495], "realsize")
        blocks = 0
        while extended:
            blocks += 1
            if blocks * BLOCK > MAX_SPECIAL:
                raise TarFormatError(f"a sparse map of more than {MAX_SPECIAL} bytes")
            ext = self._read_exact(BLOCK, "a sparse map")
            fields += [ext[24 * i:24 * i + 24] for i in range(21)]
            extended = ext[504]
        raw = []
        for f in fields:
            if f[0] == 0:  # the first unused slot ends the map
                break
            raw += [f[:12], f[12:]]
        return _pairs(raw, octal=True), realsize

    def _pax_sparse_map(self, size: int) -> tuple[list[tuple[int, int]], int]:
        """Sparse 1.0: decimal lines (count, then offset and numbytes pairs) padded to a
        block at the start of the data; returns the map and the bytes it took."""
        blocks: list[bytes] = []
        newlines = 0
        count = None
        while True:
            if (len(blocks) + 1) * BLOCK > min(size, MAX_SPECIAL):
                raise TarFormatError("a sparse map that does not end inside its entry")
            blocks.append(self._read_exact(BLOCK, "a sparse map"))
            newlines += blocks[-1].count(b"\n")
            if count is None and newlines:
                first = b"".join(blocks).split(b"\n", 1)[0]
                if not first.isdigit():
                    raise TarFormatError("a sparse map that does not start with its count")
                count = _int63(first, "a sparse map's count")
            if count is not None and newlines >= 1 + 2 * count:
                break
        lines = b"".join(blocks).split(b"\n")
        return _pairs(lines[1:1 + 2 * count]), len(blocks) * BLOCK

    def readinto_data(self, buf) -> int:
        """Read the current entry's data into `buf` (a writable buffer); 0 at its end."""
        n = min(len(buf), self._left)
        if n == 0:
            return 0
        got = self.f.readinto(memoryview(buf)[:n])
        if not got:
            raise TarFormatError("the tar ends inside an entry's data")
        self._left -= got
        return got

    def read_data(self, n: int) -> bytes:
        """Up to n bytes of the current entry's data (short only at its end)."""
        n = min(n, self._left)
        data = self.f.read(n)
        if len(data) != n:
            raise TarFormatError("the tar ends inside an entry's data")
        self._left -= n
        return data


def open_stream(fileobj, *, compressed: bool = False):
    """A buffered reader of the tar's bytes; with `compressed`, gzip, bzip2, xz and zstd
    streams are recognised by their magic bytes and decompressed (tarfile's "r|*")."""
    raw = fileobj if isinstance(fileobj, (io.BufferedReader, io.BytesIO)) else \
        io.BufferedReader(_Raw(fileobj), 1 << 20)
    if not compressed:
        return raw
    if not hasattr(raw, "peek"):  # a BytesIO
        raw = io.BufferedReader(_Raw(raw), 1 << 20)
    from rootless.store import decompress

    plain = decompress.reader(raw)
    return raw if plain is raw else io.BufferedReader(plain, 1 << 20)


class _Raw(io.RawIOBase):
    """A reader with only read(n) as the raw stream of an io.BufferedReader."""

    def __init__(self, reader) -> None:
        self.reader = reader

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.reader.read(len(b))
        n = len(data)
        b[:n] = data
        return n

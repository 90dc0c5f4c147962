"""User and group id maps for the container's user namespace.

The ranges come from /etc/subuid and /etc/subgid (lines `name-or-uid:start:count`), as
shadow-utils' `newuidmap` reads them. Container root is the user; container ids 1..N are
the subordinate range. A user with no range gets the single mapping `0 -> uid`.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field

SUBUID_FILE = "/etc/subuid"
SUBGID_FILE = "/etc/subgid"
# Docker images routinely use ids up to 65534 (nobody); a smaller range breaks them.
RECOMMENDED_RANGE = 65536


@dataclass(frozen=True)
class Range:
    start: int
    count: int


def user_name(uid: int | None = None) -> str:
    uid = os.getuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def read_ranges(path: str, uid: int | None = None) -> list[Range]:
    """The subordinate ranges granted to `uid` (default: the caller) in `path`."""
    uid = os.getuid() if uid is None else uid
    keys = {str(uid), user_name(uid)}
    ranges = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) != 3 or parts[0] not in keys:
                    continue
                try:
                    start, count = int(parts[1]), int(parts[2])
                except ValueError:
                    continue
                if count > 0:
                    ranges.append(Range(start, count))
    except FileNotFoundError:
        pass
    return ranges


@dataclass(frozen=True)
class IdMap:
    """Lines of a uid_map or gid_map: (inside, outside, count)."""

    entries: tuple[tuple[int, int, int], ...] = field(default_factory=tuple)

    @property
    def size(self) -> int:
        return sum(c for _, _, c in self.entries)

    def to_outside(self, inside: int) -> int | None:
        for i, o, c in self.entries:
            if i <= inside < i + c:
                return o + inside - i
        return None

    def newidmap_args(self) -> list[str]:
        """The triples as `newuidmap PID ...` takes them."""
        return [str(n) for entry in self.entries for n in entry]

    def proc_format(self) -> str:
        return "".join(f"{i} {o} {c}\n" for i, o, c in self.entries)


def default_map(own_id: int, ranges: list[Range]) -> IdMap:
    """Container root = own_id, then the subordinate ranges one after the other."""
    entries = [(0, own_id, 1)]
    inside = 1
    for r in ranges:
        entries.append((inside, r.start, r.count))
        inside += r.count
    return IdMap(tuple(entries))


def keep_id_map(own_id: int, ranges: list[Range]) -> IdMap:
    """`--userns=keep-id`: own_id maps to itself; the subordinate ids fill 0..own_id-1 and above."""
    entries = []
    inside = 0
    pool = [(r.start, r.count) for r in ranges]
    # Fill [0, own_id) from the pool, then put own_id, then the rest of the pool above it.
    for start, count in list(pool):
        if inside >= own_id:
            break
        take = min(count, own_id - inside)
        entries.append((inside, start, take))
        inside += take
        pool.remove((start, count))
        if take < count:
            pool.insert(0, (start + take, count - take))
    entries.append((own_id, own_id, 1))
    inside = own_id + 1
    for start, count in pool:
        entries.append((inside, start, count))
        inside += count
    return IdMap(tuple(entries))

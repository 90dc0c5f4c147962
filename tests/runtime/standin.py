"""A stand-in for rootless.engine.images (the image store is another branch).

It has the same contract: `ensure_image(ref, *, pull="missing", platform=None, quiet=False)`
returns an ImageRecord with `.id`, `.names`, `.config` and `.layer_dirs` (BOTTOM first).
Images are installed by the tests (`install`) from the tar bytes tests/support/images.py
builds: each layer unpacked once, as the plain user, with the real owner and mode in the
user.containers.override_stat xattr (fuse_overlay/metadata.py), whiteouts kept as `.wh.`
files. When the images branch is merged, the lead deletes this module and rl_standin.py,
and the `rl` fixture of tests/runtime pulls from the `registry` fixture instead.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from fuse_overlay.metadata import Override, read_override, write_override
from rootless.errors import NotFound
from rootless.store import paths

INDEX = "standin-images.json"


class ImageRecord:
    def __init__(self, id: str, names: list[str], config: dict, layer_dirs: list[Path]):
        self.id, self.names, self.config, self.layer_dirs = id, names, config, layer_dirs


def _index_path(data_dir: Path) -> Path:
    return data_dir / INDEX


def _normalize(ref: str) -> str:
    name = ref.split("/")[-1] if "/" in ref else ref
    return name if ":" in name or "@" in name else name + ":latest"


def ensure_image(ref, *, pull="missing", platform=None, quiet=False) -> ImageRecord:
    try:
        index = json.loads(_index_path(paths.data_dir()).read_text())
    except FileNotFoundError:
        index = {}
    key = _normalize(ref)
    entry = index.get(key) or next((e for e in index.values() if e["id"].startswith(ref)
                                    or e["id"].removeprefix("sha256:").startswith(ref)), None)
    if entry is None:
        raise NotFound(f"image {ref} not found", "pull it first (rl pull IMAGE)")
    return ImageRecord(entry["id"], entry["names"], entry["config"],
                       [Path(p) for p in entry["layer_dirs"]])


def unpack_layer(tar_bytes: bytes, dest: Path) -> None:
    import io
    import tarfile

    dest.mkdir(parents=True)
    later: list[tuple[str, Override]] = []
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for m in tar:
            path = dest / m.name.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            ov = Override(m.uid, m.gid, m.mode & 0o7777)
            if m.isdir():
                path.mkdir(exist_ok=True)
                later.append((str(path), ov))  # dir modes last: we still write inside
            elif m.issym():
                os.symlink(m.linkname, path)
            elif m.islnk():
                os.link(dest / m.linkname.lstrip("/"), path)
            elif m.isfile():
                with open(path, "wb") as f:
                    f.write(tar.extractfile(m).read())
                os.chmod(path, (m.mode & 0o777) | stat.S_IRUSR | stat.S_IWUSR)
                write_override(str(path), ov)
    for p, ov in reversed(later):
        write_override(p, ov)
        os.chmod(p, (ov.mode & 0o777) | stat.S_IRWXU)
    # fuse-overlayfs looks for the xattr on a layer's root to decide whether the layer
    # carries ownership in xattrs at all (containers/storage marks its layers the same way);
    # once it does, an entry without the xattr fails with ENODATA: mark the directories the
    # tar did not list (parents made implicitly) as root's.
    for dirpath, dirnames, _ in os.walk(dest):
        for d in [dirpath, *(os.path.join(dirpath, n) for n in dirnames)]:
            if not os.path.islink(d) and read_override(d) is None:
                write_override(d, Override(0, 0, 0o755))


def install(data_dir: Path, name: str, image) -> ImageRecord:
    """Unpack `image` (tests.support.images.Image) into data_dir and name it `name`."""
    layer_dirs = []
    for layer in image.layers:
        d = data_dir / "standin-layers" / layer.diff_id.removeprefix("sha256:")
        if not d.exists():
            tmp = d.with_name(d.name + ".tmp")
            unpack_layer(layer.tar, tmp)
            tmp.rename(d)
        layer_dirs.append(str(d))
    cfg = json.loads(image.config_bytes)
    from tests.support.images import sha256

    image_id = sha256(image.config_bytes)
    path = _index_path(data_dir)
    index = json.loads(path.read_text()) if path.exists() else {}
    index[_normalize(name)] = {"id": image_id, "names": [_normalize(name)], "config": cfg,
                               "layer_dirs": layer_dirs}
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(index))
    return ImageRecord(image_id, [name], cfg, [Path(p) for p in layer_dirs])

"""`inspect` of any object by name or id: a container, an image, a volume or a network, as
`docker inspect [--type]` finds them (containers first, then images, volumes, networks).
The documents are the ones each object's own inspect gives, in Docker's shape."""

from __future__ import annotations

from rootless.errors import InvalidArgument, NotFound

TYPES = ("container", "image", "volume", "network")


def _container(name: str) -> dict:
    from rootless.engine import containers

    return containers.inspect(name)


def _image(name: str) -> dict:
    from rootless.engine import images

    return images.inspect(name)


def _volume(name: str) -> dict:
    from rootless.engine import volumes

    return volumes.inspect(name)


def _network(name: str) -> dict:
    from rootless.engine import networks

    return networks.inspect(name)


_FINDERS = {"container": _container, "image": _image, "volume": _volume,
            "network": _network}


def inspect(name: str, kind: str | None = None) -> dict:
    """The inspect document of `name`; `kind` restricts the search to one type."""
    if kind is not None and kind not in TYPES:
        raise InvalidArgument(f'"{kind}" is not a valid value for --type',
                              "use " + ", ".join(TYPES))
    if kind is not None:  # the type's own error ("network nope not found")
        return _FINDERS[kind](name)
    for k in TYPES:
        try:
            return _FINDERS[k](name)
        except NotFound:
            continue
        except ModuleNotFoundError:  # a part of rl this build does not have
            continue
    raise NotFound(f"no such object: {name}")

"""rl: a rootless container engine.

The package is laid out in layers (see docs/DESIGN.md); arrows point down only:
cli/compose/api -> engine -> image/build -> store/runtime/network -> linux.
Importing this package must stay cheap: it is on the path of every `rl` call.
"""

__version__ = "0.1.0"

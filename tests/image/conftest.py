"""Fixtures for the image tests: unique images (so a test may corrupt or delete their blobs
in the shared registry without touching other tests), a store snapshot, fake servers."""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path

import pytest

from tests.image.fakes import FakeRegistry
from tests.support.images import Image, TarBuilder, _config


def unique_layer(size: int = 4096, name: str = "data/blob"):
    """A layer with `size` random (incompressible) bytes: its blob exists nowhere else."""
    return TarBuilder().dir("data").file(name, secrets.token_bytes(size)).layer()


def unique_image(*layers, cmd=None) -> Image:
    return Image(list(layers) or [unique_layer()], _config(cmd=cmd or ["sh"]))


def blob_file(registry, digest: str) -> Path:
    hex_part = digest.partition(":")[2]
    return (registry.root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
            / hex_part[:2] / hex_part / "data")


def store_state(rl) -> dict:
    """What a user could observe of the store: catalog rows, layer and blob names, temps."""
    root = rl.data_dir
    state: dict = {}
    db = root / "catalog.db"
    if db.exists():
        conn = sqlite3.connect(db)
        try:
            for table in ("images", "image_names", "image_layers", "layers"):
                try:
                    state[table] = sorted(map(repr, conn.execute(f"SELECT * FROM {table}")))
                except sqlite3.OperationalError:
                    state[table] = None
        finally:
            conn.close()
    for sub in ("layers", "blobs/sha256", "tmp"):
        p = root / sub
        state[sub] = sorted(os.listdir(p)) if p.exists() else []
    return state


def write_registries_conf(rl, text: str) -> Path:
    rl.config_dir.mkdir(parents=True, exist_ok=True)
    path = rl.config_dir / "registries.conf"
    path.write_text(text)
    return path


@pytest.fixture
def fake_registry():
    reg = FakeRegistry()
    yield reg
    reg.stop()

"""`rl` with tests/runtime/standin.py in place of rootless.engine.images (see there)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.runtime import standin

sys.modules["rootless.engine.images"] = standin

from rootless.cli.main import main  # noqa: E402

main()

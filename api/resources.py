"""Where the query files and migrations are: inside the package when installed, at the top in a checkout."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The `sql` or `migrations` folder this installation reads."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no {name}/ folder next to or inside {_PACKAGE}")

"""schemathesis's hooks for tests/test_schemathesis.py (SCHEMATHESIS_HOOKS=tests.schemathesis_hooks).

Every valid Idempotency-Key schemathesis generates is made unique. A create sent again with its key
answers the 201 kept for it, naming the user it created, as the draft asks, even when that user has
been deleted since; schemathesis's stateful phase, which reuses a POST's data, reads that as a created
resource gone missing (ST302). The replays themselves are tests/test_idempotency.py's.
"""

import itertools
import re
from typing import Any

import schemathesis

from api.routes.idempotent import IDEMPOTENCY_KEY_PATTERN

VALID = re.compile(IDEMPOTENCY_KEY_PATTERN)
_sent = itertools.count()


@schemathesis.hook
def map_headers(context: Any, headers: dict[str, str] | None) -> dict[str, str] | None:
    key = headers.get("Idempotency-Key") if headers else None
    if headers is None or key is None or not VALID.match(key):
        return headers  # an invalid key stays as invalid as it was drawn
    suffix = f"~{next(_sent)}"
    if key.startswith('"'):
        headers["Idempotency-Key"] = f'"{key[1:-1][: 255 - len(suffix)]}{suffix}"'
    else:
        headers["Idempotency-Key"] = f"{key[: 255 - len(suffix)]}{suffix}"
    return headers

"""A user's ETag, and the conditions a request puts on it: If-None-Match, If-Match (RFC 9110, 13.1).

The ETag is the user's id and version, `"42-3"`: the version is kept by the database (migration
0003), one more at each change, and the id keeps a tag of one user from matching another's.
"""

import re

from starlette.exceptions import HTTPException

from api.schemas import BIGINT_MAX

# An entity-tag (RFC 9110, 8.8.3): an optional W/, then a quoted string without DQUOTE.
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
# One of ours, as `etag` writes it: no sign, no leading zero, ASCII digits only.
_OURS = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")


def etag(user_id: int, version: int) -> str:
    """The strong ETag of a user's representation at `version`."""
    return f'"{user_id}-{version}"'


def versions_named(if_match: str | None, user_id: int) -> list[int] | None:
    """The versions of this user an If-Match names, for the statement that writes; None: no condition.

    No header, or `*`, puts no condition on an existing user. Otherwise the comparison is strong:
    weak tags, other users' tags and anything unparsable name no version, so that a list naming
    none of the user's versions fails as RFC 9110 asks (412), whatever it holds.
    """
    if if_match is None or if_match.strip() == "*":
        return None
    versions = []
    for weak, tag in _ENTITY_TAG.findall(if_match):
        ours = _OURS.fullmatch(tag)
        if not weak and ours and ours.group(1) == str(user_id) and int(ours.group(2)) <= BIGINT_MAX:
            versions.append(int(ours.group(2)))
    return versions


def none_match(if_none_match: str | None, current: str) -> bool:
    """If-None-Match holds `current` (weak comparison, `*` for any): the client has it already (304)."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag == current[1:-1] for _, tag in _ENTITY_TAG.findall(if_none_match))


def precondition_failed(user_id: int) -> HTTPException:
    return HTTPException(
        412, f"user {user_id} has changed since the ETag in If-Match; GET it again for its current ETag"
    )


def precondition_required() -> HTTPException:
    return HTTPException(428, "this service requires If-Match on PATCH and DELETE: send the user's ETag from a GET")

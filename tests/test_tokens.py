"""Verified tokens remembered: bounded, by a hash of the whole token, `exp` checked on every use, forgotten
when the keys change. The refusals themselves are tests/test_access.py's, over HTTP."""

import time
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

from api import tokens
from api.keys import KeySet, kept_fresh
from api.tokens import LEEWAY_SECONDS, InvalidToken, Verifier
from bench.identity import AUDIENCE, IdentityProvider, identity_provider

pytestmark = pytest.mark.anyio


@pytest.fixture
def provider() -> Iterator[IdentityProvider]:
    with identity_provider() as found:
        yield found


@pytest.fixture
async def verifier(provider: IdentityProvider) -> AsyncIterator[Verifier]:
    """A Verifier of the provider's tokens, its keys fetched."""
    keys = KeySet(provider.issuer, None)
    async with kept_fresh(keys):
        for _ in range(500):
            if keys.loaded:
                break
            await anyio.sleep(0.01)
        yield Verifier(keys, AUDIENCE, ("RS256", "ES256"), ("at+jwt",))


async def test_a_remembered_token_is_refused_once_it_expires(verifier: Verifier, provider: IdentityProvider) -> None:
    lifetime = 1.5 - LEEWAY_SECONDS  # past its exp, within the leeway for another 1 to 2 s
    token = provider.token(lifetime=lifetime)
    ends = int(time.time()) + int(lifetime) + LEEWAY_SECONDS

    await verifier.verify(token)
    assert len(verifier.verified) == 1
    await anyio.sleep(ends - time.time() + 0.05)

    with pytest.raises(InvalidToken, match="has expired"):
        await verifier.verify(token)
    assert len(verifier.verified) == 0


async def test_remembered_tokens_are_forgotten_when_the_keys_change(
    verifier: Verifier, provider: IdentityProvider
) -> None:
    provider.add_key("rsa-2")
    token = provider.token(kid="rsa-2")
    await verifier.verify(token)

    provider.published.remove("rsa-2")  # withdrawn, as after a key is found compromised
    await verifier.keys.refresh()

    with pytest.raises(InvalidToken, match="does not publish"):
        await verifier.verify(token)


async def test_a_token_is_remembered_by_all_of_it(verifier: Verifier, provider: IdentityProvider) -> None:
    token = provider.token()
    await verifier.verify(token)
    header, payload, signature = token.split(".")
    altered = f"{header}.{payload}.{signature[:-4]}AAAA"

    with pytest.raises(InvalidToken, match="signature does not verify"):
        await verifier.verify(altered)


async def test_remembered_tokens_are_bounded_the_oldest_forgotten_first(
    verifier: Verifier, provider: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_MAX", 3)
    subjects = [f"client-{n}" for n in range(5)]

    for subject in subjects:
        await verifier.verify(provider.token(sub=subject))

    assert [principal.subject for principal in verifier.verified.values()] == subjects[2:]

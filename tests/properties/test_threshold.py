"""Properties of threshold BLS and NIDKG (icp.crypto.threshold, icp.crypto.nidkg).

Spec: shared/spec/protocol.md §2.1 (unique threshold signatures), §3.1 (NIDKG, resharing).
"""

from __future__ import annotations

import functools

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icp.crypto import nidkg, threshold
from icp.crypto.errors import ThresholdError

FAST = settings(max_examples=15, deadline=None)


@functools.cache
def _dealt(
    n: int, t: int
) -> tuple[threshold.ThresholdPublicKey, tuple[threshold.ThresholdSecretShare, ...]]:
    pk, shares = threshold.deal_trusted(b"prop-%d-%d" % (n, t), n, t)
    return pk, tuple(shares)


@st.composite
def key_and_subsets(draw: st.DrawFn) -> tuple[int, int, list[int], list[int]]:
    n = draw(st.integers(1, 7))
    t = draw(st.integers(1, n))
    first = draw(st.lists(st.integers(0, n - 1), min_size=t, max_size=n, unique=True))
    second = draw(st.lists(st.integers(0, n - 1), min_size=t, max_size=n, unique=True))
    return n, t, first, second


@FAST
@given(key_and_subsets(), st.binary(max_size=64))
def test_any_t_shares_give_the_same_valid_signature(
    case: tuple[int, int, list[int], list[int]], message: bytes
) -> None:
    n, t, first, second = case
    pk, shares = _dealt(n, t)
    sigs = {i: threshold.sign_share(shares[i], message) for i in set(first) | set(second)}
    a = threshold.combine(pk, {i: sigs[i] for i in first})
    b = threshold.combine_verified(pk, message, {i: sigs[i] for i in second})
    assert a == b
    assert threshold.verify(pk, message, a)


@FAST
@given(
    st.integers(2, 7).flatmap(lambda n: st.tuples(st.just(n), st.integers(2, n))),
    st.binary(max_size=32),
)
def test_t_minus_one_shares_never_verify(nt: tuple[int, int], message: bytes) -> None:
    n, t = nt
    pk, shares = _dealt(n, t)
    few = {i: threshold.sign_share(shares[i], message) for i in range(t - 1)}
    with pytest.raises(ThresholdError, match=f"need {t}"):
        threshold.combine(pk, few)
    # interpolating t-1 shares as if the threshold were t-1 does not give the group signature
    lowered = attrs.evolve(pk, threshold=t - 1)
    assert not threshold.verify(pk, message, threshold.combine(lowered, few))


@functools.cache
def _fresh_transcript() -> tuple[nidkg.Transcript, tuple[threshold.ThresholdSecretShare, ...]]:
    keys = [nidkg.encryption_keygen(b"old%d" % i) for i in range(4)]
    config = nidkg.NidkgConfig(b"prop/fresh", 4, tuple(pk for _, pk in keys), 2)
    dealings = {i: nidkg.create_dealing(config, i, b"s%d" % i) for i in range(4)}
    transcript = nidkg.create_transcript(config, dealings)
    return transcript, tuple(nidkg.decrypt_share(transcript, i, keys[i][0]) for i in range(4))


@settings(max_examples=6, deadline=None)
@given(
    st.integers(1, 5).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n))),
    st.lists(st.integers(0, 3), min_size=2, max_size=4, unique=True),
    st.binary(min_size=1, max_size=8),
)
def test_resharing_keeps_the_group_public_key(
    nt: tuple[int, int], dealers: list[int], seed: bytes
) -> None:
    n_new, t_new = nt
    old, old_shares = _fresh_transcript()
    keys = [nidkg.encryption_keygen(seed + bytes([i])) for i in range(n_new)]
    config = nidkg.NidkgConfig(
        b"prop/reshare", 4, tuple(pk for _, pk in keys), t_new, old.public_key
    )
    dealings = {j: nidkg.create_dealing(config, j, seed, old_shares[j]) for j in dealers}
    new = nidkg.create_transcript(config, dealings)
    assert new.public_key.group_public_key == old.public_key.group_public_key
    shares = {i: nidkg.decrypt_share(new, i, keys[i][0]) for i in range(n_new)}
    message = b"after resharing"
    sig = threshold.combine(
        new.public_key, {i: threshold.sign_share(s, message) for i, s in shares.items()}
    )
    assert threshold.verify(old.public_key, message, sig)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 3), st.integers(0, 3), st.integers(1, threshold.R - 1))
def test_a_dealing_with_one_corrupted_share_is_excluded(
    dealer: int, receiver: int, delta: int
) -> None:
    keys = [nidkg.encryption_keygen(b"c%d" % i) for i in range(4)]
    config = nidkg.NidkgConfig(b"prop/corrupt", 4, tuple(pk for _, pk in keys), 2)
    dealings = {i: nidkg.create_dealing(config, i, b"s%d" % i) for i in range(4)}
    cts = list(dealings[dealer].ciphertexts)
    cts[receiver] = ((int.from_bytes(cts[receiver], "big") + delta) % threshold.R).to_bytes(
        32, "big"
    )
    dealings[dealer] = attrs.evolve(dealings[dealer], ciphertexts=tuple(cts))
    complaint = nidkg.create_complaint(config, dealings[dealer], receiver, keys[receiver][0])
    assert nidkg.verify_complaint(config, dealings[dealer], complaint)
    transcript = nidkg.create_transcript(config, dealings, [complaint])
    assert dealer not in {d.dealer for d in transcript.dealings}
    share = nidkg.decrypt_share(transcript, receiver, keys[receiver][0])
    assert threshold.verify_share(
        transcript.public_key, receiver, b"m", threshold.sign_share(share, b"m")
    )

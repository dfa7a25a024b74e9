"""Tests for icp.crypto.nidkg: fresh DKG, resharing, bad dealings and complaints."""

from __future__ import annotations

import attrs
import pytest

from icp.crypto import nidkg, threshold
from icp.crypto.errors import NidkgError

MSG = b"random tape content"
Keys = list[tuple[nidkg.EncryptionSecretKey, bytes]]
Fresh = tuple[nidkg.NidkgConfig, dict[int, nidkg.Dealing], Keys]


def _keys(prefix: bytes, n: int) -> list[tuple[nidkg.EncryptionSecretKey, bytes]]:
    return [nidkg.encryption_keygen(prefix + bytes([i])) for i in range(n)]


def _config(
    dkg_id: bytes,
    n_dealers: int,
    keys: list[tuple[nidkg.EncryptionSecretKey, bytes]],
    t: int,
    resharing: threshold.ThresholdPublicKey | None = None,
) -> nidkg.NidkgConfig:
    return nidkg.NidkgConfig(dkg_id, n_dealers, tuple(pk for _, pk in keys), t, resharing)


def _sign_with(
    shares: list[threshold.ThresholdSecretShare], pk: threshold.ThresholdPublicKey, who: list[int]
) -> bytes:
    return threshold.combine(pk, {i: threshold.sign_share(shares[i], MSG) for i in who})


@pytest.fixture(scope="module")
def fresh() -> tuple[
    nidkg.NidkgConfig, dict[int, nidkg.Dealing], list[tuple[nidkg.EncryptionSecretKey, bytes]]
]:
    keys = _keys(b"fresh", 4)
    config = _config(b"subnet-1/high/0", 4, keys, 3)
    dealings = {i: nidkg.create_dealing(config, i, b"seed-%d" % i) for i in range(4)}
    return config, dealings, keys


def test_fresh_dkg_gives_a_working_threshold_key(fresh: Fresh) -> None:
    config, dealings, keys = fresh
    for dealing in dealings.values():
        nidkg.verify_dealing(config, dealing)
    transcript = nidkg.create_transcript(config, dealings)
    assert transcript.public_key.threshold == 3 and transcript.public_key.n == 4
    shares = [nidkg.decrypt_share(transcript, i, keys[i][0]) for i in range(4)]
    for share in shares:
        pk_share = transcript.public_key.public_key_shares[share.index]
        assert threshold.verify_share(
            transcript.public_key, share.index, MSG, threshold.sign_share(share, MSG)
        )
        assert pk_share
    sig = _sign_with(shares, transcript.public_key, [0, 1, 2])
    assert sig == _sign_with(shares, transcript.public_key, [1, 2, 3])
    assert threshold.verify(transcript.public_key, MSG, sig)


def test_min_dealings_and_dealing_subsets(fresh: Fresh) -> None:
    config, dealings, keys = fresh
    assert config.min_dealings == 2  # f + 1 with f = 1
    two = nidkg.create_transcript(config, {0: dealings[0], 2: dealings[2]})
    other = nidkg.create_transcript(config, {1: dealings[1], 3: dealings[3]})
    assert two.public_key.group_public_key != other.public_key.group_public_key
    shares = [nidkg.decrypt_share(two, i, keys[i][0]) for i in range(4)]
    assert threshold.verify(two.public_key, MSG, _sign_with(shares, two.public_key, [0, 2, 3]))
    with pytest.raises(NidkgError, match="need 2 valid dealings"):
        nidkg.create_transcript(config, {0: dealings[0]})


def test_bad_commitment_is_rejected_publicly(fresh: Fresh) -> None:
    config, dealings, _ = fresh
    other = nidkg.create_dealing(config, 1, b"other seed")
    tampered = attrs.evolve(
        dealings[1],
        commitments=(dealings[1].commitments[0], other.commitments[1], dealings[1].commitments[2]),
    )
    # changing a commitment invalidates the proof of possession, which covers all commitments
    with pytest.raises(NidkgError, match="dealer 1") as info:
        nidkg.verify_dealing(config, tampered)
    assert info.value.dealer == 1
    swapped_a0 = attrs.evolve(
        dealings[1], commitments=(other.commitments[0], *dealings[1].commitments[1:])
    )
    with pytest.raises(NidkgError, match="proof of possession"):
        nidkg.verify_dealing(config, swapped_a0)
    transcript = nidkg.create_transcript(config, {**dealings, 1: tampered})
    assert [d.dealer for d in transcript.dealings] == [0, 2, 3]


@pytest.mark.parametrize(
    "change",
    [
        {"commitments": ()},
        {"ciphertexts": ()},
        {"ciphertexts": (b"\xff" * 32,) * 4},
        {"ephemeral": b"\x00" * 48},
        {"pop": b"\xc0" + bytes(47)},
        {"dealer": 7},
    ],
    ids=[
        "no-commitments",
        "no-ciphertexts",
        "ciphertext-not-scalar",
        "bad-ephemeral",
        "identity-pop",
        "unknown-dealer",
    ],
)
def test_malformed_dealings_are_rejected(fresh: Fresh, change: dict[str, object]) -> None:
    config, dealings, _ = fresh
    with pytest.raises(NidkgError):
        nidkg.verify_dealing(config, attrs.evolve(dealings[0], **change))  # type: ignore[arg-type]


def test_dealing_replayed_into_another_dkg_is_rejected(fresh: Fresh) -> None:
    _, dealings, keys = fresh
    other_config = _config(b"subnet-1/high/500", 4, keys, 3)
    with pytest.raises(NidkgError, match="proof of possession"):
        nidkg.verify_dealing(other_config, dealings[0])


def test_corrupted_encrypted_share_is_caught_by_complaint(fresh: Fresh) -> None:
    config, dealings, keys = fresh
    cts = list(dealings[2].ciphertexts)
    cts[1] = ((int.from_bytes(cts[1], "big") + 1) % threshold.R).to_bytes(32, "big")
    bad = attrs.evolve(dealings[2], ciphertexts=tuple(cts))
    nidkg.verify_dealing(config, bad)  # not publicly detectable in our simplified scheme
    with pytest.raises(NidkgError, match="receiver 1") as info:
        nidkg.decrypt_dealing_share(config.dkg_id, bad, 1, keys[1][0])
    assert info.value.dealer == 2
    complaint = nidkg.create_complaint(config, bad, 1, keys[1][0])
    assert nidkg.verify_complaint(config, bad, complaint)
    # an unjustified complaint (share is fine) and a forged proof are both rejected
    assert not nidkg.verify_complaint(
        config, bad, nidkg.create_complaint(config, bad, 0, keys[0][0])
    )
    forged = attrs.evolve(complaint, proof=complaint.proof[:32] + bytes(32))
    assert not nidkg.verify_complaint(config, bad, forged)
    stolen = attrs.evolve(nidkg.create_complaint(config, bad, 0, keys[0][0]), receiver=1)
    assert not nidkg.verify_complaint(config, bad, stolen)
    transcript = nidkg.create_transcript(config, {**dealings, 2: bad}, [complaint])
    assert [d.dealer for d in transcript.dealings] == [0, 1, 3]
    shares = [nidkg.decrypt_share(transcript, i, keys[i][0]) for i in range(4)]
    assert threshold.verify(
        transcript.public_key, MSG, _sign_with(shares, transcript.public_key, [0, 1, 3])
    )
    # without the complaint the bad dealing is included and receiver 1 cannot decrypt
    unfiltered = nidkg.create_transcript(config, {**dealings, 2: bad})
    with pytest.raises(NidkgError, match="dealer 2"):
        nidkg.decrypt_share(unfiltered, 1, keys[1][0])


@pytest.mark.parametrize(("n_new", "t_new"), [(4, 3), (7, 5), (2, 1)])
def test_resharing_keeps_the_group_key(fresh: Fresh, n_new: int, t_new: int) -> None:
    config, dealings, keys = fresh
    old = nidkg.create_transcript(config, dealings)
    old_shares = [nidkg.decrypt_share(old, i, keys[i][0]) for i in range(4)]
    old_sig = _sign_with(old_shares, old.public_key, [0, 1, 3])
    new_keys = _keys(b"new", n_new)
    reshare = _config(b"subnet-1/high/500", 4, new_keys, t_new, resharing=old.public_key)
    assert reshare.min_dealings == 3
    new_dealings = {
        j: nidkg.create_dealing(reshare, j, b"r%d" % j, old_shares[j]) for j in (0, 2, 3)
    }
    new = nidkg.create_transcript(reshare, new_dealings)
    assert new.public_key.group_public_key == old.public_key.group_public_key
    assert new.public_key.n == n_new and new.public_key.threshold == t_new
    new_shares = [nidkg.decrypt_share(new, i, new_keys[i][0]) for i in range(n_new)]
    assert _sign_with(new_shares, new.public_key, list(range(n_new - t_new, n_new))) == old_sig


def test_resharing_dealing_must_commit_to_the_old_share(fresh: Fresh) -> None:
    config, dealings, keys = fresh
    old = nidkg.create_transcript(config, dealings)
    old_shares = [nidkg.decrypt_share(old, i, keys[i][0]) for i in range(4)]
    reshare = _config(b"reshare", 4, _keys(b"n", 4), 2, resharing=old.public_key)
    liar = threshold.ThresholdSecretShare(1, (old_shares[1].scalar + 5) % threshold.R)
    bad = nidkg.create_dealing(reshare, 1, b"s", liar)
    with pytest.raises(NidkgError, match="old key share"):
        nidkg.verify_dealing(reshare, bad)
    good = {j: nidkg.create_dealing(reshare, j, b"s", old_shares[j]) for j in (0, 2)}
    with pytest.raises(NidkgError, match="need 3"):
        nidkg.create_transcript(reshare, {**good, 1: bad})
    with pytest.raises(NidkgError, match="old share"):
        nidkg.create_dealing(reshare, 0, b"s")
    with pytest.raises(NidkgError, match="own"):
        nidkg.create_dealing(reshare, 0, b"s", old_shares[1])


def test_config_validation() -> None:
    keys = _keys(b"c", 3)
    with pytest.raises(NidkgError):
        _config(b"x", 3, keys, 4)
    pk, _ = threshold.deal_trusted(b"k", 5, 3)
    with pytest.raises(NidkgError, match="nodes of the old key"):
        _config(b"x", 4, keys, 2, resharing=pk)
    sk, _ = nidkg.encryption_keygen(b"secret")
    assert str(sk.scalar) not in repr(sk)


def test_dealing_serialization_roundtrip(fresh: Fresh) -> None:
    config, dealings, _ = fresh
    data = nidkg.encode_dealing(dealings[0])
    decoded = nidkg.decode_dealing(data)
    assert decoded == dealings[0]
    nidkg.verify_dealing(config, decoded)
    for bad in (
        b"",
        b"\xa0",
        data[:-3],
        nidkg.encode_dealing(attrs.evolve(dealings[0], dealer=True)),
    ):
        with pytest.raises(NidkgError):
            nidkg.decode_dealing(bad)

"""The NI-DKG backend: consensus DKG configs and transcripts over ``icp.crypto.nidkg``.

Dealings and transcripts travel inside blocks as canonical CBOR bytes; this module
converts between those bytes and ``icp.crypto.nidkg`` objects. Malformed bytes are an
invalid dealing, never an exception out of the validator.

Verification and transcript creation are pure functions of their inputs, so results
are memoised per backend instance; share one instance only within one process.

Spec: protocol.md §3.1 (dealings on chain, transcripts computed by everyone from the
same dealings, resharing keeps the group key); Groth, ePrint 2021/339.
"""

from __future__ import annotations

from collections.abc import Mapping

import cbor2

from icp.consensus.artifacts import DkgConfig, Transcript
from icp.consensus.context import SubnetMembership
from icp.consensus.dkg import DkgError, to_threshold_public_key
from icp.crypto import nidkg
from icp.crypto.errors import CryptoError
from icp.crypto.hashing import EncodingError, cbor_decode, cbor_encode, sha256
from icp.crypto.threshold import ThresholdSecretShare
from icp.types import NodeIndex


def encode_dealing(dealing: nidkg.Dealing) -> bytes:
    """Return the canonical bytes of a dealing."""
    return cbor_encode(
        [
            dealing.dealer,
            list(dealing.commitments),
            dealing.ephemeral,
            list(dealing.ciphertexts),
            dealing.pop,
        ],
        self_describe=False,
    )


def decode_dealing(data: bytes) -> nidkg.Dealing:
    """Parse dealing bytes; raise ``DkgError`` if malformed."""
    try:
        value = cbor_decode(data)
        if not isinstance(value, list) or len(value) != 5:
            raise DkgError("a dealing is a 5-element list")
        dealer, commitments, ephemeral, ciphertexts, pop = value
        if not (
            isinstance(dealer, int)
            and isinstance(commitments, list)
            and isinstance(ciphertexts, list)
            and isinstance(ephemeral, bytes)
            and isinstance(pop, bytes)
            and all(isinstance(c, bytes) for c in commitments + ciphertexts)
        ):
            raise DkgError("malformed dealing fields")
        return nidkg.Dealing(dealer, tuple(commitments), ephemeral, tuple(ciphertexts), pop)
    except (EncodingError, cbor2.CBORDecodeError, TypeError, ValueError) as exc:
        raise DkgError(f"malformed dealing: {exc}") from None


class NidkgBackend:
    """``DkgBackend`` over ``icp.crypto.nidkg`` for one subnet's membership.

    Spec: protocol.md §3.1.
    """

    def __init__(self, membership: SubnetMembership) -> None:
        self.membership = membership
        self._verified: dict[bytes, bool] = {}
        self._transcripts: dict[bytes, Transcript] = {}

    def _config(self, config: DkgConfig, resharing: Transcript | None) -> nidkg.NidkgConfig:
        dkg_id = cbor_encode(
            [self.membership.subnet_id, config.dkg_id.encode()], self_describe=False
        )
        keys = tuple(self.membership.nodes[r].dkg_encryption for r in config.receivers)
        return nidkg.NidkgConfig(
            dkg_id,
            len(config.dealers),
            keys,
            config.threshold,
            None if resharing is None else to_threshold_public_key(resharing),
        )

    def create_dealing(
        self,
        config: DkgConfig,
        dealer: NodeIndex,
        reshared_share: ThresholdSecretShare | None,
        resharing: Transcript | None,
        seed: bytes,
    ) -> bytes:
        """Return ``dealer``'s dealing bytes (dealer position = index in ``config.dealers``)."""
        if (config.resharing_of is None) != (resharing is None):
            raise DkgError("a resharing config needs the reshared transcript (and only it)")
        position = config.dealers.index(dealer)
        if reshared_share is not None:
            reshared_share = ThresholdSecretShare(position, reshared_share.scalar)
        try:
            dealing = nidkg.create_dealing(
                self._config(config, resharing), position, seed, reshared_share
            )
        except CryptoError as exc:
            raise DkgError(str(exc)) from None
        return encode_dealing(dealing)

    def verify_dealing(
        self, config: DkgConfig, dealer: NodeIndex, dealing: bytes, resharing: Transcript | None
    ) -> bool:
        """Return whether ``dealing`` passes the public NI-DKG checks for ``config``."""
        key = sha256(cbor_encode([config.encode(), int(dealer), dealing], self_describe=False))
        cached = self._verified.get(key)
        if cached is not None:
            return cached
        ok = False
        try:
            parsed = decode_dealing(dealing)
            if dealer in config.dealers and parsed.dealer == config.dealers.index(dealer):
                nidkg.verify_dealing(self._config(config, resharing), parsed)
                ok = True
        except (DkgError, CryptoError):
            ok = False
        self._verified[key] = ok
        return ok

    def create_transcript(
        self, config: DkgConfig, dealings: Mapping[NodeIndex, bytes], resharing: Transcript | None
    ) -> Transcript:
        """Combine dealings (dealer node -> bytes) into a consensus ``Transcript``."""
        key = sha256(
            cbor_encode(
                [config.encode(), sorted((int(d), b) for d, b in dealings.items())],
                self_describe=False,
            )
        )
        cached = self._transcripts.get(key)
        if cached is not None:
            return cached
        parsed: dict[int, nidkg.Dealing] = {}
        for dealer, data in dealings.items():
            try:
                parsed[config.dealers.index(dealer)] = decode_dealing(data)
            except (DkgError, ValueError):
                continue
        try:
            transcript = nidkg.create_transcript(self._config(config, resharing), parsed)
        except CryptoError as exc:
            raise DkgError(str(exc)) from None
        public = transcript.public_key
        result = Transcript(
            dkg_id=config.dkg_id,
            threshold=config.threshold,
            receivers=config.receivers,
            group_public_key=public.group_public_key,
            public_key_shares=public.public_key_shares,
            transcript=cbor_encode(
                [
                    transcript.dkg_id,
                    [encode_dealing(d) for d in transcript.dealings],
                    list(transcript.coefficients),
                ],
                self_describe=False,
            ),
        )
        self._transcripts[key] = result
        return result

    def decrypt_share(
        self, transcript: Transcript, receiver: NodeIndex, secret_key: object
    ) -> ThresholdSecretShare:
        """Decrypt ``receiver``'s share; raise ``DkgError`` on a bad transcript or key."""
        if not isinstance(secret_key, nidkg.EncryptionSecretKey):
            raise DkgError("no NI-DKG decryption key for this node")
        try:
            decoded = cbor_decode(transcript.transcript)
            if not isinstance(decoded, list) or len(decoded) != 3:
                raise DkgError("a transcript is a 3-element list")
            dkg_id, dealings, coefficients = decoded
            if not isinstance(dkg_id, bytes) or not isinstance(dealings, list):
                raise DkgError("malformed transcript")
            parsed = nidkg.Transcript(
                dkg_id,
                to_threshold_public_key(transcript),
                tuple(decode_dealing(d) for d in dealings),
                tuple(coefficients),
            )
            position = transcript.receivers.index(receiver)
            share = nidkg.decrypt_share(parsed, position, secret_key)
        except (CryptoError, EncodingError, ValueError, TypeError) as exc:
            raise DkgError(f"cannot decrypt share: {exc}") from None
        return ThresholdSecretShare(position, share.scalar)

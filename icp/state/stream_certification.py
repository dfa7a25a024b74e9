"""Certified XNet stream slices: what one subnet serves and another verifies.

Theory of operation.  A subnet's outgoing stream towards subnet D lives in its
certified state tree under ``/streams/<D>/{header, messages/<index>}``.  To hand
messages ``[from, from + k)`` to D, the source serves a certificate of that tree
revealing the header and exactly those messages (``certified_stream_slice``); it is
signed by the source subnet's threshold key, like any certificate.  The receiving
block maker verifies it against the source subnet's public key from the registry
(no NNS delegation needed between subnets), checks that the revealed messages are
consecutive from the index it asked for and inside ``[begin, end)`` of the header,
and decodes them (``verify_stream_slice``).  Contiguity with what was already
inducted and monotone signals are then checked by ``icp.messaging.xnet.check_slice``.

Spec: protocol digest §4.3 (certified stream slices: messages [from, to) plus header,
a witness and the source subnet's certification; validation against the source
subnet's public key from the registry), §3.3 (streams are in the certified tree).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import cbor2

from icp.crypto import hashtree
from icp.crypto.certificate import Certificate
from icp.crypto.errors import CertificateError
from icp.crypto.hashing import EncodingError, cbor_decode
from icp.crypto.hashtree import HashTree, Path
from icp.messaging.xnet import StreamError, StreamHeader, StreamSlice
from icp.principal import Principal
from icp.state.certification import Certification, certificate_for
from icp.state.codec import Codec, CodecError, state_codec
from icp.state.replicated_state import ReplicatedState
from icp.state.tree import StateTreeBuilder, stream_index_label


class StreamSliceError(ValueError):
    """A certified stream slice that does not verify or is not what was asked for."""


@attrs.frozen
class CertifiedSlice:
    """A verified slice and the certified time of the source state it came from."""

    slice: StreamSlice[Any]
    time: int


def certified_stream_slice(
    state: ReplicatedState,
    certification: Certification,
    destination: Principal,
    from_index: int,
    max_messages: int,
    *,
    builder: StateTreeBuilder | None = None,
    tree: HashTree | None = None,
) -> bytes:
    """Return a certificate revealing the stream header and messages ``[from, from + k)``.

    ``k`` is at most ``max_messages`` and stops at the stream's end.  Raises
    ``StreamError`` if ``from_index`` is outside ``[begin, end]``.
    Spec: protocol digest §4.3.
    """
    stream = state.stream_to(destination)
    piece = stream.slice(from_index, max_messages)
    raw = destination.raw
    paths: list[Path] = [["streams", raw, "header"]]
    paths += [
        ["streams", raw, "messages", stream_index_label(i)]
        for i in range(piece.first, piece.next_index)
    ]
    return certificate_for(state, certification, paths, builder=builder, tree=tree)


def _decode_header(blob: bytes) -> StreamHeader:
    try:
        value = cbor_decode(blob)
    except EncodingError as exc:
        raise StreamSliceError(f"malformed stream header: {exc}") from None
    if not isinstance(value, Mapping):
        raise StreamSliceError("a stream header is a CBOR map")
    try:
        return StreamHeader(
            begin=int(value["begin"]),
            end=int(value["end"]),
            signals_end=int(value["signals_end"]),
            reject_signals=tuple(int(i) for i in value["reject_signals"]),
        )
    except (KeyError, TypeError, ValueError, StreamError) as exc:
        raise StreamSliceError(f"malformed stream header: {exc}") from None


def verify_stream_slice(
    certificate: bytes,
    source_public_key_der: bytes,
    destination: Principal,
    from_index: int,
    *,
    codec: Codec | None = None,
) -> CertifiedSlice:
    """Verify a slice served by the source subnet and return its header and messages.

    Raises ``StreamSliceError`` if the certificate does not verify under the source
    subnet's key, carries a delegation, lacks the header, or reveals messages that
    are not consecutive from ``from_index`` within the header's ``[begin, end)``.
    Spec: protocol digest §4.3 (validation of certified stream slices).
    """
    codec = codec or state_codec()
    try:
        cert = Certificate.from_cbor(certificate)
        if cert.delegation is not None:
            raise StreamSliceError("a stream slice is signed by the source subnet itself")
        cert.verify(source_public_key_der)
        header = _decode_header(cert.lookup_value(["streams", destination.raw, "header"]))
        time = cert.time()
    except CertificateError as exc:
        raise StreamSliceError(f"stream slice certificate: {exc.reason}") from None
    found = hashtree.lookup_subtree(cert.tree, ["streams", destination.raw, "messages"])
    revealed: list[tuple[int, bytes]] = []
    if found.subtree is not None:
        for node in hashtree.flatten_forks(found.subtree):
            if isinstance(node, hashtree.Labeled) and isinstance(node.subtree, hashtree.Leaf):
                if len(node.label) != 8:
                    raise StreamSliceError("a stream message label is an 8-byte index")
                revealed.append((int.from_bytes(node.label, "big"), node.subtree.value))
    indices = [i for i, _ in revealed]
    if indices != list(range(from_index, from_index + len(indices))):
        raise StreamSliceError(
            f"slice messages {indices[:3]}... are not consecutive from index {from_index}"
        )
    if not header.begin <= from_index <= header.end or from_index + len(indices) > header.end:
        raise StreamSliceError(
            f"slice [{from_index}, {from_index + len(indices)}) is outside the stream "
            f"[{header.begin}, {header.end})"
        )
    try:
        messages = tuple(codec.decode(blob) for _, blob in revealed)
    except (CodecError, cbor2.CBORDecodeError) as exc:
        raise StreamSliceError(f"malformed stream message: {exc}") from None
    return CertifiedSlice(StreamSlice(header, from_index, messages), time)

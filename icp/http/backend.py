"""What the HTTP layer needs from an IC, and effective-canister-id routing.

Theory of operation.  The HTTP handlers never reach into replicas: they call the
small ``Backend`` surface below, which ``icp.InternetComputer`` satisfies (bytes in,
bytes out, ``ICError`` with an HTTP status, reject code and error code on refusal).
``resolve_effective_canister_id`` turns the ``<ecid>`` of a URL into the principal
whose subnet serves the request, including the local-instance rule that lets
``provisional_create_canister_with_cycles`` name any effective canister id.

Spec: interface spec §1.1 (endpoints), §1.4 (effective canister id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from icp.crypto.hashing import EncodingError, cbor_decode
from icp.ic import CallResult, ICError
from icp.principal import Principal
from icp.state.ingress_history import IngressStatus
from icp.state.replicated_state import NetworkTopology

PROVISIONAL_METHODS = frozenset({"provisional_create_canister_with_cycles"})
"""Management methods that may carry any effective canister id (interface spec §1.4)."""


class Backend(Protocol):
    """The IC operations the HTTP interface calls (``icp.InternetComputer`` has them)."""

    root_key: bytes

    @property
    def topology(self) -> NetworkTopology:
        """The network as the latest registry version says (routing of effective ids)."""
        ...

    def status(self) -> dict[str, Any]:
        """Return the ``/api/v2/status`` fields."""
        ...

    def submit_call(self, body: bytes, effective_canister_id: Principal) -> bytes:
        """Accept a ``call`` envelope into the ingress pool; return its request id."""
        ...

    def request_status(
        self, request_id: bytes, effective_canister_id: Principal
    ) -> IngressStatus | None:
        """Return a request's status in the latest certified state (None: unknown)."""
        ...

    def wait_for(
        self, request_id: bytes, effective_canister_id: Principal, *, timeout: int | None = None
    ) -> CallResult:
        """Return the certified outcome of a request (``timeout=0``: only look)."""
        ...

    def query(self, body: bytes, effective_canister_id: Principal) -> bytes:
        """Answer a ``query`` envelope: CBOR response with node signatures."""
        ...

    def read_state(
        self,
        body: bytes,
        effective_canister_id: Principal | None = None,
        *,
        subnet_id: Principal | None = None,
    ) -> bytes:
        """Answer a ``read_state`` envelope: CBOR ``{certificate}``."""
        ...


def parse_principal(text: str, what: str = "effective canister id") -> Principal:
    """Parse a textual principal from a URL; raise ``ICError`` (400) if it is not one.

    Spec: interface spec §3.2 (textual ids must be canonical).
    """
    try:
        return Principal.from_text(text)
    except (ValueError, TypeError) as exc:
        raise ICError(f"invalid {what} {text!r}: {exc}", http_status=400) from None


def request_content(body: bytes) -> Mapping[Any, Any] | None:
    """Return the ``content`` map of an envelope, or None if the body is not one."""
    try:
        envelope = cbor_decode(body)
    except (EncodingError, ValueError, TypeError, KeyError, IndexError, OverflowError):
        return None
    except Exception:  # cbor2 raises its own decoder errors for arbitrary garbage
        return None
    if not isinstance(envelope, Mapping):
        return None
    content = envelope.get("content")
    return content if isinstance(content, Mapping) else None


def is_routable(topology: NetworkTopology, principal: Principal) -> bool:
    """Return whether ``principal`` lies in some subnet's canister ranges."""
    return topology.routing_table.route(principal) is not None


def provisional_target(topology: NetworkTopology) -> Principal:
    """Return where provisional creation lands: the first application subnet's first id.

    Spec: interface spec §1.4 (a local instance accepts any effective canister id for
    ``provisional_create_canister_with_cycles``); dfx's local range starts at
    ``bkyz2-fmaaa-aaaaa-qaaaq-cai``.
    """
    nns = topology.nns_subnet_id
    starts = [
        r.start
        for subnet in topology.subnets
        if subnet.subnet_id != nns
        for r in topology.routing_table.ranges_of(subnet.subnet_id)
    ]
    if not starts and nns is not None:
        starts = [r.start for r in topology.routing_table.ranges_of(nns)]
    if not starts:
        raise ICError("this IC has no canister ranges", http_status=503)
    return min(starts)


def resolve_effective_canister_id(
    topology: NetworkTopology, ecid: Principal, body: bytes
) -> Principal:
    """Return the principal whose subnet serves a canister-endpoint request.

    A routable ``ecid`` is used as is.  An unroutable one is accepted only for a call
    to the management canister's provisional methods (a local instance's rule) and
    then lands on the first application subnet; anything else is refused (400).
    Spec: interface spec §1.4.
    """
    if is_routable(topology, ecid):
        return ecid
    content = request_content(body)
    if (
        content is not None
        and content.get("request_type") == "call"
        and content.get("canister_id") == b""
        and content.get("method_name") in PROVISIONAL_METHODS
    ):
        return provisional_target(topology)
    raise ICError(
        f"effective canister id {ecid} is not in the canister ranges of any subnet",
        http_status=400,
    )

"""ReplicatedState: derivation shares structure, refuses going back, checks its metadata."""

from __future__ import annotations

import attrs
import pytest

from icp.principal import Principal
from icp.state.codec import CodecError, state_codec
from icp.state.pmap import PMap
from icp.state.replicated_state import (
    ReplicatedState,
    StateError,
    SubnetTopology,
)
from icp.types import Height, Time
from tests.state.builders import APP, NNS, T0, app_canister_id, empty_state, plain_canister, world


def test_deriving_shares_unchanged_parts() -> None:
    w = world()
    s0 = empty_state(w).with_canisters(plain_canister(app_canister_id(i)) for i in range(50))
    c7 = s0.canister(app_canister_id(7))
    assert c7 is not None
    s1 = s0.with_canister(attrs.evolve(c7, cycles=1)).at_height(Height(2), Time(T0 + 1))
    assert s0.canister(app_canister_id(7)) is c7  # the old state is untouched
    assert s1.canister(app_canister_id(8)) is s0.canister(app_canister_id(8))  # shared
    assert s1.topology is s0.topology and s1.ingress_history is s0.ingress_history
    assert s1.canister(app_canister_id(7)).cycles == 1  # type: ignore[union-attr]
    assert len(s1.without_canister(app_canister_id(7).raw).canisters) == 49
    assert s1.hosts(app_canister_id(3)) and not s1.hosts(Principal.from_canister_index(3))
    assert s1.stream_to(NNS).header.end == 0


def test_time_and_height_never_go_back() -> None:
    s = empty_state(world(), height=5)
    with pytest.raises(StateError):
        s.at_height(Height(4), T0)
    with pytest.raises(StateError):
        s.at_height(Height(6), Time(T0 - 1))


def test_metadata_is_checked() -> None:
    w = world()
    with pytest.raises(StateError, match="not in the network topology"):
        ReplicatedState(Principal(b"\x42\x02"), w.topology)
    with pytest.raises(StateError, match="Ed25519"):
        SubnetTopology(APP, b"", {NNS: b"\x01" * 44})
    with pytest.raises(StateError, match="twice"):
        attrs.evolve(w.topology, subnets=(*w.topology.subnets, w.topology.subnets[0]))


def test_codec_round_trips_and_refuses_unknown_classes() -> None:
    codec = state_codec()
    state = empty_state(world()).with_canister(plain_canister(app_canister_id(1)))
    data = codec.encode(state)
    assert codec.decode(data) == state
    assert codec.encode(codec.decode(data)) == data
    assert isinstance(codec.decode(data).canisters, PMap)

    @attrs.frozen
    class Alien:
        x: int

    with pytest.raises(CodecError, match="not registered"):
        codec.encode(Alien(1))
    forged = data.replace(b"ReplicatedState", b"ReplicatedStatf")
    with pytest.raises(CodecError, match="not registered"):
        codec.decode(forged)
    with pytest.raises(CodecError):
        codec.decode(b"\xff\xff")


def test_codec_round_trips_call_contexts_callbacks_and_stream_messages() -> None:
    from icp.execution.canister import (
        Callback,
        CallContext,
        CanisterOrigin,
        CanisterStatus,
        IngressOrigin,
        SystemOrigin,
    )
    from icp.execution.executor import CanisterResponse
    from icp.execution.system_api import Reject, Reply

    codec = state_codec()
    canister = attrs.evolve(
        plain_canister(app_canister_id(1)),
        status=CanisterStatus.STOPPING,
        call_contexts={
            1: CallContext(IngressOrigin(b"\x01" * 32, b"user"), 5),
            2: CallContext(CanisterOrigin(b"caller", 9), 0, responded=True),
            3: CallContext(SystemOrigin("heartbeat"), 0),
        },
        callbacks={7: Callback(2, b"callee", (1, 2), (3, 4), None, 10, 20)},
        stop_requests=(CanisterOrigin(b"stopper", 3),),
        logs=(b"line",),
    )
    assert codec.decode(codec.encode(canister)) == canister
    for message in (
        CanisterResponse(b"a", b"b", 7, Reply(b"ok"), 3),
        CanisterResponse(b"a", b"b", 8, Reject(4, "no", "IC0406"), 0),
    ):
        assert codec.decode(codec.encode(message)) == message

"""A subnet created on the running IC: registry version, routing, XNet, restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from icp import Principal
from icp.candid import decode, encode
from icp.candid.types import Nat, Text
from icp.crypto.certificate import Certificate
from icp.crypto.hashing import cbor_decode
from icp.crypto.user_sig import principal_of
from icp.ic import ICError, InternetComputer, SubnetConfig, SubnetKind
from icp.messaging.routing import CanisterIdRange
from icp.nns.registry import RegistryError
from icp.testing import envelope, read_state_content
from tests.ic.helpers import ALICE, call, create_canister, identical_states, install

NO_ARGS = encode([], [])


def small_ic(**kwargs: object) -> InternetComputer:
    return InternetComputer(
        [SubnetConfig(SubnetKind.NNS, 1), SubnetConfig(SubnetKind.APPLICATION, 2)],
        seed=31,
        **kwargs,  # type: ignore[arg-type]
    )


def block_versions(ic: InternetComputer, subnet_index: int, node: int) -> list[int]:
    """Registry versions of the batches a replica executed, in order."""
    replica = ic.subnets[subnet_index].replicas[node]
    return [b.registry_version for b in replica.consensus.batches]


def test_a_new_subnet_joins_the_running_ic(motoko: Callable[[str], bytes]) -> None:
    ic = small_ic()
    old = ic.applications[0]
    caller = create_canister(ic, old)
    install(ic, caller, motoko("caller"))
    assert ic.registry.latest_version == 1

    new = ic.add_subnet(SubnetConfig(SubnetKind.APPLICATION, 4))

    assert ic.registry.latest_version == 2
    assert [s.subnet_id for s in ic.subnets][-1] == new.subnet_id
    assert new.n == 4 and new.kind is SubnetKind.APPLICATION
    # its canister range is a fresh block of 2**20 ids that no other subnet holds
    (fresh,) = new.ranges
    assert fresh.end.canister_index() - fresh.start.canister_index() == 2**20 - 1
    assert all(not (r.start <= fresh.end and fresh.start <= r.end) for r in old.ranges)
    # every subnet took the new version through its blocks: each replica's batches
    # switch from version 1 to 2 at the same height and never go back
    ic.tick()
    for subnet in ic.subnets[:-1]:
        switches = set()
        for replica in subnet.replicas:
            versions = block_versions(ic, subnet.index, replica.node)
            assert versions == sorted(versions) and versions[-1] == 2, versions
            switches.add(versions.index(2))
        assert len(switches) == 1 and switches != {0}
    assert {v for r in new.replicas for v in block_versions(ic, new.index, r.node)} == {2}

    counter = create_canister(ic, new)
    assert ic.subnet_of(counter) is new and fresh.contains(counter)
    install(ic, counter, motoko("counter"))
    # calls cross between the old and the new subnet in both directions
    result = call(ic, caller, "call_inc", encode([Text], [counter.to_text()]))
    assert result.status == "replied", result
    assert decode(result.reply or b"", [Nat]) == [1]
    Certificate.from_cbor(result.certificate).verify(ic.root_key, caller)
    direct = call(ic, counter, "inc", NO_ARGS)
    assert decode(direct.reply or b"", [Nat]) == [2]
    Certificate.from_cbor(direct.certificate).verify(ic.root_key, counter)
    assert identical_states(ic)

    # the old subnet's certified state tree lists the new subnet and its key
    content = read_state_content(
        principal_of(ALICE), [[b"subnet", new.subnet_id.raw, b"public_key"]], ic.time() + 10**11
    )
    body = ic.read_state(envelope(content, ALICE), caller)
    cert = Certificate.from_cbor(cbor_decode(body)["certificate"])  # type: ignore[index]
    cert.verify(ic.root_key, caller)
    assert cert.lookup_value([b"subnet", new.subnet_id.raw, b"public_key"]) == new.public_key_der


def test_registry_refuses_overlapping_ranges_and_the_ic_keeps_running(
    motoko: Callable[[str], bytes],
) -> None:
    ic = small_ic()
    app = ic.applications[0]
    cid = create_canister(ic, app)
    install(ic, cid, motoko("counter"))
    with pytest.raises(RegistryError, match="overlap"):
        ic.add_subnet(ranges=[CanisterIdRange(app.ranges[0].end, app.ranges[0].end)])
    assert ic.registry.latest_version == 1 and len(ic.subnets) == 2
    with pytest.raises(ValueError, match="NNS"):
        ic.add_subnet(SubnetConfig(SubnetKind.NNS, 1))
    assert decode(call(ic, cid, "inc", NO_ARGS).reply or b"", [Nat]) == [1]


def test_a_subnet_for_a_chosen_range_hosts_an_id_nobody_hosted() -> None:
    ic = small_ic()
    lonely = Principal.from_text("zzztf-6qaaa-aaaah-qfsaa-cai")
    with pytest.raises(ICError, match="not in any subnet"):
        ic.subnet_of(lonely)
    index = lonely.canister_index()
    subnet = ic.add_subnet(ranges=[CanisterIdRange.from_indices(index, index + 9)])
    assert ic.subnet_of(lonely) is subnet
    assert subnet.ranges == (CanisterIdRange.from_indices(index, index + 9),)


def test_an_added_subnet_survives_a_restart(motoko: Callable[[str], bytes], tmp_path: Path) -> None:
    ic = small_ic(state_dir=tmp_path)
    new = ic.add_subnet(SubnetConfig(SubnetKind.SYSTEM, 1))
    cid = create_canister(ic, new)
    install(ic, cid, motoko("counter"))
    replies = [call(ic, cid, "inc", NO_ARGS) for _ in range(3)]
    subnet_id, version = new.subnet_id, ic.registry.latest_version
    ic.close()

    # restarted later (as ``icp start`` does, with the current time): the registry's
    # persisted genesis times are kept
    again = small_ic(state_dir=tmp_path, time=ic.time() + 3600 * 10**9)
    assert again.registry.latest_version == version
    assert again.registry.changes == ic.registry.changes
    restored = again.subnet_of(cid)
    assert restored.subnet_id == subnet_id and restored.kind is SubnetKind.SYSTEM
    for result in replies:  # every replied update is still replied, with the same reply
        status = again.request_status(result.request_id, cid)
        assert status is not None and status.reply == result.reply
    assert decode(call(again, cid, "inc", NO_ARGS).reply or b"", [Nat]) == [4]
    assert identical_states(again)


def test_a_state_dir_from_another_seed_is_refused(tmp_path: Path) -> None:
    small_ic(state_dir=tmp_path).close()
    with pytest.raises(ICError, match="different IC"):
        InternetComputer(
            [SubnetConfig(SubnetKind.NNS, 1), SubnetConfig(SubnetKind.APPLICATION, 2)],
            seed=32,
            state_dir=tmp_path,
        )

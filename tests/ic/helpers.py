"""Helpers for end-to-end IC tests: an identity, signed calls, canister setup."""

from __future__ import annotations

from pathlib import Path

from icp import Principal
from icp.candid import decode, encode
from icp.crypto.user_sig import Ed25519Identity, principal_of
from icp.execution.management import CanisterIdRecord, InstallCodeArgs, ProvisionalCreateArgs
from icp.ic import CallResult, InternetComputer, Subnet
from icp.testing import call_content, envelope

CANISTERS = Path(__file__).resolve().parent.parent / "canisters"
ALICE = Ed25519Identity.from_seed(b"\x0a" * 32)
BOB = Ed25519Identity.from_seed(b"\x0b" * 32)
MGMT = Principal.management_canister()


def call(
    ic: InternetComputer,
    canister: Principal,
    method: str,
    arg: bytes,
    ecid: Principal | None = None,
    identity: Ed25519Identity = ALICE,
) -> CallResult:
    """Submit a signed update call and wait for its certified outcome."""
    content = call_content(
        "call", principal_of(identity), canister, method, arg, ic.time() + 120 * 10**9
    )
    return ic.call_and_wait(envelope(content, identity), ecid or canister)


def create_canister(ic: InternetComputer, subnet: Subnet) -> Principal:
    """Create a canister on ``subnet`` controlled by ALICE."""
    arg = encode(
        [ProvisionalCreateArgs],
        [{"amount": None, "settings": None, "specified_id": None, "sender_canister_version": None}],
    )
    result = call(ic, MGMT, "provisional_create_canister_with_cycles", arg, subnet.ranges[0].start)
    assert result.status == "replied", result
    assert result.reply is not None
    cid: Principal = decode(result.reply, [CanisterIdRecord])[0]["canister_id"]
    return cid


def install(ic: InternetComputer, cid: Principal, wasm: bytes, arg: bytes | None = None) -> None:
    """Install ``wasm`` into ``cid`` as ALICE."""
    payload = encode(
        [InstallCodeArgs],
        [
            {
                "mode": {"install": None},
                "canister_id": cid,
                "wasm_module": wasm,
                "arg": arg if arg is not None else encode([], []),
                "sender_canister_version": None,
            }
        ],
    )
    result = call(ic, MGMT, "install_code", payload, cid)
    assert result.status == "replied", result


def identical_states(ic: InternetComputer) -> bool:
    """Return whether every subnet's replicas agree on the root hash of a common height."""
    return all(ic.state_hashes().values())

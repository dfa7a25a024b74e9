"""Fixtures for execution tests: canisters built from source once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime

from icp import Principal
from icp.build import compile_motoko
from icp.candid import decode, encode
from icp.execution.cycles import ExecutionLimits
from icp.execution.executor import ExecutionEnvironment
from icp.execution.management import CanisterIdRecord, InstallCodeArgs, ProvisionalCreateArgs
from icp.execution.router import Router
from icp.execution.system_api import Reply, Response
from icp.execution.wasmtime_engine import WasmtimeEngine

CANISTERS = Path(__file__).resolve().parent.parent / "canisters"
USER = Principal.self_authenticating(b"\x30" * 44).bytes


@pytest.fixture(scope="session")
def motoko() -> Callable[[str], bytes]:
    """Compile a Motoko test canister by directory name (cached on disk and in memory)."""
    built: dict[str, bytes] = {}

    def get(name: str) -> bytes:
        if name not in built:
            built[name] = compile_motoko(CANISTERS / name)
        return built[name]

    return get


@pytest.fixture(scope="session")
def wat_counter() -> bytes:
    """The hand-written wasm32 test canister."""
    return wasmtime.wat2wasm((CANISTERS / "wat" / "counter.wat").read_text())


@pytest.fixture(scope="session")
def engine() -> WasmtimeEngine:
    """One wasmtime engine (compiled-module cache) for the session."""
    return WasmtimeEngine()


class Harness:
    """A router plus helpers to create, install and call canisters as USER."""

    user = USER

    def __init__(self, router: Router) -> None:
        self.router = router

    def create(self, cycles: int | None = None) -> bytes:
        """Create a canister controlled by USER via the management canister."""
        arg = encode(
            [ProvisionalCreateArgs],
            [
                {
                    "amount": cycles,
                    "settings": None,
                    "specified_id": None,
                    "sender_canister_version": None,
                }
            ],
        )
        rep = self.router.update(USER, b"", "provisional_create_canister_with_cycles", arg)
        assert isinstance(rep, Reply), rep
        return bytes(decode(rep.data, [CanisterIdRecord])[0]["canister_id"].bytes)

    def install(
        self,
        cid: bytes,
        wasm: bytes,
        mode: str = "install",
        arg: bytes | None = None,
        keep: bool = False,
    ) -> Response:
        """Install code via the management canister; return the response."""
        m: dict[str, object]
        if mode == "upgrade":
            opts = {
                "skip_pre_upgrade": None,
                "wasm_memory_persistence": {"keep": None} if keep else None,
            }
            m = {"upgrade": opts}
        else:
            m = {mode: None}
        payload = encode(
            [InstallCodeArgs],
            [
                {
                    "mode": m,
                    "canister_id": Principal.from_bytes(cid),
                    "wasm_module": wasm,
                    "arg": NO_ARGS if arg is None else arg,
                    "sender_canister_version": None,
                }
            ],
        )
        return self.router.update(USER, b"", "install_code", payload)

    def deploy(self, wasm: bytes, cycles: int | None = None) -> bytes:
        """Create and install; return the canister id."""
        cid = self.create(cycles)
        rep = self.install(cid, wasm)
        assert isinstance(rep, Reply), rep
        return cid

    def update(self, cid: bytes, method: str, arg: bytes = b"") -> Response:
        """Ingress update as USER."""
        return self.router.update(USER, cid, method, arg or NO_ARGS)

    def query(self, cid: bytes, method: str, arg: bytes = b"") -> Response:
        """Non-replicated query as USER."""
        return self.router.query(USER, cid, method, arg or NO_ARGS)


NO_ARGS = encode([], [])


def make_env(engine: WasmtimeEngine, per_message: int = 2_000_000_000) -> ExecutionEnvironment:
    """An application-subnet environment with a smaller per-message limit."""
    return ExecutionEnvironment(engine=engine, limits=ExecutionLimits.testing(per_message))


@pytest.fixture
def harness(engine: WasmtimeEngine) -> Harness:
    """A fresh subnet with a 2 B instruction limit per message (hostile tests stay fast)."""
    return Harness(Router(make_env(engine)))

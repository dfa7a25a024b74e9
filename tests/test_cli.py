"""The command line: ``icp demo``, ``icp start`` (ports, Ctrl-C, restart), ``icp canister``."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from icp.cli import app
from icp.crypto.hashing import cbor_decode
from icp.http.client import Agent
from icp.principal import Principal
from tests.e2e.helpers import REPO, IcpProcess, free_port

pytestmark = pytest.mark.timeout(150)
COUNTER = REPO / "tests" / "canisters" / "counter"


def test_demo_runs_an_ic_builds_a_canister_and_shows_a_certified_reply() -> None:
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "ryjl3-tyaaa-aaaaa-aaaba-cai" in result.output
    assert "2vxsx-fae" in result.output
    assert "replied" in result.output and "(3 : nat)" in result.output
    assert "verified" in result.output and "BLS12-381" in result.output


def test_start_refuses_a_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "icp.cli", "start", "--port", str(port)],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"port {port}" in done.stderr and "already in use" in done.stderr


def _cli(args: list[str], url: str, seed_file: Path) -> tuple[int, str]:
    env = {"ICP_URL": url, "ICP_IDENTITY": str(seed_file), "COLUMNS": "200"}
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.output


def test_canister_commands_and_a_restart_that_keeps_everything(tmp_path: Path) -> None:
    seed_file = tmp_path / "id.seed"
    seed_file.write_text("22" * 32)
    state = tmp_path / "state"
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0\x05garbage")
    server = IcpProcess(["--nodes", "1", "--state-dir", str(state)], free_port())
    try:
        url = server.url
        code, out = _cli(["canister", "create"], url, seed_file)
        assert code == 0, out
        cid = out.strip()
        assert Principal.from_text(cid).to_text() == cid
        code, out = _cli(["canister", "install", cid, str(bad)], url, seed_file)
        assert code == 1 and "not a valid Wasm module" in out
        code, out = _cli(["canister", "install", cid, str(COUNTER)], url, seed_file)
        assert code == 0, out
        code, out = _cli(["canister", "call", cid, "add", "(41 : nat)"], url, seed_file)
        assert (code, out.strip()) == (0, "(41)"), out
        code, out = _cli(
            ["canister", "query", cid, "get", "--types", "() -> (nat)"], url, seed_file
        )
        assert (code, out.strip()) == (0, "(41)"), out
        code, out = _cli(["canister", "status", cid], url, seed_file)
        assert code == 0 and "running" in out and "module hash" in out, out
        # a replied request whose status must survive the restart
        agent = Agent(url)
        content = agent._content(
            "call", canister_id=Principal.from_text(cid).raw, method_name="inc",
            arg=b"DIDL\0\0",
        )  # fmt: skip
        rid, body = agent._envelope(content)
        status, data = agent._http(f"/api/v3/canister/{cid}/call", body)
        assert status == 200 and cbor_decode(data)["status"] == "replied"
        time.sleep(1.5)  # let a few more heights be finalized and persisted
    finally:
        tail = server.stop()
    assert "stopped" in tail
    server = IcpProcess(["--nodes", "1", "--state-dir", str(state)], free_port())
    try:
        url = server.url
        code, out = _cli(["canister", "call", cid, "inc", "--types", "() -> (nat)"], url, seed_file)
        assert (code, out.strip()) == (0, "(43)"), out
        cert = Agent(url).read_state(Principal.from_text(cid), [[b"request_status", rid]])
        assert cert.lookup_value([b"request_status", rid, b"status"]) == b"replied"
        code, out = _cli(["canister", "stop", cid], url, seed_file)
        assert code == 0, out
        code, out = _cli(["canister", "call", cid, "inc"], url, seed_file)
        assert code == 1 and "stopped" in out, out
        code, out = _cli(["canister", "delete", cid], url, seed_file)
        assert code == 0, out
        code, out = _cli(["canister", "query", cid, "get"], url, seed_file)
        assert code == 1 and "not found" in out, out
        code, out = _cli(["status"], url, seed_file)
        assert code == 0 and "application" in out, out
    finally:
        server.stop()

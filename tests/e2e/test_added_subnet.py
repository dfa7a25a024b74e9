"""@dfinity/agent 3.x against a subnet created on the running IC (``add_subnet``).

The agent learns the new subnet only through what the IC certifies: the NNS
delegation to the new subnet's key (with its canister ranges) and the subnet's node
keys from read_state.
Spec: interface spec §2 (certification, delegations); protocol digest §6.2 step 4.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from icp.ic import SubnetConfig, SubnetKind
from icp.principal import Principal
from tests.e2e.helpers import REPO
from tests.http.helpers import ServerThread, new_ic

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]


@pytest.fixture(scope="module")
def grown() -> Iterator[ServerThread]:
    """An IC (NNS + one 4-node subnet) that got a third, 2-node subnet at run time."""
    ic = new_ic(nodes=4, seed=21)
    ic.add_subnet(SubnetConfig(SubnetKind.APPLICATION, 2))
    server = ServerThread(ic)
    try:
        yield server
    finally:
        server.stop()


def test_agent_js_uses_a_subnet_added_at_run_time(grown: ServerThread, counter_wasm: Path) -> None:
    added = grown.ic.subnets[-1]
    (block,) = added.ranges
    done = subprocess.run(
        ["node", str(REPO / "tests/e2e/agent_js.mjs"), grown.url, str(counter_wasm),
         block.start.to_text()],
        capture_output=True, text=True, timeout=150, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    out = json.loads(done.stdout.strip().splitlines()[-1])
    cid = Principal.from_text(out["canisterId"])
    assert block.contains(cid) and grown.ic.subnet_of(cid) is added
    assert (out["inc1"], out["add"], out["get"]) == ("1", "42", "42")
    assert "Reject code: 5" in out["trap"] and out["getAfterTrap"] == "42"
    assert out["nodeKeys"] == added.n  # the agent read the new subnet's node keys

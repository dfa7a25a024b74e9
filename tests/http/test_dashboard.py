"""The dashboard page, loaded by headless Chromium: it renders live data from the IC."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from icp.candid import encode
from icp.crypto.user_sig import principal_of
from icp.execution.management import ProvisionalCreateArgs
from icp.principal import Principal
from tests.http.helpers import ServerThread, call_body, decode, http, identity, new_ic

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(new_ic(nodes=4, seed=11))
    yield srv
    srv.stop()


def chromium(url: str, profile: Path, *extra: str) -> str:
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=3000",
         *extra, url],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_dashboard_renders_subnets_nodes_blocks_and_canisters(
    server: ServerThread, tmp_path: Path
) -> None:
    who = identity(5)
    arg = encode(
        [ProvisionalCreateArgs],
        [{"amount": 123 * 10**10, "settings": {"controllers": [principal_of(who)]},
          "specified_id": None, "sender_canister_version": None}],
    )  # fmt: skip
    body = call_body(
        who, Principal.management_canister(), "provisional_create_canister_with_cycles", arg
    )
    status, _, data = http(f"{server.url}/api/v3/canister/aaaaa-aa/call", body)
    assert status == 200 and decode(data)["status"] == "replied"
    dom = chromium(f"{server.url}/_/dashboard", tmp_path / "profile", "--dump-dom")
    for subnet in server.ic.subnets:
        assert f'data-subnet="{subnet.subnet_id}"' in dom
    heights = [int(h) for h in re.findall(r'<b class="finalized">(\d+)</b>', dom)]
    assert len(heights) == 2 and min(heights) > 0
    rows = re.findall(r'<tr class="canister"><td>([a-z0-9-]+)</td><td>([\d,]+)</td>', dom)
    assert len(rows) == 1
    cid, cycles = rows[0]
    assert server.ic.applications[0].ranges[0].contains(Principal.from_text(cid))
    assert 0 < int(cycles.replace(",", "")) <= 123 * 10**10
    assert dom.count("<td>") > 40  # node and block tables are filled
    main = dom[dom.index('<main id="subnets">') : dom.index("</main>")]
    assert "cannot reach the IC" not in main and "loading" not in main

"""The ``icp`` command line: ``icp demo`` and (later) ``icp start`` / ``icp canister``.

This module is an edge: it may print, read the clock and touch the disk; the
protocol code it drives may not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from icp.ic import InternetComputer

app = typer.Typer(help="The Internet Computer in a Python process.", no_args_is_help=True)


@app.callback()
def _root() -> None:
    """The Internet Computer in a Python process."""


def _demo_identifiers(console: Console) -> None:
    from icp.crypto.hashing import request_id
    from icp.ledger import AccountIdentifier
    from icp.principal import Principal

    table = Table(title="Identifiers (interface spec §Principals, ledger §Accounts)")
    table.add_column("what")
    table.add_column("value")
    ledger = Principal.from_text("ryjl3-tyaaa-aaaaa-aaaba-cai")
    table.add_row("ICP ledger canister id", f"{ledger} = {ledger.to_hex()}")
    table.add_row("anonymous principal", str(Principal.anonymous()))
    table.add_row(
        "anonymous account id", AccountIdentifier.from_principal(Principal.anonymous()).to_hex()
    )
    content = {
        "request_type": "call",
        "sender": b"\x04",
        "ingress_expiry": 1685570400000000000,
        "canister_id": bytes.fromhex("00000000000004D2"),
        "method_name": "hello",
        "arg": b"DIDL\x00\xfd*",
    }
    table.add_row("request id of the spec's example call", request_id(content).hex())
    console.print(table)


@app.command()
def demo() -> None:
    """Show what icp can do today, end to end, and exit 0."""
    console = Console()
    console.rule("icp demo")
    _demo_identifiers(console)
    console.rule("done")


def _start_ic(subnets: int, nodes: int, state_dir: Path | None, seed: int) -> InternetComputer:
    from icp.http.server import wall_clock_ns
    from icp.ic import InternetComputer

    return InternetComputer(
        nodes=nodes, applications=subnets, seed=seed, time=wall_clock_ns(), state_dir=state_dir
    )


@app.command()
def start(
    port: int = typer.Option(4943, help="TCP port of the HTTP interface (dfx uses 4943)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    subnets: int = typer.Option(1, min=0, help="Number of application subnets."),
    nodes: int = typer.Option(4, min=1, help="Nodes per subnet."),
    state_dir: Path | None = typer.Option(  # noqa: B008
        None, help="Directory that keeps the IC's state; restarting with it resumes."
    ),
    seed: int = typer.Option(0, help="Seed of every key and network delay."),
) -> None:
    """Run an IC and serve the IC HTTP interface (and /_/dashboard) until Ctrl-C."""
    import asyncio
    import errno
    import socket

    from icp.http.server import serve

    console = Console()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                console.print(
                    f"[red]error:[/] port {port} on {host} is already in use (another "
                    f"`icp start` or `dfx start`?). Stop it or pick another with --port."
                )
                raise typer.Exit(2) from None
            raise
    with console.status("building the IC (keys, genesis, first certified states)..."):
        ic = _start_ic(subnets, nodes, state_dir, seed)

    def ready(bound: int) -> None:
        url = f"http://{host}:{bound}"
        lines = [
            f"icp: IC HTTP interface listening on {url}",
            f"icp: dashboard at {url}/_/dashboard",
            f"icp: root key {ic.root_key.hex()}",
        ]
        for subnet in ic.subnets:
            first = subnet.ranges[0].start if subnet.ranges else "-"
            lines.append(
                f"icp: {subnet.kind.value} subnet {subnet.subnet_id} "
                f"({subnet.n} nodes, canister ids from {first})"
            )
        print("\n".join(lines), flush=True)

    try:
        asyncio.run(serve(ic, host=host, port=port, ready=ready))
    except KeyboardInterrupt:
        console.print("icp: stopped")
    except OSError as exc:
        console.print(f"[red]error:[/] cannot listen on {host}:{port}: {exc}")
        raise typer.Exit(2) from None
    finally:
        ic.close()


def main() -> None:
    """Entry point of the ``icp`` console script."""
    app()


if __name__ == "__main__":
    main()

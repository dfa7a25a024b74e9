"""The ``icp`` command line: ``icp demo`` and (later) ``icp start`` / ``icp canister``.

This module is an edge: it may print, read the clock and touch the disk; the
protocol code it drives may not.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

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


def main() -> None:
    """Entry point of the ``icp`` console script."""
    app()


if __name__ == "__main__":
    main()

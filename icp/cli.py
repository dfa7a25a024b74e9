"""The ``icp`` command line: ``icp demo`` and (later) ``icp start`` / ``icp canister``.

This module is an edge: it may print, read the clock and touch the disk; the
protocol code it drives may not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from icp.ic import InternetComputer

T = TypeVar("T")

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


def _demo_network(console: Console, source: Path) -> None:
    """Run a small IC in process: blocks finalize, a Motoko canister answers, certified."""
    import time

    from rich.live import Live
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from icp.build import compile_motoko
    from icp.candid import decode, encode
    from icp.candid.types import Nat
    from icp.crypto.certificate import Certificate
    from icp.crypto.user_sig import Ed25519Identity, principal_of
    from icp.execution.management import CanisterIdRecord, InstallCodeArgs, ProvisionalCreateArgs
    from icp.ic import CallResult, InternetComputer
    from icp.principal import Principal
    from icp.testing import call_content, envelope

    me = Ed25519Identity.from_seed(bytes(range(32)))
    sender = principal_of(me)
    mgmt = Principal.management_canister()

    def call(
        ic: InternetComputer, canister: Principal, method: str, arg: bytes, ecid: Principal
    ) -> CallResult:
        content = call_content("call", sender, canister, method, arg, ic.now + 240 * 10**9)
        return ic.call_and_wait(envelope(content, me), ecid)

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with progress:
        task = progress.add_task("compiling the Motoko counter (moc via npm)...", total=None)
        wasm = compile_motoko(source)
        progress.update(task, description=f"compiled {len(wasm):,} bytes of Wasm")
        progress.stop_task(task)
        task = progress.add_task("building an IC: NNS + 1 application subnet x 4 nodes...")
        ic = InternetComputer(nodes=4, applications=1, seed=2024)
        progress.stop_task(task)
    app_subnet = ic.applications[0]

    def heights() -> Table:
        table = Table(title="consensus (threshold BLS, virtual time)")
        for column in ("subnet", "kind", "finalized", "certified", "IC time"):
            table.add_column(column)
        for subnet in ic.subnets:
            table.add_row(
                str(subnet.subnet_id)[:23] + "...",
                subnet.kind.value,
                str(max(r.finalized_height() for r in subnet.replicas)),
                str(subnet.certified_height()),
                f"{(ic.now - ic.genesis_time) / 1e9:.1f} s",
            )
        return table

    with Live(heights(), console=console, refresh_per_second=8) as live:
        for _ in range(6):
            ic.tick()
            live.update(heights())
            time.sleep(0.05)
    console.print()
    create = encode(
        [ProvisionalCreateArgs],
        [{"amount": 10**13, "settings": {"controllers": [sender]}, "specified_id": None,
          "sender_canister_version": None}],
    )  # fmt: skip
    start = app_subnet.ranges[0].start
    created = call(ic, mgmt, "provisional_create_canister_with_cycles", create, start)
    assert created.reply is not None
    cid = decode(created.reply, [CanisterIdRecord])[0]["canister_id"]
    console.print(f"created canister [bold]{cid}[/] on subnet {app_subnet.subnet_id}")
    install = encode(
        [InstallCodeArgs],
        [{"mode": {"install": None}, "canister_id": cid, "wasm_module": wasm,
          "arg": encode([], []), "sender_canister_version": None}],
    )  # fmt: skip
    call(ic, mgmt, "install_code", install, cid)
    console.print("installed the counter; calling inc() three times through consensus...")
    result = None
    for _ in range(3):
        result = call(ic, cid, "inc", encode([], []), cid)
    assert result is not None and result.reply is not None
    cert = Certificate.from_cbor(result.certificate)
    cert.verify(ic.root_key, cid)
    table = Table(title="certified reply of the last inc()")
    table.add_column("what")
    table.add_column("value")
    table.add_row("request id", result.request_id.hex())
    table.add_row("status", result.status)
    table.add_row("reply", f"({decode(result.reply, [Nat])[0]} : nat)")
    table.add_row("certificate", f"{len(result.certificate):,} bytes, delegation NNS -> app subnet")
    table.add_row("signature", "BLS12-381 threshold signature: verified against the root key")
    table.add_row("certified time", str(cert.time()))
    console.print(table)
    console.print(heights())
    ic.close()


@app.command()
def demo(
    source: Path = typer.Option(  # noqa: B008
        Path(__file__).resolve().parent.parent / "tests" / "canisters" / "counter",  # noqa: B008
        help="Motoko canister (directory with Main.mo, or a .mo file) to build and call.",
    ),
    network: bool = typer.Option(True, help="Run the in-process IC part of the demo."),
) -> None:
    """Run a small IC in process: consensus, a Motoko canister, a certified reply; exit 0."""
    from icp.build import BuildError

    console = Console()
    console.rule("icp demo")
    _demo_identifiers(console)
    if network:
        try:
            _demo_network(console, source)
        except BuildError as exc:
            console.print(f"[red]error:[/] cannot build {source}: {exc}")
            console.print("Is the npm toolchain installed?  Run `npm ci` in the repository.")
            raise typer.Exit(1) from None
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
    sync_call_timeout: float = typer.Option(
        10.0, min=0.0, help="Seconds /api/v3 calls wait for a certified reply before 202."
    ),
) -> None:
    """Run an IC and serve the IC HTTP interface (and /_/dashboard) until Ctrl-C."""
    import asyncio
    import errno
    import socket

    from icp.http.server import serve

    console = Console()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                _errors().print(
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

    async def run() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(
            ic, host=host, port=port, ready=ready, stop=stop, sync_call_timeout=sync_call_timeout
        )

    try:
        import importlib.util

        if importlib.util.find_spec("uvloop") is not None:  # optional, faster event loop
            importlib.import_module("uvloop").run(run())
        else:
            asyncio.run(run())
        print("icp: stopped", flush=True)
    except KeyboardInterrupt:
        print("icp: stopped", flush=True)
    except OSError as exc:
        console.print(f"[red]error:[/] cannot listen on {host}:{port}: {exc}")
        raise typer.Exit(2) from None
    finally:
        ic.close()


# -- talking to a running instance ---------------------------------------------------------

canister_app = typer.Typer(help="Create, install, call and manage canisters on `icp start`.")
app.add_typer(canister_app, name="canister")

URL_OPTION = typer.Option("http://127.0.0.1:4943", envvar="ICP_URL", help="The IC's HTTP URL.")
IDENTITY_OPTION = typer.Option(
    None, envvar="ICP_IDENTITY", help="File with a 32-byte Ed25519 seed in hex (default: ~/.icp)."
)


def _identity(path: Path | None) -> Any:
    """Load (or create once, like dfx's default identity) the Ed25519 identity."""
    import secrets

    from icp.crypto.user_sig import Ed25519Identity

    file = path or Path.home() / ".icp" / "identity.seed"
    if not file.exists():
        if path is not None:
            raise typer.BadParameter(f"identity file {file} does not exist")
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(secrets.token_hex(32) + "\n")
        file.chmod(0o600)
    try:
        return Ed25519Identity.from_seed(bytes.fromhex(file.read_text().strip()))
    except ValueError as exc:
        raise typer.BadParameter(f"{file}: not a 32-byte hex seed ({exc})") from None


def _agent(url: str, identity: Path | None) -> Any:
    from icp.http.client import Agent

    return Agent(url, _identity(identity))


def _run(console: Console, action: Callable[[], T]) -> T:
    """Run a request, turning agent, Candid and build errors into a message and exit 1."""
    from icp.build import BuildError
    from icp.candid import CandidError
    from icp.crypto.errors import CertificateError
    from icp.http.client import AgentError

    try:
        return action()
    except (AgentError, CandidError, BuildError, CertificateError, OSError) as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _errors() -> Console:
    """Return the console for error messages (stderr, lines not wrapped)."""
    return Console(stderr=True, soft_wrap=True)


def _principal(text: str) -> Any:
    from icp.principal import Principal

    try:
        return Principal.from_text(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a principal: {exc}") from None


def _mgmt_call(agent: Any, method: str, arg_type: Any, value: Any, ecid: Any) -> bytes:
    from icp.candid import encode
    from icp.principal import Principal

    data = agent.call(
        Principal.management_canister(), method, encode([arg_type], [value]), ecid=ecid
    )
    return bytes(data)


def _first_app_canister(url: str) -> str:
    """Return the first canister id of the first application subnet (from the dashboard)."""
    import json
    import urllib.request

    with urllib.request.urlopen(url.rstrip("/") + "/_/dashboard.json", timeout=30) as r:
        view = json.loads(r.read())
    for subnet in view["subnets"]:
        if subnet["kind"] == "application" and subnet["ranges"]:
            return str(subnet["ranges"][0][0])
    return str(view["subnets"][0]["ranges"][0][0])


@canister_app.command("create")
def canister_create(
    cycles: int = typer.Option(10**13, help="Cycles to give the new canister."),
    ecid: str | None = typer.Option(
        None, help="Effective canister id (picks the subnet; default: first app subnet)."
    ),
    url: str = URL_OPTION,
    identity: Path | None = IDENTITY_OPTION,
) -> None:
    """Create an empty canister (provisional, as on a local instance); print its id."""
    from icp.candid import decode
    from icp.execution.management import CanisterIdRecord, ProvisionalCreateArgs

    console = _errors()
    agent = _agent(url, identity)
    target = (
        _principal(ecid) if ecid else _run(console, lambda: _principal(_first_app_canister(url)))
    )
    value = {"amount": cycles, "settings": {"controllers": [agent.sender]},
             "specified_id": None, "sender_canister_version": None}  # fmt: skip
    reply = _run(
        console,
        lambda: _mgmt_call(
            agent, "provisional_create_canister_with_cycles", ProvisionalCreateArgs, value,
            target,
        ),
    )  # fmt: skip
    print(decode(reply, [CanisterIdRecord])[0]["canister_id"])


def _load_wasm(path: Path) -> bytes:
    """Read a .wasm (or .wasm.gz), or build a .mo / Motoko directory; check it validates."""
    import gzip

    import wasmtime

    from icp.build import compile_motoko
    from icp.http.client import AgentError

    if path.is_dir() or path.suffix == ".mo":
        return compile_motoko(path)
    data = path.read_bytes()
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    try:
        wasmtime.Module.validate(wasmtime.Engine(), raw)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AgentError(f"{path} is not a valid Wasm module: {first}") from None
    return data


@canister_app.command("install")
def canister_install(
    canister_id: str,
    wasm: Path = typer.Argument(..., help=".wasm / .wasm.gz file, .mo file or Motoko dir."),  # noqa: B008
    mode: str = typer.Option("install", help="install, reinstall or upgrade."),
    arg: str | None = typer.Option(None, help="Init argument in Candid text, e.g. '(1 : nat)'."),
    url: str = URL_OPTION,
    identity: Path | None = IDENTITY_OPTION,
) -> None:
    """Install code into a canister."""
    from icp.execution.management import InstallCodeArgs
    from icp.http.candid_args import encode_text_args

    console = _errors()
    if mode not in ("install", "reinstall", "upgrade"):
        raise typer.BadParameter("mode is install, reinstall or upgrade")
    cid = _principal(canister_id)
    agent = _agent(url, identity)

    def install() -> None:
        module = _load_wasm(wasm)
        value = {"mode": {mode: None}, "canister_id": cid, "wasm_module": module,
                 "arg": encode_text_args(arg, None), "sender_canister_version": None}  # fmt: skip
        _mgmt_call(agent, "install_code", InstallCodeArgs, value, cid)

    _run(console, install)
    console.print(f"installed {wasm} into {cid} ({mode})", highlight=False)


def _call_or_query(
    kind: str, canister_id: str, method: str, args: str | None, did: Path | None,
    types: str | None, url: str, identity: Path | None,
) -> None:  # fmt: skip
    from icp.http.candid_args import encode_text_args, method_types, reply_text

    console = _errors()
    cid = _principal(canister_id)
    agent = _agent(url, identity)

    def run() -> str:
        signature = method_types(method, did, types)
        arg = encode_text_args(args, signature[0] if signature else None)
        send = agent.call if kind == "call" else agent.query
        return reply_text(send(cid, method, arg), signature[1] if signature else None)

    print(_run(console, run))


@canister_app.command("call")
def canister_call(
    canister_id: str,
    method: str,
    args: str | None = typer.Argument(None, help="Arguments in Candid text: '(41 : nat)'."),
    did: Path | None = typer.Option(None, help=".did file giving the method's types."),  # noqa: B008
    types: str | None = typer.Option(None, help="Method type, e.g. '(nat) -> (nat)'."),
    url: str = URL_OPTION,
    identity: Path | None = IDENTITY_OPTION,
) -> None:
    """Make an update call (through consensus) and print the certified reply."""
    _call_or_query("call", canister_id, method, args, did, types, url, identity)


@canister_app.command("query")
def canister_query(
    canister_id: str,
    method: str,
    args: str | None = typer.Argument(None, help="Arguments in Candid text: '(41 : nat)'."),
    did: Path | None = typer.Option(None, help=".did file giving the method's types."),  # noqa: B008
    types: str | None = typer.Option(None, help="Method type, e.g. '(nat) -> (nat)'."),
    url: str = URL_OPTION,
    identity: Path | None = IDENTITY_OPTION,
) -> None:
    """Make a query (one node, signed response) and print the reply."""
    _call_or_query("query", canister_id, method, args, did, types, url, identity)


def _simple_mgmt(method: str, canister_id: str, url: str, identity: Path | None) -> bytes:
    from icp.execution.management import CanisterIdRecord

    cid = _principal(canister_id)
    agent = _agent(url, identity)
    return _run(
        _errors(), lambda: _mgmt_call(agent, method, CanisterIdRecord, {"canister_id": cid}, cid)
    )


@canister_app.command("status")
def canister_status(
    canister_id: str, url: str = URL_OPTION, identity: Path | None = IDENTITY_OPTION
) -> None:
    """Show a canister's status, module hash, cycles, memory and controllers."""
    from icp.candid import decode
    from icp.execution.management import CanisterStatusResult

    reply = _simple_mgmt("canister_status", canister_id, url, identity)
    status = decode(reply, [CanisterStatusResult])[0]
    table = Table(title=f"canister {canister_id}")
    table.add_column("field")
    table.add_column("value")
    module_hash = status.get("module_hash")
    table.add_row("status", next(iter(status["status"])))
    table.add_row("module hash", module_hash.hex() if isinstance(module_hash, bytes) else "-")
    table.add_row("cycles", f"{status['cycles']:,}")
    table.add_row("memory", f"{status['memory_size']:,} bytes")
    controllers = status["settings"]["controllers"]
    table.add_row("controllers", ", ".join(str(c) for c in controllers))
    Console().print(table)


@canister_app.command("stop")
def canister_stop(
    canister_id: str, url: str = URL_OPTION, identity: Path | None = IDENTITY_OPTION
) -> None:
    """Stop a canister (it finishes open calls, then accepts none)."""
    _simple_mgmt("stop_canister", canister_id, url, identity)
    print(f"stopped {canister_id}")


@canister_app.command("start")
def canister_start(
    canister_id: str, url: str = URL_OPTION, identity: Path | None = IDENTITY_OPTION
) -> None:
    """Start a stopped canister."""
    _simple_mgmt("start_canister", canister_id, url, identity)
    print(f"started {canister_id}")


@canister_app.command("delete")
def canister_delete(
    canister_id: str, url: str = URL_OPTION, identity: Path | None = IDENTITY_OPTION
) -> None:
    """Delete a stopped canister."""
    _simple_mgmt("delete_canister", canister_id, url, identity)
    print(f"deleted {canister_id}")


@app.command()
def status(url: str = URL_OPTION) -> None:
    """Show a running instance: root key, subnets, heights and canisters."""
    import json
    import urllib.request

    from icp.http.client import Agent

    console = Console()
    agent = Agent(url)
    info = _run(_errors(), agent.status)
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/_/dashboard.json", timeout=30) as r:
            view = json.loads(r.read())
    except OSError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(f"{url}: {info.get('replica_health_status')} ({info.get('impl_version')})")
    console.print(f"root key {bytes(info['root_key']).hex()}", highlight=False)
    table = Table(title="subnets")
    for column in ("subnet", "kind", "nodes", "finalized", "certified", "canisters"):
        table.add_column(column)
    for s in view["subnets"]:
        table.add_row(
            s["id"], s["kind"], str(len(s["nodes"])), str(s["finalized_height"]),
            str(s["certified_height"]), str(len(s["canisters"])),
        )  # fmt: skip
    console.print(table)


def main() -> None:
    """Entry point of the ``icp`` console script."""
    app()


if __name__ == "__main__":
    main()

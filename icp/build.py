"""Build canister Wasm from source: Motoko via the npm ``motoko`` package (moc.js), C via clang.

C canisters are compiled for ``wasm32-freestanding`` with clang as shipped by
the PyPI package ``ziglang`` (``python -m ziglang cc``), so no system compiler is
needed; the System API is reached through ``import_module("ic0")`` attributes.

Each compilation runs in its own ``node`` process (moc.js output depends on
what the same process compiled before) and is cached on disk by the SHA-256 of
the sources, the entry file name and the compiler package version, so test
sessions compile each canister once.  Compiled binaries are never committed.

Spec: Motoko compiler ``moc`` (``mo.wasm(file, 'ic')`` emits an IC canister
module with enhanced orthogonal persistence, i.e. memory64).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class BuildError(Exception):
    """Compilation failed; the message carries the compiler diagnostics."""


_NODE_SCRIPT = r"""
const path = require('path');
const root = process.argv[1];
const mo = require(path.join(root, 'node_modules', 'motoko'));
const pkg = path.join(root, 'node_modules', 'motoko', 'packages', 'latest', 'core.json');
mo.loadPackage(require(pkg));
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const req = JSON.parse(input);
  for (const [name, src] of Object.entries(req.files)) mo.write(name, src);
  let r;
  try { r = mo.wasm(req.entry, 'ic'); }
  catch (e) { process.stderr.write(String(e && e.message || e)); process.exit(2); }
  if (!r || !r.wasm) {
    process.stderr.write(JSON.stringify(r && r.diagnostics || r)); process.exit(3);
  }
  process.stdout.write(Buffer.from(r.wasm).toString('base64'));
});
"""


def _motoko_version(node_modules: Path) -> str:
    try:
        return str(json.loads((node_modules / "motoko" / "package.json").read_text())["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


def default_cache_dir() -> Path:
    """Return the build cache directory (``$ICP_BUILD_CACHE`` or ``~/.cache/icp/build``)."""
    env = os.environ.get("ICP_BUILD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "icp" / "build"


def _cached(cache_dir: Path | None, key: str, build: Callable[[], bytes]) -> bytes:
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    cached = cache / f"{key}.wasm"
    if cached.exists():
        return cached.read_bytes()
    wasm = build()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f"{key}.{os.getpid()}.tmp"
    tmp.write_bytes(wasm)
    tmp.replace(cached)
    return wasm


def compile_c(source: str | Path, *, cache_dir: Path | None = None, opt: str = "-O2") -> bytes:
    """Compile a C file (or a directory of ``.c`` files) to a wasm32 canister module.

    Raises ``BuildError`` with clang's diagnostics on failure, or when the
    ``ziglang`` package (the ``c`` extra / dev dependency) is not installed.
    """
    src = Path(source)
    files = sorted(src.glob("*.c")) if src.is_dir() else [src]
    if not files:
        raise BuildError(f"no C sources in {src}")
    h = hashlib.sha256(f"c {opt}\n".encode())
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")

    def build() -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "canister.wasm"
            cmd = [
                sys.executable, "-m", "ziglang", "cc", "--target=wasm32-freestanding", opt,
                "-nostdlib", "-Wl,--no-entry", "-o", str(out), *map(str, files),
            ]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
            if proc.returncode != 0:
                raise BuildError(
                    f"clang failed for {src}: {proc.stderr.decode(errors='replace')[:4000]}"
                )
            return out.read_bytes()

    return _cached(cache_dir, h.hexdigest(), build)


def compile_motoko(
    source: str | Path,
    *,
    cache_dir: Path | None = None,
    node: str = "node",
    root: Path = REPO_ROOT,
) -> bytes:
    """Compile a Motoko file (or a directory with ``Main.mo``) to canister Wasm bytes.

    All ``.mo`` files in the source's directory are made available to imports.
    Raises ``BuildError`` with the compiler's diagnostics on failure.
    """
    src = Path(source)
    entry_path = src / "Main.mo" if src.is_dir() else src
    base = entry_path.parent
    files = {p.name: p.read_text() for p in sorted(base.glob("*.mo"))}
    files.setdefault(entry_path.name, entry_path.read_text())
    version = _motoko_version(root / "node_modules")
    h = hashlib.sha256(f"motoko {version}\n{entry_path.name}\n".encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    req = json.dumps({"files": files, "entry": entry_path.name})

    def build() -> bytes:
        proc = subprocess.run(
            [node, "-e", _NODE_SCRIPT, str(root)],
            input=req.encode(),
            capture_output=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            raise BuildError(
                f"moc failed for {entry_path}: {proc.stderr.decode(errors='replace')[:4000]}"
            )
        return base64.b64decode(proc.stdout)

    return _cached(cache_dir, h.hexdigest(), build)

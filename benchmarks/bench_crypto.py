"""Benchmark icp.crypto against the raw native-library cost measured in the same run.

Run: ``python benchmarks/bench_crypto.py [--quick]``.  References (pyblst, same run):
one pairing check (two Miller loops + one final exponentiation) and one hash-to-G1.
For subnet sizes n = 4, 13, 28, 40 (threshold t = 2f+1, the IC's high threshold) it
prints: threshold combine of t shares, combine with batched share verification,
multi-signature aggregate + verify, batch verification of n shares versus n single
verifications, and NIDKG dealing creation / public verification / receiver
decryption, each with its ratio to one single BLS verification.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyblst

from icp.crypto import bls, multisig, nidkg, threshold


def best(fn: Callable[[], object], repeat: int = 5, number: int = 1) -> float:
    """Return the best seconds per call over ``repeat`` rounds of ``number`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms"


def main(quick: bool = False) -> None:
    message = b"\x0dic-state-root" + bytes(32)
    g1, g2 = bls.g1_generator(), bls.g2_generator()
    hashed = bls.hash_to_g1(message)
    pairing = best(
        lambda: pyblst.final_verify(pyblst.miller_loop(g1, g2), pyblst.miller_loop(hashed, g2)),
        number=20,
    )
    h2c = best(lambda: pyblst.BlstP1Element.hash_to_group(message, bls.DST_SIG), number=50)
    sk, pk = bls.keygen(b"bench")
    sig = bls.sign(sk, message)
    sign_t = best(lambda: bls.sign(sk, message), number=50)
    verify_t = best(lambda: bls.verify(pk, message, sig), number=20)
    print("reference (pyblst, this run)")
    print(f"  pairing check          {ms(pairing)}")
    print(f"  hash-to-G1             {ms(h2c)}")
    print("single BLS (icp.crypto.bls)")
    print(f"  sign                   {ms(sign_t)}   x{sign_t / h2c:6.2f} hash-to-G1")
    print(f"  verify                 {ms(verify_t)}   x{verify_t / pairing:6.2f} pairing check")
    print()
    header = f"{'n':>3} {'t':>3} {'op':<32} {'time':>12} {'/verify':>9}"
    print(header)
    sizes = (4, 13) if quick else (4, 13, 28, 40)
    for n in sizes:
        bench_size(n, message, verify_t)


def bench_size(n: int, message: bytes, verify_t: float) -> None:
    """Print the rows for subnet size ``n``."""
    f = (n - 1) // 3
    t = 2 * f + 1
    pk_t, shares = threshold.deal_trusted(b"bench-%d" % n, n, t)
    sig_shares = {s.index: threshold.sign_share(s, message) for s in shares}
    rows: list[tuple[str, float]] = []
    rows.append(
        ("threshold combine (t shares)", best(lambda: threshold.combine(pk_t, sig_shares), 3))
    )
    rows.append(
        (
            "combine_verified (n shares)",
            best(lambda: threshold.combine_verified(pk_t, message, sig_shares), 3),
        )
    )
    node_keys = [bls.keygen(b"node-%d-%d" % (n, i)) for i in range(n)]
    node_sigs = [bls.sign(k, message) for k, _ in node_keys]
    node_pks = [p for _, p in node_keys]
    signers = n - f
    rows.append(
        (
            f"multisig aggregate+verify ({signers})",
            best(
                lambda: multisig.verify_multi(
                    node_pks[:signers], message, multisig.aggregate(node_sigs[:signers])
                ),
                3,
            ),
        )
    )
    batch = best(lambda: multisig.batch_verify(node_pks, message, node_sigs), 3)
    single = best(
        lambda: [bls.verify(p, message, s) for p, s in zip(node_pks, node_sigs, strict=True)], 2
    )
    rows.append((f"batch_verify ({n} shares)", batch))
    rows.append((f"{n} single verifies", single))
    enc = [nidkg.encryption_keygen(b"enc-%d" % i) for i in range(n)]
    config = nidkg.NidkgConfig(b"bench", n, tuple(p for _, p in enc), t)
    dealing = nidkg.create_dealing(config, 0, b"seed")
    rows.append(("NIDKG create dealing", best(lambda: nidkg.create_dealing(config, 0, b"seed"), 2)))
    rows.append(
        (
            "NIDKG verify dealing (public)",
            best(lambda: nidkg.verify_dealing(config, dealing), 3),
        )
    )
    rows.append(
        (
            "NIDKG decrypt+check one share",
            best(lambda: nidkg.decrypt_dealing_share(config.dkg_id, dealing, 1, enc[1][0]), 3),
        )
    )
    for name, seconds in rows:
        print(f"{n:>3} {t:>3} {name:<32} {ms(seconds)} {seconds / verify_t:8.2f}x")
    print(f"{n:>3} {t:>3} {'batch / single ratio':<32} {batch / single:21.3f}")


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)

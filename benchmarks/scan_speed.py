"""Forward speed of the linear scan h_t = a_t * h_{t-1} + b_t: every method against a plain loop.

    python benchmarks/scan_speed.py [--device cpu|cuda] [--rounds 9]

Two shapes, float32, a uniform in (0, 1):

- narrow: a, b (1, 4096, 64): 64 numbers per time step, so the loop's cost is its per-step
  overhead (a few microseconds per PyTorch operation);
- wide: a, b (8, 4096, 64, 16) (b, t, d, n), 8192 numbers per step and 128 MiB per tensor:
  the loop's cost is memory traffic, and the floor is one copy of the input (``b.clone()``).

"loop" is the plainest code, ``h = a[:, s] * h + b[:, s]`` and ``torch.stack``; the other rows
are ``linear_scan(a, b, method=...)`` (forward only, no gradient). The contenders run in
interleaved rounds (one call each per round, in a fresh order every round), so that a change in
the machine's speed affects all alike; the table reports the median time, the median of the
per-round ratios to the loop and to the copy, and the largest error relative to the loop's
result, max |h - h_loop| / max |h_loop|.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from lstm_lab.nn.scan import choose_method, default_chunk_size, linear_scan

SHAPES = {"narrow": (1, 4096, 64), "wide": (8, 4096, 64, 16)}


def loop(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    h = b.new_zeros(b[:, 0].shape)
    hs = []
    for s in range(b.shape[1]):
        h = a[:, s] * h + b[:, s]
        hs.append(h)
    return torch.stack(hs, dim=1)


def make_contenders(shape, device: torch.device):
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(shape, generator=gen).to(device)
    b = torch.randn(shape, generator=gen).to(device)
    t = shape[1]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(fn):
        def run():
            out = fn()
            sync()
            return out
        return run

    contenders = {"loop": timed(lambda: loop(a, b))}
    for method in ("sequential", "parallel", "chunked"):
        contenders[method] = timed(lambda m=method: linear_scan(a, b, method=m))
    big = 4 * default_chunk_size(t)
    contenders[f"chunked L={big}"] = timed(lambda: linear_scan(a, b, method="chunked", chunk_size=big))
    contenders[f"auto ({choose_method(shape, device)})"] = timed(lambda: linear_scan(a, b))
    contenders["copy b.clone()"] = timed(lambda: b.clone())
    return contenders


def bench(name: str, shape, device: torch.device, rounds: int) -> None:
    contenders = make_contenders(shape, device)
    results = {}
    for key, run in contenders.items():  # warm up, and keep one result of each
        run()
        results[key] = run()
    ref = results["loop"]
    scale = ref.abs().max().item()
    errors = {k: (v - ref).abs().max().item() / scale for k, v in results.items() if k != "copy b.clone()"}
    del results, ref
    times = {k: [] for k in contenders}
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        for key in rng.permutation(list(contenders)):
            start = time.perf_counter()
            contenders[key]()
            times[key].append(time.perf_counter() - start)
    print(f"\n{name}: a, b of shape {shape}, float32 on {device}")
    print(f"| {'method':<22} | {'median ms':>9} | {'loop / this':>11} | {'this / copy':>11} | {'rel. error':>10} |")
    print(f"|{'-' * 24}|{'-' * 11}|{'-' * 13}|{'-' * 13}|{'-' * 12}|")
    for key, ts in times.items():
        speedup = statistics.median(r / x for x, r in zip(ts, times["loop"]))
        to_copy = statistics.median(x / c for x, c in zip(ts, times["copy b.clone()"]))
        err = f"{errors[key]:10.1e}" if key in errors else f"{'-':>10}"
        print(f"| {key:<22} | {statistics.median(ts) * 1e3:9.2f} | {speedup:11.2f} | {to_copy:11.2f} | {err} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"linear scan, forward only ({platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.rounds} interleaved rounds)")
    with torch.no_grad():
        for name in args.shapes:
            bench(name, SHAPES[name], device, args.rounds)


if __name__ == "__main__":
    main()

"""Forward + backward of one LSTM layer: readable cell, fused path, torch.nn.LSTM, NumPy.

    python benchmarks/lstm_speed.py [--device cpu|cuda] [--rounds 15]

Shape b=32, t=128, d=h=256, float32. The contenders run in interleaved rounds (one timed
fwd+bwd each per round, in a fresh order every round), so that a change in the machine's
speed during the run affects all of them alike; the table reports the median time and the
median of the per-round ratios to torch.nn.LSTM. On CPU, torch.nn.LSTM runs oneDNN's fused
RNN kernel; the fused path uses ordinary PyTorch matrix multiplies and elementwise ops. The
row "fused GEMMs only" runs just the fused path's matrix multiplies (same shapes, same
order): no implementation built from ``torch.mm`` can be faster than that.
"""

from __future__ import annotations

import argparse
import platform
import statistics

import numpy as np
import torch

from lstm_lab import scratch
from lstm_lab.cost import interleaved_times
from lstm_lab.nn import LSTM

B, T, D, H = 32, 128, 256, 256


def make_contenders(device: torch.device):
    torch.manual_seed(0)
    ref = torch.nn.LSTM(D, H, batch_first=True).to(device)
    fused = LSTM.from_torch(ref, method="fused")
    cell = LSTM.from_torch(ref, method="cell")
    x = torch.randn(B, T, D, device=device, requires_grad=True)

    def torch_step(model):
        def run():
            out, _ = model(x)
            out.sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
        return run

    contenders = {"torch.nn.LSTM": torch_step(ref), "fused": torch_step(fused), "cell": torch_step(cell),
                  "fused GEMMs only": gemm_floor(x, fused)}
    if device.type == "cpu":
        params = {k: v.astype(np.float32) for k, v in fused.scratch_params().items()}
        xn = x.detach().numpy()
        ones = np.ones((B, T, H), dtype=np.float32)

        def numpy_step():
            _, cache = scratch.lstm_forward(xn, params)
            scratch.lstm_backward(ones, cache)

        contenders["NumPy (scratch)"] = numpy_step
    return contenders


def gemm_floor(x: torch.Tensor, model: LSTM):
    """Only the matrix multiplies of the fused path, same shapes and order: its floor."""
    W_x, W_h, b = (w.detach() for w in model.layers[0].stacked_weights())
    W_hT = W_h.t().contiguous()
    xh = x.new_zeros(T + 1, B, D + H)
    grads = x.new_zeros(T, B, 4 * H)
    dhs = x.new_zeros(T, B, H)

    def run():
        gates = torch.addmm(b, xh[:T, :, :D].reshape(T * B, D), W_x).view(T, B, 4 * H)
        for s in range(T):
            gates[s].addmm_(xh[s, :, D:], W_hT.t())
        for s in range(T - 1):
            dhs[s].addmm_(grads[s + 1], W_hT)
        flat = grads.view(T * B, 4 * H)
        xh[:T].reshape(T * B, D + H).t() @ flat
        flat @ W_x.t()
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    device = torch.device(args.device)
    contenders = make_contenders(device)
    times = interleaved_times(contenders, rounds=args.rounds, warmup=2)  # synchronises a GPU
    ref = times["torch.nn.LSTM"]
    print(f"LSTM forward+backward, b={B} t={T} d=h={H} float32 on {device} "
          f"({platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.rounds} interleaved rounds)")
    print(f"| {'implementation':<16} | {'median ms':>9} | {'ratio to torch.nn.LSTM':>22} |")
    print(f"|{'-' * 18}|{'-' * 11}|{'-' * 24}|")
    for name, ts in times.items():
        ratio = statistics.median(t / r for t, r in zip(ts, ref))
        print(f"| {name:<16} | {statistics.median(ts) * 1e3:9.1f} | {ratio:22.2f} |")


if __name__ == "__main__":
    main()

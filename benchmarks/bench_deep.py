"""Seconds per training epoch of the autoencoders on MNIST, and how close to the machine's limit.

For the conv AE (SPEC §1 CAE: 3 x [Conv 8 3x3, ReLU, MaxPool 2], latent 10) and the MLP AE
(VaDE architecture D-500-500-2000-10), one epoch over the 60,000 MNIST training images,
batch 256, through mixclust's Trainer (the loop every deep model uses), with the data as
in-memory tensors. FLOPs per step are counted by torch's FlopCounterMode (forward + backward);
achieved GFLOP/s are compared with a plain float32 matrix multiply measured in the same run.

    .venv/bin/python benchmarks/bench_deep.py [--threads 2] [--epochs 1] [--n 60000]

Needs MNIST (MIXCLUST_DATA or --data-dir); falls back to random data of the same shape.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mixclust import datasets
from mixclust.nn import build_autoencoder
from mixclust.training import Trainer


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def step_flops(model: torch.nn.Module, batch: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        loss = ((model(batch) - batch) ** 2).sum()
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--n", type=int, default=60000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        X, _ = datasets.load("mnist", split="train", data_dir=args.data_dir)
        X, source = torch.as_tensor(X[: args.n]), "MNIST train"
    except ValueError:
        X, source = torch.rand(args.n, 1, 28, 28), "random data (MNIST not found)"
    peak = matmul_gflops()
    print(f"# {source}: {tuple(X.shape)}, batch {args.batch_size}, {args.threads} threads, "
          f"torch {torch.__version__}")
    print(f"# plain float32 matmul 2048^3: {peak:.1f} GFLOP/s")
    print(f"{'model':<8} {'params':>9} {'MFLOP/step':>11} {'s/epoch':>8} {'GFLOP/s':>8} {'of matmul':>9}")
    for arch in ("conv", "mlp"):
        torch.manual_seed(0)
        encoder, decoder = build_autoencoder(arch, (1, 28, 28), 10)
        model = torch.nn.Sequential(encoder, decoder)
        flops = step_flops(model, X[: args.batch_size])
        trainer = Trainer(model, epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, seed=0)
        start = time.perf_counter()
        trainer.fit(X, lambda batch, model=model: {"loss": ((model(batch[0]) - batch[0]) ** 2).sum((1, 2, 3)).mean()})
        seconds = (time.perf_counter() - start) / args.epochs
        steps = -(-len(X) // args.batch_size)
        achieved = flops * steps / seconds / 1e9
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{arch:<8} {n_params:>9,} {flops / 1e6:>11.1f} {seconds:>8.2f} {achieved:>8.2f} "
              f"{achieved / peak:>8.1%}", flush=True)


if __name__ == "__main__":
    main()

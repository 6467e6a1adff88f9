"""Scale-out on torch.distributed (issue 9): helpers, distributed EM, out-of-core EM, data-parallel training, CLI.

Multi-process tests start 2 CPU processes with the gloo backend: either plain ``python`` processes given
torchrun's environment variables (RANK, WORLD_SIZE, MASTER_ADDR/PORT on a free port), running this file
as a script (``python tests/test_distributed.py TASK OUT``, see ``_worker`` at the bottom), or the venv's
``torchrun --standalone`` for the command line. Each rank writes its result to OUT; the test compares the
ranks with each other and with a single-process run.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

import mixclust
from mixclust import distributed
from mixclust.cli import main
from mixclust.training import Trainer, TrainingInterrupted, interrupted_after

HERE = Path(__file__).resolve()
TORCHRUN = Path(sys.executable).parent / "torchrun"
WORLD = 2
# Data-parallel float32 training sums each batch's gradient in two halves instead of one: after 2 epochs
# (14 Adam steps at lr 1e-2) the weights were measured to agree with one process within 6e-8.
DEEP_ATOL = 1e-5
GMM_CASES = [("full", "kmeans"), ("diag", "random"), ("tied", "k-means++"), ("spherical", "random_from_data")]
AE_PARAMS = dict(arch="mlp", hidden=(16,), latent_dim=2, epochs=2, batch_size=16, lr=1e-2, random_state=3,
                 device="cpu")


# ------------------------------------------------------------------------------------------------
# Data and single-process references (also used by the workers)
# ------------------------------------------------------------------------------------------------
def gmm_data(n: int = 301) -> np.ndarray:
    """Three stretched blobs in 3-D; an odd n so the two shards differ in size."""
    rng = np.random.default_rng(7)
    centres = np.array([[0.0, 0, 0], [4, 1, 0], [0, 5, 2]])
    labels = rng.integers(0, 3, size=n)
    return centres[labels] + rng.normal(size=(n, 3)) @ np.diag([1.0, 0.5, 0.8]) + 10.0


def gmm_fit(X, covariance_type, init_params):
    model = mixclust.GaussianMixture(3, covariance_type=covariance_type, init_params=init_params, n_init=2,
                                     tol=1e-8, max_iter=50, chunk_size=40, random_state=0, device="cpu")
    return model.fit(X)


def gmm_result(model) -> dict:
    return {"weights": model.weights_, "means": model.means_, "precisions_cholesky": model.precisions_cholesky_,
            "history": np.asarray(model.log_likelihood_history_), "labels": model.labels_}


def partial_stream(X, rank: int = 0, world: int = 1):
    """Stepwise EM over three chunks of X; with ``world`` ranks each passes its part of every chunk. A given
    start, so the start does not depend on which rows rank 0 holds."""
    start = dict(weights_init=np.full(3, 1 / 3), means_init=X[:3], precisions_init=np.stack([np.eye(X.shape[1])] * 3))
    model = mixclust.GaussianMixture(3, covariance_type="full", device="cpu", **start)
    for chunk in np.array_split(X, 3):
        model.partial_fit(np.array_split(chunk, world)[rank])
    return model


def ae_data(n: int = 100) -> np.ndarray:
    return np.random.default_rng(5).random((n, 6)).astype(np.float32)


def gram_train() -> dict:
    """A loss on the global Gram matrix G = P^T P / B of the whole batch, through the all-reduce hook
    (what MoA+ needs): on 2 ranks each holds half the batch, G is summed over them and differentiated."""
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 3)
    X = torch.as_tensor(np.random.default_rng(1).normal(size=(50, 4)), dtype=torch.float32)

    def step(batch):
        (x,) = batch
        p = torch.softmax(module(x), dim=1)
        count = distributed.all_reduce_sum(torch.tensor(float(len(x))))
        gram = distributed.all_reduce_sum(p.T @ p) / count
        return {"loss": ((gram - torch.eye(3) / 3) ** 2).sum()}

    Trainer(module, epochs=2, batch_size=10, lr=5e-2).fit(X, step)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


MOA_PARAMS = dict(arch="mlp", hidden=(16,), latent_dim=2, router_hidden=(8,), pretrain_epochs=2, router_epochs=2,
                  epochs=2, batch_size=16, lr=1e-3, random_state=3, device="cpu")


def moa_fit(loss: str, gram: str):
    return mixclust.MoA(2, loss=loss, gram=gram, **MOA_PARAMS).fit(ae_data(64))


def ae_state(model) -> dict:
    return {f"{part}.{k}": v.detach().clone() for part in ("encoder_", "decoder_")
            for k, v in getattr(model, part).state_dict().items()}


# ------------------------------------------------------------------------------------------------
# Launching
# ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **extra}
    src = str(HERE.parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def launch(task: str, out: Path, *args: str, world: int = WORLD, timeout: float = 90) -> None:
    """Run ``_worker(task, out, *args)`` in ``world`` processes joined by torchrun's environment variables."""
    port = str(free_port())
    procs = [subprocess.Popen([sys.executable, str(HERE), task, str(out), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              env=child_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world),
                                            LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                                            MASTER_PORT=port))
             for r in range(world)]
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for r, (p, text) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"rank {r} failed:\n{text}"


# ------------------------------------------------------------------------------------------------
# 1. Helpers
# ------------------------------------------------------------------------------------------------
def test_helpers_are_no_ops_in_a_single_process():
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (0, 1, True)
    t = torch.arange(3.0)
    assert distributed.all_reduce_sum(t) is t and distributed.all_reduce_mean(t) is t
    assert distributed.broadcast(t) is t and torch.equal(t, torch.arange(3.0))
    assert distributed.agree(True) and not distributed.agree(False)
    distributed.barrier()
    assert distributed.init_from_env() is False  # WORLD_SIZE unset: nothing to join
    assert distributed.shard(10) == range(10)


@pytest.mark.parametrize("n, world", [(10, 3), (301, 2), (2, 4), (0, 2)])
def test_shards_are_contiguous_disjoint_and_cover_everything(n, world):
    shards = [distributed.shard(n, r, world) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shard_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank 2 of world size 2"):
        distributed.shard(5, 2, 2)


# ------------------------------------------------------------------------------------------------
# 2. Distributed EM equals the single-process fit
# ------------------------------------------------------------------------------------------------
def test_distributed_em_equals_single_process(tmp_path):
    X = gmm_data()
    np.save(tmp_path / "X.npy", X)
    launch("gmm", tmp_path)
    for covariance_type, init_params in GMM_CASES:
        single = gmm_result(gmm_fit(X, covariance_type, init_params))
        ranks = [np.load(tmp_path / f"gmm-{covariance_type}-{r}.npz") for r in range(WORLD)]
        for key in single:  # every rank holds identical parameters and all the labels
            assert np.array_equal(ranks[0][key], ranks[1][key]), (covariance_type, key)
        result = ranks[0]
        assert len(result["history"]) == len(single["history"])
        np.testing.assert_allclose(result["history"], single["history"], rtol=1e-10, atol=0)
        assert np.array_equal(result["labels"], single["labels"])
        for key in ("weights", "means", "precisions_cholesky"):
            np.testing.assert_allclose(result[key], single[key], rtol=1e-8, atol=1e-10, err_msg=key)
    # Out of core and distributed at once: each rank streams its shard of the memory-mapped file.
    single = gmm_result(gmm_fit(X, "full", "kmeans"))
    mapped = np.load(tmp_path / "gmm-memmap-1.npz")
    np.testing.assert_allclose(mapped["history"], single["history"], rtol=1e-10, atol=0)
    # The same partition: the k-means start over the streamed shards may list the same centres in another
    # order (seen on a loaded 2-core machine), which renames the components but changes no likelihood.
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(mapped["labels"], single["labels"]) == 1.0
    # Online EM: the ranks pass their parts of each chunk and take one step on the union, as one process would.
    online = partial_stream(X)
    for r in range(WORLD):
        result = np.load(tmp_path / f"gmm-online-{r}.npz")
        for key in ("weights", "means", "covariances"):
            np.testing.assert_allclose(result[key], getattr(online, f"{key}_"), rtol=1e-9, atol=1e-11, err_msg=key)


# ------------------------------------------------------------------------------------------------
# 3. Out of core: memory-mapped input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type, init_params", GMM_CASES)
def test_memmap_fit_equals_in_memory_fit(tmp_path, dtype, covariance_type, init_params):
    X = gmm_data().astype(dtype)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    a = gmm_fit(X, covariance_type, init_params)
    b = gmm_fit(mapped, covariance_type, init_params)
    np.testing.assert_allclose(b.log_likelihood_history_, a.log_likelihood_history_, rtol=1e-10, atol=0)
    assert np.array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(b.means_, a.means_, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), atol=1e-9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_memmap_is_streamed_not_copied(tmp_path):
    """With given initial parameters nothing holds the whole array in float64: numpy's peak allocation while
    fitting a float32 memmap stays far below one float64 copy of it (tracemalloc sees numpy's buffers)."""
    X = np.random.default_rng(0).normal(size=(20000, 4)).astype(np.float32)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    init = dict(weights_init=[0.5, 0.5], means_init=[[-1.0] * 4, [1.0] * 4], precisions_init=np.stack([np.eye(4)] * 2))
    model = mixclust.GaussianMixture(2, max_iter=3, tol=0, chunk_size=500, device="cpu", **init)
    tracemalloc.start()
    model.fit(mapped)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    full64 = X.size * 8
    assert peak < full64 / 4, f"peak numpy allocation {peak} bytes vs {full64} for a float64 copy"
    reference = mixclust.GaussianMixture(2, max_iter=3, tol=0, chunk_size=500, device="cpu", **init).fit(X)
    np.testing.assert_allclose(model.log_likelihood_history_, reference.log_likelihood_history_, rtol=1e-10)


def test_given_initial_parameters_skip_the_data_initialisation(monkeypatch):
    X = gmm_data()
    model = mixclust.GaussianMixture(2, weights_init=[0.5, 0.5], means_init=X[:2],
                                     precisions_init=np.stack([np.eye(3)] * 2), device="cpu")

    def refuse(*args, **kwargs):
        raise AssertionError("the initial responsibilities should not be computed")

    monkeypatch.setattr(type(model), "_initial_responsibilities", refuse)
    assert model.fit(X).n_iter_ >= 1


# ------------------------------------------------------------------------------------------------
# 4. Data-parallel training
# ------------------------------------------------------------------------------------------------
def test_data_parallel_autoencoder_matches_single_process(tmp_path):
    X = ae_data()
    launch("ae", tmp_path)
    ranks = [torch.load(tmp_path / f"ae-{r}.pt") for r in range(WORLD)]
    single = mixclust.AutoEncoder(**AE_PARAMS).fit(X)
    for key, value in ae_state(single).items():
        assert torch.equal(ranks[0]["state"][key], ranks[1]["state"][key]), key
        torch.testing.assert_close(ranks[0]["state"][key], value, rtol=0, atol=DEEP_ATOL)
    assert ranks[0]["history"] == ranks[1]["history"]
    for a, b in zip(ranks[0]["history"], single.history_):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    # The global-statistic hook: a loss on the all-reduced Gram matrix trains as on one process.
    for key, value in gram_train().items():
        assert torch.equal(ranks[0]["gram"][key], ranks[1]["gram"][key])
        torch.testing.assert_close(ranks[0]["gram"][key], value, rtol=0, atol=DEEP_ATOL)


MOA_CASES = [("minimax", "batch"), ("bound", "ema"), ("blend", "batch")]
# Measured largest weight difference to one process after 2+2+2 epochs at lr 1e-3: 2.4e-7 (minimax), 1.2e-7
# (bound, ema), 3.5e-4 (blend). In blend an expert's gradient is weighted by p_ik, tiny for the samples the
# router sends elsewhere; Adam divides by the gradient's running magnitude, so rounding differences of those
# near-zero components grow to parameter steps of up to lr. The per-epoch losses agree to 1e-4 relative.
MOA_ATOL = 1e-3


def test_data_parallel_moa_uses_the_global_gram_matrix(tmp_path):
    """MoA+ on 2 ranks: G = P^T P and E^T P are summed over the ranks' halves of each batch, so the minimax and
    bound losses (not sums over samples) train as on one process with the same batch size."""
    launch("moa", tmp_path)
    ranks = [torch.load(tmp_path / f"moa-{r}.pt") for r in range(WORLD)]
    for case in MOA_CASES:
        single = moa_fit(*case)
        for key, value in single.network_.state_dict().items():
            assert torch.equal(ranks[0][case]["state"][key], ranks[1][case]["state"][key]), (case, key)
            diff = float((ranks[0][case]["state"][key] - value).abs().max())
            assert diff <= MOA_ATOL, (case, key, diff)
        assert ranks[0][case]["loss"] == pytest.approx([h["loss"] for h in single.history_], rel=1e-4)


def test_checkpoint_of_two_ranks_resumes_on_one_process(tmp_path):
    """2 ranks killed after epoch 1 (rank 0 alone wrote the checkpoint) -> 1 process finishes the run."""
    X = ae_data()
    launch("ae-killed", tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["ae.pt"]
    resumed = mixclust.AutoEncoder(checkpoint_dir=str(tmp_path / "ckpt"), **AE_PARAMS).fit(X)
    assert [r["epoch"] for r in resumed.history_] == [1, 2]
    reference = ae_state(mixclust.AutoEncoder(**AE_PARAMS).fit(X))
    for key, value in ae_state(resumed).items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=DEEP_ATOL)


def test_checkpoint_of_one_process_resumes_on_two_ranks(tmp_path):
    """1 process killed after epoch 1 -> 2 ranks finish the run."""
    X = ae_data()
    with pytest.raises(TrainingInterrupted):
        _killed_after_epoch_1(lambda: mixclust.AutoEncoder(checkpoint_dir=str(tmp_path / "ckpt"), **AE_PARAMS).fit(X))
    launch("ae", tmp_path / "out", str(tmp_path / "ckpt"))
    state = torch.load(tmp_path / "out" / "ae-0.pt")
    assert [r["epoch"] for r in state["history"]] == [1, 2]
    reference = ae_state(mixclust.AutoEncoder(**AE_PARAMS).fit(X))
    for key, value in state["state"].items():
        torch.testing.assert_close(value, reference[key], rtol=0, atol=DEEP_ATOL)


def _killed_after_epoch_1(fit):
    with interrupted_after(1):
        return fit()


def test_loss_scale_makes_the_rank_average_the_global_batch_gradient():
    """W b_r / B per rank: averaging over ranks gives the mean over the batch, also for uneven splits."""
    batch = torch.arange(7)
    parts = []
    for r in range(3):
        part = distributed.shard(len(batch), r, 3)
        parts.append((batch[part.start:part.stop], 3 * len(part) / len(batch)))
    values = batch.double() ** 2
    average = sum(scale * values[index].mean() for index, scale in parts) / 3
    assert float(average) == pytest.approx(float(values.mean()))


# ------------------------------------------------------------------------------------------------
# 5. The command line under torchrun
# ------------------------------------------------------------------------------------------------
CLI_CASES = {
    "gmm": [],
    # An autoencoder trained data-parallel (DDP), then a distributed GMM on its latent codes.
    "aekm": ["--param", "clusterer=gmm", "--param", "arch=mlp", "--param", "hidden=[16]", "--param", "latent_dim=2",
             "--param", "epochs=2", "--param", "batch_size=32", "--param", "lr=0.01"],
}


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
@pytest.mark.parametrize("model", sorted(CLI_CASES))
def test_torchrun_cli_writes_the_same_labels_and_model(tmp_path, capsys, model):
    np.save(tmp_path / "X.npy", gmm_data())
    fit = ["fit", "--model", model, "--data", str(tmp_path / "X.npy"), "--n-clusters", "3", "--random-state", "4",
           "--device", "cpu", "--verbose", "0", *CLI_CASES[model]]
    assert main(fit + ["--out", str(tmp_path / "single")]) == 0
    capsys.readouterr()
    run = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", str(WORLD), "-m", "mixclust", *fit,
                          "--out", str(tmp_path / "multi")], capture_output=True, text=True, timeout=120,
                         env=child_env())
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(f"fitted {model}") == 1 and f"on {WORLD} processes" in run.stdout  # rank 0 alone

    def labels(folder):
        with open(tmp_path / folder / "labels.csv") as handle:
            return [int(row["label"]) for row in csv.DictReader(handle)]

    assert labels("multi") == labels("single")
    # rank 0 alone writes, the same files as one process (labels, metrics, model, report.md and its figures)
    files = sorted(p.name for p in (tmp_path / "multi").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "single").iterdir())
    assert {"labels.csv", "metrics.json", "model", "report.md", "map.png"} <= set(files)
    single, multi = mixclust.load(tmp_path / "single" / "model"), mixclust.load(tmp_path / "multi" / "model")
    if model == "gmm":
        for key in ("weights_", "means_", "covariances_"):
            np.testing.assert_allclose(getattr(multi, key), getattr(single, key), rtol=1e-8, atol=1e-10)
    else:  # float32 network trained on 2 ranks: its codes agree with one process's within DEEP_ATOL
        X = gmm_data().astype(np.float32)
        np.testing.assert_allclose(multi.transform(X), single.transform(X), rtol=0, atol=DEEP_ATOL)


# ------------------------------------------------------------------------------------------------
# The worker: this file run as a script in each process
# ------------------------------------------------------------------------------------------------
def _worker(task: str, out: str, *args: str) -> None:
    torch.set_num_threads(1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    assert distributed.init_from_env("cpu") and distributed.world_size() == WORLD
    r = distributed.rank()
    if task == "gmm":
        X = np.load(out / "X.npy")
        for covariance_type, init_params in GMM_CASES:
            np.savez(out / f"gmm-{covariance_type}-{r}.npz", **gmm_result(gmm_fit(X, covariance_type, init_params)))
        mapped = np.load(out / "X.npy", mmap_mode="r")
        np.savez(out / f"gmm-memmap-{r}.npz", **gmm_result(gmm_fit(mapped, "full", "kmeans")))
        online = partial_stream(X, r, WORLD)
        np.savez(out / f"gmm-online-{r}.npz", weights=online.weights_, means=online.means_,
                 covariances=online.covariances_)
    elif task == "ae":
        checkpoint_dir = args[0] if args else None
        model = mixclust.AutoEncoder(checkpoint_dir=checkpoint_dir, **AE_PARAMS).fit(ae_data())
        history = [{k: v for k, v in h.items() if k != "seconds"} for h in model.history_]
        torch.save({"state": ae_state(model), "history": history, "gram": gram_train()}, out / f"ae-{r}.pt")
    elif task == "moa":
        results = {}
        for loss, gram in MOA_CASES:
            model = moa_fit(loss, gram)
            results[loss, gram] = {"state": {k: v.detach().clone() for k, v in model.network_.state_dict().items()},
                                   "loss": [h["loss"] for h in model.history_]}
        torch.save(results, out / f"moa-{r}.pt")
    elif task == "ae-killed":
        try:
            _killed_after_epoch_1(lambda: mixclust.AutoEncoder(checkpoint_dir=str(out), **AE_PARAMS).fit(ae_data()))
        except TrainingInterrupted:
            pass
    else:
        raise ValueError(f"unknown task {task!r}")
    distributed.barrier()
    distributed.shutdown()


if __name__ == "__main__":
    _worker(*sys.argv[1:])

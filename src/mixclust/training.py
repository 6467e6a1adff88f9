"""The one training loop every deep model uses.

A model hands the :class:`Trainer` its module (all trainable parts), its data
as in-memory tensors, and a ``step(batch) -> {"loss": tensor, **terms}``
function; the trainer owns everything else:

* Adam (or SGD/AdamW) with the model's learning rate, optional gradient-norm clipping;
* seeded shuffling each epoch from its own ``torch.Generator`` (deterministic on CPU);
* a progress bar (loss and monitored metrics; silent with ``verbose=0``);
* ``history``: one dict per completed epoch (mean loss terms, validation metrics, seconds);
* early stopping on a monitored value (e.g. ``val_nmi``, else the loss) with the best
  weights restored at the end;
* a checkpoint written atomically after every epoch, and resume: a run killed
  mid-training and restarted with the same ``checkpoint_dir`` continues from its last
  completed epoch and ends with the same parameters as an uninterrupted run (the
  shuffling generator, the global torch RNG and the optimizer state are saved too);
* a non-finite loss stops training with an error naming the epoch and batch, instead
  of silently producing NaN parameters.

Why not Lightning Fabric: the loop needs device placement, seeding and atomic
checkpoints, which take a few dozen lines of plain torch here, while Fabric would
add a large dependency tree to a library whose only hard dependency is torch.

**Data-parallel** (issue 9): when a ``torch.distributed`` group of several processes
is initialised (e.g. under ``torchrun``, see :mod:`mixclust.distributed`), every rank
passes the same full ``data``; each epoch's seeded permutation is the same on every
rank and each global batch of ``batch_size`` rows is split into contiguous, disjoint
per-rank parts. The step runs inside ``DistributedDataParallel``, which averages the
gradients over the ranks; each rank's loss is scaled by ``W * b_r / B`` (W ranks,
b_r of the batch's B rows on this rank) so the averaged gradient is exactly the
gradient of the global batch's mean loss, as in one process with the same
``batch_size``. A batch with fewer rows than ranks is processed whole on every
rank. The epoch's loss terms are summed over the ranks, so ``history`` is the same
on every rank (and equal to one process's up to rounding). Rank 0 alone writes the
checkpoint, the others wait at a barrier; the checkpoint holds the plain module's
state (no DDP prefix) and nothing that depends on the number of ranks, so a run can
resume on a different number of processes.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from . import distributed
from ._io import atomic_save, safe_torch_load
from ._progress import progress

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def _make_optimizer(name: str, params, lr: float, kwargs: dict) -> torch.optim.Optimizer:
    """The optimizer, with Adam's and AdamW's fused kernel where torch has it for these parameters.

    Why: the default per-tensor Adam on the CPU spent 40% of a VaDE step on scikit-learn's digits (batch 32);
    the fused kernel makes a step of the 64-500-500-2000-10 MLP 2.4x faster (16.4 -> 6.8 ms, one thread).
    """
    cls = OPTIMIZERS[name]
    if name in ("adam", "adamw") and "fused" not in kwargs and "foreach" not in kwargs:
        params = list(params)
        try:
            return cls(params, lr=lr, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):  # a dtype or device the fused kernel does not support
            pass
    return cls(params, lr=lr, **kwargs)


class TrainingInterrupted(RuntimeError):
    """Raised by :func:`interrupted_after` to simulate a killed run."""


@contextlib.contextmanager
def interrupted_after(epochs: int, stage: str | None = None):
    """Testing aid: inside the block, a Trainer (of ``stage``, or any) raises :class:`TrainingInterrupted`
    right after writing the checkpoint of epoch ``epochs``, as a run killed at that moment would."""
    save = Trainer._save

    def save_then_die(self, *args, **kwargs):
        save(self, *args, **kwargs)
        if len(self.history) == epochs and stage in (None, self.name):
            raise TrainingInterrupted(f"killed after the epoch-{epochs} checkpoint of {self.name!r}")

    Trainer._save = save_then_die
    try:
        yield
    finally:
        Trainer._save = save


class Trainer:
    """Mini-batch training of ``module`` with the options above.

    Parameters
    ----------
    module : the nn.Module whose parameters are optimised (and checkpointed).
    epochs, batch_size, lr : the usual.
    optimizer : "adam" (default), "adamw" or "sgd"; ``optimizer_kwargs`` passed on (e.g. eps).
    clip_norm : float or None, maximum global gradient norm.
    patience : int or None, epochs without improvement of ``monitor`` before stopping.
    checkpoint_dir : folder for ``<name>.pt`` checkpoints (None: no checkpoints).
    name : the stage's name (a model with several stages, e.g. pretraining, uses several).
    seed : seeds the shuffling generator.
    verbose : 0 silent, 1 progress bar.
    """

    def __init__(self, module: nn.Module, *, epochs: int, batch_size: int, lr: float, optimizer: str = "adam",
                 optimizer_kwargs: dict | None = None, clip_norm: float | None = None, shuffle: bool = True,
                 patience: int | None = None, min_delta: float = 0.0, checkpoint_dir=None, name: str = "train",
                 seed: int = 0, verbose: int = 0, parameters=None, signature: dict | None = None):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        self.module = module
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.clip_norm, self.shuffle = clip_norm, shuffle
        self.patience, self.min_delta = patience, min_delta
        self.checkpoint = Path(checkpoint_dir) / f"{name}.pt" if checkpoint_dir is not None else None
        self.name, self.verbose = name, verbose
        # What the checkpoint must have been written for (the estimator's parameters and data): a checkpoint
        # of another model or data set in the same folder is refused rather than silently resumed.
        self.signature = None if signature is None else json.loads(json.dumps(signature, default=str))
        params = list(parameters) if parameters is not None else list(module.parameters())
        self.optimizer = _make_optimizer(optimizer, params, lr, optimizer_kwargs or {})
        self.generator = torch.Generator().manual_seed(int(seed))
        self.history: list[dict] = []
        self._best = {"value": None, "epoch": None, "state": None}
        self._bad_epochs = 0

    # -- checkpoints ------------------------------------------------------------------------------
    def _state(self, finished: bool, stopped_early: bool = False) -> dict:
        return {
            "module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "history": json.dumps(self.history), "bad_epochs": self._bad_epochs,
            "best_value": self._best["value"], "best_epoch": self._best["epoch"],
            "best_state": self._best["state"] or {}, "finished": finished, "stopped_early": stopped_early,
            "signature": json.dumps(self.signature),
        }

    def _save(self, finished: bool = False, stopped_early: bool = False) -> None:
        """Rank 0 writes the checkpoint; every rank waits until it is complete."""
        if self.checkpoint is None:
            return
        if distributed.is_main_process():
            atomic_save(self._state(finished, stopped_early), self.checkpoint)
        distributed.barrier()

    def _check_signature(self, state: dict) -> None:
        saved = json.loads(state.get("signature") or "null")
        if saved is None or self.signature is None or saved == self.signature:
            return
        if isinstance(saved, dict) and isinstance(self.signature, dict):
            keys = sorted(k for k in saved.keys() | self.signature.keys() if saved.get(k) != self.signature.get(k))
            differs = "; ".join(f"{k}: {saved.get(k)!r} there, {self.signature.get(k)!r} here" for k in keys)
        else:
            differs = f"{saved!r} there, {self.signature!r} here"
        raise ValueError(f"checkpoint {self.checkpoint} was written by a different model or data set ({differs}); "
                         "use another checkpoint_dir or delete it")

    def _resume(self) -> bool:
        """Load the checkpoint if there is one; returns whether training had already finished.

        A checkpoint that completed fewer epochs than ``epochs`` is continued (so a finished run can be
        trained longer); one with more epochs, or written for another signature, is refused.
        """
        if self.checkpoint is None or not self.checkpoint.exists():
            return False
        state = safe_torch_load(self.checkpoint, what="checkpoint")
        self._check_signature(state)
        try:
            self.module.load_state_dict(state["module"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            self.history = json.loads(state["history"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise ValueError(f"checkpoint {self.checkpoint} does not match this model "
                             f"(different parameters?): {str(exc).splitlines()[0]}") from None
        if len(self.history) > self.epochs:
            raise ValueError(f"checkpoint {self.checkpoint} holds {len(self.history)} epochs of {self.name!r}, "
                             f"more than epochs={self.epochs}; use another checkpoint_dir or delete it")
        self._bad_epochs = state["bad_epochs"]
        self._best = {"value": state["best_value"], "epoch": state["best_epoch"],
                      "state": state["best_state"] or None}
        stopped_early = state.get("stopped_early", bool(state["finished"]))
        return stopped_early or len(self.history) == self.epochs

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self, data, step: Callable[[tuple], dict], *, validate: Callable[[], dict] | None = None,
            monitor: str = "loss", mode: str = "min", on_epoch_end: Callable[[int, dict], None] | None = None):
        """Train on ``data`` (a tensor or tuple of tensors with equal first dimension).

        ``validate()`` returns metrics added to each epoch's record (e.g. ``{"val_nmi": ...}``);
        ``monitor``/``mode`` choose the value early stopping watches. Returns ``history``.
        """
        data = data if isinstance(data, (tuple, list)) else (data,)
        n = data[0].shape[0]
        if self._resume():
            self._restore_best()
            return self.history
        n_batches = math.ceil(n / self.batch_size)
        start_epoch = len(self.history)
        parallel = self._data_parallel(step)
        bar = progress(None, enabled=self.verbose > 0 and distributed.is_main_process(),
                       total=n_batches * (self.epochs - start_epoch), desc=self.name, unit="batch")
        for epoch in range(start_epoch, self.epochs):
            started = time.perf_counter()
            self.module.train()
            order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
            order = order.to(data[0].device)
            sums: dict[str, float] = {}
            for b in range(n_batches):
                index, scale, weight = self._local_batch(order[b * self.batch_size:(b + 1) * self.batch_size])
                terms = self._step(parallel, step, tuple(t[index] for t in data), epoch, b, scale)
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + value * weight
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{terms['loss']:.4g}", refresh=False)  # drawn by update()
            record = {"epoch": epoch + 1, **{k: v / n for k, v in self._global_sums(sums).items()}}
            if validate is not None:
                self.module.eval()
                with torch.no_grad():
                    record.update(validate())
            record["seconds"] = time.perf_counter() - started
            self.history.append(record)
            stop = self._early_stopping(record, monitor, mode)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, record)
            self._save(finished=stop or epoch + 1 == self.epochs, stopped_early=stop)
            if stop:
                break
        bar.close()
        if parallel is not None:
            # DDP sits in a reference cycle; left to the cyclic collector it may be freed at interpreter exit,
            # after the process group is gone, and gloo then aborts the process ("terminate called").
            del parallel
            gc.collect()
        self._restore_best()
        return self.history

    # -- data parallelism -------------------------------------------------------------------------
    def _data_parallel(self, step):
        """The module wrapped in DistributedDataParallel when distributed, else None.

        DDP's gradient hooks only fire for a forward pass made through the wrapper, and
        the models' steps call their sub-networks directly; so DDP wraps a small module
        whose ``forward`` *is* the step. ``find_unused_parameters`` lets a stage train
        only part of the module (e.g. VaDE's pretraining). DDP broadcasts rank 0's
        parameters and buffers at construction, so all ranks start identical.
        """
        if not distributed.is_distributed():
            return None
        params = [p for p in self.module.parameters() if p.requires_grad]
        device_ids = [params[0].device.index] if params and params[0].device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(_StepModule(self.module, step), device_ids=device_ids,
                                                   find_unused_parameters=True)

    @staticmethod
    def _local_batch(batch: torch.Tensor):
        """This rank's rows of a global batch, the loss scale and the weight of its terms in the epoch sums.

        Rank r takes the contiguous part ``distributed.shard(B)`` and scales its loss by
        W b_r / B, so DDP's average over ranks is the global batch's mean gradient. A batch
        with fewer rows than ranks is processed whole on every rank (scale 1; only rank 0's
        terms are counted).
        """
        world = distributed.world_size()
        if world == 1:
            return batch, 1.0, len(batch)
        if len(batch) < world:
            return batch, 1.0, len(batch) if distributed.is_main_process() else 0
        part = distributed.shard(len(batch))
        return batch[part.start:part.stop], world * len(part) / len(batch), len(part)

    @staticmethod
    def _global_sums(sums: dict[str, float]) -> dict[str, float]:
        """The epoch's weighted sums of loss terms added over the ranks (one all-reduce per epoch)."""
        if not distributed.is_distributed():
            return sums
        keys = sorted(sums)
        total = distributed.all_reduce_sum(torch.tensor([sums[k] for k in keys], dtype=torch.float64,
                                                        device=distributed._collective_device()))
        return dict(zip(keys, total.tolist()))

    def _step(self, parallel, step, batch, epoch: int, index: int, scale: float = 1.0) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        terms = step(batch) if parallel is None else parallel(batch)
        loss = terms["loss"]
        # Agreed over the ranks, so a non-finite loss on one rank stops all of them (none is left waiting).
        if not distributed.agree(bool(torch.isfinite(loss))):
            where = "" if distributed.world_size() == 1 else f" on some rank (rank {distributed.rank()}'s loss: " \
                f"{loss.item()})"
            value = loss.item() if not where else "non-finite"
            raise FloatingPointError(
                f"{self.name}: the loss became {value}{where} at epoch {epoch + 1}, batch {index + 1}; "
                "lower the learning rate or set clip_norm")
        (loss * scale if scale != 1.0 else loss).backward()
        if self.clip_norm is not None:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.clip_norm)
        self.optimizer.step()
        return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in terms.items()}

    def _early_stopping(self, record: dict, monitor: str, mode: str) -> bool:
        """Track the best monitored value; True when ``patience`` epochs passed without improvement."""
        if self.patience is None:
            return False
        if monitor not in record:
            raise ValueError(f"cannot monitor {monitor!r}: the epoch record has {', '.join(record)}")
        value = record[monitor]
        best = self._best["value"]
        improved = best is None or (value > best + self.min_delta if mode == "max" else value < best - self.min_delta)
        if improved:
            self._best = {"value": value, "epoch": record["epoch"],
                          "state": copy.deepcopy(self.module.state_dict())}
            self._bad_epochs = 0
        else:
            self._bad_epochs += 1
        return self._bad_epochs >= self.patience

    def _restore_best(self) -> None:
        if self._best["state"]:
            self.module.load_state_dict(self._best["state"])
        self.module.eval()


class _StepModule(nn.Module):
    """``forward(batch) = step(batch)``: lets DistributedDataParallel see the step as the forward pass."""

    def __init__(self, module: nn.Module, step: Callable[[tuple], dict] | None = None):
        super().__init__()
        self.module = module
        self.step = step

    def forward(self, batch):
        return self.step(batch)

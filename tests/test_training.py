"""The one training loop (mixclust.training.Trainer): resume, checkpoints, early stopping, clipping, shuffling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import mixclust
from mixclust.training import Trainer, TrainingInterrupted, interrupted_after

N, D = 48, 4


def make_data():
    g = torch.Generator().manual_seed(123)
    X = torch.randn(N, D, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(N, generator=g)
    return X, y[:, None]


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 1))


def make_step(model, calls=None):
    def step(batch):
        x, y = batch
        if calls is not None:
            calls.append(1)
        # Noise from the global RNG (like a VAE's sampling) as well as dropout: resume must restore it.
        noisy = x + 0.01 * torch.randn_like(x)
        return {"loss": ((model(noisy) - y) ** 2).mean(), "extra": torch.tensor(1.0)}
    return step


def without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_history_has_one_record_per_epoch_with_loss_terms_and_seconds():
    model = make_model()
    history = Trainer(model, epochs=3, batch_size=16, lr=1e-2).fit(make_data(), make_step(model))
    assert len(history) == 3
    assert [r["epoch"] for r in history] == [1, 2, 3]
    for record in history:
        assert set(record) == {"epoch", "loss", "extra", "seconds"}
        assert record["extra"] == pytest.approx(1.0) and record["seconds"] >= 0


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    data = make_data()
    model = make_model()
    reference = Trainer(model, epochs=4, batch_size=10, lr=1e-2, checkpoint_dir=tmp_path / "A", seed=3)
    reference_history = reference.fit(data, make_step(model))

    def kill_after_epoch_2(epoch, record):
        if epoch == 2:
            raise TrainingInterrupted("killed")

    first = make_model()
    with pytest.raises(TrainingInterrupted):
        Trainer(first, epochs=4, batch_size=10, lr=1e-2, checkpoint_dir=tmp_path / "B", seed=3).fit(
            data, make_step(first), on_epoch_end=kill_after_epoch_2)
    assert (tmp_path / "B" / "train.pt").exists()

    torch.manual_seed(999)  # the global RNG is in another state, as in a new process
    resumed, calls = make_model(), []
    history = Trainer(resumed, epochs=4, batch_size=10, lr=1e-2, checkpoint_dir=tmp_path / "B", seed=3).fit(
        data, make_step(resumed, calls))
    assert 0 < len(calls) < 4 * 5  # it continued rather than starting over
    assert without_seconds(history) == without_seconds(reference_history)
    assert_same_state(resumed.state_dict(), model.state_dict())


def test_finished_checkpoint_is_reused_without_training(tmp_path):
    data = make_data()
    model = make_model()
    Trainer(model, epochs=2, batch_size=16, lr=1e-2, checkpoint_dir=tmp_path).fit(data, make_step(model))
    again, calls = make_model(seed=5), []
    history = Trainer(again, epochs=2, batch_size=16, lr=1e-2, checkpoint_dir=tmp_path).fit(
        data, make_step(again, calls))
    assert calls == [] and len(history) == 2
    assert_same_state(again.state_dict(), model.state_dict())


def test_vae_resume_through_the_estimator(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.random((64, 1, 8, 8)).astype(np.float32)
    params = dict(arch="mlp", hidden=(16,), latent_dim=3, epochs=4, batch_size=16, random_state=1, device="cpu")
    reference = mixclust.VAE(**params).fit(X)

    with pytest.raises(TrainingInterrupted), interrupted_after(2):
        mixclust.VAE(checkpoint_dir=str(tmp_path), **params).fit(X)

    torch.manual_seed(12345)
    resumed = mixclust.VAE(checkpoint_dir=str(tmp_path), **params).fit(X)
    assert without_seconds(resumed.history_) == without_seconds(reference.history_)
    assert_same_state(resumed.encoder_.state_dict(), reference.encoder_.state_dict())
    assert_same_state(resumed.decoder_.state_dict(), reference.decoder_.state_dict())
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_checkpoints_are_atomic_and_corrupt_ones_are_named(tmp_path):
    data = make_data()
    model = make_model()
    Trainer(model, epochs=2, batch_size=16, lr=1e-2, checkpoint_dir=tmp_path).fit(data, make_step(model))
    assert [p.name for p in tmp_path.iterdir()] == ["train.pt"]  # no temporary files left behind

    checkpoint = tmp_path / "train.pt"
    content = checkpoint.read_bytes()
    checkpoint.write_bytes(content[: len(content) // 2])  # truncated
    with pytest.raises(ValueError, match="train.pt"):
        Trainer(make_model(), epochs=2, batch_size=16, lr=1e-2, checkpoint_dir=tmp_path).fit(data, make_step(model))
    checkpoint.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="train.pt"):
        Trainer(make_model(), epochs=2, batch_size=16, lr=1e-2, checkpoint_dir=tmp_path).fit(data, make_step(model))


def test_checkpoint_of_another_model_is_refused(tmp_path):
    data = make_data()
    model = make_model()
    Trainer(model, epochs=1, batch_size=16, lr=1e-2, checkpoint_dir=tmp_path).fit(data, make_step(model))
    other = nn.Linear(D, 1)
    with pytest.raises(ValueError, match="does not match"):
        Trainer(other, epochs=2, batch_size=16, lr=1e-2, checkpoint_dir=tmp_path).fit(
            data, lambda b: {"loss": ((other(b[0]) - b[1]) ** 2).mean()})


def test_nan_loss_raises_naming_the_epoch_and_keeps_the_last_good_checkpoint(tmp_path):
    data = make_data()
    model = make_model()
    step = make_step(model)
    counter = {"n": 0}

    def step_nan_in_epoch_3(batch):
        counter["n"] += 1
        terms = step(batch)
        if counter["n"] > 2 * 3:  # 3 batches per epoch
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    with pytest.raises(FloatingPointError, match="epoch 3"):
        Trainer(model, epochs=5, batch_size=16, lr=1e-2, checkpoint_dir=tmp_path).fit(data, step_nan_in_epoch_3)
    state = torch.load(tmp_path / "train.pt", weights_only=True)
    assert not state["finished"]
    assert all(torch.isfinite(t).all() for t in state["module"].values())
    import json
    assert len(json.loads(state["history"])) == 2


def test_early_stopping_waits_patience_epochs_and_restores_the_best_weights():
    data = make_data()
    model = make_model()
    scripted = iter([5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 1.0, 0.5])
    snapshots = {}

    def remember(epoch, record):
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    history = Trainer(model, epochs=8, batch_size=16, lr=1e-2, patience=2).fit(
        data, make_step(model), validate=lambda: {"val": next(scripted)}, monitor="val", mode="min",
        on_epoch_end=remember)
    assert len(history) == 5  # epochs 4 and 5 did not improve on epoch 3
    assert_same_state(model.state_dict(), snapshots[3])
    assert not model.training


def test_early_stopping_in_max_mode():
    data = make_data()
    model = make_model()
    scripted = iter([0.1, 0.5, 0.4, 0.3, 0.9])
    history = Trainer(model, epochs=5, batch_size=16, lr=1e-2, patience=2).fit(
        data, make_step(model), validate=lambda: {"nmi": next(scripted)}, monitor="nmi", mode="max")
    assert len(history) == 4


def test_clip_norm_bounds_the_gradient_norm():
    X, y = make_data()

    def update_norm(clip_norm):
        model = make_model()
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        step = lambda b: {"loss": 1000.0 * ((model(b[0]) - b[1]) ** 2).mean()}  # noqa: E731
        Trainer(model, epochs=1, batch_size=N, lr=1.0, optimizer="sgd", clip_norm=clip_norm).fit((X, y), step)
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        return float((after - before).norm())  # SGD with lr=1: the update is minus the (clipped) gradient

    assert update_norm(None) > 1.0
    assert update_norm(0.1) == pytest.approx(0.1, rel=1e-4)


def test_shuffling_is_seeded_and_differs_between_epochs():
    index = torch.arange(20)

    def orders(seed, shuffle=True):
        seen = []
        model = nn.Linear(1, 1)

        def step(batch):
            seen.append(batch[0].clone())
            return {"loss": model(batch[0][:, None].float()).sum() * 0.0}

        Trainer(model, epochs=3, batch_size=7, lr=1e-3, seed=seed, shuffle=shuffle).fit(index, step)
        return [torch.cat(seen[i * 3:(i + 1) * 3]) for i in range(3)]

    a, b, c = orders(0), orders(0), orders(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    assert not torch.equal(a[0], a[1])
    assert all(torch.equal(torch.sort(epoch).values, index) for epoch in a)  # a permutation each epoch
    assert all(torch.equal(epoch, index) for epoch in orders(0, shuffle=False))


def test_unknown_optimizer_and_monitor_are_clear_errors():
    model = make_model()
    with pytest.raises(ValueError, match="unknown optimizer"):
        Trainer(model, epochs=1, batch_size=4, lr=1e-3, optimizer="rmsprop")
    with pytest.raises(ValueError, match="cannot monitor 'val_nmi'"):
        Trainer(model, epochs=2, batch_size=16, lr=1e-3, patience=1).fit(make_data(), make_step(model),
                                                                          monitor="val_nmi")


def test_a_checkpoint_of_other_parameters_or_data_is_refused_and_a_longer_run_continues_it(tmp_path):
    X = np.random.default_rng(0).random((48, 6)).astype(np.float32)
    params = dict(arch="mlp", hidden=(8,), latent_dim=2, batch_size=16, random_state=0, device="cpu")
    mixclust.AutoEncoder(epochs=2, checkpoint_dir=tmp_path, **params).fit(X)
    with pytest.raises(ValueError, match="different model or data set.*latent_dim: '2' there, '3' here"):
        mixclust.AutoEncoder(epochs=2, checkpoint_dir=tmp_path, **{**params, "latent_dim": 3}).fit(X)
    with pytest.raises(ValueError, match="different model or data set.*data"):
        mixclust.AutoEncoder(epochs=2, checkpoint_dir=tmp_path, **params).fit(X[:40])
    with pytest.raises(ValueError, match="holds 2 epochs.*more than epochs=1"):
        mixclust.AutoEncoder(epochs=1, checkpoint_dir=tmp_path, **params).fit(X)
    longer = mixclust.AutoEncoder(epochs=4, checkpoint_dir=tmp_path, verbose=0, **params).fit(X)
    reference = mixclust.AutoEncoder(epochs=4, **params).fit(X)
    assert without_seconds(longer.history_) == without_seconds(reference.history_)
    assert_same_state(longer.encoder_.state_dict(), reference.encoder_.state_dict())

"""Tests of mixclust.datasets: fast, offline (downloads disabled or served by a fake urlopen)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from mixclust import datasets as D

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No network, no real cache, no inherited MIXCLUST_DATA."""
    monkeypatch.setenv("MIXCLUST_NO_DOWNLOAD", "1")
    monkeypatch.delenv("MIXCLUST_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def _shared_dir():
    """The real data: $MIXCLUST_DATA if set, else ../shared/data when present."""
    env = os.environ.get("MIXCLUST_DATA")
    return Path(env) if env else SHARED


REAL = _shared_dir()


def fake_mnist(n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, n_test).astype(np.uint8)}


def idx_bytes(arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_idx(folder, arrays, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for (split, key), fname in D._IDX_FILES.items():
        data = idx_bytes(arrays[f"{key}_{split}"])
        if gz:
            (folder / f"{fname}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / fname).write_bytes(data)


def check_images(X, y, n, shape=(1, 28, 28)):
    assert X.shape == (n, *shape) and X.dtype == np.float32
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert y is None or (y.shape == (n,) and y.dtype == np.int64)


# ------------------------------------------------------------------------------------------- MNIST

def test_mnist_from_npz_splits(tmp_path):
    arrays = fake_mnist()
    np.savez(tmp_path / "mnist.npz", **arrays)
    X, y = D.load("mnist", data_dir=tmp_path)  # default split: train
    check_images(X, y, 12)
    np.testing.assert_allclose(X[:, 0] * 255, arrays["x_train"], atol=1e-3)
    np.testing.assert_array_equal(y, arrays["y_train"])
    check_images(*D.load("mnist", "test", data_dir=tmp_path), 5)
    X, y = D.load("mnist", "all", data_dir=tmp_path)
    check_images(X, y, 17)
    np.testing.assert_array_equal(y, np.concatenate([arrays["y_train"], arrays["y_test"]]))
    assert D.load("mnist", data_dir=tmp_path, flatten=True)[0].shape == (12, 784)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("sub", ["", "fashion_mnist"])
def test_fashion_from_idx(tmp_path, gz, sub):
    arrays = fake_mnist(7, 3, seed=1)
    write_idx(tmp_path / sub, arrays, gz=gz)
    X, y = D.load("fashion_mnist", "all", data_dir=tmp_path)
    check_images(X, y, 10)
    np.testing.assert_array_equal((X[:7, 0] * 255).round().astype(np.uint8), arrays["x_train"])
    np.testing.assert_array_equal(y[7:], arrays["y_test"])


def test_corrupt_idx_names_file(tmp_path):
    write_idx(tmp_path, fake_mnist())
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte"):
        D.load("mnist", "test", data_dir=tmp_path)


def test_data_dir_is_the_only_place_searched(tmp_path, monkeypatch):
    full, empty = tmp_path / "full", tmp_path / "empty"
    full.mkdir(), empty.mkdir()
    np.savez(full / "mnist.npz", **fake_mnist())
    monkeypatch.setenv("MIXCLUST_DATA", str(full))
    assert D.load("mnist")[0].shape == (12, 1, 28, 28)  # found through MIXCLUST_DATA
    with pytest.raises(D.DataNotFoundError) as info:
        D.load("mnist", data_dir=empty)
    assert str(empty) in str(info.value) and str(full) not in str(info.value)


def test_missing_everywhere_lists_places(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXCLUST_DATA", str(tmp_path / "envdata"))
    with pytest.raises(D.DataNotFoundError) as info:
        D.load("mnist")
    msg = str(info.value)
    for place in (tmp_path / "envdata", tmp_path / "envdata" / "mnist", D.cache_dir()):
        assert str(place) in msg
    assert "data_dir" in msg and "MIXCLUST_DATA" in msg and "disabled" in msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)


def test_corrupt_npz_names_file(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(ValueError, match="mnist.npz"):
        D.load("mnist", data_dir=tmp_path)


class _FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_download_verifies_sha256(tmp_path, monkeypatch):
    """Downloads go to the cache, are decompressed and checked; a mismatch deletes and raises."""
    arrays = fake_mnist(4, 2)
    payload = {fname: idx_bytes(arrays[f"{key}_{split}"]) for (split, key), fname in D._IDX_FILES.items()}
    urls = []

    def fake_urlopen(url, timeout):
        urls.append(url)
        assert timeout <= 60
        return _FakeResponse(gzip.compress(payload[url.rsplit("/", 1)[1][:-3]]))

    monkeypatch.setattr(D.urllib.request, "urlopen", fake_urlopen)
    monkeypatch.setitem(D.SHA256, "mnist", {f: hashlib.sha256(b).hexdigest() for f, b in payload.items()})
    X, y = D.load("mnist", "all", download=True)
    check_images(X, y, 6)
    assert len(urls) == 4 and all(u.startswith(D.URLS["mnist"][0]) for u in urls)
    assert sorted(p.name for p in (D.cache_dir() / "mnist").iterdir()) == sorted(payload)

    monkeypatch.setitem(D.SHA256, "fashion_mnist", {f: "0" * 64 for f in payload})
    with pytest.raises(ValueError, match="sha256"):
        D.load("fashion_mnist", download=True)
    assert not any((D.cache_dir() / "fashion_mnist").iterdir())  # nothing left behind


def test_download_failure_is_data_not_found(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(D.urllib.request, "urlopen", offline)
    monkeypatch.delenv("MIXCLUST_NO_DOWNLOAD")
    with pytest.raises(D.DataNotFoundError, match="no network") as info:
        D.load("mnist", data_dir=tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.skipif(not (REAL / "mnist.npz").is_file(), reason="real MNIST not available")
def test_real_mnist(monkeypatch):
    monkeypatch.setenv("MIXCLUST_DATA", str(REAL))
    X, y = D.load("mnist")
    check_images(X, y, 60000)
    assert np.bincount(y).size == 10
    assert D.load("fashion_mnist", "test")[0].shape == (10000, 1, 28, 28)
    found = {row["name"]: row for row in D.available()}
    assert found["mnist"]["path"] == str(REAL / "mnist.npz") and found["iris"]["available"]


# -------------------------------------------------------------------------------- bundled, synthetic

def test_bundled_sets():
    X, y = D.load("digits")
    check_images(X, y, 1797, (1, 8, 8))
    X, y = D.load("iris")
    assert X.shape == (150, 4) and X.dtype == np.float64 and y.dtype == np.int64
    X_tr, y_tr = D.load("iris", "train")
    X_te, y_te = D.load("iris", "test")
    assert len(X_tr) == 120 and len(X_te) == 30 and np.bincount(y_te).tolist() == [10, 10, 10]
    np.testing.assert_array_equal(X_te, D.load("iris", "test")[0])  # deterministic
    assert D.load("digits", flatten=True)[0].shape == (1797, 64)


@pytest.mark.parametrize("name", ["blobs", "anisotropic", "varied", "moons", "circles"])
def test_synthetic_determinism(name):
    X, y = D.load(name)
    assert X.shape == (1000, 2) and X.dtype == np.float64 and y.dtype == np.int64
    assert len(np.unique(y)) == (2 if name in ("moons", "circles") else 3)
    X2, y2 = D.load(name, random_state=0)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert not np.allclose(X, D.load(name, random_state=1)[0])
    assert D.load(name, n_samples=300)[0].shape == (300, 2)


# ------------------------------------------------------------------------------------ arrays, files

def test_arrays_and_tuples():
    X = np.arange(12.0).reshape(6, 2)
    X2, y = D.load(X)
    assert X2 is X and y is None
    X2, y = D.load((X, [0, 1, 0, 1, 0, 1]))
    assert y.dtype == np.int64
    for bad in (np.array([[1.0, np.nan]]), np.array([["a", "b"]]), np.arange(3.0)):
        with pytest.raises(ValueError):
            D.load(bad)
    with pytest.raises(ValueError, match="labels"):
        D.load((X, [0, 1]))


def test_npy_and_npz_layouts(tmp_path):
    X = np.random.default_rng(0).normal(size=(20, 3))
    np.save(tmp_path / "x.npy", X)
    X2, y = D.load(tmp_path / "x.npy")
    np.testing.assert_array_equal(X, X2)
    assert y is None
    np.savez(tmp_path / "xy.npz", X=X, y=np.arange(20) % 2)
    X2, y = D.load(str(tmp_path / "xy.npz"))
    assert X2.shape == (20, 3) and y.dtype == np.int64
    np.savez(tmp_path / "xonly.npz", X=X)
    assert D.load(tmp_path / "xonly.npz")[1] is None
    np.savez(tmp_path / "split.npz", **fake_mnist())
    assert D.load(tmp_path / "split.npz")[0].shape == (12, 1, 28, 28)
    assert D.load(tmp_path / "split.npz", "test")[0].shape == (5, 1, 28, 28)
    assert D.load(tmp_path / "split.npz", "all", flatten=True)[0].shape == (17, 784)
    np.savez(tmp_path / "odd.npz", a=X)
    with pytest.raises(ValueError, match="odd.npz"):
        D.load(tmp_path / "odd.npz")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="bad.npy"):
        D.load(tmp_path / "bad.npy")
    with pytest.raises(D.DataNotFoundError, match="missing.npy"):
        D.load(tmp_path / "missing.npy")


def test_image_folder_with_classes(tmp_path):
    import matplotlib.pyplot as plt
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, n in (("cat", 3), ("dog", 2)):
        (tmp_path / "rgb" / cls).mkdir(parents=True)
        for i in range(n):  # imsave writes RGBA: alpha must be dropped
            plt.imsave(tmp_path / "rgb" / cls / f"{i}.png", rng.random((6, 5)), cmap="gray")
    X, y = D.load(tmp_path / "rgb")
    check_images(X, y, 5, (3, 6, 5))
    assert y.tolist() == [0, 0, 0, 1, 1]

    (tmp_path / "gray").mkdir()
    img = rng.integers(0, 256, (4, 7), dtype=np.uint8)
    for i in range(3):
        Image.fromarray(img).save(tmp_path / "gray" / f"im{i}.png")
    X, y = D.load(tmp_path / "gray", flatten=True)
    assert X.shape == (3, 28) and y is None
    np.testing.assert_allclose(X[0] * 255, img.ravel(), atol=1e-3)

    Image.fromarray(np.zeros((5, 7), np.uint8)).save(tmp_path / "gray" / "im9.png")
    with pytest.raises(ValueError, match="im9.png"):
        D.load(tmp_path / "gray")
    (tmp_path / "gray" / "im9.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="im9.png"):
        D.load(tmp_path / "gray")


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(ValueError, match=str(tmp_path)):
        D.load(tmp_path)


# ------------------------------------------------------------------------------------------- audio

def write_sine(path, freq, seconds=0.3, sr=8000):
    sf = pytest.importorskip("soundfile")
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, subtype="PCM_16")


@pytest.mark.audio
def test_audio_folder_prefix_labels(tmp_path):
    pytest.importorskip("librosa")
    for label, freq in ((0, 300), (1, 1200), (2, 2500)):
        for i in range(2):
            write_sine(tmp_path / f"{label}_spk_{i}.wav", freq, seconds=0.2 + 0.5 * i)
    X, y = D.load(tmp_path)
    check_images(X, y, 6, (1, 32, 32))
    assert y.tolist() == [0, 0, 1, 1, 2, 2]
    assert X[0].max() > 0.5 and X[0, 0, :, -1].max() == 0.0  # a tone, then silence padding
    X, _ = D.load(tmp_path, n_mels=16, n_frames=20)
    assert X.shape == (6, 1, 16, 20)
    (tmp_path / "3_spk_0.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEbroken")
    with pytest.raises(ValueError, match="3_spk_0.wav"):
        D.load(tmp_path)


@pytest.mark.audio
def test_audio_folder_class_subfolders(tmp_path):
    pytest.importorskip("librosa")
    for cls, freq in (("high", 3000), ("low", 200)):
        (tmp_path / cls).mkdir()
        write_sine(tmp_path / cls / "a.wav", freq)
        write_sine(tmp_path / cls / "b.wav", freq, sr=16000)  # resampled to 8 kHz
    X, y = D.load(str(tmp_path))
    check_images(X, y, 4, (1, 32, 32))
    assert y.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(X[0, ..., 2:10], X[1, ..., 2:10], atol=0.05)  # edges differ a bit


@pytest.mark.audio
def test_fsdd_layout_and_split(tmp_path):
    pytest.importorskip("librosa")
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for digit in (3, 7):
        for index in (0, 4, 5, 9):
            write_sine(rec / f"{digit}_jackson_{index}.wav", 200 * (digit + 1), seconds=0.1)
    X, y = D.load("fsdd", data_dir=tmp_path)
    check_images(X, y, 4, (1, 32, 32))
    assert D.load("fsdd", "test", data_dir=tmp_path)[0].shape[0] == 4
    assert sorted(D.load("fsdd", "all", data_dir=tmp_path)[1].tolist()) == [3] * 4 + [7] * 4
    with pytest.raises(D.DataNotFoundError, match="recordings"):
        D.load("fsdd", data_dir=tmp_path / "fsdd" / "recordings")


@pytest.mark.audio
@pytest.mark.skipif(not (REAL / "fsdd" / "recordings").is_dir(), reason="real FSDD not available")
def test_real_fsdd():
    pytest.importorskip("librosa")
    X, y = D.load("fsdd", data_dir=REAL)
    check_images(X, y, 2700, (1, 32, 32))
    X, y = D.load("fsdd", "test", data_dir=REAL)
    check_images(X, y, 300, (1, 32, 32))
    assert np.bincount(y).tolist() == [30] * 10


# ------------------------------------------------------------------------------------------ errors

def test_unknown_name_and_split():
    with pytest.raises(ValueError, match="mnist.*iris"):
        D.load("imagenet")
    with pytest.raises(ValueError, match="'validation'"):
        D.load("iris", split="validation")
    with pytest.raises(TypeError):
        D.load("iris", n_samples=3)


def test_registry_and_available(tmp_path):
    assert D.NAMES == tuple(D.DATASETS) and {"mnist", "fsdd", "iris", "moons"} <= set(D.NAMES)
    rows = D.available(data_dir=tmp_path)
    assert [r["name"] for r in rows] == list(D.NAMES)
    kinds = {r["name"]: r["kind"] for r in rows}
    assert kinds["mnist"] == "image" and kinds["fsdd"] == "audio" and kinds["blobs"] == "synthetic"
    assert all(r["path"] is None for r in rows)
    np.savez(tmp_path / "mnist.npz", **fake_mnist())
    row = next(r for r in D.available(data_dir=tmp_path) if r["name"] == "mnist")
    assert row["available"] and row["path"] == str(tmp_path / "mnist.npz")
    with pytest.raises(D.DataNotFoundError, match="fashion_mnist"):  # alias of a registered name
        D.load("Fashion-MNIST", data_dir=tmp_path / "none", download=False)


# --------------------------------------------------------------------------------------------- MAD

MAD_HEADER = ",path,label,youtube title,youtube url\n"
#: (split folder, label, kind of sound) per row, in CSV order.
MAD_ROWS = {
    "train": [(1, "noise"), (0, "sine"), (5, "chirp"), (0, "sine"), (1, "noise")],
    "test": [(1, "noise"), (0, "sine"), (1, "noise")],
}


def write_wav16(path, wave, sr=8000):
    """Write a mono int16 wav with the standard library."""
    import wave as wavmod

    data = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wavmod.open(str(path), "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(sr), f.writeframes(data)


def mad_sound(kind, seed, sr=8000, seconds=0.25):
    t = np.arange(int(sr * seconds)) / sr
    if kind == "sine":
        return 0.5 * np.sin(2 * np.pi * (300 + 100 * seed) * t)
    if kind == "chirp":
        return 0.5 * np.sin(2 * np.pi * (200 * t + 6000 * t ** 2))  # 200 Hz rising to 3.2 kHz
    return 0.5 * np.random.default_rng(seed).uniform(-1, 1, t.size)  # white noise burst


def write_mad(base):
    """A tiny MAD_dataset folder in the Kaggle layout; returns the folder and the labels per split."""
    root = base / "MAD_dataset"
    lines = {"train": [MAD_HEADER], "test": [MAD_HEADER]}
    for split, rows in MAD_ROWS.items():
        sub = "training" if split == "train" else "test"
        for i, (label, kind) in enumerate(rows):
            rel = f"{sub}/{i // 2:03d}/{i % 2}.wav"
            write_wav16(root / rel, mad_sound(kind, i))
            if i == 1:  # quoted title with commas, empty url
                title = '"U.S. Marines Heavy Live Fire Exercises: M240 Machine Gun, M2 Browning, 60mm Mortar",'
            else:
                title = "USAF. The World's Most Powerful F-22 Raptor Fighters.,https://www.youtube.com/watch?v=x&t=3s"
            lines[split].append(f"{i},{rel},{label},{title}\n")
    (root / "training.csv").write_text("".join(lines["train"]))
    (root / "test.csv").write_text("".join(lines["test"]))
    return root, {s: [label for label, _ in rows] for s, rows in MAD_ROWS.items()}


@pytest.mark.audio
def test_mad_layout_splits_and_labels(tmp_path):
    pytest.importorskip("librosa")
    root, labels = write_mad(tmp_path)
    X, y = D.load_mad(root)  # default split: train
    check_images(X, y, 5, (1, 32, 32))
    assert y.tolist() == labels["train"]
    X_te, y_te = D.load_mad(root, "test")
    check_images(X_te, y_te, 3, (1, 32, 32))
    assert y_te.tolist() == labels["test"]
    X_all, y_all = D.load_mad(root, "all")
    assert y_all.tolist() == labels["train"] + labels["test"]
    np.testing.assert_allclose(X_all, np.concatenate([X, X_te]), atol=1e-6)  # batched FFTs: float32 ulps
    # exactly the images of the audio-folder path: same reader, same log-mel settings
    X_ref, _ = D.load_audio_folder(root, files=([root / "training/000/0.wav"], None))
    np.testing.assert_allclose(X[:1], X_ref, atol=1e-6)
    assert X[1].max() > 0.5 and X[1, 0, :, -1].max() == 0.0  # a 0.25 s tone, then silence padding
    assert D.load_mad(root, "test", n_mels=16, n_frames=20)[0].shape == (3, 1, 16, 20)


@pytest.mark.audio
def test_mad_class_filter_and_registry(tmp_path, monkeypatch):
    pytest.importorskip("librosa")
    root, labels = write_mad(tmp_path)
    X, y = D.load_mad(root, "all", classes=(0, 1))
    assert y.tolist() == [v for v in labels["train"] + labels["test"] if v in (0, 1)]
    X2, y2 = D.load_mad(tmp_path, "all", classes=("communication", "Gunshot"))  # the parent folder works too
    np.testing.assert_allclose(X, X2, atol=1e-6)
    np.testing.assert_array_equal(y, y2)
    assert D.load_mad(root, classes="helicopter")[1].tolist() == [5]  # labels keep their numbers
    assert D.load_mad(root, classes=[np.int64(5), "0"])[1].tolist() == [0, 5, 0]

    X3, y3 = D.load("mad", "all", data_dir=tmp_path, classes=("communication", "gunshot"))
    np.testing.assert_allclose(X3, X, atol=1e-6)
    np.testing.assert_array_equal(y3, y)
    assert D.load("mad", data_dir=root)[1].tolist() == labels["train"]  # the MAD_dataset folder itself
    assert D.load("mad", data_dir=tmp_path, flatten=True)[0].shape == (5, 32 * 32)
    monkeypatch.setenv("MIXCLUST_DATA", str(tmp_path))
    assert D.load("mad", "test")[1].tolist() == labels["test"]
    row = next(r for r in D.available() if r["name"] == "mad")
    assert row["available"] and row["path"] == str(root) and row["kind"] == "audio"


def test_mad_errors(tmp_path):
    """Every problem is a ValueError naming it; none needs librosa (all raised before any audio is read)."""
    with pytest.raises(ValueError, match="does not exist.*kaggle.com/datasets/junewookim"):
        D.load_mad(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"training\.csv is missing.*login"):
        D.load_mad(tmp_path / "empty")

    root, _ = write_mad(tmp_path / "data")
    with pytest.raises(ValueError, match="unknown MAD split 'validation'"):
        D.load_mad(root, "validation")
    with pytest.raises(ValueError, match="unknown MAD class 'tank'.*0 communication"):
        D.load_mad(root, classes=("gunshot", "tank"))
    with pytest.raises(ValueError, match="unknown MAD class 7"):
        D.load_mad(root, classes=[7])
    with pytest.raises(ValueError, match="selects no MAD class"):
        D.load_mad(root, classes=())
    with pytest.raises(ValueError, match="no MAD rows left.*5 helicopter"):
        D.load_mad(root, "test", classes="helicopter")  # helicopters only in training.csv

    (root / "test/000/1.wav").unlink()
    (root / "test/001/0.wav").unlink()
    with pytest.raises(ValueError, match=r"2 of the 3 wav files listed in test\.csv are missing.*first is "
                                         r"test/000/1\.wav"):
        D.load_mad(root, "test")
    with pytest.raises(ValueError, match=r"1 of the 3 wav files .* first is test/000/1\.wav"):
        D.load_mad(root, "all", classes=0)  # only the rows kept are checked

    (root / "test.csv").unlink()
    with pytest.raises(ValueError, match=r"test\.csv is missing.*kaggle\.com"):
        D.load_mad(root, "all")


def test_mad_not_found_lists_places_and_never_downloads(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("MAD must never be downloaded")

    monkeypatch.setattr(D.urllib.request, "urlopen", no_network)
    monkeypatch.delenv("MIXCLUST_NO_DOWNLOAD")
    with pytest.raises(D.DataNotFoundError) as info:
        D.load("mad", data_dir=tmp_path, classes=(0, 1))
    msg = str(info.value)
    for place in (tmp_path, tmp_path / "MAD_dataset", tmp_path / "mad" / "MAD_dataset"):
        assert f"- {place}\n" in msg
    assert D.MAD_URL in msg and "login" in msg and "data_dir" in msg
    row = next(r for r in D.available(data_dir=tmp_path) if r["name"] == "mad")
    assert not row["available"] and row["path"] is None
    assert D.MAD_CLASSES[:2] == ("communication", "gunshot") and len(D.MAD_CLASSES) == 7

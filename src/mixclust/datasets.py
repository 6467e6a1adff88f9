"""Data sets: registered names, user arrays, files and folders.

One entry point, :func:`load`, returns ``(X, y)`` for

* the registered data sets listed in :data:`NAMES` (see :data:`DATASETS`):

  ============== ========= ========================================================= ==============
  name           kind      what                                                      default split
  ============== ========= ========================================================= ==============
  mnist          image     MNIST digits, (n, 1, 28, 28); 60,000 train / 10,000 test  ``"train"``
  fashion_mnist  image     Fashion-MNIST, same layout                                ``"train"``
  fsdd           audio     Free Spoken Digit Dataset as log-mel images; 2,700/300    ``"train"``
  mad            audio     Military Audio Dataset as log-mel images, 7 classes       ``"train"``
  digits         bundled   scikit-learn 8x8 digits, (1797, 1, 8, 8)                  ``"all"``
  iris           bundled   scikit-learn iris, (150, 4) float64                       ``"all"``
  blobs, ...     synthetic 2-D sets of the GMM and objective-clustering studies      ``"all"``
  ============== ========= ========================================================= ==============

* a path to an ``.npy`` file (``X`` only), an ``.npz`` file (keys ``X`` and optional ``y``, or
  ``x_train``/``y_train``/``x_test``/``y_test``), an image folder or an audio folder;
* a numpy array ``X`` or a tuple ``(X, y)``.

Conventions
-----------
Images are ``(n, C, H, W)`` float32 in [0, 1] (``flatten=True`` gives ``(n, C*H*W)``); tabular and
synthetic data are 2-D float64 and are *not* standardised; labels are int64 (``None`` when unknown).

Where files are looked for
--------------------------
``data_dir`` if given, and then only there; otherwise each folder of ``$MIXCLUST_DATA`` (several may be
joined with ``os.pathsep``) and then the user cache (``$XDG_CACHE_HOME/mixclust``, default
``~/.cache/mixclust``). In each folder ``d`` the files may lie in ``d`` itself or in ``d/<name>/``.
MNIST and Fashion-MNIST missing everywhere are downloaded (official gzip files, sha256 of the
uncompressed files checked) into ``data_dir`` if given, else into the cache, unless ``download=False``
or ``MIXCLUST_NO_DOWNLOAD=1``. FSDD and MAD are never downloaded (MAD needs a Kaggle login; see
:func:`load_mad`). Missing data raise :class:`DataNotFoundError` naming every place looked.

Folders
-------
A folder holds images (png, jpg, ...) or sounds (wav, flac, ogg). Files spread over two or more
subfolders are labelled by subfolder (labels index the sorted subfolder names); otherwise the files of
the folder (or of its only subfolder) are labelled by an integer name prefix ``<label>_...`` when all
have one (FSDD style), else ``y`` is None. Images are never resized. Sounds become log-mel images
(:func:`log_mel_images`, :data:`AUDIO_DEFAULTS`: 8 kHz, 32 mels, n_fft 512, hop 192, 32 frames, dB with
the fixed reference 1.0 clipped to [-80, 30] dB and mapped to [0, 1]); this needs ``mixclust[audio]``.

Splits
------
``split`` is ``"train"``, ``"test"``, ``"all"`` (train then test) or ``None`` (the default split of the
table above; ``"train"`` for files in the ``x_train`` layout). The bundled sets use a stratified 80/20
split with seed 0. Sources with no split (synthetic sets, arrays, ``X``/``y`` files, folders) return all
their data whatever the split; draw a test set from a synthetic generator with another
``random_state``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from ._io import temporary_beside

__all__ = ["DATASETS", "MAD_CLASSES", "NAMES", "SPLITS", "DataNotFoundError", "Dataset", "available", "load",
           "load_mad", "load_table"]

SPLITS = ("train", "test", "all")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

#: Spectrogram settings of audio folders and FSDD (override any of them as ``load`` keywords).
#: 32 frames of hop 192 at 8 kHz cover 0.77 s, more than 95 % of the FSDD recordings.
AUDIO_DEFAULTS = {"sr": 8000, "n_mels": 32, "n_fft": 512, "hop_length": 192, "n_frames": 32,
                  "db_range": (-80.0, 30.0)}

_IDX_FILES = {  # (split, array) -> official file name
    ("train", "x"): "train-images-idx3-ubyte", ("train", "y"): "train-labels-idx1-ubyte",
    ("test", "x"): "t10k-images-idx3-ubyte", ("test", "y"): "t10k-labels-idx1-ubyte",
}
#: Official download locations (tried in order); the gzip files are ``<base><idx name>.gz``.
URLS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    # The S3 *website* endpoint serves plain http only; integrity comes from the sha256 below.
    "fashion_mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"],
}
#: sha256 of the *uncompressed* official IDX files.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset"
#: Where MAD is obtained by hand (a Kaggle login is needed, so it is never downloaded automatically).
MAD_URL = "https://www.kaggle.com/datasets/junewookim/mad-dataset-military-audio-dataset"
#: The Military Audio Dataset's class names; the name of label ``k`` is ``MAD_CLASSES[k]``.
MAD_CLASSES = ("communication", "gunshot", "footsteps", "shelling", "vehicle", "helicopter", "fighter")
DOWNLOAD_TIMEOUT = 30.0  # seconds without data before a download is abandoned


class DataNotFoundError(ValueError, FileNotFoundError):
    """A data set was found nowhere; the message lists every place looked."""


# --------------------------------------------------------------------------------------------------
# Where to look
# --------------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """Return the user cache folder, ``$XDG_CACHE_HOME/mixclust`` or ``~/.cache/mixclust``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mixclust"


def search_dirs(data_dir=None) -> list[Path]:
    """Return the folders searched, in order: ``[data_dir]`` alone, else ``$MIXCLUST_DATA`` + cache."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    env = os.environ.get("MIXCLUST_DATA", "")
    return [Path(p).expanduser() for p in env.split(os.pathsep) if p] + [cache_dir()]


def _candidates(name, dirs):
    """Each searched folder ``d`` and then ``d/<name>``."""
    return [c for d in dirs for c in (d, d / name)]


def _not_found(name, wanted, places, extra=""):
    where = "\n".join(f"  - {p}" for p in places)
    return DataNotFoundError(
        f"data set {name!r} not found: looked for {wanted} in\n{where}\n{extra}"
        f"Point at the data with load({name!r}, data_dir=...) or the MIXCLUST_DATA environment variable.")


# --------------------------------------------------------------------------------------------------
# Array helpers
# --------------------------------------------------------------------------------------------------

def _as_images(x):
    """uint8 (n, H, W) or (n, C, H, W) -> float32 (n, C, H, W) in [0, 1]; other arrays unchanged
    except that 3-D arrays get a channel axis."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[:, None]
    if x.dtype == np.uint8 and x.ndim == 4:
        x = x.astype(np.float32) / np.float32(255.0)
    return x


def _labels(y):
    if y is None:
        return None
    y = np.asarray(y).reshape(-1)
    return y.astype(np.int64) if y.dtype.kind in "iub" else y


def _validate(X, y, source="X"):
    X = np.asarray(X)
    if X.dtype.kind not in "biuf" or X.ndim < 1:
        raise ValueError(f"{source}: expected a numeric array, got dtype {X.dtype} and shape {X.shape}")
    if X.ndim == 1:
        raise ValueError(f"{source}: expected at least 2 dimensions (n_samples, ...), got shape {X.shape}")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        raise ValueError(f"{source}: contains NaN or infinite values")
    y = _labels(y)
    if y is not None and len(y) != len(X):
        raise ValueError(f"{source}: {len(X)} samples but {len(y)} labels")
    return X, y


def _pick(parts, split):
    """``parts`` maps 'train'/'test' to (X, y); 'all' concatenates train then test."""
    if split != "all":
        return parts[split]
    xs, ys = zip(*(parts["train"], parts["test"]))
    return np.concatenate(xs), (None if any(v is None for v in ys) else np.concatenate(ys))


#: What a file that fails to parse means for the user, by its type (the parser's own words follow).
_INVALID_FILE = {
    ".npz": "it is not a valid .npz archive (perhaps truncated by an interrupted download or copy, or a file of "
            "another format renamed)",
    ".npy": "it is not a valid .npy array (perhaps truncated, saved with pickled objects, or of another format)",
    ".parquet": "it is not a valid Parquet file (perhaps truncated or of another format)",
    ".csv": "it is not readable as a UTF-8 text table",
    ".tsv": "it is not readable as a UTF-8 text table",
}


def _file_error(path, exc):
    path = Path(path)
    meaning = _INVALID_FILE.get(path.suffix.lower(), "the file is damaged or not in the expected format")
    return ValueError(f"cannot read {path}: {meaning}; replace it with an intact copy "
                      f"({type(exc).__name__}: {exc})")


# --------------------------------------------------------------------------------------------------
# .npy / .npz and IDX files
# --------------------------------------------------------------------------------------------------

def _load_npy(path, split):
    try:
        X = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any failure is a corrupt file
        raise _file_error(path, exc) from exc
    return _validate(_as_images(X), None, str(path))


def _load_npz(path, split):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:  # noqa: BLE001
        raise _file_error(path, exc) from exc
    if "X" in arrays:
        return _validate(_as_images(arrays["X"]), arrays.get("y"), str(path))
    if {"x_train", "x_test"} <= arrays.keys():
        parts = {s: _validate(_as_images(arrays[f"x_{s}"]), arrays.get(f"y_{s}"), str(path))
                 for s in ("train", "test")}
        return _pick(parts, split or "train")
    raise ValueError(f"{path}: expected keys 'X' (and optional 'y') or x_train/y_train/x_test/y_test, "
                     f"found {sorted(arrays)}")


# --------------------------------------------------------------------------------------------------
# Feature tables: CSV, TSV, Parquet
# --------------------------------------------------------------------------------------------------

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_delimited(path, delimiter: str) -> tuple[list[str], list[list[str]]]:
    """Column names and rows (as strings) of a CSV/TSV file; the first row is the header when one of its
    non-empty fields is not a number, else the columns are named by their 0-based index."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [row for row in csv.reader(f, delimiter=delimiter) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _file_error(path, exc) from exc
    if not rows:
        raise ValueError(f"{path}: the table is empty")
    header = any(field.strip() and not _is_number(field) for field in rows[0])
    names = [field.strip() for field in rows[0]] if header else [str(i) for i in range(len(rows[0]))]
    body = rows[1:] if header else rows
    for line, row in enumerate(body, start=2 if header else 1):
        if len(row) != len(names):
            raise ValueError(f"{path}: line {line} has {len(row)} fields, the table has {len(names)} columns")
    return names, body


def _read_parquet(path) -> tuple[list[str], list]:
    """Column names and columns (numpy arrays) of a Parquet file, through pyarrow."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("reading .parquet needs pyarrow: pip install 'mixclust[tables]'") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - any failure is an unreadable file
        raise _file_error(path, exc) from exc
    return list(table.column_names), [table.column(i).to_numpy(zero_copy_only=False)
                                      for i in range(table.num_columns)]


def _column_index(names: list[str], key, path, what: str) -> int:
    """A column given by name, or by 0-based index (an int or a string of digits not used as a name)."""
    key = key.strip() if isinstance(key, str) else key
    if isinstance(key, str) and key in names:
        return names.index(key)
    if isinstance(key, int | np.integer) or (isinstance(key, str) and key.isdigit()):
        index = int(key)
        if 0 <= index < len(names):
            return index
        raise ValueError(f"{path}: {what} index {index} is out of range; the table has {len(names)} columns")
    raise ValueError(f"{path}: no column {key!r} ({what}); columns: {', '.join(names)}")


def _numeric_column(values, name: str, path) -> np.ndarray:
    """A column as float64; a non-numeric value is an error naming the column (empty fields are NaN)."""
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64)
    out = np.empty(len(array), dtype=np.float64)
    for i, value in enumerate(array):
        text = "" if value is None else str(value).strip()
        if text == "" or text.lower() in ("nan", "na"):
            out[i] = np.nan
        elif _is_number(text):
            out[i] = float(text)
        else:
            raise ValueError(f"{path}: column {name!r} is not numeric (row {i + 1}: {text!r}); select the "
                             "feature columns with columns=... (--columns), or name it as the label column")
    return out


def load_table(path, label_column=None, columns=None):
    """Read a feature table (``.csv``, ``.tsv``, or ``.parquet`` with the ``tables`` extra) as ``(X, y)``.

    A CSV/TSV whose first row holds a non-numeric field has a header. ``label_column`` (a name or a 0-based
    index) gives ``y`` (strings allowed) and is left out of X; ``columns`` (names or indices, a list or a
    comma-separated string) selects the features, else every other column is one. Every feature column
    must be numeric (an error names the one that is not); X is float64 (n, d).
    """
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        names, data = _read_parquet(path)
    else:
        names, rows = _read_delimited(path, "\t" if suffix == ".tsv" else ",")
        data = [[row[j] for row in rows] for j in range(len(names))]
    label = None if label_column is None else _column_index(names, label_column, path, "label column")
    if columns is None:
        chosen = [j for j in range(len(names)) if j != label]
    else:
        keys = columns.split(",") if isinstance(columns, str) else list(columns)
        chosen = [_column_index(names, key, path, "feature column") for key in keys if str(key).strip()]
        if label in chosen:
            raise ValueError(f"{path}: column {names[label]!r} is both the label column and a feature column")
    if not chosen:
        raise ValueError(f"{path}: no feature columns left")
    X = np.column_stack([_numeric_column(data[j], names[j], path) for j in chosen])
    y = None
    if label is not None:
        y = np.asarray(data[label])
        if y.dtype.kind not in "iub":
            # Class numbers written as text or floats ("3", "3.0") become integers; names stay strings.
            text = np.array([str(v).strip() for v in y])
            numbers = np.array([float(t) for t in text]) if all(_is_number(t) for t in text) else None
            y = numbers.astype(np.int64) if numbers is not None and np.all(numbers == np.round(numbers)) else text
    X, y = _validate(X, y, str(path))
    return X, y


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (``.gz`` allowed) as used by MNIST; a malformed file is a ValueError."""
    path = Path(path)
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            data = f.read()
        zero, code, ndim = data[:2], data[2], data[3]
        dtype = np.dtype(_IDX_DTYPES[code])
        if zero != b"\0\0" or ndim == 0:
            raise ValueError("bad magic number")
        shape = tuple(np.frombuffer(data, ">u4", count=ndim, offset=4).astype(int))
        body = data[4 + 4 * ndim:]
        if len(body) != dtype.itemsize * int(np.prod(shape)):
            raise ValueError(f"{len(body)} data bytes for shape {shape}")
        return np.frombuffer(body, dtype).reshape(shape).astype(dtype.newbyteorder("="))
    except Exception as exc:  # noqa: BLE001 - truncated, bad gzip, bad header...
        raise _file_error(path, exc) from exc


def _idx_paths(folder):
    """The four IDX files in ``folder`` (uncompressed preferred over .gz), or None if any is missing."""
    found = {}
    for key, fname in _IDX_FILES.items():
        path = next((p for p in (folder / fname, folder / f"{fname}.gz") if p.is_file()), None)
        if path is None:
            return None
        found[key] = path
    return found


def _locate_idx_set(name, dirs):
    """First ``<name>.npz`` or complete IDX set, searching ``d/<name>.npz``, ``d/<name>/<name>.npz``,
    then IDX files in ``d/<name>/`` and ``d``. Returns a Path (npz) or dict (IDX), or None."""
    for d in dirs:
        for npz in (d / f"{name}.npz", d / name / f"{name}.npz"):
            if npz.is_file():
                return npz
        for folder in (d / name, d):
            if (idx := _idx_paths(folder)) is not None:
                return idx
    return None


def _download_enabled(download):
    if download is not None:
        return bool(download)
    return os.environ.get("MIXCLUST_NO_DOWNLOAD", "").strip().lower() not in {"1", "true", "yes", "on"}


def _fetch_verified(url, dest, sha256):
    """Download a gzip file, decompress it to ``dest`` atomically, check the sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temporary_beside(dest, suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp, \
                gzip.GzipFile(fileobj=resp) as gz:
            while chunk := gz.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(f"sha256 mismatch for {url}: got {digest.hexdigest()}, expected {sha256}; "
                             f"the file was deleted")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _download_idx(name, folder):
    """Download the four official files of ``name`` into ``folder``; return the error text or None."""
    errors = []
    for fname, sha in SHA256[name].items():
        dest = folder / fname
        if dest.is_file():
            continue
        for base in URLS[name]:
            print(f"mixclust: downloading {base}{fname}.gz -> {dest}", file=sys.stderr)
            try:
                _fetch_verified(f"{base}{fname}.gz", dest, sha)
                break
            except (OSError, EOFError) as exc:  # URLError, timeout, bad/truncated gzip: next mirror
                errors.append(f"{base}{fname}.gz: {exc}")
        else:
            return "; ".join(errors)
    return None


def _load_idx_set(name, split, data_dir=None, download=None):
    dirs = search_dirs(data_dir)
    found = _locate_idx_set(name, dirs)
    extra = ""
    if found is None:
        if _download_enabled(download):
            target = (dirs[0] if data_dir is not None else cache_dir()) / name
            error = _download_idx(name, target)
            if error is None:
                found = _idx_paths(target)
            else:
                extra = f"Download into {target} failed: {error}\n"
        else:
            extra = "Download is disabled (download=False or MIXCLUST_NO_DOWNLOAD=1).\n"
    if found is None:
        wanted = f"{name}.npz or the IDX files ({', '.join(_IDX_FILES.values())}, optionally .gz)"
        raise _not_found(name, wanted, _candidates(name, dirs), extra)
    if isinstance(found, Path):
        X, y = _load_npz(found, split)
        if X.ndim != 4:
            raise ValueError(f"{found}: expected images, got shape {X.shape}")
        return X, y
    parts = {s: _validate(_as_images(read_idx(found[s, "x"])), read_idx(found[s, "y"]),
                          str(found[s, "x"])) for s in ("train", "test")}
    return _pick(parts, split)


# --------------------------------------------------------------------------------------------------
# Folders of images or sounds
# --------------------------------------------------------------------------------------------------

def _visible(paths):
    return sorted(p for p in paths if not p.name.startswith("."))


def _folder_files(folder, extensions):
    """Files of ``folder`` with labels.

    Files in two or more subfolders: one class per subfolder (labels index the sorted subfolder
    names; files directly in ``folder`` are then ignored). Otherwise the files of ``folder`` (or of its
    only subfolder), labelled by an integer name prefix ``<label>_...`` when every file has one.
    """
    def usable(d):
        return [p for p in _visible(d.iterdir()) if p.is_file() and p.suffix.lower() in extensions]

    subdirs = [(d, usable(d)) for d in _visible(folder.iterdir()) if d.is_dir()]
    subdirs = [(d, files) for d, files in subdirs if files]
    top = usable(folder)
    if len(subdirs) >= 2:
        files = [f for _, fs in subdirs for f in fs]
        return files, np.repeat(np.arange(len(subdirs)), [len(fs) for _, fs in subdirs])
    files = top or (subdirs[0][1] if subdirs else [])
    prefixes = [re.match(r"(\d+)_", f.name) for f in files]
    if files and all(prefixes):
        return files, np.array([int(m.group(1)) for m in prefixes], dtype=np.int64)
    return files, None


def _read_image(path):
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "P":
                img = img.convert("RGBA")
            elif img.mode == "1":
                img = img.convert("L")
            arr = np.asarray(img)
    except Exception as exc:  # noqa: BLE001
        raise _file_error(path, exc) from exc
    scale = {"u1": 255.0, "u2": 65535.0, "i4": 65535.0}.get(arr.dtype.str[1:], 1.0)
    arr = arr.astype(np.float32) / np.float32(scale)
    arr = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    return arr[:3] if arr.shape[0] == 4 else arr[:1] if arr.shape[0] == 2 else arr  # drop alpha


def load_image_folder(folder, split=None):
    """Load a folder of equally sized images as ``(n, C, H, W)`` float32 in [0, 1].

    Grayscale images have 1 channel, colour images 3 (alpha dropped); a folder mixing both gets 3
    channels (grey replicated). Images are never resized: a size mismatch is a ValueError naming the
    first mismatching file. Labels as in the module notes (Folders).
    """
    folder = Path(folder)
    files, y = _folder_files(folder, IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    images = [_read_image(f) for f in files]
    size = images[0].shape[1:]
    for f, im in zip(files, images):
        if im.shape[1:] != size:
            raise ValueError(f"{f}: image size {im.shape[1:]} differs from {size} of {files[0]}; "
                             f"images are not resized, make them equal")
    channels = max(im.shape[0] for im in images)
    X = np.stack([np.repeat(im, channels // im.shape[0], axis=0) for im in images])
    return X, y


def _import_librosa():
    try:
        import librosa
        import soundfile
    except ImportError as exc:
        raise ImportError("audio data need librosa and soundfile: pip install 'mixclust[audio]'") from exc
    return librosa, soundfile


def log_mel_images(waves, sr=8000, n_mels=32, n_fft=512, hop_length=192, n_frames=32,
                   db_range=(-80.0, 30.0)):
    """Turn waveforms (floats in [-1, 1]) into log-mel images ``(n, 1, n_mels, n_frames)`` in [0, 1].

    Each wave is padded with silence or cropped at the end to ``(n_frames - 1) * hop_length`` samples.
    The mel power is put in dB with the fixed reference 1.0 (full-scale audio), clipped to
    ``db_range`` and mapped linearly to [0, 1]; the scale is thus the same for every file and split
    (silence is 0, a full-scale tone near 1).
    """
    librosa, _ = _import_librosa()
    length = (n_frames - 1) * hop_length
    batch = np.stack([librosa.util.fix_length(np.asarray(w, np.float32), size=length) for w in waves])
    power = librosa.feature.melspectrogram(y=batch, sr=sr, n_fft=n_fft, hop_length=hop_length,
                                           n_mels=n_mels)
    db = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
    lo, hi = db_range
    return np.clip((db - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)[:, None]


def _read_audio(path, sr):
    librosa, soundfile = _import_librosa()
    try:
        wave, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise _file_error(path, exc) from exc
    wave = wave.mean(axis=1)
    return wave if rate == sr else librosa.resample(wave, orig_sr=rate, target_sr=sr)


def load_audio_folder(folder, split=None, files=None, **audio):
    """Load a folder of sounds as log-mel images (see :func:`log_mel_images`, :data:`AUDIO_DEFAULTS`).

    Sounds are read with soundfile, mixed to mono and resampled to ``sr``. Labels as in the module
    notes (Folders): class subfolders, or ``{label}_...`` names. ``files`` restricts the load to
    the given subset of (files, labels).
    """
    params = {**AUDIO_DEFAULTS, **audio}
    folder = Path(folder)
    files, y = files if files is not None else _folder_files(folder, AUDIO_EXTENSIONS)
    if not len(files):
        raise ValueError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    waves = [_read_audio(f, params["sr"]) for f in files]
    return log_mel_images(waves, **params), y


def _load_folder(folder, split, **audio):
    """Image or audio folder, whichever kind of file it holds."""
    n_images = len(_folder_files(folder, IMAGE_EXTENSIONS)[0])
    n_audio = len(_folder_files(folder, AUDIO_EXTENSIONS)[0])
    if n_images and n_audio:
        raise ValueError(f"{folder}: holds both images ({n_images}) and sounds ({n_audio}); pick one")
    if n_audio:
        return load_audio_folder(folder, split, **audio)
    if audio:
        raise TypeError(f"unexpected keyword arguments for an image folder: {sorted(audio)}")
    if n_images:
        return load_image_folder(folder, split)
    raise ValueError(f"{folder}: no usable files (images {IMAGE_EXTENSIONS} or sounds {AUDIO_EXTENSIONS})")


# --------------------------------------------------------------------------------------------------
# Registered data sets
# --------------------------------------------------------------------------------------------------

def _locate_fsdd(dirs):
    for folder in (d / sub / "recordings" for d in dirs for sub in ("fsdd", "")):
        if folder.is_dir() and any(folder.glob("*.wav")):
            return folder
    return None


def _load_fsdd(split, data_dir=None, **audio):
    dirs = search_dirs(data_dir)
    folder = _locate_fsdd(dirs)
    if folder is None:
        places = [d / sub / "recordings" for d in dirs for sub in ("fsdd", "")]
        raise _not_found("fsdd", "recordings/*.wav (names {digit}_{speaker}_{index}.wav)", places,
                         f"Get the recordings from {FSDD_URL} (folder 'recordings').\n")
    files, y = _folder_files(folder, (".wav",))
    parsed = [re.fullmatch(r"(\d+)_([^_]+)_(\d+)", f.stem) for f in files]
    if bad := next((f for f, m in zip(files, parsed) if m is None), None):
        raise ValueError(f"{bad}: FSDD names are {{digit}}_{{speaker}}_{{index}}.wav")
    is_test = np.array([int(m.group(3)) < 5 for m in parsed], dtype=bool)  # official test: index 0-4
    keep = np.ones_like(is_test) if split == "all" else is_test == (split == "test")
    subset = ([f for f, k in zip(files, keep) if k], y[keep])
    return load_audio_folder(folder, split, files=subset, **audio)


_MAD_CSV = {"train": "training.csv", "test": "test.csv"}
_MAD_HOWTO = (f"MAD cannot be downloaded automatically (Kaggle needs a login): download it by hand from "
              f"{MAD_URL} and unzip it; this gives the folder MAD_dataset/ holding training.csv, test.csv, "
              f"training/ and test/.")
_MAD_CHUNK = 256  # recordings turned into log-mel images at a time (bounds the memory of the raw waves)


def _holds_mad_csv(folder) -> bool:
    return any((folder / name).is_file() for name in _MAD_CSV.values())


def _mad_root(folder):
    """``folder`` when it holds training.csv or test.csv, else its ``MAD_dataset`` subfolder when that
    does, else None."""
    return next((root for root in (folder, folder / "MAD_dataset") if _holds_mad_csv(root)), None)


def _mad_places(dirs):
    """Where MAD may lie, in search order: ``d``, ``d/MAD_dataset``, ``d/mad``, ``d/mad/MAD_dataset`` for
    each searched folder ``d``."""
    return [c for d in dirs for base in (d, d / "mad") for c in (base, base / "MAD_dataset")]


def _locate_mad(dirs):
    """The first of :func:`_mad_places` holding training.csv or test.csv; None if there is none."""
    return next((place for place in _mad_places(dirs) if _holds_mad_csv(place)), None)


def _mad_class_numbers(classes):
    """``classes`` (None, a label number or name, or an iterable of them) as a sorted tuple of labels."""
    if classes is None:
        return None
    items = (classes,) if isinstance(classes, str | int | np.integer) else tuple(classes)
    known = ", ".join(f"{k} {name}" for k, name in enumerate(MAD_CLASSES))
    numbers = set()
    for item in items:
        text = item.strip().lower() if isinstance(item, str) else None
        if text in MAD_CLASSES:
            numbers.add(MAD_CLASSES.index(text))
        elif text is not None and text.isdigit() and int(text) < len(MAD_CLASSES):
            numbers.add(int(text))
        elif (isinstance(item, int | np.integer) and not isinstance(item, bool)
              and 0 <= item < len(MAD_CLASSES)):
            numbers.add(int(item))
        else:
            raise ValueError(f"unknown MAD class {item!r}; use label numbers or names: {known}")
    if not numbers:
        raise ValueError(f"classes={classes!r} selects no MAD class; use None for all, or some of: {known}")
    return tuple(sorted(numbers))


def _read_mad_csv(path):
    """The ``path`` and ``label`` columns of a MAD CSV (header ``,path,label,youtube title,youtube url``)."""
    names, rows = _read_delimited(path, ",")
    i_path = _column_index(names, "path", path, "recording path column")
    i_label = _column_index(names, "label", path, "label column")
    paths, labels = [], []
    for n, row in enumerate(rows, start=1):
        text = row[i_label].strip()
        if not (text.isdigit() and int(text) < len(MAD_CLASSES)):
            raise ValueError(f"{path}: row {n} ({row[i_path]}) has label {text!r}; MAD labels are 0-6")
        paths.append(row[i_path].strip().replace("\\", "/"))
        labels.append(int(text))
    return paths, labels


def load_mad(folder, split="train", classes=None, **audio):
    """Load the Military Audio Dataset (MAD; Kim et al. 2024) as log-mel images.

    MAD cannot be downloaded automatically: get it by hand from Kaggle (:data:`MAD_URL`, needs a login)
    and unzip it. The extract is the folder ``MAD_dataset/``::

        MAD_dataset/training.csv    the training split, one row per recording
        MAD_dataset/test.csv        the test split
        MAD_dataset/training/<video>/<clip>.wav, MAD_dataset/test/<video>/<clip>.wav

    Each CSV has the header ``,path,label,youtube title,youtube url`` (an unnamed integer index first;
    titles may be quoted and hold commas; the url may be empty); ``path`` is relative to
    ``MAD_dataset/`` (``training/001/0.wav``) and ``label`` is a class number 0-6, named in
    :data:`MAD_CLASSES`: 0 communication, 1 gunshot, 2 footsteps, 3 shelling, 4 vehicle, 5 helicopter,
    6 fighter. Only ``path`` and ``label`` are read.

    Parameters
    ----------
    folder : path-like
        The ``MAD_dataset`` folder, or a folder holding it.
    split : {"train", "test", "all"}
        ``training.csv``, ``test.csv``, or both (the training rows first). None means ``"train"``.
    classes : None, int, str or iterable of them
        None keeps every class; else only the rows whose label is one of the given label numbers or
        names, e.g. ``(0, 1)`` or ``("communication", "gunshot")`` (the two classes of the MoA+ paper).
        Labels keep their original numbers (``classes=(1, 5)`` gives labels 1 and 5, not 0 and 1).
    **audio
        Spectrogram settings, as for audio folders (:data:`AUDIO_DEFAULTS`): ``sr``, ``n_mels``,
        ``n_fft``, ``hop_length``, ``n_frames``, ``db_range``.

    Returns
    -------
    X : ndarray, float32, (n, 1, n_mels, n_frames) in [0, 1]
        The recordings in CSV order, made exactly as FSDD's: read with soundfile, mixed to mono,
        resampled to ``sr``, then :func:`log_mel_images` (each clip padded with silence or cropped at the
        end to ``(n_frames - 1) * hop_length`` samples: 0.77 s with the defaults). Needs
        ``mixclust[audio]``.
    y : ndarray, int64, (n,)
        The CSV labels.

    Raises
    ------
    DataNotFoundError (a ValueError)
        The folder, the split's CSV or a listed wav file is missing (the message names the first
        missing file and how many are missing).
    ValueError
        Unknown split or class, a label outside 0-6, no rows left after the class filter.
    """
    split = "train" if split is None else split
    if split not in SPLITS:
        raise ValueError(f"unknown MAD split {split!r}; use one of {', '.join(SPLITS)}")
    wanted = _mad_class_numbers(classes)
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataNotFoundError(f"MAD folder {folder} does not exist. {_MAD_HOWTO}")
    root = _mad_root(folder) or folder
    parts = ("train", "test") if split == "all" else (split,)
    paths, labels = [], []
    for part in parts:
        csv_path = root / _MAD_CSV[part]
        if not csv_path.is_file():
            raise DataNotFoundError(f"MAD {part} split: {_MAD_CSV[part]} is missing from {root} (looked for "
                                    f"{csv_path}). {_MAD_HOWTO}")
        more_paths, more_labels = _read_mad_csv(csv_path)
        paths += more_paths
        labels += more_labels
    y = np.array(labels, dtype=np.int64)
    keep = np.ones(len(y), bool) if wanted is None else np.isin(y, wanted)
    csv_names = " and ".join(_MAD_CSV[p] for p in parts)
    if not keep.any():
        chosen = "all classes" if wanted is None else "classes " + ", ".join(
            f"{k} {MAD_CLASSES[k]}" for k in wanted)
        present = ", ".join(f"{k} {MAD_CLASSES[k]}" for k in np.unique(y)) or "none"
        raise ValueError(f"no MAD rows left: {csv_names} in {root} list no recording of {chosen} "
                         f"(classes present: {present})")
    listed = [p for p, k in zip(paths, keep) if k]
    missing = [p for p in listed if not (root / p).is_file()]
    if missing:
        raise DataNotFoundError(f"{len(missing)} of the {len(listed)} wav files listed in {csv_names} are missing "
                                f"from {root}; the first is {missing[0]} ({root / missing[0]}). Unzip the whole "
                                f"Kaggle download ({MAD_URL}) so that the paths of the CSV exist below {root}.")
    files, y = [root / p for p in listed], y[keep]
    X = np.concatenate([load_audio_folder(root, split, files=(files[i:i + _MAD_CHUNK], y[i:i + _MAD_CHUNK]),
                                          **audio)[0] for i in range(0, len(files), _MAD_CHUNK)])
    return X, y


def _load_mad(split, data_dir=None, classes=None, **audio):
    dirs = search_dirs(data_dir)
    folder = _locate_mad(dirs)
    if folder is None:
        raise _not_found("mad", "MAD_dataset/training.csv (or test.csv)", _mad_places(dirs), f"{_MAD_HOWTO}\n")
    return load_mad(folder, split, classes=classes, **audio)


def _bundled_split(X, y, split):
    if split == "all":
        return X, y
    from sklearn.model_selection import train_test_split

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    return (X_train, y_train) if split == "train" else (X_test, y_test)


def _load_digits(split, data_dir=None):
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)[:, None]
    return _bundled_split(X, d.target.astype(np.int64), split)


def _load_iris(split, data_dir=None):
    from sklearn.datasets import load_iris

    d = load_iris()
    return _bundled_split(d.data.astype(np.float64), d.target.astype(np.int64), split)


_ANISO = np.array([[0.6, -0.64], [-0.41, 0.85]])  # the stretch of scikit-learn's k-means example
# Fixed centres (those of scikit-learn's k-means-assumptions example, make_blobs with
# random_state=170), so every seed draws the same structure and only the noise changes:
# with random centres some seeds put two blobs on top of each other.
_CENTERS = np.array([[-8.95, -5.46], [-4.59, 0.09], [1.94, 0.51]])


def _make(kind, n_samples, random_state):
    from sklearn import datasets as skd

    makers = {
        "blobs": lambda: skd.make_blobs(n_samples, centers=_CENTERS, random_state=random_state),
        "anisotropic": lambda: skd.make_blobs(n_samples, centers=_CENTERS, random_state=random_state),
        "varied": lambda: skd.make_blobs(n_samples, centers=_CENTERS, cluster_std=[1.0, 2.5, 0.5],
                                         random_state=random_state),
        "moons": lambda: skd.make_moons(n_samples, noise=0.05, random_state=random_state),
        "circles": lambda: skd.make_circles(n_samples, factor=0.5, noise=0.05, random_state=random_state),
    }
    X, y = makers[kind]()
    if kind == "anisotropic":
        X = X @ _ANISO
    return X.astype(np.float64), y.astype(np.int64)


def _load_synthetic(kind, split, data_dir=None, n_samples=1000, random_state=0):
    return _make(kind, int(n_samples), random_state)


@dataclass(frozen=True)
class Dataset:
    """A registered data set: ``loader(split, data_dir=..., **kwargs) -> (X, y)``."""

    name: str
    kind: str  # image, audio, bundled or synthetic
    description: str
    loader: Callable = field(repr=False)
    default_split: str = "all"
    locate: Callable | None = field(default=None, repr=False)  # dirs -> path or None


def _idx_location(name, dirs):
    found = _locate_idx_set(name, dirs)
    return found if isinstance(found, Path) or found is None else found["train", "x"].parent


_SYNTHETIC = {
    "blobs": "3 isotropic Gaussian blobs in 2-D (make_blobs, fixed centres, std 1)",
    "anisotropic": "3 blobs stretched by [[0.6, -0.64], [-0.41, 0.85]]",
    "varied": "3 blobs with standard deviations 1.0, 2.5, 0.5",
    "moons": "two interleaving half circles (make_moons, noise 0.05)",
    "circles": "two concentric circles (make_circles, factor 0.5, noise 0.05)",
}

DATASETS: dict[str, Dataset] = {
    d.name: d for d in [
        Dataset("mnist", "image", "MNIST handwritten digits, 70,000 x (1, 28, 28), 10 classes",
                partial(_load_idx_set, "mnist"), "train", partial(_idx_location, "mnist")),
        Dataset("fashion_mnist", "image", "Fashion-MNIST clothing, 70,000 x (1, 28, 28), 10 classes",
                partial(_load_idx_set, "fashion_mnist"), "train", partial(_idx_location, "fashion_mnist")),
        Dataset("fsdd", "audio", "Free Spoken Digit Dataset, 3,000 log-mel images (1, 32, 32), 10 digits",
                _load_fsdd, "train", _locate_fsdd),
        Dataset("mad", "audio", "Military Audio Dataset (Kaggle, by hand), log-mel images (1, 32, 32), 7 classes",
                _load_mad, "train", _locate_mad),
        Dataset("digits", "bundled", "scikit-learn digits, 1,797 x (1, 8, 8), 10 classes", _load_digits),
        Dataset("iris", "bundled", "Fisher's iris, 150 x 4 features, 3 classes", _load_iris),
        *(Dataset(k, "synthetic", f"{v}; n_samples=1000, random_state=0 by default",
                  partial(_load_synthetic, k)) for k, v in _SYNTHETIC.items()),
    ]
}
NAMES: tuple[str, ...] = tuple(DATASETS)
_ALIASES = {"fashion-mnist": "fashion_mnist", "fashionmnist": "fashion_mnist", "fmnist": "fashion_mnist"}


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------

def _check_split(split):
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)} (or None)")


def _load_path(path, split, **kwargs):
    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"no such file or folder: {path}")
    if path.is_dir():
        return _load_folder(path, split, **kwargs)
    if path.suffix.lower() in TABLE_SUFFIXES:
        table = {k: kwargs.pop(k) for k in ("label_column", "columns") if k in kwargs}
        if kwargs:
            raise TypeError(f"unexpected keyword arguments for {path.name}: {sorted(kwargs)}")
        return load_table(path, **table)
    readers = {".npy": _load_npy, ".npz": _load_npz}
    if path.suffix.lower() not in readers:
        raise ValueError(f"{path}: unsupported file type; use .npy, .npz, .csv, .tsv, .parquet, an image or an "
                         "audio folder")
    if kwargs:
        raise TypeError(f"unexpected keyword arguments for {path.name}: {sorted(kwargs)}")
    return readers[path.suffix.lower()](path, split)


def load(name, split=None, data_dir=None, *, flatten=False, **kwargs):
    """Load a data set as ``(X, y)``.

    Parameters
    ----------
    name : str, path-like, ndarray or tuple
        A registered name (:data:`NAMES`), a path to an ``.npy``/``.npz`` file, a feature table
        (``.csv``, ``.tsv``, ``.parquet``; see :func:`load_table`) or an image or audio folder, an array
        ``X`` or a tuple ``(X, y)``.
    split : {"train", "test", "all"} or None
        None picks the data set's default: ``"train"`` for mnist, fashion_mnist, fsdd, mad and npz files in
        the ``x_train`` layout, everything for the others (see the module notes).
    data_dir : path-like, optional
        The only folder searched for registered data sets (else ``$MIXCLUST_DATA``, then the cache).
    flatten : bool
        Return images as ``(n, C*H*W)``.
    **kwargs
        Per source: ``download`` (mnist, fashion_mnist; default: unless ``MIXCLUST_NO_DOWNLOAD=1``);
        ``n_samples``, ``random_state`` (synthetic); ``sr``, ``n_mels``, ``n_fft``, ``hop_length``,
        ``n_frames``, ``db_range`` (fsdd, mad and audio folders, see :data:`AUDIO_DEFAULTS`);
        ``classes`` (mad, see :func:`load_mad`);
        ``label_column``, ``columns`` (tables, see :func:`load_table`).

    Returns
    -------
    X : ndarray
        Images ``(n, C, H, W)`` float32 in [0, 1]; tabular and synthetic data 2-D float64 (user arrays
        keep their dtype, except uint8 images which become float32 in [0, 1]).
    y : ndarray of int64 or None
        Labels, None when the source has none.

    Raises
    ------
    DataNotFoundError
        A registered data set found nowhere, or a missing path (the message lists the places looked).
    ValueError
        Unknown name or split, corrupt or unreadable file (named), folder without usable files.
    """
    _check_split(split)
    if isinstance(name, np.ndarray | tuple | list):
        X, y = name if isinstance(name, tuple) else (name, None)
        if kwargs:
            raise TypeError(f"unexpected keyword arguments for an array: {sorted(kwargs)}")
        X, y = _validate(X, y)
    elif isinstance(name, str) and _ALIASES.get(name.lower(), name.lower()) in DATASETS:
        spec = DATASETS[_ALIASES.get(name.lower(), name.lower())]
        X, y = spec.loader(split or spec.default_split, data_dir=data_dir, **kwargs)
    elif isinstance(name, os.PathLike) or (isinstance(name, str) and (
            os.sep in name or "/" in name or Path(name).suffix or Path(name).exists())):
        X, y = _load_path(name, split, **kwargs)
    else:
        raise ValueError(f"unknown data set {name!r}: not a registered name ({', '.join(NAMES)}) "
                         f"nor a path to an .npy/.npz file or a folder")
    if flatten and X.ndim > 2:
        X = X.reshape(len(X), -1)
    return X, y


def available(data_dir=None) -> list[dict]:
    """Describe the registered data sets.

    Returns
    -------
    list of dict
        One per data set, with keys ``name``, ``kind`` (image, audio, bundled, synthetic),
        ``description``, ``default_split``, ``path`` (where its files were found, None if missing or
        not file based) and ``available`` (loadable without a download).
    """
    dirs = search_dirs(data_dir)
    rows = []
    for spec in DATASETS.values():
        path = spec.locate(dirs) if spec.locate else None
        rows.append({"name": spec.name, "kind": spec.kind, "description": spec.description,
                     "default_split": spec.default_split, "path": None if path is None else str(path),
                     "available": spec.locate is None or path is not None})
    return rows

"""Cost of ``mixclust fit``'s report (report.md and its figures) on all 70,000 MNIST images, with the UMAP map a
long fit gets. The soft assignments come from a diagonal GMM on 20 PCA components (the report's cost does not
depend on the model).

    MIXCLUST_DATA=../shared/data .venv/bin/python benchmarks/bench_fit_report.py
"""
import tempfile
import time

import torch
from sklearn.decomposition import PCA

from mixclust import GaussianMixture, datasets
from mixclust.fit_report import write_fit_report

torch.set_num_threads(1)
X, y = datasets.load("mnist", split="all")
Z = PCA(20, random_state=0).fit_transform(X.reshape(len(X), -1))
proba = GaussianMixture(10, covariance_type="diag", random_state=0).fit(Z).predict_proba(Z)
with tempfile.TemporaryDirectory() as out:
    started = time.perf_counter()
    write_fit_report(out, "gmm", X, proba, y, None, fit_seconds=900.0, data_name="mnist")
    print(f"report on 70,000 MNIST images (UMAP map): {time.perf_counter() - started:.1f} s")

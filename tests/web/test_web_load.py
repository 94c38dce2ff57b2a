"""``samedge web`` under load over loopback: 16 sessions uploading and clicking at once.

The server is the real ``samedge web`` command in a child process on a free 127.0.0.1 port,
with the seed-0 SAM 2.1 Hiera-T test export and ``--cache-size 2``; the clients speak
plain HTTP as the browser does (see ``benchmarks/web_load.py``, which this test runs).
Every loop is bounded by a deadline or a count and the server is stopped at the end.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from ..conftest import IMAGES, shared_path

ROOT = Path(__file__).resolve().parents[2]
TINY = "sam2.1_hiera_tiny"


def web_load() -> ModuleType:
    """``benchmarks/web_load.py`` (a script, not a package module)."""
    name = "samedge_benchmarks_web_load"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "web_load.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_engine_keeps_the_cache_it_is_given(export_test_model: Callable[[str], Path]) -> None:
    """``--cache-size`` reached the engine only when the cache was not empty: ``cache or
    EmbeddingCache()`` took the empty (len 0, falsy) cache for no cache and used 8 entries.
    Found by the load test (RSS grew for 8 images with ``--cache-size 2``)."""
    from samedge.web.cache import EmbeddingCache
    from samedge.web.engine import Engine
    from samedge.web.models import ModelCatalog, PredictorPool, discover_models

    cache, pool = EmbeddingCache(2), PredictorPool()
    catalog = ModelCatalog(discover_models([str(export_test_model(TINY))]), ["cpu"])
    engine = Engine(catalog, cache=cache, pool=pool)
    assert engine.cache is cache and engine.cache.capacity == 2 and engine.pool is pool


def test_percentile_and_bound() -> None:
    module = web_load()
    assert module.percentile([], 50) != module.percentile([], 50)  # NaN
    values = [float(v) for v in range(1, 101)]
    assert module.percentile(values, 50) == 50 and module.percentile(values, 95) == 95
    assert module.memory_bound(100, 2, 10, 5, 1) == 100 + 20 + 5 + 1


@pytest.mark.slow
def test_sixteen_clients_upload_and_click(
    export_test_model: Callable[[str], Path], tmp_path: Path
) -> None:
    pytest.importorskip("gradio", reason="needs the [web] extra: pip install 'samedge[web]'")
    shared_path("data", "images", "dog.jpg")
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the server's peak RSS from /proc (Linux)")
    module = web_load()
    folder = export_test_model(TINY)
    report = module.run(
        str(folder),
        sorted(IMAGES.glob("*.jpg")),
        tmp_path,
        cache_size=2,
        clients=16,
        duration=8.0,
        max_clicks=240,
        # 7 images through a cache of 2: a cache that kept them all would hold 5 more
        # embeddings (200 MiB) than the bound allows for.
        churn=7,
        threads=2,
    )
    print(report.summary())
    assert report.failures == [], report.summary()
    assert report.uploads == 7 + 16 and report.clicks >= 16
    # The 16 sessions share the last two churned images, which the cache still holds:
    # every encode was a churn upload, none a re-encode on a click.
    assert report.encodes == 7, report.summary()
    assert math.isfinite(report.click_ms_p50) and report.click_ms_p95 >= report.click_ms_p50
    assert report.peak_rss_mib <= report.bound_mib, report.summary()

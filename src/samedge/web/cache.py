"""The server-wide cache of image embeddings: encode once per image and model, decode per click.

Keys are ``(image sha256, model key)``; the model key names the exported folder and the
execution provider, so switching model (or provider) never reuses another model's
embedding, and switching back finds the earlier one. Entries are evicted least recently
used first. A SAM 2 embedding with its high-resolution features takes about 16 MB, a SAM
one 4 MB.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..runtime.types import ImageEmbedding

CacheKey = tuple[str, str]

DEFAULT_CAPACITY = 8


@dataclass(frozen=True)
class Lookup:
    """An embedding and how it was obtained.

    Attributes:
        embedding: the cached or freshly computed embedding.
        encode_seconds: wall time of the encoder run, or ``None`` for a cache hit.
    """

    embedding: ImageEmbedding
    encode_seconds: float | None

    @property
    def cached(self) -> bool:
        return self.encode_seconds is None


class EmbeddingCache:
    """A thread-safe LRU of :class:`ImageEmbedding` keyed by image hash and model key.

    Two sessions asking for the same missing key at once wait for one encoder run.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"cache capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[CacheKey, ImageEmbedding] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[CacheKey, threading.Lock] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def keys(self) -> list[CacheKey]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._items)

    def _hit(self, key: CacheKey) -> ImageEmbedding | None:
        embedding = self._items.get(key)
        if embedding is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return embedding

    def get_or_encode(
        self, image_sha: str, model_key: str, encode: Callable[[], ImageEmbedding]
    ) -> Lookup:
        """The embedding for ``(image_sha, model_key)``, calling ``encode()`` only on a miss."""
        key = (image_sha, model_key)
        with self._lock:
            found = self._hit(key)
            if found is not None:
                return Lookup(found, None)
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                found = self._hit(key)
                if found is not None:
                    return Lookup(found, None)
            try:
                start = time.perf_counter()
                embedding = encode()
                seconds = time.perf_counter() - start
                with self._lock:
                    self.misses += 1
                    self._items[key] = embedding
                    self._items.move_to_end(key)
                    while len(self._items) > self.capacity:
                        self._items.popitem(last=False)
            finally:
                with self._lock:
                    self._key_locks.pop(key, None)
        return Lookup(embedding, seconds)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

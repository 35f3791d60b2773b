"""Each frame's features computed once in a sliding window: a cache of per-frame [l1, l2, l3].

A frame lies in ``num_frame`` windows; without a cache its feature extraction (conv_first or
the pre-deblur module, the extraction blocks, the L2/L3 pyramid) runs once per window. The
cache keeps the features by key (frame index, plus the tile region when tiling) until
``release_before`` drops the frames no later window needs, so it holds a bounded number of
frames however long the clip is.
"""

import collections


class FeatureCache:
    """Per-frame features by key ``(frame index, region)``; ``region`` any hashable (or None).

    ``get(key, compute)`` returns the stored value or stores and returns ``compute()``;
    ``computed`` and ``reused`` count misses and hits (what the cache saved); ``peak`` is the
    most frames held at once.
    """

    def __init__(self):
        self._store = collections.OrderedDict()
        self.computed = 0
        self.reused = 0
        self.peak = 0

    def __len__(self):
        return len(self._store)

    def frames(self):
        """The frame indices held, sorted."""
        return sorted({index for index, _ in self._store})

    def get(self, key, compute):
        if key in self._store:
            self.reused += 1
            return self._store[key]
        value = compute()
        self._store[key] = value
        self.computed += 1
        self.peak = max(self.peak, len(self.frames()))
        return value

    def release_before(self, index):
        """Drop every frame whose index is below ``index``."""
        for key in [k for k in self._store if k[0] < index]:
            del self._store[key]

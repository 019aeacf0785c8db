"""Feature shards: training on corpora larger than memory.

The in-memory path (:mod:`speechattn.data.featcache`) holds every training utterance's
features in RAM. For larger corpora, ``speechattn data shard`` writes the features once into
`webdataset <https://github.com/webdataset/webdataset>`_ tar shards, and training streams them
back through a ``torch.utils.data.DataLoader`` with worker processes, so memory is bounded by the
shuffle buffer and the prefetched batches, whatever the corpus size. Writing and reading shards
needs ``webdataset`` (``pip install 'speechattn[train]'``).

A shard folder holds:

- ``shard-000000.tar``, ``shard-000001.tar``, ...: plain tar files in webdataset's layout. Sample
  ``KEY`` is the two members ``KEY.feats.npy`` (the utterance's (frames, dim) features as a NumPy
  array, float16 by default) and ``KEY.json`` (``{"id", "speaker", "frames", "speed"}``).
  Speed-perturbed copies are separate samples with id ``ID-spF`` and speaker ``SPEAKER-spF``, as
  in :func:`~speechattn.data.featcache.perturbed_features`. The writer stores the samples in a
  seeded random order, so every shard mixes speakers.
- ``index.json``: the feature configuration, the speed factors, each shard's file name, sample
  and frame counts, the totals (samples, hours), the sorted speaker list, the skipped files, the
  package version and the frontend's versions (``featcache.frontend_versions()``). It is
  written last and atomically: a folder whose writing was interrupted has no index and is
  refused by :func:`load_index`.

Features are stored as float16 by default: that halves disk space and read traffic, and log-mel
energies (about -16 to +30) keep a rounding error of at most 2^-11 of their magnitude (< 0.016),
far below what noise mixing and SpecAugment change in training. ``dtype="float32"`` keeps them
exact.

Writing: :mod:`speechattn.data.shard_writer`. Reading (:class:`ShardDataset`): each epoch, the shards are put in an order drawn from
(seed, epoch), the same on every rank; their samples, concatenated in that order, form the
epoch's sequence. Rank ``r`` of ``W`` takes the ``r``-th contiguous range of
``steps_per_epoch * batch_size`` samples (``steps_per_epoch = total_samples // (batch_size * W)``;
the rest of the sequence, a different part every epoch, is left out), and splits it into whole
batches between its DataLoader workers. So no sample is read twice in an epoch, every rank
yields the same number of full batches, and a rank reads only its own shards (plus at most a
part of the shard at each end of its range). Each worker draws one random crop per sample and
shuffles the crops in a bounded buffer; its randomness comes from (seed, epoch, rank, worker).
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from speechattn.audio import FeatureConfig
from speechattn.data.augment import random_crop
from speechattn.data.featcache import frontend_versions
from speechattn.utils.extras import require

__all__ = [
    "INDEX_NAME",
    "ShardError",
    "ShardInfo",
    "ShardIndex",
    "load_index",
    "epoch_plan",
    "ShardDataset",
    "shard_loader",
    "summarize",
]

log = logging.getLogger(__name__)

INDEX_NAME = "index.json"
SHARD_PATTERN = "shard-%06d.tar"
FORMAT = "speechattn-feature-shards"
FORMAT_VERSION = 1
STORAGE_DTYPES = {"float16": np.float16, "float32": np.float32}


class ShardError(ValueError):
    """A shard folder that cannot be used (one-line message)."""


# ----------------------------------------------------------------------------- index


@dataclass(frozen=True)
class ShardInfo:
    """One shard file of an index: its name (relative to the folder) and what it holds."""

    file: str
    samples: int
    frames: int


@dataclass
class ShardIndex:
    """The contents of a shard folder's ``index.json`` (see :func:`load_index`)."""

    folder: Path
    features: dict[str, Any]
    speed_perturb: list[float]
    dtype: str
    shards: list[ShardInfo]
    total_samples: int
    total_frames: int
    total_hours: float
    speakers: list[str]
    skipped: dict[str, str]
    package_version: str
    source: str | None = None
    #: what the features' computation depended on (featcache.frontend_versions()); {} if unknown
    frontend: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        return [str(self.folder / s.file) for s in self.shards]

    def steps_per_epoch(self, batch_size: int, world: int = 1) -> int:
        """Full batches each rank yields per epoch: ``total_samples // (batch_size * world)``."""
        return self.total_samples // (batch_size * world)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "package_version": self.package_version,
            "frontend": self.frontend,
            "source": self.source,
            "features": self.features,
            "feature_dtype": self.dtype,
            "speed_perturb": self.speed_perturb,
            "total_samples": self.total_samples,
            "total_frames": self.total_frames,
            "total_hours": self.total_hours,
            "shards": [dataclasses.asdict(s) for s in self.shards],
            "speakers": self.speakers,
            "skipped": self.skipped,
        }


def feature_dict(config: FeatureConfig | dict[str, Any]) -> dict[str, Any]:
    return dataclasses.asdict(config) if isinstance(config, FeatureConfig) else dict(config)


def load_index(path: str | Path, features: FeatureConfig | dict[str, Any] | None = None) -> ShardIndex:
    """Read a shard folder's ``index.json`` (``path``: the folder or the index file itself).

    Args:
        features: the recipe's feature configuration; a shard folder written with other
            settings is refused, naming each differing setting with both values.

    Raises:
        ShardError: no index (not a shard folder, or its writing did not finish), an unreadable
            or foreign index, a listed shard file missing, or other feature settings.
    """
    path = Path(path)
    index_path = path if path.name == INDEX_NAME and not path.is_dir() else path / INDEX_NAME
    folder = index_path.parent
    if not index_path.is_file():
        why = "folder not found" if not folder.is_dir() else f"no {INDEX_NAME}"
        raise ShardError(f"{folder}: {why}: not a shard folder, or its writing did not finish "
                         "(write it with `speechattn data shard`)")
    try:
        raw = json.loads(index_path.read_text())
    except (OSError, ValueError) as err:
        raise ShardError(f"{index_path}: unreadable shard index ({' '.join(str(err).split())})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ShardError(f"{index_path}: not a speechattn shard index (no \"format\": \"{FORMAT}\")")
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise ShardError(f"{index_path}: shard format version {raw['format_version']} is newer than this "
                         f"speechattn reads ({FORMAT_VERSION}); upgrade speechattn")
    try:
        index = ShardIndex(
            folder=folder,
            features=dict(raw["features"]),
            speed_perturb=[float(f) for f in raw["speed_perturb"]],
            dtype=str(raw["feature_dtype"]),
            shards=[ShardInfo(str(s["file"]), int(s["samples"]), int(s["frames"])) for s in raw["shards"]],
            total_samples=int(raw["total_samples"]),
            total_frames=int(raw["total_frames"]),
            total_hours=float(raw["total_hours"]),
            speakers=[str(s) for s in raw["speakers"]],
            skipped=dict(raw.get("skipped", {})),
            package_version=str(raw.get("package_version", "?")),
            source=raw.get("source"),
            frontend=dict(raw.get("frontend") or {}),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ShardError(f"{index_path}: malformed shard index ({type(err).__name__}: {err})") from None
    if index.dtype not in STORAGE_DTYPES:
        raise ShardError(f"{index_path}: unknown feature_dtype {index.dtype!r} (expected one of {sorted(STORAGE_DTYPES)})")
    if sum(s.samples for s in index.shards) != index.total_samples:
        raise ShardError(f"{index_path}: the shards' sample counts do not add up to total_samples")
    missing = [s.file for s in index.shards if not (folder / s.file).is_file()]
    if missing:
        raise ShardError(f"{folder}: {len(missing)} shard file(s) listed in {INDEX_NAME} are missing "
                         f"(first: {missing[0]})")
    if index.frontend:
        now = frontend_versions()
        changed = [f"{k} {index.frontend[k]} -> {now.get(k)}" for k in sorted(index.frontend)
                   if index.frontend[k] != now.get(k)]
        if changed:
            log.warning("%s: the shards' features were computed by another frontend (%s); write them again "
                        "for features identical to extraction now", folder, ", ".join(changed))
    if features is not None:
        wanted = feature_dict(features)
        diffs = [f"{k}={index.features.get(k, '(unset)')!r} in the shards, {wanted.get(k, '(unset)')!r} in the recipe"
                 for k in sorted(set(wanted) | set(index.features)) if index.features.get(k) != wanted.get(k)]
        if diffs:
            raise ShardError(f"{folder}: the shards were written with other feature settings than the recipe's: "
                             + "; ".join(diffs) + " (write them again with this recipe)")
    return index


# ----------------------------------------------------------------------------- writer


# ----------------------------------------------------------------------------- reader


def _seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (``numpy.random.SeedSequence``)."""
    return int(np.random.SeedSequence([int(p) % 2**32 for p in parts]).generate_state(2, np.uint64)[0] >> 1)


_ORDER, _CROP, _SHUFFLE = 1, 2, 3  # streams of randomness


def epoch_plan(
    counts: Sequence[int], batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
    worker: int = 0, workers: int = 1,
) -> list[tuple[int, int, int]]:
    """What one DataLoader worker of one rank reads in an epoch: ``(shard, start, stop)`` pieces.

    The shards (``counts[i]`` samples each) are ordered by a permutation drawn from (seed,
    epoch), the same on every rank; rank ``r`` takes samples ``[r * n, (r + 1) * n)`` of the
    concatenated sequence, ``n = steps * batch_size`` with ``steps = sum(counts) // (batch_size *
    world)``; its steps are dealt to the workers as contiguous runs of whole batches
    (``steps // workers``, the first ``steps % workers`` workers one more).
    """
    steps = sum(counts) // (batch_size * world)
    order = list(range(len(counts)))
    random.Random(_seed(seed, epoch, _ORDER)).shuffle(order)
    first_batch = rank * steps + worker * (steps // workers) + min(worker, steps % workers)
    mine = steps // workers + (1 if worker < steps % workers else 0)
    lo, hi = first_batch * batch_size, (first_batch + mine) * batch_size
    pieces = []
    pos = 0
    for shard in order:
        start, stop = max(lo, pos), min(hi, pos + counts[shard])
        if start < stop:
            pieces.append((shard, start - pos, stop - pos))
        pos += counts[shard]
        if pos >= hi:
            break
    return pieces


def _read_pieces(urls: Sequence[str], pieces: Iterable[tuple[int, int, int]]) -> Iterator[dict[str, Any]]:
    """The raw webdataset samples of each (shard, start, stop) piece, in order."""
    wds = require("webdataset", "reading feature shards")

    for shard, start, stop in pieces:
        samples = wds.tarfile_to_samples()(iter([{"url": urls[shard]}]))
        try:
            yield from itertools.islice(samples, start, stop)
        finally:
            close = getattr(samples, "close", None)  # closes the tar file even when the piece ends early
            if close is not None:
                close()


class ShardDataset(IterableDataset):
    """Random training crops streamed from a shard folder: yields ``(crop, label)`` pairs.

    ``crop`` is a (crop_frames, dim) float32 random crop of a sample (an utterance shorter than
    a crop is repeated end to end, as :func:`~speechattn.data.augment.random_crop` does), and
    ``label`` the index of its speaker in ``index.speakers``. Use it through a DataLoader with
    ``batch_size`` (:func:`shard_loader`); call :meth:`set_epoch` before each epoch. See the
    module docstring for how an epoch is split between ranks and workers.

    Args:
        index: the shard folder's index (:func:`load_index`).
        crop_frames: frames per crop.
        batch_size: per-rank batch size of the DataLoader (each worker yields whole batches).
        seed: seeds the shard order, crops and shuffling, with the epoch, rank and worker.
        shuffle_buffer: crops held for shuffling, per worker (memory: buffer x crop x dim x 2-4 bytes).
        rank, world: this process's rank and the world size (default:
            :func:`speechattn.utils.distributed.rank_world` when the epoch is set).
    """

    def __init__(
        self,
        index: ShardIndex,
        crop_frames: int,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        rank: int | None = None,
        world: int | None = None,
    ) -> None:
        super().__init__()
        require("webdataset", "training on feature shards (data.train_shards)")  # here: not in a worker
        if crop_frames < 1 or batch_size < 1 or shuffle_buffer < 1:
            raise ValueError("crop_frames, batch_size and shuffle_buffer must be >= 1")
        self.urls = index.urls
        self.counts = [s.samples for s in index.shards]
        self.speaker_ids = {s: i for i, s in enumerate(index.speakers)}
        self.total_samples = index.total_samples
        self.crop_frames = crop_frames
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self._fixed = (rank, world)
        self.epoch = 1
        self.rank, self.world = self._rank_world()

    def _rank_world(self) -> tuple[int, int]:
        rank, world = self._fixed
        if rank is None or world is None:
            from speechattn.utils.distributed import rank_world

            rank, world = rank_world()
        return rank, world

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (and read the rank and world size, unless fixed): call in the main
        process before iterating; DataLoader workers get a copy of this state."""
        self.epoch = epoch
        self.rank, self.world = self._rank_world()

    def steps_per_epoch(self) -> int:
        """Full batches this rank yields per epoch (the same on every rank)."""
        return self.total_samples // (self.batch_size * self._rank_world()[1])

    def _decode(self, sample: dict[str, Any], gen: torch.Generator) -> tuple[Tensor, int]:
        meta = json.loads(sample["json"])
        feats = torch.from_numpy(np.load(io.BytesIO(sample["feats.npy"]), allow_pickle=False))
        # clone: the buffer must hold the crop only, not a view of the whole utterance
        return random_crop(feats, self.crop_frames, gen).clone(), self.speaker_ids[meta["speaker"]]

    def __iter__(self) -> Iterator[tuple[Tensor, int]]:
        wds = require("webdataset", "reading feature shards")
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        pieces = epoch_plan(self.counts, self.batch_size, self.seed, self.epoch, self.rank, self.world, worker,
                            workers)
        crop_gen = torch.Generator().manual_seed(_seed(self.seed, self.epoch, self.rank, worker, _CROP))
        shuffle_rng = random.Random(_seed(self.seed, self.epoch, self.rank, worker, _SHUFFLE))
        pipeline = wds.DataPipeline(
            lambda: _read_pieces(self.urls, pieces),
            wds.map(lambda s: self._decode(s, crop_gen)),
            wds.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, rng=shuffle_rng),
            wds.map(lambda pair: (pair[0].float(), pair[1])),
        )
        return iter(pipeline)


def shard_loader(dataset: ShardDataset, num_workers: int = 2, seed: int = 0) -> DataLoader:
    """A DataLoader of ``(crops (batch, crop_frames, dim), labels (batch,))`` batches.

    Workers are started anew for each epoch (``persistent_workers=False``), so they see the
    epoch set by :meth:`ShardDataset.set_epoch`. The DataLoader gets its own generator, so
    iterating it leaves the global torch RNG (used by the model) untouched.
    """
    return DataLoader(
        dataset,
        batch_size=dataset.batch_size,
        num_workers=num_workers,
        persistent_workers=False,
        prefetch_factor=2 if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
    )


def summarize(index: ShardIndex) -> str:
    """One line describing a shard folder."""
    size = sum((index.folder / s.file).stat().st_size for s in index.shards)
    skipped = f"; skipped {len(index.skipped)} unreadable" if index.skipped else ""
    return (f"{index.folder}: {index.total_samples} samples, {index.total_hours:.2f} h, "
            f"{len(index.speakers)} speakers in {len(index.shards)} shards ({size / 1e6:.1f} MB, "
            f"{index.dtype}){skipped}")

"""Frame labeling: the training task (``task: labeling``; recipe: :mod:`speechattn.recipes.labeling`; metrics of a trained run: :mod:`speechattn.evaluation.labeling`).

A frame labeler classifies every output frame of the encoder: one class or none per frame
(``model.mode: single``, softmax) or any subset of classes (``multi``, sigmoid; overlapping
classes such as several speakers). Training data is audio + time-stamped labels (RTTM, TextGrid
or per-frame label files, see :mod:`speechattn.data.labelled`) or, for voice activity,
recordings simulated from read speech and real noise (``data.simulate``, see
:mod:`speechattn.data.vad_sim`), which are written as audio + RTTM and then read the same way.

Training uses random crops of cached log-mel features, optional real-noise mixing and
SpecAugment, and global CMVN statistics estimated on the training features (stored in the
model, so inference can stream). Dev evaluation labels every dev recording whole, post-processes
the posteriors (:mod:`speechattn.decoding.segments`) and scores the segments against the reference on
a 10 ms grid (:mod:`speechattn.metrics.detection`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from speechattn.audio import CMVNStats, FeatureExtractor, GlobalCMVN
from speechattn.data.augment import mix_noise, spec_augment_on
from speechattn.data.featcache import extract_features, noise_features
from speechattn.data.labelled import LabelledAudio, LabelledSet, load_labelled
from speechattn.data.labels import frame_targets, segments_to_frames
from speechattn.data.manifest import Manifest, Utterance
from speechattn.decoding.segments import decode
from speechattn.metrics.detection import DetectionCounts
from speechattn.models.files import MODEL_FILE, load_model, load_weights_into, save_model
from speechattn.models.labeler import batch_posteriors
from speechattn.nn.masks import frame_mask
from speechattn.recipes.builders import build_labeler, output_grid
from speechattn.recipes.labeling import LabelRecipe
from speechattn.utils.distributed import rank_slice, rank_world
from speechattn.utils.paths import data_root as resolve_data_root

__all__ = ["LabelTask", "prepare_data", "simulated_split"]

log = logging.getLogger(__name__)


def prepare_data(recipe: LabelRecipe, root: Path, progress: bool | None = None) -> tuple[str, str]:
    """(train, dev) references; simulates them first (cached) when ``data.simulate`` is set."""
    data = recipe.data
    if data.simulate is None:
        assert data.train is not None and data.dev is not None
        return data.train, data.dev
    train = simulated_split(recipe, "train", root, progress=progress)
    dev = simulated_split(recipe, "dev", root, progress=progress)
    return str(train.absolute()), str(dev.absolute())


def simulated_split(recipe: LabelRecipe, split: str, root: Path, progress: bool | None = None) -> Path:
    """The folder of the recipe's simulated ``split`` ("train" or "dev"): written on first use,
    then reused from ``data.simulate.out_dir`` (default: the cache's ``vad_sim``)."""
    from speechattn.data.featcache import cache_dir
    from speechattn.data.vad_sim import simulate_split

    sim = recipe.data.simulate
    if sim is None:
        raise ValueError("the recipe has no data.simulate block")
    out = Path(sim.out_dir) if sim.out_dir else cache_dir() / "vad_sim"
    return simulate_split(sim, split, root, out, progress=progress)


def _load(recipe: LabelRecipe, reference: str, labels: str | None, root: Path, limit: int | None) -> LabelledSet:
    d = recipe.data
    data = load_labelled(reference, root, labels=labels, tier=d.tier, frame_shift=d.frame_shift, label_map=d.label_map)
    if limit is not None and limit < len(data.items):
        step = len(data.items) / limit
        data.items = [data.items[int(i * step)] for i in range(limit)]
    return data


def _features(items: Sequence[LabelledAudio], extractor: FeatureExtractor, desc: str, progress: bool | None
              ) -> tuple[list[LabelledAudio], list[Tensor], dict[str, str]]:
    manifest = Manifest([Utterance(id=item.id, path=item.path) for item in items])
    fs = extract_features(manifest, extractor, desc=desc, progress=progress)
    by_id = {item.id: item for item in items}
    return [by_id[u.id] for u in fs.manifest], fs.feats, dict(fs.failures)


class LabelTask:
    """Frame labeling for :class:`~speechattn.training.trainer.Trainer`.

    Args:
        recipe: the validated recipe.
        data_root: overrides ``recipe.data.root`` / ``SPEECHATTN_DATA``.
        progress: show progress bars (None: on a terminal only).
    """

    def __init__(self, recipe: LabelRecipe, data_root: str | Path | None = None, progress: bool | None = None) -> None:
        self.recipe = recipe
        d = recipe.data
        self.root = resolve_data_root(data_root if data_root is not None else d.root)
        self.train_ref, self.dev_ref = prepare_data(recipe, self.root, progress)
        train = _load(recipe, self.train_ref, d.train_labels, self.root, d.max_train_files)
        dev = _load(recipe, self.dev_ref, d.dev_labels, self.root, d.max_dev_files)
        self.classes = list(d.classes) if d.classes else train.labels
        if not self.classes:
            raise ValueError(f"{self.train_ref}: the training labels contain no class (set data.classes)")
        self.extractor = FeatureExtractor(recipe.features)
        self.train_items, self.train_feats, failed = _features(train.items, self.extractor, "train features", progress)
        self.dev_items, self.dev_feats, dev_failed = _features(dev.items, self.extractor, "dev features", progress)
        #: ``data.test`` (reported only: :meth:`evaluate_test`), whole; None without one.
        self.test_ref = d.test
        self.test_items: list[LabelledAudio] = []
        self.test_feats: list[Tensor] = []
        test_failed: dict[str, str] = {}
        if d.test is not None:
            test = _load(recipe, d.test, d.test_labels, self.root, None)
            self.test_items, self.test_feats, test_failed = _features(test.items, self.extractor, "test features",
                                                                      progress)
        refs = {"train": self.train_ref, "dev": self.dev_ref, "test": self.test_ref}
        for name, items, bad in (("train", self.train_items, failed), ("dev", self.dev_items, dev_failed),
                                 ("test", self.test_items if d.test is not None else None, test_failed)):
            if items is None:
                continue
            if bad:
                log.warning("%s: skipped %d unreadable files", name, len(bad))
            if not items:
                raise ValueError(f"no readable labelled {name} audio in {refs[name]}")
        self.model = build_labeler(recipe, len(self.classes))
        self.grid = output_grid(recipe)
        self.multi = recipe.model.mode == "multi"
        self.stride = self.model.encoder.subsampling.stride
        self.train_targets = [self._targets(item, f) for item, f in zip(self.train_items, self.train_feats)]
        for item, f in zip(self.dev_items + self.test_items, self.dev_feats + self.test_feats):
            self._targets(item, f)  # label errors in dev and test data surface now, not after training
        stats = CMVNStats(self.extractor.config.feature_dim)
        for f in self.train_feats:
            stats.update(f)
        self.model.cmvn.load_state_dict(GlobalCMVN.from_stats(stats).state_dict())
        self.cmvn_frames = stats.count
        frames_per_second = recipe.features.sample_rate / recipe.features.frame_shift
        crop = max(1, int(round(d.crop_seconds * frames_per_second)))
        self.crop_frames = max(self.stride, crop - crop % self.stride)
        self.noise = self._load_noise(d.noise, progress)
        self.modules = nn.ModuleDict({"labeler": self.model})
        self.metric = recipe.eval.metric
        self.metric_mode: Literal["min", "max"] = "min" if self.metric == "detection_error_rate" else "max"
        # Each process of a torchrun group draws its own augmentation (rank 0: the single-process draws).
        self.generator = torch.Generator().manual_seed(recipe.train.seed + 1_000_003 * rank_world()[0])
        #: where training_step and evaluate run (the trainer sets it).
        self.device = torch.device("cpu")

    # ----------------------------------------------------------------- data
    def _targets(self, item: LabelledAudio, feats: Tensor) -> Tensor:
        frames = int(self.model.output_lengths(torch.tensor([feats.shape[0]]))[0])
        return frame_targets(item.segments, self.classes, self.grid, frames, self.multi, source=item.source)

    def _load_noise(self, reference: str | None, progress: bool | None) -> Tensor | None:
        if reference is None or self.recipe.augment.noise_prob == 0:
            return None
        folder = Path(reference) if Path(reference).is_absolute() else self.root / reference
        return noise_features(folder, self.extractor, progress=progress)

    def _crops(self, epoch: int) -> list[tuple[int, int]]:
        """(file, start frame) crops: ``n // crop`` back-to-back crops of each file from a random
        offset (a multiple of the encoder stride, so targets stay aligned), shuffled."""
        gen = torch.Generator().manual_seed(self.recipe.train.seed * 100003 + epoch)
        crops = []
        for i, f in enumerate(self.train_feats):
            n = f.shape[0]
            if n <= self.crop_frames:
                crops.append((i, 0))
                continue
            count = n // self.crop_frames
            slack = n - count * self.crop_frames
            offset = int(torch.randint(0, slack + 1, (1,), generator=gen)) // self.stride * self.stride
            starts = [offset + j * self.crop_frames for j in range(count)]
            crops += [(i, s) for s in starts]
        order = torch.randperm(len(crops), generator=gen).tolist()
        return [crops[j] for j in order]

    def steps_per_epoch(self) -> int:
        """Global batches of ``batch_size x world`` crops per epoch (the same on every rank)."""
        total = sum(max(1, f.shape[0] // self.crop_frames) for f in self.train_feats)
        return max(1, total // (self.recipe.train.batch_size * rank_world()[1]))

    def train_batches(self, epoch: int) -> Iterator[list[tuple[int, int]]]:
        """This process's part of each global batch of ``batch_size x world`` shuffled crops (all of
        it in a single process), so N processes see together what one process with N x the batch
        sees."""
        crops = self._crops(epoch)
        rank, world = rank_world()
        size = self.recipe.train.batch_size * world
        for i in range(self.steps_per_epoch()):
            batch = crops[i * size : (i + 1) * size]
            yield rank_slice(batch if batch else crops[:size], rank, world)

    def make_batch(self, crops: list[tuple[int, int]]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(features (B, T, F), lengths (B,), targets (B, T'[, K]), output lengths (B,))."""
        feats, targets, lengths = [], [], []
        for i, start in crops:
            f = self.train_feats[i][start : start + self.crop_frames]
            t0 = start // self.stride
            n_out = int(self.model.output_lengths(torch.tensor([f.shape[0]]))[0])
            feats.append(f)
            targets.append(self.train_targets[i][t0 : t0 + n_out])
            lengths.append(f.shape[0])
        x = nn.utils.rnn.pad_sequence(feats, batch_first=True)
        pad_value = 0.0 if self.multi else -100
        y = nn.utils.rnn.pad_sequence(targets, batch_first=True, padding_value=pad_value)
        lengths_t = torch.tensor(lengths)
        aug = self.recipe.augment
        if self.noise is not None and aug.noise_prob > 0 and self.noise.shape[0] > x.shape[1]:
            batch, frames, _ = x.shape
            gen = self.generator
            starts = torch.randint(0, self.noise.shape[0] - frames + 1, (batch,), generator=gen)
            noise = torch.stack([self.noise[s : s + frames] for s in starts.tolist()])
            snr = aug.snr_min + (aug.snr_max - aug.snr_min) * torch.rand(batch, generator=gen)
            apply = torch.rand(batch, generator=gen) < aug.noise_prob
            mixed = mix_noise(x, noise, snr, apply)
            valid = frame_mask(lengths_t, frames)[..., None]
            x = torch.where(valid, mixed, x)
        return x, lengths_t, y, torch.tensor([t.shape[0] for t in targets])

    # ----------------------------------------------------------------- training
    def loss(self, logits: Tensor, targets: Tensor, out_lengths: Tensor) -> tuple[Tensor, float]:
        """Masked loss and frame accuracy; logits (B, T', C), targets (B, T'[, K])."""
        frames = min(logits.shape[1], targets.shape[1])
        logits, targets = logits[:, :frames].float(), targets[:, :frames]
        valid = frame_mask(out_lengths, frames)
        if self.multi:
            per = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(-1)
            loss = (per * valid).sum() / valid.sum().clamp(min=1)
            correct = ((logits > 0) == (targets > 0.5)).all(-1)
        else:
            loss = nn.functional.cross_entropy(logits[valid], targets[valid])
            correct = logits.argmax(-1) == targets
        acc = float((correct & valid).sum()) / max(1, int(valid.sum()))
        return loss, acc

    def training_step(self, batch: list[tuple[int, int]], progress: float) -> tuple[Tensor, dict[str, float]]:
        x, lengths, y, out_lengths = (t.to(self.device, non_blocking=True) for t in self.make_batch(batch))
        x = spec_augment_on(self.model.cmvn(x, lengths), self.recipe.augment, self.generator)
        hidden, enc_lengths = self.model.encoder(x, lengths)
        logits = self.model.head(hidden)
        loss, acc = self.loss(logits, y, torch.minimum(out_lengths, enc_lengths))
        return loss, {"acc": acc}

    # ----------------------------------------------------------------- evaluation
    def posteriors(self, feats: Sequence[Tensor]) -> list[np.ndarray]:
        """(T'_i, K) posteriors of whole recordings, batched by similar length and computed on the
        task's device (call in eval mode)."""
        return batch_posteriors(self.model, feats, self.recipe.eval.batch_frames, device=self.device)

    def evaluate(self) -> dict[str, float]:
        return self._metrics(self.dev_items, self.dev_feats)

    def evaluate_test(self, run_dir: Path) -> dict[str, float] | None:
        """Metrics of the best model saved in ``run_dir`` on ``data.test`` (None without one), as
        :meth:`evaluate` computes them on dev. Loads the best weights into :attr:`model`."""
        if self.test_ref is None:
            return None
        weights, _, _ = load_model(run_dir)
        load_weights_into(self.model, weights, run_dir / MODEL_FILE)
        return self._metrics(self.test_items, self.test_feats)

    def _metrics(self, items: Sequence[LabelledAudio], feats: Sequence[Tensor]) -> dict[str, float]:
        """Detection metrics of the current weights on labelled recordings (dev or test)."""
        shift = self.recipe.features.frame_shift / self.recipe.features.sample_rate
        length = self.recipe.features.frame_length / self.recipe.features.sample_rate
        counts = DetectionCounts(self.classes)
        for item, f, post in zip(items, feats, self.posteriors(feats)):
            duration = (f.shape[0] - 1) * shift + length
            hyp = decode(post, self.classes, self.grid, self.recipe.postprocess, duration)
            step = self.recipe.eval.step
            counts.update(segments_to_frames(item.segments, self.classes, step, duration),
                          segments_to_frames(hyp, self.classes, step, duration))
        return counts.metrics()

    def save_best(self, run_dir: Path, metrics: dict[str, float]) -> None:
        # weights and metadata in one file, replaced at once (model.json: a readable copy)
        save_model(
            self.model,
            {
                "task": "labeling",
                "classes": self.classes,
                "mode": self.recipe.model.mode,
                "grid": self.grid.to_dict(),
                "cmvn_frames": self.cmvn_frames,
                "train_data": self.train_ref,
                "dev_data": self.dev_ref,
                "train_files": len(self.train_items),
                "dev_files": len(self.dev_items),
                "dev_metrics": metrics,
            },
            run_dir,
        )



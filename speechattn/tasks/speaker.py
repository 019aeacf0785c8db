"""Speaker recognition: the training task (recipe: :mod:`speechattn.recipes.speaker`; metrics of a trained run: :mod:`speechattn.evaluation.speaker`).

Training uses random crops of cached log-mel features, real-noise mixing, SpecAugment, and an
AAM-softmax (or softmax) head over the training speakers. Dev evaluation embeds every dev
utterance whole and reports verification EER / minDCF (cosine scoring over all dev pairs, or a
trial list), optionally AS-Norm with a cohort of training-speaker embeddings, and
identification accuracy (closed-set against training speakers when the dev speakers were seen
in training, otherwise enrolment with half of each dev speaker's utterances).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import torch
from torch import Tensor, nn

from speechattn.audio import FeatureExtractor
from speechattn.data.augment import mix_noise, random_crops, spec_augment
from speechattn.data.batching import shuffled_batches, shuffled_steps
from speechattn.data.featcache import (
    FeatureSet,
    extract_features,
    noise_features,
    perturbed_features,
)
from speechattn.data.manifest import Manifest
from speechattn.data.shards import ShardDataset, load_index, shard_loader, summarize
from speechattn.data.splits import resolve_manifest
from speechattn.metrics import plot_det
from speechattn.metrics.embeddings import evaluate_embeddings, speaker_means, trial_path
from speechattn.models.files import MODEL_FILE, load_model, load_weights_into, save_model
from speechattn.models.speaker import embed_feature_list, normalize_features
from speechattn.nn.losses import build_loss
from speechattn.recipes.builders import build_embedder
from speechattn.recipes.speaker import SpeakerRecipe
from speechattn.utils.distributed import rank_world
from speechattn.utils.extras import MissingExtraError
from speechattn.utils.paths import data_root as resolve_data_root

__all__ = ["SpeakerTask"]

log = logging.getLogger(__name__)


class SpeakerTask:
    """Speaker recognition for :class:`~speechattn.training.trainer.Trainer`.

    Args:
        recipe: the validated recipe.
        data_root: overrides ``recipe.data.root`` / ``SPEECHATTN_DATA``.
        embedder: any module ``(features (B,T,F), lengths (B,)) -> (B, E)`` with ``embed_dim``;
            ``None`` builds speechattn's :class:`SpeakerEmbedder` from ``recipe.model``
            (baselines plug in here so they train in exactly the same harness).
        progress: show progress bars (None: on a terminal only).
    """

    def __init__(
        self,
        recipe: SpeakerRecipe,
        data_root: str | Path | None = None,
        embedder: nn.Module | None = None,
        progress: bool | None = None,
    ) -> None:
        self.recipe = recipe
        self.root = resolve_data_root(data_root if data_root is not None else recipe.data.root)
        self.extractor = FeatureExtractor(recipe.features)
        cfg = recipe.data
        frames_per_second = 1000.0 / recipe.features.frame_shift_ms
        self.crop_frames = max(1, int(round(cfg.crop_seconds * frames_per_second)))
        #: the training data: ``train_set`` (features in memory) or, with ``data.train_shards``,
        #: ``train_shards`` (a stream of crops read from webdataset shards; ``train_set`` is None).
        self.train_set: FeatureSet | None = None
        self.train_shards: ShardDataset | None = None
        train_manifest = None if cfg.train_shards else resolve_manifest(cfg.train, self.root)
        dev_manifest = resolve_manifest(cfg.dev, self.root)
        if cfg.max_train_utterances and train_manifest is not None:
            train_manifest = _spread_subset(train_manifest, cfg.max_train_utterances)
        if cfg.max_dev_utterances:
            dev_manifest = _spread_subset(dev_manifest, cfg.max_dev_utterances)
        # data.test: reported only (evaluate_test); whole, and resolved now so a bad reference fails at start
        test_manifest = None if cfg.test is None else resolve_manifest(cfg.test, self.root)
        for name, m in (("train", train_manifest), ("dev", dev_manifest), ("test", test_manifest)):
            missing = [u.id for u in m or () if u.speaker is None]
            if missing:
                raise ValueError(f"{name} data has no speaker labels (first: {missing[0]}); speaker recipes need utt2spk")
        if train_manifest is None:
            self.train_shards = self._open_shards(str(cfg.train_shards), dev_manifest, test_manifest)
        else:
            self.train_set = perturbed_features(train_manifest, self.extractor, cfg.speed_perturb, progress)
        self.dev_set = extract_features(dev_manifest, self.extractor, desc="dev features", progress=progress)
        #: the test set's features (``data.test``), or None.
        self.test_set = None if test_manifest is None else extract_features(
            test_manifest, self.extractor, desc="test features", progress=progress)
        for name, fs in (("train", self.train_set), ("dev", self.dev_set), ("test", self.test_set)):
            if fs is None:
                continue
            if fs.failures:
                log.warning("%s: skipped %d unreadable files", name, len(fs.failures))
            if not fs.feats:
                raise ValueError(f"no readable {name} audio")
        self.noise = self._load_noise(cfg.noise, progress)

        if self.train_set is None:
            self.speakers = list(self._shard_index.speakers)
            self.labels = None
            self.original_index = None
        else:
            self.speakers = sorted({str(u.speaker) for u in self.train_set.manifest})
            index = {s: i for i, s in enumerate(self.speakers)}
            self.labels = torch.tensor([index[str(u.speaker)] for u in self.train_set.manifest])
            # Speed-perturbed copies are extra classes; closed-set identification and the AS-Norm
            # cohort use the original speakers only.
            original = [i for i, u in enumerate(self.train_set.manifest) if u.extra.get("speed", 1.0) == 1.0]
            self.original_index = torch.tensor(original)
        feature_dim = self.extractor.config.feature_dim
        self.embedder = embedder if embedder is not None else build_embedder(recipe.model, feature_dim)
        loss_kw: dict[str, Any] = {}
        if recipe.loss.name == "aam":
            loss_kw = {"margin": recipe.loss.margin, "scale": recipe.loss.scale}
        self.head = build_loss(recipe.loss.name, self.embedder.embed_dim, len(self.speakers), **loss_kw)
        self.modules = nn.ModuleDict({"embedder": self.embedder, "head": self.head})
        self.metric = "eer" if recipe.eval.metric == "eer" else "accuracy"
        self.metric_mode: Literal["min", "max"] = "min" if self.metric == "eer" else "max"
        # Each process of a torchrun group draws its own augmentation.
        self.generator = torch.Generator().manual_seed(recipe.train.seed + 1_000_003 * rank_world()[0])
        #: where training_step and evaluate run (the trainer sets it).
        self.device = torch.device("cpu")
        self.last_eval: dict[str, Any] = {}
        self._det_plot = True  # False once matplotlib was found missing (warned once)

    # ----------------------------------------------------------------- data
    def _open_shards(self, reference: str, dev_manifest: Manifest, test_manifest: Manifest | None) -> ShardDataset:
        """The training crop stream of shard folder ``reference`` (``data.train_shards``)."""
        recipe, cfg = self.recipe, self.recipe.data
        folder = Path(reference).expanduser()
        if not folder.is_absolute():
            folder = self.root / folder
        index = load_index(folder, recipe.features)
        self._shard_index = index
        if cfg.speed_perturb != [1.0] and sorted(cfg.speed_perturb) != sorted(index.speed_perturb):
            log.warning("data.speed_perturb %s is not used with data.train_shards: the shards hold speeds %s",
                        cfg.speed_perturb, index.speed_perturb)
        if recipe.eval.as_norm:
            raise ValueError("eval.as_norm needs embeddings of the training utterances, which sharded training "
                             "(data.train_shards) does not keep; set eval.as_norm: false")
        for name, manifest in (("dev", dev_manifest), ("test", test_manifest)):
            if manifest is not None and {str(u.speaker) for u in manifest} <= set(index.speakers):
                raise ValueError(f"the {name} speakers were all seen in training: closed-set identification needs "
                                 "embeddings of the training utterances, which sharded training (data.train_shards) "
                                 f"does not keep; use {name} speakers unseen in training, or train in memory")
        dataset = ShardDataset(index, self.crop_frames, recipe.train.batch_size, seed=recipe.train.seed)
        if dataset.steps_per_epoch() < 1:
            raise ValueError(f"{folder}: {index.total_samples} samples make no full batch of "
                             f"{recipe.train.batch_size} x {dataset.world} processes")
        log.info("training on shards: %s", summarize(index))
        return dataset

    def _load_noise(self, reference: str | None, progress: bool | None) -> Tensor | None:
        if reference is None or self.recipe.augment.noise_prob == 0:
            return None
        folder = Path(reference) if Path(reference).is_absolute() else self.root / reference
        return noise_features(folder, self.extractor, min_frames=self.crop_frames, progress=progress)

    def steps_per_epoch(self) -> int:
        if self.train_shards is not None:
            steps = self.train_shards.steps_per_epoch()
            if steps < 1:
                raise ValueError(f"the training shards' {self.train_shards.total_samples} samples make no full "
                                 f"batch of {self.recipe.train.batch_size} x {rank_world()[1]} processes")
            return steps
        return shuffled_steps(len(self.train_set.feats), self.recipe.train.batch_size, rank_world()[1])

    def train_batches(self, epoch: int) -> Iterator[list[int]]:
        """This process's part of each shuffled global batch (see :func:`shuffled_batches`); with
        ``data.train_shards``, (crops, labels) batches streamed from the shards instead."""
        if self.train_shards is not None:
            yield from self._shard_batches(epoch)
            return
        yield from shuffled_batches(len(self.train_set.feats), self.recipe.train.batch_size, self.recipe.train.seed,
                                    epoch, *rank_world())

    def _shard_batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """This rank's ``steps_per_epoch()`` (crops, labels) batches of the shards for ``epoch``,
        read by ``data.num_workers`` DataLoader workers (started for the epoch, stopped after it)."""
        assert self.train_shards is not None
        self.train_shards.set_epoch(epoch)
        steps = self.steps_per_epoch()
        loader = shard_loader(self.train_shards, self.recipe.data.num_workers, self.recipe.train.seed * 100003 + epoch)
        batches = iter(loader)
        try:
            for _ in range(steps):
                crops, labels = next(batches)  # the DataLoader collates each pair into a list
                yield crops, labels
        finally:
            del batches  # stops the workers, also when the trainer ends the epoch early

    def make_batch(self, batch: list[int] | tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Augmented, normalised (batch, crop_frames, dim) features and their labels.

        ``batch``: indices into the in-memory ``train_set`` (random crops are drawn here), or a
        (crops, labels) pair streamed from the shards; both go through :meth:`augment`.
        """
        if isinstance(batch, tuple):
            crops, labels = batch
        else:
            assert self.train_set is not None and self.labels is not None
            crops = random_crops(self.train_set.feats, batch, self.crop_frames, self.generator)
            labels = self.labels[batch]
        return self.augment(crops), labels

    def augment(self, x: Tensor) -> Tensor:
        """Noise mixing, normalisation and SpecAugment of (batch, crop_frames, dim) crops (the one
        augmentation of both the in-memory and the sharded data), drawn from ``self.generator``."""
        aug = self.recipe.augment
        gen = self.generator
        if self.noise is not None and aug.noise_prob > 0:
            batch, frames, _ = x.shape
            starts = torch.randint(0, self.noise.shape[0] - frames + 1, (batch,), generator=gen)
            noise = torch.stack([self.noise[s : s + frames] for s in starts.tolist()])
            snr = aug.snr_min + (aug.snr_max - aug.snr_min) * torch.rand(batch, generator=gen)
            apply = torch.rand(batch, generator=gen) < aug.noise_prob
            x = mix_noise(x, noise, snr, apply)
        x = normalize_features(x, None, self.recipe.normalize)
        return spec_augment(x, aug, gen)

    # ----------------------------------------------------------------- training
    def training_step(self, batch: list[int], progress: float) -> tuple[Tensor, dict[str, float]]:
        x, labels = self.make_batch(batch)
        x, labels = x.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        if hasattr(self.head, "margin"):
            warm = self.recipe.loss.margin_warmup
            self.head.margin = self.recipe.loss.margin * (1.0 if warm == 0 else min(1.0, progress / warm))
        emb = self.embedder(x, torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device))
        loss, logits = self.head(emb.float(), labels)
        acc = (logits.argmax(-1) == labels).float().mean().item()
        return loss, {"acc": acc}

    # ----------------------------------------------------------------- evaluation
    def embed(self, feats: Sequence[Tensor]) -> Tensor:
        """(N, E) embeddings on the CPU, computed on the task's device."""
        return embed_feature_list(self.embedder, feats, self.recipe.normalize, self.recipe.eval.batch_frames,
                                  device=self.device)

    def evaluate(self) -> dict[str, float]:
        trials = trial_path(self.recipe.data.trials, self.root) if self.recipe.data.trials else None
        metrics, scores, labels = self._metrics(self.dev_set, trials)
        self.last_eval = {"scores": scores, "labels": labels, "threshold": metrics["threshold"]}
        return metrics

    def evaluate_test(self, run_dir: Path) -> dict[str, float] | None:
        """Metrics of the best model saved in ``run_dir`` on ``data.test`` (None without one): the
        dev metrics but ``threshold`` (the model keeps dev's), on all pairs of the test set.
        Loads the best weights into :attr:`embedder`."""
        if self.test_set is None:
            return None
        weights, _, _ = load_model(run_dir)
        load_weights_into(self.embedder, weights, run_dir / MODEL_FILE)
        metrics, _, _ = self._metrics(self.test_set, None)
        metrics.pop("threshold", None)
        return metrics

    def _metrics(self, data: FeatureSet, trials: Path | None) -> tuple[dict[str, float], Any, Any]:
        """(metrics, trial scores, trial labels) of the current weights on ``data`` (dev or test):
        closed-set identification against the training speakers when they include every speaker
        of ``data``, else open-set enrolment; AS-Norm with a training cohort if the recipe asks."""
        cfg = self.recipe.eval
        emb = self.embed(data.feats)
        speakers = [str(u.speaker) for u in data.manifest]
        closed_set = set(speakers) <= set(self.speakers)
        train_means = None
        if closed_set or cfg.as_norm:
            original = self.original_index.tolist()
            train_emb = self.embed([self.train_set.feats[i] for i in original])
            means = speaker_means(train_emb, self.labels[self.original_index], len(self.speakers))
            kept = self.labels[self.original_index].unique()  # original speakers (not perturbed copies)
            train_means = means[kept]
            known_names = [self.speakers[i] for i in kept.tolist()]
        return evaluate_embeddings(
            emb, speakers, [u.id for u in data.manifest], trials=trials,
            max_nontarget=cfg.max_nontarget, cohort=train_means if cfg.as_norm else None,
            cohort_top_k=cfg.cohort_top_k,
            known=(train_means, known_names) if closed_set and train_means is not None else None,
        )

    def save_best(self, run_dir: Path, metrics: dict[str, float]) -> None:
        # weights and metadata in one file, replaced at once (model.json: a readable copy)
        save_model(
            self.embedder,
            {
                "task": "speaker",
                "embed_dim": int(self.embedder.embed_dim),
                "threshold": metrics["threshold"],
                "train_speakers": self.speakers,
                "dev_metrics": metrics,
            },
            run_dir,
        )
        if self.last_eval and self._det_plot:
            try:
                plot_det(self.last_eval["scores"], self.last_eval["labels"], run_dir / "det.png",
                         title=f"dev DET (EER {metrics['eer']:.2f}%)")
            except MissingExtraError as exc:  # matplotlib comes with speechattn[train]; the model is saved
                log.warning("%s; no det.png", exc)
                self._det_plot = False


def _spread_subset(manifest: Manifest, count: int) -> Manifest:
    """``count`` utterances spread evenly over the manifest (keeps every speaker represented)."""
    if count >= len(manifest):
        return manifest
    step = len(manifest) / count
    return Manifest([manifest[int(i * step)] for i in range(count)])



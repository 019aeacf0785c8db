"""Speaker recognition: recipe, training task and evaluation.

Training uses random crops of cached log-mel features, real-noise mixing, SpecAugment, and an
AAM-softmax (or softmax) head over the training speakers. Dev evaluation embeds every dev
utterance whole and reports verification EER / minDCF (cosine scoring over all dev pairs, or a
trial list), optionally AS-Norm with a cohort of training-speaker embeddings, and
identification accuracy (closed-set against training speakers when the dev speakers were seen
in training, otherwise enrolment with half of each dev speaker's utterances).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from speechattn.audio import FeatureConfig, FeatureExtractor
from speechattn.data.augment import AugmentConfig, mix_noise, random_crops, spec_augment
from speechattn.data.batching import length_batches, shuffled_batches, shuffled_steps
from speechattn.data.featcache import FeatureSet, extract_features, perturbed_features
from speechattn.data.manifest import Manifest, Utterance
from speechattn.data.shards import ShardDataset, load_index, shard_loader, summarize
from speechattn.data.splits import resolve_manifest
from speechattn.metrics import (
    all_pairs_trials,
    as_norm,
    compute_eer,
    compute_min_dcf,
    cosine_score_matrix,
    plot_det,
    read_trials,
)
from speechattn.models.speaker import SpeakerEmbedder
from speechattn.nn.encoder import EncoderConfig, TruncatedEncoder
from speechattn.nn.losses import build_loss
from speechattn.nn.masks import frame_mask
from speechattn.utils.paths import data_root as resolve_data_root
from speechattn.training.checkpoint import save_model
from speechattn.utils.distributed import rank_world
from speechattn.training.trainer import TrainConfig

__all__ = [
    "SpeakerDataConfig",
    "SpeakerModelConfig",
    "SpeakerLossConfig",
    "SpeakerEvalConfig",
    "SpeakerRecipe",
    "SpeakerTask",
    "build_embedder",
    "normalize_features",
    "embed_feature_list",
    "verification_metrics",
    "evaluate_embeddings",
    "evaluate_run",
]

log = logging.getLogger(__name__)


@dataclass
class SpeakerDataConfig:
    """Where the data is. References are paths under the data root (Kaldi dir, CSV, JSONL)
    or ``CORPUS:SPLIT`` (see :mod:`speechattn.data.splits`).

    ``train_shards``: a shard folder (holding ``index.json``; written by ``speechattn data
    shard``), under the data root or absolute. When set, training streams random crops from its
    webdataset shards through a DataLoader with ``num_workers`` worker processes instead of
    holding the training features in memory (for corpora larger than RAM); ``train``,
    ``speed_perturb`` and ``max_train_utterances`` are then not used (the shards already hold
    the perturbed copies; the speakers come from ``index.json``), and the shards' feature
    settings must equal the recipe's ``features``. Dev evaluation is unchanged, except that the
    shards keep no training embeddings: closed-set identification (every dev speaker seen in
    training) and ``eval.as_norm`` are refused with an error at start.

    ``num_workers``: DataLoader worker processes reading the shards (0: read in the training
    process); only used with ``train_shards``.
    """

    train: str = "speechocean762/train"
    dev: str = "speechocean762/dev"
    root: str | None = None
    noise: str | None = "noise"
    trials: str | None = None
    crop_seconds: float = 2.0
    #: speed-perturbation factors of the training audio; each factor other than 1 adds a
    #: perturbed copy of every training speaker as a new class (more speakers, less overfitting).
    speed_perturb: list[float] = field(default_factory=lambda: [1.0])
    max_train_utterances: int | None = None
    max_dev_utterances: int | None = None
    train_shards: str | None = None
    num_workers: int = 2

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.crop_seconds <= 0:
            raise ValueError(f"crop_seconds must be > 0, got {self.crop_seconds}")
        if not self.speed_perturb or any(f <= 0 for f in self.speed_perturb):
            raise ValueError(f"speed_perturb must list factors > 0, got {self.speed_perturb}")


@dataclass
class SpeakerModelConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    embed_dim: int = 192
    pooling: Literal["attentive", "mean_std", "self_attention"] = "attentive"
    aggregate: Literal["concat", "last"] = "concat"


@dataclass
class SpeakerLossConfig:
    name: Literal["aam", "softmax"] = "aam"
    margin: float = 0.2
    scale: float = 30.0
    margin_warmup: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin_warmup <= 1.0:
            raise ValueError(f"margin_warmup must be a fraction of the run in [0, 1], got {self.margin_warmup}")


@dataclass
class SpeakerEvalConfig:
    metric: Literal["eer", "accuracy"] = "eer"
    as_norm: bool = False
    cohort_top_k: int = 100
    max_nontarget: int | None = None
    batch_frames: int = 40000


@dataclass
class SpeakerRecipe:
    """A speaker-recognition recipe (``task: speaker``)."""

    task: Literal["speaker"] = "speaker"
    data: SpeakerDataConfig = field(default_factory=SpeakerDataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    normalize: Literal["mean", "mean_var", "none"] = "mean"
    model: SpeakerModelConfig = field(default_factory=SpeakerModelConfig)
    loss: SpeakerLossConfig = field(default_factory=SpeakerLossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: SpeakerEvalConfig = field(default_factory=SpeakerEvalConfig)


def build_embedder(model: SpeakerModelConfig, feature_dim: int) -> SpeakerEmbedder:
    """The recipe's embedder; the encoder's input_dim is set from the features."""
    enc_cfg = EncoderConfig(**{**model.encoder.__dict__, "input_dim": feature_dim})
    return SpeakerEmbedder(TruncatedEncoder.from_config(enc_cfg), model.embed_dim, model.pooling, model.aggregate)


def normalize_features(x: Tensor, lengths: Tensor | None, mode: str) -> Tensor:
    """Per-utterance mean (and variance) normalisation of (batch, frames, dim) over valid frames."""
    if mode == "none":
        return x
    if lengths is None:
        out = x - x.mean(dim=1, keepdim=True)
        if mode == "mean_var":
            out = out / out.pow(2).mean(dim=1, keepdim=True).sqrt().clamp(min=1e-5)
        return out
    valid = frame_mask(lengths, x.shape[1])[..., None].to(x.dtype)
    count = lengths.clamp(min=1)[:, None, None].to(x.dtype)
    mean = (x * valid).sum(1, keepdim=True) / count
    out = (x - mean) * valid
    if mode == "mean_var":
        std = ((out**2).sum(1, keepdim=True) / count).sqrt().clamp(min=1e-5)
        out = out / std
    return out


def embed_feature_list(
    embedder: nn.Module, feats: Sequence[Tensor], normalize: str, batch_frames: int = 40000,
    device: torch.device | str = "cpu",
) -> Tensor:
    """(N, E) embeddings (on the CPU) of whole utterances, batched by similar length and computed on
    ``device``, where ``embedder`` is (call in eval mode)."""
    out: list[Tensor | None] = [None] * len(feats)
    for idx, x, lengths in length_batches(feats, batch_frames):
        x, lengths = x.to(device), lengths.to(device)
        emb = embedder(normalize_features(x, lengths, normalize), lengths).float().cpu()
        for j, i in enumerate(idx):
            out[i] = emb[j]
    return torch.stack(out)  # type: ignore[arg-type]


def verification_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    eer, threshold = compute_eer(scores, labels)
    min_dcf, _ = compute_min_dcf(scores, labels, p_target=0.01)
    return {"eer": 100.0 * eer, "min_dcf": float(min_dcf), "threshold": float(threshold)}


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
        for name, m in (("train", train_manifest), ("dev", dev_manifest)):
            missing = [u.id for u in m or () if u.speaker is None]
            if missing:
                raise ValueError(f"{name} data has no speaker labels (first: {missing[0]}); speaker recipes need utt2spk")
        if train_manifest is None:
            self.train_shards = self._open_shards(str(cfg.train_shards), dev_manifest)
        else:
            self.train_set = perturbed_features(train_manifest, self.extractor, cfg.speed_perturb, progress)
        self.dev_set = extract_features(dev_manifest, self.extractor, desc="dev features", progress=progress)
        for name, fs in (("train", self.train_set), ("dev", self.dev_set)):
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

    # ----------------------------------------------------------------- data
    def _open_shards(self, reference: str, dev_manifest: Manifest) -> ShardDataset:
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
        dev_speakers = {str(u.speaker) for u in dev_manifest}
        if dev_speakers <= set(index.speakers):
            raise ValueError("the dev speakers were all seen in training: closed-set identification needs "
                             "embeddings of the training utterances, which sharded training (data.train_shards) "
                             "does not keep; use dev speakers unseen in training, or train in memory")
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
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".flac", ".wav", ".ogg"))
        if not files:
            raise ValueError(f"{folder}: no noise audio found (set data.noise: null to train without noise)")
        manifest = Manifest([Utterance(id=p.stem, path=p) for p in files])
        noise = extract_features(manifest, self.extractor, desc="noise features", progress=progress)
        long_enough = [f for f in noise.feats if f.shape[0] >= self.crop_frames]
        if not long_enough:
            raise ValueError(f"{folder}: no noise file is longer than a training crop")
        return torch.cat(long_enough)

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
        cfg = self.recipe.eval
        dev_emb = self.embed(self.dev_set.feats)
        dev_speakers = [str(u.speaker) for u in self.dev_set.manifest]
        closed_set = set(dev_speakers) <= set(self.speakers)
        train_means = None
        if closed_set or cfg.as_norm:
            original = self.original_index.tolist()
            train_emb = self.embed([self.train_set.feats[i] for i in original])
            means = _speaker_means(train_emb, self.labels[self.original_index], len(self.speakers))
            kept = self.labels[self.original_index].unique()  # original speakers (not perturbed copies)
            train_means = means[kept]
            known_names = [self.speakers[i] for i in kept.tolist()]
        trials = None
        if self.recipe.data.trials:
            trials = _trial_path(self.recipe.data.trials, self.root)
        metrics, scores, labels = evaluate_embeddings(
            dev_emb, dev_speakers, [u.id for u in self.dev_set.manifest], trials=trials,
            max_nontarget=cfg.max_nontarget, cohort=train_means if cfg.as_norm else None,
            cohort_top_k=cfg.cohort_top_k,
            known=(train_means, known_names) if closed_set and train_means is not None else None,
        )
        self.last_eval = {"scores": scores, "labels": labels, "threshold": metrics["threshold"]}
        return metrics

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
        if self.last_eval:
            plot_det(self.last_eval["scores"], self.last_eval["labels"], run_dir / "det.png",
                     title=f"dev DET (EER {metrics['eer']:.2f}%)")


def _trial_path(reference: str | Path, root: Path) -> Path:
    path = Path(reference)
    return path if path.is_absolute() or path.exists() else root / path


def _trial_indices(path: Path, ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    index = {u: i for i, u in enumerate(ids)}
    rows = [(index.get(t.enroll), index.get(t.test), t.target) for t in read_trials(path)]
    kept = [r for r in rows if r[0] is not None and r[1] is not None]
    if len(kept) < len(rows):
        log.warning("%s: %d trials name utterances not in the data; skipped", path, len(rows) - len(kept))
    if not kept:
        raise ValueError(f"{path}: no trial names two utterances of the evaluated data")
    arr = np.array(kept, dtype=np.int64)
    return arr[:, 0], arr[:, 1], arr[:, 2].astype(bool)


def evaluate_embeddings(
    emb: Tensor,
    speakers: list[str],
    ids: list[str],
    *,
    trials: Path | None = None,
    max_nontarget: int | None = None,
    cohort: Tensor | None = None,
    cohort_top_k: int = 100,
    known: tuple[Tensor, list[str]] | None = None,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Verification and identification metrics of utterance embeddings.

    Args:
        emb: (N, E) embeddings; ``speakers`` and ``ids`` label them.
        trials: trial list (ids); default all pairs (non-targets capped by ``max_nontarget``).
        cohort: (C, E) AS-Norm cohort (adds ``eer_asnorm``, ``min_dcf_asnorm``).
        known: (centroids (S, E), names) of enrolled speakers for closed-set identification;
            default: open-set, even-numbered utterances of each speaker enrol, odd ones test.

    Returns:
        (metrics, scores, labels): ``eer`` (%), ``min_dcf`` (p_target 0.01), ``threshold`` (EER
        point), ``accuracy`` (%), and the raw trial scores and target labels.
    """
    if trials is not None:
        enroll, test, labels = _trial_indices(trials, ids)
    else:
        enroll, test, labels = all_pairs_trials(speakers, max_nontarget=max_nontarget, seed=0)
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        raise ValueError("verification needs both target and non-target trials (at least two speakers with two utterances)")
    emb = torch.nn.functional.normalize(emb.float(), dim=-1)
    e, t = emb[torch.as_tensor(enroll)], emb[torch.as_tensor(test)]
    scores = (e * t).sum(-1).numpy()
    metrics = verification_metrics(scores, labels)
    if cohort is not None:
        normed = as_norm(scores, e, t, cohort, top_k=min(cohort_top_k, cohort.shape[0]))
        m = verification_metrics(np.asarray(normed), labels)
        metrics.update({"eer_asnorm": m["eer"], "min_dcf_asnorm": m["min_dcf"]})
    if known is not None:
        centroids, names = known
        index = {s: i for i, s in enumerate(names)}
        truth = torch.tensor([index[s] for s in speakers])
        probe = emb
    else:
        centroids, truth, probe = _enrolment_split(emb, speakers)
    pred = cosine_score_matrix(probe, centroids).argmax(-1)
    metrics["accuracy"] = 100.0 * float((pred == truth).float().mean())
    return metrics, scores, labels


def evaluate_run(
    run_dir: str | Path,
    data: str,
    *,
    trials: str | Path | None = None,
    cohort: str | None = None,
    det_path: str | Path | None = None,
    data_root: str | None = None,
    device: str | torch.device = "auto",
    on_skip: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Metrics of a trained run on any labelled data (``speechattn evaluate``), computed on ``device``.

    ``on_skip(file, reason)`` is called for each audio file that could not be used (instead of a
    warning); the metrics leave it out.
    """
    from speechattn.inference import SpeakerRecognizer

    model = SpeakerRecognizer.from_run(run_dir, device=device)
    root = resolve_data_root(data_root if data_root is not None else model.recipe.data.root)
    manifest = resolve_manifest(data, root)
    fs = extract_features(manifest, model.extractor, desc="features")
    paths = {u.id: str(u.path) for u in manifest}
    for utt_id, reason in fs.failures.items():
        if on_skip is None:
            log.warning("skipped %s: %s", utt_id, reason)
        else:
            on_skip(paths.get(utt_id, utt_id), reason)
    speakers = [str(u.speaker) for u in fs.manifest]
    if any(u.speaker is None for u in fs.manifest):
        raise ValueError(f"{data}: evaluation needs speaker labels for every utterance")
    emb = model.embed_features(fs.feats)
    cohort_emb = None
    if cohort is not None:
        cm = resolve_manifest(cohort, root)
        cfs = extract_features(cm, model.extractor, desc="cohort features")
        names = sorted({str(u.speaker) for u in cfs.manifest})
        idx = {s: i for i, s in enumerate(names)}
        cohort_emb = _speaker_means(model.embed_features(cfs.feats), torch.tensor([idx[str(u.speaker)] for u in cfs.manifest]), len(names))
    trial_path = None if trials is None else _trial_path(trials, root)
    metrics, scores, labels = evaluate_embeddings(emb, speakers, [u.id for u in fs.manifest], trials=trial_path,
                                                  cohort=cohort_emb)
    if det_path is not None:
        plot_det(scores, labels, det_path, title=f"{data} DET (EER {metrics['eer']:.2f}%)")
    return {"data": data, "utterances": len(fs.manifest), "speakers": len(set(speakers)), "trials": int(len(labels)),
            "target_trials": int(labels.sum()), "skipped_files": len(fs.failures), **metrics}


def _spread_subset(manifest: Manifest, count: int) -> Manifest:
    """``count`` utterances spread evenly over the manifest (keeps every speaker represented)."""
    if count >= len(manifest):
        return manifest
    step = len(manifest) / count
    return Manifest([manifest[int(i * step)] for i in range(count)])


def _speaker_means(emb: Tensor, labels: Tensor, count: int) -> Tensor:
    emb = torch.nn.functional.normalize(emb, dim=-1)
    sums = torch.zeros(count, emb.shape[1]).index_add_(0, labels, emb)
    return torch.nn.functional.normalize(sums, dim=-1)


def _enrolment_split(emb: Tensor, speakers: list[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Open-set identification: even-numbered utterances of each speaker enrol, odd ones test."""
    names = sorted({s for s in speakers})  # type: ignore[type-var]
    index = {s: i for i, s in enumerate(names)}
    seen: dict[str, int] = {}
    enrol, test = [], []
    for i, s in enumerate(speakers):
        (enrol if seen.get(s, 0) % 2 == 0 else test).append(i)
        seen[s] = seen.get(s, 0) + 1
    labels = torch.tensor([index[s] for s in speakers])
    centroids = _speaker_means(emb[enrol], labels[enrol], len(names))
    return centroids, labels[test], emb[test]


"""CTC transcription: the training task (``task: ctc``; recipe: :mod:`speechattn.recipes.ctc`; metrics of a trained run: :mod:`speechattn.evaluation.ctc`).

Targets are phones (words looked up in a pronunciation lexicon, stress optionally stripped) or
characters (with ``|`` between words), see :mod:`speechattn.text`. Utterances whose transcript
cannot be tokenized (a word missing from the lexicon, an unknown character) are skipped and
counted. Training uses cached log-mel features (optionally speed-perturbed copies), global CMVN
estimated on the training features (stored in the model, so inference can stream), SpecAugment,
and length-bucketed batches of whole utterances. Dev evaluation decodes every dev utterance
(greedy, or prefix beam search with ``decode.beam`` > 1) and reports the token error rate (PER
for phones, CER for characters) and, for characters, the word error rate.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator, Literal, Sequence

import torch
from torch import Tensor, nn

from speechattn.audio import CMVNStats, FeatureExtractor, GlobalCMVN
from speechattn.data.augment import spec_augment_on
from speechattn.data.batching import bucketed_batches, pad_batch, shortest_first_batches
from speechattn.data.featcache import FeatureSet, extract_features, perturbed_features
from speechattn.data.manifest import Manifest
from speechattn.data.splits import resolve_manifest
from speechattn.decoding.ctc import CTCHypothesis
from speechattn.metrics.errors import score_transcripts
from speechattn.models.ctc import decode_features
from speechattn.models.files import MODEL_FILE, load_model, load_weights_into, save_model
from speechattn.recipes.builders import build_ctc_model, output_grid
from speechattn.recipes.ctc import CTCDataConfig, CTCRecipe
from speechattn.text import (
    CharTokenizer,
    Lexicon,
    PhoneTokenizer,
    Tokenizer,
    encode_corpus,
)
from speechattn.utils.distributed import rank_slice, rank_world
from speechattn.utils.paths import data_root as resolve_data_root

__all__ = ["CTCTask", "build_tokenizer", "encoding_tokenizer", "manifest_texts"]

log = logging.getLogger(__name__)


def _data_path(reference: str, root: Path) -> Path:
    path = Path(reference).expanduser()
    return path if path.is_absolute() else root / path


def build_tokenizer(data: CTCDataConfig, root: Path, train_texts: Sequence[str]) -> Tokenizer:
    """Phones through ``data.lexicon``, or the characters of the training transcripts."""
    if data.tokens == "chars":
        return CharTokenizer.build(train_texts)
    assert data.lexicon is not None
    path = _data_path(data.lexicon, root)
    if not path.exists():
        raise FileNotFoundError(f"{path}: lexicon not found (data.lexicon; data root is {root})")
    return PhoneTokenizer.from_lexicon(Lexicon.read(path, strip_stress=data.strip_stress))


def encoding_tokenizer(tokenizer: Tokenizer, data: CTCDataConfig, root: Path) -> Tokenizer:
    """A trained run's tokenizer, able to encode reference transcripts: a phone tokenizer loaded
    from ``model.json`` stores only its phones, so the recipe's lexicon is attached (same ids)."""
    if not isinstance(tokenizer, PhoneTokenizer):
        return tokenizer
    assert data.lexicon is not None
    return tokenizer.with_lexicon(Lexicon.read(_data_path(data.lexicon, root), strip_stress=data.strip_stress))


def manifest_texts(manifest: Manifest, name: str) -> dict[str, str]:
    texts = {u.id: u.text for u in manifest if u.text is not None}
    if not texts:
        raise ValueError(f"{name} data has no transcripts (a Kaldi 'text' file or a 'text' column)")
    return texts  # type: ignore[return-value]


class CTCTask:
    """CTC transcription for :class:`~speechattn.training.trainer.Trainer`.

    Args:
        recipe: the validated recipe.
        data_root: overrides ``recipe.data.root`` / ``SPEECHATTN_DATA``.
        encoder: replaces the recipe's encoder (a baseline in the same harness), see
            :func:`build_ctc_model`.
        progress: show progress bars (None: on a terminal only).
    """

    def __init__(self, recipe: CTCRecipe, data_root: str | Path | None = None, encoder: nn.Module | None = None,
                 progress: bool | None = None) -> None:
        self.recipe = recipe
        cfg = recipe.data
        self.root = resolve_data_root(data_root if data_root is not None else cfg.root)
        self.extractor = FeatureExtractor(recipe.features)
        train_manifest = _subset(resolve_manifest(cfg.train, self.root), cfg.max_train_utterances)
        dev_manifest = _subset(resolve_manifest(cfg.dev, self.root), cfg.max_dev_utterances)
        # data.test: reported only (evaluate_test); whole, and resolved now so a bad reference fails at start
        test_manifest = None if cfg.test is None else resolve_manifest(cfg.test, self.root)
        train_texts, dev_texts = manifest_texts(train_manifest, "train"), manifest_texts(dev_manifest, "dev")
        self.tokenizer = build_tokenizer(cfg, self.root, list(train_texts.values()))
        train_ids = encode_corpus(self.tokenizer, train_texts)
        dev_ids = encode_corpus(self.tokenizer, dev_texts)
        self.skipped = {"train": len(train_manifest) - len(train_ids.ids), "dev": len(dev_manifest) - len(dev_ids.ids)}
        for name, enc in (("train", train_ids), ("dev", dev_ids)):
            if enc.skipped:
                log.warning("%s: %s", name, enc.summary())
        train_manifest = train_manifest.filter(lambda u: u.id in train_ids.ids)
        dev_manifest = dev_manifest.filter(lambda u: u.id in dev_ids.ids)

        train_set = perturbed_features(train_manifest, self.extractor, cfg.speed_perturb, progress)
        dev_set = extract_features(dev_manifest, self.extractor, desc="dev features", progress=progress)
        for name, fs in (("train", train_set), ("dev", dev_set)):
            if fs.failures:
                log.warning("%s: skipped %d unreadable files", name, len(fs.failures))
            if not fs.feats:
                raise ValueError(f"no readable transcribed {name} audio")
        self.model = build_ctc_model(recipe, len(self.tokenizer), encoder)
        max_frames = int(cfg.max_seconds * 1000.0 / recipe.features.frame_shift_ms)
        self.train_feats, self.train_targets = self._usable(train_set, train_ids.ids, max_frames, "train")
        self.dev_ids = [u.id for u in dev_set.manifest]
        self.dev_feats = dev_set.feats
        self.dev_targets = [dev_ids.ids[u.id] for u in dev_set.manifest]
        #: ``data.test``'s features and token ids (empty without a test set).
        self.test_feats: list[Tensor] = []
        self.test_targets: list[list[int]] = []
        if test_manifest is not None:
            test_ids = encode_corpus(self.tokenizer, manifest_texts(test_manifest, "test"))
            if test_ids.skipped:
                log.warning("test: %s", test_ids.summary())
            test_manifest = test_manifest.filter(lambda u: u.id in test_ids.ids)
            test_set = extract_features(test_manifest, self.extractor, desc="test features", progress=progress)
            if test_set.failures:
                log.warning("test: skipped %d unreadable files", len(test_set.failures))
            if not test_set.feats:
                raise ValueError("no readable transcribed test audio")
            self.test_feats = test_set.feats
            self.test_targets = [test_ids.ids[u.id] for u in test_set.manifest]
        stats = CMVNStats(self.extractor.config.feature_dim)
        for f in self.train_feats:
            stats.update(f)
        self.model.cmvn.load_state_dict(GlobalCMVN.from_stats(stats).state_dict())
        self.modules = nn.ModuleDict({"model": self.model})
        self.metric = "cer" if self.tokenizer.kind == "chars" else "per"
        self.metric_mode: Literal["min", "max"] = "min"
        # Each process of a torchrun group draws its own augmentation (rank 0: the single-process draws).
        self.generator = torch.Generator().manual_seed(recipe.train.seed + 1_000_003 * rank_world()[0])
        #: where training_step and evaluate run (the trainer sets it).
        self.device = torch.device("cpu")

    # ----------------------------------------------------------------- data
    def _usable(self, fs: FeatureSet, ids: dict[str, list[int]], max_frames: int, name: str
                ) -> tuple[list[Tensor], list[Tensor]]:
        """Features and targets of the utterances CTC can align: not longer than ``max_frames``,
        and with at least as many output frames as the targets need (repeats need a blank)."""
        feats, targets, too_long, too_short = [], [], 0, 0
        for utt, f in zip(fs.manifest, fs.feats):
            speed = utt.extra.get("speed", 1.0)
            target = ids[utt.id[: -len(f"-sp{speed:g}")] if speed != 1.0 else utt.id]
            need = len(target) + sum(a == b for a, b in zip(target, target[1:]))
            if f.shape[0] > max_frames:
                too_long += 1
                continue
            if int(self.model.output_lengths(torch.tensor([f.shape[0]]))[0]) < need:
                too_short += 1
                continue
            feats.append(f)
            targets.append(torch.tensor(target, dtype=torch.long))
        if too_long or too_short:
            log.warning("%s: left out %d utterances longer than data.max_seconds and %d with too few frames "
                        "for their transcript", name, too_long, too_short)
        if not feats:
            raise ValueError(f"no usable {name} utterance (all too long or too short for their transcripts)")
        return feats, targets

    def steps_per_epoch(self) -> int:
        """Global batches of ``batch_size x world`` utterances per epoch (the same on every rank)."""
        return max(1, len(self.train_feats) // (self.recipe.train.batch_size * rank_world()[1]))

    def train_batches(self, epoch: int) -> Iterator[list[int]]:
        """Global batches of ``batch_size x world`` utterances of similar length in random order
        (:func:`bucketed_batches`); from the shortest to the longest in the first
        ``data.sortagrad_epochs`` epochs (:func:`shortest_first_batches`). This process gets its
        ``batch_size`` of each (all of it in a single process), so N processes see together what one
        process with N x the batch sees."""
        gen = torch.Generator().manual_seed(self.recipe.train.seed * 100003 + epoch)
        lengths = [f.shape[0] for f in self.train_feats]
        rank, world = rank_world()
        size = self.recipe.train.batch_size * world
        if epoch <= self.recipe.data.sortagrad_epochs:
            batches = shortest_first_batches(lengths, size, gen)
        else:
            batches = bucketed_batches(lengths, size, gen)
        for batch in batches[: self.steps_per_epoch()]:
            yield rank_slice(batch, rank, world)

    # ----------------------------------------------------------------- training
    def training_step(self, batch: list[int], progress: float) -> tuple[Tensor, dict[str, float]]:
        return self.batch_loss(batch), {}

    def batch_loss(self, batch: list[int], augment: bool = True) -> Tensor:
        """Mean CTC loss (per target token) of training utterances ``batch``, with SpecAugment
        unless ``augment`` is False."""
        feats = [self.train_feats[i] for i in batch]
        device = self.device
        lengths = torch.tensor([f.shape[0] for f in feats]).to(device, non_blocking=True)
        x = pad_batch(feats, self.recipe.data.pad_multiple).to(device, non_blocking=True)
        x = self.model.cmvn(x, lengths)
        if augment:
            x = spec_augment_on(x, self.recipe.augment, self.generator)
        hidden, out_lengths = self.model.encoder(x, lengths)
        log_probs = self.model.head(hidden).float().log_softmax(-1)
        targets = [self.train_targets[i] for i in batch]
        target_lengths = torch.tensor([len(t) for t in targets]).to(device, non_blocking=True)
        loss = nn.functional.ctc_loss(
            log_probs.transpose(0, 1), torch.cat(targets).to(device, non_blocking=True), out_lengths, target_lengths,
            blank=0, reduction="mean", zero_infinity=True)
        return loss

    # ----------------------------------------------------------------- evaluation
    def decode(self, feats: Sequence[Tensor], beam: int | None = None) -> list[CTCHypothesis]:
        """Best hypothesis of each whole utterance, batched by similar length; the model runs on the
        task's device (call in eval mode)."""
        beam = self.recipe.decode.beam if beam is None else beam
        return decode_features(self.model, feats, beam, self.recipe.decode.batch_frames, device=self.device)

    def evaluate(self) -> dict[str, float]:
        hyps = self.decode(self.dev_feats)
        return score_transcripts(self.tokenizer, self.dev_targets, [h.tokens for h in hyps])

    def evaluate_test(self, run_dir: Path) -> dict[str, float] | None:
        """Error rates of the best model saved in ``run_dir`` on ``data.test`` (None without one),
        as :meth:`evaluate` computes them on dev. Loads the best weights into :attr:`model`."""
        if not self.test_feats:
            return None
        weights, _, _ = load_model(run_dir)
        load_weights_into(self.model, weights, run_dir / MODEL_FILE)
        hyps = self.decode(self.test_feats)
        return score_transcripts(self.tokenizer, self.test_targets, [h.tokens for h in hyps])

    def save_best(self, run_dir: Path, metrics: dict[str, float]) -> None:
        grid = output_grid(self.recipe)
        # weights and metadata in one file, replaced at once (model.json: a readable copy)
        save_model(
            self.model,
            {
                "task": "ctc",
                "tokenizer": self.tokenizer.to_dict(),
                "grid": grid.to_dict(),
                "train_utterances": len(self.train_feats),
                "dev_utterances": len(self.dev_feats),
                "skipped_utterances": self.skipped,
                "dev_metrics": metrics,
            },
            run_dir,
        )


def _subset(manifest: Manifest, count: int | None) -> Manifest:
    """``count`` utterances spread evenly over the manifest (all when None)."""
    if count is None or count >= len(manifest):
        return manifest
    step = len(manifest) / count
    keep = {manifest[int(i * step)].id for i in range(count)}
    return manifest.filter(lambda u: u.id in keep)



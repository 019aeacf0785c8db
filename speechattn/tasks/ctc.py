"""CTC transcription: recipe, training task and evaluation (``task: ctc``).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import torch
from torch import Tensor, nn

from speechattn.audio import CMVNStats, FeatureConfig, FeatureExtractor, GlobalCMVN
from speechattn.data.augment import AugmentConfig, spec_augment
from speechattn.data.batching import bucketed_batches, length_batches, pad_batch, shortest_first_batches
from speechattn.data.featcache import FeatureSet, extract_features, perturbed_features
from speechattn.data.labels import FrameGrid
from speechattn.data.manifest import Manifest
from speechattn.data.splits import resolve_manifest
from speechattn.decoding.ctc import CTCHypothesis, greedy_decode, prefix_beam_search
from speechattn.metrics.errors import ErrorRate
from speechattn.models.ctc import CTCModel
from speechattn.nn.encoder import EncoderConfig, TruncatedEncoder
from speechattn.utils.paths import data_root as resolve_data_root
from speechattn.text import CharTokenizer, Lexicon, PhoneTokenizer, Tokenizer, encode_corpus
from speechattn.training.checkpoint import save_model
from speechattn.utils.distributed import rank_slice, rank_world
from speechattn.training.trainer import TrainConfig

__all__ = [
    "CTCDataConfig",
    "CTCModelConfig",
    "CTCDecodeConfig",
    "CTCRecipe",
    "CTCTask",
    "build_ctc_model",
    "build_tokenizer",
    "encoding_tokenizer",
    "ctc_grid",
    "decode_log_probs",
    "decode_features",
    "score_transcripts",
    "spec_augment_on",
    "evaluate_run",
]

log = logging.getLogger(__name__)


@dataclass
class CTCDataConfig:
    """Transcribed data. ``train`` / ``dev`` are references under the data root (Kaldi dir with
    ``text``, CSV or JSONL manifest with a ``text`` column, see :mod:`speechattn.data.splits`)."""

    train: str = "speechocean762/train"
    dev: str = "speechocean762/dev"
    root: str | None = None
    tokens: Literal["phones", "chars"] = "phones"
    #: pronunciation lexicon (under the data root, or absolute) for ``tokens: phones``.
    lexicon: str | None = "speechocean762/lexicon.txt"
    strip_stress: bool = True
    #: speed-perturbation factors of the training audio (each factor adds a copy).
    speed_perturb: list[float] = field(default_factory=lambda: [1.0])
    #: training utterances longer than this are left out (memory of a padded batch).
    max_seconds: float = 30.0
    #: training batches are padded to a multiple of this many frames (fewer distinct shapes:
    #: faster CPU steps; padded frames are masked everywhere in our encoder).
    pad_multiple: int = 32
    #: the first this many epochs visit the training batches from the shortest utterances to
    #: the longest (SortaGrad) instead of in random order: CTC leaves its all-blank plateau
    #: more reliably (RESULTS.md, CTC section).
    sortagrad_epochs: int = 0
    max_train_utterances: int | None = None
    max_dev_utterances: int | None = None

    def __post_init__(self) -> None:
        if self.tokens == "phones" and not self.lexicon:
            raise ValueError("tokens: phones needs data.lexicon (a pronunciation lexicon)")
        if not self.speed_perturb or any(f <= 0 for f in self.speed_perturb):
            raise ValueError(f"speed_perturb must list factors > 0, got {self.speed_perturb}")
        if self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.pad_multiple < 1:
            raise ValueError(f"pad_multiple must be >= 1, got {self.pad_multiple}")
        if self.sortagrad_epochs < 0:
            raise ValueError(f"sortagrad_epochs must be >= 0, got {self.sortagrad_epochs}")


@dataclass
class CTCModelConfig:
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(subsampling=4))
    head_dropout: float = 0.1


@dataclass
class CTCDecodeConfig:
    """Decoding: ``beam`` 1 is greedy (best path); > 1 is prefix beam search."""

    beam: int = 1
    batch_frames: int = 60000

    def __post_init__(self) -> None:
        if self.beam < 1 or self.batch_frames < 1:
            raise ValueError(f"beam and batch_frames must be >= 1, got {self.beam}, {self.batch_frames}")


@dataclass
class CTCRecipe:
    """A CTC transcription recipe (``task: ctc``)."""

    task: Literal["ctc"] = "ctc"
    data: CTCDataConfig = field(default_factory=CTCDataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: CTCModelConfig = field(default_factory=CTCModelConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(noise_prob=0.0))
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: CTCDecodeConfig = field(default_factory=CTCDecodeConfig)

    def __post_init__(self) -> None:
        if self.augment.noise_prob > 0:
            raise ValueError("augment.noise_prob: noise mixing is not supported by ctc recipes; set it to 0")


def build_ctc_model(recipe: CTCRecipe, vocab_size: int, encoder: nn.Module | None = None) -> CTCModel:
    """The recipe's model; the encoder's input_dim is set from the features. ``encoder`` replaces
    the recipe's truncated encoder (baselines train in the same harness this way)."""
    if encoder is None:
        enc_cfg = EncoderConfig(**{**recipe.model.encoder.__dict__, "input_dim": recipe.features.feature_dim})
        encoder = TruncatedEncoder.from_config(enc_cfg)
    return CTCModel(encoder, vocab_size, recipe.model.head_dropout)


def ctc_grid(recipe: CTCRecipe) -> FrameGrid:
    """Times of the model's output frames (Kaldi framing, then the encoder's subsampling)."""
    feats = recipe.features
    sub = recipe.model.encoder.subsampling
    return FrameGrid.for_model(feats.frame_shift / feats.sample_rate, feats.frame_length / feats.sample_rate,
                               sub, {1: 1, 2: 3, 4: 7}[sub])


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


def _texts(manifest: Manifest, name: str) -> dict[str, str]:
    texts = {u.id: u.text for u in manifest if u.text is not None}
    if not texts:
        raise ValueError(f"{name} data has no transcripts (a Kaldi 'text' file or a 'text' column)")
    return texts  # type: ignore[return-value]


def spec_augment_on(x: Tensor, config: AugmentConfig, generator: torch.Generator) -> Tensor:
    """:func:`~speechattn.data.augment.spec_augment` of features on any device: the masks are drawn
    on the CPU from ``generator`` (the same draws as for CPU features) and applied where ``x`` is."""
    if x.device.type == "cpu":
        return spec_augment(x, config, generator)
    keep = spec_augment(torch.ones(x.shape, dtype=torch.bool), config, generator)
    return x.masked_fill(~keep.to(x.device, non_blocking=True), 0.0)


def decode_log_probs(log_probs: Tensor, lengths: Tensor, beam: int = 1) -> list[CTCHypothesis]:
    """Best hypothesis of each row of (batch, T', V) log-probs: greedy or prefix beam search."""
    if beam <= 1:
        return greedy_decode(log_probs, lengths)
    return [prefix_beam_search(log_probs[i, : int(lengths[i])].float().cpu().numpy(), beam=beam)[0]
            for i in range(log_probs.shape[0])]


def decode_features(model: nn.Module, feats: Sequence[Tensor], beam: int = 1, batch_frames: int = 60000,
                    device: torch.device | str = "cpu") -> list[CTCHypothesis]:
    """Best hypothesis of each whole utterance's (frames, dim) CPU features, batched by similar
    length; the model runs on ``device``, where it is, and the decoding on the CPU (offline path;
    call in eval mode, under inference mode / autocast as wanted)."""
    out: list[CTCHypothesis | None] = [None] * len(feats)
    for idx, x, lengths in length_batches(feats, batch_frames):
        logits, out_lengths = model(x.to(device), lengths.to(device))
        log_probs = logits.float().log_softmax(-1).cpu()
        for j, hyp in zip(idx, decode_log_probs(log_probs, out_lengths.cpu(), beam)):
            out[j] = hyp
    return out  # type: ignore[return-value]


def score_transcripts(tokenizer: Tokenizer, refs: Sequence[Sequence[int]], hyps: Sequence[Sequence[int]]
                      ) -> dict[str, float]:
    """Token error rate (``per`` for phones, ``cer`` for characters, word boundaries excluded)
    and, when the tokens spell words, ``wer``."""
    name = "cer" if tokenizer.kind == "chars" else "per"
    tokens, words = ErrorRate(), ErrorRate()
    for ref, hyp in zip(refs, hyps):
        r_text, h_text = tokenizer.decode(ref), tokenizer.decode(hyp)
        if tokenizer.predicts_words:
            tokens.update(list(r_text.replace(" ", "")), list(h_text.replace(" ", "")))
            words.update(r_text.split(), h_text.split())
        else:
            tokens.update(r_text.split(), h_text.split())
    out = tokens.as_dict(name)
    if tokenizer.predicts_words:
        out.update(words.as_dict("wer"))
    return out


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
        train_texts, dev_texts = _texts(train_manifest, "train"), _texts(dev_manifest, "dev")
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

    def save_best(self, run_dir: Path, metrics: dict[str, float]) -> None:
        grid = ctc_grid(self.recipe)
        # weights and metadata in one file, replaced at once (model.json: a readable copy)
        save_model(
            self.model,
            {
                "task": "ctc",
                "tokenizer": self.tokenizer.to_dict(),
                "grid": {"hop": grid.hop, "offset": grid.offset},
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


def evaluate_run(
    run_dir: str | Path,
    data: str,
    *,
    data_root: str | None = None,
    beam: int | None = None,
    progress: bool | None = None,
    device: str | torch.device = "auto",
    on_skip: Callable[[str, str], None] | None = None,
) -> dict[str, Any]:
    """Error rates of a trained CTC run on transcribed data (``speechattn evaluate``); the model
    runs on ``device`` (see :meth:`Transcriber.from_run`). ``on_skip(file, reason)`` is called for
    each audio file that could not be used (left out of the scores)."""
    from speechattn.transcriber import Transcriber

    model = Transcriber.from_run(run_dir, device=device)
    recipe = model.recipe
    root = resolve_data_root(data_root if data_root is not None else recipe.data.root)
    manifest = resolve_manifest(data, root)
    encoded = encode_corpus(encoding_tokenizer(model.tokenizer, recipe.data, root), _texts(manifest, str(data)))
    manifest = manifest.filter(lambda u: u.id in encoded.ids)
    fs = extract_features(manifest, model.extractor, desc="features", progress=progress)
    if on_skip is not None:
        paths = {u.id: str(u.path) for u in manifest}
        for utt_id, reason in fs.failures.items():
            on_skip(paths.get(utt_id, utt_id), reason)
    with model.precision():
        hyps = model.decode_features(fs.feats, beam=beam)
    refs = [encoded.ids[u.id] for u in fs.manifest]
    metrics = score_transcripts(model.tokenizer, refs, [h.tokens for h in hyps])
    return {"data": str(data), "utterances": len(refs), "skipped_utterances": len(encoded.skipped) + len(fs.failures),
            **metrics}

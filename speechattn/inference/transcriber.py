"""Use a trained CTC run from Python.

    from speechattn.transcriber import Transcriber
    model = Transcriber.from_run("runs/asr")
    result = model.transcribe_file("lecture.flac")      # any length: streamed, bounded memory
    print(result.text)
    for tok in result.tokens:                           # phones or characters, with times
        print(tok.start, tok.end, tok.token)

:meth:`Transcriber.transcribe_file` reads the file block by block, computes features with
:class:`~speechattn.audio.StreamingFeatureExtractor` and runs the model's streaming encoder
(:func:`speechattn.inference.streaming.stream_file_outputs`); only the per-frame token log-probabilities
are kept (V floats every 40 ms: about 15 MB per hour for 40 tokens), then decoded greedily or by
prefix beam search. Times come from the CTC alignment: a token spans the output frames where the
best path emits it.

The model runs on the device given to :meth:`Transcriber.from_run` (``auto``: a CUDA GPU when
there is one, else the CPU), in bf16 only where that device computes bf16 natively, whatever the
precision it was trained in (see :mod:`speechattn.utils.device`); decoding runs on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from speechattn.data.labels import FrameGrid
from speechattn.decoding.ctc import (
    CTCHypothesis,
    greedy_decode,
    prefix_beam_search,
    spans_to_times,
)
from speechattn.inference.runs import RunPredictor, load_run_model
from speechattn.inference.streaming import offline_outputs, stream_file_outputs
from speechattn.models.ctc import CTCModel, decode_features
from speechattn.recipes.builders import build_ctc_model
from speechattn.text import WORD_BOUNDARY, Tokenizer, tokenizer_from_dict
from speechattn.utils.device import resolve_device

__all__ = ["TimedToken", "Transcript", "Transcriber"]


@dataclass
class TimedToken:
    """A token (phone, character or word) with its start and end in seconds."""

    token: str
    start: float
    end: float


@dataclass
class Transcript:
    """The transcription of one recording.

    Attributes:
        path: the audio file ("" for a waveform).
        duration: seconds of audio.
        text: the decoded text (space-separated phones, or words for character models).
        tokens: every output token with its time span (word boundaries excluded).
        words: words with time spans (character models only; empty otherwise).
        score: log-probability of the hypothesis.
    """

    path: str
    duration: float
    text: str
    tokens: list[TimedToken]
    words: list[TimedToken] = field(default_factory=list)
    score: float = 0.0


class Transcriber(RunPredictor):
    """A trained CTC model: audio -> token log-probs -> text with token times.

    Args:
        recipe: the run's :class:`~speechattn.recipes.ctc.CTCRecipe`.
        model: the trained :class:`~speechattn.models.ctc.CTCModel` (put in eval mode).
        tokenizer: the run's tokenizer.
        grid: times of the model's output frames.
        beam: default decoding (1: greedy; > 1: prefix beam search).
        block_seconds: audio read per block when streaming a file.
        device: where to run the model (moved there): ``auto``, ``cpu``, ``cuda``, ``cuda:N``;
            None: where it is.

    Attributes: those of :class:`~speechattn.inference.runs.RunPredictor`, and the arguments.
    """

    def __init__(self, recipe: Any, model: CTCModel, tokenizer: Tokenizer, grid: FrameGrid, beam: int = 1,
                 block_seconds: float = 30.0, device: str | torch.device | None = None) -> None:
        if beam < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        super().__init__(recipe, model, "CTC model", device)
        self.tokenizer = tokenizer
        self.grid = grid
        self.beam = beam
        self.block_seconds = block_seconds

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], beam: int | None = None,
                 device: str | torch.device = "auto") -> "Transcriber":
        """Load a CTC model: a shipped model name (``phones``), a model file or a run folder
        (``config.yaml``, ``model.safetensors``), onto ``device`` (``auto``: a CUDA GPU when there
        is one, else the CPU).

        Raises:
            ValueError: a bad device, a run of another task; ModelFileError (a ValueError): corrupt
            or mismatched weights or metadata; FileNotFoundError: not a trained run.
        """
        dev = resolve_device(device)
        run = load_run_model(run_dir, "ctc", "CTC transcription model", required=("tokenizer", "grid"))
        recipe = run.recipe
        with run.reading_info():
            tokenizer = tokenizer_from_dict(run.info["tokenizer"])
            grid = FrameGrid.from_dict(run.info["grid"])
        model = run.load_into(build_ctc_model(recipe, len(tokenizer)))
        transcriber = cls(recipe, model, tokenizer, grid, beam=recipe.decode.beam if beam is None else beam, device=dev)
        transcriber.card = run.card
        return transcriber

    # ----------------------------------------------------------------- decoding
    def decode(self, log_probs: np.ndarray | Tensor, beam: int | None = None) -> CTCHypothesis:
        """Best hypothesis of one (T', V) log-prob matrix."""
        beam = self.beam if beam is None else beam
        if beam <= 1:
            return greedy_decode(torch.as_tensor(log_probs))[0]
        return prefix_beam_search(np.asarray(log_probs), beam=beam)[0]

    def decode_features(self, feats: Sequence[Tensor], beam: int | None = None,
                        batch_frames: int | None = None) -> list[CTCHypothesis]:
        """Best hypotheses of whole utterances' (frames, dim) features, batched by length (offline
        path; call under :meth:`precision`)."""
        return decode_features(self.model, feats, self.beam if beam is None else beam,
                               batch_frames or self.recipe.decode.batch_frames, device=self.device)

    def transcript(self, hyp: CTCHypothesis, duration: float, path: str = "") -> Transcript:
        """A :class:`Transcript` with token (and word) times from a hypothesis."""
        hop = self.grid.hop
        times = spans_to_times(hyp.spans, hop, self.grid.offset - hop / 2)
        strings = self.tokenizer.token_strings(hyp.tokens)
        tokens: list[TimedToken] = []
        words: list[TimedToken] = []
        current: list[TimedToken] = []

        def end_word() -> None:
            if current:
                words.append(TimedToken("".join(t.token for t in current), current[0].start, current[-1].end))
                current.clear()

        for s, (a, b) in zip(strings, times):
            a, b = max(0.0, a), min(duration, b) if duration > 0 else b
            if s == WORD_BOUNDARY and self.tokenizer.predicts_words:
                end_word()
                continue
            tok = TimedToken(s, round(a, 3), round(max(a, b), 3))
            tokens.append(tok)
            if self.tokenizer.predicts_words:
                current.append(tok)
        end_word()
        return Transcript(path, duration, self.tokenizer.decode(hyp.tokens), tokens, words, float(hyp.score))

    # ----------------------------------------------------------------- audio
    def transcribe_waveform(self, waveform: Tensor, sample_rate: int, beam: int | None = None) -> Transcript:
        """Transcribe a whole (samples,) mono waveform at once (offline path).

        Raises:
            ValueError: not a mono (samples,) waveform, or shorter than one frame.
        """
        feats = self.features(waveform, sample_rate)
        with self.precision():
            log_probs = offline_outputs(self.model, feats[None].to(self.device))[0].float().log_softmax(-1).cpu()
        hyp = self.decode(log_probs, beam)
        return self.transcript(hyp, waveform.numel() / sample_rate)

    def log_probs_file(self, path: str | os.PathLike[str],
                       on_block: Callable[[float], None] | None = None) -> tuple[np.ndarray, float]:
        """(T', V) float32 token log-probs and the duration of a file, streamed block by block."""
        with self.precision():
            log_probs, duration = stream_file_outputs(
                path, self.extractor, self.model, lambda logits: logits.float().log_softmax(-1).numpy(),
                block_seconds=self.block_seconds, on_block=on_block, device=self.device)
        if log_probs.shape[0] == 0:
            log_probs = np.zeros((0, self.model.vocab_size), dtype=np.float32)
        return log_probs, duration

    def transcribe_file(self, path: str | os.PathLike[str], beam: int | None = None,
                        on_block: Callable[[float], None] | None = None) -> Transcript:
        """Transcribe an audio file of any length through the streaming path (see the module
        docstring). ``on_block(seconds)`` is called after each block read (progress).

        Raises:
            AudioError: the file is missing, unreadable, empty or corrupt.
        """
        log_probs, duration = self.log_probs_file(path, on_block)
        if log_probs.shape[0] == 0:
            return Transcript(str(Path(path)), duration, "", [], [], 0.0)
        return self.transcript(self.decode(log_probs, beam), duration, str(path))

"""The CTC task end to end on real speechocean762 audio: recipe validation, tokenization with
skipped utterances, a tiny training run, its artifacts, and the Transcriber on files."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from speechattn.recipes import load_task_recipe
from speechattn.recipes.ctc import CTCDataConfig, CTCRecipe
from speechattn.recipes.schema import ConfigError
from speechattn.tasks.ctc import CTCTask
from speechattn.text import Lexicon, tokenizer_from_dict
from tests.ctc_support import RECIPE, TINY_CTC, tiny_ctc_run


def test_recipe_loads_as_ctc_with_phones_by_default():
    recipe = load_task_recipe(RECIPE)
    assert isinstance(recipe, CTCRecipe)
    assert recipe.data.tokens == "phones" and recipe.data.strip_stress
    assert recipe.model.encoder.subsampling == 4


def test_recipe_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(RECIPE.read_text().replace("strip_stress: true", "strip_stres: true"))
    with pytest.raises(ConfigError, match="strip_stres"):
        load_task_recipe(bad)
    with pytest.raises(ConfigError, match="tokens"):
        load_task_recipe(RECIPE, ["data.tokens=words"])
    with pytest.raises(ValueError, match="lexicon"):
        CTCDataConfig(tokens="phones", lexicon=None)


def test_sortagrad_epochs_order_the_first_epochs_shortest_first():
    recipe = load_task_recipe(RECIPE, ["data.sortagrad_epochs=2", "train.batch_size=4"])
    lengths = torch.randint(10, 90, (50,), generator=torch.Generator().manual_seed(0)).tolist()
    task = SimpleNamespace(recipe=recipe, train_feats=[torch.zeros(n, 1) for n in lengths], steps_per_epoch=lambda: 12)

    def maxima(epoch):
        batches = list(CTCTask.train_batches(task, epoch))
        assert len(batches) == 12 and all(len(b) == 4 for b in batches)
        return [max(lengths[i] for i in b) for b in batches]

    assert maxima(1) == sorted(maxima(1)) and maxima(2) == sorted(maxima(2))
    assert maxima(3) != sorted(maxima(3))  # random order from epoch 3 on
    assert maxima(1)[-1] < max(lengths)  # the epoch stops after steps_per_epoch batches: the shortest
    with pytest.raises(ValueError, match="sortagrad_epochs"):
        CTCDataConfig(sortagrad_epochs=-1)


def _batch_task(lengths, overrides):
    recipe = load_task_recipe(RECIPE, overrides)
    task = SimpleNamespace(recipe=recipe, train_feats=[torch.zeros(n, 1) for n in lengths])
    task.steps_per_epoch = lambda: CTCTask.steps_per_epoch(task)
    return task


@pytest.mark.parametrize("epoch", [1, 2])  # shortest first (sortagrad), then bucketed random order
def test_ddp_ranks_get_equal_parts_of_the_single_process_global_batches(monkeypatch, epoch):
    from speechattn.tasks import ctc

    lengths = torch.randint(10, 90, (203,), generator=torch.Generator().manual_seed(1)).tolist()
    single = list(CTCTask.train_batches(_batch_task(lengths, ["data.sortagrad_epochs=1", "train.batch_size=8"]), epoch))
    assert len(single) == 203 // 8 and all(len(b) == 8 for b in single)
    parts = []
    for rank in (0, 1):
        monkeypatch.setattr(ctc, "rank_world", lambda rank=rank: (rank, 2))
        task = _batch_task(lengths, ["data.sortagrad_epochs=1", "train.batch_size=4"])
        assert task.steps_per_epoch() == len(single)
        parts.append(list(CTCTask.train_batches(task, epoch)))
    assert len(parts[0]) == len(parts[1]) == len(single)
    assert all(len(b) == 4 for part in parts for b in part)
    assert [a + b for a, b in zip(*parts)] == single  # together: exactly the batches of one process


def test_ctc_task_device_and_per_rank_augmentation_seed(monkeypatch, speechocean_dir):
    from speechattn.tasks import ctc

    recipe = load_task_recipe(RECIPE, [*TINY_CTC, "data.max_train_utterances=8", "data.max_dev_utterances=2"])
    seeds = []
    for rank in (0, 1):
        monkeypatch.setattr(ctc, "rank_world", lambda rank=rank: (rank, 2))
        task = CTCTask(recipe, data_root=speechocean_dir.parent, progress=False)
        assert task.device == torch.device("cpu")
        seeds.append(task.generator.initial_seed())
    assert seeds == [recipe.train.seed, recipe.train.seed + 1_000_003]


def test_train_seed_fixes_the_initial_weights(tmp_path, speechocean_dir, monkeypatch):
    from speechattn.tasks import train_recipe
    from speechattn.training import trainer

    initial = []
    monkeypatch.setattr(trainer.Trainer, "fit", lambda self, task, resume=False: initial.append(
        {k: v.clone() for k, v in task.modules.state_dict().items()}) or {})
    for i, seed in enumerate([0, 0, 1]):
        torch.rand(7 + i)  # a different global RNG state before each call
        train_recipe(RECIPE, [*TINY_CTC, f"train.seed={seed}"], run_dir=tmp_path / str(i), progress=False)
    weights = [k for k in initial[0] if k.endswith("weight") and initial[0][k].is_floating_point()]
    assert weights and all(torch.equal(initial[0][k], initial[1][k]) for k in initial[0])
    assert not all(torch.equal(initial[0][k], initial[2][k]) for k in weights)


@pytest.fixture(scope="module")
def run(tmp_path_factory, speechocean_dir):
    return tiny_ctc_run(tmp_path_factory)


def test_tiny_run_writes_a_loadable_model(run, speechocean_dir):
    run_dir, summary = run
    assert summary["metric"] == "per" and summary["epochs"] == 2
    info = json.loads((run_dir / "model.json").read_text())
    assert info["task"] == "ctc" and info["tokenizer"]["kind"] == "phones"
    lexicon = Lexicon.read(speechocean_dir / "lexicon.txt", strip_stress=True)
    # (Two tiny epochs may leave every hypothesis empty, PER 1: the constructed case below has
    # substitutions, deletions and insertions.)
    errors, length = _dev_phone_errors_of_the_saved_model(run_dir, speechocean_dir, lexicon)
    assert length > 100 and summary["dev"]["per"] == pytest.approx(errors / length, abs=1e-12)
    tokenizer = tokenizer_from_dict(info["tokenizer"])
    assert tokenizer.tokens[0] == "<blank>" and set(tokenizer.tokens[1:]) == set(lexicon.phones)
    assert len(lexicon.phones) == 39  # ARPAbet without stress
    assert info["grid"]["hop"] == pytest.approx(0.04)
    assert (run_dir / "log.csv").read_text().count("\n") >= 3  # header + 2 epochs


def _dev_phone_errors_of_the_saved_model(run_dir, speechocean_dir, lexicon):
    """(phone errors, reference phones) of the saved model on the run's dev utterances, by hand:
    its greedy phones against the first pronunciations of the transcript's words, Levenshtein."""
    from speechattn.data.featcache import extract_features
    from speechattn.data.manifest import Manifest
    from speechattn.data.splits import resolve_manifest
    from speechattn.inference import Transcriber
    from tests.reference_metrics import edit_distance

    model = Transcriber.from_run(run_dir)  # the device training evaluated on ("auto")
    dev = resolve_manifest("dev", speechocean_dir)
    step = len(dev) / 12  # data.max_dev_utterances=12, evenly spread
    kept = {dev[int(i * step)].id for i in range(12)}
    utterances = [u for u in dev if u.id in kept and all(w in lexicon for w in u.text.split())]
    fs = extract_features(Manifest(utterances), model.extractor, progress=False)
    assert not fs.failures and len(fs.manifest) >= 10
    with torch.inference_mode():  # fp32, as training evaluated (train.precision=fp32)
        hyps = model.decode_features(fs.feats, beam=1)
    phones = model.tokenizer.tokens  # id -> phone (0: the blank, never in a hypothesis)
    errors = length = 0
    for utt, hyp in zip(fs.manifest, hyps):
        ref = [p for w in utt.text.split() for p in lexicon.pronunciation(w)]
        errors += edit_distance(ref, [phones[t] for t in hyp.tokens])
        length += len(ref)
    return errors, length


def test_dev_per_sums_the_edits_over_the_utterances():
    """CTCTask.evaluate on hypotheses with known edits: PER = all edits / all reference phones."""
    from speechattn.decoding.ctc import CTCHypothesis
    from speechattn.text import PhoneTokenizer

    tokenizer = PhoneTokenizer(["AA", "B", "K", "T"])
    ids = {p: tokenizer.tokens.index(p) for p in tokenizer.tokens[1:]}
    pairs = [("AA B K", "AA T K"),  # 1 substitution
             ("B B T AA", "B T"),  # 2 deletions
             ("K", "K K AA")]  # 2 insertions
    task = SimpleNamespace(
        tokenizer=tokenizer, dev_feats=[torch.zeros(5, 1)] * 3,
        dev_targets=[[ids[p] for p in ref.split()] for ref, _ in pairs],
        decode=lambda feats: [CTCHypothesis([ids[p] for p in hyp.split()], 0.0) for _, hyp in pairs])
    metrics = CTCTask.evaluate(task)
    assert metrics == pytest.approx({"per": 5 / 8, "per_sub": 1 / 8, "per_del": 2 / 8, "per_ins": 2 / 8})


def test_words_missing_from_the_lexicon_are_skipped_and_counted(tmp_path, speechocean_dir, caplog):
    from speechattn.tasks import train_recipe
    from tests.ctc_support import TINY_CTC, small_kaldi_dir

    data = small_kaldi_dir(speechocean_dir, "train", tmp_path / "train", 40, {0: "ZZYZX WORDS", 1: "QWERTY"})
    overrides = [o for o in TINY_CTC if not o.startswith("data.max_train")] + [
        f"data.train={data}", "train.max_epochs=1"]
    with caplog.at_level("WARNING"):
        summary = train_recipe(RECIPE, overrides, run_dir=tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "model.json").read_text())
    assert info["skipped_utterances"]["train"] == 2
    assert info["train_utterances"] <= 38
    assert "skipped 2 of 40" in caplog.text and "ZZYZX" in caplog.text and "QWERTY" in caplog.text
    assert math.isfinite(summary["best"])


def test_char_tokens_report_cer_and_wer(tmp_path_factory, speechocean_dir):
    run_dir, summary = tiny_ctc_run(tmp_path_factory, ("data.tokens=chars",))
    assert summary["metric"] == "cer"
    assert {"cer", "wer"} <= set(summary["dev"])
    info = json.loads((run_dir / "model.json").read_text())
    assert info["tokenizer"]["kind"] == "chars"
    from speechattn.inference import Transcriber

    model = Transcriber.from_run(run_dir)
    result = model.transcribe_file(speechocean_dir / "audio" / "SPEAKER0001" / "000010011.ogg")
    assert result.text.split() == [w.token for w in result.words]
    assert "|" not in result.text


def test_ctc_gradients_flow_through_the_model():
    from speechattn.models.ctc import CTCModel
    from speechattn.nn.encoder import TruncatedEncoder

    torch.manual_seed(0)
    model = CTCModel(TruncatedEncoder(input_dim=20, d_model=16, num_heads=2, num_layers=1, ffn_dim=32,
                                      subsampling=4, subsampling_channels=4), vocab_size=5)
    x = torch.randn(2, 120, 20)
    lengths = torch.tensor([120, 80])
    logits, out = model(x, lengths)
    assert logits.shape[:2] == (2, int(out.max())) and logits.shape[2] == 5
    loss = torch.nn.functional.ctc_loss(logits.log_softmax(-1).transpose(0, 1), torch.tensor([1, 2, 3, 1, 2]),
                                        out, torch.tensor([3, 2]))
    loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="vocab_size"):
        CTCModel(model.encoder, vocab_size=1)


def test_evaluate_test_scores_the_saved_best_model(run, speechocean_dir, tmp_path):
    """data.test: a task with fresh weights reloads the best model of the run and gets what
    `speechattn evaluate` gets from the run's model file on the same data."""
    from speechattn.evaluation.ctc import evaluate_run
    from tests.ctc_support import small_kaldi_dir

    run_dir, _ = run
    test_dir = small_kaldi_dir(speechocean_dir, "dev", tmp_path / "test", 8)
    torch.manual_seed(123)
    task = CTCTask(load_task_recipe(run_dir / "config.yaml", [f"data.test={test_dir}"]), progress=False)
    assert len(task.test_feats) == 8
    task.modules.eval()
    with torch.inference_mode():
        metrics = task.evaluate_test(run_dir)
    expected = evaluate_run(run_dir, str(test_dir), device="cpu")
    assert expected["utterances"] == 8 and metrics == pytest.approx({k: expected[k] for k in metrics}, abs=1e-9)

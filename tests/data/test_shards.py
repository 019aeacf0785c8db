"""Feature shards (speechattn.data.shards): writing, the index, streaming crops split over ranks
and DataLoader workers, errors, the CLI, and speaker training on shards."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

import speechattn.utils.distributed as distributed
from speechattn.audio import FeatureConfig, FeatureExtractor
from speechattn.data.augment import mix_noise, random_crops, spec_augment
from speechattn.data.featcache import extract_features, frontend_versions
from speechattn.data.shard_writer import ShardSink, write_shards
from speechattn.data.shards import (
    INDEX_NAME,
    ShardDataset,
    ShardError,
    epoch_plan,
    load_index,
    shard_loader,
)
from speechattn.data.splits import resolve_manifest
from tests.reference_metrics import all_pair_cosine_trials, reference_eer

RATE = 16000
REPO = Path(__file__).resolve().parents[2]
#: a seconds-long speaker recipe: tiny model, 0.3 s crops (30 frames)
TINY = [
    "model.encoder.d_model=32", "model.encoder.num_heads=2", "model.encoder.num_layers=1",
    "model.encoder.ffn_dim=64", "model.embed_dim=16", "data.crop_seconds=0.3", "train.batch_size=4",
    "train.precision=fp32", "train.warmup_steps=1", "train.max_minutes=null", "train.threads=null",
    "data.speed_perturb=[0.9,1.0]",
]


def _wav(path: Path, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.2 * np.sin(2 * np.pi * (150 + 40 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(path, tone.astype(np.float32), RATE, subtype="FLOAT")


def _kaldi(folder: Path, utts: list[tuple[str, str, Path]]) -> None:
    folder.mkdir(parents=True)
    (folder / "wav.scp").write_text("".join(f"{u} {p}\n" for u, _, p in utts))
    (folder / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s, _ in utts))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A data root: train/ (4 speakers x 4 utterances, 0.2-0.8 s, one unreadable file), dev/
    (3 other speakers x 2 utterances) and noise/ (2 files of 2 s)."""
    root = tmp_path_factory.mktemp("corpus")
    audio = root / "audio"
    audio.mkdir()
    train, dev = [], []
    for i in range(16):
        _wav(audio / f"t{i}.wav", 0.2 + 0.04 * i, i)
        train.append((f"spk{i % 4}_u{i:02d}", f"spk{i % 4}", audio / f"t{i}.wav"))
    (audio / "broken.wav").write_bytes(b"not audio")
    train.append(("spk0_broken", "spk0", audio / "broken.wav"))
    for i in range(6):
        _wav(audio / f"d{i}.wav", 0.5 + 0.05 * i, 100 + i)
        dev.append((f"dev{i % 3}_u{i}", f"dev{i % 3}", audio / f"d{i}.wav"))
    _kaldi(root / "train", train)
    _kaldi(root / "dev", dev)
    (root / "noise").mkdir()
    for i in range(2):
        _wav(root / "noise" / f"n{i}.wav", 2.0, 200 + i)
    return root


@pytest.fixture(scope="module")
def shards(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "train"
    write_shards(resolve_manifest("train", corpus), out, FeatureConfig(), [0.9, 1.0], shard_size=5, source="train",
                 progress=False)
    return out


def _samples(folder: Path) -> list[tuple[dict, np.ndarray]]:
    import io

    import webdataset as wds

    urls = [str(folder / s["file"]) for s in json.loads((folder / INDEX_NAME).read_text())["shards"]]
    return [(json.loads(s["json"]), np.load(io.BytesIO(s["feats.npy"])))
            for s in wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples())]


def test_writer_index_and_samples(shards, corpus):
    index = json.loads((shards / INDEX_NAME).read_text())
    assert index["features"] == dataclasses.asdict(FeatureConfig())
    assert index["speed_perturb"] == [0.9, 1.0] and index["feature_dtype"] == "float16"
    assert index["total_samples"] == 32  # 16 readable utterances x 2 speeds
    assert set(index["skipped"]) == {"spk0_broken", "spk0_broken-sp0.9"}
    assert [s["file"] for s in index["shards"]] == [f"shard-{i:06d}.tar" for i in range(7)]
    assert [s["samples"] for s in index["shards"]] == [5] * 6 + [2]
    assert index["speakers"] == sorted(f"spk{i}{sp}" for i in range(4) for sp in ("", "-sp0.9"))
    assert index["package_version"] and index["source"] == "train"
    assert index["frontend"] == frontend_versions()
    assert not list(shards.glob(".*tmp"))
    samples = _samples(shards)
    assert sum(f.shape[0] for _, f in samples) == index["total_frames"]
    assert index["total_hours"] == pytest.approx(index["total_frames"] * 0.01 / 3600)
    assert sorted(m["id"] for m, _ in samples) == sorted(
        f"spk{i % 4}_u{i:02d}{sp}" for i in range(16) for sp in ("", "-sp0.9"))
    assert all(m["speaker"] == m["id"].split("_")[0] + ("-sp0.9" if m["speed"] == 0.9 else "") for m, _ in samples)
    # The shards mix speakers (written in a shuffled order), and hold the featcache's features (as float16).
    assert len({m["speaker"] for m, _ in samples[:5]}) > 1
    plain = extract_features(resolve_manifest("train", corpus), FeatureExtractor(FeatureConfig()), progress=False)
    ref = {u.id: f for u, f in zip(plain.manifest, plain.feats)}
    for meta, feats in samples:
        if meta["speed"] == 1.0:
            assert feats.dtype == np.float16 and feats.shape == tuple(ref[meta["id"]].shape)
            np.testing.assert_allclose(feats.astype(np.float32), ref[meta["id"]].numpy(), atol=0.02, rtol=2e-3)


def _marked_shards(folder: Path, count: int, lengths: list[int], shard_size: int) -> Path:
    """Shards whose sample ``i`` is filled with the value ``i`` (so any crop names its sample)."""
    sink = ShardSink(folder, FeatureConfig(num_mel_bins=8), shard_size=shard_size)
    for i in range(count):
        sink.add(f"u{i}", f"s{i % 5}", np.full((lengths[i % len(lengths)], 8), float(i)))
    sink.close()
    return folder


def _epoch(index, epoch: int, world: int, workers: int, batch: int, crop: int, monkeypatch) -> list[list[list]]:
    """Per rank: the (sample, label) pairs of each batch of one epoch, read with real workers."""
    ranks = []
    for rank in range(world):
        monkeypatch.setattr(distributed, "rank_world", lambda rank=rank: (rank, world))
        dataset = ShardDataset(index, crop, batch, seed=3, shuffle_buffer=8)
        dataset.set_epoch(epoch)
        batches = []
        for x, labels in shard_loader(dataset, workers):
            assert x.shape == (batch, crop, 8) and x.dtype == torch.float32
            ids = x[:, 0, 0].long()
            assert bool((x == ids[:, None, None].float()).all())  # each crop comes from one sample
            assert labels.tolist() == [index.speakers.index(f"s{i % 5}") for i in ids.tolist()]
            batches.append(ids.tolist())
        assert len(batches) == dataset.steps_per_epoch()
        ranks.append(batches)
    return ranks


def test_every_sample_once_per_epoch_over_two_ranks_and_two_workers(tmp_path, monkeypatch):
    index = load_index(_marked_shards(tmp_path / "s", 53, [3, 12, 40], shard_size=6))
    epochs = []
    for epoch in (1, 2):
        ranks = _epoch(index, epoch, world=2, workers=2, batch=4, crop=10, monkeypatch=monkeypatch)
        assert [len(r) for r in ranks] == [53 // 8] * 2  # the same full batches on each rank
        seen = [i for batches in ranks for b in batches for i in b]
        assert len(seen) == len(set(seen)) == 6 * 8  # nobody sees a sample twice; 5 left out
        epochs.append(ranks)
    assert epochs[0] != epochs[1]  # another order (and other left-out samples) each epoch
    assert _epoch(index, 1, 2, 2, 4, 10, monkeypatch) == epochs[0]  # reproducible from the seed


def test_epoch_plan_splits_whole_batches_between_workers():
    counts = [7, 7, 7, 3]
    pieces = [[epoch_plan(counts, 2, 0, 1, r, 2, w, 3) for w in range(3)] for r in range(2)]
    sizes = [[sum(b - a for _, a, b in p) for p in rank] for rank in pieces]
    assert sizes == [[4, 4, 4], [4, 4, 4]]  # 24 // (2 x 2) = 6 steps per rank: 2 batches per worker
    got = sorted((s, i) for rank in pieces for p in rank for s, a, b in p for i in range(a, b))
    assert len(got) == len(set(got)) == 24


def test_short_utterances_are_repeated_into_a_crop(tmp_path):
    sink = ShardSink(tmp_path / "s", FeatureConfig(num_mel_bins=8), shard_size=10)
    ramp = np.arange(7, dtype=np.float32)[:, None].repeat(8, 1)
    for i in range(4):
        sink.add(f"u{i}", "a", ramp)
    dataset = ShardDataset(sink.close(), crop_frames=20, batch_size=2, rank=0, world=1)
    for x, label in dataset:
        start = int(x[0, 0])
        assert x.shape == (20, 8) and label == 0
        assert x[:, 0].tolist() == [(start + t) % 7 for t in range(20)]


def test_bad_or_missing_index_is_a_one_line_error(shards, tmp_path):
    with pytest.raises(ShardError, match="no index.json") as err:
        load_index(tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(ShardError, match="folder not found"):
        load_index(tmp_path / "nowhere")
    with pytest.raises(ShardError) as err:
        load_index(shards, FeatureConfig(num_mel_bins=40))
    assert "num_mel_bins=80 in the shards, 40 in the recipe" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / INDEX_NAME).write_text("{not json")
    with pytest.raises(ShardError, match="unreadable shard index"):
        load_index(tmp_path)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / INDEX_NAME).write_text((shards / INDEX_NAME).read_text())
    with pytest.raises(ShardError, match="missing .first: shard-000000.tar"):
        load_index(copy)


def test_an_interrupted_write_leaves_no_index(tmp_path):
    folder = _marked_shards(tmp_path / "s", 10, [5], shard_size=4)
    assert load_index(folder).total_samples == 10
    sink = ShardSink(folder, FeatureConfig(num_mel_bins=8), shard_size=4)  # writing again ...
    sink.add("x", "s", np.zeros((5, 8)))
    sink.abort()  # ... killed before the end
    with pytest.raises(ShardError, match="did not finish"):
        load_index(folder)


def test_cli_writes_shards(corpus, tmp_path):
    from speechattn.cli.main import main

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["data", "shard", "train", str(out), "--recipe", str(REPO / "recipes/speaker.yaml"),
                                       "--shard-size", "20", "--root", str(corpus)])
    assert result.exit_code == 0, result.output
    index = load_index(out)
    assert index.speed_perturb == [0.9, 1.0, 1.1] and index.total_samples == 48
    assert [s.samples for s in index.shards] == [20, 20, 8]
    assert "48 samples" in result.output and "skipped 3 unreadable" in result.output
    bad = CliRunner().invoke(main, ["data", "shard", "nothing", str(out), "--recipe", str(REPO / "recipes/speaker.yaml"),
                                    "--root", str(corpus)])
    assert bad.exit_code == 2 and "data not found" in bad.output
    assert load_index(out).total_samples == 48  # a failed command leaves the shards as they were


def _recipe(corpus: Path, *extra: str):
    from speechattn.recipes import load_task_recipe

    return load_task_recipe(REPO / "recipes/speaker.yaml", [*TINY, f"data.root={corpus}", "data.train=train",
                                                           "data.dev=dev", *extra])


def test_speaker_training_on_shards(corpus, shards, tmp_path, monkeypatch):
    import speechattn.tasks.speaker as speaker
    from speechattn.tasks.speaker import SpeakerTask
    from speechattn.training.trainer import Trainer

    monkeypatch.setattr(speaker, "plot_det", lambda *a, **k: None)  # matplotlib's import alone takes a second

    recipe = _recipe(corpus, f"data.train_shards={shards}", "data.num_workers=1", "train.max_steps=2",
                     "train.max_epochs=1")
    task = SpeakerTask(recipe, progress=False)
    assert task.train_set is None and task.speakers == load_index(shards).speakers
    assert task.steps_per_epoch() == 32 // 4
    summary = Trainer(recipe.train, tmp_path / "run", progress_bar=False).fit(task)
    assert summary["steps"] == 2
    # The dev EER of the one evaluation (after the last step), recomputed from the trained
    # embedder's embeddings of the 6 dev utterances (3 speakers x 2) with the reference EER.
    task.modules.eval()
    with torch.inference_mode():
        emb = task.embed(task.dev_set.feats).double().numpy()
    scores, target = all_pair_cosine_trials(emb, [str(u.speaker) for u in task.dev_set.manifest])
    assert (int(target.sum()), int((~target).sum())) == (3, 12)
    np.testing.assert_allclose(np.sort(scores), np.sort(task.last_eval["scores"]), atol=1e-5)
    assert summary["dev"]["eer"] == pytest.approx(100.0 * reference_eer(scores, target), abs=1e-6)
    # Closed-set identification needs training embeddings, which shards do not keep.
    with pytest.raises(ValueError, match="closed-set"):
        SpeakerTask(_recipe(corpus, f"data.train_shards={shards}", "data.dev=train"), progress=False)
    with pytest.raises(ShardError, match="num_mel_bins"):
        SpeakerTask(_recipe(corpus, f"data.train_shards={shards}", "features.num_mel_bins=40"), progress=False)


def test_in_memory_batches_are_unchanged(corpus):
    """make_batch on indices gives the batches of the code before the sharded path (same seed)."""
    from speechattn.models.speaker import normalize_features
    from speechattn.tasks.speaker import SpeakerTask

    task = SpeakerTask(_recipe(corpus), progress=False)
    assert task.noise is not None and task.train_shards is None
    aug = task.recipe.augment
    gen = torch.Generator().manual_seed(task.recipe.train.seed)
    task.generator = torch.Generator().manual_seed(task.recipe.train.seed)
    for indices in ([0, 5, 9, 30], [3, 3, 17, 1]):
        # the former make_batch, step by step
        x = random_crops(task.train_set.feats, indices, task.crop_frames, gen)
        starts = torch.randint(0, task.noise.shape[0] - x.shape[1] + 1, (x.shape[0],), generator=gen)
        noise = torch.stack([task.noise[s : s + x.shape[1]] for s in starts.tolist()])
        snr = aug.snr_min + (aug.snr_max - aug.snr_min) * torch.rand(x.shape[0], generator=gen)
        apply = torch.rand(x.shape[0], generator=gen) < aug.noise_prob
        x = spec_augment(normalize_features(mix_noise(x, noise, snr, apply), None, "mean"), aug, gen)
        got, labels = task.make_batch(indices)
        assert torch.equal(got, x) and torch.equal(labels, task.labels[indices])

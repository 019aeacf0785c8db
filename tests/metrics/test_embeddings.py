"""Metrics of utterance embeddings: verification over all pairs or a trial list, AS-Norm, identification."""

from __future__ import annotations

import torch

from speechattn.metrics.embeddings import evaluate_embeddings


def test_evaluate_embeddings_on_separable_and_random_data():
    gen = torch.Generator().manual_seed(0)
    speakers = [f"s{i % 5}" for i in range(50)]
    centres = torch.randn(5, 16, generator=gen) * 5
    emb = centres[[i % 5 for i in range(50)]] + 0.1 * torch.randn(50, 16, generator=gen)
    metrics, scores, labels = evaluate_embeddings(emb, speakers, [str(i) for i in range(50)])
    assert metrics["eer"] == 0.0 and metrics["accuracy"] == 100.0
    assert labels.sum() == 5 * (10 * 9 // 2) and len(labels) == 50 * 49 // 2
    noise = torch.randn(50, 16, generator=gen)
    metrics, _, _ = evaluate_embeddings(noise, speakers, [str(i) for i in range(50)])
    assert 30.0 < metrics["eer"] < 70.0


def test_evaluate_embeddings_with_trial_list_and_cohort(tmp_path):
    ids = ["a1", "a2", "b1", "b2"]
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    trials = tmp_path / "trials.txt"
    trials.write_text("a1 a2 target\na1 b1 nontarget\nb1 b2 target\na2 b2 nontarget\nzz a1 target\n")
    cohort = torch.nn.functional.normalize(torch.randn(10, 2), dim=-1)
    metrics, scores, labels = evaluate_embeddings(emb, ["a", "a", "b", "b"], ids, trials=trials, cohort=cohort,
                                                  cohort_top_k=5)
    assert len(scores) == 4 and labels.tolist() == [True, False, True, False]
    assert metrics["eer"] == 0.0 and "eer_asnorm" in metrics

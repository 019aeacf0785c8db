"""offline_outputs: a long whole input runs as a stream of chunks and gives the forward pass's outputs."""

from __future__ import annotations

import pytest
import torch

import speechattn.inference.streaming as streaming
from speechattn.inference.streaming import offline_outputs
from speechattn.models.ctc import CTCModel
from speechattn.nn.encoder import TruncatedEncoder


def _encoder(**kw) -> TruncatedEncoder:
    torch.manual_seed(0)
    args = dict(input_dim=20, d_model=32, num_heads=4, num_layers=3, ffn_dim=64, left_context=6, right_context=2)
    return TruncatedEncoder(**{**args, **kw}).eval()


@pytest.mark.parametrize("kw", [{"subsampling": 1}, {"subsampling": 4, "conv_kernel": 5},
                                {"time_reduce_at": 1, "time_recover_at": 2}])
def test_long_inputs_run_in_chunks_with_the_forward_outputs(kw, monkeypatch):
    enc = _encoder(**kw)
    model = CTCModel(_encoder(**kw), vocab_size=7).eval()
    x = torch.randn(1, 501, 20)
    monkeypatch.setattr(streaming, "LONG_INPUT_FRAMES", 100)
    monkeypatch.setattr(streaming, "CHUNK_FRAMES", 64)
    pushed = []
    real_stream = TruncatedEncoder.stream
    monkeypatch.setattr(TruncatedEncoder, "stream", lambda self: pushed.append(1) or real_stream(self))
    with torch.no_grad():
        for m in (enc, model):
            plain, lengths = m(x)
            chunked = offline_outputs(m, x)
            assert chunked.shape == plain[:, : int(lengths[0])].shape
            assert (chunked - plain).abs().max().item() <= 1e-5
    assert len(pushed) == 2  # both went through the streaming path
    with torch.no_grad():
        short = offline_outputs(enc, x[:, :80])  # under the threshold: one forward pass
    assert len(pushed) == 2 and short.shape[1] == enc(x[:, :80])[0].shape[1]


def test_offline_outputs_takes_one_recording():
    with pytest.raises(ValueError, match=r"\(1, frames, dim\)"):
        offline_outputs(_encoder(), torch.randn(2, 50, 20))

"""``residual_init_scale``: the residual branches' output projections start scaled down."""

from __future__ import annotations

import pytest
import torch

from speechattn.nn.encoder import EncoderConfig, TruncatedEncoder


def _encoder(**kw) -> TruncatedEncoder:
    torch.manual_seed(0)
    base = dict(input_dim=20, d_model=32, num_heads=4, num_layers=2, ffn_dim=48, left_context=6, right_context=2,
                dropout=0.0, conv_kernel=3, conv_norm="batch", activation="swiglu")
    base.update(kw)
    return TruncatedEncoder(**base)


@pytest.mark.parametrize("macaron", [False, True])
def test_scales_exactly_the_branch_outputs(macaron):
    plain, scaled = _encoder(macaron=macaron), _encoder(macaron=macaron, residual_init_scale=0.25)
    branch_outputs = {"attn.out.weight", "ffn.net.3.weight", "conv.pointwise_out.weight"}
    if macaron:
        branch_outputs.add("pre_ffn.net.3.weight")
    a, b = plain.state_dict(), scaled.state_dict()
    assert a.keys() == b.keys()
    changed = set()
    for key, value in a.items():
        parts = key.split(".", 2)
        if parts[0] == "layers" and parts[2] in branch_outputs:
            torch.testing.assert_close(b[key], 0.25 * value)
            changed.add(parts[2])
        else:
            assert torch.equal(b[key], value), key
    assert changed == branch_outputs
    assert scaled.config.residual_init_scale == 0.25


def test_layer_lists_its_branch_outputs():
    layer = _encoder(conv_kernel=0).layers[0]
    assert layer.residual_outputs() == [layer.attn.out, layer.ffn.output]
    assert layer.ffn.output is layer.ffn.net[3]


def test_default_keeps_pytorch_init():
    assert EncoderConfig().residual_init_scale == 1.0
    a, b = _encoder().state_dict(), _encoder(residual_init_scale=1.0).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, float("inf"), float("nan"), True, "0.3", None])
def test_bad_scale_is_a_value_error(bad):
    with pytest.raises(ValueError, match="residual_init_scale"):
        EncoderConfig(residual_init_scale=bad)

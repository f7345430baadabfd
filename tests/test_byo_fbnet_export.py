"""The fbnet space's layer features through the real TF converter: the Keras builder (weight counts = costs), the
converter's op sequence = the fast writer's, and the channel shuffle = PyTorch's view/permute/view."""

from __future__ import annotations

import numpy as np
import pytest

from latency.tflite_ops import op_sequence
from latency.tflite_writer import write_tflite
from mnas.costs import model_cost
from mnas.spec import ModelSpec

# Every new feature once, small: stride-1 stem, k3_e1_g2 (grouped 1x1 + shuffle, E = 1 keeps its expand conv),
# k5_e1 (keeps it, no groups), a 1x1-conv skip where the shape changes (stride 2), k3_e6 with a residual.
FBNET_BLOCKS = ["r1_k3_a1.1_p1.1_s11_e1_i16_o16_keepexpand_shuffle", "r1_k5_s11_e1_i16_o16_keepexpand",
                "cn_r1_k1_s22_e1_i16_o24_noskip", "r1_k3_s11_e6_i24_o24"]


def _spec() -> ModelSpec:
    return ModelSpec.from_strings("fbnet-features", FBNET_BLOCKS, stem_filters=16, stem_stride=1, head_filters=64,
                                  scale_head=False, resolution=32, num_classes=10)


@pytest.mark.slow
def test_builder_converter_and_writer_agree(tmp_path):
    from mnas.builder import build_keras, weight_counts
    from mnas.export import export_tflite

    spec = _spec()
    cost = model_cost(spec)
    assert weight_counts(build_keras(spec)) == (cost.params, cost.buffers)
    converted = export_tflite(spec, tmp_path / "converted.tflite", use_cache=False)
    reference, written = op_sequence(converted), op_sequence(write_tflite(spec))
    for index, (want, got) in enumerate(zip(reference, written)):
        assert got == want, f"op {index} differs:\n converter {want}\n writer    {got}"
    assert len(written) == len(reference)
    names = [str(op).split("[")[0].split(" ")[0] for op in written]
    assert names.count("TRANSPOSE") == 1 and names[0] == "CONV_2D"


def test_channel_shuffle_is_pytorchs():
    """ShuffleNet's view(g, C/g) -> permute -> view, in NHWC: channel i * (C/g) + j moves to j * g + i."""
    from mnas.builder import ChannelShuffle

    x = np.arange(2 * 2 * 12, dtype=np.float32).reshape(1, 2, 2, 12)
    out = np.asarray(ChannelShuffle(2)(x))
    want = x.reshape(1, 2, 2, 2, 6).transpose(0, 1, 2, 4, 3).reshape(1, 2, 2, 12)
    assert np.array_equal(out, want) and list(out[0, 0, 0, :4]) == [0, 6, 1, 7]

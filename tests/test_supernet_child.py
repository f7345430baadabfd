"""A supernet path computes the child it names: the child built by `mnas.builder.build_keras`, given the path's
slice of the shared weights (centre of the kernel, first channels), gives the same logits.

BatchNorm: the supernet always normalises with batch statistics, so the Keras child is called with
training=True (batch statistics too). Dropout is 0 on both sides.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from mnas.builder import build_keras
from mnas.spaces.mnasnet import mixnet_space, mnasnet_space
from mnas.spaces import get as get_space
from mnas.spaces.layerwise import mobilenetv3_space
from mnas.supernet.layerwise import LayerwiseSupernet
from mnas.supernet.model import Supernet

# every op, kernel, SE, skip (pool with and without projection), width and layer-count option occurs
TINY = mnasnet_space("tiny-mnasnet", skeleton=((16, 1, 1), (24, 2, 2), (32, 2, 1)))
MIX = mixnet_space("tiny-mixnet", skeleton=((16, 1, 1), (24, 2, 2)))
# MobileNetV3's per-layer choices (expansion, kernel, SE, activation, skippable layers) on a three-stage skeleton
TINY_MBV3 = mobilenetv3_space("tiny-mobilenetv3", skeleton=((16, 1, 1), (24, 3, 2), (40, 2, 2)))


def _centre(kernel: np.ndarray, k: int) -> np.ndarray:
    big = kernel.shape[0]
    c = (big - k) // 2
    return kernel[c:c + k, c:c + k]


def _bn(layer, gamma, beta, channels: int) -> None:
    mm, mv = layer.get_weights()[2:]
    layer.set_weights([np.asarray(gamma)[:channels], np.asarray(beta)[:channels], mm, mv])


def _se(model, prefix: str, weights, channels: int, squeeze: int) -> None:
    rk, rb, ek, eb = (np.asarray(w) for w in weights)
    model.get_layer(f"{prefix}_reduce").set_weights([rk[:, :, :channels, :squeeze], rb[:squeeze]])
    model.get_layer(f"{prefix}_expand").set_weights([ek[:, :, :squeeze, :channels], eb[:channels]])


def _dw(model, prefix: str, kernel, channels: int, kernels: tuple[int, ...]) -> None:
    from mnas.spec import split_channels

    kernel = np.asarray(kernel)[:, :, :channels]
    if len(kernels) == 1:
        model.get_layer(prefix).set_weights([_centre(kernel, kernels[0])])
        return
    start = 0
    for k, n in zip(kernels, split_channels(channels, len(kernels))):
        model.get_layer(f"{prefix}_k{k}").set_weights([_centre(kernel[:, :, start:start + n], k)])
        start += n


def child_with_shared_weights(net: Supernet, sample):
    """build_keras of the path's spec (dropout 0), its weights sliced from the supernet's."""
    spec = net.space.to_spec(sample, resolution=net.resolution, num_classes=net.num_classes).replace(dropout=0.0)
    model = build_keras(spec)
    stem = net.stem_filters
    model.get_layer("stem_conv").set_weights([np.asarray(net.stem_kernel)])
    _bn(model.get_layer("stem_bn"), *net.stem_bn, stem)
    last = stem
    for layer in spec.layers():
        if layer.kind not in ("cn", "ds", "ir"):
            continue
        w = net.blocks_weights[layer.block_index][layer.repeat_index]
        p, cin, cout = f"b{layer.block_index}_{layer.repeat_index}", layer.in_channels, layer.out_channels
        if layer.kind == "cn":
            conv = _centre(np.asarray(w["conv"]), layer.kernel_size)[:, :, :cin, :cout]
            model.get_layer(f"{p}_conv").set_weights([conv])
            _bn(model.get_layer(f"{p}_conv_bn"), *w["conv_bn"], cout)
            if layer.se_channels:
                _se(model, f"{p}_se", w["conv_se"], cout, layer.se_channels)
        else:
            key = "ds" if layer.kind == "ds" else "ir"
            mid = cin if layer.kind == "ds" else layer.expanded
            if layer.kind == "ir":
                model.get_layer(f"{p}_expand").set_weights([np.asarray(w["ir_expand"])[:, :, :cin, :mid]])
                _bn(model.get_layer(f"{p}_expand_bn"), *w["ir_expand_bn"], mid)
            _dw(model, f"{p}_dw", w[f"{key}_dw"], mid, layer.kernel_sizes)
            _bn(model.get_layer(f"{p}_dw_bn"), *w[f"{key}_dw_bn"], mid)
            if layer.se_channels:
                _se(model, f"{p}_se", w[f"{key}_se"], mid, layer.se_channels)
            model.get_layer(f"{p}_project").set_weights([np.asarray(w[f"{key}_project"])[:, :, :mid, :cout]])
            _bn(model.get_layer(f"{p}_project_bn"), *w[f"{key}_project_bn"], cout)
        if layer.skip == "pool" and cin != cout:
            model.get_layer(f"{p}_skip_conv").set_weights([np.asarray(w["skip_conv"])[:, :, :cin, :cout]])
            _bn(model.get_layer(f"{p}_skip_bn"), *w["skip_bn"], cout)
        last = cout
    model.get_layer("head_conv").set_weights([np.asarray(net.head_kernel)[:, :, :last, :]])
    _bn(model.get_layer("head_bn"), *net.head_bn, net.head_filters)
    model.get_layer("classifier").set_weights([np.asarray(net.classifier_kernel), np.asarray(net.classifier_bias)])
    return model


def _kept_plans(net: LayerwiseSupernet, sample) -> list:
    """The layer positions the path runs, in order (what `spec.layers()` lists as its MBConv layers)."""
    kept = []
    for plan in net.layer_plans:
        rule = plan.kept_by
        if rule[0] == "always" or (rule[0] == "depth" and rule[2][sample[rule[1]]] > plan.index) or \
                (rule[0] == "skip" and sample[rule[1]] == 0):
            kept.append(plan)
    return kept


def layerwise_child_with_shared_weights(net: LayerwiseSupernet, sample):
    """build_keras of a layer-wise path's spec (dropout 0), its weights sliced from the supernet's."""
    spec = net.space.to_spec(sample, resolution=net.resolution, num_classes=net.num_classes).replace(dropout=0.0)
    model = build_keras(spec)
    model.get_layer("stem_conv").set_weights([np.asarray(net.stem_kernel)])
    _bn(model.get_layer("stem_bn"), *net.stem_bn, net.stem_filters)
    layers = [layer for layer in spec.layers() if layer.kind == "ir"]
    plans = _kept_plans(net, sample)
    assert len(layers) == len(plans)
    for layer, plan in zip(layers, plans):
        w = net.layers_weights[net.layer_plans.index(plan)]
        p, cin, mid = f"b{layer.block_index}_{layer.repeat_index}", layer.in_channels, layer.expanded
        assert (cin, layer.out_channels) == (plan.cin, plan.cout)
        if layer.has_expand:
            model.get_layer(f"{p}_expand").set_weights([np.asarray(w["expand"])[:, :, :cin, :mid]])
            _bn(model.get_layer(f"{p}_expand_bn"), *w["expand_bn"], mid)
        _dw(model, f"{p}_dw", w["dw"], mid, layer.kernel_sizes)
        _bn(model.get_layer(f"{p}_dw_bn"), *w["dw_bn"], mid)
        if layer.se_channels:
            _se(model, f"{p}_se", w["se"], mid, layer.se_channels)
        model.get_layer(f"{p}_project").set_weights([np.asarray(w["project"])[:, :, :mid, :]])
        _bn(model.get_layer(f"{p}_project_bn"), *w["project_bn"], layer.out_channels)
    model.get_layer("head_conv").set_weights([np.asarray(net.head_kernel)])
    _bn(model.get_layer("head_bn"), *net.head_bn, net.head_filters)
    model.get_layer("final_conv").set_weights([np.asarray(net.final_kernel), np.asarray(net.final_bias)])
    model.get_layer("classifier").set_weights([np.asarray(net.classifier_kernel), np.asarray(net.classifier_bias)])
    return model


def _randomise(net: Supernet, seed: int) -> None:
    """Non-trivial BN and classifier parameters (they start at 1 / 0), so every weight shows in the logits."""
    rng = np.random.default_rng(seed)
    for var in net.trainable_variables:
        name = var.name.split("/")[-1].split(":")[0]
        if name.endswith(("_gamma", "_beta", "_bias")) or name.startswith("classifier"):
            base = 1.0 if name.endswith("_gamma") else 0.0
            var.assign((base + 0.3 * rng.normal(size=var.shape)).astype("float32"))


@pytest.mark.parametrize("space", [TINY, MIX], ids=["mnasnet", "mixnet"])
def test_paths_compute_the_child_they_name(space):
    net = Supernet(space, num_classes=10, resolution=32, seed=1)
    _randomise(net, 2)
    x = tf.random.normal([8, 32, 32, 3], seed=3)
    rng = np.random.default_rng(4)
    forward = tf.function(lambda images, path: net(images, path))
    tags = [c.tag for c in space.choices]
    samples = [space.sample_random(rng) for _ in range(6)]
    for i, op in enumerate(("conv", "dsconv", "mbconv3", "mbconv6")):  # every op, with a pool skip, in b1
        sample = list(samples[i % len(samples)])
        sample[tags.index("b1/op")] = space.choices[tags.index("b1/op")].options.index(op)
        sample[tags.index("b1/skip")] = space.choices[tags.index("b1/skip")].options.index("pool")
        samples.append(sample)
    for sample in samples:
        child = child_with_shared_weights(net, sample)
        want = child(x, training=True).numpy()
        got = forward(x, tf.constant(sample, tf.int32)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3, err_msg=space.encode_sample(sample))


@pytest.mark.parametrize("space", [TINY_MBV3, get_space("ofa-mbv3")], ids=["mobilenetv3", "ofa-mbv3"])
def test_layerwise_paths_compute_the_child_they_name(space):
    """ofa-mbv3 in full (its fixed first block, elastic depth, every kernel / expansion); mobilenetv3's choices
    (SE, h-swish, skipped layers) on a small skeleton."""
    net = LayerwiseSupernet(space, num_classes=10, resolution=32, seed=1)
    _randomise(net, 2)
    x = tf.random.normal([8, 32, 32, 3], seed=3)
    rng = np.random.default_rng(5)
    forward = tf.function(lambda images, path: net(images, path))
    samples = [space.sample_random(rng) for _ in range(5)]
    samples += [tuple(len(c.options) - 1 for c in space.choices), tuple(0 for _ in space.choices)]  # extremes
    for sample in samples:
        child = layerwise_child_with_shared_weights(net, sample)
        want = child(x, training=True).numpy()
        got = forward(x, tf.constant(sample, tf.int32)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3, err_msg=space.encode_sample(sample))

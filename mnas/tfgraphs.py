"""TF graph lifetime: what keeps a traced graph alive after its model is gone, and how to let it go."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def forget_custom_gradients():
    """Drop the gradient functions that tracing registered in TF's global gradient registry meanwhile.

    Every `tf.custom_gradient` called in a traced function registers a new "CustomGradient-<n>" whose closure
    holds that function's graph, and nothing ever removes it. Keras' optimizer sums gradients with one (the
    replica context's `all_reduce`) and `tf.nn.silu` (swish) is one, so every stand-alone child's training
    graph (~12k ops) and every converted swish model's graph stayed alive. The garbage collection in
    `clear_session` then got slower child after child: 7 -> 18 s per child over 70 children in one process,
    ~3.5 GB after 30. Those graphs are never differentiated again. Another thread tracing meanwhile loses its
    entries too; nothing here differentiates a graph traced in another thread.
    """
    registry = _registry()
    if registry is None:
        yield
        return
    before = custom_gradient_names()
    try:
        yield
    finally:
        for name in custom_gradient_names() - before:
            del registry[name]


def custom_gradient_names() -> set[str]:
    """The custom gradients registered in TF's global gradient registry now (empty if it cannot be read)."""
    registry = _registry()
    return set() if registry is None else {name for name in registry if name.startswith("CustomGradient-")}


def _registry() -> dict | None:
    try:
        from tensorflow.python.framework import ops

        return ops._gradient_registry._registry  # private: without it, nothing to forget
    except (ImportError, AttributeError):
        return None


@contextlib.contextmanager
def grappler_off(enabled: bool = True):
    """Grappler's graph optimisations off for the TF functions first called inside (restored after, so other TF
    functions of the process keep their setting). Every child of a search is a new graph run for a few hundred
    steps: optimising it cost more than it saved. Stand-alone child, mnasnet-a1 at 32 px, one epoch on 4,000
    images: first step 44-49 s -> 19-23 s and the whole epoch 70-76 s -> 38-45 s (a loaded machine); the
    supernet's first call halved too (its 24 switch_case gradients). `enabled=False`: leave grappler on."""
    if not enabled:
        yield
        return
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})

"""Benchmark: training the embedding family's two classifiers, the old way and this round's, in the same run.

Usage::

    python benchmarks/bench_classifiers.py [--patches 4096] [--rows 32768] [--epochs 2] [--repeat 2]

1. The spectrogram CNN (`common.models.spec_classifier`, the ``spectrogram`` section's settings: 32 x 64 patches,
   8 filters, batch 32, mixup 0.5; 8 classes): before, `layers.Conv2D` and `layers.MaxPooling2D` trained by Keras'
   ``fit`` one epoch at a time; then the new layers (`ColumnConv2D`: the convolution as one matrix product over the
   stacked shifts; `MaxPool2`: a maximum over a reshape) still under Keras' ``fit``; after, the new layers in
   `common.models.compiled_fit.fit_classifier` (`CHUNK_STEPS` steps per compiled call). Then embedding the same
   patches (`embed_patches`, what a clip's embedding and a source bank run): before, the old layers called directly
   256 patches at a time (op by op on JAX); after, the new layers as one compiled program, 32 at a time.
   Then this round (hand-written gradients): the compiled loop with the last round's `ColumnConv2D` and `MaxPool2`
   (autodiff of the stacked shifts' matrix product and of a maximum over a reshape) against today's (`shift_conv`:
   broadcast multiply-adds for the first convolution, the gradients by hand; `max_pool_2x2`: a select per corner),
   alternating, each fit timed after a compile of its own; prints the best of each, the ratio and the weights' drift.
2. The dense machine-ID classifier (`common.models.classifier`, the ``embedding`` section's settings: window
   statistics of 128 values, hidden 128-128, embedding 32, ArcFace, batch 128, mixup 0.5; 8 classes): Keras' ``fit``
   against `fit_classifier`.

Each fit is timed after a first one of the same shapes (its compile is printed apart). Prints samples per second,
the speed-ups, and the largest weight difference of the compiled loop to Keras' ``fit`` of the same layers (float32
round-off) and of the new layers to the old after the same fit (round-off grown by training: the CNN's results move).
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager

import numpy as np

from _bench import load_line, machine_line


def last_round_layers():
    """(ColumnConv2D, MaxPool2) as they were before the hand-written gradients: autodiff of the im2col product and of
    a maximum over a reshape (same weights, same values)."""
    import keras

    from common.models import spec_classifier as S

    class ColumnConv2D(S.ColumnConv2D):
        def convolution_op(self, inputs, kernel, training=False):
            kh, kw, c_in, c_out = (int(k) for k in kernel.shape)
            h, w = inputs.shape[1], inputs.shape[2]
            inputs = keras.ops.pad(inputs, [[0, 0], [(kh - 1) // 2, kh // 2], [(kw - 1) // 2, kw // 2], [0, 0]])
            shifts = keras.ops.concatenate([inputs[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)], -1)
            return keras.ops.matmul(shifts, keras.ops.reshape(kernel, (kh * kw * c_in, c_out)))

    class MaxPool2(S.MaxPool2):
        def call(self, inputs, training=None):
            h, w, c = inputs.shape[1], inputs.shape[2], inputs.shape[3]
            return keras.ops.max(keras.ops.reshape(inputs, (-1, h // 2, 2, w // 2, 2, c)), axis=(2, 4))
    return ColumnConv2D, MaxPool2


@contextmanager
def variant(*, old_layers: bool, keras_fit: bool, old_embed: bool = False, last_round: bool = False):
    """The CNN's layers and the training loop as they were before (each one on request): `old_layers` Keras' own,
    `last_round` the last round's (`last_round_layers`)."""
    import keras

    from common.models import classifier, compiled_fit, spec_classifier as S

    saved = S.ColumnConv2D, S.MaxPool2, compiled_fit.classifier_supported, S._embed_call, S.PREDICT_BATCH
    if last_round:
        S.ColumnConv2D, S.MaxPool2 = last_round_layers()
    if old_layers:
        S.ColumnConv2D = keras.layers.Conv2D
        S.MaxPool2 = lambda name: keras.layers.MaxPooling2D(2, padding="same", name=name)
    if keras_fit:
        compiled_fit.classifier_supported = lambda model, whole_batches: False
    if old_embed:  # the embedder called directly (op by op on JAX), 256 patches a call
        S._embed_call, S.PREDICT_BATCH = (lambda compiled: lambda x: compiled.embedder(x, training=False)), 256
    S._COMPILED.clear(), classifier._COMPILED.clear()
    try:
        yield
    finally:
        S.ColumnConv2D, S.MaxPool2, compiled_fit.classifier_supported, S._embed_call, S.PREDICT_BATCH = saved
        S._COMPILED.clear(), classifier._COMPILED.clear()


def timed(train, n_samples: int, repeat: int):
    """(compile seconds, best samples/s, the last fit's weights) of `train()` after a first call."""
    start = time.perf_counter()
    train()
    first = time.perf_counter() - start
    best, fit = 0.0, None
    for _ in range(repeat):
        start = time.perf_counter()
        fit = train()
        best = max(best, n_samples / (time.perf_counter() - start))
    return first - n_samples / best, best, fit.weights


def _diff(a, b) -> float:
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patches", type=int, default=4096, help="CNN training patches (default: 4096)")
    parser.add_argument("--rows", type=int, default=32768, help="dense classifier training rows (default: 32768)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each fit (default: 2)")
    parser.add_argument("--repeat", type=int, default=2, help="timed fits; the fastest counts (default: 2)")
    args = parser.parse_args(argv)
    from common.models import classifier as E, spec_classifier as S

    print(machine_line())
    print(f"load average {load_line()}")
    rng, n_classes = np.random.default_rng(0), 8
    labels = rng.integers(0, n_classes, max(args.patches, args.rows))
    patches = (rng.normal(size=(args.patches, 32, 64)) + labels[:args.patches, None, None]).astype(np.float32)
    arch = S.spec_architecture(64, n_classes, input_dim=320, patch_frames=32, channels=8, embedding_dim=32,
                               sub_clusters=4, scale=16.0)
    fit = lambda: S.train_spec_classifier(arch, patches, labels[:args.patches], epochs=args.epochs,  # noqa: E731
                                          batch_size=32, learning_rate=1e-3, mixup=0.5, seed=0)
    n = args.patches * args.epochs
    print(f"1. spectrogram CNN, {args.patches} patches x {args.epochs} epochs")
    runs = {}
    for name, kw in (("old layers, Keras fit", dict(old_layers=True, keras_fit=True)),
                     ("new layers, Keras fit", dict(old_layers=False, keras_fit=True)),
                     ("new layers, compiled loop", dict(old_layers=False, keras_fit=False))):
        with variant(**kw):
            runs[name] = timed(fit, n, args.repeat)
        print(f"  {name:26s} {runs[name][1]:8,.0f} samples/s (compile and first call {runs[name][0]:5.1f} s)")
    (_, old, w_old), (_, mid, w_mid), (_, new, w_new) = runs.values()
    print(f"  speed-up {new / old:.2f}x (layers {mid / old:.2f}x, loop {new / mid:.2f}x); weights: loop vs Keras fit "
          f"{_diff(w_new, w_mid):.1e}, new layers vs old {_diff(w_new, w_old):.1e}")
    print("   this round: the compiled loop, the last round's layers (autodiff) against hand-written gradients")
    rounds = {"last round's layers": dict(last_round=True), "hand-written gradients": dict()}
    best, last = {name: 0.0 for name in rounds}, {}
    for _ in range(args.repeat):  # alternating: a neighbour's load falls on both alike
        for name, kw in rounds.items():
            with variant(old_layers=False, keras_fit=False, **kw):
                _, rate, last[name] = timed(fit, n, 1)
            best[name] = max(best[name], rate)
    for name in rounds:
        print(f"  {name:26s} {best[name]:8,.0f} samples/s ({32e3 / best[name]:.2f} ms per step of 32)")
    (b_old, b_new), (w_a, w_b) = best.values(), last.values()
    print(f"  speed-up {b_new / b_old:.2f}x; weights differ by {_diff(w_a, w_b):.1e} (round-off grown by training)")
    print(f"   embedding the {args.patches} patches (as a clip's are embedded)")
    weights = S.initial_weights(arch, patches, seed=0)
    embeds = {}
    for name, kw in (("old layers, direct call x 256", dict(old_layers=True, keras_fit=True, old_embed=True)),
                     ("new layers, compiled x 32", dict(old_layers=False, keras_fit=False))):
        with variant(**kw):
            embeds[name] = timed(lambda: S.SpecFit(S.embed_patches(arch, weights, patches), {}, 0.0), args.patches,
                                 args.repeat)
        print(f"  {name:30s} {embeds[name][1]:8,.0f} patches/s (first call {embeds[name][0]:5.1f} s)")
    (_, e_old, v_old), (_, e_new, v_new) = embeds.values()
    print(f"  speed-up {e_new / e_old:.2f}x; embeddings differ by {float(np.max(np.abs(v_old - v_new))):.1e} "
          f"(largest {float(np.max(np.abs(v_old))):.1f})")
    x = (rng.normal(size=(args.rows, 128)) + labels[:args.rows, None]).astype(np.float32)
    darch = E.classifier_architecture(128, n_classes, hidden=[128, 128], embedding_dim=32, head="arcface",
                                      scale=16.0, margin=0.3)
    dfit = lambda: E.train_classifier(darch, None, x, labels[:args.rows], epochs=args.epochs,  # noqa: E731
                                      batch_size=128, learning_rate=1e-3, mixup=0.5, seed=0)
    print(f"2. dense classifier, {args.rows} rows x {args.epochs} epochs")
    with variant(old_layers=False, keras_fit=True):
        _, before, w_before = timed(dfit, args.rows * args.epochs, args.repeat)
    with variant(old_layers=False, keras_fit=False):
        _, after, w_after = timed(dfit, args.rows * args.epochs, args.repeat)
    print(f"  Keras fit {before:9,.0f} samples/s, compiled loop {after:9,.0f}: {after / before:.2f}x; weights differ "
          f"by {_diff(w_before, w_after):.1e}")
    print(f"load average {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

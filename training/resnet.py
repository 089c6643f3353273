"""A small 1D ResNet with global pooling: the issue's architecture lever, beside the compact CNN.

The compact CNN (:mod:`training.compact`) flattens its last feature map, so its dense layer reads
each feature at a fixed r: a peak pattern learnt at one lattice size must be learnt again at
another. This network stacks residual blocks until one position sees about 11 Å of the curve,
then pools over r (average and maximum), so a pattern of distances is recognised wherever it
sits. Read top to bottom:

    input (npoints, 1)
    -> BatchNormalization
    -> Conv1D(32, 9) -> BatchNormalization -> ReLU                   npoints positions
    -> ResidualBlock(32, 5)  -> MaxPooling1D(2)                       npoints/2
    -> ResidualBlock(64, 5)  -> MaxPooling1D(2)                       npoints/4
    -> ResidualBlock(128, 3) -> MaxPooling1D(2)                       npoints/8
    -> ResidualBlock(128, 3)
    -> [GlobalAveragePooling1D, GlobalMaxPooling1D] concatenated     256 features
    -> Dropout -> Dense(256, relu) -> Dropout -> Dense(classes, softmax)   (training.compact.classifier_head)

    ResidualBlock(f, k): x -> Conv1D(f, k) -> BN -> ReLU -> Conv1D(f, k) -> BN -> (+ shortcut) -> ReLU,
    the shortcut a Conv1D(f, 1) + BN where the channel count changes, else x itself.

Every convolution is ``padding="same"`` without bias (a BatchNormalization follows); L2 1e-5 on
every kernel, as in the compact network. ``dropout`` and ``width`` mean what they mean there
(``sgmine-train fit --dropout/--width``). About 12 M multiply-adds per curve in its convolutions
at width 1 on the default 209-point grid (the compact network: about 6 M in all), with 0.30 M
parameters (0.96 M).
"""

from __future__ import annotations

from training.cnn import BN_EPSILON, BN_MOMENTUM, DROPOUT, L2, NPOINTS
from training.compact import check_options, classifier_head

#: (filters, kernel size) of the residual blocks; each but the last is followed by pooling.
BLOCKS: tuple[tuple[int, int], ...] = ((32, 5), (64, 5), (128, 3), (128, 3))
#: (filters, kernel size) of the first convolution.
STEM = (32, 9)


def build_model(num_classes: int, npoints: int = NPOINTS, *, dropout: float = DROPOUT, width: int = 1):
    """Return the (uncompiled) 1D ResNet for ``num_classes`` groups on ``npoints`` points, with
    ``dropout`` before each dense layer and ``width`` times the filters and dense units."""
    import keras
    from keras import layers, regularizers

    check_options(num_classes, dropout=dropout, width=width)

    def batch_norm() -> layers.Layer:
        return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)

    def conv(filters: int, kernel: int) -> layers.Layer:
        return layers.Conv1D(filters, kernel, padding="same", use_bias=False, kernel_regularizer=regularizers.l2(L2))

    def residual_block(x, filters: int, kernel: int):
        shortcut = x
        if x.shape[-1] != filters:
            shortcut = batch_norm()(conv(filters, 1)(x))
        y = layers.ReLU()(batch_norm()(conv(filters, kernel)(x)))
        y = batch_norm()(conv(filters, kernel)(y))
        return layers.ReLU()(layers.Add()([y, shortcut]))

    inputs = keras.Input(shape=(npoints, 1), name="pdf")
    x = batch_norm()(inputs)
    x = layers.ReLU()(batch_norm()(conv(STEM[0] * width, STEM[1])(x)))
    for i, (filters, kernel) in enumerate(BLOCKS):
        x = residual_block(x, filters * width, kernel)
        if i < len(BLOCKS) - 1:
            x = layers.MaxPooling1D(2)(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling1D()(x), layers.GlobalMaxPooling1D()(x)])
    return keras.Model(inputs, classifier_head(x, num_classes, dropout=dropout, width=width), name="sgmine_resnet")

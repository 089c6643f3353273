"""A compact 1D CNN for space groups from PDFs: a deeper, narrower alternative to the reference.

The reference CNN (:mod:`training.cnn`) spends ~110 M multiply-adds per curve in one wide
convolution over the full-resolution curve and trains at ~190 curves/s on two CPU cores, which
limits how many distinct structures it can see. This network downsamples in stages, so each
layer sees a wider stretch of r at a coarser step, and costs ~6 M multiply-adds per curve
(training runs an order of magnitude faster, and scoring is faster too). Read top to bottom:

    input (npoints, 1)
    -> BatchNormalization
    -> [Conv1D(32, 9) -> BatchNormalization -> MaxPooling1D(2)]     npoints/2 positions
    -> [Conv1D(64, 7) -> BatchNormalization -> MaxPooling1D(2)]     npoints/4
    -> [Conv1D(128, 5) -> BatchNormalization -> MaxPooling1D(2)]    npoints/8
    -> Conv1D(128, 3) -> BatchNormalization
    -> Flatten -> Dropout(0.5) -> Dense(256, relu) -> Dropout(0.5) -> Dense(classes, softmax)

Every convolution is ``padding="same"`` with a ReLU; L2 1e-5 on every kernel as in the
reference. Both dropout rates are the reference's 0.5 unless ``dropout`` says otherwise
(``sgmine-train fit --dropout``: a network that underfits, as over 45 groups, trains better
with less). ``width`` multiplies every filter count and the dense layer (``sgmine-train fit
--width``): width 2 has about 4x the multiply-adds (23 M per curve) and trains 2.5x slower; over
the 45 groups it overfits and ends within 0.012 of width 1 (docs/model/sg45/README.md). The
flatten keeps where along r a feature was found (a PDF peak's position is a distance, so the
network is deliberately not translation invariant).
"""

from __future__ import annotations

from training.cnn import BN_EPSILON, BN_MOMENTUM, DROPOUT, L2, NPOINTS

#: (filters, kernel size) of the convolution stages; each but the last is followed by pooling.
STAGES: tuple[tuple[int, int], ...] = ((32, 9), (64, 7), (128, 5), (128, 3))
HIDDEN = 256


def check_options(num_classes: int, *, dropout: float, width: int) -> None:
    """``ValueError`` unless there are two classes or more, ``0 <= dropout < 1`` and ``width >= 1``
    (the settings of this network and of :mod:`training.resnet`)."""
    if num_classes < 2:
        raise ValueError(f"the CNN needs at least 2 classes, got {num_classes}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")


def classifier_head(x, num_classes: int, *, dropout: float, width: int):
    """Dropout -> Dense(HIDDEN * width, relu) -> Dropout -> Dense(num_classes, softmax) on the
    features ``x``: the end of this network and of :mod:`training.resnet`."""
    from keras import layers, regularizers

    x = layers.Dropout(dropout)(x)
    x = layers.Dense(HIDDEN * width, activation="relu", kernel_regularizer=regularizers.l2(L2))(x)
    x = layers.Dropout(dropout)(x)
    return layers.Dense(
        num_classes, activation="softmax", kernel_regularizer=regularizers.l2(L2), name="probabilities"
    )(x)


def build_model(num_classes: int, npoints: int = NPOINTS, *, dropout: float = DROPOUT, width: int = 1):
    """Return the (uncompiled) compact Keras model for ``num_classes`` groups on ``npoints`` points,
    with ``dropout`` before each dense layer and ``width`` times the filters and dense units."""
    import keras
    from keras import layers, regularizers

    check_options(num_classes, dropout=dropout, width=width)

    def batch_norm() -> layers.Layer:
        return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)

    inputs = keras.Input(shape=(npoints, 1), name="pdf")
    x = batch_norm()(inputs)
    for i, (filters, kernel) in enumerate(STAGES):
        x = layers.Conv1D(filters * width, kernel, padding="same", activation="relu", kernel_regularizer=regularizers.l2(L2))(x)
        x = batch_norm()(x)
        if i < len(STAGES) - 1:
            x = layers.MaxPooling1D(2)(x)
    x = layers.Flatten()(x)
    return keras.Model(inputs, classifier_head(x, num_classes, dropout=dropout, width=width), name="sgmine_compact_cnn")

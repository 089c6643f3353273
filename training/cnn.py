"""The space-group CNN of Liu et al. (2019), exactly as the reference describes it.

Read top to bottom like a Keras example:

    input (209, 1)
    -> BatchNormalization(epsilon=1e-6, momentum=0.9)
    -> Conv1D(256, 32, padding="same", relu, L2 1e-5) -> BatchNormalization
    -> Conv1D(64, 32, padding="same", relu, L2 1e-5)  -> BatchNormalization
    -> MaxPooling1D() -> Dropout(0.5) -> Flatten
    -> Dense(128, relu, L2 1e-5) -> BatchNormalization -> Dropout(0.5)
    -> Dense(num_classes, softmax, L2 1e-5)

The three inner BatchNormalization layers use the same epsilon and momentum as the first one
(the reference sets them once for the input normalisation; we keep them uniform).
"""

from __future__ import annotations

from sgmine.grid import Grid

#: r-points of the model's input: the grid convention's (:class:`sgmine.grid.Grid`).
NPOINTS = Grid().npoints
L2 = 1e-5
BN_EPSILON = 1e-6
BN_MOMENTUM = 0.9
DROPOUT = 0.5


def build_model(num_classes: int, npoints: int = NPOINTS):
    """Return the (uncompiled) Keras model for ``num_classes`` space groups on ``npoints`` r-points."""
    import keras
    from keras import layers, regularizers

    if num_classes < 2:
        raise ValueError(f"the CNN needs at least 2 classes, got {num_classes}")

    def batch_norm() -> layers.Layer:
        return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)

    inputs = keras.Input(shape=(npoints, 1), name="pdf")

    x = batch_norm()(inputs)
    x = layers.Conv1D(256, 32, padding="same", activation="relu", kernel_regularizer=regularizers.l2(L2))(x)
    x = batch_norm()(x)
    x = layers.Conv1D(64, 32, padding="same", activation="relu", kernel_regularizer=regularizers.l2(L2))(x)
    x = batch_norm()(x)
    x = layers.MaxPooling1D()(x)
    x = layers.Dropout(DROPOUT)(x)
    x = layers.Flatten()(x)

    x = layers.Dense(128, activation="relu", kernel_regularizer=regularizers.l2(L2))(x)
    x = batch_norm()(x)
    x = layers.Dropout(DROPOUT)(x)
    outputs = layers.Dense(
        num_classes, activation="softmax", kernel_regularizer=regularizers.l2(L2), name="probabilities"
    )(x)

    return keras.Model(inputs, outputs, name="sgmine_cnn")


def compile_model(model, learning_rate: float = 5e-4, steps_per_execution: int = 1):
    """Compile with Adam, categorical cross-entropy, accuracy and top-2 accuracy (as the reference).

    ``steps_per_execution`` > 1 runs that many mini-batches per compiled call (the same updates,
    less per-step overhead on a GPU).
    """
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy", keras.metrics.TopKCategoricalAccuracy(k=2, name="top2_accuracy")],
        steps_per_execution=steps_per_execution,
    )
    return model

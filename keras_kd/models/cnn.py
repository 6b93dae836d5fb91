"""A plain convolutional network that outputs logits."""

from keras_kd.backend import keras


def build_cnn(
    input_shape,
    num_classes,
    filters=(32, 64),
    dense_units=128,
    dropout=0.0,
    batch_norm=False,
    name="cnn",
):
    """Conv3x3+ReLU (+BatchNorm) and 2x2 max-pooling per entry of `filters`, a dense layer, logits."""
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = inputs
    for index, count in enumerate(filters):
        x = keras.layers.Conv2D(count, 3, padding="same", name=f"conv_{index}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn_{index}")(x)
        x = keras.layers.ReLU(name=f"relu_{index}")(x)
        if x.shape[1] >= 2 and x.shape[2] >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{index}")(x)
    x = keras.layers.Flatten()(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout_features")(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, activation="relu", name="dense")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout_dense")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)

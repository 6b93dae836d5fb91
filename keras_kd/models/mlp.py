"""A multilayer perceptron that outputs logits."""

from keras_kd.backend import keras


def build_mlp(input_shape, num_classes, hidden_units=(128,), dropout=0.0, name="mlp"):
    """Flatten, then Dense+ReLU (+Dropout) per entry of `hidden_units`, then a logits layer."""
    inputs = keras.Input(shape=tuple(input_shape), name="inputs")
    x = keras.layers.Flatten()(inputs)
    for index, units in enumerate(hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{index}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"dropout_{index}")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=name)

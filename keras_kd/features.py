"""`FeatureDistillation`: one feature-based loss term between a teacher layer and a student layer."""

from keras_kd import losses as kd_losses
from keras_kd.backend import is_graph_model, keras, ops
from keras_kd.losses.base import reduce_values

ADAPTER_KINDS = ("auto", "dense", "conv", None)


class FeatureDistillation(keras.layers.Layer):
    """A loss between the outputs of a named teacher layer and a named student layer.

    A Keras layer that owns what the term trains: `build(student_shape, teacher_shape)`
    creates its adapter (or CRD's head of embeddings and memory), so the Distiller tracks,
    trains and saves it with the term and calls every term the same way.

    Args:
        loss: a feature loss (`"fitnets"`, `"attention_transfer"`, `"rkd"`, `"pkt"`, an
            instance, or a spec dict such as `{"name": "rkd", "angle_weight": 0}`).
        teacher_layer: name of the teacher's layer whose output is the target.
        student_layer: name of the student's layer to match.
        weight: weight of this term in the total loss.
        adapter: `"auto"` (a 1x1 convolution or a dense layer when the loss needs equal
            shapes and they differ), `"dense"`, `"conv"`, or `None` (never). Adapters are
            trained with the student and are not part of `distiller.student`.
        name: the term's name; its loss is logged as `<name>_loss`.
    """

    def __init__(self, loss, teacher_layer, student_layer, weight=1.0, adapter="auto", name=None, **kwargs):
        loss = kd_losses.get(loss)
        if not isinstance(loss, kd_losses.FeatureLoss):
            raise ValueError(
                f"FeatureDistillation needs a feature loss (fitnets, attention_transfer, rkd, pkt); "
                f"received {type(loss).__name__}. Response losses go in `distillation_loss_fn`."
            )
        if adapter not in ADAPTER_KINDS:
            raise ValueError(f"`adapter` must be one of {ADAPTER_KINDS}; received {adapter!r}.")
        super().__init__(name=name or f"{loss.name.replace('_loss', '')}_{student_layer}", **kwargs)
        self.loss = loss
        self.teacher_layer = teacher_layer
        self.student_layer = student_layer
        self.weight = float(weight)
        self.adapter = adapter
        self.adapter_layer = None

    @classmethod
    def coerce(cls, term):
        """A term from a `FeatureDistillation` or its keyword arguments as a dict."""
        if isinstance(term, cls):
            return term
        if isinstance(term, dict):
            return cls(**term)
        raise TypeError(f"`features` takes FeatureDistillation terms or dicts; received {term!r}.")

    def build(self, student_shape, teacher_shape):
        """Create the adapter that maps the student's features onto the teacher's (identity when
        none is needed), or CRD's head."""
        if hasattr(self.loss, "build_head"):  # CRD: embeddings and memory banks
            self.adapter_layer = self.loss.build_head(student_shape, teacher_shape, f"{self.name}_head")
        else:
            self.adapter_layer = build_adapter(self, student_shape, teacher_shape) or keras.layers.Identity(
                name=f"{self.name}_id"
            )
        self.built = True

    def call(self, teacher_features, student_features, indices=None, sample_weight=None, training=None):
        """This term's loss on one batch (the Distiller calls it directly: the features keep their dtypes)."""
        if getattr(self.loss, "needs_indices", False):
            if indices is None:
                if training:
                    raise ValueError(
                        f"Feature term {self.name!r} ({type(self.loss).__name__}) keeps one memory row per "
                        "training example: pass the inputs as keras_kd.with_indices(x)."
                    )
                return ops.zeros(())  # no memory rows to compare with: nothing to report
            return self.adapter_layer(teacher_features, student_features, indices, training=training)
        student_features = self.adapter_layer(student_features)
        if not self.loss.per_sample:
            return self.loss(teacher_features, student_features)
        if _per_token(teacher_features, sample_weight):
            # Sequence features `(batch, time, ...)` with a weight per token: one value per token,
            # averaged over the real tokens as the token-level losses are.
            batch_and_time = ops.shape(sample_weight)
            values = self.loss.compute(
                *(ops.reshape(f, (-1, *f.shape[2:])) for f in (teacher_features, student_features))
            )
            return reduce_values(ops.reshape(values, batch_and_time), sample_weight, self.loss.kd_reduction)
        if sample_weight is not None and len(sample_weight.shape) == 2:  # other features of a sequence model
            sample_weight = ops.max(sample_weight, axis=1)  # each sequence with a real token counts
        return self.loss(teacher_features, student_features, sample_weight=sample_weight)

    def get_config(self):
        return {
            "loss": kd_losses.serialize(self.loss),
            "teacher_layer": self.teacher_layer,
            "student_layer": self.student_layer,
            "weight": self.weight,
            "adapter": self.adapter,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = kd_losses.deserialize(config["loss"])
        return cls(**config)


def _per_token(features, sample_weight):
    """True for features `(batch, time, ...)` and a weight `(batch, time)` of the same time steps
    (a time axis of unknown length is taken to be the tokens')."""
    if sample_weight is None or len(sample_weight.shape) != 2 or len(features.shape) < 3:
        return False
    return None in (features.shape[1], sample_weight.shape[1]) or features.shape[1] == sample_weight.shape[1]


def feature_extractors(teacher, student, terms):
    """`(teacher features model, student features model)`, or `(None, None)` without terms; each
    term is built for its layers' shapes.

    Each features model returns `[logits] + [each term's layer output]`.
    """
    if not terms:
        return None, None
    teacher_features = feature_model(teacher, [t.teacher_layer for t in terms], "teacher")
    teacher_features.trainable = False
    student_features = feature_model(student, [t.student_layer for t in terms], "student")
    for term, teacher_out, student_out in zip(terms, teacher_features.outputs[1:], student_features.outputs[1:]):
        term.build(student_out.shape, teacher_out.shape)
    return teacher_features, student_features


def feature_model(model, layer_names, argument):
    """A model with the same inputs returning `[model output] + [each named layer's output]`.

    Raises:
        TypeError: `model` is subclassed, so its layers' outputs cannot be reached.
        ValueError: a layer name that does not exist; the message lists the model's layers.
    """
    if not is_graph_model(model):
        raise TypeError(
            f"`{argument}` is a subclassed model ({type(model).__name__}): its intermediate "
            "outputs cannot be read by name. Build it as a functional or Sequential model, or "
            "return the features from `call` and use a response loss."
        )
    names = [layer.name for layer in model.layers]
    outputs = [model.outputs[0]]
    for layer_name in layer_names:
        if layer_name not in names:
            raise ValueError(f"`{argument}` has no layer named {layer_name!r}; its layers are: {', '.join(names)}.")
        layer_output = model.get_layer(layer_name).output
        if isinstance(layer_output, (list, tuple)):
            raise ValueError(f"Layer {layer_name!r} of `{argument}` has several outputs; pick a layer with one.")
        outputs.append(layer_output)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, outputs, name=f"{model.name}_features")


def build_adapter(term, student_shape, teacher_shape):
    """The adapter that maps the student's feature shape onto the teacher's, or None.

    Raises:
        ValueError: shapes that neither a dense layer nor a 1x1 convolution can reconcile.
    """
    student_shape, teacher_shape = tuple(student_shape[1:]), tuple(teacher_shape[1:])
    if term.adapter is None or (
        term.adapter == "auto" and (student_shape == teacher_shape or not term.loss.needs_same_shape)
    ):
        return None
    kind = term.adapter
    if kind == "auto":
        kind = "conv" if len(student_shape) == 3 else "dense"
    if kind == "conv":
        if len(student_shape) != 3 or len(teacher_shape) != 3 or student_shape[:2] != teacher_shape[:2]:
            raise ValueError(
                f"Feature term {term.name!r}: a 1x1 convolution cannot map the student's "
                f"{student_shape} onto the teacher's {teacher_shape}; it changes channels only, so "
                "pick layers of the same height and width."
            )
        adapter = keras.layers.Conv2D(teacher_shape[-1], 1, name=f"{term.name}_adapter")
    else:
        if student_shape[:-1] != teacher_shape[:-1]:
            raise ValueError(
                f"Feature term {term.name!r}: a dense adapter maps the last axis only, and cannot "
                f"map the student's {student_shape} onto the teacher's {teacher_shape}."
            )
        adapter = keras.layers.Dense(teacher_shape[-1], name=f"{term.name}_adapter")
    adapter.build((None,) + student_shape)
    return adapter

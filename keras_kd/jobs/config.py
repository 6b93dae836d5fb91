"""The jobs' settings: one dataclass per job, whose fields' metadata are the command line's flags.

Each setting is named once, here: `keras_kd.cli.flags` defines a flag for every field with a
`help` text, YAML files (`--config`) fill the same fields, and `validate` checks both alike.
This module imports no TensorFlow (`keras-kd ... --help` answers at once); `validate` imports
what it checks against.
"""

import dataclasses
import os

from keras_kd.datasets import LOADERS
from keras_kd.training.recipes import RECIPES

RECIPE_NAMES = tuple(RECIPES.names())
"""The `--recipe` choices: the recipes registry's names (it imports no TensorFlow)."""
DATASET_NAMES = tuple(LOADERS.names())
"""The `--dataset` choices: the data-set registry's names."""


def setting(default=None, help=None, *, flag=None, choices=None, minimum=None, factory=None):
    """A config field; with `help` it is also a flag (named `flag`, else the field's name)."""
    metadata = {"help": help, "flag": flag, "choices": choices, "minimum": minimum}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class DistillConfig:
    """`keras-kd distill`: teacher, student from labels alone and distilled student, side by side."""

    dataset: str = setting("digits", "Data set.", choices=DATASET_NAMES)
    data_dir: str = setting(None, "Folder with the data set's files (Fashion-MNIST, FSDD).")
    teacher_path: str = setting(None, "A saved teacher to use instead of training one.", flag="teacher")
    teacher_epochs: int = setting(40, "Epochs to train the teacher.", minimum=1)
    student_epochs: int = setting(
        60,
        "Most epochs of each student; an epoch of the student from labels has as many optimizer steps as the "
        "distilled student's.",
        minimum=1,
    )
    patience: int = setting(
        10,
        "Epochs without improvement on validation before a student stops; each student keeps its best epoch.",
        minimum=1,
    )
    batch_size: int = setting(32, "Batch size.", minimum=1)
    learning_rate: float = setting(1e-3, "Adam learning rate.")
    weight_decay: float = setting(0.0, "AdamW's weight decay for the models the job trains; 0: Adam.")
    learning_rate_grid: list = setting(
        help="Learning rates each student tries, keeping the one best on validation (keras_kd.jobs.sweep); "
        "empty: --learning_rate alone.",
        factory=list,
    )
    alpha_grid: list = setting(
        help="Alphas the distilled student tries (x --temperature_grid); the student from labels tries as many "
        "weight decays, so both search alike. Empty: the recipe's alpha.",
        factory=list,
    )
    temperature_grid: list = setting(help="Temperatures the distilled student tries (x --alpha_grid).", factory=list)
    recipe: str = setting("hinton", "Named distillation method (docs/when_distillation_pays.md).", choices=RECIPE_NAMES)
    alpha: float = setting(None, "Weight of the label loss (1 - alpha: distillation); default: the recipe's.")
    temperature: float = setting(None, "Distillation temperature T > 0; default: the recipe's.")
    labeled_fraction: float = setting(
        0.1,
        "Share of the training examples whose labels the students get; the "
        "rest is an unlabelled pool the teacher scores (1: every label, no pool).",
    )
    validation_split: float = setting(
        0.1, "Share of the training data held out for the val_* figures (never the test set)."
    )
    train: str = setting(
        None,
        "Your labelled training data: .npz (x, y), .csv, or a folder of images, .txt or "
        ".wav files in one sub-folder per class (docs/cli.md). Needs --teacher and --student "
        "(and --test, but for tune).",
    )
    unlabeled: str = setting(None, "Your unlabelled data (same forms, no labels): the pool the teacher scores.")
    validation: str = setting(None, "Your validation data (else --validation_split of --train).")
    test: str = setting(None, "Your test data, used once for the report.")
    student_path: str = setting(
        None,
        "The student: an untrained .keras model (each student starts from its "
        "weights) or a preset name (digits, fashion_mnist, fsdd).",
        flag="student",
    )
    label_column: str = setting("label", "The class column of CSV data.")
    class_names: str = setting(
        None,
        "Class sub-folders in the teacher's output order, comma-separated (default: sorted names, as "
        "Keras's loaders order them); for folders of your own data.",
    )
    tensorboard_dir: str = setting(None, "Write Keras's TensorBoard logs here: one run per role.")
    seed: int = setting(0, "Random seed: data split, initial weights, shuffling.")
    teacher_dtype: str = setting(
        "float32",
        "The teacher's inference dtype while distilling: bfloat16 runs a copy "
        "of it in bfloat16 (cheaper where the CPU or GPU has it; docs/fast_distillation.md).",
        choices=("float32", "bfloat16"),
    )
    verbose: int = 2
    # YAML only: a distillation-loss spec (`{"name": "dkd", "non_target_weight": 8.0}`), feature
    # terms (`FeatureDistillation` arguments), schedules for alpha and T, and teacher caching.
    distillation_loss: object = None
    features: list = dataclasses.field(default_factory=list)
    alpha_schedule: object = None
    temperature_schedule: object = None
    teacher_cache: bool = False
    # Where a killed run's progress is kept (`keras_kd.jobs.backup`); the CLI sets `output_dir/backup`.
    backup_dir: str = None

    NOT_FLAGS = ()
    """Fields with help that this job takes from YAML only (a subclass's searched settings)."""

    @classmethod
    def from_dict(cls, values):
        """A config from a dict (a parsed YAML file); unknown keys raise a ValueError listing the known ones."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown config keys {unknown}; known keys: {', '.join(sorted(known))}.")
        return cls(**values)

    @classmethod
    def read_yaml(cls, path):
        """A YAML file's settings as this config's fields (flag names accepted); `yaml.safe_load`,
        so no tag in the file runs code."""
        import yaml

        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path}: a config file holds a mapping of settings; found {type(values).__name__}.")
        flag_fields = cls.flag_fields()
        return {flag_fields.get(key, key): value for key, value in values.items()}

    @classmethod
    def flag_fields(cls):
        """`{flag name: field name}` of the settings this job takes on the command line."""
        return {
            field.metadata.get("flag") or field.name: field.name
            for field in dataclasses.fields(cls)
            if field.metadata.get("help") and field.name not in cls.NOT_FLAGS
        }

    @property
    def own_data(self):
        return bool(self.train or self.test or self.unlabeled or self.validation)

    def class_name_list(self):
        """`class_names` as a list (None when not given)."""
        if not self.class_names:
            return None
        return [name.strip() for name in str(self.class_names).split(",") if name.strip()]

    def compile_arguments(self):
        """`Distiller.compile` arguments: the recipe's, overridden by the settings given."""
        from keras_kd.training import recipes

        arguments = recipes.get(self.recipe).compile_arguments()
        for key, value in (
            ("alpha", self.alpha),
            ("temperature", self.temperature),
            ("distillation_loss_fn", self.distillation_loss),
        ):
            if value is not None:
                arguments[key] = value
        return arguments

    def validate(self, require_test=True):
        """Raise a ValueError for any setting that cannot run (`require_test`: own data needs `test`)."""
        from keras_kd import datasets
        from keras_kd import losses as kd_losses
        from keras_kd.checks import validate_alpha, validate_temperature
        from keras_kd.training import recipes

        recipes.get(self.recipe)  # raises, listing the known recipes
        if self.alpha is not None:
            validate_alpha(self.alpha)
        if self.temperature is not None:
            validate_temperature(self.temperature, "temperature")
        if not 0.0 < float(self.labeled_fraction) <= 1.0:
            raise ValueError(f"`labeled_fraction` must lie in (0, 1]; received {self.labeled_fraction!r}.")
        if not 0.0 <= float(self.validation_split) < 1.0:
            raise ValueError(f"`validation_split` must lie in [0, 1); received {self.validation_split!r}.")
        if self.own_data:
            self._validate_own_data(require_test)
        elif self.student_path:
            self._validate_student()
        datasets.LOADERS.lookup(self.dataset)  # raises, listing the known data sets
        for field in dataclasses.fields(self):
            minimum = field.metadata.get("minimum")
            if minimum is not None and int(getattr(self, field.name)) < minimum:
                raise ValueError(f"`{field.name}` must be >= {minimum}; received {getattr(self, field.name)!r}.")
        self._validate_search()
        if self.teacher_path is not None and not os.path.exists(self.teacher_path):
            raise ValueError(f"`teacher` path {self.teacher_path!r} does not exist.")
        if self.distillation_loss is not None:
            kd_losses.get(self.distillation_loss)  # raises, listing the known names
        for term in self.features:
            if not isinstance(term, dict) or not {"loss", "teacher_layer", "student_layer"} <= set(term):
                raise ValueError(
                    f"Each feature term needs `loss`, `teacher_layer` and `student_layer`; received {term!r}."
                )
        if self.tensorboard_dir:
            try:
                import tensorboard  # noqa: F401
            except ImportError:
                raise RuntimeError(
                    "`tensorboard_dir` needs TensorBoard, through which Keras's callback writes: "
                    'pip install "keras-kd[tensorboard]".'
                ) from None
        if self.teacher_cache and self.features:
            raise ValueError("`teacher_cache` holds logits only; it cannot serve feature terms.")

    def _validate_search(self):
        from keras_kd.checks import validate_alpha, validate_temperature
        from keras_kd.jobs import sweep

        def floats(name):
            try:
                return [float(value) for value in getattr(self, name) or []]
            except (TypeError, ValueError):
                raise ValueError(f"`{name}` takes numbers; received {getattr(self, name)!r}.") from None

        for rate in [self.learning_rate, *floats("learning_rate_grid")]:
            if not rate > 0:
                raise ValueError(f"A learning rate must be > 0; received {rate!r}.")
        if not float(self.weight_decay) >= 0:
            raise ValueError(f"`weight_decay` must be >= 0; received {self.weight_decay!r}.")
        for alpha in floats("alpha_grid"):
            validate_alpha(alpha)
        for temperature in floats("temperature_grid"):
            validate_temperature(temperature, "temperature_grid")
        if sweep.is_search(self) and not (self.validation or self.validation_split > 0):
            raise ValueError(
                "A search (--learning_rate_grid, --alpha_grid, --temperature_grid) chooses on validation data: "
                "give --validation or a --validation_split above 0."
            )

    def _validate_own_data(self, require_test=True):
        from keras_kd import models
        from keras_kd.datasets import user_data
        from keras_kd.training import recipes

        if not ((self.train or self.unlabeled) and (self.test or not require_test)):
            raise ValueError(
                "Your own data needs both `train` (labelled) and `test`; `unlabeled` and `validation` are optional "
                "(`unlabeled` without `train` distils from the teacher alone, with alpha 0)."
            )
        grid = [float(alpha) for alpha in self.alpha_grid or []]
        if not self.train and any(alpha != 0 for alpha in grid or [self.compile_arguments()["alpha"]]):
            weighs = (
                f"`alpha_grid` {grid}" if grid else f"{self.compile_arguments()['alpha']} with the {self.recipe} recipe"
            )
            raise ValueError(
                f"Without `train` there are no labels for the label loss, which `alpha` weighs ({weighs}): "
                "pass --alpha=0 (and no other alpha) to distil "
                "from the teacher's outputs on `unlabeled` alone, or give labelled `train` data."
            )
        if self.class_names and len(set(self.class_name_list())) != len(self.class_name_list()):
            raise ValueError(f"`class_names` names a class twice: {self.class_names!r}.")
        if not self.teacher_path:
            raise ValueError("With your own data, give the trained teacher: `teacher` (a .keras file).")
        if not self.student_path:
            raise ValueError(
                f"With your own data, give the student: `student` (an untrained .keras file, or a "
                f"preset: {', '.join(sorted(models.PRESETS))})."
            )
        for name in ("train", "unlabeled", "validation", "test"):
            path = getattr(self, name)
            if path is not None:
                try:
                    user_data.data_kind(path)
                except ValueError as error:
                    raise ValueError(f"`{name}`: {error}") from None
        self._validate_student()
        if recipes.get(self.recipe).assistant:
            raise ValueError(
                "The teacher_assistant recipe builds its assistant from a data set's preset; with "
                "your own data, distil an assistant first and pass it as the teacher."
            )

    def _validate_student(self):
        from keras_kd import models

        if self.student_path not in models.PRESETS and not os.path.isfile(self.student_path):
            raise ValueError(
                f"`student` {self.student_path!r} is neither a .keras file nor a preset "
                f"({', '.join(sorted(models.PRESETS))})."
            )


@dataclasses.dataclass
class CompressConfig(DistillConfig):
    """`keras-kd compress`: the distill job's settings plus the compression stages."""

    prune_epochs: int = setting(10, "Epochs of distillation while pruning.", minimum=1)
    sparsity: float = setting(0.75, "Target sparsity of the pruned kernels, in [0, 1).")
    clusters: int = setting(None, "tf_keras: weight clusters per kernel (>= 2).")
    qat: bool = setting(False, "tf_keras: quantization-aware distillation before int8 export.")
    qat_epochs: int = setting(1, "tf_keras: epochs of quantization-aware distillation (with --qat).", minimum=1)
    int8_io: bool = setting(False, "int8 inputs and outputs in the int8 TFLite file.")
    model_name: str = setting("student", "Name of the served model (TF Serving).")

    NOT_FLAGS = ("learning_rate_grid", "alpha_grid", "temperature_grid")  # one setting through every stage

    def validate(self, require_test=True):
        from keras_kd.backend import ENGINE_DESCRIPTION, IS_TF_KERAS, assert_tensorflow_backend
        from keras_kd.compression.pruning_schedules import validate_sparsity

        super().validate(require_test)
        if self.own_data and not self.train:
            raise ValueError("`keras-kd compress` needs labelled `train` data (its later stages distil on it).")
        _refuse_grids(
            self,
            "`keras-kd compress` distils its later stages with one setting: search it with "
            "`keras-kd distill` and pass the chosen learning rate, alpha and T.",
        )
        validate_sparsity(self.sparsity, "sparsity")
        if self.clusters is not None and int(self.clusters) < 2:
            raise ValueError(f"`clusters` must be >= 2; received {self.clusters!r}.")
        if (self.clusters is not None or self.qat) and not IS_TF_KERAS:
            raise RuntimeError(
                "Clustering and quantization-aware training use TF-MOT, which needs the tf_keras engine: "
                f"set TF_USE_LEGACY_KERAS=1 before Python starts (active: {ENGINE_DESCRIPTION})."
            )
        if self.features and IS_TF_KERAS:
            raise ValueError(
                "Feature terms name the student's layers, which TF-MOT's pruning wrappers rename; "
                "on tf_keras, `keras-kd compress` distils from the outputs only: remove `features`."
            )
        assert_tensorflow_backend("keras-kd compress (its outputs are SavedModels and TFLite files)")


def _refuse_grids(config, why):
    given = [name for name in ("learning_rate_grid", "alpha_grid", "temperature_grid") if getattr(config, name)]
    if given:
        raise ValueError(f"{', '.join(f'`{name}`' for name in given)}: {why}")


def import_keras_tuner():
    """KerasTuner, or a RuntimeError that says how to install it."""
    try:
        import keras_tuner
    except ImportError as error:
        raise RuntimeError(f'`tune` needs KerasTuner: pip install "keras-kd[tune]" ({error}).') from None
    return keras_tuner


SEARCHED_RECIPES = ("hinton", "dist", "function_matching")
"""The recipes `keras-kd tune` chooses among by default (`teacher_assistant` trains an assistant per trial)."""


@dataclasses.dataclass
class TuneConfig(DistillConfig):
    """`keras-kd tune`: the distill job's data and budget; recipe, alpha, T and learning rate are searched."""

    max_trials: int = setting(10, "Trials of each search (distilled, and the control from labels).", minimum=1)

    NOT_FLAGS = (
        "recipe",
        "alpha",
        "temperature",
        "learning_rate",
        "test",
        *("learning_rate_grid", "alpha_grid", "temperature_grid"),  # tune runs its own search
    )

    def validate(self, require_test=False, recipe_names=SEARCHED_RECIPES):
        """Raise before any training if the search cannot run (KerasTuner missing: RuntimeError)."""
        from keras_kd.training import recipes

        import_keras_tuner()
        if self.test:
            raise ValueError(
                "`tune` never reads the test set: remove `test` from the settings, and give it to "
                "`keras-kd distill --config=best.yaml --test=...` afterwards."
            )
        if (self.unlabeled or self.validation) and not self.train:
            raise ValueError("Your own data needs `train` (labelled); `unlabeled` and `validation` are optional.")
        _refuse_grids(self, "`tune` runs its own search (`max_trials` of each student).")
        super().validate(require_test=False)
        if not self.validation and not self.validation_split > 0:
            raise ValueError(
                "`tune` scores each setting on validation data held out of the training data; "
                f"`validation_split` must be > 0 (received {self.validation_split!r}), or give "
                "`validation` data."
            )
        for name in recipe_names:
            if recipes.get(name).assistant and self.own_data:  # raises, listing the known recipes
                raise ValueError(
                    f"The {name} recipe builds its assistant from a data set's preset; with your own "
                    "data, leave it out of the searched recipes."
                )
        searched = [
            name
            for name in ("distillation_loss", "alpha_schedule", "temperature_schedule")
            if getattr(self, name) is not None
        ]
        if searched:
            raise ValueError(
                f"`tune` searches the recipe, alpha and temperature; remove {', '.join(searched)} "
                "from the settings, they would override the searched values."
            )

"""`keras-kd compress`: teacher -> distilled student -> pruned (clustered, QAT) student -> exports.

Writes into `--output_dir`, all at once at the end: `report.{json,md,png}` with a row per
stage measured on its exported artifact, and `exports/` with the teacher's SavedModel, the
students' TFLite files, the final int8 TFLite file and the final student's SavedModel in TF
Serving's layout (`exports/saved_model/<model_name>/1`).
"""


from absl import flags

from keras_kd.cli.flags_util import build_config as build_config_from
from keras_kd.cli.flags_util import parse, run_job

FLAGS = flags.FlagValues()
flags.DEFINE_string("config", None, "A YAML file of settings; flags given on the command line override it.",
                    flag_values=FLAGS)
flags.DEFINE_enum("dataset", "digits", ["digits", "fashion_mnist", "fsdd"], "Data set.", flag_values=FLAGS)
flags.DEFINE_string("data_dir", None, "Folder with the data set's files (Fashion-MNIST, FSDD).", flag_values=FLAGS)
flags.DEFINE_string("output_dir", "runs/compress", "Where the report and exports go.", flag_values=FLAGS)
flags.DEFINE_string("teacher", None, "A saved teacher to use instead of training one.", flag_values=FLAGS)
flags.DEFINE_integer("teacher_epochs", 40, "Epochs to train the teacher.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("student_epochs", 60, "Epochs to train each student.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer("prune_epochs", 10, "Epochs of distillation while pruning.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_float("sparsity", 0.75, "Target sparsity of the pruned kernels, in [0, 1).", flag_values=FLAGS)
flags.DEFINE_integer("clusters", None, "tf_keras: weight clusters per kernel (>= 2).", flag_values=FLAGS)
flags.DEFINE_bool("qat", False, "tf_keras: quantization-aware distillation before int8 export.", flag_values=FLAGS)
flags.DEFINE_bool("int8_io", False, "int8 inputs and outputs in the int8 TFLite file.", flag_values=FLAGS)
flags.DEFINE_string("model_name", "student", "Name of the served model (TF Serving).", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 32, "Batch size.", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.", lower_bound=0.0, flag_values=FLAGS)
flags.DEFINE_float("alpha", None, "Weight of the label loss (1 - alpha: distillation); default: the recipe's.",
                   flag_values=FLAGS)
flags.DEFINE_float("temperature", None, "Distillation temperature T > 0; default: the recipe's.", flag_values=FLAGS)
flags.DEFINE_enum("recipe", "hinton", ["hinton", "function_matching", "dist", "teacher_assistant"],
                  "Named distillation method (docs/when_distillation_pays.md).", flag_values=FLAGS)
flags.DEFINE_float("labeled_fraction", 0.1, "Share of the training examples whose labels the students get; "
                   "the rest is an unlabelled pool the teacher scores (1: every label, no pool).", flag_values=FLAGS)
flags.DEFINE_float("validation_split", 0.1, "Share of the training data held out for the val_* figures "
                   "(never the test set).", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Random seed.", flag_values=FLAGS)
flags.DEFINE_string("train", None, "Your labelled training data: .npz (x, y), .csv, or a folder of images, .txt or "
                    ".wav files in one sub-folder per class (docs/cli.md). Needs --teacher, --student, --test.",
                    flag_values=FLAGS)
flags.DEFINE_string("unlabeled", None, "Your unlabelled data (same forms, no labels): the pool the teacher scores.",
                    flag_values=FLAGS)
flags.DEFINE_string("validation", None, "Your validation data (else --validation_split of --train).",
                    flag_values=FLAGS)
flags.DEFINE_string("test", None, "Your test data, used once for the report.", flag_values=FLAGS)
flags.DEFINE_string("student", None, "The student: an untrained .keras model (both students start from its "
                    "weights) or a preset name (digits, fashion_mnist, fsdd).", flag_values=FLAGS)
flags.DEFINE_string("label_column", "label", "The class column of CSV data.", flag_values=FLAGS)
flags.DEFINE_bool("overwrite", False, "Replace the files keras-kd writes in a non-empty --output_dir.",
                  flag_values=FLAGS)
flags.DEFINE_integer("verbose", None, "Keras verbosity (default: 1 on a terminal, else 2).", flag_values=FLAGS)

FLAG_FIELDS = {
    "dataset": "dataset", "data_dir": "data_dir", "teacher": "teacher_path", "teacher_epochs": "teacher_epochs",
    "student_epochs": "student_epochs", "prune_epochs": "prune_epochs", "sparsity": "sparsity",
    "clusters": "clusters", "qat": "qat", "int8_io": "int8_io", "model_name": "model_name",
    "batch_size": "batch_size", "learning_rate": "learning_rate", "alpha": "alpha", "temperature": "temperature",
    "recipe": "recipe",
    "labeled_fraction": "labeled_fraction", "validation_split": "validation_split", "train": "train",
    "unlabeled": "unlabeled", "validation": "validation", "test": "test", "student": "student_path",
    "label_column": "label_column",
    "seed": "seed",
}


def build_config():
    from keras_kd.compression.pipeline import CompressConfig

    return build_config_from(FLAGS, FLAG_FIELDS, CompressConfig)


def run(argv):
    if not parse(FLAGS, argv):
        return 2
    from keras_kd.compression.pipeline import STAGE_COLUMNS, run_compress

    return run_job("compress", FLAGS, build_config, run_compress, STAGE_COLUMNS)

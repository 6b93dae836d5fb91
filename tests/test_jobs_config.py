"""The jobs' settings: one dataclass per job, the CLI's flags generated from it, YAML read the same way."""

import dataclasses
import pathlib
import subprocess
import sys

import pytest

from keras_kd.cli import compress, distill, tune
from keras_kd.cli.flags import build_config
from keras_kd.jobs.config import CompressConfig, DistillConfig, TuneConfig

SUBCOMMANDS = ((distill, DistillConfig), (compress, CompressConfig), (tune, TuneConfig))


@pytest.mark.parametrize("module, config_class", SUBCOMMANDS)
def test_every_setting_with_help_is_a_flag_with_the_fields_default(module, config_class):
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    flag_fields = config_class.flag_fields()
    for flag, name in flag_fields.items():
        field = fields[name]
        default = field.default_factory() if field.default is dataclasses.MISSING else field.default
        assert module.FLAGS[flag].default == default, flag
        assert module.FLAGS[flag].help.endswith(field.metadata["help"])
    run_flags = {"config", "output_dir", "overwrite", "verbose"}
    assert set(module.FLAGS) == set(flag_fields) | run_flags
    assert {"teacher", "student"} <= set(flag_fields) and "teacher_path" not in module.FLAGS


def test_tune_takes_no_searched_setting_as_a_flag():
    assert not set(TuneConfig.NOT_FLAGS) & set(tune.FLAGS)
    assert "max_trials" in tune.FLAGS and "max_trials" not in distill.FLAGS
    assert "sparsity" in compress.FLAGS and "sparsity" not in distill.FLAGS


def test_no_flag_is_declared_by_hand_in_the_subcommands():
    cli = pathlib.Path(distill.__file__).parent
    for path in cli.glob("*.py"):
        if path.name != "flags.py":
            assert "DEFINE_" not in path.read_text(), path


def test_yaml_and_flags_fill_the_same_fields_flags_winning(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("teacher: t.keras\nstudent_epochs: 3\nalpha: 0.2\nfeatures: []\n")
    assert DistillConfig.read_yaml(str(path)) == {
        "teacher_path": "t.keras",
        "student_epochs": 3,
        "alpha": 0.2,
        "features": [],
    }
    flag_values = distill.FLAGS
    flag_values.unparse_flags()
    flag_values(["keras-kd distill", f"--config={path}", "--alpha=0.7", "--verbose=0"])
    try:
        config = build_config(flag_values, DistillConfig)
    finally:
        flag_values.unparse_flags()
    assert (config.teacher_path, config.student_epochs, config.alpha, config.verbose) == ("t.keras", 3, 0.7, 0)


def test_unknown_yaml_key_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown config keys \\['magic'\\]; known keys: .*alpha"):
        DistillConfig.from_dict({"magic": 1})


def test_a_minimum_from_the_metadata_is_checked_in_yaml_too():
    with pytest.raises(ValueError, match="`student_epochs` must be >= 1; received 0"):
        DistillConfig(student_epochs=0).validate()


def test_help_answers_without_importing_tensorflow():
    code = (
        "import sys\nfrom keras_kd.cli import main\ntry:\n    main.main(['keras-kd', 'compress', '--help'])\n"
        "except SystemExit:\n    pass\nprint('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--sparsity" in result.stdout and result.stdout.strip().endswith("False"), result.stdout[-500:]

"""The plugin's trainer: bad input leaves no run folder; SIGINT/SIGTERM exit non-zero without a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("nerfstudio")

from nerfstudio.engine.trainer import Trainer  # noqa: E402

from nerfstudio_plugin.config import make_trainer_config  # noqa: E402
from nerfstudio_plugin.trainer import MastsamTrainer  # noqa: E402


def configured(data: Path, output_dir: Path):
    config = make_trainer_config()
    config.machine.device_type = "cpu"
    config.vis = "tensorboard"
    config.output_dir = output_dir
    config.pipeline.datamanager.data = data
    config.set_timestamp()
    return config


@pytest.mark.parametrize("content", [{"fl_x": 50, "w": 64, "h": 48, "frames": []}, "not json"])
def test_a_bad_dataset_leaves_no_run_folder(tmp_path: Path, content) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "transforms.json").write_text(content if isinstance(content, str) else json.dumps(content))
    config = configured(data, tmp_path / "outputs")
    config.save_config()  # what ns-train does before training
    assert not (tmp_path / "outputs").exists()
    trainer = config.setup(local_rank=0, world_size=1)
    with pytest.raises(SystemExit) as exit_info:
        trainer.setup()
    assert exit_info.value.code == 2
    assert not (tmp_path / "outputs").exists()


def test_the_config_is_written_once_setup_succeeded(tmp_path: Path, monkeypatch) -> None:
    config = configured(tmp_path / "data", tmp_path / "outputs")
    monkeypatch.setattr(Trainer, "setup", lambda self, test_mode="val": None)
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    assert (config.get_base_dir() / "config.yml").is_file()


def test_ctrl_c_while_training_exits_130(monkeypatch, capsys) -> None:
    def interrupted(self) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", interrupted)
    trainer = object.__new__(MastsamTrainer)
    with pytest.raises(SystemExit) as exit_info:
        trainer.train()
    assert exit_info.value.code == 130
    assert "interrupted" in capsys.readouterr().out


def test_sigterm_while_training_exits_143_without_a_traceback() -> None:
    script = textwrap.dedent(
        """
        import signal, time
        from nerfstudio.engine.trainer import Trainer
        from nerfstudio_plugin.trainer import MastsamTrainer

        def train(self):
            signal.raise_signal(signal.SIGTERM)  # in the main thread, not in one of torch's
            for _ in range(300):  # training keeps running Python code, where handlers run
                time.sleep(0.1)

        Trainer.train = train
        object.__new__(MastsamTrainer).train()
        """
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-2000:]
    assert "Traceback" not in result.stdout + result.stderr
    assert "interrupted" in result.stdout

"""The ``mastsam synth`` command."""

from __future__ import annotations

from pathlib import Path

from mastsam_splat.cli.synth import SynthCommand


def test_synth_command(tmp_path: Path, capsys) -> None:
    import tyro

    cmd = tyro.cli(
        SynthCommand,
        args=["--output-dir", str(tmp_path / "cli"), "--frames", "3", "--width", "40", "--height", "30",
              "--trajectory", "forward"],
    )
    cmd.main()
    assert len(list((tmp_path / "cli" / "images").iterdir())) == 3
    out = capsys.readouterr().out
    assert "objects" in out and "parts" in out

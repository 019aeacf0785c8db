"""The click command line: help, version, data commands, train wiring, error handling."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import speechattn.tasks
from speechattn.cli import main as cli
from speechattn.cli.main import main
from speechattn.recipes.schema import ConfigError

pytestmark = pytest.mark.usefixtures("restore_cli_logging")


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("speechattn: error:")]


# ----------------------------------------------------------------------------- basics

def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    for name in ("data", "train", "--version", "--verbose"):
        assert name in result.stdout
    assert run("-h").stdout == result.stdout
    data_help = run("data", "--help")
    assert data_help.exit_code == 0
    assert "list" in data_help.stdout and "prepare" in data_help.stdout


def test_help_is_light() -> None:
    """`speechattn --help` imports nothing heavy beyond what `import speechattn` itself does.

    (The CLI imports torch, the data layer and the task modules inside the commands; whether
    torch loads on `--help` then depends only on the package's own ``__init__``.)
    """
    code = textwrap.dedent(
        """
        import sys
        import speechattn
        before = set(sys.modules)
        from speechattn.cli.main import main
        try:
            main(["--help"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        heavy = ("torch", "torchaudio", "numpy", "soundfile", "librosa", "speechattn.tasks",
                 "speechattn.training", "speechattn.data", "speechattn.inference")
        new = sorted(m for m in set(sys.modules) - before if m.startswith(heavy))
        assert not new, new
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Commands:" in proc.stdout


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"speechattn {version('speechattn')}"


def test_runs_as_a_module() -> None:
    """The Makefile calls `python3 -m speechattn.cli.main` (no console script on PATH needed)."""
    proc = subprocess.run(
        [sys.executable, "-m", "speechattn.cli.main", "data", "prepare", "nois", "--root", "unused"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("speechattn: error: unknown corpus 'nois'")
    assert not Path("unused").exists()


def test_unknown_command_is_a_usage_error() -> None:
    result = run("trian")
    assert result.exit_code == 2
    assert "No such command" in result.stderr


# ----------------------------------------------------------------------------- data

def test_data_list_real_root(speechocean_dir: Path) -> None:
    root = speechocean_dir.parent
    result = run("data", "list", "--root", str(root))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"data root: {root}"
    assert lines[1].split()[:2] == ["corpus", "status"]
    rows = {line.split()[0]: line.split()[1] for line in lines[2:] if line.strip()}
    assert rows["speechocean762"] in ("present", "prepared")


def test_data_list_uses_the_environment(tmp_path: Path) -> None:
    result = run("data", "list", env={"SPEECHATTN_DATA": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"data root: {tmp_path}"
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[2:]}
    assert rows == {"speechocean762": "missing", "fsdd": "missing", "noise": "missing"}


def make_fsdd_copy(folder: Path) -> Path:
    """A tiny prepared FSDD folder (the layout is all `data prepare --from` checks)."""
    rec = folder / "recordings"
    rec.mkdir(parents=True)
    for name in ("0_jackson_0.wav", "1_nicolas_3.wav"):
        (rec / name).write_bytes(b"RIFF....WAVE")
    return folder


def test_data_prepare_imports_a_local_copy_by_symlinks(tmp_path: Path) -> None:
    source = make_fsdd_copy(tmp_path / "shared" / "fsdd")
    root = tmp_path / "root"
    result = run("data", "prepare", "fsdd", "--root", str(root), "--from", str(source))
    assert result.exit_code == 0, result.output
    target = root / "fsdd"
    assert result.stdout.strip() == f"fsdd: prepared (symlink) in {target}"
    assert (target / "recordings").is_symlink()
    assert (target / "recordings").resolve() == (source / "recordings").resolve()
    assert json.loads((target / ".prepared").read_text())["method"] == "symlink"

    again = run("data", "prepare", "fsdd", "--root", str(root), "--from", str(source))
    assert again.exit_code == 0 and again.stdout == result.stdout  # already there: nothing to do

    listed = run("data", "list", "--root", str(root))
    assert any(line.split()[:3] == ["fsdd", "prepared", "(symlink)"] for line in listed.stdout.splitlines())

    copied = run("data", "prepare", "fsdd", "--root", str(root), "--from", str(source), "--copy", "--force")
    assert copied.exit_code == 0, copied.output
    assert copied.stdout.strip() == f"fsdd: prepared (copy) in {target}"
    assert not (target / "recordings").is_symlink()
    assert sorted(p.name for p in (target / "recordings").iterdir()) == ["0_jackson_0.wav", "1_nicolas_3.wav"]
    assert sorted(p.name for p in (source / "recordings").iterdir()) == ["0_jackson_0.wav", "1_nicolas_3.wav"]


def test_data_prepare_real_noise(noise_dir: Path, tmp_path: Path) -> None:
    result = run("data", "prepare", "noise", "--root", str(tmp_path), "--from", str(noise_dir))
    assert result.exit_code == 0, result.output
    flacs = sorted((tmp_path / "noise").glob("*.flac"))
    assert len(flacs) == len(list(noise_dir.glob("*.flac"))) > 0
    assert all(p.is_symlink() and p.resolve().parent == noise_dir.resolve() for p in flacs)


def test_data_prepare_errors_are_one_line(tmp_path: Path) -> None:
    unknown = run("data", "prepare", "nois", "--root", str(tmp_path))
    assert unknown.exit_code == 2
    assert error_lines(unknown) == [
        "speechattn: error: unknown corpus 'nois' (did you mean 'noise'?); known corpora: fsdd, noise, speechocean762"
    ]
    assert "Traceback" not in unknown.output

    missing = run("data", "prepare", "fsdd", "--root", str(tmp_path), "--from", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2
    assert error_lines(missing) == [f"speechattn: error: {tmp_path / 'nowhere'}: no such file or directory"]

    (tmp_path / "fsdd").mkdir()  # in the way, not prepared by speechattn
    source = make_fsdd_copy(tmp_path / "src" / "fsdd")
    blocked = run("data", "prepare", "fsdd", "--root", str(tmp_path), "--from", str(source))
    assert blocked.exit_code == 2
    assert len(error_lines(blocked)) == 1 and "--force" in blocked.stderr

    usage = run("data", "prepare", "fsdd", "--root", str(tmp_path), "--copy")
    assert usage.exit_code == 2 and "--copy needs --from" in usage.stderr


def test_data_prepare_download_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from speechattn.data import fetch, prepare

    def offline(url: str, *args: Any, **kwargs: Any) -> Path:
        raise fetch.DownloadError(f"cannot download {url}: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(prepare, "download", offline)
    unpinned = run("data", "prepare", "fsdd", "--root", str(tmp_path))  # fsdd has no pinned checksum
    assert unpinned.exit_code == 2 and len(error_lines(unpinned)) == 1
    assert "no published checksum is pinned" in unpinned.stderr and "downloading" not in unpinned.stderr
    both = run("data", "prepare", "fsdd", "--root", str(tmp_path), "--no-verify", "--checksum", "md5:" + "0" * 32)
    assert both.exit_code == 2 and "contradict" in both.stderr
    bad = run("data", "prepare", "fsdd", "--root", str(tmp_path), "--checksum", "md5:xyz")
    assert bad.exit_code == 2 and error_lines(bad) == [
        "speechattn: error: bad checksum 'md5:xyz': expected sha256:<64 hex digits> or md5:<32 hex digits>"]

    result = run("data", "prepare", "fsdd", "--root", str(tmp_path), "--no-verify")
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("speechattn: error: cannot download https://")
    assert "Traceback" not in result.stderr
    assert "downloading fsdd from https://" in result.stderr  # said before the (long) download
    assert not (tmp_path / "fsdd").exists()

    verbose = CliRunner().invoke(main, ["-v", "data", "prepare", "fsdd", "--root", str(tmp_path), "--no-verify"])
    assert verbose.exit_code == 2
    assert "Traceback (most recent call last)" in verbose.stderr
    assert len(error_lines(verbose)) == 1


# ----------------------------------------------------------------------------- train

@pytest.fixture()
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "speaker.yaml"
    path.write_text("task: speaker\n")
    return path


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace speechattn.tasks.train_recipe by a recorder returning a summary."""
    seen: list[dict[str, Any]] = []

    def fake_train_recipe(recipe_path: Path, **kwargs: Any) -> dict[str, Any]:
        seen.append({"recipe_path": recipe_path, **kwargs})
        return {"run_dir": Path("runs/speaker-1"), "epochs": 2, "eer": 0.125}

    monkeypatch.setattr(speechattn.tasks, "train_recipe", fake_train_recipe, raising=False)
    return seen


def test_train_passes_options_and_prints_json(recipe: Path, calls: list[dict[str, Any]], tmp_path: Path) -> None:
    result = run(
        "train", str(recipe),
        "--set", "train.epochs=2",
        "--set", "model.encoder.left_context=[16, 16, null]",
        "--set", "data.root=a=b",
        "--run-dir", str(tmp_path / "run"),
        "--resume",
        "--data-root", "/some/data",
        "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert calls == [
        {
            "recipe_path": recipe,
            "overrides": ["train.epochs=2", "model.encoder.left_context=[16, 16, null]", "data.root=a=b"],
            "run_dir": tmp_path / "run",
            "resume": True,
            "data_root": "/some/data",
            "device": "cpu",
        }
    ]
    assert isinstance(calls[0]["recipe_path"], Path) and isinstance(calls[0]["run_dir"], Path)
    assert json.loads(result.stdout) == {"run_dir": "runs/speaker-1", "epochs": 2, "eer": 0.125}


def test_train_defaults(recipe: Path, calls: list[dict[str, Any]]) -> None:
    result = run("train", str(recipe))
    assert result.exit_code == 0, result.output
    assert calls == [{"recipe_path": recipe, "overrides": [], "run_dir": None, "resume": False, "data_root": None,
                      "device": None}]


def test_train_missing_recipe_is_a_usage_error(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    result = run("train", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert calls == []


def raise_in_train(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    def fake_train_recipe(recipe_path: Path, **kwargs: Any) -> dict[str, Any]:
        raise exc

    monkeypatch.setattr(speechattn.tasks, "train_recipe", fake_train_recipe, raising=False)


def test_train_config_error_is_one_line(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = ConfigError("override 'train.epohcs=2': unknown key 'train.epohcs' (did you mean 'epochs'?)", source=str(recipe))
    raise_in_train(monkeypatch, error)
    result = run("train", str(recipe), "--set", "train.epohcs=2")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"speechattn: error: {error}"]
    assert "unknown key 'train.epohcs'" in result.stderr

    verbose = run("--verbose", "train", str(recipe))
    assert verbose.exit_code == 2
    assert "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == f"speechattn: error: {error}"


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "data/speechocean762/train"),
         "data/speechocean762/train: No such file or directory"),
        (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
        (FileNotFoundError("no checkpoint to resume in runs/x"), "no checkpoint to resume in runs/x"),
        (ValueError("audio.wav: empty\nsecond line"), "audio.wav: empty second line"),
        (ValueError(), "ValueError"),
    ],
)
def test_expected_errors(recipe: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException, message: str) -> None:
    raise_in_train(monkeypatch, exc)
    result = run("train", str(recipe))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"speechattn: error: {message}"]


def test_keyboard_interrupt_exits_130(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raise_in_train(monkeypatch, KeyboardInterrupt())
    result = run("train", str(recipe))
    assert result.exit_code == 130
    assert result.stderr.strip() == "speechattn: interrupted"


def test_unexpected_errors_keep_their_traceback(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raise_in_train(monkeypatch, RuntimeError("a bug"))
    result = run("train", str(recipe))
    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)
    assert error_lines(result) == []


def test_train_without_train_recipe(recipe: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(speechattn.tasks, "train_recipe", raising=False)
    result = run("train", str(recipe))
    assert result.exit_code == 1
    assert "train_recipe is missing" in result.stderr


# ----------------------------------------------------------------------------- task commands

def test_task_commands_are_imported_on_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fake_task_cli.py").write_text(
        textwrap.dedent(
            '''
            import click

            @click.command()
            @click.argument("name")
            def hello(name):
                """Say hello."""
                click.echo(f"hello {name}")

            not_a_command = 42
            '''
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_task_cli", raising=False)
    monkeypatch.setitem(cli.TASK_COMMANDS, "hello", ("fake_task_cli:hello", "Say hello."))
    monkeypatch.setitem(cli.TASK_COMMANDS, "broken", ("fake_task_cli:missing", "Not there."))
    monkeypatch.setitem(cli.TASK_COMMANDS, "weird", ("fake_task_cli:not_a_command", "Not a command."))

    help_text = run("--help").stdout
    assert "fake_task_cli" not in sys.modules  # --help did not import it
    assert any(line.split() == ["hello", "Say", "hello."] for line in help_text.splitlines())

    result = run("hello", "world")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello world\n"

    broken = run("broken")
    assert broken.exit_code == 1 and "command 'broken' is not available" in broken.stderr
    weird = run("weird")
    assert weird.exit_code == 1 and "is not a click command" in weird.stderr


def test_registered_task_commands_import_and_match_their_help() -> None:
    """Each registered task command imports, and `speechattn --help` describes it as it does itself."""
    for name, (_, short_help) in sorted(cli.TASK_COMMANDS.items()):
        result = run(name, "--help")
        assert result.exit_code == 0, result.output
        ctx = main.make_context("speechattn", [name, "--help"], resilient_parsing=True)
        command = main.get_command(ctx, name)
        assert command is not None
        assert command.get_short_help_str(limit=200) == short_help, name

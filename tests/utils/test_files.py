"""Atomic files: a failure mid-write leaves the old file or none, never a partial one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from speechattn.utils.files import (
    atomic_open_write,
    atomic_write,
    atomic_write_text,
    remove_path,
    replace_dir,
    write_json,
)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")

    def broken(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_atomic_write_gives_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "m.json", lambda tmp: Path(tmp).write_text("{}"))
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644  # not the temporary file's 0600


def test_text_json_and_handle_writers_replace_whole_files(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "één\n")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "één\n"
    write_json({"x": [1, 2]}, tmp_path / "sub" / "b.json")
    assert json.loads((tmp_path / "sub" / "b.json").read_text()) == {"x": [1, 2]}
    atomic_open_write(tmp_path / "c.csv", lambda fh: fh.write("a,b\r\n"))
    assert (tmp_path / "c.csv").read_bytes() == b"a,b\r\n"  # newline="": written as given
    with pytest.raises(ValueError):
        atomic_open_write(tmp_path / "c.csv", lambda fh: (fh.write("partial"), int("x")))
    assert (tmp_path / "c.csv").read_bytes() == b"a,b\r\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "c.csv", "sub"]


def _folder(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


@pytest.mark.parametrize("old", ["absent", "folder", "file", "link"])
def test_replace_dir_puts_the_staged_folder_in_place_of_anything(tmp_path, old):
    target = tmp_path / "corpus"
    elsewhere = _folder(tmp_path / "elsewhere", {"keep.txt": "kept"})
    if old == "folder":
        _folder(target, {"old.txt": "old"})
        (target / "link").symlink_to(elsewhere, target_is_directory=True)  # removed, not followed
    elif old == "file":
        target.write_text("a file in the way")
    elif old == "link":
        target.symlink_to(elsewhere, target_is_directory=True)
    staging = _folder(tmp_path / ".corpus.partial", {"new.txt": "new"})

    assert replace_dir(staging, target) == target
    assert not target.is_symlink() and sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert not staging.exists()
    assert (elsewhere / "keep.txt").read_text() == "kept"


def test_remove_path(tmp_path):
    remove_path(tmp_path / "missing")  # nothing to do
    (tmp_path / "f").write_text("x")
    _folder(tmp_path / "d" / "sub", {"a": "a"})
    (tmp_path / "l").symlink_to(tmp_path / "d", target_is_directory=True)
    remove_path(tmp_path / "l")
    assert (tmp_path / "d" / "sub" / "a").exists()
    for name in ("f", "d"):
        remove_path(tmp_path / name)
    assert list(tmp_path.iterdir()) == []

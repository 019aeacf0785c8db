"""expand_inputs: files, folders, list files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from speechattn.cli.inputs import expand_inputs


def touch(path: Path, data: bytes = b"RIFF") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """corpus/{b.wav, a.FLAC, notes.txt, sub/c.ogg, sub/deep/d.mp3, .hidden/e.wav, ._f.wav}."""
    root = tmp_path / "corpus"
    touch(root / "b.wav")
    touch(root / "a.FLAC")
    (root / "notes.txt").write_text("not a list of audio\n")
    touch(root / "sub" / "c.ogg")
    touch(root / "sub" / "deep" / "d.mp3")
    touch(root / ".hidden" / "e.wav")
    touch(root / "._f.wav")
    return root


def names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_single_files_keep_their_order_and_spelling(tmp_path: Path) -> None:
    a = touch(tmp_path / "z.wav")
    b = touch(tmp_path / "A.OPUS")
    c = touch(tmp_path / "x.sph")
    paths, problems = expand_inputs([str(a), str(b), str(c)])
    assert paths == [a, b, c]
    assert problems == []


def test_folder_is_searched_recursively_and_sorted(tree: Path) -> None:
    paths, problems = expand_inputs([str(tree)])
    assert problems == []
    assert [p.relative_to(tree).as_posix() for p in paths] == ["a.FLAC", "b.wav", "sub/c.ogg", "sub/deep/d.mp3"]
    assert all(p.is_file() for p in paths)


def test_folder_follows_symlinked_folders_once(tree: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    touch(other / "x.wav")
    (tree / "linked").symlink_to(other, target_is_directory=True)
    (other / "loop").symlink_to(tree, target_is_directory=True)  # a cycle back to the top
    paths, problems = expand_inputs([str(tree)])
    assert problems == []
    assert names(paths) == ["a.FLAC", "b.wav", "x.wav", "c.ogg", "d.mp3"]


def test_extensions_can_be_restricted(tree: Path) -> None:
    paths, problems = expand_inputs([str(tree)], extensions=("ogg", ".MP3"))
    assert names(paths) == ["c.ogg", "d.mp3"]
    assert problems == []
    with pytest.raises(ValueError):
        expand_inputs([str(tree)], extensions=())


def test_problems_for_missing_empty_and_unknown(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    touch(empty / "readme.md")
    model = touch(tmp_path / "model.pt")
    broken = tmp_path / "broken.wav"
    broken.symlink_to(tmp_path / "gone.wav")
    good = touch(tmp_path / "good.wav")
    items = [str(tmp_path / "nope.wav"), str(empty), str(model), str(broken), "", str(good)]
    paths, problems = expand_inputs(items)
    assert paths == [good]
    reasons = dict(problems)
    assert len(problems) == 5
    assert reasons[str(tmp_path / "nope.wav")] == "no such file or directory"
    assert reasons[str(empty)].startswith("no audio files (.wav, .flac")
    assert "not an audio file" in reasons[str(model)] and "list file" in reasons[str(model)]
    assert reasons[str(broken)] == "broken symbolic link"
    assert reasons[""] == "empty path"
    assert all("\n" not in reason for _, reason in problems)


def test_list_file_plain_and_kaldi_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lists = tmp_path / "lists"
    a = touch(lists / "audio" / "a.wav")
    b = touch(lists / "audio" / "b.flac")
    spaced = touch(lists / "audio" / "with space.wav")
    c = touch(tmp_path / "elsewhere" / "c.ogg")
    listing = lists / "inputs.lst"
    listing.write_text(
        "# a comment\n"
        "\n"
        "audio/a.wav\n"  # relative to the list's folder
        "utt-b audio/b.flac\n"  # Kaldi "<id> <path>"
        f"utt-c {c}\n"  # absolute
        "   audio/with space.wav   \n"  # a path with a blank, surrounding spaces stripped
        "  # an indented comment\n"
    )
    monkeypatch.chdir(tmp_path)  # resolution must not depend on the working directory
    paths, problems = expand_inputs([str(listing)])
    assert problems == []
    assert paths == [a, b, c, spaced]


def test_list_file_problems_carry_line_numbers(tmp_path: Path) -> None:
    touch(tmp_path / "ok.wav")
    touch(tmp_path / "notes.md")
    (tmp_path / "empty_dir").mkdir()
    listing = tmp_path / "in.txt"
    listing.write_text(
        "ok.wav\n"
        "missing.wav\n"
        "\n"
        "utt2 also/missing.flac\n"
        "utt3 sox in.wav -t wav - |\n"
        "notes.md\n"
        "empty_dir\n"
    )
    paths, problems = expand_inputs([str(listing)])
    assert names(paths) == ["ok.wav"]
    assert [item for item, _ in problems] == [str(listing)] * 5
    reasons = [reason for _, reason in problems]
    assert reasons[0] == f"line 2: {tmp_path / 'missing.wav'}: no such file or directory"
    assert reasons[1] == f"line 4: {tmp_path / 'also' / 'missing.flac'}: no such file or directory"
    assert reasons[2].startswith("line 5: command pipes")
    assert reasons[3].startswith(f"line 6: {tmp_path / 'notes.md'}: not an audio file")
    assert reasons[4].startswith(f"line 7: {tmp_path / 'empty_dir'}: no audio files")


def test_list_file_naming_a_folder_and_unreadable_lists(tree: Path, tmp_path: Path) -> None:
    listing = tmp_path / "dirs.scp"
    listing.write_text(f"{tree / 'sub'}\n")
    paths, problems = expand_inputs([str(listing)])
    assert names(paths) == ["c.ogg", "d.mp3"] and problems == []

    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n\n")
    binary = tmp_path / "binary.lst"
    binary.write_bytes(b"\xff\xfe\x00bad")
    paths, problems = expand_inputs([str(empty), str(binary)])
    assert paths == []
    assert problems == [(str(empty), "the list is empty"), (str(binary), "cannot read the list: not UTF-8 text")]


def test_wav_scp_paths_relative_to_the_corpus_folder(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    audio = touch(corpus / "audio" / "S1" / "u1.ogg")
    scp = corpus / "dev" / "wav.scp"
    scp.parent.mkdir(parents=True)
    scp.write_text("u1 audio/S1/u1.ogg\n")
    paths, problems = expand_inputs([str(scp)])
    assert paths == [audio] and problems == []
    # Other list files resolve against their own folder only.
    other = corpus / "dev" / "list.scp"
    other.write_text("u1 audio/S1/u1.ogg\n")
    paths, problems = expand_inputs([str(other)])
    assert paths == [] and problems[0][1].startswith("line 1:")


def test_duplicates_are_kept_once_in_first_position(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree)
    listing = tmp_path / "l.txt"
    listing.write_text(f"{tree / 'b.wav'}\n")
    paths, problems = expand_inputs(["sub/c.ogg", str(tree), str(listing), "./b.wav"])
    assert problems == []
    assert [os.path.abspath(p) for p in paths] == [
        str(tree / "sub" / "c.ogg"), str(tree / "a.FLAC"), str(tree / "b.wav"), str(tree / "sub" / "deep" / "d.mp3")
    ]


@pytest.mark.corpus
def test_real_kaldi_wav_scp(speechocean_dir: Path) -> None:
    paths, problems = expand_inputs([str(speechocean_dir / "dev" / "wav.scp")])
    assert problems == []
    assert len(paths) == 1260
    assert all(p.suffix == ".ogg" and p.is_file() for p in paths[:20])



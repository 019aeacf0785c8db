"""Tests for speechattn.data.prepare: prepare_corpus (download, archive, import), status and listing."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechattn.data import corpora
from speechattn.data.fetch import ChecksumError
from speechattn.data.kaldi import read_kaldi_dir
from speechattn.data.prepare import (
    MARKER,
    PrepareError,
    corpus_status,
    format_corpus_list,
    list_corpora,
    prepare_corpus,
    read_marker,
)
from tests.data.fetch_support import (
    LoopbackServer,
    loopback_server,
    make_tar_gz,
    sha256,
)


def wav_bytes(seconds: float = 0.1, rate: int = 8000, freq: float = 300.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    soundfile.write(buf, (0.2 * np.sin(2 * np.pi * freq * t)).astype("float32"), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def fsdd_like_archive() -> bytes:
    top = "free-spoken-digit-dataset-1.0.10"
    files = {f"{top}/README.md": b"# FSDD\n", f"{top}/utils/spectogramer.py": b"print('x')\n"}
    for digit, speaker in [(0, "george"), (1, "jackson"), (7, "theo")]:
        for index in range(2):
            files[f"{top}/recordings/{digit}_{speaker}_{index}.wav"] = wav_bytes(freq=200 + 50 * digit + index)
    return make_tar_gz(files)


# --------------------------------------------------------------------------- prepare_corpus

@pytest.fixture()
def fsdd_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    """The loopback server holding an FSDD-like archive, registered as the fsdd URL."""
    archive = fsdd_like_archive()
    with loopback_server() as server:
        server.files["/fsdd-v1.0.10.tar.gz"] = archive
        entry = dataclasses.replace(corpora.CORPORA["fsdd"], url=server.url("/fsdd-v1.0.10.tar.gz"),
                                    checksum=f"sha256:{sha256(archive)}", size=len(archive))
        monkeypatch.setitem(corpora.CORPORA, "fsdd", entry)
        yield server


def test_prepare_corpus_download_end_to_end(fsdd_server: LoopbackServer, tmp_path: Path) -> None:
    root = tmp_path / "data"
    assert corpus_status("fsdd", root).status == "missing"
    target = prepare_corpus("fsdd", root=root, progress=False)
    assert target == root / "fsdd"
    names = sorted(p.name for p in (target / "recordings").iterdir())
    assert names == [f"{d}_{s}_{i}.wav" for d, s in [(0, "george"), (1, "jackson"), (7, "theo")] for i in range(2)]
    assert not (target / "README.md").exists()  # only recordings/ is kept
    marker = read_marker(target)
    assert marker is not None and marker["method"] == "download" and marker["corpus"] == "fsdd"
    assert marker["verified_checksum"] == f"sha256:{marker['sha256']}"
    assert (root / ".downloads" / "free-spoken-digit-dataset-1.0.10.tar.gz").is_file()  # kept for reuse
    assert sorted(p.name for p in root.iterdir()) == [".downloads", "fsdd"]  # no staging left behind
    status = corpus_status("fsdd", root)
    assert status.status == "prepared" and status.method == "download"

    n = len(fsdd_server.requests)
    assert prepare_corpus("fsdd", root=root, progress=False) == target  # idempotent: nothing fetched
    assert len(fsdd_server.requests) == n
    # force re-prepares from the kept archive (verified, not downloaded again)
    prepare_corpus("fsdd", root=root, progress=False, force=True)
    assert len(fsdd_server.requests) == n


def test_prepare_corpus_download_checksum_error(fsdd_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = dataclasses.replace(corpora.CORPORA["fsdd"], checksum="sha256:" + "f" * 64)
    monkeypatch.setitem(corpora.CORPORA, "fsdd", bad)
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        prepare_corpus("fsdd", root=tmp_path, progress=False)
    assert not (tmp_path / "fsdd").exists()
    assert not (tmp_path / ".downloads" / "free-spoken-digit-dataset-1.0.10.tar.gz").exists()
    assert not (tmp_path / ".downloads" / "free-spoken-digit-dataset-1.0.10.tar.gz.part").exists()


def test_a_download_without_a_pinned_checksum_needs_one_or_no_verify(
    fsdd_server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = fsdd_server.files["/fsdd-v1.0.10.tar.gz"]
    unpinned = dataclasses.replace(corpora.CORPORA["fsdd"], checksum=None, size=None)
    monkeypatch.setitem(corpora.CORPORA, "fsdd", unpinned)
    with pytest.raises(ChecksumError, match="no published checksum is pinned .*--checksum .*--no-verify") as exc:
        prepare_corpus("fsdd", root=tmp_path / "a", progress=False)
    assert "\n" not in str(exc.value)
    assert fsdd_server.requests == [] and not (tmp_path / "a" / "fsdd").exists()  # refused before any transfer
    # a wrong checksum from the user: rejected, nothing kept
    with pytest.raises(ChecksumError, match="expected md5 0{32}, got "):
        prepare_corpus("fsdd", root=tmp_path / "b", progress=False, checksum="md5:" + "0" * 32)
    assert not (tmp_path / "b" / "fsdd").exists() and not list((tmp_path / "b" / ".downloads").iterdir())
    # the right one (md5, as OpenSLR publishes): accepted
    md5 = hashlib.md5(archive).hexdigest()
    target = prepare_corpus("fsdd", root=tmp_path / "c", progress=False, checksum=f"md5:{md5}")
    assert read_marker(target)["verified_checksum"] == f"md5:{md5}"  # type: ignore[index]
    # --no-verify: accepted unchecked, digests recorded to pin
    target = prepare_corpus("fsdd", root=tmp_path / "d", progress=False, verify=False)
    marker = read_marker(target)
    assert marker["verified_checksum"] is None and marker["sha256"] == sha256(archive)  # type: ignore[index]
    assert marker["md5"] == md5  # type: ignore[index]


def test_prepare_corpus_from_local_archive(tmp_path: Path) -> None:
    archive = tmp_path / "speech_commands_v0.02.tar.gz"
    archive.write_bytes(
        make_tar_gz(
            {
                "./_background_noise_/white_noise.wav": wav_bytes(0.3, 16000),
                "./_background_noise_/README.md": b"noise\n",
                "./yes/0a_nohash_0.wav": wav_bytes(0.1, 16000),
            }
        )
    )
    with pytest.raises(ChecksumError, match=f"checksum mismatch for {archive}: not the noise release .*got"):
        prepare_corpus("noise", root=tmp_path / "data", source=archive)
    target = prepare_corpus("noise", root=tmp_path / "data", source=archive, verify=False)
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "white_noise.flac"]
    assert read_marker(target)["method"] == "archive"  # type: ignore[index]
    assert archive.is_file()  # source untouched


def test_prepare_corpus_failure_leaves_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "empty.tar.gz"
    archive.write_bytes(make_tar_gz({"top/README.md": b"x"}))
    root = tmp_path / "data"
    with pytest.raises(PrepareError, match="no FSDD recordings/ folder"):
        prepare_corpus("fsdd", root=root, source=archive)
    assert list(root.iterdir()) == []


@pytest.mark.corpus
def test_prepare_corpus_imports_prepared_copy_by_symlink(speechocean_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    target = prepare_corpus("speechocean762", root=root, source=speechocean_dir)
    assert (target / "train").is_symlink() and (target / "audio").is_symlink()
    assert not (target / MARKER).is_symlink() and read_marker(target)["method"] == "symlink"  # type: ignore[index]
    assert not (speechocean_dir / MARKER).exists()  # the source is never touched
    # a prepared copy without test/ (the reference copy) is imported as it is: no test/ appears
    assert sorted(p.name for p in target.iterdir()) == sorted([*(p.name for p in speechocean_dir.iterdir()), MARKER])
    assert (target / "test").exists() == (speechocean_dir / "test").exists()
    train = read_kaldi_dir(target / "train")
    assert len(train) == 2500 and train[0].path.is_relative_to(target.absolute())
    assert train[:50].check_files() == []
    rows = {r.name: r for r in list_corpora(root)}
    assert rows["speechocean762"].status == "prepared" and rows["fsdd"].status == "missing"
    assert "speechocean762  prepared (symlink)" in format_corpus_list(list(rows.values()))


def test_prepare_corpus_copy_and_guards(tmp_path: Path) -> None:
    src = tmp_path / "shared" / "fsdd"
    (src / "recordings").mkdir(parents=True)
    (src / "recordings" / "0_george_0.wav").write_bytes(wav_bytes())
    root = tmp_path / "data"

    target = prepare_corpus("fsdd", root=root, source=src, copy=True)
    copied = target / "recordings" / "0_george_0.wav"
    assert not (target / "recordings").is_symlink() and copied.read_bytes() == (src / "recordings" / "0_george_0.wav").read_bytes()
    assert read_marker(target)["method"] == "copy"  # type: ignore[index]

    # a folder not made by prepare_corpus is not replaced without force
    (root / "noise").mkdir()
    with pytest.raises(PrepareError, match="exists but was not prepared by speechattn"):
        prepare_corpus("noise", root=root, source=tmp_path / "shared")
    assert corpus_status("noise", root).status == "incomplete"
    # the source cannot be the target, nor contain it
    with pytest.raises(PrepareError, match="same or nested"):
        prepare_corpus("fsdd", root=tmp_path / "shared", source=src, force=True)
    with pytest.raises(PrepareError, match="same or nested"):
        prepare_corpus("fsdd", root=src / "inner", source=src)
    assert (src / "recordings" / "0_george_0.wav").exists()
    # a folder that is neither prepared nor an original release
    with pytest.raises(PrepareError, match="neither a prepared fsdd folder"):
        prepare_corpus("fsdd", root=root, source=tmp_path / "data" / "noise", force=True)
    assert copied.is_file() and corpus_status("fsdd", root).status == "prepared"  # failed force keeps the old one
    with pytest.raises(PrepareError, match="no such file or directory"):
        prepare_corpus("fsdd", root=root, source=tmp_path / "nope", force=True)
    # a complete layout made elsewhere is used as is, without writing into it
    assert corpus_status("fsdd", tmp_path / "shared").status == "present"
    assert prepare_corpus("fsdd", root=tmp_path / "shared") == src
    assert not (src / MARKER).exists()
    with pytest.raises(PrepareError, match="unknown corpus"):
        prepare_corpus("speechocean", root=root)


def test_prepare_speechocean762_from_original_archive(tmp_path: Path) -> None:
    from tests.data.test_corpora import make_speechocean_release

    release = make_speechocean_release(tmp_path / "release")
    archive = tmp_path / "speechocean762.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(release / "speechocean762", arcname="speechocean762")
    target = prepare_corpus("speechocean762", root=tmp_path / "data", source=archive)
    dev = read_kaldi_dir(target / "dev")
    assert dev.speakers() == ["0003", "0049", "1030"] and dev.check_files() == []
    test = read_kaldi_dir(target / "test")  # the other half of the release's test speakers
    assert test.speakers() == ["0024", "0044"] and test.check_files() == []
    assert corpus_status("speechocean762", tmp_path / "data").status == "prepared"
    marker = json.loads((target / MARKER).read_text())
    assert marker["method"] == "archive" and marker["url"].startswith("https://www.openslr.org/")

"""Tests for speechattn.data.prepare: download (loopback HTTP), extract, prepare_corpus."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechattn.data import corpora
from speechattn.data.kaldi import read_kaldi_dir
from speechattn.data.prepare import (
    MARKER,
    ChecksumError,
    DownloadError,
    PrepareError,
    UnsafeArchiveError,
    corpus_status,
    download,
    extract,
    format_corpus_list,
    list_corpora,
    parse_checksum,
    prepare_corpus,
    read_marker,
)

# --------------------------------------------------------------------------- loopback server


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files`` with single-range ``Range: bytes=N-`` support."""

    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404, "not found")
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and not srv.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if srv.cut_after is not None:  # simulate a dropped connection once
            cut, srv.cut_after = srv.cut_after, None
            self.wfile.write(chunk[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.ignore_range = False
        self.cut_after: int | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture()
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- archives

def wav_bytes(seconds: float = 0.1, rate: int = 8000, freq: float = 300.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    soundfile.write(buf, (0.2 * np.sin(2 * np.pi * freq * t)).astype("float32"), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def make_tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fsdd_like_archive() -> bytes:
    top = "free-spoken-digit-dataset-1.0.10"
    files = {f"{top}/README.md": b"# FSDD\n", f"{top}/utils/spectogramer.py": b"print('x')\n"}
    for digit, speaker in [(0, "george"), (1, "jackson"), (7, "theo")]:
        for index in range(2):
            files[f"{top}/recordings/{digit}_{speaker}_{index}.wav"] = wav_bytes(freq=200 + 50 * digit + index)
    return make_tar_gz(files)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- download

def test_download_with_checksum(server: _Server, tmp_path: Path) -> None:
    payload = os.urandom(200_000)
    server.files["/a.bin"] = payload
    out = download(server.url("/a.bin"), tmp_path / "dl" / "a.bin", sha256=sha256(payload))  # with a progress bar
    assert out == tmp_path / "dl" / "a.bin" and out.read_bytes() == payload
    assert not (tmp_path / "dl" / "a.bin.part").exists()
    # already there and verified: no new request
    n = len(server.requests)
    assert download(server.url("/a.bin"), out, sha256=sha256(payload), progress=False) == out
    assert len(server.requests) == n
    # a folder as destination: named after the URL
    assert download(server.url("/a.bin"), tmp_path, progress=False) == tmp_path / "a.bin"


def test_download_checksum_mismatch_deletes_file(server: _Server, tmp_path: Path) -> None:
    payload = b"hello world" * 100
    server.files["/a.bin"] = payload
    dest = tmp_path / "a.bin"
    with pytest.raises(ChecksumError) as exc:
        download(server.url("/a.bin"), dest, sha256="0" * 64, progress=False)
    text = str(exc.value)
    assert "\n" not in text
    assert text.startswith(f"checksum mismatch for {dest} downloaded from {server.url('/a.bin')}: ")
    assert f"expected sha256 {'0' * 64}, got {sha256(payload)}" in text  # both digests
    assert not dest.exists() and not (tmp_path / "a.bin.part").exists()  # nothing left as if complete


@pytest.mark.parametrize("algo", ["sha256", "md5"])
def test_download_good_and_bad_checksums_of_both_kinds(server: _Server, tmp_path: Path, algo: str) -> None:
    payload = os.urandom(20_000)
    server.files["/c.tar.gz"] = payload
    good = f"{algo}:{hashlib.new(algo, payload).hexdigest()}"
    out = download(server.url("/c.tar.gz"), tmp_path / "ok" / "c.tar.gz", checksum=good, size=len(payload),
                   progress=False)
    assert out.read_bytes() == payload and not (tmp_path / "ok" / "c.tar.gz.part").exists()
    bad = f"{algo}:{'a' * len(good.split(':')[1])}"
    dest = tmp_path / "bad" / "c.tar.gz"
    with pytest.raises(ChecksumError) as exc:
        download(server.url("/c.tar.gz"), dest, checksum=bad, progress=False)
    text = str(exc.value)
    assert "\n" not in text and str(dest) in text
    assert f"expected {bad.replace(':', ' ')}, got {good.split(':')[1]}" in text
    assert not dest.exists() and not dest.with_name("c.tar.gz.part").exists()
    # the published size is checked too
    with pytest.raises(ChecksumError, match=f"expected {len(payload) + 1} bytes, got {len(payload)}"):
        download(server.url("/c.tar.gz"), dest, checksum=good, size=len(payload) + 1, progress=False)
    assert not dest.exists() and not dest.with_name("c.tar.gz.part").exists()


def test_a_wrong_existing_file_is_downloaded_again(server: _Server, tmp_path: Path) -> None:
    payload = os.urandom(10_000)
    server.files["/d.bin"] = payload
    dest = tmp_path / "d.bin"
    dest.write_bytes(b"stale" * 10)
    assert download(server.url("/d.bin"), dest, checksum=f"md5:{hashlib.md5(payload).hexdigest()}",
                    progress=False).read_bytes() == payload


def test_a_part_larger_than_the_published_size_starts_over(server: _Server, tmp_path: Path) -> None:
    payload = os.urandom(10_000)
    server.files["/e.bin"] = payload
    (tmp_path / "e.bin.part").write_bytes(os.urandom(20_000))
    download(server.url("/e.bin"), tmp_path / "e.bin", sha256=sha256(payload), size=len(payload), progress=False)
    assert (tmp_path / "e.bin").read_bytes() == payload
    assert server.requests == [("/e.bin", None)]


def test_parse_checksum() -> None:
    assert parse_checksum("SHA256:" + "AB" * 32) == ("sha256", "ab" * 32)
    assert parse_checksum("md5:" + "0" * 32) == ("md5", "0" * 32)
    assert parse_checksum("f" * 64) == ("sha256", "f" * 64)  # bare: by length
    assert parse_checksum("f" * 32) == ("md5", "f" * 32)
    for bad in ("sha1:" + "0" * 40, "md5:" + "0" * 31, "sha256:" + "g" * 64, "nonsense"):
        with pytest.raises(PrepareError, match="bad checksum"):
            parse_checksum(bad)
    dest = Path("/nonexistent/x")
    with pytest.raises(PrepareError, match="bad checksum"):  # before any transfer or folder
        download("http://127.0.0.1:9/x", dest, checksum="md5:xyz")
    assert not dest.parent.exists()


def test_download_resumes_partial_file(server: _Server, tmp_path: Path) -> None:
    payload = os.urandom(100_000)
    server.files["/big.tar.gz"] = payload
    dest = tmp_path / "big.tar.gz"
    (tmp_path / "big.tar.gz.part").write_bytes(payload[:30_000])
    download(server.url("/big.tar.gz"), dest, sha256=sha256(payload), progress=False)
    assert dest.read_bytes() == payload
    assert server.requests == [("/big.tar.gz", "bytes=30000-")]


def test_download_part_already_complete(server: _Server, tmp_path: Path) -> None:
    payload = os.urandom(5_000)
    server.files["/x"] = payload
    (tmp_path / "x.part").write_bytes(payload)
    download(server.url("/x"), tmp_path / "x", sha256=sha256(payload), progress=False)  # server answers 416
    assert (tmp_path / "x").read_bytes() == payload


def test_download_server_ignoring_range_restarts(server: _Server, tmp_path: Path) -> None:
    payload = os.urandom(50_000)
    server.files["/x"] = payload
    server.ignore_range = True
    (tmp_path / "x.part").write_bytes(b"garbage" * 100)
    download(server.url("/x"), tmp_path / "x", sha256=sha256(payload), progress=False)
    assert (tmp_path / "x").read_bytes() == payload


def test_download_interrupted_transfer_is_resumed(server: _Server, tmp_path: Path) -> None:
    payload = os.urandom(300_000)
    server.files["/x"] = payload
    server.cut_after = 100_000
    download(server.url("/x"), tmp_path / "x", sha256=sha256(payload), progress=False)
    assert (tmp_path / "x").read_bytes() == payload
    assert len(server.requests) == 2 and server.requests[1][1] == "bytes=100000-"


def test_download_http_error(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url("/missing"), tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- extract

def test_extract_tar_and_zip(tmp_path: Path) -> None:
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(make_tar_gz({"top/a.txt": b"a", "./top/sub/b.txt": b"b"}))
    out = extract(archive, tmp_path / "out")
    assert (out / "top" / "a.txt").read_bytes() == b"a" and (out / "top" / "sub" / "b.txt").exists()
    only = extract(archive, tmp_path / "only", members=lambda name: name.endswith("b.txt"))
    assert not (only / "top" / "a.txt").exists() and (only / "top" / "sub" / "b.txt").exists()

    z = tmp_path / "ok.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("top/c.txt", "c")
    assert (extract(z, tmp_path / "zout") / "top" / "c.txt").read_text() == "c"
    with pytest.raises(PrepareError, match="not a tar or zip archive"):
        extract(tmp_path / "out" / "top" / "a.txt", tmp_path / "x")


@pytest.mark.parametrize("name", ["../evil.txt", "top/../../evil.txt", "/tmp/evil-speechattn.txt"])
def test_extract_rejects_path_traversal(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(make_tar_gz({"top/ok.txt": b"ok", name: b"evil"}))
    with pytest.raises(UnsafeArchiveError, match="path escapes the destination"):
        extract(archive, tmp_path / "out" / "x")
    assert not (tmp_path / "out" / "x" / "top" / "ok.txt").exists()  # nothing written
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_extract_rejects_links_outside(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        link = tarfile.TarInfo("top/passwd")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../etc/passwd"
        tar.addfile(link)
    archive = tmp_path / "link.tar.gz"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError, match="points outside"):
        extract(archive, tmp_path / "out")


def test_extract_rejects_zip_traversal(tmp_path: Path) -> None:
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(UnsafeArchiveError):
        extract(z, tmp_path / "out")


# --------------------------------------------------------------------------- prepare_corpus

@pytest.fixture()
def fsdd_server(server: _Server, monkeypatch: pytest.MonkeyPatch) -> _Server:
    """The loopback server holding an FSDD-like archive, registered as the fsdd URL."""
    archive = fsdd_like_archive()
    server.files["/fsdd-v1.0.10.tar.gz"] = archive
    entry = dataclasses.replace(corpora.CORPORA["fsdd"], url=server.url("/fsdd-v1.0.10.tar.gz"),
                                checksum=f"sha256:{sha256(archive)}", size=len(archive))
    monkeypatch.setitem(corpora.CORPORA, "fsdd", entry)
    return server


def test_prepare_corpus_download_end_to_end(fsdd_server: _Server, tmp_path: Path) -> None:
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


def test_prepare_corpus_download_checksum_error(fsdd_server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = dataclasses.replace(corpora.CORPORA["fsdd"], checksum="sha256:" + "f" * 64)
    monkeypatch.setitem(corpora.CORPORA, "fsdd", bad)
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        prepare_corpus("fsdd", root=tmp_path, progress=False)
    assert not (tmp_path / "fsdd").exists()
    assert not (tmp_path / ".downloads" / "free-spoken-digit-dataset-1.0.10.tar.gz").exists()
    assert not (tmp_path / ".downloads" / "free-spoken-digit-dataset-1.0.10.tar.gz.part").exists()


def test_a_download_without_a_pinned_checksum_needs_one_or_no_verify(
    fsdd_server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    assert corpus_status("speechocean762", tmp_path / "data").status == "prepared"
    marker = json.loads((target / MARKER).read_text())
    assert marker["method"] == "archive" and marker["url"].startswith("https://www.openslr.org/")

"""Tests for speechattn.data.fetch: download (loopback HTTP) and extract."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from speechattn.data.corpora import PrepareError
from speechattn.data.fetch import (
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    download,
    extract,
    parse_checksum,
)
from tests.data.fetch_support import (
    LoopbackServer,
    loopback_server,
    make_tar_gz,
    sha256,
)


@pytest.fixture()
def server() -> Iterator[LoopbackServer]:
    with loopback_server() as srv:
        yield srv


# --------------------------------------------------------------------------- download

def test_download_with_checksum(server: LoopbackServer, tmp_path: Path) -> None:
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


def test_download_checksum_mismatch_deletes_file(server: LoopbackServer, tmp_path: Path) -> None:
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
def test_download_good_and_bad_checksums_of_both_kinds(server: LoopbackServer, tmp_path: Path, algo: str) -> None:
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


def test_a_wrong_existing_file_is_downloaded_again(server: LoopbackServer, tmp_path: Path) -> None:
    payload = os.urandom(10_000)
    server.files["/d.bin"] = payload
    dest = tmp_path / "d.bin"
    dest.write_bytes(b"stale" * 10)
    assert download(server.url("/d.bin"), dest, checksum=f"md5:{hashlib.md5(payload).hexdigest()}",
                    progress=False).read_bytes() == payload


def test_a_part_larger_than_the_published_size_starts_over(server: LoopbackServer, tmp_path: Path) -> None:
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


def test_download_resumes_partial_file(server: LoopbackServer, tmp_path: Path) -> None:
    payload = os.urandom(100_000)
    server.files["/big.tar.gz"] = payload
    dest = tmp_path / "big.tar.gz"
    (tmp_path / "big.tar.gz.part").write_bytes(payload[:30_000])
    download(server.url("/big.tar.gz"), dest, sha256=sha256(payload), progress=False)
    assert dest.read_bytes() == payload
    assert server.requests == [("/big.tar.gz", "bytes=30000-")]


def test_download_part_already_complete(server: LoopbackServer, tmp_path: Path) -> None:
    payload = os.urandom(5_000)
    server.files["/x"] = payload
    (tmp_path / "x.part").write_bytes(payload)
    download(server.url("/x"), tmp_path / "x", sha256=sha256(payload), progress=False)  # server answers 416
    assert (tmp_path / "x").read_bytes() == payload


def test_download_server_ignoring_range_restarts(server: LoopbackServer, tmp_path: Path) -> None:
    payload = os.urandom(50_000)
    server.files["/x"] = payload
    server.ignore_range = True
    (tmp_path / "x.part").write_bytes(b"garbage" * 100)
    download(server.url("/x"), tmp_path / "x", sha256=sha256(payload), progress=False)
    assert (tmp_path / "x").read_bytes() == payload


def test_download_interrupted_transfer_is_resumed(server: LoopbackServer, tmp_path: Path) -> None:
    payload = os.urandom(300_000)
    server.files["/x"] = payload
    server.cut_after = 100_000
    download(server.url("/x"), tmp_path / "x", sha256=sha256(payload), progress=False)
    assert (tmp_path / "x").read_bytes() == payload
    assert len(server.requests) == 2 and server.requests[1][1] == "bytes=100000-"


def test_download_http_error(server: LoopbackServer, tmp_path: Path) -> None:
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

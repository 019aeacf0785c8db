"""Tests for speechattn.data.corpora: registry, converters, dev-speaker rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechattn.data.corpora import (
    CORPORA,
    PrepareError,
    convert_fsdd,
    convert_speech_commands_noise,
    convert_speechocean762,
    fsdd_manifest,
    get_corpus,
    noise_manifest,
    select_dev_speakers,
)
from speechattn.data.kaldi import read_kaldi_dir

# speechocean762 test speakers that are NOT in the reference dev/ (speaker, gender, age),
# from the corpus's test/spk2gender and test/spk2age; the dev/ half is read from the data.
TEST_ONLY_SPEAKERS = """
0044 m 6, 0049 f 7, 0093 f 6, 0096 m 6, 0113 m 6, 0120 f 19, 0122 m 6, 0149 f 7, 0306 f 21,
0461 m 23, 0567 f 21, 0981 m 25, 1030 m 27, 1039 m 38, 1046 m 7, 1050 m 8, 1076 m 7, 1109 m 30,
1156 m 33, 1186 m 23, 1228 m 26, 1292 m 37, 1420 m 25, 1422 m 7, 1502 m 7, 2007 m 8, 2016 m 19,
2030 m 8, 2031 f 21, 2112 f 20, 2252 m 20, 2327 f 22, 2448 f 19, 2451 f 23, 2488 f 21, 2740 m 20,
2937 m 19, 3007 m 10, 3014 m 9, 3027 f 8, 3075 f 9, 3214 m 9, 5017 f 10, 5039 f 12, 5072 m 10,
5220 m 11, 5428 f 11, 6099 m 12, 8063 f 13, 8153 f 14, 8584 f 15, 9101 f 15, 9107 m 15, 9553 f 15,
9612 f 20, 9617 f 35, 9623 m 21, 9629 f 25, 9633 f 21, 9635 f 24, 9640 f 29, 9647 f 20
"""


def tone(path: Path, seconds: float = 0.2, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * 440 * t)).astype("float32"), rate, subtype="PCM_16")
    return path


# (speaker, gender, age, split)
FAKE_SPEAKERS = [
    ("0001", "m", 6, "train"),
    ("0005", "f", 30, "train"),
    ("0003", "m", 6, "test"),
    ("0024", "f", 25, "test"),
    ("0044", "m", 6, "test"),
    ("0049", "f", 7, "test"),
    ("1030", "m", 27, "test"),
]


def make_speechocean_release(root: Path) -> Path:
    """A tiny release shaped like OpenSLR 101: WAVE/, train/, test/, resource/ (tab-separated)."""
    top = root / "speechocean762"
    for split in ("train", "test"):
        spk = [s for s in FAKE_SPEAKERS if s[3] == split]
        wav, utt2spk, text = [], [], []
        for s, _, _, _ in spk:
            for i in (11, 35):
                utt = f"0{s}00{i}"
                wav.append(f"{utt}\tWAVE/SPEAKER{s}/{utt}.WAV\n")
                utt2spk.append(f"{utt}\t{s}\n")
                text.append(f"{utt}\tWE CALL IT BEAR\n")
                tone(top / "WAVE" / f"SPEAKER{s}" / f"{utt}.WAV")
        d = top / split
        d.mkdir(parents=True)
        (d / "wav.scp").write_text("".join(wav))
        (d / "utt2spk").write_text("".join(utt2spk))
        (d / "text").write_text("".join(text))
        (d / "spk2gender").write_text("".join(f"{s}\t{g}\n" for s, g, _, _ in spk))
        (d / "spk2age").write_text("".join(f"{s}\t{a}\n" for s, _, a, _ in spk))
    (top / "resource").mkdir()
    (top / "resource" / "lexicon.txt").write_text("BEAR  B EH0 R\nCALL K AO0 L\nCALL K AO0 L\nIT  IH0 T\nWE W IY0\n")
    return root


def test_registry_entries() -> None:
    assert set(CORPORA) == {"speechocean762", "fsdd", "noise"}
    so = CORPORA["speechocean762"]
    assert so.url == "https://www.openslr.org/resources/101/speechocean762.tar.gz"
    assert so.checksum is None and so.sha256 is None  # no published checksum found: --checksum or --no-verify
    assert so.size == 520810923  # the size the corpus's Kaldi recipe checks
    assert CORPORA["fsdd"].checksum is None
    assert CORPORA["fsdd"].url.endswith("free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz")
    assert CORPORA["noise"].url == "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
    assert CORPORA["noise"].checksum == "sha256:af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
    assert CORPORA["noise"].sha256 == CORPORA["noise"].checksum.split(":")[1]  # type: ignore[union-attr]
    assert CORPORA["noise"].size == 2428923189
    assert CORPORA["noise"].members is not None
    assert CORPORA["noise"].members("./_background_noise_/white_noise.wav")
    assert not CORPORA["noise"].members("./yes/0a7c2a8d_nohash_0.wav")
    assert CORPORA["fsdd"].members("free-spoken-digit-dataset-1.0.10/recordings/0_george_0.wav")
    with pytest.raises(PrepareError, match=r"unknown corpus 'fsd' \(did you mean 'fsdd'\?\)"):
        get_corpus("fsd")


def test_select_dev_speakers_rule() -> None:
    genders = {"a": "m", "b": "m", "c": "m", "d": "f", "e": "f"}
    ages = {"a": 30, "b": 6, "c": 12, "d": 9, "e": 8}
    # m by age: b(6) c(12) a(30) -> b, a ; f by age: e(8) d(9) -> e
    assert select_dev_speakers(genders, ages) == ["a", "b", "e"]


@pytest.mark.corpus
def test_select_dev_speakers_reproduces_reference_dev(speechocean_dir: Path) -> None:
    dev = speechocean_dir / "dev"
    genders = dict(line.split() for line in (dev / "spk2gender").read_text().splitlines())
    ages = {s: int(a) for s, a in (line.split() for line in (dev / "spk2age").read_text().splitlines())}
    for item in TEST_ONLY_SPEAKERS.split(","):
        spk, gender, age = item.split()
        genders[spk], ages[spk] = gender, int(age)
    assert len(genders) == 125
    assert select_dev_speakers(genders, ages) == sorted((dev / "spk2gender").read_text().split()[::2])


def test_convert_speechocean762(tmp_path: Path) -> None:
    src = make_speechocean_release(tmp_path / "src")
    before = sorted(p.relative_to(src) for p in src.rglob("*"))
    dest = tmp_path / "speechocean762"
    convert_speechocean762(src, dest)
    assert sorted(p.relative_to(src) for p in src.rglob("*")) == before  # source untouched

    assert (dest / "train" / "wav.scp").read_text().splitlines()[0] == "000010011 audio/SPEAKER0001/000010011.ogg"
    train = read_kaldi_dir(dest / "train")
    assert train.speakers() == ["0001", "0005"] and len(train) == 4
    assert train.check_files() == []
    assert train["000050011"].extra == {"gender": "f", "age": 30}
    dev = read_kaldi_dir(dest / "dev")
    # test m by (age, id): 0003(6) 0044(6) 1030(27) -> 0003, 1030 ; f: 0049(7) 0024(25) -> 0049
    assert dev.speakers() == ["0003", "0049", "1030"]
    assert dev.check_files() == []
    assert (dest / "dev" / "spk2gender").read_text() == "0003 m\n0049 f\n1030 m\n"
    info = soundfile.info(str(dev[0].path))
    assert info.format == "OGG" and info.samplerate == 16000
    assert sorted(p.name for p in (dest / "audio").iterdir()) == [
        "SPEAKER0001", "SPEAKER0003", "SPEAKER0005", "SPEAKER0024", "SPEAKER0044", "SPEAKER0049", "SPEAKER1030"
    ]
    assert (dest / "lexicon.txt").read_text() == "BEAR\tB EH0 R\nCALL\tK AO0 L\nIT\tIH0 T\nWE\tW IY0\n"


def test_convert_speechocean762_writes_the_other_test_speakers_as_test(tmp_path: Path) -> None:
    """test/ is the half of the release's test speakers that dev/ leaves out: disjoint from dev/
    and train/, in dev/'s Kaldi layout; dev/ is the same selection as before test/ existed."""
    dest = tmp_path / "speechocean762"
    convert_speechocean762(make_speechocean_release(tmp_path / "src"), dest)
    train, dev, test = (read_kaldi_dir(dest / split) for split in ("train", "dev", "test"))
    assert test.speakers() == ["0024", "0044"]  # the test speakers select_dev_speakers does not pick
    assert dev.speakers() == ["0003", "0049", "1030"]
    release_test = {s for s, _, _, split in FAKE_SPEAKERS if split == "test"}
    assert set(test.speakers()) | set(dev.speakers()) == release_test
    assert not set(test.speakers()) & set(dev.speakers()) and not set(test.speakers()) & set(train.speakers())
    assert not {u.id for u in test} & ({u.id for u in dev} | {u.id for u in train})
    assert sorted(p.name for p in (dest / "test").iterdir()) == sorted(p.name for p in (dest / "dev").iterdir()) == [
        "spk2age", "spk2gender", "text", "utt2spk", "wav.scp"]
    assert (dest / "test" / "wav.scp").read_text() == (
        "000240011 audio/SPEAKER0024/000240011.ogg\n000240035 audio/SPEAKER0024/000240035.ogg\n"
        "000440011 audio/SPEAKER0044/000440011.ogg\n000440035 audio/SPEAKER0044/000440035.ogg\n")
    assert (dest / "test" / "spk2gender").read_text() == "0024 f\n0044 m\n"
    assert (dest / "test" / "spk2age").read_text() == "0024 25\n0044 6\n"
    assert (dest / "test" / "text").read_text().splitlines()[0] == "000240011 WE CALL IT BEAR"
    assert test.check_files() == [] and test["000440011"].extra == {"gender": "m", "age": 6}
    # dev/ as the selection wrote it before test/ existed
    assert (dest / "dev" / "utt2spk").read_text() == (
        "000030011 0003\n000030035 0003\n000490011 0049\n000490035 0049\n010300011 1030\n010300035 1030\n")
    assert (dest / "dev" / "spk2age").read_text() == "0003 6\n0049 7\n1030 27\n"


def test_convert_speechocean762_rejects_other_folders(tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match="no speechocean762 release found"):
        convert_speechocean762(tmp_path, tmp_path / "out")


def test_convert_fsdd_and_noise(tmp_path: Path) -> None:
    src = tmp_path / "fsdd-src" / "free-spoken-digit-dataset-1.0.10"
    tone(src / "recordings" / "3_theo_7.wav", rate=8000)
    tone(src / "recordings" / "0_george_0.wav", rate=8000)
    convert_fsdd(tmp_path / "fsdd-src", tmp_path / "fsdd")
    m = fsdd_manifest(tmp_path / "fsdd")
    assert m.ids == ["0_george_0", "3_theo_7"]
    assert m["3_theo_7"].speaker == "theo" and m["3_theo_7"].text == "THREE"
    assert m["3_theo_7"].extra == {"digit": 3, "index": 7}

    noise_src = tmp_path / "sc"
    tone(noise_src / "_background_noise_" / "white_noise.wav", seconds=0.5)
    tone(noise_src / "yes" / "x.wav")
    convert_speech_commands_noise(noise_src, tmp_path / "noise")
    assert [p.name for p in (tmp_path / "noise").iterdir()] == ["white_noise.flac"]
    data, rate = soundfile.read(str(tmp_path / "noise" / "white_noise.flac"))
    ref, _ = soundfile.read(str(noise_src / "_background_noise_" / "white_noise.wav"))
    assert rate == 16000 and np.array_equal(data, ref)  # lossless

    with pytest.raises(PrepareError, match="no FSDD recordings/ folder"):
        convert_fsdd(noise_src, tmp_path / "x")
    with pytest.raises(PrepareError, match="no _background_noise_/ folder"):
        convert_speech_commands_noise(src, tmp_path / "y")


@pytest.mark.corpus
def test_real_fsdd_and_noise_manifests(fsdd_dir: Path, noise_dir: Path) -> None:
    m = fsdd_manifest(fsdd_dir)
    assert len(m) == 3000 and len(m.speakers()) == 6
    assert {u.text for u in m} == {"ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE"}
    noise = noise_manifest(noise_dir)
    assert len(noise) == 6 and "white_noise" in noise
    assert CORPORA["fsdd"].check(fsdd_dir) == [] and CORPORA["noise"].check(noise_dir) == []

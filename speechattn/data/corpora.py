"""Registry of the public corpora speechattn uses, and converters to its layout.

Each :class:`Corpus` names its original download (URL, archive name, and the
published checksum where one could be verified), the folder it occupies under the
data root, a converter from the extracted original archive to the prepared layout,
and a layout check.

Prepared layouts (what ``/work/shared/data`` holds, and what
:func:`speechattn.data.prepare.prepare_corpus` produces):

``speechocean762/``
    ``train/``, ``dev/`` and ``test/`` Kaldi data dirs (``wav.scp`` with paths relative
    to ``speechocean762/``, ``utt2spk``, ``text``, ``spk2gender``, ``spk2age``),
    ``audio/SPEAKERxxxx/<utt>.ogg`` and ``lexicon.txt`` (``WORD<TAB>PHONES``).
    ``train/`` is the corpus's train set as is; ``dev/`` is half of the corpus's
    test speakers, chosen by :func:`select_dev_speakers` (for model selection, early
    stopping, thresholds); ``test/`` is the other half (reported only: a recipe's
    ``data.test``). A prepared copy imported with ``--from`` keeps what it has: the
    reference copy (``/work/shared/data``) has only ``train/`` and ``dev/``.
``fsdd/``
    ``recordings/DIGIT_SPEAKER_INDEX.wav`` (8 kHz WAV, copied unchanged).
``noise/``
    the Speech Commands ``_background_noise_`` recordings as FLAC (lossless).
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from speechattn.data.kaldi import read_kaldi_dir
from speechattn.data.manifest import Manifest, ManifestError, Utterance

__all__ = [
    "CORPORA",
    "Corpus",
    "PrepareError",
    "convert_fsdd",
    "convert_speech_commands_noise",
    "convert_speechocean762",
    "fsdd_manifest",
    "get_corpus",
    "noise_manifest",
    "select_dev_speakers",
]


class PrepareError(RuntimeError):
    """A corpus cannot be downloaded, extracted, converted or imported."""


@dataclass(frozen=True)
class Corpus:
    """One public corpus: where it comes from and how it is laid out here.

    Attributes:
        name: registry key (``speechattn data prepare NAME``).
        folder: folder under the data root.
        url: the original public download.
        archive_name: file name the download is stored under.
        checksum: the archive's published checksum, ``"sha256:HEX"`` or ``"md5:HEX"``
            (whichever the publisher gives), or None where no published value could be
            verified: downloading it then needs a checksum from the user
            (``--checksum``) or an explicit ``--no-verify``.
        size: the archive's published size in bytes (checked with the checksum), or None.
        convert: ``convert(extracted_dir, dest_dir)`` builds the prepared layout
            in ``dest_dir`` from an extracted original archive, reading only.
        check: ``check(dir)`` lists what is missing from a prepared layout.
        members: predicate on archive member names: extract only those (None: all).
    """

    name: str
    folder: str
    url: str
    archive_name: str
    checksum: str | None
    description: str
    license: str
    homepage: str
    download_size: str | None
    convert: Callable[[Path, Path], None]
    check: Callable[[Path], list[str]]
    members: Callable[[str], bool] | None = None
    size: int | None = None

    @property
    def sha256(self) -> str | None:
        """The published SHA-256 (hex), if the pinned checksum is one."""
        if self.checksum is None or not self.checksum.lower().startswith("sha256:"):
            return None
        return self.checksum.split(":", 1)[1].lower()


# --------------------------------------------------------------------------- helpers

def _find_dir(root: Path, test: Callable[[Path], bool], max_depth: int = 3) -> Path | None:
    """First directory at or below ``root`` (breadth first, sorted) that passes ``test``."""
    level = [root]
    for _ in range(max_depth + 1):
        nxt: list[Path] = []
        for d in level:
            if test(d):
                return d
            try:
                nxt.extend(sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")))
            except OSError:
                continue
        level = nxt
    return None


def _map_threads(fn: Callable[[tuple[Path, Path]], None], jobs: Iterable[tuple[Path, Path]]) -> None:
    jobs = list(jobs)
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        for _ in pool.map(fn, jobs):
            pass


def _convert_audio(src: Path, dst: Path, audio_format: str) -> None:
    """Copy (``wav``) or re-encode (``ogg`` Vorbis q0.5, ``flac`` 16-bit) one file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if audio_format == "wav":
        shutil.copyfile(src, dst)
        return
    import soundfile

    try:
        data, rate = soundfile.read(str(src), dtype="float32", always_2d=False)
        if audio_format == "ogg":
            # compression_level 0.5 = Vorbis quality 0.5 (libsndfile maps quality = 1 - level)
            soundfile.write(str(dst), data, rate, format="OGG", subtype="VORBIS", compression_level=0.5)
        elif audio_format == "flac":
            soundfile.write(str(dst), data, rate, format="FLAC", subtype="PCM_16")
        else:
            raise ValueError(f"unknown audio format {audio_format!r} (expected 'ogg', 'flac' or 'wav')")
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise PrepareError(f"{src}: cannot convert to {audio_format}: {exc}") from exc


def _write_table(path: Path, rows: Iterable[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k} {v}".rstrip() + "\n" for k, v in rows), encoding="utf-8")


def _missing(root: Path, files: Iterable[str], dirs: Iterable[str] = ()) -> list[str]:
    problems = [f"missing {f}" for f in files if not (root / f).is_file()]
    problems += [f"missing {d}/" for d in dirs if not (root / d).is_dir()]
    return problems


# --------------------------------------------------------------------------- speechocean762

SPEECHOCEAN_FILES = ("train/wav.scp", "train/utt2spk", "train/text", "dev/wav.scp", "dev/utt2spk", "dev/text", "lexicon.txt")


def check_speechocean762(root: Path) -> list[str]:
    """What is missing from a prepared ``speechocean762/`` folder (empty: complete)."""
    if not root.is_dir():
        return [f"{root} is not a directory"]
    return _missing(root, SPEECHOCEAN_FILES, ["audio"])


def select_dev_speakers(genders: Mapping[str, str], ages: Mapping[str, int]) -> list[str]:
    """The half of speechocean762's test speakers that forms ``dev/``.

    Rule (it reproduces the dev/ folder of the reference copy exactly): group the
    test speakers by gender; within each group sort by (age, speaker id) and take
    every other speaker starting with the first (positions 0, 2, 4, ...). The
    split is thus balanced in gender and spread over the whole age range;
    for the 125 test speakers (67 m, 58 f) it gives 34 + 29 = 63 speakers.
    Speakers without an age sort first (age -1). Returns sorted speaker ids.
    """
    groups: dict[str, list[str]] = {}
    for spk in genders:
        groups.setdefault(genders[spk], []).append(spk)
    chosen: list[str] = []
    for gender in sorted(groups):
        ordered = sorted(groups[gender], key=lambda s: (ages.get(s, -1), s))
        chosen.extend(ordered[::2])
    return sorted(chosen)


def _speaker_table(path: Path, speakers: set[str]) -> dict[str, str]:
    """Read spk2gender/spk2age, mapping ``SPEAKER0001`` keys onto ``0001`` when needed."""
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise PrepareError(f"{path}:{lineno}: expected '<speaker> <value>', got {line!r}")
        spk, value = parts
        if spk not in speakers and spk.upper().startswith("SPEAKER") and spk[7:] in speakers:
            spk = spk[7:]
        out[spk] = value
    return out


def _normalise_lexicon(src: Path, dst: Path) -> None:
    """``WORD PH ON ES`` with irregular spacing -> ``WORD<TAB>PH ON ES``; exact duplicates dropped."""
    seen: set[tuple[str, str]] = set()
    lines: list[str] = []
    for lineno, line in enumerate(src.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise PrepareError(f"{src}:{lineno}: expected '<word> <phones...>', got {line!r}")
        entry = (parts[0], " ".join(parts[1:]))
        if entry not in seen:
            seen.add(entry)
            lines.append(f"{entry[0]}\t{entry[1]}\n")
    dst.write_text("".join(lines), encoding="utf-8")


def convert_speechocean762(src: Path, dest: Path, *, audio_format: str = "ogg") -> None:
    """Build the prepared speechocean762 layout in ``dest`` from the original release.

    ``src`` is (or contains, up to 3 levels down) the extracted OpenSLR 101
    archive: ``WAVE/SPEAKERxxxx/*.WAV``, ``train/`` and ``test/`` Kaldi dirs
    (``wav.scp`` paths relative to the release folder) and
    ``resource/lexicon.txt``. ``train/`` is kept whole; ``dev/`` holds the test
    speakers chosen by :func:`select_dev_speakers` and ``test/`` the other test
    speakers (disjoint halves of the release's test set). Audio of every split is
    re-encoded to ``audio/SPEAKERxxxx/<utt>.<audio_format>`` (``ogg`` Vorbis
    q0.5 as in the reference copy, ``flac``, or ``wav`` copied unchanged).
    The source is only read.
    """
    top = _find_dir(src, lambda d: (d / "train" / "wav.scp").is_file() and (d / "test" / "wav.scp").is_file())
    if top is None:
        raise PrepareError(f"{src}: no speechocean762 release found (expected train/wav.scp and test/wav.scp)")
    try:
        splits = {"train": read_kaldi_dir(top / "train", audio_root=top), "test": read_kaldi_dir(top / "test", audio_root=top)}
    except ManifestError as exc:
        raise PrepareError(f"malformed speechocean762 release: {exc}") from exc

    test = splits["test"]
    test_speakers = set(test.speakers())
    genders = _speaker_table(top / "test" / "spk2gender", test_speakers)
    ages_raw = _speaker_table(top / "test" / "spk2age", test_speakers)
    missing = sorted(test_speakers - set(genders))
    if missing:
        raise PrepareError(f"{top / 'test' / 'spk2gender'}: no gender for test speakers {missing[:5]}")
    ages = {s: int(a) for s, a in ages_raw.items() if a.isdigit()}
    dev_speakers = set(select_dev_speakers({s: genders[s] for s in test_speakers}, ages))
    held_out = test_speakers - dev_speakers  # test/: the half no choice ever sees

    ext = {"ogg": "ogg", "flac": "flac", "wav": "wav"}.get(audio_format)
    if ext is None:
        raise ValueError(f"unknown audio format {audio_format!r} (expected 'ogg', 'flac' or 'wav')")

    jobs: list[tuple[Path, Path]] = []
    for split, manifest, keep in (("train", splits["train"], None), ("dev", test, dev_speakers),
                                  ("test", test, held_out)):
        utts = sorted((u for u in manifest if keep is None or u.speaker in keep), key=lambda u: u.id)
        speakers = sorted({u.speaker for u in utts if u.speaker is not None})
        spk_dir = top / ("train" if split == "train" else "test")
        g = _speaker_table(spk_dir / "spk2gender", set(speakers))
        a = _speaker_table(spk_dir / "spk2age", set(speakers))
        rel = {u.id: f"audio/{u.path.parent.name}/{u.path.stem}.{ext}" for u in utts}
        out = dest / split
        _write_table(out / "wav.scp", ((u.id, rel[u.id]) for u in utts))
        _write_table(out / "utt2spk", ((u.id, u.speaker or "") for u in utts))
        _write_table(out / "text", ((u.id, u.text or "") for u in utts))
        _write_table(out / "spk2gender", ((s, g[s]) for s in speakers if s in g))
        _write_table(out / "spk2age", ((s, a[s]) for s in speakers if s in a))
        for u in utts:
            if not u.path.is_file():
                raise PrepareError(f"{u.path}: audio of {u.id!r} listed in {spk_dir / 'wav.scp'} is missing")
            jobs.append((u.path, dest / rel[u.id]))

    lexicon = top / "resource" / "lexicon.txt"
    if not lexicon.is_file():
        lexicon = top / "lexicon.txt"
    if not lexicon.is_file():
        raise PrepareError(f"{top}: missing resource/lexicon.txt")
    _normalise_lexicon(lexicon, dest / "lexicon.txt")
    _map_threads(lambda job: _convert_audio(job[0], job[1], audio_format), jobs)


# --------------------------------------------------------------------------- FSDD

FSDD_NAME_RE = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
DIGIT_WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")


def check_fsdd(root: Path) -> list[str]:
    """What is missing from a prepared ``fsdd/`` folder (empty: complete)."""
    rec = root / "recordings"
    if not rec.is_dir():
        return ["missing recordings/"]
    if not any(rec.glob("*.wav")):
        return ["no .wav files in recordings/"]
    return []


def convert_fsdd(src: Path, dest: Path) -> None:
    """Copy ``recordings/*.wav`` of the extracted FSDD release into ``dest/recordings/``."""
    rec = _find_dir(src, lambda d: d.name == "recordings" and any(d.glob("*.wav")))
    if rec is None:
        raise PrepareError(f"{src}: no FSDD recordings/ folder with .wav files found")
    files = sorted(p for p in rec.glob("*.wav") if FSDD_NAME_RE.match(p.name))
    if not files:
        raise PrepareError(f"{rec}: no files named DIGIT_SPEAKER_INDEX.wav")
    out = dest / "recordings"
    out.mkdir(parents=True, exist_ok=True)
    _map_threads(lambda job: _convert_audio(job[0], job[1], "wav"), ((f, out / f.name) for f in files))


def fsdd_manifest(fsdd_dir: Path | str) -> Manifest:
    """Manifest of ``fsdd/recordings``: speaker from the file name, text the digit word.

    ``extra`` holds ``digit`` (int) and ``index`` (int). Ids are the file stems.
    """
    rec = Path(fsdd_dir) / "recordings"
    if not rec.is_dir():
        raise ManifestError(f"{rec}: not a directory")
    utts = []
    for p in sorted(rec.glob("*.wav")):
        m = FSDD_NAME_RE.match(p.name)
        if m is None:
            raise ManifestError(f"{p}: expected a name DIGIT_SPEAKER_INDEX.wav")
        digit, speaker, index = int(m.group(1)), m.group(2), int(m.group(3))
        utts.append(Utterance(p.stem, p, speaker=speaker, text=DIGIT_WORDS[digit], extra={"digit": digit, "index": index}))
    return Manifest(utts)


# --------------------------------------------------------------------------- noise

NOISE_SUFFIXES = (".flac", ".wav")


def check_noise(root: Path) -> list[str]:
    """What is missing from a prepared ``noise/`` folder (empty: complete)."""
    if not root.is_dir():
        return [f"{root} is not a directory"]
    if not any(p.suffix.lower() in NOISE_SUFFIXES for p in root.iterdir()):
        return ["no .flac or .wav files"]
    return []


def convert_speech_commands_noise(src: Path, dest: Path, *, audio_format: str = "flac") -> None:
    """Convert ``_background_noise_/*.wav`` of Speech Commands to ``dest/<name>.flac``.

    ``audio_format="wav"`` keeps the original WAV files.
    """
    noise = _find_dir(src, lambda d: d.name == "_background_noise_")
    if noise is None:
        raise PrepareError(f"{src}: no _background_noise_/ folder found")
    files = sorted(noise.glob("*.wav"))
    if not files:
        raise PrepareError(f"{noise}: no .wav files")
    dest.mkdir(parents=True, exist_ok=True)
    _map_threads(
        lambda job: _convert_audio(job[0], job[1], audio_format),
        ((f, dest / f"{f.stem}.{audio_format}") for f in files),
    )


def noise_manifest(noise_dir: Path | str) -> Manifest:
    """Manifest of the noise recordings (ids are the file stems, no speaker)."""
    root = Path(noise_dir)
    if not root.is_dir():
        raise ManifestError(f"{root}: not a directory")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in NOISE_SUFFIXES)
    return Manifest(Utterance(p.stem, p) for p in files)


# --------------------------------------------------------------------------- registry

CORPORA: dict[str, Corpus] = {
    "speechocean762": Corpus(
        name="speechocean762",
        folder="speechocean762",
        url="https://www.openslr.org/resources/101/speechocean762.tar.gz",
        archive_name="speechocean762.tar.gz",
        # No published checksum could be found and verified offline: a download needs
        # --checksum md5:HEX or sha256:HEX (e.g. from https://www.openslr.org/101/) or
        # --no-verify. The size is the one the corpus's authors check in their Kaldi recipe
        # (kaldi-asr/kaldi egs/gop_speechocean762/s5/local/download_and_untar.sh, ref_size),
        # checked whenever the download is verified.
        checksum=None,
        size=520810923,
        description="read English by Mandarin L1 speakers, word transcripts (train 125 spk, dev 63 spk, test 62 spk)",
        license="CC BY 4.0",
        homepage="https://www.openslr.org/101/",
        download_size="521 MB",
        convert=convert_speechocean762,
        check=check_speechocean762,
    ),
    "fsdd": Corpus(
        name="fsdd",
        folder="fsdd",
        url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz",
        archive_name="free-spoken-digit-dataset-1.0.10.tar.gz",
        # No published checksum for v1.0.10 (TensorFlow Datasets pins only v1.0.9, which has
        # 5 speakers, not 6), and GitHub-generated tag archives are not guaranteed to be
        # byte-stable: a download needs --checksum sha256:HEX or --no-verify.
        checksum=None,
        description="Free Spoken Digit Dataset: digits 0-9, 6 speakers, 3000 files, 8 kHz",
        license="CC BY-SA 4.0",
        homepage="https://github.com/Jakobovski/free-spoken-digit-dataset",
        download_size=None,
        convert=convert_fsdd,
        check=check_fsdd,
        members=lambda name: "/recordings/" in f"/{name}",
    ),
    "noise": Corpus(
        name="noise",
        folder="noise",
        url="http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
        archive_name="speech_commands_v0.02.tar.gz",
        # As published by torchaudio (torchaudio/datasets/speechcommands.py, _CHECKSUMS) and
        # TensorFlow Datasets (tensorflow_datasets/url_checksums/speech_commands.txt: size and
        # sha256).
        checksum="sha256:af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
        size=2428923189,
        description="Speech Commands v0.02 background noise (6 recordings), as FLAC",
        license="CC BY 4.0",
        homepage="https://arxiv.org/abs/1804.03209",
        download_size="2.4 GB (only _background_noise_/ is kept)",
        convert=convert_speech_commands_noise,
        check=check_noise,
        members=lambda name: "_background_noise_/" in name,
    ),
}


def get_corpus(name: str) -> Corpus:
    """The registry entry ``name``; unknown names raise with a suggestion."""
    try:
        return CORPORA[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(CORPORA), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PrepareError(f"unknown corpus {name!r}{hint}; known corpora: {', '.join(sorted(CORPORA))}") from None

"""Label readers (RTTM, TextGrid, frame files), frame targets and labelled-data resolution."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from speechattn.data.labelled import load_labelled
from speechattn.data.labels import (
    FrameGrid,
    LabelError,
    Segment,
    apply_label_map,
    frame_targets,
    merge_segments,
    read_frame_labels,
    read_label_file,
    read_rttm,
    read_textgrid,
    rttm_file_id,
    segments_to_frames,
    write_frame_labels,
    write_rttm,
    write_textgrid,
)

SHORT_TEXTGRID = """File type = "ooTextFile"
Object class = "TextGrid"

0
3.5
<exists>
2
"IntervalTier"
"words"
0
3.5
3
0
1.0
""
1.0
2.25
"hello there"
2.25
3.5
""
"TextTier"
"points"
0
3.5
1
1.5
"x"
"""


# ----------------------------------------------------------------------------- RTTM

def test_rttm_round_trip_and_other_record_types(tmp_path):
    segs = [Segment(0.5, 1.25, "alice"), Segment(1.0, 2.0, "bob")]
    buf = io.StringIO()
    write_rttm("meeting", segs, buf)
    path = tmp_path / "a.rttm"
    path.write_text(";; comment\nSPKR-INFO meeting 1 <NA> <NA> <NA> unknown alice <NA> <NA>\n" + buf.getvalue()
                    + "SPEAKER other 1 3.0 0.5 <NA> <NA> carol <NA> <NA>\nSPEAKER other 1 4.0 0 <NA> <NA> carol <NA> <NA>\n")
    out = read_rttm(path)
    assert out["meeting"] == segs
    assert out["other"] == [Segment(3.0, 3.5, "carol")]  # the zero-length segment is dropped


@pytest.mark.parametrize("name, file_id", [
    ("meeting", "meeting"),
    ("meeting 2024", "meeting_2024"),
    ("  two  blanks ", "__two__blanks_"),  # one _ per character: the id keeps the name's length
    ("tab\tnew\nline\rcr", "tab_new_line_cr"),
    ("no\u00a0break\u2003em\u3000wide", "no_break_em_wide"),  # no-break, em and ideographic spaces
    ("señal_日本語-ünï.v2", "señal_日本語-ünï.v2"),  # anything else is kept
    ("", "unnamed"),
])
def test_rttm_file_id_of_any_name_is_valid_and_reads_back(name, file_id):
    assert rttm_file_id(name) == file_id
    buf = io.StringIO()
    write_rttm(rttm_file_id(name), [Segment(0.5, 1.0, "speech")], buf)
    assert buf.getvalue() == f"SPEAKER {file_id} 1 0.500 0.500 <NA> <NA> speech <NA> <NA>\n"
    assert len(buf.getvalue().split()) == 10
    if name != file_id:  # the writer itself stays strict
        with pytest.raises(ValueError, match="cannot be empty or contain blanks"):
            write_rttm(name, [], io.StringIO())


@pytest.mark.parametrize("line, problem", [
    ("SPEAKER f 1 abc 1.0 <NA> <NA> s <NA> <NA>", "must be numbers"),
    ("SPEAKER f 1 1.0 -2 <NA> <NA> s <NA> <NA>", ">= 0"),
    ("SPEAKER f 1 1.0", "at least 8 fields"),
    ("speaker f 1 0 1 <NA> <NA> s", "expected an RTTM line"),
])
def test_malformed_rttm_names_file_and_line(tmp_path, line, problem):
    path = tmp_path / "bad.rttm"
    path.write_text("SPEAKER f 1 0.0 1.0 <NA> <NA> s <NA> <NA>\n\n" + line + "\n")
    with pytest.raises(LabelError) as err:
        read_rttm(path)
    assert str(err.value).startswith(f"{path}:3: ") and problem in str(err.value)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- TextGrid

def test_textgrid_short_format_and_round_trip(tmp_path):
    short = tmp_path / "a.TextGrid"
    short.write_text(SHORT_TEXTGRID)
    assert read_textgrid(short) == [Segment(1.0, 2.25, "hello_there")]  # the only interval tier
    assert read_textgrid(short, tier="words") == read_textgrid(short)
    long = tmp_path / "b.TextGrid"
    tiers = {"speech": [Segment(0.2, 0.9, "speech"), Segment(1.5, 2.0, "speech")], "music": [Segment(0.0, 1.0, "music")]}
    write_textgrid(long, tiers, duration=2.5)
    assert read_textgrid(long, tier="speech") == tiers["speech"]
    assert read_label_file(long, tier="music") == tiers["music"]
    with pytest.raises(LabelError, match="exactly one interval tier"):
        read_textgrid(long)


def test_textgrid_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.TextGrid"
    bad.write_text(SHORT_TEXTGRID.replace("2.25\n\"hello", "0.5\n\"hello"))  # interval ends before it starts
    with pytest.raises(LabelError) as err:
        read_textgrid(bad)
    assert str(err.value).startswith(f"{bad}: not a valid TextGrid") and "\n" not in str(err.value)
    bad.write_text("not a textgrid at all")
    with pytest.raises(LabelError, match=f"^{bad}: not a valid TextGrid"):
        read_textgrid(bad)
    good = tmp_path / "good.TextGrid"
    good.write_text(SHORT_TEXTGRID)
    with pytest.raises(LabelError, match="no tier 'phones'"):
        read_textgrid(good, tier="phones")
    with pytest.raises(LabelError, match="point tier"):
        read_textgrid(good, tier="points")


# ----------------------------------------------------------------------------- frame files

def test_frame_label_file_runs_and_overlaps(tmp_path):
    path = tmp_path / "a.frames"
    path.write_text("# frame_shift 0.02\n-\nspeech\nspeech\nspeech,music\nmusic\n-\n")
    assert read_frame_labels(path) == [Segment(0.02, 0.08, "speech"), Segment(0.06, 0.1, "music")]
    # Writing at another rate and reading back keeps the segments (frame centres inside them).
    out = tmp_path / "b.frames"
    write_frame_labels(out, read_frame_labels(path), num_frames=12, frame_shift=0.01)
    assert read_frame_labels(out) == read_frame_labels(path)


@pytest.mark.parametrize("text, line, problem", [
    ("# frame_shift abc\n-\n", 1, "must be a number"),
    ("# shift 0.01\n-\n", 1, "header must be"),
    ("-\nspeech\n\n-\n", 3, "empty line"),
    ("-\nspeech, music x\n", 2, "bad label list"),
])
def test_malformed_frame_file_names_file_and_line(tmp_path, text, line, problem):
    path = tmp_path / "bad.frames"
    path.write_text(text)
    with pytest.raises(LabelError) as err:
        read_frame_labels(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and problem in str(err.value)


def test_unknown_label_format(tmp_path):
    with pytest.raises(LabelError, match="unknown label format"):
        read_label_file(tmp_path / "x.lab")


# ----------------------------------------------------------------------------- frame targets

def test_label_map_merges_and_drops():
    segs = [Segment(0.0, 1.0, "alice"), Segment(0.8, 2.0, "bob"), Segment(3.0, 4.0, "noise")]
    assert apply_label_map(segs, {"noise": "-", "*": "speech"}) == [Segment(0.0, 2.0, "speech")]
    assert merge_segments([Segment(0.0, 1.0, "a"), Segment(1.05, 2.0, "a")], gap=0.1) == [Segment(0.0, 2.0, "a")]


def test_frame_targets_single_and_multi():
    grid = FrameGrid(hop=0.1, offset=0.05)  # centres 0.05, 0.15, ...
    segs = [Segment(0.1, 0.3, "a"), Segment(0.25, 0.5, "b")]
    multi = frame_targets(segs, ["a", "b"], grid, 6, multi_label=True)
    assert multi.tolist() == [[0, 0], [1, 0], [1, 1], [0, 1], [0, 1], [0, 0]]
    single = frame_targets([Segment(0.1, 0.3, "a"), Segment(0.3, 0.5, "b")], ["a", "b"], grid, 6, multi_label=False)
    assert single.tolist() == [0, 1, 1, 2, 2, 0] and single.dtype == torch.int64
    with pytest.raises(LabelError, match=r"x.rttm: classes \['a', 'b'\] overlap at 0.25 s"):
        frame_targets(segs, ["a", "b"], grid, 6, multi_label=False, source="x.rttm")
    with pytest.raises(LabelError, match="label 'c' is not in the model's classes"):
        frame_targets([Segment(0, 1, "c")], ["a", "b"], grid, 6, multi_label=True)


def test_grid_segments_round_trip():
    grid = FrameGrid.for_model(frame_shift=0.01, frame_length=0.025, stride=4, receptive_field=7)
    assert grid.hop == pytest.approx(0.04) and grid.offset == pytest.approx(0.0425)
    active = np.zeros(50, dtype=bool)
    active[10:20] = True
    active[45:] = True
    segs = grid.to_segments(active, "speech", duration=2.03)
    assert [s.label for s in segs] == ["speech", "speech"]
    assert segs[0].start == pytest.approx(0.4225, abs=6e-4) and segs[0].end == pytest.approx(0.8225, abs=6e-4)
    assert segs[1].end == pytest.approx(2.03)  # the last frame reaches the end of the audio
    back = frame_targets(segs, ["speech"], grid, 50, multi_label=False)
    assert (back.numpy() == active).all()
    frames = segments_to_frames(segs, ["speech"], 0.01, 2.03)
    assert frames.shape == (203, 1) and frames[:, 0].sum() == 40 + 21  # centres 0.425..0.815 and 1.825..2.025


# ----------------------------------------------------------------------------- labelled data

def test_load_labelled_folder_siblings_union_and_skips(tmp_path, speechocean_dir):
    files = sorted((speechocean_dir / "audio").glob("SPEAKER0001/*.ogg"))[:4]
    for f in files:
        os.symlink(f, tmp_path / f.name)
    a, b, c, d = (f.stem for f in files)
    write_textgrid(tmp_path / f"{a}.TextGrid", {"speech": [Segment(0.5, 1.5, "speech")]}, 3.0)
    (tmp_path / f"{b}.frames").write_text("-\n-\nspeech\n")
    (tmp_path / "all.rttm").write_text(f"SPEAKER {c} 1 0.2 1.0 <NA> <NA> alice <NA> <NA>\n")
    data = load_labelled(tmp_path, label_map={"alice": "speech"})
    assert [i.id for i in data.items] == [a, b, c] and list(data.skipped) == [d]
    assert data.items[0].segments == (Segment(0.5, 1.5, "speech"),)
    assert data.items[1].segments == (Segment(0.02, 0.03, "speech"),)
    assert data.items[2].segments == (Segment(0.2, 1.2, "speech"),) and data.items[2].source.endswith("all.rttm")
    assert data.labels == ["speech"]
    (tmp_path / f"{a}.TextGrid").write_text("broken")
    with pytest.raises(LabelError, match=f"{a}.TextGrid"):
        load_labelled(tmp_path)


def test_load_labelled_matches_the_rttm_id_of_a_name_with_blanks(tmp_path, speechocean_dir):
    """The RTTM that `speechattn label` writes for "meeting 2024.ogg" (id meeting_2024) labels it;
    an id equal to the stem itself still wins."""
    src = sorted((speechocean_dir / "audio").glob("SPEAKER0001/*.ogg"))[0]
    os.symlink(src, tmp_path / "meeting 2024.ogg")
    os.symlink(src, tmp_path / "plain.ogg")
    (tmp_path / "all.rttm").write_text("SPEAKER meeting_2024 1 0.2 1.0 <NA> <NA> speech <NA> <NA>\n"
                                       "SPEAKER plain 1 0.5 1.0 <NA> <NA> speech <NA> <NA>\n")
    data = load_labelled(tmp_path)
    assert [(i.id, i.segments) for i in data.items] == [("meeting 2024", (Segment(0.2, 1.2, "speech"),)),
                                                        ("plain", (Segment(0.5, 1.5, "speech"),))]
    assert not data.skipped


def test_frame_grid_round_trips_through_its_stored_form():
    grid = FrameGrid.for_model(0.01, 0.025, 4, 7)
    assert FrameGrid.from_dict(grid.to_dict()) == grid
    assert FrameGrid.from_dict({"hop": "0.04", "offset": 0}) == FrameGrid(0.04, 0.0)
    with pytest.raises(KeyError):
        FrameGrid.from_dict({"hop": 0.04})

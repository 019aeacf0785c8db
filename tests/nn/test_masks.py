import torch

from speechattn.nn.masks import frame_mask


def test_frame_mask_marks_frames_before_each_length():
    mask = frame_mask(torch.tensor([3, 0, 5]), 5)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [
        [True, True, True, False, False],
        [False, False, False, False, False],
        [True, True, True, True, True],
    ]


def test_frame_mask_time_may_be_shorter_or_longer_than_the_lengths():
    assert frame_mask(torch.tensor([4]), 2).tolist() == [[True, True]]
    assert frame_mask(torch.tensor([1]), 3).tolist() == [[True, False, False]]


def test_frame_mask_device_argument_moves_the_lengths():
    mask = frame_mask(torch.tensor([2], dtype=torch.int32), 3, torch.device("cpu"))
    assert mask.device.type == "cpu" and mask.tolist() == [[True, True, False]]

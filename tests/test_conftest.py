"""The suite's own configuration: the GPU skip touches exactly the tests marked ``gpu``."""

from __future__ import annotations

import torch
from conftest import GPU_SKIP_REASON


def _skipped_for_want_of_a_gpu(item) -> bool:
    return any(m.kwargs.get("reason") == GPU_SKIP_REASON for m in item.iter_markers("skip"))


def test_only_gpu_marked_tests_are_skipped_for_want_of_a_gpu(request):
    items = request.session.items
    assert any(item.get_closest_marker("gpu") for item in items), "no test is marked gpu"
    for item in items:
        expected = item.get_closest_marker("gpu") is not None and not torch.cuda.is_available()
        assert _skipped_for_want_of_a_gpu(item) == expected, (
            f"{item.nodeid}: skipped={not expected}, but it is "
            f"{'' if item.get_closest_marker('gpu') else 'not '}marked gpu"
        )

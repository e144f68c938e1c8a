"""onnxruntime providers: names, or (name, options) pairs for providers that need options
(QNN's backend_type, the OpenVINO execution provider's device_type)."""

from __future__ import annotations

import numpy as np
import pytest

from edgembed import EdgembedError, Encoder


def test_a_provider_with_options_is_passed_to_onnxruntime(default_encoder):
    encoder = Encoder.load(providers=[("CPUExecutionProvider", {})])
    assert encoder.session.get_providers() == ["CPUExecutionProvider"]
    assert np.allclose(encoder.encode(["a pair"]), default_encoder.encode(["a pair"]),
                       atol=1e-6)
    alone = Encoder.load(providers=("CPUExecutionProvider", {}))
    assert alone.session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize("providers", [
    [("CPUExecutionProvider",)], [("CPUExecutionProvider", "options")],
    [("CPUExecutionProvider", {}, "extra")], [(5, {})]])
def test_malformed_pairs_are_refused(providers):
    with pytest.raises(EdgembedError, match="a \\(name, options dict\\) pair"):
        Encoder.load(providers=providers)


def test_an_unavailable_provider_with_options_lists_the_available_ones():
    with pytest.raises(EdgembedError, match="QNNExecutionProvider not available.*available: .*"
                                            "CPUExecutionProvider"):
        Encoder.load(providers=[("QNNExecutionProvider", {"backend_type": "htp"}),
                                "CPUExecutionProvider"])

"""extract_features on CUDA: bf16 autocast by default, close to the float32 CPU result."""
import pytest
import torch

import ijepa_hub

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_features_match_cpu(tiny_model, images):
    import copy

    encoder = copy.deepcopy(tiny_model.target_encoder)
    cpu = ijepa_hub.extract_features(encoder, images).pooled
    gpu = ijepa_hub.extract_features(encoder, images, device="cuda")
    assert gpu.pooled.device.type == "cpu" and gpu.pooled.dtype == torch.float32
    assert next(encoder.parameters()).device.type == "cuda"
    assert torch.nn.functional.cosine_similarity(gpu.pooled, cpu).min() > 0.99
    fp32 = ijepa_hub.extract_features(encoder, images, dtype=torch.float32).pooled
    assert torch.allclose(fp32, cpu, atol=1e-4, rtol=0)

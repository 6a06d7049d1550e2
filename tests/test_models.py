import math

import pytest
import torch
import torch.nn.functional as F

import ijepa_hub
from ijepa_hub.models.pos_embed import sincos_2d


def test_sincos_table_is_the_mae_layout():
    dim, grid = 16, 3
    table = sincos_2d(dim, grid)[0]
    for token in range(grid * grid):
        row, col = divmod(token, grid)
        for half, pos in ((0, col), (1, row)):  # first half: column index, second half: row index
            for i in range(dim // 4):
                omega = 1.0 / 10000 ** (i / (dim / 4))
                assert table[token, half * dim // 2 + i].item() == pytest.approx(math.sin(pos * omega), abs=1e-6)
                assert table[token, half * dim // 2 + dim // 4 + i].item() == pytest.approx(math.cos(pos * omega), abs=1e-6)


def test_pos_embed_is_fixed_and_in_state_dict(tiny_ijepa):
    enc = tiny_ijepa.context_encoder
    assert "pos_embed" in enc.state_dict() and not enc.pos_embed.requires_grad
    assert torch.equal(enc.pos_embed, sincos_2d(192, 4))
    assert torch.equal(tiny_ijepa.predictor.predictor_pos_embed, sincos_2d(96, 4))
    assert enc.cls_token is None and enc.blocks[0].norm1.eps == 1e-6 and enc.blocks[0].attn.qkv.bias is not None


def test_masked_forward_gathers_after_adding_positions(tiny_ijepa, image_batch):
    enc = tiny_ijepa.context_encoder.eval()
    full = enc(image_batch)
    perm = torch.stack([torch.randperm(16, generator=torch.Generator().manual_seed(i)) for i in range(2)])
    # attention is permutation-equivariant: a masked forward over a permutation of all tokens must
    # give the permuted full output, which holds only if positions were added before the gather
    masked = enc(image_batch, masks=[perm])
    torch.testing.assert_close(masked, torch.gather(full, 1, perm[..., None].expand(-1, -1, 192)), atol=1e-5, rtol=0)
    two = enc(image_batch, masks=[perm[:, :5], perm[:, 5:10]])
    assert two.shape == (4, 5, 192)


def test_attention_goes_through_sdpa(tiny_ijepa, image_batch, monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    tiny_ijepa.context_encoder(image_batch)
    assert len(calls) == 12


@pytest.mark.parametrize("size", [160, 448])
def test_model_built_for_224_runs_at_other_sizes(size):
    enc = ijepa_hub.create_model("vit_tiny_patch16", pred_depth=1).context_encoder.eval()
    out = enc(torch.randn(1, 3, size, size))
    assert out.shape == (1, (size // 16) ** 2, 192) and torch.isfinite(out).all()


def _to_transformers(state_dict, dim):
    out = {"embeddings.position_embeddings": state_dict["pos_embed"],
           "embeddings.patch_embeddings.projection.weight": state_dict["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": state_dict["patch_embed.proj.bias"],
           "layernorm.weight": state_dict["norm.weight"], "layernorm.bias": state_dict["norm.bias"]}
    names = {"norm1": "layernorm_before", "attn.proj": "attention.output.dense", "norm2": "layernorm_after",
             "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
    depth = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("blocks."))
    for i in range(depth):
        for ours, theirs in names.items():
            for kind in ("weight", "bias"):
                out[f"encoder.layer.{i}.{theirs}.{kind}"] = state_dict[f"blocks.{i}.{ours}.{kind}"]
        for kind in ("weight", "bias"):
            qkv = state_dict[f"blocks.{i}.attn.qkv.{kind}"]
            for j, name in enumerate(("query", "key", "value")):
                out[f"encoder.layer.{i}.attention.attention.{name}.{kind}"] = qkv[j * dim : (j + 1) * dim]
    return out


@pytest.mark.parametrize("size", [64, 96, 48])
def test_exact_parity_with_transformers_ijepa(size, tmp_path):
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    enc = ijepa_hub.create_model("vit_tiny_patch16", img_size=64, pred_depth=1).context_encoder.eval()
    with torch.no_grad():  # non-trivial norms and biases so that every mapped tensor matters
        for name, p in enc.named_parameters():
            if p.requires_grad and (name.endswith("bias") or "norm" in name):
                p.add_(torch.randn_like(p) * 0.1)
    config = transformers.IJepaConfig(
        hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768,
        image_size=64, patch_size=16, layer_norm_eps=1e-6, qkv_bias=True, hidden_act="gelu",
    )
    config.save_pretrained(tmp_path)  # a repo in the file layout of the facebook/ijepa_* mirrors
    save_file({k: v.contiguous() for k, v in _to_transformers(enc.state_dict(), 192).items()},
              str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    theirs, info = transformers.IJepaModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = theirs.eval()(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state
        ours = enc(x)
    assert ours.shape == expected.shape == (2, (size // 16) ** 2, 192)
    assert (ours - expected).abs().max().item() <= 1e-5


def test_predictor_batches_blocks_without_crosstalk(tiny_ijepa):
    torch.manual_seed(3)
    pred = tiny_ijepa.predictor.eval()
    ctx_idx = torch.tensor([[0, 1, 2, 4, 5, 6], [3, 7, 8, 9, 10, 11]])
    targets = [torch.tensor([[12, 13], [0, 1]]), torch.tensor([[14, 15], [5, 6]]), torch.tensor([[8, 9], [14, 15]])]
    z = torch.randn(2, 6, 192)
    batched = pred(z, [ctx_idx], targets)
    assert batched.shape == (6, 2, 192)
    for j, t in enumerate(targets):  # each block alone gives the same answer: blocks never attend to each other
        torch.testing.assert_close(batched[2 * j : 2 * j + 2], pred(z, ctx_idx, [t]), atol=1e-5, rtol=0)
    moved = [targets[0], torch.tensor([[2, 3], [12, 13]]), targets[2]]
    torch.testing.assert_close(pred(z, ctx_idx, moved)[:2], batched[:2], atol=1e-5, rtol=0)


def test_activation_checkpointing_gives_the_same_loss_and_gradients(tiny_ijepa, image_batch):
    ctx = [torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7]] * 2)]
    tgt = [torch.tensor([[10, 11]] * 2), torch.tensor([[14, 15]] * 2)]
    loss = tiny_ijepa(image_batch, ctx, tgt)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in tiny_ijepa.named_parameters() if p.grad is not None}
    tiny_ijepa.zero_grad()
    tiny_ijepa.set_grad_checkpointing(True)
    loss2 = tiny_ijepa(image_batch, ctx, tgt)
    loss2.backward()
    assert loss2.item() == pytest.approx(loss.item(), abs=1e-6)
    for n, g in grads.items():
        torch.testing.assert_close(dict(tiny_ijepa.named_parameters())[n].grad, g, atol=1e-6, rtol=1e-5)

import torch

from ijepa_hub.eval import knn_classify, linear_probe


def planted(n, num_classes=5, dim=32, noise=0.3, seed=0):
    """Features equal to one-hot labels (in the first dims) plus Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    feats = torch.randn(n, dim, generator=g) * noise
    feats[torch.arange(n), labels] += 1.0
    return feats, labels


def test_knn_recovers_planted_labels():
    xtr, ytr = planted(500)
    xte, yte = planted(200, seed=1)
    result = knn_classify(xtr, ytr, xte, yte, k=20)
    assert result.top1 >= 95.0 and result.top5 == 100.0
    assert torch.equal(result.predictions[:5], knn_classify(xtr, ytr, xte[:5], yte[:5]).predictions)


def test_knn_is_at_chance_on_shuffled_labels():
    xtr, ytr = planted(500)
    xte, yte = planted(400, seed=1)
    shuffled = ytr[torch.randperm(len(ytr), generator=torch.Generator().manual_seed(3))]
    assert knn_classify(xtr, shuffled, xte, yte).top1 < 35.0  # chance is 20 %


def test_knn_weights_close_neighbours_more():
    train = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
    labels = torch.tensor([0, 1, 1])
    # k=3: two farther class-1 neighbours against one identical class-0 neighbour; a low temperature
    # lets the closest one win, a high temperature lets the majority win
    query = torch.tensor([[1.0, 0.0]])
    assert knn_classify(train, labels, query, torch.tensor([0]), k=3, temperature=0.01).top1 == 100.0
    assert knn_classify(train, labels, query, torch.tensor([0]), k=3, temperature=100.0).top1 == 0.0


def test_linear_probe_recovers_planted_labels_and_selects_on_validation():
    xtr, ytr = planted(400, noise=0.2)
    xte, yte = planted(200, noise=0.2, seed=1)
    sweep = dict(lrs=(1e-3, 1e-1), weight_decays=(0.0, 1e-2), steps=100)
    result = linear_probe(xtr, ytr, xte, yte, **sweep)
    assert result.top1 >= 95.0
    assert len(result.sweep) == 4
    assert max(r["val_top1"] for r in result.sweep) == result.val_top1
    noise_only = linear_probe(torch.randn(400, 32), ytr, torch.randn(200, 32), yte, **sweep)
    assert noise_only.top1 < 40.0

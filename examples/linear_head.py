"""A linear classifier on frozen I-JEPA features: extract once, then fit a head (the paper's protocol).

    python examples/linear_head.py --model runs/default/model                       # synthetic shapes
    python examples/linear_head.py --model ijepa_vith14_1k --data /data/flowers     # class subfolders

Features are cached (~/.cache/ijepa_hub/features), so a second run only fits the head. The learning
rate and weight decay are chosen on a held-out 20 % of the training split.
"""
import argparse

import torch

import ijepa_hub
from ijepa_hub.eval import labelled_splits
from ijepa_hub.eval.linear import train_linear
from ijepa_hub.eval.probes import evaluate_linear, split_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="registry name, Hub repo id, folder or .pth.tar")
    parser.add_argument("--data", default="synthetic", help="folder with one subfolder per class, or 'synthetic'")
    parser.add_argument("--label", choices=("shape", "count"), default="shape", help="synthetic data only")
    parser.add_argument("--layers", type=int, default=4, help="4: last four blocks concatenated; 1: last layer")
    parser.add_argument("--save-head", default=None, help="write the fitted head (state dict) here")
    args = parser.parse_args()

    model = ijepa_hub.from_pretrained(args.model)
    splits = labelled_splits(args.data, label=args.label)
    result = evaluate_linear(model.encoder, splits, layers=args.layers)
    print(f"{splits.name}: {len(splits.classes)} classes, {result['num_train']} train / {result['num_test']} test images")
    print(f"linear probe top-1 {result['top1']:.1f} % (lr {result['lr']:g}, weight decay {result['weight_decay']:g}, "
          f"held-out top-1 {result['val_top1']:.1f} %)")
    if args.save_head:
        train, _ = split_features(model.encoder, splits, layers=args.layers)  # from the cache
        mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
        head = train_linear((train - mean) / std, splits.train_labels, len(splits.classes),
                            lr=result["lr"], weight_decay=result["weight_decay"])
        torch.save({"head": head.state_dict(), "mean": mean, "std": std, "classes": splits.classes,
                    "layers": args.layers}, args.save_head)
        print(f"wrote {args.save_head}")


if __name__ == "__main__":
    main()

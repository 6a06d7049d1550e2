"""Features of your images from a pretrained I-JEPA encoder.

    python examples/extract_features.py photo1.jpg photo2.png            # ViT-H/14 IN-1K (downloads ~2.5 GB)
    python examples/extract_features.py --model runs/default/model a.jpg # a model you trained
    python examples/extract_features.py --model ijepa_vith14_1k --layers 4 --out feats.pt images/*.jpg

`pooled` is the paper's feature (mean of the per-token normed patch features of the target encoder);
`--layers 4` concatenates the last four blocks, the feature of the paper's linear probe.

Raw cosine similarities of pooled features can all be high: every image shares one component (the mean
of the per-token normed features), and the differences between images ride on top of it. The built-in
default run gave 1.00 for every pair before it adopted the VICReg terms (docs/anticollapse-sweep.md); it
now gives 0.36-0.85 between six synthetic images. With three or more images the script also prints the similarities after
subtracting the mean over the given images, where related images stand out; use those (or a probe) to
judge what a model learned.
"""
import argparse

import torch

import ijepa_hub


def print_similarities(title: str, paths: list[str], features: torch.Tensor) -> None:
    unit = torch.nn.functional.normalize(features.float(), dim=1)
    print(title)
    for path, row in zip(paths, (unit @ unit.T).tolist()):
        print(f"  {path:>30s}  " + " ".join(f"{v:5.2f}" for v in row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="image files (any format Pillow reads)")
    parser.add_argument("--model", default="ijepa_vith14_1k", help="registry name, Hub repo id, folder or .pth.tar")
    parser.add_argument("--encoder", choices=("target", "context"), default="target")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--out", default=None, help="save {'paths', 'pooled', 'patch_tokens'} with torch.save")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = ijepa_hub.from_pretrained(args.model, encoder=args.encoder, device=device)
    feats = model.extract_features(args.images, layers=args.layers, batch_size=16)
    print(f"{args.model} ({args.encoder} encoder): pooled {tuple(feats.pooled.shape)}, "
          f"patch tokens {tuple(feats.patch_tokens.shape)}")
    if len(args.images) > 1:
        print_similarities("cosine similarity of the pooled features:", args.images, feats.pooled)
    if len(args.images) > 2:
        centred = feats.pooled - feats.pooled.mean(dim=0, keepdim=True)
        print_similarities("... after subtracting their mean (the component every image shares):", args.images, centred)
    if args.out:
        torch.save({"paths": args.images, "pooled": feats.pooled, "patch_tokens": feats.patch_tokens}, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

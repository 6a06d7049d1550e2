"""Features of your images from a pretrained I-JEPA encoder.

    python examples/extract_features.py photo1.jpg photo2.png            # ViT-H/14 IN-1K (downloads ~2.5 GB)
    python examples/extract_features.py --model runs/default/model a.jpg # a model you trained
    python examples/extract_features.py --model ijepa_vith14_1k --layers 4 --out feats.pt images/*.jpg

`pooled` is the paper's feature (mean of the per-token normed patch features of the target encoder);
`--layers 4` concatenates the last four blocks, the feature of the paper's linear probe.
"""
import argparse

import torch

import ijepa_hub


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
        sims = torch.nn.functional.normalize(feats.pooled, dim=1) @ torch.nn.functional.normalize(feats.pooled, dim=1).T
        print("cosine similarity of the pooled features:")
        for path, row in zip(args.images, sims.tolist()):
            print(f"  {path:>30s}  " + " ".join(f"{v:5.2f}" for v in row))
    if args.out:
        torch.save({"paths": args.images, "pooled": feats.pooled, "patch_tokens": feats.patch_tokens}, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Pretrain I-JEPA on your own folder of images, then check what it learned.

    python examples/train_on_folder.py /data/my_images --out runs/mine                # 1 GPU or CPU
    torchrun --nproc_per_node 4 examples/train_on_folder.py /data/my_images --out runs/mine
    python examples/train_on_folder.py /data/my_images --out runs/mine --set optim.lr=5e-4 --set optim.epochs=50

The folder is searched recursively (class subfolders optional). The recipe starts from
`modest_vit_tiny`; `--set key=value` overrides any recipe key (the same keys as `ijepa-train --help`).
Stop it at any time (Ctrl-C loses at most `train.checkpoint_every` steps; SIGTERM checkpoints first)
and run it again with `--resume`.
"""
import argparse

import yaml

import ijepa_hub
from ijepa_hub.recipe import recipe_from_dict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="folder of images, or .tar shards")
    parser.add_argument("--out", default="runs/my_images")
    parser.add_argument("--recipe", default="modest_vit_tiny", help="a shipped recipe name or a YAML file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override, repeatable")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    args = parser.parse_args()

    config = ijepa_hub.load_recipe(args.recipe).to_dict()
    config["data"].update(path=args.data, dataset="custom")
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if section not in config or not name:
            raise SystemExit(f"--set {item}: use SECTION.KEY=VALUE with a section among {sorted(config)}")
        config[section][name] = yaml.safe_load(value)  # numbers, lists, booleans as in the recipe files
    recipe = recipe_from_dict(config)  # validated: a bad key is named

    result = ijepa_hub.train.train(recipe, out_dir=args.out, resume="auto" if args.resume else None)
    print(f"trained steps {result.start_step} -> {result.step}; loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}"
          if result.losses else f"nothing to do: the run in {args.out} is complete")
    if result.export_dir:
        print(f"model: {result.export_dir}  (ijepa_hub.from_pretrained({str(result.export_dir)!r}))")
        print(f"curves: ijepa-eval curves {args.out} {args.out}/curves.png")


if __name__ == "__main__":
    main()

"""Pretrain I-JEPA on your own folder of images, then check what it learned.

    python examples/train_on_folder.py /data/my_images --out runs/mine                # 1 GPU or CPU
    torchrun --nproc_per_node 4 examples/train_on_folder.py /data/my_images --out runs/mine
    python examples/train_on_folder.py /data/my_images --out runs/mine --optim.lr 5e-4 --optim.epochs 50

The folder is searched recursively (class subfolders optional). The recipe starts from
`modest_vit_tiny`; any other option is a recipe override, parsed by the trainer's own parser
(`ijepa_hub.train.cli.parse_args`: the same keys and checks as `ijepa-train --help`).
Stop it at any time (Ctrl-C loses at most `train.checkpoint_every` steps; SIGTERM checkpoints first)
and run it again with `--resume`.
"""
import argparse

import jsonargparse

import ijepa_hub
from ijepa_hub.cli_common import one_line
from ijepa_hub.errors import RecipeError
from ijepa_hub.train.cli import next_steps, parse_args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="folder of images, or .tar shards")
    parser.add_argument("--out", default="runs/my_images")
    parser.add_argument("--recipe", default="modest_vit_tiny", help="a shipped recipe name or a YAML file")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    args, overrides = parser.parse_known_args()  # the rest: --section.key value, as for ijepa-train
    try:
        recipe, _ = parse_args(["--recipe", args.recipe, "--data", args.data, "--data.dataset", "custom", *overrides])
    except (jsonargparse.ArgumentError, RecipeError) as err:  # names the bad key
        parser.error(one_line(err))

    result = ijepa_hub.train.train(recipe, out_dir=args.out, resume="auto" if args.resume else None)
    print(f"trained steps {result.start_step} -> {result.step}; loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}"
          if result.losses else f"nothing to do: the run in {args.out} is complete")
    print("\n".join(next_steps(result)))  # evaluate, extract, push: what ijepa-train suggests


if __name__ == "__main__":
    main()

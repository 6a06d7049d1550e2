"""Publish a model to the Hugging Face Hub in the ijepa_hub layout (loads in ijepa_hub, timm and torch.hub).

    huggingface-cli login                     # or HF_TOKEN=...
    python examples/publish_to_hub.py runs/default/model me/ijepa-vit-tiny-shapes
    python examples/publish_to_hub.py IN1K-vit.h.14-300e.pth.tar me/ijepa-vith14-target --private

One commit holds config.json, model.safetensors (the target encoder), context_encoder.safetensors,
predictor.safetensors and a model card. Afterwards anyone can run:
    ijepa_hub.from_pretrained("me/ijepa-vit-tiny-shapes")
    timm.create_model("hf-hub:me/ijepa-vit-tiny-shapes", pretrained=True)
"""
import argparse
import json
from pathlib import Path

import ijepa_hub
from ijepa_hub.eval.probes import card_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a trained model folder, a released .pth.tar, or any from_pretrained source")
    parser.add_argument("repo_id", help="owner/name on the Hub")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--metrics", default=None, help="JSON file of metrics for the model card (e.g. from ijepa-eval --json)")
    args = parser.parse_args()

    model = ijepa_hub.from_pretrained(args.source, with_context_encoder=True, with_predictor=True)
    # ijepa-eval's JSON (k-NN, linear, synthetic; one result or a list) or a flat {name: number} mapping
    metrics = card_metrics(json.loads(Path(args.metrics).read_text())) if args.metrics else None
    url = model.push_to_hub(args.repo_id, private=args.private, metrics=metrics)
    print(f"pushed: {url}")
    reloaded = ijepa_hub.from_pretrained(args.repo_id)  # check the upload by loading it back
    print(f"reloaded {args.repo_id}: {reloaded.config.describe()}")


if __name__ == "__main__":
    main()

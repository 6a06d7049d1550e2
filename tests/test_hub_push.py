"""push_to_hub through HfApi.upload_folder on the loopback Hub: one commit, the card, stale parts deleted."""
import json

from huggingface_hub import HfApi, hf_hub_download

import ijepa_hub
from ijepa_hub.hub.save import push_to_hub

REPO = "tester/push-folder"


def test_push_to_hub_uploads_one_commit_with_the_card_and_drops_stale_parts(hub_server, tiny_model, tmp_path,
                                                                            monkeypatch):
    calls = []
    real = HfApi.upload_folder
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(kw) or real(self, **kw))
    full = ijepa_hub.save_pretrained(tiny_model, tmp_path / "full")
    card_before = (full / "README.md").read_text()
    (full / ".cache").mkdir()
    (full / ".cache" / "junk").write_text("not uploaded")
    before = len(hub_server.requests)
    url = push_to_hub(full, REPO, commit_message="first")
    commits = [p for m, p in hub_server.requests[before:] if m == "POST" and "/commit/" in p]
    assert commits == [f"/api/models/{REPO}/commit/main"] and len(calls) == 1
    assert url.startswith(f"{hub_server.endpoint}/{REPO}/commit/")
    assert set(HfApi().list_repo_files(REPO)) == {".gitattributes", "README.md", "config.json", "model.safetensors",
                                                  "context_encoder.safetensors", "predictor.safetensors"}
    card = open(hf_hub_download(REPO, "README.md")).read()
    assert f'from_pretrained("{REPO}")' in card and "<this-repo>" not in card
    assert (full / "README.md").read_text() == card_before  # the local folder is not rewritten
    # the same repo, now from a folder without the predictor: one commit that also deletes the stale file
    lean = ijepa_hub.save_pretrained(tiny_model, tmp_path / "lean", with_predictor=False)
    push_to_hub(lean, REPO)
    assert set(HfApi().list_repo_files(REPO)) == {".gitattributes", "README.md", "config.json", "model.safetensors",
                                                  "context_encoder.safetensors"}
    config = json.load(open(hf_hub_download(REPO, "config.json")))
    assert set(config["ijepa"]["files"]) == {"target_encoder", "context_encoder"}
    assert ijepa_hub.from_pretrained(REPO, with_context_encoder=True).context_encoder is not None

"""``ijepa-hub demo``: the Gradio page over :class:`~ijepa_hub.eval.explorer.Explorer` (the ``demo`` extra).

Thin on purpose: :func:`image_outputs` and :func:`click_outputs` are the page's two actions as plain
functions (what the browser tests drive through the page), and :func:`build_app` only lays them out. Every
error a user can cause (a broken upload, a click before an image) becomes a message on the page.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import IJepaError, MissingExtraError
from .explorer import Explorer

__all__ = ["require_gradio", "build_app", "image_outputs", "click_outputs", "launch", "serve", "GRADIO_MISSING"]

log = logging.getLogger(__name__)

GRADIO_MISSING = "ijepa-hub demo needs gradio: pip install 'ijepa-hub[demo]'"
MAX_UPLOAD = "50mb"  # refused by the server before it is read (Pillow's pixel limit refuses what decodes bigger)
_EXPECTED = (IJepaError, OSError, ValueError)


def require_gradio():
    """The gradio module, or :class:`MissingExtraError` with the install line."""
    try:
        import gradio
    except ImportError:
        raise MissingExtraError(GRADIO_MISSING) from None
    return gradio


def _error(err: BaseException) -> str:
    if not isinstance(err, _EXPECTED):
        log.exception("demo: unexpected error")
    return f"**Error:** {' '.join(str(err).split()) or type(err).__name__}"


def image_outputs(explorer: Explorer, upload: str | None, choice: str | None) -> dict[str, Any]:
    """A new image (an uploaded file's path wins over a choice): its key, the picture, the PCA map, the nearest
    folder images and the status line. On error only ``status`` is set (the page keeps what it showed)."""
    source = upload or choice
    if not source:
        return {"status": "Upload an image or pick one."}
    try:
        loaded = explorer.read(source)
        out = {"key": loaded.key, "image": explorer.show(loaded.key), "pca": explorer.pca(loaded.key),
               "nearest": explorer.nearest_images(loaded.key)}
    except Exception as err:  # noqa: BLE001 - the page must live on: the message goes on it
        return {"status": _error(err)}
    note = f" ({loaded.note})" if loaded.note else ""
    out["status"] = f"Showing `{source if not upload else 'the upload'}`{note}. Click a patch of the image."
    return out


def click_outputs(explorer: Explorer, key: str | None, other: str | None, x: float, y: float) -> dict[str, Any]:
    """A click at pixel (``x``, ``y``) of the shown image: the similarity maps over it and over ``other``, and the
    predictor view of the block around the click (None without a predictor), and the status line."""
    try:
        if not key:
            raise ValueError("no image is loaded: upload or pick one first")
        row, col = explorer.patch_at(x, y)
        other_key = explorer.read(other).key if other else None
        same, second = explorer.similarity(key, row, col, other_key)
        out = {"similarity": same, "match": second, "predictor": explorer.predictor_picture(key, row, col)}
    except Exception as err:  # noqa: BLE001 - the page must live on: the message goes on it
        return {"status": _error(err)}
    out["status"] = f"Patch ({row}, {col}): cosine of every patch to it; the outlined patch of the second image matches best."
    return out


def build_app(explorer: Explorer):
    """The Gradio Blocks page of ``explorer`` (not launched)."""
    gr = require_gradio()
    choices = explorer.choices()
    with gr.Blocks(title="ijepa_hub explorer") as app:
        gr.Markdown(f"## I-JEPA feature explorer\n{explorer.describe()}", elem_id="info")
        status = gr.Markdown("Upload an image or pick one.", elem_id="status")
        key = gr.State(None)
        with gr.Row():
            upload = gr.File(label="upload an image", type="filepath", elem_id="upload")
            choice = gr.Dropdown(choices, value=None, label="or pick one", elem_id="choice")
            other = gr.Dropdown(choices, value=choices[1], label="second image (dense matching)", elem_id="other")
        with gr.Row():
            image = gr.Image(label="image: click a patch", type="numpy", interactive=False, elem_id="image")
            pca = gr.Image(label="patch features: PCA as RGB", type="numpy", interactive=False, elem_id="pca")
        with gr.Row():
            similarity = gr.Image(label="cosine to the clicked patch", type="numpy", interactive=False, elem_id="similarity")
            match = gr.Image(label="same, over the second image", type="numpy", interactive=False, elem_id="match")
        predictor = gr.Image(label="predictor view of a target block centred on the click", type="numpy",
                             interactive=False, visible=explorer.has_predictor, elem_id="predictor")
        nearest = gr.Gallery(label="nearest images in the folder (pooled features)", visible=bool(explorer.folder_paths),
                             columns=6, height=180, elem_id="nearest")

        def new_image(upload_path, picked):
            out = image_outputs(explorer, upload_path, picked)
            return [out.get(k, gr.update()) for k in ("key", "image", "pca", "nearest", "status")]

        def clicked(current, second, evt: gr.SelectData):
            x, y = evt.index
            out = click_outputs(explorer, current, second, x, y)
            return [out.get(k, gr.update()) for k in ("similarity", "match", "predictor", "status")]

        # gradio finds the click's data by the annotation's class; this module's annotations are strings
        clicked.__annotations__["evt"] = gr.SelectData
        image_targets = [key, image, pca, nearest, status]

        def uploaded(upload_path):  # the file box is emptied again, ready for the next upload
            return [*new_image(upload_path, None), None]

        upload.upload(uploaded, [upload], [*image_targets, upload])
        choice.change(lambda picked: new_image(None, picked), [choice], image_targets)
        image.select(clicked, [key, other], [similarity, match, predictor, status])
    return app


def launch(explorer: Explorer, *, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           block: bool = True):
    """Serve the page on ``host``:``port`` (loopback by default; ``share`` asks Gradio for a public link)."""
    app = build_app(explorer)
    app.launch(server_name=host, server_port=port, share=share, max_file_size=MAX_UPLOAD, prevent_thread_lock=not block,
               quiet=not block, footer_links=[])
    return app


def serve(source: str, *, folder: str | os.PathLike | None = None, device: str = "cpu", host: str = "127.0.0.1",
          port: int | None = None, share: bool = False, **load_kwargs: Any) -> None:
    """``ijepa-hub demo``: check gradio and the folder, load ``source``, say what was loaded, serve until stopped."""
    require_gradio()  # before loading the model
    if folder is not None and not os.path.isdir(folder):
        raise FileNotFoundError(f"--images {os.fspath(folder)!r} is not a folder. Fix: pass a folder of images, or leave it out")
    explorer = Explorer.load(source, device=device, folder=folder, **load_kwargs)
    print(explorer.describe().replace("**", "").replace("`", ""))
    launch(explorer, host=host, port=port, share=share)

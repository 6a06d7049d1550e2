"""Hugging Face ``datasets`` as training and evaluation data: ``hfds/NAME`` and ``hfids/NAME``.

The prefixes are timm's: ``hfds/`` is map-style, ``hfids/`` streams. NAME is a Hub dataset id
(``datasets.load_dataset``), a folder written by ``save_to_disk`` (``datasets.load_from_disk``) or a
folder of data files such as parquet (``load_dataset(folder)``). The image column is the first
``Image`` feature and the label column the first ``ClassLabel``, unless named (``data.image_column``,
``data.label_column``). ``datasets`` is an optional extra, imported only when such a source is used.

Images are read undecoded (``Image(decode=False)``) and decoded like files by
:func:`~ijepa_hub.data.pipeline.load_rgb`, so a damaged image is an
:class:`~ijepa_hub.errors.ImageReadError` that the trainer skips and counts, as for folders.

* Map-style (:class:`HFImages`) is random access and plugs into the folder pipeline unchanged: order,
  crops and masks are functions of the seed and the step, and ``--resume auto`` is bit-exact.
* Streaming (:class:`HFImageStream`, read by :class:`StreamedMicroBatches`): each process reads its own
  part of the stream (``datasets.distributed.split_dataset_by_node``), repeated pass after pass (pass
  ``p`` shuffled with the seed and ``p``). Micro-batch ``k`` of a process is made of items
  ``k*m .. k*m+m-1`` of its stream, whatever was broken, so a resume skips exactly
  ``step * accumulation * m`` items (read, not decoded) and continues bit-exactly, for the same world
  size, dataset and shuffle buffer. Crops and masks use the same keys as map-style.
"""
from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ..errors import DataError, ImageReadError, MissingExtraError
from .folder import HELD_OUT_SPLITS
from .images import open_image
from .pipeline import MicroBatchSampler

__all__ = [
    "PREFIXES", "INSTALL_HINT", "is_hf_spec", "import_datasets", "open_split", "hf_dataset", "HFImages", "HFImageStream",
    "StreamedMicroBatches", "dataset_items", "LabelledImages", "labelled_images",
]

PREFIXES = {"hfds/": False, "hfids/": True}  # prefix -> streaming
INSTALL_HINT = "pip install 'ijepa-hub[datasets]' (from a clone: pip install -e '.[datasets]')"
_READ_BATCH = 64  # stream rows fetched at a time
SAVED_STREAM_SHARDS = 64  # hfids/ over a save_to_disk folder: shards of the stream


def is_hf_spec(spec: Any) -> bool:
    """True for ``hfds/...`` and ``hfids/...``."""
    return isinstance(spec, str) and spec.startswith(tuple(PREFIXES))


def import_datasets():
    """The ``datasets`` module, or an error saying how to install the extra."""
    try:
        import datasets
    except ImportError as err:
        raise MissingExtraError(f"hfds/ and hfids/ data need the datasets package: {INSTALL_HINT}") from err
    return datasets


def _parse(spec: str) -> tuple[str, bool]:
    prefix = next(p for p in PREFIXES if spec.startswith(p))
    name = spec[len(prefix):]
    if not name:
        raise DataError(f"{spec!r}: name a dataset after {prefix} (a Hub id, a save_to_disk folder or a parquet folder)")
    looks_local = name.startswith(("/", "./", "../", "~")) or Path(name).exists() or _in_local_folder(name)
    if looks_local and not Path(name).expanduser().exists():
        raise DataError(f"{spec}: the folder {name} does not exist. Fix: correct the path (a Hub id owner/name is "
                        "read as a folder where a folder owner/ exists: run from another folder)")
    if not looks_local:
        _check_hub_id(spec, name)
    return (str(Path(name).expanduser()) if looks_local else name), PREFIXES[prefix]


def _in_local_folder(name: str) -> bool:
    """``runs/my_data`` (a mistyped local folder) rather than a Hub id: its first part is a local folder."""
    head, sep, _ = name.partition("/")
    return bool(sep) and Path(head).is_dir()


def _check_hub_id(spec: str, name: str) -> None:
    """A name that is no local folder must be a valid Hub dataset id; a typo is refused here, not after the Hub
    has been asked (which takes long where it cannot be reached)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise DataError(f"{spec}: {name} is neither a local folder nor a Hub dataset id (owner/name). Fix: correct "
                        "the path, or prefix a local folder with ./") from None


def _is_saved(path: str) -> bool:
    folder = Path(path)
    return folder.is_dir() and any((folder / f).is_file() for f in ("dataset_dict.json", "state.json"))


def _empty_saved_splits(folder: Path) -> list[str]:
    """The splits of a ``save_to_disk`` folder that were saved with no data files (no rows)."""
    states = [folder / "state.json"] if (folder / "state.json").is_file() else sorted(folder.glob("*/state.json"))
    empty = []
    for state in states:
        try:
            files = json.loads(state.read_text()).get("_data_files")
        except (OSError, ValueError, RecursionError, AttributeError):
            continue  # datasets itself says what is wrong with it
        if files == []:
            empty.append(state.parent.name if state.parent != folder else "train")
    return empty


def _load_all(spec: str) -> dict[str, Any]:
    """Every split of a map-style source, by name (not streaming)."""
    datasets = import_datasets()
    name, _ = _parse(spec)
    if _is_saved(name):
        empty = _empty_saved_splits(Path(name))
        if empty:  # datasets cannot read a split saved without rows back (IndexError deep inside load_from_disk)
            raise DataError(
                f"{spec}: the split{'s' if len(empty) > 1 else ''} {', '.join(map(repr, empty))} "
                f"{'were' if len(empty) > 1 else 'was'} saved with no rows. Fix: save the dataset again with images "
                "in every split, or drop the empty split."
            )
        loaded = datasets.load_from_disk(name)
        return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    return dict(_call(spec, datasets.load_dataset, name))


def _call(spec: str, load: Callable, *args: Any, split: str | None = None, **kwargs: Any) -> Any:
    try:
        return load(*args, split=split, **kwargs)
    except ValueError as err:
        if split is not None and "split" in str(err).lower():
            raise DataError(f"{spec}: no split {split!r} ({err}). Fix: pass one of its splits with --data.split") from err
        raise DataError(f"{spec}: datasets cannot load it ({err})") from err
    except (OSError, ConnectionError, RuntimeError) as err:  # not found, offline, unreadable files
        raise DataError(f"{spec}: datasets cannot load it ({type(err).__name__}: {err})") from err


def open_split(spec: str, split: str) -> Any:
    """One split of ``spec``: a ``datasets.IterableDataset`` for ``hfids/`` (unless a ``save_to_disk`` folder),
    else a ``datasets.Dataset``."""
    datasets = import_datasets()
    name, streaming = _parse(spec)
    if not _is_saved(name):
        return _call(spec, datasets.load_dataset, name, split=split, streaming=streaming)
    splits = _load_all(spec)
    if split not in splits:
        raise DataError(f"{spec}: no split {split!r}; it has {', '.join(sorted(splits))}. Fix: pass one with --data.split")
    return splits[split]


def _columns(
    features: Any, spec: str, image_column: str | None, label_column: str | None, *, need_label: bool
) -> tuple[str, str | None]:
    """The image column and the label column (None if there is none and none is needed)."""
    datasets = import_datasets()
    features = dict(features or {})

    def pick(named: str | None, kind: type, key: str) -> str | None:
        if named is None:
            return next((c for c, f in features.items() if isinstance(f, kind)), None)
        if named not in features:
            raise DataError(f"{spec}: no column {named!r} ({key}); its columns: {', '.join(features) or 'unknown'}")
        return named

    image = pick(image_column, datasets.Image, "data.image_column")
    if image is None:
        raise DataError(
            f"{spec}: no Image column among {', '.join(features) or 'its (unknown) columns'}. "
            "Fix: name it with --data.image_column"
        )
    if not isinstance(features[image], datasets.Image):
        raise DataError(f"{spec}: column {image!r} holds {features[image]}, not images (datasets.Image)")
    label = pick(label_column, datasets.ClassLabel, "data.label_column")
    if label is None and need_label:
        raise DataError(
            f"{spec}: no ClassLabel column among {', '.join(features)}; evaluation needs labels. "
            "Fix: name the label column with --data.label_column"
        )
    return image, label


def _prepare(table: Any, image: str, label: str | None) -> Any:
    """Keep the two columns; images undecoded, so that decoding errors reach our broken-image handling."""
    datasets = import_datasets()
    table = table.select_columns([image] + ([label] if label else []))
    return table.cast_column(image, datasets.Image(decode=False))


def _image_file(value: Any, name: str) -> io.BytesIO | str:
    """An undecoded ``Image`` cell as a file object named ``name`` (or its path when only that is stored)."""
    data, path = (value.get("bytes"), value.get("path")) if isinstance(value, dict) else (value, None)
    if data is None:
        if path:
            return path
        raise ImageReadError(f"{name}: the image cell is empty. Fix: drop the row or fill it.", path=name)
    buffer = io.BytesIO(data)
    buffer.name = f"{name} ({path})" if path else name
    return buffer


def _label(value: Any) -> int:
    return value if isinstance(value, int) else -1  # training does not use labels; non-integers are ignored


def hf_dataset(
    spec: str, *, split: str = "train", image_column: str | None = None, label_column: str | None = None,
    stream_size: int | None = None, shuffle_buffer: int = 0, seed: int = 0,
) -> HFImages | HFImageStream:
    """The training dataset ``spec`` names: :class:`HFImages` (``hfds/``) or :class:`HFImageStream` (``hfids/``).

    A stream's epoch length is ``stream_size``, else the number of rows its metadata states.
    """
    table = open_split(spec, split)
    image, label = _columns(table.features, spec, image_column, label_column, need_label=False)
    name = f"{spec}[{split}]"
    if not _parse(spec)[1]:
        return HFImages(table, name=name, image_column=image, label_column=label)
    if isinstance(table, import_datasets().Dataset):  # a save_to_disk folder: stream it in contiguous row ranges
        stream_size = stream_size or len(table)
        table = table.to_iterable_dataset(num_shards=max(1, min(len(table), SAVED_STREAM_SHARDS)))
    if stream_size is None:
        known = (table.info.splits or {}).get(split)
        stream_size = known.num_examples if known is not None else None
    if not stream_size:
        raise DataError(
            f"{name}: the stream does not state its number of images, which sets the epoch length of the "
            "schedules. Fix: pass --data.stream_size N"
        )
    return HFImageStream(table, name=name, image_column=image, label_column=label, num_samples=int(stream_size),
                         shuffle_buffer=shuffle_buffer, seed=seed)


class HFImages(Dataset):
    """``hfds/``: a ``datasets.Dataset`` as ``(image file, label)`` items, like :class:`ImageFolder`'s."""

    def __init__(self, table: Any, *, name: str, image_column: str, label_column: str | None = None) -> None:
        self.name, self.image_column, self.label_column = name, image_column, label_column
        self.table = _prepare(table, image_column, label_column)
        if not len(self.table):
            raise DataError(f"{name}: the split has no rows")

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> tuple[io.BytesIO | str, int]:
        row = self.table[int(index)]
        label = _label(row[self.label_column]) if self.label_column else -1
        return _image_file(row[self.image_column], f"{self.name}[{index}]"), label


class HFImageStream(IterableDataset):
    """``hfids/``: a streamed split; ``len`` is the number of images per epoch (for the schedules).

    Read it through :meth:`items` (one process's part, pass after pass) or :class:`StreamedMicroBatches`.
    """

    def __init__(self, stream: Any, *, name: str, image_column: str, label_column: str | None, num_samples: int,
                 shuffle_buffer: int = 0, seed: int = 0) -> None:
        self.name, self.image_column, self.label_column = name, image_column, label_column
        self.num_samples = num_samples
        self.stream = _prepare(stream, image_column, label_column)
        if shuffle_buffer > 0:
            self.stream = self.stream.shuffle(seed=seed, buffer_size=shuffle_buffer)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[io.BytesIO | str, int]]:
        return self.items()

    def items(self, rank: int = 0, world_size: int = 1, *, skip: int = 0) -> Iterator[tuple[io.BytesIO | str, int]]:
        """Process ``rank``'s items, pass after pass without end, from item ``skip`` on (skipped ones not decoded).

        Reads the whole part in any DataLoader worker (``iter`` does not split by worker, ``__iter__`` does).
        """
        from datasets.distributed import split_dataset_by_node

        stream, name = self.stream, self.name
        if world_size > 1:
            stream, name = split_dataset_by_node(stream, rank=rank, world_size=world_size), f"{name}[rank {rank}]"
        position, length, pass_index = 0, None, 0
        while True:
            if length is not None and skip - position >= length:  # skip whole passes without reading them
                whole = (skip - position) // length
                pass_index, position = pass_index + whole, position + whole * length
            stream.set_epoch(pass_index)
            count = 0
            for batch in stream.iter(batch_size=_READ_BATCH):
                labels = batch[self.label_column] if self.label_column else itertools.repeat(-1)
                for value, label in zip(batch[self.image_column], labels):
                    if position >= skip:
                        yield _image_file(value, f"{name}[pass {pass_index}][{count}]"), _label(label)
                    position, count = position + 1, count + 1
            if count == 0:
                raise DataError(
                    f"{self.name}: process {rank} of {world_size} received no images (the split is empty, or has "
                    "fewer shards and rows than processes)"
                )
            length, pass_index = count, pass_index + 1


class StreamedMicroBatches(IterableDataset):
    """A stream's micro-batches for the steps and keys of ``sampler`` (a :class:`MicroBatchSampler`).

    Micro-batch ``k`` is built from the next ``m`` stream items, cropped and masked with the sampler's
    keys (its dataset indices are not used: the stream sets the order); a broken image is replaced by
    the next readable one of the same micro-batch, so every micro-batch consumes exactly ``m`` items.
    With ``W`` DataLoader workers every worker reads the stream and decodes micro-batches ``w, w+W, ..``;
    the DataLoader returns them in order, so the result does not depend on ``W``.
    """

    def __init__(self, stream: HFImageStream, sampler: MicroBatchSampler, samples: Callable[[Sequence], Dataset],
                 collate: Callable) -> None:
        self.stream, self.sampler, self.samples, self.collate = stream, sampler, samples, collate

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        plan = self.sampler.plan
        skip = self.sampler.start_step * plan.accumulation * plan.micro_batch
        items = self.stream.items(self.sampler.rank, plan.world_size, skip=skip)
        for k, keys in enumerate(self.sampler):
            chunk = list(itertools.islice(items, len(keys)))
            if k % workers == worker:
                samples = self.samples(chunk)
                yield self.collate([samples[(i, seed, mask_step)] for i, (_, seed, mask_step) in enumerate(keys)])


def dataset_items(dataset: Dataset) -> Iterator[tuple[Any, int]]:
    """The first ``len(dataset)`` items of a map-style dataset or a stream, in order."""
    if isinstance(dataset, HFImageStream):
        return itertools.islice(dataset.items(), len(dataset))
    return (dataset[i] for i in range(len(dataset)))


class _Files(Sequence):
    """Lazy image files of some rows of :class:`HFImages` (eval keeps only the compressed bytes)."""

    def __init__(self, images: HFImages, rows: list[int]) -> None:
        self.images, self.rows = images, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.images[self.rows[index]][0]


@dataclass
class LabelledImages:
    """One labelled split for evaluation: readable images (lazy files), labels 0..C-1 and a fingerprint."""

    name: str
    images: Sequence[Any]
    labels: torch.Tensor
    classes: list[str]
    fingerprint: str
    skipped: list[str]  # damaged images left out


def _readable(images: HFImages) -> tuple[list[int], list[str]]:
    """Rows whose image decodes (JPEGs checked at 1/8 scale), and the names of the others."""
    def quick(image):
        image.draft("RGB", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))

    rows, skipped = [], []
    for row in range(len(images)):
        try:
            open_image(images[row][0], prepare=quick)
            rows.append(row)
        except ImageReadError as err:
            skipped.append(err.path or str(err))
    return rows, skipped


def labelled_images(
    spec: str, split: str = "train", *, image_column: str | None = None, label_column: str | None = None
) -> tuple[LabelledImages, LabelledImages | None]:
    """``split`` and the first held-out split present (:data:`HELD_OUT_SPLITS`, else None), for evaluation.

    Damaged images are left out (named in ``skipped``); labels index ``classes`` (the ``ClassLabel``
    names, else the sorted distinct values of both splits).
    """
    datasets = import_datasets()
    if _parse(spec)[1]:
        raise DataError(f"{spec}: evaluation reads whole splits; use the map-style form hfds/{spec[len('hfids/'):]}")
    splits = _load_all(spec)
    if split not in splits:
        raise DataError(
            f"{spec}: no split {split!r}; it has {', '.join(sorted(splits))}. Evaluation fits on {split!r} and tests "
            f"on the first of {', '.join(HELD_OUT_SPLITS)} (else on a held-out share of {split!r})"
        )
    held_out = next((s for s in HELD_OUT_SPLITS if s in splits and s != split), None)
    features = splits[split].features
    image, label = _columns(features, spec, image_column, label_column, need_label=True)
    names = [split] + ([held_out] if held_out else [])
    values = {s: list(splits[s][label]) for s in names}
    if isinstance(features[label], datasets.ClassLabel):
        classes, index = list(features[label].names), None
    else:
        distinct = sorted({v for s in names for v in values[s]}, key=str)
        classes, index = [str(v) for v in distinct], {v: i for i, v in enumerate(distinct)}
    out = []
    for s in names:
        images = HFImages(splits[s], name=f"{spec}[{s}]", image_column=image, label_column=label)
        rows, skipped = _readable(images)
        labels = [values[s][r] if index is None else index[values[s][r]] for r in rows]
        if any(y is None or y < 0 for y in labels):
            raise DataError(f"{spec}[{s}]: some images have no label (-1 or empty in column {label!r})")
        fingerprint = f"hf:{splits[s]._fingerprint}:{s}:{image}:{label}:{len(rows)}:{','.join(skipped)}"
        if not rows:
            raise DataError(f"{spec}[{s}]: the split holds no readable images. Fix: pick another split or dataset.")
        out.append(LabelledImages(f"{spec}[{s}]", _Files(images, rows), torch.tensor(labels, dtype=torch.long),
                                  classes, fingerprint, skipped))
    return out[0], (out[1] if held_out else None)

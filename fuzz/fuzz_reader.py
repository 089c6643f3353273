"""Coverage-guided fuzzing of the .gr reader and the resampler with atheris.

Any byte string, written to a file, must either read as a curve (and then resample onto the
model grid or raise GridError) or raise ReadError. Anything else is a finding.

    pip install atheris
    python fuzz/fuzz_reader.py -max_total_time=300 fuzz/corpus

The seed corpus is the repository's real and bad example files (copied into the corpus
folder on first run).
"""

import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from sgmine.gr import ReadError, read_gr
    from sgmine.grid import Grid, GridError, resample

ROOT = Path(__file__).resolve().parents[1]
GRID = Grid()
SCRATCH = Path(tempfile.mkdtemp(prefix="sgmine-fuzz-")) / "input.gr"


def test_one_input(data: bytes) -> None:
    SCRATCH.write_bytes(data)
    try:
        curve = read_gr(SCRATCH)
    except ReadError:
        return
    try:
        out = resample(curve.r, curve.g, GRID)
    except GridError:
        return
    assert out.values.shape == (GRID.npoints,)


def seed_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        return
    for source in list((ROOT / "tests" / "data" / "bad").glob("*.gr")) + list((ROOT / "examples" / "data").glob("*.gr")):
        data = source.read_bytes()[:20000]  # keep seeds small so mutations stay fast
        (folder / source.name).write_bytes(data)


if __name__ == "__main__":
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    for folder in corpus:
        seed_corpus(Path(folder))
    atheris.Setup(sys.argv, test_one_input)
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(SCRATCH.parent, ignore_errors=True)

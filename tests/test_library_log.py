"""Other libraries' messages (libpng's, written by C to fd 2; Python warnings; their log records) go to
<out>/run.log; embdeck's own lines stay on the terminal."""

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import logging, sys, warnings
import cv2
from pipeline.cli import setup_logging
from pipeline.engine.library_log import library_messages_to_log

setup_logging(False)
with library_messages_to_log(sys.argv[1]):
    assert cv2.imread(sys.argv[2]) is not None
    logging.getLogger("embdeck").info("ours: on the terminal")
    logging.getLogger("numba").warning("theirs: in the log")
    warnings.warn("a library's warning")
    print("a progress bar", file=sys.stderr)
print("after the run", file=sys.stderr)
"""


def png_with_srgb_out_of_place(path: Path) -> None:
    """A valid PNG whose sRGB chunk comes after the image data: libpng says 'sRGB: out of place' reading it."""
    import cv2

    data = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    chunk = struct.pack(">I", 1) + b"sRGB" + b"\x00" + struct.pack(">I", zlib.crc32(b"sRGB\x00"))
    end = data.index(b"IEND") - 4
    path.write_bytes(data[:end] + chunk + data[end:])


def test_library_messages_go_to_the_run_log(tmp_path):
    png_with_srgb_out_of_place(tmp_path / "odd.png")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(tmp_path / "odd.png")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for line in ("ours: on the terminal", "a progress bar", "after the run"):
        assert line in done.stderr
    for line in ("libpng", "theirs", "a library's warning"):
        assert line not in done.stderr
    log = (tmp_path / "run.log").read_text()
    for line in ("libpng warning: sRGB: out of place", "theirs: in the log", "a library's warning"):
        assert line in log
    assert "ours" not in log

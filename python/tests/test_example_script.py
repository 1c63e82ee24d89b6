"""examples/python/fashion_mnist.py as a user runs it: it retrieves the 8 half-masked stored
images (every one: the demo's recall is 100%, docs/tutorial.md) and writes its two pictures,
PNGs of the sizes its figures ask for (8 x 3.2 in and 6 x 3.4 in at 100 dpi), decoded back."""
import os
import struct
import subprocess
import sys
import zlib

from conftest import SRC

SCRIPT = os.path.join(SRC, "examples", "python", "fashion_mnist.py")


def png_size(path):
    """Width and height from the IHDR chunk, after checking the signature and its CRC."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    body, crc = data[16:16 + length], struct.unpack(">I", data[16 + length:20 + length])[0]
    assert kind == b"IHDR" and zlib.crc32(kind + body) == crc
    return struct.unpack(">II", body[:8])


def test_fashion_mnist_script(tmp_path):
    assert sum(1 for _ in open(SCRIPT)) < 40  # the issue asks for under 40 lines
    r = subprocess.run([sys.executable, SCRIPT, str(tmp_path)], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, MPLBACKEND="Agg"))
    assert r.returncode == 0, r.stderr
    assert "recall of 8 half-masked stored images: 100%" in r.stdout
    assert png_size(tmp_path / "grid.png") == (800, 320)
    assert png_size(tmp_path / "energy.png") == (600, 340)

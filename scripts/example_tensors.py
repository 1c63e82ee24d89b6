#!/usr/bin/python3
"""Writes tensors for examples/model_b.dam into the current directory, for the README's
commands: w.npz (Xi: K = 100 random +-1 memories of N = 784, one per row) and v.npy (a cue:
memory 0 with a quarter of its signs flipped).

usage: /usr/bin/python3 scripts/example_tensors.py"""
import numpy as np

rng = np.random.default_rng(0)
xi = np.sign(rng.standard_normal((100, 784)))
cue = xi[0].copy()
cue[::4] *= -1
np.savez("w.npz", Xi=xi)
np.save("v.npy", cue)
print("wrote w.npz (Xi [100, 784]) and v.npy (a cue [784])")

"""NumPy references that several test scripts compare damc with (one copy of each)."""
import numpy as np


def sign_sweeps(w, s):
    """The classic single-unit rule in order (Hopfield 1982; docs/theory.md §5.3): sweeps of
    s_j <- sign(w_j . s), a zero field keeping s_j, until a sweep changes nothing. Returns the
    final state (a new array) and the number of sweeps that changed a unit."""
    s, changed = np.array(s, dtype=float), 0
    while True:
        flips = 0
        for j in range(len(s)):
            h = w[j] @ s
            new = s[j] if h == 0 else np.sign(h)
            flips += new != s[j]
            s[j] = new
        if flips == 0:
            return s, changed
        changed += 1

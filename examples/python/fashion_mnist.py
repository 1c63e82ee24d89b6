"""Fashion-MNIST retrieval from Python (docs/python.md): store 1000 training images, cue with
their upper halves, retrieve the lower halves in one update, and draw cue / retrieved / original
and the energy of a noisy image along the dynamics. Usage: fashion_mnist.py [OUT_DIR]"""
import gzip, os, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import damc

with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") as f:
    xi = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)[:1000] / 255.0
out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
m = damc.Model.from_file(os.path.join(os.path.dirname(__file__), "..", "fashion_mnist", "memory.dam"))
visible = np.repeat([1.0, 0.0], 392)  # the upper half is seen (and clamped)
m.bind(Xi=xi, b=-0.5 * ((xi * visible) ** 2).sum(1), beta=2.0)  # the bias makes distances count
pick = np.random.default_rng(0).choice(1000, 8, replace=False)
cues = xi[pick] * visible
got = m.run(init={"v": cues}, clamp={"v": np.tile(visible, (8, 1))}, method="iterate",
            max_steps=1, precision="f64")["x_v"]
recall = np.mean([np.argmin(((xi - g) ** 2).sum(1)) == p for g, p in zip(got, pick)])
print(f"recall of {len(pick)} half-masked stored images: {recall:.0%}")
m.bind(b=-0.5 * (xi ** 2).sum(1))  # the whole image seen: the bias over every pixel
v, energy = xi[pick[:1]] + 0.5 * np.random.default_rng(1).standard_normal((1, 784)), []
for _ in range(60):  # Euler steps of dt = 0.1, each a call (no recompilation)
    r = m.run(init={"v": v}, method="euler", dt=0.1, max_steps=1, tol=-1, precision="f64")
    v, energy = r["x_v"], energy + [float(r["E"])]
fig, ax = plt.subplots(3, 8, figsize=(8, 3.2))
for j, rows in enumerate((cues, got, xi[pick])):
    for k in range(8):
        ax[j, k].imshow(rows[k].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        ax[j, k].axis("off")
fig.savefig(os.path.join(out_dir, "grid.png"), dpi=100)
plt.figure(figsize=(6, 3.4)).gca().plot(0.1 * np.arange(1, 61), energy)
plt.xlabel("t"), plt.ylabel("E"), plt.tight_layout()
plt.savefig(os.path.join(out_dir, "energy.png"), dpi=100)

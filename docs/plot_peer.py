#!/usr/bin/python3
"""Draws docs/peer-curves.png: PublicTest accuracy per epoch of fer-train and
of the PyTorch peer (../shared/reference/torch_fer_cpu.py) for the same
recipe. Usage: docs/plot_peer.py RUNDIR/metrics.csv OUT.png
fer-train's numbers come from its metrics.csv (val_acc: one view); the
PyTorch numbers are the peer run's per-epoch log as measured on these machines
(quoted in issue 4; epoch 10 of that run was not reported)."""
import csv
import sys

from PIL import Image, ImageDraw

TORCH_PLAIN = [42.9, 44.7, 41.6, 41.3, 50.8, 51.7, 53.2, 53.4, 57.6]
TORCH_FLIP = [43.4, 45.2, 42.2, 42.5, 51.4, 52.4, 53.8, 55.1, 58.8]


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    ours = [100 * float(r['val_acc']) for r in rows]
    epochs = max(len(ours), len(TORCH_PLAIN))
    w, h, left, right, top, bottom = 760, 440, 70, 200, 40, 60
    img = Image.new('RGB', (w, h), 'white')
    d = ImageDraw.Draw(img)
    lo, hi = 20, 65

    def xy(i, v):
        x = left + (w - left - right) * i / max(epochs - 1, 1)
        y = top + (h - top - bottom) * (hi - v) / (hi - lo)
        return x, y

    for v in range(lo, hi + 1, 5):
        x0, y = xy(0, v)
        x1, _ = xy(epochs - 1, v)
        d.line([(x0, y), (x1, y)], fill=(225, 225, 225))
        d.text((left - 30, y - 6), '%d%%' % v, fill='black')
    for i in range(epochs):
        x, y = xy(i, lo)
        d.text((x - 3, y + 8), str(i + 1), fill='black')
    d.text((w / 2 - 80, h - 25), 'epoch (cosine schedule over 10)', fill='black')
    d.text((left, 12), 'FER2013 PublicTest accuracy, peer recipe', fill='black')
    series = [
        ('fer-train (1 view)', ours, (200, 60, 30), None),
        ('PyTorch (1 view)', TORCH_PLAIN, (30, 90, 200), None),
        ('PyTorch (flip TTA)', TORCH_FLIP, (120, 160, 230), 'dash'),
    ]
    for k, (name, ys, colour, style) in enumerate(series):
        pts = [xy(i, v) for i, v in enumerate(ys)]
        for a, b in zip(pts, pts[1:]):
            if style == 'dash':
                for t in range(0, 10, 2):
                    p = (a[0] + (b[0] - a[0]) * t / 10, a[1] + (b[1] - a[1]) * t / 10)
                    q = (a[0] + (b[0] - a[0]) * (t + 1) / 10, a[1] + (b[1] - a[1]) * (t + 1) / 10)
                    d.line([p, q], fill=colour, width=2)
            else:
                d.line([a, b], fill=colour, width=3)
        for p in pts:
            d.ellipse([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], fill=colour)
        ly = top + 20 + 22 * k
        d.line([(w - right + 15, ly), (w - right + 45, ly)], fill=colour, width=3)
        d.text((w - right + 52, ly - 6), name, fill='black')
    img.save(sys.argv[2])


if __name__ == '__main__':
    main()

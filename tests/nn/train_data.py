# Synthetic image-folder datasets and fer2013.csv files for the fer-train
# tests (standard library only, no FER2013 image):
#   train_data.py tree ROOT IMAGES_PER_CLASS SEED [CLASSES]
#   train_data.py csv FILE [bad]
import os, random, struct, sys, zlib

def png(path, w, h, pix):
    raw = b''.join(b'\x00' + bytes(pix[y * w:(y + 1) * w]) for y in range(h))
    def chunk(t, d):
        return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n'
                + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0))
                + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))

# Class c: a bright band at the top, at the bottom, down the middle, or a
# square in the centre, moved by up to 3 pixels, on a noisy background.
# All four survive flips, small rotations and shifts.
def image(c, rnd, s=48):
    bg, dx, dy = rnd.randint(70, 110), rnd.randint(-3, 3), rnd.randint(-3, 3)
    pix = []
    for y in range(s):
        for x in range(s):
            u, v = x - dx, y - dy
            on = ((c == 0 and 6 <= v < 16) or (c == 1 and 32 <= v < 42)
                  or (c == 2 and 19 <= u < 29)
                  or (c == 3 and 14 <= u < 34 and 14 <= v < 34))
            pix.append(max(0, min(255, (200 if on else bg) + rnd.randint(-30, 30))))
    return pix

names = ['band_bottom', 'band_top', 'band_vertical', 'square']
if sys.argv[1] == 'tree':
    root, count, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    classes = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    rnd = random.Random(seed)
    for c in range(classes):
        os.makedirs(f'{root}/{names[c]}', exist_ok=True)
        for i in range(count):
            png(f'{root}/{names[c]}/{i:03d}.png', 48, 48, image(c, rnd))
else:
    path, bad = sys.argv[2], len(sys.argv) > 3
    rnd = random.Random(5)
    rows = ['emotion,pixels,Usage']
    for usage, count in (('Training', 3), ('PublicTest', 1), ('PrivateTest', 1)):
        for e in range(7):
            for i in range(count if usage != 'PrivateTest' or e == 0 else 0):
                rows.append('%d,%s,%s' % (e, ' '.join(str(rnd.randint(0, 255)) for _ in range(2304)), usage))
    if bad:
        rows.insert(5, '3,1 2 3,Training')
    open(path, 'w').write('\n'.join(rows) + '\n')

/* Packed datasets: labelled uint8 images of one or more named sets (e.g.
 * FER2013's "train" and "publictest") in one compact file, made by
 * fer-pack and read by fer-train (--pack FILE). It exists so that a whole
 * dataset travels in a few tens of MiB (tests/gpu/pack-data.sh).
 *
 * Coding: each image is predicted pixel by pixel from its already decoded
 * neighbours (the median edge detector of LOCO-I / JPEG-LS); the
 * prediction error is quantised to steps of 2 * delta + 1, so every
 * decoded pixel is within `delta` of the original (delta 0: lossless), and
 * coded by an adaptive binary range coder in one of 8 contexts of local
 * activity. Photographs of faces do not compress much losslessly (FER2013:
 * about 6 bits per pixel); delta 2 takes that to about 3.7.
 *
 * File layout (little-endian), version 1:
 *   "FERPACK1", u32 number of sets (1..16), then per set:
 *   u8 name length (1..64), name; u16 side (1..1024); u8 channels (1 or
 *   3); u8 delta (0..15); u8 classes (1..255), each u8 length (1..64) and
 *   the label; u32 images (< 2^24); one u8 label per image; u64 FNV-1a of
 *   those labels and the decoded pixels; u32 payload bytes; the payload.
 * A file that breaks any of this, or whose pixels do not decode to the
 * recorded checksum, is refused with a message naming the file. */
#ifndef FER_TOOLS_PACKFILE_H
#define FER_TOOLS_PACKFILE_H

#include <stdint.h>

#include "dataset.h"

G_BEGIN_DECLS

#define FER_PACK_MAX_DELTA 15

typedef struct
{
  const char *name;
  const fer_dataset *data;
  int delta; /* 0 (lossless) .. FER_PACK_MAX_DELTA */
} fer_pack_set;

/* Writes the sets to path; the data's images must be side x side x
 * channels as fer_dataset stores them. */
gboolean fer_pack_write (
    const char *path, const fer_pack_set *sets, int n_sets, GError **error);

/* The set `name` of the packed bytes (data, len) read from `source` (for
 * messages), as a fer_dataset. labels and labels_origin as
 * fer_dataset_load_folder: NULL keeps the file's labels, given labels fix
 * the order (every label of the set must be one of them). */
fer_dataset *fer_pack_parse (const uint8_t *data, size_t len,
    const char *source, const char *name, const char *const *labels,
    const char *labels_origin, GError **error);

/* fer_pack_parse of the file at path. */
fer_dataset *fer_pack_load (const char *path, const char *name,
    const char *const *labels, const char *labels_origin, GError **error);

G_END_DECLS

#endif

/* libfernn: safetensors reader and writer.
 *
 * File layout: u64 little-endian header length N, N bytes of JSON header
 * ({"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {"key": "value", ...}}), then the raw little-endian tensor
 * data; data_offsets are relative to the first byte after the header.
 *
 * The reader validates everything before anything is used: header length
 * against the file size, JSON syntax, dtype (F32, F16, BF16, F64, I64, I32,
 * I16, I8, U8, BOOL), shape vs byte
 * size, offsets inside the data area and not overlapping. Every error names
 * the file and, where there is one, the tensor.
 *
 * Thread safety: an open fer_safetensors is never modified after
 * fer_safetensors_open returns, so any number of threads may read it at
 * once (accessors and fer_safetensors_read_f32). A fer_st_writer serves
 * one thread at a time. The half-precision helpers share no state. */
#ifndef FER_SAFETENSORS_H
#define FER_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <fer/error.h>

G_BEGIN_DECLS

/* Float dtypes are what models are made of; the others are accepted because
 * PyTorch state dicts carry them (BatchNorm's num_batches_tracked is I64),
 * and read_f32 converts them too. */
typedef enum
{
  FER_DTYPE_F32,
  FER_DTYPE_F16,
  FER_DTYPE_BF16,
  FER_DTYPE_F64,
  FER_DTYPE_I64,
  FER_DTYPE_I32,
  FER_DTYPE_I16,
  FER_DTYPE_I8,
  FER_DTYPE_U8,
  FER_DTYPE_BOOL,
} fer_dtype;

#define FER_ST_MAX_DIMS 8

typedef struct
{
  const char *name;
  fer_dtype dtype;
  int ndim;
  int64_t shape[FER_ST_MAX_DIMS];
  int64_t numel;
  size_t offset; /* byte offset inside the data area */
  size_t nbytes;
} fer_st_tensor;

typedef struct fer_safetensors fer_safetensors;

/* Reads and validates the whole file. Returns NULL on failure. */
FER_API fer_safetensors *fer_safetensors_open (
    const char *path, GError **error);
/* Same, from a memory image of a file (copied); `name` is used in messages. */
FER_API fer_safetensors *fer_safetensors_open_bytes (
    const void *data, size_t size, const char *name, GError **error);
FER_API void fer_safetensors_free (fer_safetensors *st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (fer_safetensors, fer_safetensors_free)

FER_API const char *fer_safetensors_path (const fer_safetensors *st);
FER_API int fer_safetensors_n_tensors (const fer_safetensors *st);
/* Tensors in header order. */
FER_API const fer_st_tensor *fer_safetensors_tensor (
    const fer_safetensors *st, int i);
/* NULL when absent. */
FER_API const fer_st_tensor *fer_safetensors_find (
    const fer_safetensors *st, const char *name);
/* __metadata__ value, or NULL when absent. */
FER_API const char *fer_safetensors_metadata (
    const fer_safetensors *st, const char *key);
/* NULL-terminated array of metadata keys (owned by st). */
FER_API const char *const *fer_safetensors_metadata_keys (
    const fer_safetensors *st);

/* Converts the tensor to float32 into `out` (t->numel floats). Cannot fail:
 * the open validated the tensor's dtype and bytes. */
FER_API void fer_safetensors_read_f32 (
    const fer_safetensors *st, const fer_st_tensor *t, float *out);

/* Writer: collects tensors (copied) and metadata, then writes in one go to a
 * temporary file that is renamed over `path`, so a reader never sees a
 * half-written model. Tensors are written in the order they were added. */
typedef struct fer_st_writer fer_st_writer;

FER_API fer_st_writer *fer_st_writer_new (void);
FER_API void fer_st_writer_free (fer_st_writer *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (fer_st_writer, fer_st_writer_free)
/* dtype: FER_DTYPE_F32 or FER_DTYPE_F16 (round to nearest even). */
FER_API gboolean fer_st_writer_add (fer_st_writer *w, const char *name,
    fer_dtype dtype, int ndim, const int64_t *shape, const float *data,
    GError **error);
/* Sets (or replaces) one metadata entry. A NULL or empty key, a NULL value
 * or one that is not valid UTF-8 is refused without a warning: nothing is
 * stored, and fer_st_writer_save then fails with FER_ERROR_INVALID_ARGUMENT
 * naming the first refused entry (quoted with fer_text_quote). */
FER_API void fer_st_writer_set_metadata (
    fer_st_writer *w, const char *key, const char *value);
FER_API gboolean fer_st_writer_save (
    fer_st_writer *w, const char *path, GError **error);

/* Half-precision helpers (exposed for tests and tools). */
FER_API float fer_f16_to_f32 (uint16_t h);
FER_API uint16_t fer_f32_to_f16 (float f);
FER_API float fer_bf16_to_f32 (uint16_t h);

G_END_DECLS

#endif

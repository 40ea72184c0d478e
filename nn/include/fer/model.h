/* libfernn: the ResNet-18 expression classifier.
 *
 * A fer_model is built from a safetensors file with torchvision's ResNet-18
 * tensor names. Variants are recognised from the tensors:
 *   stem:  conv1 7x7/2 + 3x3/2 max-pool ("torchvision"), conv1 3x3/1 and
 *          no max-pool ("small"), or conv1 7x7/2 and no max-pool ("nopool",
 *          torchvision's resnet18 with maxpool = Identity: told apart from
 *          "torchvision" only by the metadata key fer.stem);
 *   input: 1 or 3 channels (conv1.weight's second dimension);
 *   head:  fc = Linear(512, C) ("fc"), or fc.0 Linear(512, 256), fc.1
 *          BatchNorm1d(256), ReLU, Dropout, fc.4 Linear(256, C) ("mlp").
 * Preprocessing comes from __metadata__ (fer.labels, fer.input_size,
 * fer.input_channels, fer.mean, fer.std, fer.stem, fer.crop_size); missing
 * keys get the defaults documented in docs/model-format.md. BatchNorm is
 * folded into the preceding conv / linear at load time.
 *
 * Thread safety: calls that compute with a model (fer_model_forward,
 * fer_model_classify, fer_model_classify_frames, fer_model_classify_images,
 * fer_model_set_threads) reuse its buffers and backend, so they take the
 * model's lock: several threads may call them on one model (a shared one)
 * and take turns; each call uses all of the model's threads. The accessors
 * that take a `const fer_model *` only read what the load fixed and may be
 * called from any thread while the model lives. Distinct models are
 * independent: fer_model_load, fer_model_write_random and everything else
 * here may run in several threads at once on different models.
 *
 * Sharing: fer_model_load_shared hands every caller that asks for the same
 * file (same canonical path, device, inode, size and modification time)
 * with the same backend, device and threads the same loaded model, one
 * reference each; fer_model_free releases a reference, and the model goes
 * with the last one. fer_model_set_threads on a shared model changes it
 * for every user who has it, and later loads no longer get it (they ask
 * for a thread count it no longer has); neither do they get a model whose
 * device failed at run time (under backend=auto: one that fell back to
 * the CPU), so a later load tries the device afresh. */
#ifndef FER_MODEL_H
#define FER_MODEL_H

#include <fer/error.h>
#include <fer/image.h>
#include <fer/safetensors.h>

G_BEGIN_DECLS

typedef enum
{
  FER_BACKEND_AUTO, /* CUDA when built and a device is present, else CPU */
  FER_BACKEND_CPU,
  FER_BACKEND_CUDA,
} fer_backend_type;

typedef enum
{
  FER_STEM_TORCHVISION, /* conv1 7x7/2 + 3x3/2 max-pool: layer1 at 1/4 */
  FER_STEM_SMALL,       /* conv1 3x3/1, no max-pool: layer1 at full size */
  FER_STEM_NOPOOL,      /* conv1 7x7/2, no max-pool: layer1 at 1/2 */
} fer_stem;

/* "torchvision", "small" or "nopool" (the fer.stem metadata value and the
 * tools' --stem); NULL for a value outside the enum. */
FER_API const char *fer_stem_name (fer_stem stem);
/* The stem called `name`; FALSE (stem untouched) for an unknown name. */
FER_API gboolean fer_stem_from_name (const char *name, fer_stem *stem);

typedef enum
{
  FER_HEAD_FC,
  FER_HEAD_MLP,
} fer_head;

/* The shape of a network: what fer_model_write_random creates and what the
 * loader recognises. */
typedef struct
{
  fer_stem stem;
  fer_head head;
  int channels;  /* 1 or 3 */
  int n_classes; /* >= 2 */
} fer_arch;

/* How to load a model. Fill it with fer_model_options_init, then set the
 * fields you need: options added in later versions take their defaults
 * from the init function and use the reserved space, so callers that do
 * this keep compiling and keep their binary compatibility. */
/* How the CPU backend keeps the convolution weights (the arithmetic is
 * float32 either way): as float32, or as IEEE halves converted in
 * registers, half the memory (22 MB instead of 45 MB for ResNet-18) and
 * half the memory traffic, which is what bounds a forward of a few faces.
 * AUTO: halves when that is exact, i.e. every conv weight of the file is
 * a half (an F16 file, such as the shipped model; the BatchNorm scale is
 * then applied to the sums rather than folded into the weights, so
 * results equal float32's to rounding); F16: halves always (a float32
 * file's weights rounded to 11 bits: docs/benchmarks.md gives the error).
 * Either way the CPU backend runs the 3x3 stride-1 convolutions on maps of
 * 4 x 4 and more (layer1-2 of the torchvision stem, layer1-3 of nopool, at
 * 44 px) as Winograd F(2x2, 3x3), with their transformed weights in
 * float32, the BatchNorm scale folded in: 3 MB more than all halves for
 * the shipped `fast` model, 11 MB more for `accurate`, and 10-37% faster
 * (docs/benchmarks.md); FER_CPU_CONV=direct turns it off.
 * Other backends keep float32. */
typedef enum
{
  FER_WEIGHTS_AUTO,
  FER_WEIGHTS_F32,
  FER_WEIGHTS_F16,
} fer_weight_format;

typedef struct
{
  fer_backend_type backend;
  int device_id;             /* CUDA device, ignored by the CPU backend */
  int threads;               /* CPU backend threads; 0 = library default */
  fer_weight_format weights; /* in 0.1's padding: same size and layout */
  void *reserved[8]; /* for later options; zeroed by the init function */
} fer_model_options;

/* The defaults: auto backend, device 0, the library's default threads. */
FER_API void fer_model_options_init (fer_model_options *opts);

typedef struct fer_model fer_model;

/* Backend names "auto", "cpu", "cuda"; returns FALSE for anything else. */
FER_API gboolean fer_backend_type_from_string (
    const char *s, fer_backend_type *out);
FER_API const char *fer_backend_type_to_string (fer_backend_type t);
/* TRUE when this build of libfernn contains the CUDA backend. */
FER_API gboolean fer_have_cuda_build (void);

/* Model names. A model is given either as a file (anything that contains
 * '/' or ends in .safetensors: used as is) or as a name: "fast" (the
 * shipped feremotion-resnet18-fer2013.safetensors), "accurate"
 * (feremotion-resnet18-fer2013-accurate.safetensors) or any model file's
 * name without .safetensors. Names are looked up in the folders of
 * $FER_MODEL_PATH (separated by ':', searched in order), then in the
 * installed models folder ($datadir/feremotion); a name that matches no
 * model there but is an existing file (`face.png` in the working folder)
 * is that file. */
#define FER_MODEL_DEFAULT "fast"

/* The file `model` stands for (free with g_free): a path is returned as
 * is, a name as the first matching file. NULL with an error naming the
 * folders searched and the names found there when nothing matches. */
FER_API char *fer_model_find (const char *model, GError **error);
/* The names fer_model_find accepts now: the aliases whose file exists,
 * then every *.safetensors file's name in the search path, sorted; a
 * NULL-terminated list (g_strfreev), possibly empty. */
FER_API char **fer_model_names (void);
/* The folders searched, in order (g_strfreev). */
FER_API char **fer_model_search_path (void);

/* opts may be NULL (the fer_model_options_init defaults). Returns NULL on
 * failure with an error that names `path` and the problem. */
FER_API fer_model *fer_model_load (
    const char *path, const fer_model_options *opts, GError **error);
/* The model of `path` with these options, shared with every other caller
 * of fer_model_load_shared that named the same file (the same canonical
 * path and identity: device, inode, size, modification time) with the same
 * backend, device_id and threads: loaded by the first caller, a new
 * reference for the others. A file changed on disk is a different model.
 * Thread-safe: concurrent calls for one model load it once. Release with
 * fer_model_free. NULL on failure with an error naming `path`. */
FER_API fer_model *fer_model_load_shared (
    const char *path, const fer_model_options *opts, GError **error);
/* A new reference to m (released with fer_model_free); returns m. */
FER_API fer_model *fer_model_ref (fer_model *m);
/* References held now (for tests and diagnostics). */
FER_API int fer_model_ref_count (const fer_model *m);
/* Models in the shared cache now (for tests and diagnostics). */
FER_API int fer_model_cache_size (void);
/* Releases one reference (a model from fer_model_load has one); the last
 * one frees the model. NULL is ignored. */
FER_API void fer_model_free (fer_model *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (fer_model, fer_model_free)

FER_API const char *fer_model_path (const fer_model *m);
FER_API fer_arch fer_model_arch (const fer_model *m);
FER_API int fer_model_n_classes (const fer_model *m);
FER_API const char *fer_model_label (const fer_model *m, int i);
/* Index of a label name, or -1. */
FER_API int fer_model_label_index (const fer_model *m, const char *label);
/* What preprocessing must produce for this model (size = crop size when the
 * model was trained on crops). */
FER_API const fer_input_spec *fer_model_input_spec (const fer_model *m);
FER_API int fer_model_input_size (const fer_model *m); /* fer.input_size */
FER_API int fer_model_crop_size (const fer_model *m);  /* 0 when none */
/* Raw __metadata__ value, or NULL. */
FER_API const char *fer_model_metadata (const fer_model *m, const char *key);
/* Fail-safe. A model loaded for the CUDA backend (backend=cuda, or auto
 * on a machine with a device) first passes a known-answer self-test: a
 * fixed frame through the device and through the CPU backend, whose
 * probabilities must agree (docs/architecture.md, "Fail-safe", says within
 * what and why). Under backend=auto, a device that fails to start, to load
 * the model or the self-test leaves the model on the CPU backend; so does a
 * device failure (FER_ERROR_BACKEND, FER_ERROR_NOMEM) in a later call, whose
 * work is then recomputed on the CPU before the call returns (nothing is
 * lost), and every later call stays on the CPU. Under backend=cuda each of
 * these failures is the call's error instead. (FER_CUDA_FAULT=init,
 * selftest, runtime or nan imitates each failure on any machine, for
 * tests; nan: a device that answers NaN.)
 *
 * fer_model_backend: the backend the model computes on now (CPU or CUDA;
 * AUTO is resolved), so CPU after a fallback. fer_model_fallback_reason:
 * NULL, or one line saying why the model computes on the CPU although a
 * device was there (the stage and the device's error); it is set once, at
 * load or by the call that fell back, and stays valid while the model
 * lives. An application that wants to tell its user checks it after
 * fer_model_load and after each compute call (cheap: one atomic read).
 * Both may be called from any thread. A device model under backend=auto
 * keeps the CPU copy of its weights for this (about 45 MB for the shipped
 * ResNet-18). */
FER_API fer_backend_type fer_model_backend (const fer_model *m);
FER_API const char *fer_model_fallback_reason (const fer_model *m);
FER_API gboolean fer_model_set_threads (
    fer_model *m, int threads, GError **error);
/* What the model's convolution weights compute from: FER_WEIGHTS_F32 or
 * FER_WEIGHTS_F16 (see fer_weight_format). */
FER_API fer_weight_format fer_model_weight_format (const fer_model *m);
/* Number of parameters in the file's (unfolded) network. */
FER_API int64_t fer_model_n_params (const fer_model *m);

/* Raw forward pass: input is n x C x S x S floats (NCHW, already normalised,
 * S = fer_model_input_spec()->size), logits is n x n_classes. */
FER_API gboolean fer_model_forward (
    fer_model *m, const float *input, int n, float *logits, GError **error);

/* Classifies n_faces face rectangles of one frame with T TTA views each
 * (1..10), all faces x views as one batch. probs receives n_faces x
 * n_classes softmax probabilities averaged over the views. Steady state
 * (same or smaller n_faces x T) allocates nothing. */
FER_API gboolean fer_model_classify (fer_model *m, const fer_image *img,
    const fer_rect *faces, int n_faces, int T, float *probs, GError **error);

/* Faces of several frames (several streams) in one batch: face f is the
 * rectangle faces[f] of imgs[face_image[f]] (0 <= face_image[f] <
 * n_images); n_faces x T views in one batch; probs as fer_model_classify.
 * A face's probabilities are those fer_model_classify gives it alone
 * (the same views, preprocessing and arithmetic). */
FER_API gboolean fer_model_classify_frames (fer_model *m, const fer_image *imgs,
    int n_images, const int *face_image, const fer_rect *faces, int n_faces,
    int T, float *probs, GError **error);

/* The same for n whole images, each one face crop resized whole to the
 * model input (what fer-classify and fer-eval do): all images x views in
 * one batch. */
FER_API gboolean fer_model_classify_images (fer_model *m, const fer_image *imgs,
    int n, int T, float *probs, GError **error);

/* Writes a randomly initialised model of the given shape to path (Kaiming
 * normal, fan_out, for convs as torchvision does; PyTorch's default for
 * linear layers). With randomize_bn, batch-norm affine parameters and
 * running statistics are random too (for reference tests: otherwise
 * BN-folding errors hide behind identity statistics). Deterministic for a
 * seed. dtype: F32 or F16. Metadata: FER2013 labels when n_classes == 7,
 * input size 48, mean 0.5, std 0.25 (unless set in `metadata`, a
 * NULL-terminated key, value, key, value... list that may be NULL). */
FER_API gboolean fer_model_write_random (const fer_arch *arch, uint64_t seed,
    gboolean randomize_bn, fer_dtype dtype, const char *const *metadata,
    const char *path, GError **error);

G_END_DECLS

#endif

/* The ResNet-18 inference graph: loading (the weights of arch.c's reader,
 * BatchNorm folding, upload), the forward pass over the backend interface,
 * and TTA classification. */
#include <fer/model.h>

#include <float.h>
#include <math.h>
#include <string.h>

#include <fer/rng.h>

#include "arch.h"
#include "backend.h"
#include "init.h"
#include "model-cache.h"

/* Images per backend forward, unless the backend says (forward_chunk);
 * larger requests run in chunks so activation memory stays bounded (64 x
 * small stem at 48x48 = 38 MB per buffer). */
#define FORWARD_CHUNK 64
#define N_ACT_BUFFERS 4

typedef struct
{
  int cin, cout, k, stride, pad;
  float *weight; /* backend: (Cout, K, K, Cin), BatchNorm folded in */
  float *bias;   /* backend: (Cout) */
} conv_layer;

typedef struct
{
  conv_layer conv1, conv2, down;
  gboolean has_down;
} basic_block;

typedef struct
{
  int nin, nout;
  gboolean relu;
  float *weight; /* backend: (nout, nin) */
  float *bias;   /* backend: (nout) */
} linear_layer;

struct fer_model
{
  gint refcount;   /* fer_model_ref / fer_model_free */
  gboolean halves; /* conv weights as halves where the backend can */
  gboolean cached; /* in model-cache.c's table: released through it */
  /* Serialises the calls that compute (they share the workspace below), so
   * that one model may serve several threads: they take turns. */
  GMutex lock;

  char *path;
  fer_arch arch;
  fer_backend *be;
  fer_backend_type backend_type;
  GHashTable *metadata;
  char **labels;
  int input_size, crop_size;
  fer_input_spec spec;
  int64_t n_params;

  conv_layer stem;
  basic_block blocks[FER_N_BLOCKS];
  linear_layer head[2];
  int n_head;

  /* Workspace, grown on demand and then reused. */
  int ws_chunk;              /* images the backend buffers hold */
  size_t act_per_image;      /* floats of the largest activation */
  float *act[N_ACT_BUFFERS]; /* backend */
  float *dev_logits;         /* backend: (ws_chunk, n_classes) */
  float *host_nhwc;          /* (ws_chunk, S, S, C) staging for C=3 */
  fer_view *views;           /* classify: faces x views */
  size_t views_cap;

  /* The fail-safe ("Fail-safe" in docs/architecture.md). standby: under
   * backend=auto on a device, the same model on the CPU, which takes over
   * when the device fails at run time (`be` is then dropped); NULL
   * otherwise. fallback_reason: why this model computes on the CPU although
   * a device was there (set at load, or once at run time: read it with
   * g_atomic_pointer_get); NULL otherwise. */
  fer_model *standby;
  char *fallback_reason;
};

/* ------------------------------------------------------------------ */
/* Metadata                                                            */

/* "0.5" or "0.485,0.456,0.406": one value for all channels or one each. */
static gboolean
parse_floats (const char *path, const char *key, const char *value,
    int channels, gboolean positive, float *out, GError **error)
{
  char **parts = g_strsplit (value, ",", -1);
  guint n = g_strv_length (parts);
  gboolean ok = n == 1 || n == (guint) channels;
  for (guint i = 0; ok && i < n; i++) {
    char *end = NULL;
    char *s = g_strstrip (parts[i]);
    double v = g_ascii_strtod (s, &end);
    /* checked as the float it becomes: 1e39 is infinite there, 1e-50 0 */
    float f = (float) v;
    ok =
        end != s && *end == '\0' && isfinite (f) && (!positive || f >= FLT_MIN);
    if (ok)
      out[i] = f;
  }
  if (ok && n == 1)
    for (int c = 1; c < channels; c++)
      out[c] = out[0];
  g_strfreev (parts);
  if (!ok) {
    /* metadata is UTF-8 but may hold control characters: quoted */
    g_autofree char *q = fer_text_quote (value, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: metadata %s='%s' must be 1 or %d comma-separated %snumbers", path,
        key, q, channels, positive ? "positive " : "");
  }
  return ok;
}

static gboolean
apply_metadata (fer_model *m, const char *fc_name, GError **error)
{
  /* the path as messages show it: a file name need not be UTF-8 */
  g_autofree char *path = fer_text_quote (m->path, 0);
  const fer_arch *a = &m->arch;
  const char *v;

  v = g_hash_table_lookup (m->metadata, "fer.labels");
  if (v) {
    char **labels = g_strsplit (v, ",", -1);
    guint n = g_strv_length (labels);
    for (guint i = 0; i < n; i++)
      g_strstrip (labels[i]);
    if (n != (guint) a->n_classes) {
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: metadata fer.labels lists %u labels but tensor '%s' has %d "
          "outputs",
          path, n, fc_name, a->n_classes);
      g_strfreev (labels);
      return FALSE;
    }
    /* labels name the classes in bus messages, ROI params, JSON objects
     * and drawn text: each one non-empty, on one line, and unique */
    for (guint i = 0; i < n; i++) {
      const char *why = NULL;
      if (labels[i][0] == '\0')
        why = "an empty label";
      for (const char *c = labels[i]; why == NULL && *c; c++)
        if ((guchar) *c < 0x20 || *c == 0x7f)
          why = "a label with a control character";
      for (guint j = 0; why == NULL && j < i; j++)
        if (strcmp (labels[j], labels[i]) == 0)
          why = "a label twice";
      if (why != NULL) {
        g_autofree char *shown = fer_text_quote (labels[i], 40);
        g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
            "%s: metadata fer.labels has %s at position %u ('%s')", path, why,
            i, shown);
        g_strfreev (labels);
        return FALSE;
      }
    }
    m->labels = labels;
  } else {
    m->labels = g_new0 (char *, a->n_classes + 1);
    for (int i = 0; i < a->n_classes; i++)
      m->labels[i] = fer_default_label (a->n_classes, i);
  }

  m->input_size = 48;
  v = g_hash_table_lookup (m->metadata, "fer.input_size");
  if (v
      && !fer_metadata_int (
          path, "fer.input_size", v, 8, 1024, &m->input_size, error))
    return FALSE;

  m->crop_size = 0;
  v = g_hash_table_lookup (m->metadata, "fer.crop_size");
  if (v) {
    if (!fer_metadata_int (
            path, "fer.crop_size", v, 8, 1024, &m->crop_size, error))
      return FALSE;
    if (m->crop_size > m->input_size) {
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: metadata fer.crop_size=%d is larger than fer.input_size=%d",
          path, m->crop_size, m->input_size);
      return FALSE;
    }
    if (m->crop_size == m->input_size)
      m->crop_size = 0;
  }

  m->spec.size = m->crop_size ? m->crop_size : m->input_size;
  m->spec.channels = a->channels;
  for (int c = 0; c < 3; c++) {
    m->spec.mean[c] = 0.0f;
    m->spec.std[c] = 1.0f;
  }
  v = g_hash_table_lookup (m->metadata, "fer.mean");
  if (v
      && !parse_floats (
          path, "fer.mean", v, a->channels, FALSE, m->spec.mean, error))
    return FALSE;
  v = g_hash_table_lookup (m->metadata, "fer.std");
  if (v
      && !parse_floats (
          path, "fer.std", v, a->channels, TRUE, m->spec.std, error))
    return FALSE;
  /* preprocessing computes x / (255 std) - mean / std: both finite */
  for (int c = 0; c < a->channels; c++)
    if (!isfinite (m->spec.mean[c] / m->spec.std[c])
        || !isfinite (1.0f / (255.0f * m->spec.std[c]))) {
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: metadata fer.mean / fer.std of channel %d (%g / %g) "
          "overflows a float",
          path, c, (double) m->spec.mean[c], (double) m->spec.std[c]);
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */

/* Per-channel scale and shift of the BatchNorm whose weight, bias,
 * running_mean and running_var are tensors bn .. bn + 3 of w, computed in
 * double: y = x * scale + shift. */
static void
bn_affine (const fer_weights *w, int bn, int c, double *scale, double *shift)
{
  const float *gamma = w->tensor[bn], *beta = w->tensor[bn + 1];
  const float *mean = w->tensor[bn + 2], *var = w->tensor[bn + 3];
  for (int j = 0; j < c; j++) {
    scale[j] = gamma[j] / sqrt ((double) var[j] + FER_BN_EPS);
    shift[j] = beta[j] - mean[j] * scale[j];
  }
}

static gboolean
upload_new (
    fer_model *m, float **dst, const float *src, size_t n, GError **error)
{
  *dst = m->be->ops->alloc (m->be, n, error);
  return *dst && m->be->ops->upload (m->be, *dst, src, n, error);
}

/* Conv d reordered to (Cout, K, K, Cin), and its BatchNorm: the backend
 * folds the scale into the weights (or, with halves, applies it to the
 * sums), the shift is the bias. */
static gboolean
load_conv_bn (fer_model *m, const fer_weights *wt, conv_layer *l,
    const fer_conv_desc *d, const fer_conv_shape *shape, GError **error)
{
  const int cin = d->cin, cout = d->cout, k = d->k;
  const float *w = wt->tensor[d->weight]; /* (Cout, Cin, K, K) */
  double *scale = g_new (double, cout), *shift = g_new (double, cout);
  float *wf = g_new (float, (size_t) cout *k *k *cin);
  float *bf = g_new (float, cout);
  gboolean ok;

  bn_affine (wt, d->weight + 1, cout, scale, shift);
  for (int o = 0; o < cout; o++) {
    for (int ci = 0; ci < cin; ci++)
      for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++)
          wf[(((size_t) o * k + ky) * k + kx) * cin + ci] =
              w[(((size_t) o * cin + ci) * k + ky) * k + kx];
    bf[o] = (float) shift[o];
  }
  l->cin = cin;
  l->cout = cout;
  l->k = k;
  l->stride = d->stride;
  l->pad = d->pad;
  /* shape: the conv as it will run, one image at the model's input size */
  l->weight = m->be->ops->conv2d_prepare_weight (
      m->be, wf, scale, shape, m->halves, error);
  ok = l->weight && upload_new (m, &l->bias, bf, cout, error);
  g_free (scale);
  g_free (shift);
  g_free (wf);
  g_free (bf);
  return ok;
}

/* Linear d, with its BatchNorm1d folded in when it has one (and then the
 * ReLU that follows it). */
static gboolean
load_linear (fer_model *m, const fer_weights *wt, linear_layer *l,
    const fer_linear_desc *d, GError **error)
{
  const int nin = d->nin, nout = d->nout;
  float *w = g_memdup2 (wt->tensor[d->weight], sizeof (float) * nout * nin);
  float *b = g_memdup2 (wt->tensor[d->weight + 1], sizeof (float) * nout);
  gboolean ok;

  if (d->bn >= 0) {
    double *scale = g_new (double, nout), *shift = g_new (double, nout);
    bn_affine (wt, d->bn, nout, scale, shift);
    for (int o = 0; o < nout; o++) {
      for (int i = 0; i < nin; i++)
        w[(size_t) o * nin + i] = (float) (w[(size_t) o * nin + i] * scale[o]);
      b[o] = (float) (b[o] * scale[o] + shift[o]);
    }
    g_free (scale);
    g_free (shift);
  }
  l->nin = nin;
  l->nout = nout;
  l->relu = d->bn >= 0;
  ok = upload_new (m, &l->weight, w, (size_t) nout * nin, error)
      && upload_new (m, &l->bias, b, nout, error);
  g_free (w);
  g_free (b);
  return ok;
}

static gboolean
build_graph (fer_model *m, const fer_weights *w, GError **error)
{
  const fer_topology *t = &w->topo;
  fer_topology_shapes s;

  if (!fer_topology_shapes_init (&s, t, m->spec.size)) {
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "an input of %d pixels is too small for the network", m->spec.size);
    return FALSE;
  }
  m->act_per_image = s.max_activation;
  if (!load_conv_bn (m, w, &m->stem, &t->stem, &s.stem, error))
    return FALSE;
  for (int i = 0; i < FER_N_BLOCKS; i++) {
    const fer_block_desc *d = &t->blocks[i];
    basic_block *blk = &m->blocks[i];
    blk->has_down = d->has_down;
    if (!load_conv_bn (m, w, &blk->conv1, &d->conv1, &s.conv1[i], error)
        || !load_conv_bn (m, w, &blk->conv2, &d->conv2, &s.conv2[i], error)
        || (d->has_down
            && !load_conv_bn (m, w, &blk->down, &d->down, &s.down[i], error)))
      return FALSE;
  }
  m->n_head = t->n_head;
  for (int i = 0; i < t->n_head; i++)
    if (!load_linear (m, w, &m->head[i], &t->head[i], error))
      return FALSE;
  return TRUE;
}

static void
free_layer_buffers (fer_model *m, float **w, float **b)
{
  if (*w)
    m->be->ops->release (m->be, *w);
  if (*b)
    m->be->ops->release (m->be, *b);
  *w = *b = NULL;
}

static void
free_workspace (fer_model *m)
{
  for (int i = 0; i < N_ACT_BUFFERS; i++) {
    if (m->act[i])
      m->be->ops->release (m->be, m->act[i]);
    m->act[i] = NULL;
  }
  if (m->dev_logits)
    m->be->ops->release (m->be, m->dev_logits);
  m->dev_logits = NULL;
  g_free (m->host_nhwc);
  m->host_nhwc = NULL;
  m->ws_chunk = 0;
}

void
fer_model_mark_cached (fer_model *m)
{
  m->cached = TRUE;
}

gboolean
fer_model_drop_ref (fer_model *m)
{
  return g_atomic_int_dec_and_test (&m->refcount);
}

fer_model *
fer_model_ref (fer_model *m)
{
  g_return_val_if_fail (m != NULL, NULL);
  g_atomic_int_inc (&m->refcount);
  return m;
}

int
fer_model_ref_count (const fer_model *m)
{
  return g_atomic_int_get (&m->refcount);
}

/* Releases the graph, the workspace and the backend. */
static void
free_graph (fer_model *m)
{
  if (m->be) {
    free_workspace (m);
    free_layer_buffers (m, &m->stem.weight, &m->stem.bias);
    for (int i = 0; i < FER_N_BLOCKS; i++) {
      free_layer_buffers (
          m, &m->blocks[i].conv1.weight, &m->blocks[i].conv1.bias);
      free_layer_buffers (
          m, &m->blocks[i].conv2.weight, &m->blocks[i].conv2.bias);
      free_layer_buffers (
          m, &m->blocks[i].down.weight, &m->blocks[i].down.bias);
    }
    for (int i = 0; i < 2; i++)
      free_layer_buffers (m, &m->head[i].weight, &m->head[i].bias);
    fer_backend_free (m->be);
    m->be = NULL;
  }
}

static void
destroy (fer_model *m)
{
  free_graph (m);
  fer_model_free (m->standby);
  g_free (m->fallback_reason);
  g_free (m->views);
  g_strfreev (m->labels);
  if (m->metadata)
    g_hash_table_unref (m->metadata);
  g_free (m->path);
  g_mutex_clear (&m->lock);
  g_free (m);
}

void
fer_model_free (fer_model *m)
{
  if (!m)
    return;
  if (m->cached ? fer_model_cache_release (m) : fer_model_drop_ref (m))
    destroy (m);
}

void
fer_model_options_init (fer_model_options *opts)
{
  g_return_if_fail (opts != NULL);
  memset (opts, 0, sizeof *opts);
  opts->backend = FER_BACKEND_AUTO;
}

/* Whether every conv weight of w is a half exactly (a file stored as F16:
 * halves lose nothing then). */
static G_GNUC_NO_INLINE gboolean /* a fuzz build leaves it uninstrumented */
conv_weights_are_halves (const fer_weights *w)
{
  for (int i = 0; i < w->topo.n_params; i++) {
    if (w->topo.params[i].kind != FER_PARAM_CONV_WEIGHT)
      continue;
    const float *x = w->tensor[i];
    for (int64_t j = 0; j < w->topo.params[i].numel; j++)
      if (fer_f16_to_f32 (fer_f32_to_f16 (x[j])) != x[j])
        return FALSE;
  }
  return TRUE;
}

/* The parts of a model that come from the file and the options alone (no
 * backend yet). */
static fer_model *
model_new (const char *path, const fer_weights *w,
    const fer_model_options *opts, GError **error)
{
  fer_model *m = g_new0 (fer_model, 1);
  const fer_linear_desc *fc = &w->topo.head[w->topo.n_head - 1];

  m->refcount = 1;
  m->halves = opts->weights == FER_WEIGHTS_F16
      || (opts->weights == FER_WEIGHTS_AUTO && conv_weights_are_halves (w));
  g_mutex_init (&m->lock);
  m->path = g_strdup (path);
  m->arch = w->topo.arch;
  m->metadata = g_hash_table_ref (w->metadata);
  m->n_params = fer_arch_n_params (&m->arch);
  if (!apply_metadata (m, w->topo.params[fc->weight].name, error)) {
    fer_model_free (m);
    return NULL;
  }
  return m;
}

/* The graph of w on be, which m takes over (NULL: the error is set). */
static gboolean
attach_graph (fer_model *m, const fer_weights *w, fer_backend *be,
    fer_backend_type type, GError **error)
{
  m->be = be;
  m->backend_type = type;
  return be && build_graph (m, w, error);
}

static gboolean classify (fer_model *m, const fer_image *imgs,
    gboolean per_face_image, const int *face_image, const fer_rect *faces,
    int n, int T, float *probs, GError **error);

/* The known-answer self-test of a device model: a fixed frame (seeded
 * noise, RGB, so that colour models see colour) with two faces x two TTA
 * views through the device's whole path (preprocessing, graph, view
 * averaging) and through the CPU model `ref`; the probabilities must agree
 * within the backend's tolerance (backend.h, docs/architecture.md). */
static gboolean
selftest (fer_model *dev, fer_model *ref, GError **error)
{
  enum
  {
    W = 80,
    H = 72,
    FACES = 2,
    T = 2
  };
  static const fer_rect faces[FACES] = { { 0, 0, W, H }, { 9, 5, 47, 51 } };
  const int k = dev->arch.n_classes;
  uint8_t *px = g_new (uint8_t, W * H * 3);
  float *pd = g_new (float, FACES *k), *pr = g_new (float, FACES *k);
  double err = 0.0, tol = dev->be->ops->selftest_tolerance (dev->be);
  fer_image img = { FER_PIXEL_RGB, W, H, { px }, { W * 3 }, TRUE };
  fer_rng rng;
  gboolean ok;

  fer_rng_seed (&rng, 0x5e1f7e57);
  for (int i = 0; i < W * H * 3; i++)
    px[i] = (uint8_t) (fer_rng_uniform (&rng) * 255.0f);
  ok = classify (dev, &img, FALSE, NULL, faces, FACES, T, pd, error)
      && classify (ref, &img, FALSE, NULL, faces, FACES, T, pr, error);
  for (int i = 0; ok && i < FACES * k; i++)
    /* fmax drops a NaN: a device that returns NaN must fail */
    err = isnan (pd[i]) || isnan (pr[i])
        ? INFINITY
        : fmax (err, fabs ((double) pd[i] - pr[i]));
  if (ok && !(err <= tol)) {
    g_set_error (error, FER_ERROR, FER_ERROR_BACKEND,
        "the %s backend's probabilities differ from the CPU "
        "backend's by %.3g (tolerance %.0e)",
        dev->be->ops->name, err, tol);
    ok = FALSE;
  }
  g_free (px);
  g_free (pd);
  g_free (pr);
  return ok;
}

/* dev: a model whose backend is a device. Builds it and the same model on
 * the CPU, and runs the self-test. Returns dev (with the CPU model as its
 * standby under backend=auto), or under backend=auto the CPU model with
 * the reason when the device failed at load or in the self-test; under
 * backend=cuda such a failure is an error. Takes dev and be over. */
static fer_model *
load_on_device (fer_model *dev, const fer_weights *w, fer_backend *be,
    const fer_model_options *opts, GError **error)
{
  GError *dev_error = NULL;
  const char *stage = "to load the model";
  fer_model *cpu = model_new (dev->path, w, opts, error);

  if (!cpu
      || !attach_graph (cpu, w,
          fer_backend_new (FER_BACKEND_CPU, 0, opts->threads, NULL, error),
          FER_BACKEND_CPU, error)) {
    fer_backend_free (be);
    fer_model_free (dev);
    fer_model_free (cpu);
    return NULL;
  }
  if (attach_graph (dev, w, be, FER_BACKEND_CUDA, &dev_error)) {
    stage = "its self-test";
    if (selftest (dev, cpu, &dev_error)) {
      fer_backend_selftest_passed (dev->be);
      if (opts->backend == FER_BACKEND_AUTO)
        dev->standby = cpu;
      else
        fer_model_free (cpu);
      return dev;
    }
  }
  fer_model_free (dev);
  cpu->fallback_reason =
      fer_backend_device_failed (opts->backend, stage, dev_error, error);
  if (!cpu->fallback_reason) {
    fer_model_free (cpu);
    return NULL;
  }
  return cpu;
}

gboolean
fer_model_load_args (const char *path, const fer_model_options **opts,
    fer_model_options *defaults, GError **error)
{
  if (!path || !*path) {
    g_set_error (
        error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT, "no model path given");
    return FALSE;
  }
  if (!*opts) {
    fer_model_options_init (defaults);
    *opts = defaults;
  }
  if ((*opts)->weights != FER_WEIGHTS_AUTO
      && (*opts)->weights != FER_WEIGHTS_F32
      && (*opts)->weights != FER_WEIGHTS_F16) {
    g_autofree char *shown = fer_text_quote (path, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s: model options: weights = %d (expected auto, f32 or f16)", shown,
        (int) (*opts)->weights);
    return FALSE;
  }
  return TRUE;
}

fer_model *
fer_model_load (const char *path, const fer_model_options *opts, GError **error)
{
  fer_model_options defaults;
  fer_weights *w = NULL;
  fer_model *m = NULL;
  fer_backend *be;
  fer_backend_type type;
  char *fallback = NULL;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (!fer_model_load_args (path, &opts, &defaults, error))
    return NULL;

  w = fer_weights_read (path, NULL, error);
  if (!w || !(m = model_new (path, w, opts, error)))
    goto fail;
  be = fer_backend_new_with_fallback (
      opts->backend, opts->device_id, opts->threads, &type, &fallback, error);
  if (!be)
    goto fail;
  if (be->ops->selftest_tolerance) {
    m = load_on_device (m, w, be, opts, error);
    if (!m)
      goto fail;
  } else {
    m->fallback_reason = fallback;
    fallback = NULL;
    if (!attach_graph (m, w, be, type, error))
      goto fail;
  }
  fer_weights_free (w);
  return m;

fail:
  if (error && *error) {
    g_autofree char *shown = fer_text_quote (path, 0);
    if (!g_str_has_prefix ((*error)->message, shown))
      g_prefix_error (error, "%s: ", shown);
  }
  g_free (fallback);
  fer_weights_free (w);
  fer_model_free (m);
  return NULL;
}

/* ------------------------------------------------------------------ */
/* Accessors                                                           */

const char *
fer_model_path (const fer_model *m)
{
  return m->path;
}

fer_arch
fer_model_arch (const fer_model *m)
{
  return m->arch;
}

int
fer_model_n_classes (const fer_model *m)
{
  return m->arch.n_classes;
}

const char *
fer_model_label (const fer_model *m, int i)
{
  return i >= 0 && i < m->arch.n_classes ? m->labels[i] : NULL;
}

int
fer_model_label_index (const fer_model *m, const char *label)
{
  for (int i = 0; label && i < m->arch.n_classes; i++)
    if (strcmp (m->labels[i], label) == 0)
      return i;
  return -1;
}

const fer_input_spec *
fer_model_input_spec (const fer_model *m)
{
  return &m->spec;
}

int
fer_model_input_size (const fer_model *m)
{
  return m->input_size;
}

int
fer_model_crop_size (const fer_model *m)
{
  return m->crop_size;
}

const char *
fer_model_metadata (const fer_model *m, const char *key)
{
  return g_hash_table_lookup (m->metadata, key);
}

const char *
fer_model_fallback_reason (const fer_model *m)
{
  /* written once, by fall_back, while other threads may read it */
  return g_atomic_pointer_get ((char **) &m->fallback_reason);
}

fer_backend_type
fer_model_backend (const fer_model *m)
{
  if (m->standby && fer_model_fallback_reason (m))
    return FER_BACKEND_CPU;
  return m->backend_type;
}

fer_weight_format
fer_model_weight_format (const fer_model *m)
{
  const fer_model *c =
      m->standby && fer_model_fallback_reason (m) ? m->standby : m;
  return c->halves && c->backend_type == FER_BACKEND_CPU ? FER_WEIGHTS_F16
                                                         : FER_WEIGHTS_F32;
}

gboolean
fer_model_set_threads (fer_model *m, int threads, GError **error)
{
  gboolean ok = TRUE;

  /* refused before anything changes (the backends take the same range) */
  if (threads < 0 || threads > 1024) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "threads=%d, expected 0 (default) to 1024", threads);
    return FALSE;
  }
  /* the thread count is part of a shared model's key: later loads asking
   * for the old count get a model of their own */
  if (m->cached)
    fer_model_cache_forget (m);
  g_mutex_lock (&m->lock);
  if (m->standby)
    ok = m->standby->be->ops->set_threads (m->standby->be, threads, error);
  if (ok && m->be)
    ok = m->be->ops->set_threads (m->be, threads, error);
  g_mutex_unlock (&m->lock);
  return ok;
}

int64_t
fer_model_n_params (const fer_model *m)
{
  return m->n_params;
}

/* ------------------------------------------------------------------ */
/* Forward                                                             */

static gboolean
ensure_workspace (fer_model *m, int chunk, GError **error)
{
  if (chunk <= m->ws_chunk)
    return TRUE;
  free_workspace (m);
  for (int i = 0; i < N_ACT_BUFFERS; i++) {
    m->act[i] = m->be->ops->alloc (m->be, m->act_per_image * chunk, error);
    if (!m->act[i])
      return FALSE;
  }
  m->dev_logits =
      m->be->ops->alloc (m->be, (size_t) chunk * m->arch.n_classes, error);
  if (!m->dev_logits)
    return FALSE;
  if (m->arch.channels > 1)
    m->host_nhwc = g_new (
        float, (size_t) chunk * m->spec.size * m->spec.size * m->arch.channels);
  m->ws_chunk = chunk;
  return TRUE;
}

/* A buffer that is none of the (up to three) in use. */
static float *
free_buffer (fer_model *m, const float *a, const float *b, const float *c)
{
  for (int i = 0; i < N_ACT_BUFFERS; i++)
    if (m->act[i] != a && m->act[i] != b && m->act[i] != c)
      return m->act[i];
  g_assert_not_reached ();
  return NULL;
}

static gboolean
run_conv (fer_model *m, const conv_layer *l, float *out, const float *inp,
    const float *residual, int n, int *h, int *w, gboolean relu, GError **error)
{
  fer_conv_shape s;
  fer_conv_shape_init (&s, n, *h, *w, l->cin, l->cout, l->k, l->stride, l->pad);
  *h = s.oh;
  *w = s.ow;
  return m->be->ops->conv2d_forward (
      m->be, out, inp, l->weight, l->bias, residual, &s, relu, error);
}

/* The graph on n <= ws_chunk images already in act[0] (NHWC). */
static gboolean
run_graph (fer_model *m, int n, GError **error)
{
  const fer_backend_ops *ops = m->be->ops;
  int h = m->spec.size, w = m->spec.size;
  float *in = m->act[0];
  float *cur = m->act[1];

  if (!run_conv (m, &m->stem, cur, in, NULL, n, &h, &w, TRUE, error))
    return FALSE;
  if (fer_stem_geometry_of (m->arch.stem).max_pool) {
    float *pooled = free_buffer (m, cur, NULL, NULL);
    if (!ops->maxpool2d_forward (m->be, pooled, cur, n, h, w, m->stem.cout,
            FER_POOL_K, FER_POOL_STRIDE, FER_POOL_PAD, error))
      return FALSE;
    h = fer_pool_side (h);
    w = fer_pool_side (w);
    cur = pooled;
  }
  for (int i = 0; i < FER_N_BLOCKS; i++) {
    const basic_block *blk = &m->blocks[i];
    float *t = free_buffer (m, cur, NULL, NULL);
    float *identity = cur;
    int th = h, tw = w;
    if (!run_conv (m, &blk->conv1, t, cur, NULL, n, &th, &tw, TRUE, error))
      return FALSE;
    if (blk->has_down) {
      int dh = h, dw = w;
      identity = free_buffer (m, cur, t, NULL);
      if (!run_conv (
              m, &blk->down, identity, cur, NULL, n, &dh, &dw, FALSE, error))
        return FALSE;
    }
    float *y = free_buffer (m, cur, t, identity);
    h = th;
    w = tw;
    if (!run_conv (m, &blk->conv2, y, t, identity, n, &h, &w, TRUE, error))
      return FALSE;
    cur = y;
  }
  float *feat = free_buffer (m, cur, NULL, NULL);
  if (!ops->avgpool_forward (m->be, feat, cur, n, h * w, FER_FEATURES, error))
    return FALSE;
  for (int i = 0; i < m->n_head; i++) {
    const linear_layer *l = &m->head[i];
    float *out =
        i == m->n_head - 1 ? m->dev_logits : free_buffer (m, feat, NULL, NULL);
    if (!ops->linear_forward (m->be, out, feat, l->weight, l->bias, n, l->nin,
            l->nout, l->relu, error))
      return FALSE;
    feat = out;
  }
  return TRUE;
}

/* nb images from src, NCHW (the public, PyTorch layout), into act[0],
 * NHWC (the graph's). */
static gboolean
upload_input (fer_model *m, const float *src, int nb, GError **error)
{
  const int c = m->arch.channels, s = m->spec.size;

  if (c > 1) {
    for (int b = 0; b < nb; b++)
      for (int ch = 0; ch < c; ch++)
        for (int p = 0; p < s * s; p++)
          m->host_nhwc[((size_t) b * s * s + p) * c + ch] =
              src[((size_t) b * c + ch) * s * s + p];
    src = m->host_nhwc;
  }
  return m->be->ops->upload (
      m->be, m->act[0], src, (size_t) nb * c * s * s, error);
}

static gboolean
forward (fer_model *m, const float *input, int n, float *logits, GError **error)
{
  const int c = m->arch.channels, s = m->spec.size;
  const size_t per_image = (size_t) c * s * s;

  if (n < 0 || (n > 0 && (!input || !logits))) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "fer_model_forward: n=%d with %s input/logits", n,
        input && logits ? "valid" : "NULL");
    return FALSE;
  }
  const int chunk =
      m->be->ops->forward_chunk > 0 ? m->be->ops->forward_chunk : FORWARD_CHUNK;
  if (n > 0 && !ensure_workspace (m, MIN (n, chunk), error))
    return FALSE;
  for (int b0 = 0; b0 < n; b0 += chunk) {
    int nb = MIN (chunk, n - b0);
    if (!upload_input (m, input + (size_t) b0 * per_image, nb, error)
        || !run_graph (m, nb, error)
        || !m->be->ops->download (m->be,
            logits + (size_t) b0 * m->arch.n_classes, m->dev_logits,
            (size_t) nb * m->arch.n_classes, error))
      return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Classification with TTA                                             */

/* Which of the frames face f is in: imgs[f] (per_face_image: one image per
 * face, fer_model_classify_images), imgs[face_image[f]] (face_image not
 * NULL) or imgs[0]. */
static int
image_of_face (gboolean per_face_image, const int *face_image, int f)
{
  return per_face_image ? f : face_image ? face_image[f] : 0;
}

/* Fills act[0] with views [b0, b0 + nb) (m->views) through the backend's
 * preprocess op, one call per run of consecutive views of the same frame:
 * the device gets each frame once per chunk, never the views' floats. */
static gboolean
preprocess_chunk (fer_model *m, const fer_image *imgs, gboolean per_face_image,
    const int *face_image, int b0, int nb, int T, GError **error)
{
  const size_t per_view =
      (size_t) m->spec.channels * m->spec.size * m->spec.size;

  for (int v = b0; v < b0 + nb;) {
    const int img = image_of_face (per_face_image, face_image, v / T);
    int end = v + 1;
    while (end < b0 + nb
        && image_of_face (per_face_image, face_image, end / T) == img)
      end++;
    if (!m->be->ops->preprocess (m->be,
            m->act[0] + (size_t) (v - b0) * per_view, &imgs[img], m->views + v,
            end - v, &m->spec, error))
      return FALSE;
    v = end;
  }
  return TRUE;
}

/* faces: one rectangle per face, or NULL for whole images. The views are
 * made here (a few rectangles); the backend's preprocess op builds the
 * input batch from the frames, a chunk of whole faces at a time, and the
 * backend averages each face's views. */
static gboolean
classify (fer_model *m, const fer_image *imgs, gboolean per_face_image,
    const int *face_image, const fer_rect *faces, int n, int T, float *probs,
    GError **error)
{
  const fer_backend_ops *ops = m->be->ops;
  const int k = m->arch.n_classes;

  if (T < 1 || T > FER_TTA_MAX) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "tta=%d, expected 1..%d views", T, FER_TTA_MAX);
    return FALSE;
  }
  if (n < 0 || (n > 0 && (!imgs || !probs))) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "classify: n=%d faces with NULL image or output", n);
    return FALSE;
  }
  if (n == 0)
    return TRUE;
  const int total = n * T;
  if (m->views_cap < (size_t) total) {
    fer_view *v = g_try_renew (fer_view, m->views, total);
    if (!v) {
      g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
          "cannot allocate %d faces x %d views", n, T);
      return FALSE;
    }
    m->views = v;
    m->views_cap = total;
  }
  for (int f = 0; f < n; f++) {
    const fer_image *img = &imgs[image_of_face (per_face_image, face_image, f)];
    /* a whole image that is empty is the image's fault, not a rectangle's
     * (the caller passed none) */
    if (!faces && (img->width < 1 || img->height < 1)) {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "image %d is empty (%dx%d)", f, img->width, img->height);
      return FALSE;
    }
    const fer_rect whole = { 0.0f, 0.0f, (float) img->width,
      (float) img->height };
    if (!fer_tta_views (faces ? &faces[f] : &whole, m->input_size, m->crop_size,
            T, m->views + (size_t) f * T, error))
      return FALSE;
  }

  const int chunk =
      MAX (1, (ops->forward_chunk > 0 ? ops->forward_chunk : FORWARD_CHUNK) / T)
      * T;
  if (!ensure_workspace (m, MIN (total, chunk), error))
    return FALSE;
  for (int b0 = 0; b0 < total; b0 += chunk) {
    const int nb = MIN (chunk, total - b0);
    if (!preprocess_chunk (
            m, imgs, per_face_image, face_image, b0, nb, T, error)
        || !run_graph (m, nb, error)
        || !ops->softmax_average (m->be, probs + (size_t) (b0 / T) * k,
            m->dev_logits, nb / T, T, k, error))
      return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* The run-time fallback                                               */

/* The model that computes now: m, or its standby once m's device failed. */
static fer_model *
computing (fer_model *m)
{
  return m->be ? m : m->standby;
}

/* After a failed call on m: when m computes on a device and has a standby
 * (backend=auto), and the failure is the device's (FER_ERROR_BACKEND or
 * FER_ERROR_NOMEM; a bad argument the CPU would refuse as well), m drops
 * its device for good, records why, and TRUE says "recompute the call on
 * the standby". Otherwise the error goes to the caller. */
static gboolean
fall_back (fer_model *m, GError *dev_error, GError **error)
{
  /* a device that failed: no new user gets this model (under auto a new
   * load tries the device again, self-test first; under cuda it says
   * what is wrong now rather than inheriting this model's failure) */
  if (m->cached && m->be && m->backend_type == FER_BACKEND_CUDA
      && (g_error_matches (dev_error, FER_ERROR, FER_ERROR_BACKEND)
          || g_error_matches (dev_error, FER_ERROR, FER_ERROR_NOMEM)))
    fer_model_cache_forget (m);
  if (!m->standby || !m->be
      || !(g_error_matches (dev_error, FER_ERROR, FER_ERROR_BACKEND)
          || g_error_matches (dev_error, FER_ERROR, FER_ERROR_NOMEM))) {
    g_propagate_error (error, dev_error);
    return FALSE;
  }
  free_graph (m);
  g_atomic_pointer_set (&m->fallback_reason,
      g_strdup_printf ("the CUDA backend failed at run time (%s); the batch "
                       "was recomputed on the CPU, which runs from now on",
          dev_error->message));
  g_error_free (dev_error);
  return TRUE;
}

/* classify under the model's lock */
static gboolean
classify_locked (fer_model *m, const fer_image *imgs, gboolean per_face_image,
    const int *face_image, const fer_rect *faces, int n, int T, float *probs,
    GError **error)
{
  GError *dev_error = NULL;
  gboolean ok;

  g_mutex_lock (&m->lock);
  ok = classify (computing (m), imgs, per_face_image, face_image, faces, n, T,
           probs, &dev_error)
      || (fall_back (m, dev_error, error)
          && classify (m->standby, imgs, per_face_image, face_image, faces, n,
              T, probs, error));
  g_mutex_unlock (&m->lock);
  return ok;
}

gboolean
fer_model_forward (
    fer_model *m, const float *input, int n, float *logits, GError **error)
{
  GError *dev_error = NULL;
  gboolean ok;

  g_mutex_lock (&m->lock);
  ok = forward (computing (m), input, n, logits, &dev_error)
      || (fall_back (m, dev_error, error)
          && forward (m->standby, input, n, logits, error));
  g_mutex_unlock (&m->lock);
  return ok;
}

gboolean
fer_model_classify (fer_model *m, const fer_image *img, const fer_rect *faces,
    int n_faces, int T, float *probs, GError **error)
{
  if (n_faces > 0 && !faces) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "classify: %d faces but no rectangles", n_faces);
    return FALSE;
  }
  return classify_locked (m, img, FALSE, NULL, faces, n_faces, T, probs, error);
}

gboolean
fer_model_classify_frames (fer_model *m, const fer_image *imgs, int n_images,
    const int *face_image, const fer_rect *faces, int n_faces, int T,
    float *probs, GError **error)
{
  if (n_faces > 0 && (!faces || !face_image || n_images < 1)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "classify_frames: %d faces with %d images, rectangles %s, image "
        "indices %s",
        n_faces, n_images, faces ? "given" : "NULL",
        face_image ? "given" : "NULL");
    return FALSE;
  }
  for (int f = 0; f < n_faces; f++) {
    if (face_image[f] < 0 || face_image[f] >= n_images) {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "classify_frames: face %d is in image %d, expected 0..%d", f,
          face_image[f], n_images - 1);
      return FALSE;
    }
  }
  return classify_locked (
      m, imgs, FALSE, face_image, faces, n_faces, T, probs, error);
}

gboolean
fer_model_classify_images (fer_model *m, const fer_image *imgs, int n, int T,
    float *probs, GError **error)
{
  return classify_locked (m, imgs, TRUE, NULL, NULL, n, T, probs, error);
}

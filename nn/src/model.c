/* The ResNet-18 inference graph: loading (validation, BatchNorm folding,
 * upload), the forward pass over the backend interface, TTA classification,
 * and randomly initialised model files. */
#include <fer/model.h>
#include <fer/rng.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "arch.h"
#include "backend.h"
#include "init.h"

/* Images per backend forward, unless the backend says (forward_chunk);
 * larger requests run in chunks so activation memory stays bounded (64 x
 * small stem at 48x48 = 38 MB per buffer). */
#define FORWARD_CHUNK 64
#define N_ACT_BUFFERS 4

typedef struct
{
  int cin, cout, k, stride, pad;
  float *weight;  /* backend: (Cout, K, K, Cin), BatchNorm folded in */
  float *bias;    /* backend: (Cout) */
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
  float *weight;  /* backend: (nout, nin) */
  float *bias;    /* backend: (nout) */
} linear_layer;

struct fer_model
{
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
  basic_block blocks[8];
  linear_layer head[2];
  int n_head;

  /* Workspace, grown on demand and then reused. */
  int ws_chunk;                   /* images the backend buffers hold */
  size_t act_per_image;           /* floats of the largest activation */
  float *act[N_ACT_BUFFERS];      /* backend */
  float *dev_logits;              /* backend: (ws_chunk, n_classes) */
  float *host_nhwc;               /* (ws_chunk, S, S, C) staging for C=3 */
  float *host_in;                 /* classify: (faces x views, C, S, S) */
  size_t host_in_cap;
  fer_view *views;                /* classify on the device: faces x views */
  size_t views_cap;
  fer_scratch *scratch;
};

/* ------------------------------------------------------------------ */
/* Metadata                                                            */

static gboolean
parse_int (const char *path, const char *key, const char *value, int lo,
    int hi, int *out, GError **error)
{
  char *end = NULL;
  gint64 v = value ? g_ascii_strtoll (value, &end, 10) : 0;
  if (!value || end == value || *end != '\0' || v < lo || v > hi) {
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: metadata %s='%s' is not an integer in %d..%d", path, key,
        value ? value : "", lo, hi);
    return FALSE;
  }
  *out = (int) v;
  return TRUE;
}

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
    ok = end != s && *end == '\0' && isfinite (v) && (!positive || v > 0.0);
    if (ok)
      out[i] = (float) v;
  }
  if (ok && n == 1)
    for (int c = 1; c < channels; c++)
      out[c] = out[0];
  g_strfreev (parts);
  if (!ok)
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: metadata %s='%s' must be 1 or %d comma-separated %snumbers",
        path, key, value, channels, positive ? "positive " : "");
  return ok;
}

static gboolean
apply_metadata (fer_model *m, const char *fc_name, GError **error)
{
  const char *path = m->path;
  fer_arch *a = &m->arch;
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
          "outputs", path, n, fc_name, a->n_classes);
      g_strfreev (labels);
      return FALSE;
    }
    for (guint i = 0; i < n; i++) {
      if (labels[i][0] == '\0') {
        g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
            "%s: metadata fer.labels has an empty label at position %u",
            path, i);
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

  v = g_hash_table_lookup (m->metadata, "fer.input_channels");
  if (v) {
    int c;
    if (!parse_int (path, "fer.input_channels", v, 1, 3, &c, error))
      return FALSE;
    if (c != a->channels) {
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: metadata fer.input_channels=%d contradicts tensor "
          "'conv1.weight' (%d input channels)", path, c, a->channels);
      return FALSE;
    }
  }

  /* conv1's kernel tells 3x3 (small) from 7x7; only the metadata tells
   * the 7x7 stems apart, and without it a 7x7 stem is torchvision's. */
  v = g_hash_table_lookup (m->metadata, "fer.stem");
  if (v) {
    fer_stem named;
    if (!fer_stem_from_name (v, &named)) {
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: metadata fer.stem='%s', expected 'torchvision', 'small' or "
          "'nopool'", path, v);
      return FALSE;
    }
    if (fer_stem_geometry_of (named).k != fer_stem_geometry_of (a->stem).k) {
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: metadata fer.stem='%s' contradicts tensor 'conv1.weight' "
          "(a %s stem)", path, v, fer_stem_name (a->stem));
      return FALSE;
    }
    a->stem = named;
  }

  m->input_size = 48;
  v = g_hash_table_lookup (m->metadata, "fer.input_size");
  if (v && !parse_int (path, "fer.input_size", v, 8, 1024, &m->input_size,
          error))
    return FALSE;

  m->crop_size = 0;
  v = g_hash_table_lookup (m->metadata, "fer.crop_size");
  if (v) {
    if (!parse_int (path, "fer.crop_size", v, 8, 1024, &m->crop_size, error))
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
  if (v && !parse_floats (path, "fer.mean", v, a->channels, FALSE,
          m->spec.mean, error))
    return FALSE;
  v = g_hash_table_lookup (m->metadata, "fer.std");
  if (v && !parse_floats (path, "fer.std", v, a->channels, TRUE,
          m->spec.std, error))
    return FALSE;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Loading                                                             */

/* Recognises the variant from conv1 and the head tensors. */
static gboolean
detect_arch (const fer_safetensors *st, const char *path, fer_arch *a,
    const char **fc_name, GError **error)
{
  const fer_st_tensor *t = fer_safetensors_find (st, "conv1.weight");
  if (!t) {
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: missing tensor 'conv1.weight': not a ResNet-18 state dict",
        path);
    return FALSE;
  }
  if (t->ndim != 4 || t->shape[0] != 64 || (t->shape[1] != 1
          && t->shape[1] != 3) || t->shape[2] != t->shape[3]
      || (t->shape[2] != 7 && t->shape[2] != 3)) {
    char *s = fer_shape_string (t->ndim, t->shape);
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: tensor 'conv1.weight' has shape %s, expected [64, 1|3, 7, 7] "
        "(torchvision stem) or [64, 1|3, 3, 3] (small stem)", path, s);
    g_free (s);
    return FALSE;
  }
  a->channels = (int) t->shape[1];
  a->stem = t->shape[2] == 7 ? FER_STEM_TORCHVISION : FER_STEM_SMALL;

  if ((t = fer_safetensors_find (st, "fc.weight"))) {
    a->head = FER_HEAD_FC;
    *fc_name = "fc.weight";
  } else if ((t = fer_safetensors_find (st, "fc.4.weight"))) {
    a->head = FER_HEAD_MLP;
    *fc_name = "fc.4.weight";
  } else {
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: missing classifier: neither tensor 'fc.weight' nor "
        "'fc.4.weight' is present", path);
    return FALSE;
  }
  if (t->ndim != 2 || t->shape[0] < 2 || t->shape[0] > 100000) {
    char *s = fer_shape_string (t->ndim, t->shape);
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: tensor '%s' has shape %s, expected [classes >= 2, %d]", path,
        *fc_name, s, a->head == FER_HEAD_FC ? 512 : FER_MLP_HIDDEN);
    g_free (s);
    return FALSE;
  }
  a->n_classes = (int) t->shape[0];
  return TRUE;
}

/* Checks every tensor the architecture needs: present, float, right shape. */
static gboolean
check_inventory (const fer_safetensors *st, const char *path,
    const fer_arch *a, GError **error)
{
  fer_param_desc want[FER_ARCH_MAX_PARAMS];
  int n = fer_arch_params (a, want);
  for (int i = 0; i < n; i++) {
    const fer_st_tensor *t = fer_safetensors_find (st, want[i].name);
    if (!t) {
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: missing tensor '%s'", path, want[i].name);
      return FALSE;
    }
    if (!fer_dtype_is_float (t->dtype)) {
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: tensor '%s' is not a float tensor (F32, F16 or BF16 expected)",
          path, want[i].name);
      return FALSE;
    }
    gboolean same = t->ndim == want[i].ndim;
    for (int d = 0; same && d < t->ndim; d++)
      same = t->shape[d] == want[i].shape[d];
    if (!same) {
      char *got = fer_shape_string (t->ndim, t->shape);
      char *exp = fer_shape_string (want[i].ndim, want[i].shape);
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: tensor '%s' has shape %s, expected %s", path, want[i].name,
          got, exp);
      g_free (got);
      g_free (exp);
      return FALSE;
    }
  }
  return TRUE;
}

static float *
read_tensor (const fer_safetensors *st, const char *name)
{
  const fer_st_tensor *t = fer_safetensors_find (st, name);
  float *data = g_new (float, t->numel);
  fer_safetensors_read_f32 (st, t, data);
  return data;
}

/* Per-channel scale and shift of BatchNorm prefix.{weight,bias,running_*},
 * computed in double: y = x * scale + shift. */
static void
bn_affine (const fer_safetensors *st, const char *prefix, int c,
    double *scale, double *shift)
{
  char name[64];
  float *p[4];
  static const char *const parts[4] =
      { "weight", "bias", "running_mean", "running_var" };
  for (int i = 0; i < 4; i++) {
    snprintf (name, sizeof name, "%s.%s", prefix, parts[i]);
    p[i] = read_tensor (st, name);
  }
  for (int j = 0; j < c; j++) {
    scale[j] = p[0][j] / sqrt ((double) p[3][j] + FER_BN_EPS);
    shift[j] = p[1][j] - p[2][j] * scale[j];
  }
  for (int i = 0; i < 4; i++)
    g_free (p[i]);
}

static gboolean
upload_new (fer_model *m, float **dst, const float *src, size_t n,
    GError **error)
{
  *dst = m->be->ops->alloc (m->be, n, error);
  return *dst && m->be->ops->upload (m->be, *dst, src, n, error);
}

/* conv `name` followed by BatchNorm `bn`, folded and reordered to
 * (Cout, K, K, Cin). */
static gboolean
load_conv_bn (fer_model *m, const fer_safetensors *st, conv_layer *l,
    const char *name, const char *bn, int cin, int cout, int k, int stride,
    int pad, GError **error)
{
  char wname[64];
  snprintf (wname, sizeof wname, "%s.weight", name);
  float *w = read_tensor (st, wname);  /* (Cout, Cin, K, K) */
  double *scale = g_new (double, cout), *shift = g_new (double, cout);
  float *wf = g_new (float, (size_t) cout * k * k * cin);
  float *bf = g_new (float, cout);
  gboolean ok;

  bn_affine (st, bn, cout, scale, shift);
  for (int o = 0; o < cout; o++) {
    for (int ci = 0; ci < cin; ci++)
      for (int ky = 0; ky < k; ky++)
        for (int kx = 0; kx < k; kx++)
          wf[(((size_t) o * k + ky) * k + kx) * cin + ci] = (float)
              (w[(((size_t) o * cin + ci) * k + ky) * k + kx] * scale[o]);
    bf[o] = (float) shift[o];
  }
  l->cin = cin;
  l->cout = cout;
  l->k = k;
  l->stride = stride;
  l->pad = pad;
  l->weight = m->be->ops->conv2d_prepare_weight (m->be, wf, cout, k, cin,
      error);
  ok = l->weight && upload_new (m, &l->bias, bf, cout, error);
  g_free (w);
  g_free (scale);
  g_free (shift);
  g_free (wf);
  g_free (bf);
  return ok;
}

/* Linear `name`, optionally followed by BatchNorm1d `bn` (folded). */
static gboolean
load_linear (fer_model *m, const fer_safetensors *st, linear_layer *l,
    const char *name, const char *bn, int nin, int nout, gboolean relu,
    GError **error)
{
  char n[64];
  snprintf (n, sizeof n, "%s.weight", name);
  float *w = read_tensor (st, n);
  snprintf (n, sizeof n, "%s.bias", name);
  float *b = read_tensor (st, n);
  gboolean ok;

  if (bn) {
    double *scale = g_new (double, nout), *shift = g_new (double, nout);
    bn_affine (st, bn, nout, scale, shift);
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
  l->relu = relu;
  ok = upload_new (m, &l->weight, w, (size_t) nout * nin, error)
      && upload_new (m, &l->bias, b, nout, error);
  g_free (w);
  g_free (b);
  return ok;
}

static gboolean
build_graph (fer_model *m, const fer_safetensors *st, GError **error)
{
  const fer_arch *a = &m->arch;
  fer_stem_geometry g = fer_stem_geometry_of (a->stem);

  if (!load_conv_bn (m, st, &m->stem, "conv1", "bn1", a->channels, 64, g.k,
          g.stride, g.pad, error))
    return FALSE;
  int inplanes = 64;
  for (int stage = 0; stage < 4; stage++) {
    int planes = fer_stage_planes (stage);
    for (int b = 0; b < 2; b++) {
      basic_block *blk = &m->blocks[stage * 2 + b];
      int cin = b == 0 ? inplanes : planes;
      int stride = b == 0 && stage > 0 ? 2 : 1;
      fer_block_names n;
      fer_block_names_init (&n, stage, b);
      if (!load_conv_bn (m, st, &blk->conv1, n.conv1, n.bn1, cin, planes, 3,
              stride, 1, error)
          || !load_conv_bn (m, st, &blk->conv2, n.conv2, n.bn2, planes,
              planes, 3, 1, 1, error))
        return FALSE;
      blk->has_down = n.has_down;
      if (blk->has_down) {
        if (!load_conv_bn (m, st, &blk->down, n.down_conv, n.down_bn, cin,
                planes, 1, 2, 0, error))
          return FALSE;
      }
    }
    inplanes = planes;
  }
  if (a->head == FER_HEAD_FC) {
    m->n_head = 1;
    return load_linear (m, st, &m->head[0], "fc", NULL, 512, a->n_classes,
        FALSE, error);
  }
  m->n_head = 2;
  return load_linear (m, st, &m->head[0], "fc.0", "fc.1", 512,
      FER_MLP_HIDDEN, TRUE, error)
      && load_linear (m, st, &m->head[1], "fc.4", NULL, FER_MLP_HIDDEN,
      a->n_classes, FALSE, error);
}

/* Floats of the largest activation of one image, walking the graph. */
static size_t
max_activation (const fer_model *m)
{
  int s = m->spec.size;
  fer_conv_shape cs;
  fer_conv_shape_init (&cs, 1, s, s, m->arch.channels, 64, m->stem.k,
      m->stem.stride, m->stem.pad);
  size_t mx = MAX ((size_t) s * s * m->arch.channels,
      (size_t) cs.oh * cs.ow * 64);
  s = cs.oh;
  if (fer_stem_geometry_of (m->arch.stem).max_pool)
    s = (s + 2 - 3) / 2 + 1;
  for (int i = 0; i < 8; i++) {
    const conv_layer *l = &m->blocks[i].conv1;
    s = (s + 2 * l->pad - l->k) / l->stride + 1;
    mx = MAX (mx, (size_t) s * s * l->cout);
  }
  return MAX (mx, (size_t) 512);
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
fer_model_free (fer_model *m)
{
  if (!m)
    return;
  if (m->be) {
    free_workspace (m);
    free_layer_buffers (m, &m->stem.weight, &m->stem.bias);
    for (int i = 0; i < 8; i++) {
      free_layer_buffers (m, &m->blocks[i].conv1.weight,
          &m->blocks[i].conv1.bias);
      free_layer_buffers (m, &m->blocks[i].conv2.weight,
          &m->blocks[i].conv2.bias);
      free_layer_buffers (m, &m->blocks[i].down.weight,
          &m->blocks[i].down.bias);
    }
    for (int i = 0; i < 2; i++)
      free_layer_buffers (m, &m->head[i].weight, &m->head[i].bias);
    fer_backend_free (m->be);
  }
  g_free (m->host_in);
  g_free (m->views);
  fer_scratch_free (m->scratch);
  g_strfreev (m->labels);
  if (m->metadata)
    g_hash_table_unref (m->metadata);
  g_free (m->path);
  g_free (m);
}

void
fer_model_options_init (fer_model_options *opts)
{
  g_return_if_fail (opts != NULL);
  memset (opts, 0, sizeof *opts);
  opts->backend = FER_BACKEND_AUTO;
}

fer_model *
fer_model_load (const char *path, const fer_model_options *opts,
    GError **error)
{
  fer_model_options defaults;
  fer_safetensors *st = NULL;
  fer_model *m = NULL;
  const char *fc_name = NULL;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (!path || !*path) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "no model path given");
    return NULL;
  }
  if (!opts) {
    fer_model_options_init (&defaults);
    opts = &defaults;
  }

  st = fer_safetensors_open (path, error);
  if (!st)
    goto fail;
  m = g_new0 (fer_model, 1);
  m->path = g_strdup (path);
  m->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
      g_free);
  for (const char *const *k = fer_safetensors_metadata_keys (st); k && *k;
      k++)
    g_hash_table_insert (m->metadata, g_strdup (*k),
        g_strdup (fer_safetensors_metadata (st, *k)));

  if (!detect_arch (st, path, &m->arch, &fc_name, error)
      || !check_inventory (st, path, &m->arch, error)
      || !apply_metadata (m, fc_name, error))
    goto fail;
  m->n_params = fer_arch_n_params (&m->arch);

  m->be = fer_backend_new (opts->backend, opts->device_id, opts->threads,
      &m->backend_type, error);
  if (!m->be)
    goto fail;
  if (!build_graph (m, st, error))
    goto fail;
  m->act_per_image = max_activation (m);
  m->scratch = fer_scratch_new ();
  fer_safetensors_free (st);
  return m;

fail:
  if (error && *error && m && !g_str_has_prefix ((*error)->message, path))
    g_prefix_error (error, "%s: ", path);
  fer_safetensors_free (st);
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

fer_backend_type
fer_model_backend (const fer_model *m)
{
  return m->backend_type;
}

gboolean
fer_model_set_threads (fer_model *m, int threads, GError **error)
{
  return m->be->ops->set_threads (m->be, threads, error);
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
  m->dev_logits = m->be->ops->alloc (m->be,
      (size_t) chunk * m->arch.n_classes, error);
  if (!m->dev_logits)
    return FALSE;
  if (m->arch.channels > 1)
    m->host_nhwc = g_new (float,
        (size_t) chunk * m->spec.size * m->spec.size * m->arch.channels);
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
    const float *residual, int n, int *h, int *w, gboolean relu,
    GError **error)
{
  fer_conv_shape s;
  fer_conv_shape_init (&s, n, *h, *w, l->cin, l->cout, l->k, l->stride,
      l->pad);
  *h = s.oh;
  *w = s.ow;
  return m->be->ops->conv2d_forward (m->be, out, inp, l->weight, l->bias,
      residual, &s, relu, error);
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
    if (!ops->maxpool2d_forward (m->be, pooled, cur, n, h, w, 64, 3, 2, 1,
            error))
      return FALSE;
    h = (h + 2 - 3) / 2 + 1;
    w = (w + 2 - 3) / 2 + 1;
    cur = pooled;
  }
  for (int i = 0; i < 8; i++) {
    const basic_block *blk = &m->blocks[i];
    float *t = free_buffer (m, cur, NULL, NULL);
    float *identity = cur;
    int th = h, tw = w;
    if (!run_conv (m, &blk->conv1, t, cur, NULL, n, &th, &tw, TRUE, error))
      return FALSE;
    if (blk->has_down) {
      int dh = h, dw = w;
      identity = free_buffer (m, cur, t, NULL);
      if (!run_conv (m, &blk->down, identity, cur, NULL, n, &dh, &dw, FALSE,
              error))
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
  if (!ops->avgpool_forward (m->be, feat, cur, n, h * w, 512, error))
    return FALSE;
  for (int i = 0; i < m->n_head; i++) {
    const linear_layer *l = &m->head[i];
    float *out = i == m->n_head - 1 ? m->dev_logits
        : free_buffer (m, feat, NULL, NULL);
    if (!ops->linear_forward (m->be, out, feat, l->weight, l->bias, n,
            l->nin, l->nout, l->relu, error))
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
  return m->be->ops->upload (m->be, m->act[0], src, (size_t) nb * c * s * s,
      error);
}

gboolean
fer_model_forward (fer_model *m, const float *input, int n, float *logits,
    GError **error)
{
  const int c = m->arch.channels, s = m->spec.size;
  const size_t per_image = (size_t) c * s * s;

  if (n < 0 || (n > 0 && (!input || !logits))) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "fer_model_forward: n=%d with %s input/logits", n,
        input && logits ? "valid" : "NULL");
    return FALSE;
  }
  const int chunk = m->be->ops->forward_chunk > 0
      ? m->be->ops->forward_chunk : FORWARD_CHUNK;
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

static gboolean
grow (float **buf, size_t *cap, size_t want)
{
  if (want <= *cap)
    return TRUE;
  float *p = g_try_realloc_n (*buf, want, sizeof (float));
  if (!p)
    return FALSE;
  *buf = p;
  *cap = want;
  return TRUE;
}

/* The probabilities of n faces x T views: the views' inputs come, a chunk
 * of whole faces at a time, from the backend's preprocess op (img: the
 * frame, views in m->views) or from m->host_in (img NULL), and the backend
 * averages each face's views. */
static gboolean
classify_views (fer_model *m, const fer_image *img, int n, int T,
    float *probs, GError **error)
{
  const fer_backend_ops *ops = m->be->ops;
  const int k = m->arch.n_classes, total = n * T;
  const size_t per_view = (size_t) m->spec.channels * m->spec.size
      * m->spec.size;
  const int chunk = MAX (1, (ops->forward_chunk > 0 ? ops->forward_chunk
          : FORWARD_CHUNK) / T) * T;

  if (!ensure_workspace (m, MIN (total, chunk), error))
    return FALSE;
  for (int b0 = 0; b0 < total; b0 += chunk) {
    const int nb = MIN (chunk, total - b0);
    if (!(img ? ops->preprocess (m->be, m->act[0], img, m->views + b0, nb,
                &m->spec, error)
            : upload_input (m, m->host_in + (size_t) b0 * per_view, nb,
                error))
        || !run_graph (m, nb, error)
        || !ops->softmax_average (m->be, probs + (size_t) (b0 / T) * k,
            m->dev_logits, nb / T, T, k, error))
      return FALSE;
  }
  return TRUE;
}

/* The backend builds the input batch from the frame (its preprocess op:
 * one upload of the frame per chunk of views instead of the views' floats);
 * the views are made here. */
static gboolean
classify_on_device (fer_model *m, const fer_image *img,
    const fer_rect *faces, int n, int T, float *probs, GError **error)
{
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
  for (int f = 0; f < n; f++)
    if (!fer_tta_views (&faces[f], m->input_size, m->crop_size, T,
            m->views + (size_t) f * T, error))
      return FALSE;
  return classify_views (m, img, n, T, probs, error);
}

/* faces: one rectangle per image, or NULL for whole images; imgs holds one
 * image (shared by all faces) or n (one per face). */
static gboolean
classify (fer_model *m, const fer_image *imgs, gboolean per_face_image,
    const fer_rect *faces, int n, int T, float *probs, GError **error)
{
  const fer_input_spec *spec = &m->spec;
  const size_t per_view = (size_t) spec->channels * spec->size * spec->size;
  fer_view views[FER_TTA_MAX];

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
  if (!per_face_image && faces && m->be->ops->preprocess)
    return classify_on_device (m, imgs, faces, n, T, probs, error);
  if (!grow (&m->host_in, &m->host_in_cap, (size_t) n * T * per_view)) {
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cannot allocate the input batch for %d faces x %d views", n, T);
    return FALSE;
  }
  for (int f = 0; f < n; f++) {
    const fer_image *img = per_face_image ? &imgs[f] : imgs;
    fer_rect whole = { 0.0f, 0.0f, (float) img->width, (float) img->height };
    const fer_rect *face = faces ? &faces[f] : &whole;
    if (!fer_tta_views (face, m->input_size, m->crop_size, T, views,
            error))
      return FALSE;
    for (int v = 0; v < T; v++)
      if (!fer_preprocess (img, &views[v], spec,
              m->host_in + ((size_t) f * T + v) * per_view, m->scratch,
              error))
        return FALSE;
  }
  return classify_views (m, NULL, n, T, probs, error);
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
  return classify (m, img, FALSE, faces, n_faces, T, probs, error);
}

gboolean
fer_model_classify_images (fer_model *m, const fer_image *imgs, int n, int T,
    float *probs, GError **error)
{
  return classify (m, imgs, TRUE, NULL, n, T, probs, error);
}

/* ------------------------------------------------------------------ */
/* Random models                                                       */

gboolean
fer_model_write_random (const fer_arch *arch, uint64_t seed,
    gboolean randomize_bn, fer_dtype dtype, const char *const *metadata,
    const char *path, GError **error)
{
  fer_param_desc d[FER_ARCH_MAX_PARAMS];
  fer_rng rng;
  int64_t fan_in = 0;
  gboolean ok = TRUE;

  if (arch->channels != 1 && arch->channels != 3) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "channels=%d, expected 1 or 3", arch->channels);
    return FALSE;
  }
  if (arch->n_classes < 2 || arch->n_classes > 100000) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "classes=%d, expected 2..100000", arch->n_classes);
    return FALSE;
  }
  fer_rng_seed (&rng, seed);
  fer_st_writer *w = fer_st_writer_new ();
  int n = fer_arch_params (arch, d);
  for (int i = 0; ok && i < n; i++) {
    float *x = g_new (float, d[i].numel);
    fer_init_param (&d[i], &fan_in, &rng, randomize_bn, x);
    ok = fer_st_writer_add (w, d[i].name, dtype, d[i].ndim, d[i].shape, x,
        error);
    g_free (x);
  }

  fer_init_default_metadata (w, arch, 48, "fer-init (random)");
  for (int i = 0; metadata && metadata[i] && metadata[i + 1]; i += 2)
    fer_st_writer_set_metadata (w, metadata[i], metadata[i + 1]);
  if (ok)
    ok = fer_st_writer_save (w, path, error);
  fer_st_writer_free (w);
  return ok;
}

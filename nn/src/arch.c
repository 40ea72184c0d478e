#include "arch.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* torchvision's resnet18 body, layer<stage>.<block>: channels in and out
 * and the stride of the block's first conv. A block that changes either
 * has the 1x1 downsample shortcut. */
static const struct
{
  int stage, block, cin, cout, stride;
} resnet18_blocks[FER_N_BLOCKS] = {
  { 1, 0, 64, 64, 1 },
  { 1, 1, 64, 64, 1 },
  { 2, 0, 64, 128, 2 },
  { 2, 1, 128, 128, 1 },
  { 3, 0, 128, 256, 2 },
  { 3, 1, 256, 256, 1 },
  { 4, 0, 256, 512, 2 },
  { 4, 1, 512, 512, 1 },
};

/* The heads' linear layers (nout 0: the classes), and the BatchNorm1d
 * that follows the mlp head's hidden layer. */
static const struct
{
  const char *linear, *bn;
  int nin, nout;
} heads[][2] = {
  [FER_HEAD_FC] = { { "fc", NULL, FER_FEATURES, 0 } },
  [FER_HEAD_MLP] = { { "fc.0", "fc.1", FER_FEATURES, FER_MLP_HIDDEN },
      { "fc.4", NULL, FER_MLP_HIDDEN, 0 } },
};

static const struct
{
  const char *name;
  fer_stem_geometry g;
} stems[] = {
  [FER_STEM_TORCHVISION] = { "torchvision", { 7, 2, 3, TRUE } },
  [FER_STEM_SMALL] = { "small", { 3, 1, 1, FALSE } },
  [FER_STEM_NOPOOL] = { "nopool", { 7, 2, 3, FALSE } },
};

const char *
fer_stem_name (fer_stem stem)
{
  return (unsigned) stem < G_N_ELEMENTS (stems) ? stems[stem].name : NULL;
}

gboolean
fer_stem_from_name (const char *name, fer_stem *stem)
{
  for (unsigned i = 0; name && i < G_N_ELEMENTS (stems); i++)
    if (strcmp (name, stems[i].name) == 0) {
      *stem = (fer_stem) i;
      return TRUE;
    }
  return FALSE;
}

fer_stem_geometry
fer_stem_geometry_of (fer_stem stem)
{
  g_return_val_if_fail ((unsigned) stem < G_N_ELEMENTS (stems), stems[0].g);
  return stems[stem].g;
}

/* ------------------------------------------------------------------ */
/* Topology and inventory                                              */

/* Appends tensor <prefix><name>.<part> to the inventory; its index. */
static int
add (fer_topology *t, fer_param_kind kind, int ndim, const int64_t *shape,
    const char *prefix, const char *name, const char *part)
{
  g_assert (t->n_params < FER_ARCH_MAX_PARAMS);
  fer_param_desc *d = &t->params[t->n_params];
  snprintf (d->name, sizeof d->name, "%s%s.%s", prefix, name, part);
  d->kind = kind;
  d->ndim = ndim;
  d->numel = 1;
  for (int i = 0; i < ndim; i++) {
    d->shape[i] = shape[i];
    d->numel *= shape[i];
  }
  return t->n_params++;
}

static int
add_bn (fer_topology *t, const char *prefix, const char *name, int c)
{
  int64_t shape[1] = { c };
  int first = add (t, FER_PARAM_BN_WEIGHT, 1, shape, prefix, name, "weight");
  add (t, FER_PARAM_BN_BIAS, 1, shape, prefix, name, "bias");
  add (t, FER_PARAM_BN_MEAN, 1, shape, prefix, name, "running_mean");
  add (t, FER_PARAM_BN_VAR, 1, shape, prefix, name, "running_var");
  return first;
}

static fer_conv_desc
add_conv (fer_topology *t, const char *prefix, const char *conv, const char *bn,
    int cin, int cout, int k, int stride, int pad)
{
  int64_t shape[4] = { cout, cin, k, k };
  fer_conv_desc d = { cin, cout, k, stride, pad,
    add (t, FER_PARAM_CONV_WEIGHT, 4, shape, prefix, conv, "weight") };
  add_bn (t, prefix, bn, cout);
  return d;
}

void
fer_topology_init (fer_topology *t, const fer_arch *a)
{
  g_assert ((unsigned) a->head < G_N_ELEMENTS (heads));
  memset (t, 0, sizeof *t);
  t->arch = *a;
  t->stem_geometry = fer_stem_geometry_of (a->stem);
  t->stem =
      add_conv (t, "", "conv1", "bn1", a->channels, resnet18_blocks[0].cin,
          t->stem_geometry.k, t->stem_geometry.stride, t->stem_geometry.pad);

  for (int i = 0; i < FER_N_BLOCKS; i++) {
    const int cin = resnet18_blocks[i].cin, cout = resnet18_blocks[i].cout;
    const int stride = resnet18_blocks[i].stride;
    fer_block_desc *b = &t->blocks[i];
    char prefix[16];
    snprintf (prefix, sizeof prefix, "layer%d.%d.", resnet18_blocks[i].stage,
        resnet18_blocks[i].block);
    b->conv1 = add_conv (t, prefix, "conv1", "bn1", cin, cout, 3, stride, 1);
    b->conv2 = add_conv (t, prefix, "conv2", "bn2", cout, cout, 3, 1, 1);
    b->has_down = stride != 1 || cin != cout;
    if (b->has_down)
      b->down = add_conv (
          t, prefix, "downsample.0", "downsample.1", cin, cout, 1, stride, 0);
  }

  for (int i = 0; i < 2 && heads[a->head][i].linear; i++) {
    const char *name = heads[a->head][i].linear;
    const int nin = heads[a->head][i].nin;
    const int nout =
        heads[a->head][i].nout ? heads[a->head][i].nout : a->n_classes;
    int64_t wshape[2] = { nout, nin }, bshape[1] = { nout };
    fer_linear_desc *l = &t->head[t->n_head++];
    l->nin = nin;
    l->nout = nout;
    l->weight = add (t, FER_PARAM_LINEAR_WEIGHT, 2, wshape, "", name, "weight");
    add (t, FER_PARAM_LINEAR_BIAS, 1, bshape, "", name, "bias");
    l->bn =
        heads[a->head][i].bn ? add_bn (t, "", heads[a->head][i].bn, nout) : -1;
  }
}

int64_t
fer_arch_n_params (const fer_arch *a)
{
  fer_topology t;
  int64_t total = 0;
  fer_topology_init (&t, a);
  for (int i = 0; i < t.n_params; i++)
    if (t.params[i].kind != FER_PARAM_BN_MEAN
        && t.params[i].kind != FER_PARAM_BN_VAR)
      total += t.params[i].numel;
  return total;
}

/* Conv d for one image at an h x h input, into s; its output side. */
static int
conv_shape (fer_conv_shape *s, const fer_conv_desc *d, int h, size_t *max_act)
{
  fer_conv_shape_init (s, 1, h, h, d->cin, d->cout, d->k, d->stride, d->pad);
  *max_act = MAX (*max_act, (size_t) MAX (s->oh, 0) * MAX (s->ow, 0) * s->cout);
  return s->oh;
}

gboolean
fer_topology_shapes_init (
    fer_topology_shapes *s, const fer_topology *t, int size)
{
  memset (s, 0, sizeof *s);
  s->max_activation = MAX ((size_t) size * size * t->stem.cin, FER_FEATURES);
  int h = conv_shape (&s->stem, &t->stem, size, &s->max_activation);
  if (h < 1)
    return FALSE;
  if (t->stem_geometry.max_pool)
    h = fer_pool_side (h);
  s->pool_side = h;
  for (int i = 0; i < FER_N_BLOCKS; i++) {
    const fer_block_desc *b = &t->blocks[i];
    if (b->has_down)
      conv_shape (&s->down[i], &b->down, h, &s->max_activation);
    h = conv_shape (&s->conv1[i], &b->conv1, h, &s->max_activation);
    if (h < 1)
      return FALSE;
    h = conv_shape (&s->conv2[i], &b->conv2, h, &s->max_activation);
  }
  s->final_side = h;
  return TRUE;
}

static int64_t
conv_macs (const fer_conv_shape *s)
{
  return (int64_t) s->oh * s->ow * s->cout * s->cin * s->k * s->k;
}

int64_t
fer_arch_forward_macs (const fer_arch *a, int size)
{
  fer_topology t;
  fer_topology_shapes s;

  fer_topology_init (&t, a);
  if (!fer_topology_shapes_init (&s, &t, size))
    return 0;
  int64_t macs = conv_macs (&s.stem);
  for (int i = 0; i < FER_N_BLOCKS; i++)
    macs += conv_macs (&s.conv1[i]) + conv_macs (&s.conv2[i])
        + (t.blocks[i].has_down ? conv_macs (&s.down[i]) : 0);
  for (int i = 0; i < t.n_head; i++)
    macs += (int64_t) t.head[i].nin * t.head[i].nout;
  return macs;
}

char *
fer_shape_string (int ndim, const int64_t *shape)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

/* ------------------------------------------------------------------ */
/* The reader                                                          */

/* A weight that is NaN or infinite, or a BatchNorm running variance below
 * 0 (its square root folds into the conv), would make every output NaN:
 * refused at load, naming the tensor and the element. */
static G_GNUC_NO_INLINE gboolean /* a fuzz build leaves it uninstrumented */
check_values (
    const fer_param_desc *d, const float *x, const char *path, GError **error)
{
  for (int64_t j = 0; j < d->numel; j++)
    if (!isfinite (x[j]) || (d->kind == FER_PARAM_BN_VAR && x[j] < 0.0f)) {
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: tensor '%s' holds %s at element %" G_GINT64_FORMAT, path,
          d->name, isfinite (x[j]) ? "a negative variance" : "NaN or infinity",
          j);
      return FALSE;
    }
  return TRUE;
}

gboolean
fer_check_tensor (const fer_st_tensor *t, const fer_param_desc *d,
    const char *path, const char *name, gboolean any_float, GError **error)
{
  if (!t) {
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL, "%s: missing tensor '%s'",
        path, name);
    return FALSE;
  }
  if (any_float ? !fer_dtype_is_float (t->dtype) : t->dtype != FER_DTYPE_F32) {
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL, "%s: tensor '%s' is not %s",
        path, name,
        any_float ? "a float tensor (F32, F16 or BF16 expected)" : "F32");
    return FALSE;
  }
  gboolean same = t->ndim == d->ndim;
  for (int i = 0; same && i < d->ndim; i++)
    same = t->shape[i] == d->shape[i];
  if (!same) {
    char *got = fer_shape_string (t->ndim, t->shape);
    char *want = fer_shape_string (d->ndim, d->shape);
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: tensor '%s' has shape %s, expected %s", path, name, got, want);
    g_free (got);
    g_free (want);
    return FALSE;
  }
  return TRUE;
}

gboolean
fer_metadata_int (const char *path, const char *key, const char *value, int lo,
    int hi, int *out, GError **error)
{
  char *end = NULL;
  gint64 v = value ? g_ascii_strtoll (value, &end, 10) : 0;
  if (!value || end == value || *end != '\0' || v < lo || v > hi) {
    /* metadata is UTF-8 but may hold control characters: quoted */
    g_autofree char *q = fer_text_quote (value ? value : "", 0);
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: metadata %s='%s' is not an integer in %d..%d", path, key, q, lo,
        hi);
    return FALSE;
  }
  *out = (int) v;
  return TRUE;
}

/* The variant of a file: channels and kernel from conv1.weight, head and
 * classes from the classifier's weight, and the metadata that must agree
 * with them. conv1's kernel tells 3x3 (small) from 7x7; only fer.stem
 * tells the 7x7 stems apart, and without it a 7x7 stem is torchvision's. */
static gboolean
recognise_arch (
    const fer_safetensors *st, const char *path, fer_arch *a, GError **error)
{
  const fer_st_tensor *t = fer_safetensors_find (st, "conv1.weight");
  const char *fc_name;
  const char *v;

  if (!t) {
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: missing tensor 'conv1.weight': not a ResNet-18 state dict", path);
    return FALSE;
  }
  if (t->ndim != 4 || t->shape[0] != 64
      || (t->shape[1] != 1 && t->shape[1] != 3) || t->shape[2] != t->shape[3]
      || (t->shape[2] != 7 && t->shape[2] != 3)) {
    char *s = fer_shape_string (t->ndim, t->shape);
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: tensor 'conv1.weight' has shape %s, expected [64, 1|3, 7, 7] "
        "(torchvision stem) or [64, 1|3, 3, 3] (small stem)",
        path, s);
    g_free (s);
    return FALSE;
  }
  a->channels = (int) t->shape[1];
  a->stem = t->shape[2] == 7 ? FER_STEM_TORCHVISION : FER_STEM_SMALL;

  if ((t = fer_safetensors_find (st, "fc.weight"))) {
    a->head = FER_HEAD_FC;
    fc_name = "fc.weight";
  } else if ((t = fer_safetensors_find (st, "fc.4.weight"))) {
    a->head = FER_HEAD_MLP;
    fc_name = "fc.4.weight";
  } else {
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: missing classifier: neither tensor 'fc.weight' nor "
        "'fc.4.weight' is present",
        path);
    return FALSE;
  }
  if (t->ndim != 2 || t->shape[0] < 2 || t->shape[0] > 100000) {
    char *s = fer_shape_string (t->ndim, t->shape);
    g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
        "%s: tensor '%s' has shape %s, expected [classes >= 2, %d]", path,
        fc_name, s, a->head == FER_HEAD_FC ? FER_FEATURES : FER_MLP_HIDDEN);
    g_free (s);
    return FALSE;
  }
  a->n_classes = (int) t->shape[0];

  v = fer_safetensors_metadata (st, "fer.input_channels");
  if (v) {
    int c;
    if (!fer_metadata_int (path, "fer.input_channels", v, 1, 3, &c, error))
      return FALSE;
    if (c != a->channels) {
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: metadata fer.input_channels=%d contradicts tensor "
          "'conv1.weight' (%d input channels)",
          path, c, a->channels);
      return FALSE;
    }
  }

  v = fer_safetensors_metadata (st, "fer.stem");
  if (v) {
    fer_stem named;
    if (!fer_stem_from_name (v, &named)) {
      g_autofree char *q = fer_text_quote (v, 0);
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: metadata fer.stem='%s', expected 'torchvision', 'small' or "
          "'nopool'",
          path, q);
      return FALSE;
    }
    if (fer_stem_geometry_of (named).k != fer_stem_geometry_of (a->stem).k) {
      g_set_error (error, FER_ERROR, FER_ERROR_MODEL,
          "%s: metadata fer.stem='%s' contradicts tensor 'conv1.weight' "
          "(a %s stem)",
          path, fer_stem_name (named), fer_stem_name (a->stem));
      return FALSE;
    }
    a->stem = named;
  }
  return TRUE;
}

fer_weights *
fer_weights_read (const char *path, const fer_arch *arch, GError **error)
{
  const fer_st_tensor *found[FER_ARCH_MAX_PARAMS];
  fer_safetensors *st = fer_safetensors_open (path, error);
  /* the path as messages show it: a file name need not be UTF-8 */
  g_autofree char *shown = fer_text_quote (path, 0);
  fer_weights *w;
  fer_arch a;
  size_t total = 0;

  if (!st)
    return NULL;
  if (arch)
    a = *arch;
  else if (!recognise_arch (st, shown, &a, error))
    goto fail;

  w = g_new0 (fer_weights, 1);
  fer_topology_init (&w->topo, &a);
  for (int i = 0; i < w->topo.n_params; i++) {
    const fer_param_desc *d = &w->topo.params[i];
    found[i] = fer_safetensors_find (st, d->name);
    if (!fer_check_tensor (found[i], d, shown, d->name, TRUE, error)) {
      fer_weights_free (w);
      goto fail;
    }
    total += d->numel;
  }

  float *p = w->data = g_new (float, total);
  for (int i = 0; i < w->topo.n_params; i++) {
    w->tensor[i] = p;
    fer_safetensors_read_f32 (st, found[i], p);
    if (!check_values (&w->topo.params[i], p, shown, error)) {
      fer_weights_free (w);
      goto fail;
    }
    p += w->topo.params[i].numel;
  }
  w->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  for (const char *const *k = fer_safetensors_metadata_keys (st); k && *k; k++)
    g_hash_table_insert (w->metadata, g_strdup (*k),
        g_strdup (fer_safetensors_metadata (st, *k)));
  fer_safetensors_free (st);
  return w;

fail:
  fer_safetensors_free (st);
  return NULL;
}

void
fer_weights_free (fer_weights *w)
{
  if (!w)
    return;
  if (w->metadata)
    g_hash_table_unref (w->metadata);
  g_free (w->data);
  g_free (w);
}

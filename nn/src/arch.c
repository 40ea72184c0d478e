#include "arch.h"

#include <stdio.h>
#include <string.h>

typedef struct
{
  fer_param_desc *out;
  int n;
} inventory;

static void
add (inventory *inv, fer_param_kind kind, int ndim, const int64_t *shape,
    const char *fmt, ...) G_GNUC_PRINTF (5, 6);

static void
add (inventory *inv, fer_param_kind kind, int ndim, const int64_t *shape,
    const char *fmt, ...)
{
  fer_param_desc *d = &inv->out[inv->n++];
  va_list ap;
  va_start (ap, fmt);
  vsnprintf (d->name, sizeof d->name, fmt, ap);
  va_end (ap);
  d->kind = kind;
  d->ndim = ndim;
  d->numel = 1;
  for (int i = 0; i < ndim; i++) {
    d->shape[i] = shape[i];
    d->numel *= shape[i];
  }
}

static void
add_conv (inventory *inv, const char *name, int cout, int cin, int k)
{
  int64_t shape[4] = { cout, cin, k, k };
  add (inv, FER_PARAM_CONV_WEIGHT, 4, shape, "%s.weight", name);
}

static void
add_bn (inventory *inv, const char *name, int c)
{
  int64_t shape[1] = { c };
  add (inv, FER_PARAM_BN_WEIGHT, 1, shape, "%s.weight", name);
  add (inv, FER_PARAM_BN_BIAS, 1, shape, "%s.bias", name);
  add (inv, FER_PARAM_BN_MEAN, 1, shape, "%s.running_mean", name);
  add (inv, FER_PARAM_BN_VAR, 1, shape, "%s.running_var", name);
}

static void
add_linear (inventory *inv, const char *name, int out, int in)
{
  int64_t wshape[2] = { out, in }, bshape[1] = { out };
  add (inv, FER_PARAM_LINEAR_WEIGHT, 2, wshape, "%s.weight", name);
  add (inv, FER_PARAM_LINEAR_BIAS, 1, bshape, "%s.bias", name);
}

static const struct
{
  const char *name;
  fer_stem_geometry g;
} stems[] = {
  [FER_STEM_TORCHVISION] = {"torchvision", {7, 2, 3, TRUE}},
  [FER_STEM_SMALL] = {"small", {3, 1, 1, FALSE}},
  [FER_STEM_NOPOOL] = {"nopool", {7, 2, 3, FALSE}},
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
  g_return_val_if_fail ((unsigned) stem < G_N_ELEMENTS (stems),
      stems[0].g);
  return stems[stem].g;
}

void
fer_block_names_init (fer_block_names *n, int stage, int b)
{
  snprintf (n->conv1, sizeof n->conv1, "layer%d.%d.conv1", stage + 1, b);
  snprintf (n->bn1, sizeof n->bn1, "layer%d.%d.bn1", stage + 1, b);
  snprintf (n->conv2, sizeof n->conv2, "layer%d.%d.conv2", stage + 1, b);
  snprintf (n->bn2, sizeof n->bn2, "layer%d.%d.bn2", stage + 1, b);
  n->has_down = b == 0 && stage > 0;
  n->down_conv[0] = n->down_bn[0] = '\0';
  if (n->has_down) {
    snprintf (n->down_conv, sizeof n->down_conv, "layer%d.0.downsample.0",
        stage + 1);
    snprintf (n->down_bn, sizeof n->down_bn, "layer%d.0.downsample.1",
        stage + 1);
  }
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

int
fer_arch_params (const fer_arch *a, fer_param_desc *out)
{
  inventory inv = { out, 0 };

  add_conv (&inv, "conv1", 64, a->channels,
      fer_stem_geometry_of (a->stem).k);
  add_bn (&inv, "bn1", 64);
  int inplanes = 64;
  for (int stage = 0; stage < 4; stage++) {
    int planes = fer_stage_planes (stage);
    for (int b = 0; b < 2; b++) {
      int cin = b == 0 ? inplanes : planes;
      fer_block_names n;
      fer_block_names_init (&n, stage, b);
      add_conv (&inv, n.conv1, planes, cin, 3);
      add_bn (&inv, n.bn1, planes);
      add_conv (&inv, n.conv2, planes, planes, 3);
      add_bn (&inv, n.bn2, planes);
      if (n.has_down) {
        add_conv (&inv, n.down_conv, planes, cin, 1);
        add_bn (&inv, n.down_bn, planes);
      }
    }
    inplanes = planes;
  }
  if (a->head == FER_HEAD_FC) {
    add_linear (&inv, "fc", a->n_classes, 512);
  } else {
    add_linear (&inv, "fc.0", FER_MLP_HIDDEN, 512);
    add_bn (&inv, "fc.1", FER_MLP_HIDDEN);
    add_linear (&inv, "fc.4", a->n_classes, FER_MLP_HIDDEN);
  }
  g_assert (inv.n <= FER_ARCH_MAX_PARAMS);
  return inv.n;
}

int64_t
fer_arch_n_params (const fer_arch *a)
{
  fer_param_desc d[FER_ARCH_MAX_PARAMS];
  int n = fer_arch_params (a, d);
  int64_t total = 0;
  for (int i = 0; i < n; i++)
    if (d[i].kind != FER_PARAM_BN_MEAN && d[i].kind != FER_PARAM_BN_VAR)
      total += d[i].numel;
  return total;
}

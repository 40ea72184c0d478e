/* Fresh parameters and default metadata (init.h), and the random model
 * files made of them (fer_model_write_random); the trainer starts from the
 * same values. The values for a seed must not change: the PyTorch fixtures
 * are made from them. */
#include "init.h"

#include <math.h>
#include <stdio.h>

static const char *const fer2013_labels[] = {
  "angry",
  "disgust",
  "fear",
  "happy",
  "neutral",
  "sad",
  "surprise",
};

void
fer_init_param (const fer_param_desc *d, int64_t *linear_fan_in, fer_rng *rng,
    gboolean randomize_bn, float *x)
{
  switch (d->kind) {
    case FER_PARAM_CONV_WEIGHT: {
      /* kaiming_normal_(mode="fan_out", nonlinearity="relu"), torchvision */
      double std =
          sqrt (2.0 / (double) (d->shape[0] * d->shape[2] * d->shape[3]));
      for (int64_t i = 0; i < d->numel; i++)
        x[i] = (float) (std * fer_rng_normal (rng));
      break;
    }
    case FER_PARAM_LINEAR_WEIGHT:
    case FER_PARAM_LINEAR_BIAS: {
      /* nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
      if (d->kind == FER_PARAM_LINEAR_WEIGHT)
        *linear_fan_in = d->shape[1];
      double bound = 1.0 / sqrt ((double) *linear_fan_in);
      for (int64_t i = 0; i < d->numel; i++)
        x[i] = (float) (bound * (2.0 * fer_rng_uniform (rng) - 1.0));
      break;
    }
    case FER_PARAM_BN_WEIGHT:
      for (int64_t i = 0; i < d->numel; i++)
        x[i] = randomize_bn ? 0.5f + fer_rng_uniform (rng) : 1.0f;
      break;
    case FER_PARAM_BN_BIAS:
    case FER_PARAM_BN_MEAN:
      for (int64_t i = 0; i < d->numel; i++)
        x[i] = randomize_bn ? 0.2f * fer_rng_normal (rng) : 0.0f;
      break;
    case FER_PARAM_BN_VAR:
      for (int64_t i = 0; i < d->numel; i++)
        x[i] = randomize_bn ? 0.5f + 1.5f * fer_rng_uniform (rng) : 1.0f;
      break;
  }
}

char *
fer_default_label (int n_classes, int i)
{
  if (n_classes == G_N_ELEMENTS (fer2013_labels))
    return g_strdup (fer2013_labels[i]);
  return g_strdup_printf ("class%d", i);
}

void
fer_init_default_metadata (fer_st_writer *w, const fer_arch *arch,
    int input_size, const char *trained_by)
{
  char *channels = g_strdup_printf ("%d", arch->channels);
  char *size = g_strdup_printf ("%d", input_size);
  GString *labels = g_string_new (NULL);
  for (int i = 0; i < arch->n_classes; i++) {
    char *label = fer_default_label (arch->n_classes, i);
    if (i)
      g_string_append_c (labels, ',');
    g_string_append (labels, label);
    g_free (label);
  }
  fer_st_writer_set_metadata (w, "fer.labels", labels->str);
  fer_st_writer_set_metadata (w, "fer.input_size", size);
  fer_st_writer_set_metadata (w, "fer.input_channels", channels);
  fer_st_writer_set_metadata (w, "fer.mean", "0.5");
  fer_st_writer_set_metadata (w, "fer.std", "0.25");
  fer_st_writer_set_metadata (w, "fer.stem", fer_stem_name (arch->stem));
  fer_st_writer_set_metadata (w, "fer.trained_by", trained_by);
  g_string_free (labels, TRUE);
  g_free (size);
  g_free (channels);
}

gboolean
fer_model_write_random (const fer_arch *arch, uint64_t seed,
    gboolean randomize_bn, fer_dtype dtype, const char *const *metadata,
    const char *path, GError **error)
{
  fer_topology t;
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
  if (!fer_stem_name (arch->stem)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "stem=%d, expected torchvision, small or nopool", (int) arch->stem);
    return FALSE;
  }
  if (arch->head != FER_HEAD_FC && arch->head != FER_HEAD_MLP) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "head=%d, expected fc or mlp", (int) arch->head);
    return FALSE;
  }
  fer_rng_seed (&rng, seed);
  fer_topology_init (&t, arch);
  fer_st_writer *w = fer_st_writer_new ();
  for (int i = 0; ok && i < t.n_params; i++) {
    const fer_param_desc *d = &t.params[i];
    float *x = g_new (float, d->numel);
    fer_init_param (d, &fan_in, &rng, randomize_bn, x);
    ok = fer_st_writer_add (w, d->name, dtype, d->ndim, d->shape, x, error);
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

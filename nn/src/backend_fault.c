/* FER_CUDA_FAULT=init|selftest|runtime: an imitation of a CUDA device
 * that fails at one point, so that the fail-safe (backend.c's fallback
 * when the backend does not start, model.c's self-test and its run-time
 * fallback) is tested on any machine and in any build, GPU or not.
 *
 * The imitation computes on the CPU backend: it is a CPU backend object
 * whose table is a copy of the CPU's with a few entries replaced. The copy
 * also holds the fault's state, so that each replacement finds it through
 * be->ops; destroy puts the CPU's table back and frees the copy.
 *   init:     fer_backend_fault_new fails as cudaStreamCreate would;
 *   selftest: every probability average comes out as certainty of the
 *             least likely class, every training loss 1 too high (wrong
 *             answers the self-tests must catch);
 *   nan:      every probability and every training loss is NaN (a
 *             device whose arithmetic overflowed or read garbage: NaN
 *             compares false with everything, and the self-tests must
 *             still catch it);
 *   runtime:  once the self-test has passed, every forward fails as
 *             after a lost device (the first op of each forward pass,
 *             inference or training, returns the error: preprocess for
 *             the classifications, which all build their input with it,
 *             the stem's convolution for fer_model_forward and training). */
#include "backend.h"

#include <math.h>
#include <string.h>

typedef struct
{
  fer_backend_ops ops; /* first: be->ops points here */
  const fer_backend_ops *cpu;
  fer_fault_point point;
  gboolean armed; /* runtime: a self-test has passed */
  char name[48];
} fault_table;

static fault_table *
table_of (fer_backend *be)
{
  return (fault_table *) be->ops;
}

gboolean
fer_fault_point_from_env (fer_fault_point *point, GError **error)
{
  static const char *const names[] = { "init", "selftest", "runtime", "nan" };
  const char *v = g_getenv ("FER_CUDA_FAULT");

  *point = FER_FAULT_NONE;
  if (!v || !*v)
    return TRUE;
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    if (strcmp (v, names[i]) == 0) {
      *point = (fer_fault_point) (FER_FAULT_INIT + i);
      return TRUE;
    }
  }
  g_autofree char *quoted = fer_text_quote (v, 40);
  g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
      "FER_CUDA_FAULT='%s', expected init, selftest, runtime or nan (or "
      "unset)",
      quoted);
  return FALSE;
}

static gboolean
lost_device (fer_backend *be, const char *op, GError **error)
{
  if (!table_of (be)->armed)
    return TRUE;
  g_set_error (error, FER_ERROR, FER_ERROR_BACKEND,
      "CUDA error cudaErrorLaunchFailure (unspecified launch failure) in "
      "`%s` (injected by FER_CUDA_FAULT=runtime)",
      op);
  return FALSE;
}

static gboolean
fault_conv2d_forward (fer_backend *be, float *out, const float *inp,
    const float *weight, const float *bias, const float *residual,
    const fer_conv_shape *s, gboolean relu, GError **error)
{
  return lost_device (be, "conv2d_forward", error)
      && table_of (be)->cpu->conv2d_forward (
          be, out, inp, weight, bias, residual, s, relu, error);
}

static gboolean
fault_preprocess (fer_backend *be, float *out, const fer_image *img,
    const fer_view *views, int n, const fer_input_spec *spec, GError **error)
{
  return lost_device (be, "preprocess", error)
      && table_of (be)->cpu->preprocess (be, out, img, views, n, spec, error);
}

static gboolean
fault_conv2d_forward_train (fer_backend *be, float *out, const float *inp,
    const float *weight, const fer_conv_shape *s, GError **error)
{
  return lost_device (be, "conv2d_forward_train", error)
      && table_of (be)->cpu->conv2d_forward_train (
          be, out, inp, weight, s, error);
}

/* selftest: each face's probabilities become certainty of its least
 * likely class, at least 1 - 1/k away from the true answer. */
static gboolean
fault_softmax_average (fer_backend *be, float *probs, const float *logits,
    int n_faces, int views, int k, GError **error)
{
  if (!table_of (be)->cpu->softmax_average (
          be, probs, logits, n_faces, views, k, error))
    return FALSE;
  if (table_of (be)->point == FER_FAULT_NAN) {
    for (size_t i = 0; i < (size_t) n_faces * k; i++)
      probs[i] = NAN;
    return TRUE;
  }
  for (int f = 0; f < n_faces; f++) {
    float *p = probs + (size_t) f * k;
    int least = 0;
    for (int j = 1; j < k; j++)
      if (p[j] < p[least])
        least = j;
    for (int j = 0; j < k; j++)
      p[j] = j == least ? 1.0f : 0.0f;
  }
  return TRUE;
}

/* selftest: the training loss comes out 1 too high. */
static gboolean
fault_softmax_xent (fer_backend *be, float *loss, float *dlogits,
    const float *logits, const int *y_a, const int *y_b, float lam,
    const float *class_weights, int n, int k, float smoothing,
    float focal_gamma, const float *soft, float soft_weight, GError **error)
{
  if (!table_of (be)->cpu->softmax_xent (be, loss, dlogits, logits, y_a, y_b,
          lam, class_weights, n, k, smoothing, focal_gamma, soft, soft_weight,
          error))
    return FALSE;
  *loss = table_of (be)->point == FER_FAULT_NAN ? NAN : *loss + 1.0f;
  return TRUE;
}

static double
fault_selftest_tolerance (fer_backend *be)
{
  return FER_SELFTEST_TOLERANCE_FP32;
}

static void
fault_selftest_passed (fer_backend *be)
{
  table_of (be)->armed = table_of (be)->point == FER_FAULT_RUNTIME;
}

static void
fault_destroy (fer_backend *be)
{
  fault_table *t = table_of (be);
  be->ops = t->cpu;
  g_free (t);
  be->ops->destroy (be);
}

fer_backend *
fer_backend_fault_new (fer_fault_point point, int threads, GError **error)
{
  static const char *const names[] = { "init", "selftest", "runtime", "nan" };
  fer_backend *be;
  fault_table *t;

  if (point == FER_FAULT_INIT) {
    g_set_error (error, FER_ERROR, FER_ERROR_BACKEND,
        "CUDA error cudaErrorInitializationError (initialization error) in "
        "`cudaStreamCreateWithFlags` (injected by FER_CUDA_FAULT=init)");
    return NULL;
  }
  g_return_val_if_fail (point == FER_FAULT_SELFTEST
          || point == FER_FAULT_RUNTIME || point == FER_FAULT_NAN,
      NULL);
  be = fer_backend_cpu_new (threads, error);
  if (!be)
    return NULL;
  t = g_new0 (fault_table, 1);
  t->ops = *be->ops;
  t->cpu = be->ops;
  t->point = point;
  g_snprintf (t->name, sizeof t->name, "cuda (FER_CUDA_FAULT=%s)",
      names[point - FER_FAULT_INIT]);
  t->ops.name = t->name;
  t->ops.destroy = fault_destroy;
  t->ops.selftest_tolerance = fault_selftest_tolerance;
  t->ops.selftest_passed = fault_selftest_passed;
  if (point == FER_FAULT_SELFTEST || point == FER_FAULT_NAN) {
    t->ops.softmax_average = fault_softmax_average;
    t->ops.softmax_xent = fault_softmax_xent;
  } else {
    t->ops.conv2d_forward = fault_conv2d_forward;
    t->ops.preprocess = fault_preprocess;
    t->ops.conv2d_forward_train = fault_conv2d_forward_train;
  }
  be->ops = &t->ops;
  return be;
}

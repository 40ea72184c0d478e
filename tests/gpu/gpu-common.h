/* Shared by the GPU tests: the skip rule and the normalised error.
 * A GPU test exits 77 (meson's "skipped") after printing
 * "SKIP: no CUDA device (<reason>)" when the CUDA backend cannot be made
 * here: a CPU-only build, no driver, no device. */
#ifndef FER_TEST_GPU_COMMON_H
#define FER_TEST_GPU_COMMON_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fer/model.h>
#include "backend.h"

#define SKIP_STATUS 77

/* The CUDA backend on FER_TEST_DEVICE (default 0), or exits 77. */
static inline fer_backend *
gpu_backend_or_skip (void)
{
  GError *error = NULL;
  const char *dev = g_getenv ("FER_TEST_DEVICE");
  fer_backend *be =
      fer_backend_new (FER_BACKEND_CUDA, dev ? atoi (dev) : 0, 1, NULL, &error);
  if (!be) {
    const char *reason = strstr (error->message, "no CUDA device");
    if (reason)
      printf ("SKIP: %s\n", reason);
    else
      printf ("SKIP: no CUDA device (%s)\n", error->message);
    g_error_free (error);
    exit (SKIP_STATUS);
  }
  return be;
}

/* ||got - ref|| / ||ref|| (2-norms, in double); ||got - ref|| when ref is 0. */
static inline double
normalised_error (const float *ref, const float *got, size_t n)
{
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = (double) got[i] - ref[i];
    num += d * d;
    den += (double) ref[i] * ref[i];
    if (isnan (got[i]) != isnan (ref[i]))
      return INFINITY;
  }
  return den > 0.0 ? sqrt (num / den) : sqrt (num);
}

#endif

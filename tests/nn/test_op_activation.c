/* The CPU activation ops (cpu/activation.c): ReLU's backward, dropout's
 * forward and backward with a mask, and the residual add, each against
 * central finite differences of its forward. Every case prints its max
 * error. */
#include <math.h>

#include <fer/rng.h>
#include "cpu/ops.h"
#include "test-util.h"

static fer_rng rng;

typedef struct
{
  size_t n;
  float *inp, *dout, *out, *mask;
} ew_ctx;

static double
relu_loss (void *p)
{
  ew_ctx *e = p;
  for (size_t i = 0; i < e->n; i++)
    e->out[i] = e->inp[i] > 0.0f ? e->inp[i] : 0.0f;
  return test_dot (e->out, e->dout, e->n);
}

static double
dropout_loss (void *p)
{
  ew_ctx *e = p;
  fer_cpu_dropout_forward (e->out, e->inp, e->mask, e->n);
  return test_dot (e->out, e->dout, e->n);
}

static double
add_loss (void *p)
{
  ew_ctx *e = p;
  fer_cpu_add (e->out, e->inp, e->mask, e->n);
  return test_dot (e->out, e->dout, e->n);
}

static void
test_backward (void)
{
  ew_ctx e = { .n = 200 };
  e.inp = test_random_floats (&rng, e.n, 1.0f);
  e.dout = test_random_floats (&rng, e.n, 1.0f);
  e.out = g_new (float, e.n);
  e.mask = g_new (float, e.n);
  float *d = g_new (float, e.n);
  /* keep inputs off ReLU's kink by more than the finite-difference step */
  for (size_t i = 0; i < e.n; i++)
    e.inp[i] += e.inp[i] > 0 ? 0.05f : -0.05f;

  relu_loss (&e);
  fer_cpu_relu_backward (d, e.dout, e.out, e.n);
  test_fd_check ("relu backward", e.inp, e.n, relu_loss, &e, d, 0.0f);

  for (size_t i = 0; i < e.n; i++)
    e.mask[i] = fer_rng_uniform (&rng) < 0.3f ? 0.0f : 1.0f / 0.7f;
  fer_cpu_dropout_backward (d, e.dout, e.mask, e.n);
  test_fd_check (
      "dropout backward (p 0.3)", e.inp, e.n, dropout_loss, &e, d, 0.0f);
  size_t kept = 0;
  for (size_t i = 0; i < e.n; i++)
    kept += e.mask[i] != 0.0f;
  g_assert_cmpuint (kept, >, e.n / 2);

  /* residual add: the gradient reaches each branch unchanged */
  test_fd_check ("residual add backward (identity)", e.inp, e.n, add_loss, &e,
      e.dout, 0.0f);
  g_free (e.inp);
  g_free (e.dout);
  g_free (e.out);
  g_free (e.mask);
  g_free (d);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 12345);
  g_test_add_func ("/activation/backward", test_backward);
  return g_test_run ();
}

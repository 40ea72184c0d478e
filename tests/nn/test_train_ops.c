/* The CPU training ops, each on small shapes:
 *   backward passes against central finite differences of our own float
 *   forward (L = sum(dout * forward(x)) accumulated in double, step 1e-3,
 *   every input element), max error relative to the largest |gradient|;
 *   batch norm's training and evaluation forwards against a naive double
 *   reference (statistics, output, running statistics with the unbiased
 *   variance); the loss against the formula written out naively (class
 *   weights, label smoothing, focal factor, mixup); the optimizers against a
 *   naive double reference over several steps.
 * Every case prints its max error. Contract checked on the way: parameter
 * gradients accumulate (+=) onto what is there, activation gradients
 * overwrite. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <fer/rng.h>
#include "cpu/ops.h"
#include "cpu/ops_train.h"

#define FD_STEP 1e-3
#define FD_TOL 1e-2
#define REF_TOL 1e-5

static fer_rng rng;

static float *
random_floats (size_t n, float scale)
{
  float *x = g_new (float, n);
  for (size_t i = 0; i < n; i++)
    x[i] = scale * fer_rng_normal (&rng);
  return x;
}

/* L(x) for finite differences: the op's forward with the current inputs,
 * contracted with a fixed dout, in double. */
typedef double (*loss_fn) (void *ctx);

/* Central differences of f over x[0..n), against analytic[0..n) minus
 * `offset` (what an accumulating gradient held before). Returns
 * max |analytic - fd| / max |fd|. */
static double
fd_check (const char *what, float *x, size_t n, loss_fn f, void *ctx,
    const float *analytic, float offset)
{
  double err = 0.0, scale = 1e-12;
  for (size_t i = 0; i < n; i++) {
    float orig = x[i];
    float xp = (float) (orig + FD_STEP), xm = (float) (orig - FD_STEP);
    x[i] = xp;
    double lp = f (ctx);
    x[i] = xm;
    double lm = f (ctx);
    x[i] = orig;
    double fd = (lp - lm) / ((double) xp - xm);
    err = fmax (err, fabs ((analytic[i] - offset) - fd));
    scale = fmax (scale, fabs (fd));
  }
  double rel = err / scale;
  g_printerr ("# %-44s max |g - fd| / max |fd| = %.2e\n", what, rel);
  g_assert_cmpfloat (rel, <, FD_TOL);
  return rel;
}

static double
dot (const float *a, const float *b, size_t n)
{
  double s = 0.0;
  for (size_t i = 0; i < n; i++)
    s += (double) a[i] * b[i];
  return s;
}

/* ------------------------------------------------------------------ */
/* Convolution                                                         */

typedef struct
{
  fer_conv_shape s;
  float *inp, *w, *dout, *out, *col;
  size_t col_cap;
} conv_ctx;

static double
conv_loss (void *p)
{
  conv_ctx *c = p;
  fer_cpu_conv2d_forward_train (c->out, c->inp, c->w, &c->s, c->col,
      c->col_cap);
  return dot (c->out, c->dout, (size_t) c->s.n * c->s.oh * c->s.ow
      * c->s.cout);
}

typedef struct
{
  int n, h, cin, cout, k, stride, pad;
  gboolean small_col;   /* workspace for one image only: chunked */
} conv_case;

static void
check_conv (gconstpointer data)
{
  const conv_case *cc = data;
  conv_ctx c;
  char what[96];
  fer_conv_shape_init (&c.s, cc->n, cc->h, cc->h, cc->cin, cc->cout, cc->k,
      cc->stride, cc->pad);
  size_t nin = (size_t) c.s.n * c.s.h * c.s.w * c.s.cin;
  size_t nw = (size_t) c.s.cout * c.s.k * c.s.k * c.s.cin;
  size_t nout = (size_t) c.s.n * c.s.oh * c.s.ow * c.s.cout;
  size_t per = fer_cpu_conv2d_train_col_per_image (&c.s);
  c.col_cap = cc->small_col ? per : per * c.s.n;
  c.col = g_new (float, MAX (c.col_cap, 1));
  c.inp = random_floats (nin, 1.0f);
  c.w = random_floats (nw, 0.5f);
  c.dout = random_floats (nout, 1.0f);
  c.out = g_new (float, nout);
  float *dinp = g_new (float, nin);
  float *dw = g_new (float, nw);
  for (size_t i = 0; i < nw; i++)
    dw[i] = 0.25f;  /* accumulates onto this */
  for (size_t i = 0; i < nin; i++)
    dinp[i] = 1e6f; /* overwritten */

  fer_cpu_conv2d_backward (dinp, dw, c.dout, c.inp, c.w, &c.s, c.col,
      c.col_cap);
  snprintf (what, sizeof what, "conv %dx%d/%d pad %d %d->%d%s: dinp",
      cc->k, cc->k, cc->stride, cc->pad, cc->cin, cc->cout,
      cc->small_col ? " chunked" : "");
  fd_check (what, c.inp, nin, conv_loss, &c, dinp, 0.0f);
  snprintf (what, sizeof what, "conv %dx%d/%d pad %d %d->%d%s: dweight",
      cc->k, cc->k, cc->stride, cc->pad, cc->cin, cc->cout,
      cc->small_col ? " chunked" : "");
  fd_check (what, c.w, nw, conv_loss, &c, dw, 0.25f);

  /* dinp NULL: only the weight gradient, the same one */
  float *dw2 = g_new0 (float, nw);
  fer_cpu_conv2d_backward (NULL, dw2, c.dout, c.inp, c.w, &c.s, c.col,
      c.col_cap);
  for (size_t i = 0; i < nw; i++)
    g_assert_cmpfloat (fabsf (dw2[i] + 0.25f - dw[i]), <=,
        1e-5f * (1.0f + fabsf (dw[i])));
  g_free (dw2);
  g_free (c.col);
  g_free (c.inp);
  g_free (c.w);
  g_free (c.dout);
  g_free (c.out);
  g_free (dinp);
  g_free (dw);
}

/* ------------------------------------------------------------------ */
/* Batch norm                                                          */

typedef struct
{
  int rows, c;
  float *inp, *gamma, *beta, *dout, *out, *mean, *rstd;
} bn_ctx;

static double
bn_loss (void *p)
{
  bn_ctx *b = p;
  fer_cpu_batchnorm_forward_train (b->out, b->mean, b->rstd, NULL, NULL,
      b->inp, b->gamma, b->beta, NULL, b->rows, b->c, 0.1f, 1e-5f, FALSE);
  return dot (b->out, b->dout, (size_t) b->rows * b->c);
}

static void
check_bn_backward (int rows, int c)
{
  bn_ctx b = { .rows = rows, .c = c };
  char what[96];
  size_t n = (size_t) rows * c;
  b.inp = random_floats (n, 2.0f);
  for (size_t i = 0; i < n; i++)
    b.inp[i] += 1.0f;
  b.gamma = random_floats (c, 1.0f);
  b.beta = random_floats (c, 1.0f);
  b.dout = random_floats (n, 1.0f);
  b.out = g_new (float, n);
  b.mean = g_new (float, c);
  b.rstd = g_new (float, c);
  float *dinp = g_new (float, n), *dg = g_new (float, c),
      *db = g_new (float, c);
  for (int j = 0; j < c; j++)
    dg[j] = db[j] = -0.5f;

  bn_loss (&b);
  fer_cpu_batchnorm_backward (dinp, dg, db, b.dout, b.inp, b.mean, b.rstd,
      b.gamma, rows, c);
  snprintf (what, sizeof what, "batchnorm (%d, %d): dinp", rows, c);
  fd_check (what, b.inp, n, bn_loss, &b, dinp, 0.0f);
  snprintf (what, sizeof what, "batchnorm (%d, %d): dgamma", rows, c);
  fd_check (what, b.gamma, c, bn_loss, &b, dg, -0.5f);
  snprintf (what, sizeof what, "batchnorm (%d, %d): dbeta", rows, c);
  fd_check (what, b.beta, c, bn_loss, &b, db, -0.5f);
  g_free (b.inp);
  g_free (b.gamma);
  g_free (b.beta);
  g_free (b.dout);
  g_free (b.out);
  g_free (b.mean);
  g_free (b.rstd);
  g_free (dinp);
  g_free (dg);
  g_free (db);
}

static void
test_bn_backward (void)
{
  check_bn_backward (2 * 3 * 3, 5);   /* BatchNorm2d, n=2, 3x3 */
  check_bn_backward (4, 300);         /* BatchNorm1d, more than one block */
}

/* Training and evaluation forwards against the definition, in double. */
static void
test_bn_forward (void)
{
  const int rows = 37, c = 270;
  const float momentum = 0.1f, eps = 1e-5f;
  size_t n = (size_t) rows * c;
  float *inp = random_floats (n, 3.0f), *gamma = random_floats (c, 1.0f),
      *beta = random_floats (c, 1.0f), *res = random_floats (n, 1.0f);
  float *rm = random_floats (c, 0.2f), *rv = g_new (float, c);
  float *out = g_new (float, n), *mean = g_new (float, c),
      *rstd = g_new (float, c);
  double err_out = 0.0, err_stat = 0.0, err_run = 0.0, err_eval = 0.0;
  for (int j = 0; j < c; j++) {
    rv[j] = 0.5f + fer_rng_uniform (&rng);
    for (int r = 0; r < rows; r++)
      inp[(size_t) r * c + j] += 0.1f * j;  /* per-channel offsets */
  }
  float *rm0 = g_memdup2 (rm, sizeof (float) * c);
  float *rv0 = g_memdup2 (rv, sizeof (float) * c);

  for (int variant = 0; variant < 2; variant++) {
    gboolean fused = variant == 1;  /* + residual, ReLU */
    memcpy (rm, rm0, sizeof (float) * c);
    memcpy (rv, rv0, sizeof (float) * c);
    fer_cpu_batchnorm_forward_train (out, mean, rstd, rm, rv, inp, gamma,
        beta, fused ? res : NULL, rows, c, momentum, eps, fused);
    for (int j = 0; j < c; j++) {
      double m = 0.0, v = 0.0;
      for (int r = 0; r < rows; r++)
        m += inp[(size_t) r * c + j];
      m /= rows;
      for (int r = 0; r < rows; r++)
        v += pow (inp[(size_t) r * c + j] - m, 2);
      double var = v / rows, unbiased = v / (rows - 1);
      double is = 1.0 / sqrt (var + eps);
      err_stat = fmax (err_stat, fabs (mean[j] - m) / (1 + fabs (m)));
      err_stat = fmax (err_stat, fabs (rstd[j] - is) / is);
      err_run = fmax (err_run, fabs (rm[j] - (0.9 * rm0[j] + 0.1 * m)));
      err_run = fmax (err_run, fabs (rv[j] - (0.9 * rv0[j] + 0.1 * unbiased))
          / (0.9 * rv0[j] + 0.1 * unbiased));
      for (int r = 0; r < rows; r++) {
        size_t i = (size_t) r * c + j;
        double y = (inp[i] - m) * is * gamma[j] + beta[j];
        if (fused)
          y = fmax (y + res[i], 0.0);
        err_out = fmax (err_out, fabs (out[i] - y) / (1 + fabs (y)));
      }
    }
    fer_cpu_batchnorm_forward_eval (out, inp, gamma, beta, rm0, rv0,
        fused ? res : NULL, rows, c, eps, fused);
    for (int j = 0; j < c; j++)
      for (int r = 0; r < rows; r++) {
        size_t i = (size_t) r * c + j;
        double y = (inp[i] - rm0[j]) / sqrt (rv0[j] + (double) eps)
            * gamma[j] + beta[j];
        if (fused)
          y = fmax (y + res[i], 0.0);
        err_eval = fmax (err_eval, fabs (out[i] - y) / (1 + fabs (y)));
      }
  }
  g_printerr ("# batchnorm train forward (%d, %d): output %.2e, batch stats "
      "%.2e, running stats (unbiased var) %.2e; eval forward %.2e\n", rows,
      c, err_out, err_stat, err_run, err_eval);
  g_assert_cmpfloat (err_out, <, REF_TOL);
  g_assert_cmpfloat (err_stat, <, REF_TOL);
  g_assert_cmpfloat (err_run, <, REF_TOL);
  g_assert_cmpfloat (err_eval, <, REF_TOL);
  g_free (inp);
  g_free (gamma);
  g_free (beta);
  g_free (res);
  g_free (rm);
  g_free (rv);
  g_free (rm0);
  g_free (rv0);
  g_free (out);
  g_free (mean);
  g_free (rstd);
}

/* ------------------------------------------------------------------ */
/* Element-wise ops, pooling, linear, softmax                          */

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
  return dot (e->out, e->dout, e->n);
}

static double
dropout_loss (void *p)
{
  ew_ctx *e = p;
  fer_cpu_dropout_forward (e->out, e->inp, e->mask, e->n);
  return dot (e->out, e->dout, e->n);
}

static double
add_loss (void *p)
{
  ew_ctx *e = p;
  fer_cpu_add (e->out, e->inp, e->mask, e->n);
  return dot (e->out, e->dout, e->n);
}

static void
test_elementwise (void)
{
  ew_ctx e = { .n = 200 };
  e.inp = random_floats (e.n, 1.0f);
  e.dout = random_floats (e.n, 1.0f);
  e.out = g_new (float, e.n);
  e.mask = g_new (float, e.n);
  float *d = g_new (float, e.n);
  /* keep inputs off ReLU's kink by more than the finite-difference step */
  for (size_t i = 0; i < e.n; i++)
    e.inp[i] += e.inp[i] > 0 ? 0.05f : -0.05f;

  relu_loss (&e);
  fer_cpu_relu_backward (d, e.dout, e.out, e.n);
  fd_check ("relu backward", e.inp, e.n, relu_loss, &e, d, 0.0f);

  for (size_t i = 0; i < e.n; i++)
    e.mask[i] = fer_rng_uniform (&rng) < 0.3f ? 0.0f : 1.0f / 0.7f;
  fer_cpu_dropout_backward (d, e.dout, e.mask, e.n);
  fd_check ("dropout backward (p 0.3)", e.inp, e.n, dropout_loss, &e, d,
      0.0f);
  size_t kept = 0;
  for (size_t i = 0; i < e.n; i++)
    kept += e.mask[i] != 0.0f;
  g_assert_cmpuint (kept, >, e.n / 2);

  /* residual add: the gradient reaches each branch unchanged */
  fd_check ("residual add backward (identity)", e.inp, e.n, add_loss, &e,
      e.dout, 0.0f);
  g_free (e.inp);
  g_free (e.dout);
  g_free (e.out);
  g_free (e.mask);
  g_free (d);
}

typedef struct
{
  int n, h, w, c, k, stride, pad, oh, ow;
  float *inp, *dout, *out;
} pool_ctx;

static double
maxpool_loss (void *p)
{
  pool_ctx *q = p;
  fer_cpu_maxpool2d_forward (q->out, q->inp, q->n, q->h, q->w, q->c, q->k,
      q->stride, q->pad);
  return dot (q->out, q->dout, (size_t) q->n * q->oh * q->ow * q->c);
}

static double
avgpool_loss (void *p)
{
  pool_ctx *q = p;
  fer_cpu_avgpool_forward (q->out, q->inp, q->n, q->h * q->w, q->c);
  return dot (q->out, q->dout, (size_t) q->n * q->c);
}

static void
test_pool (void)
{
  pool_ctx q = { .n = 2, .h = 7, .w = 6, .c = 3, .k = 3, .stride = 2,
    .pad = 1 };
  q.oh = (q.h + 2 * q.pad - q.k) / q.stride + 1;
  q.ow = (q.w + 2 * q.pad - q.k) / q.stride + 1;
  size_t nin = (size_t) q.n * q.h * q.w * q.c;
  /* distinct values 0.01 apart: no window has a near-tie */
  q.inp = g_new (float, nin);
  for (size_t i = 0; i < nin; i++)
    q.inp[i] = 0.01f * (float) i;
  for (size_t i = nin - 1; i > 0; i--) {
    size_t j = fer_rng_next (&rng) % (i + 1);
    float tmp = q.inp[i];
    q.inp[i] = q.inp[j];
    q.inp[j] = tmp;
  }
  q.dout = random_floats ((size_t) q.n * q.oh * q.ow * q.c, 1.0f);
  q.out = g_new (float, (size_t) q.n * q.oh * q.ow * q.c);
  float *d = g_new (float, nin);
  fer_cpu_maxpool2d_backward (d, q.dout, q.inp, q.n, q.h, q.w, q.c, q.k,
      q.stride, q.pad);
  fd_check ("maxpool 3x3/2 pad 1 backward", q.inp, nin, maxpool_loss, &q, d,
      0.0f);

  /* Ties (all-zero windows after ReLU): the first position in scan order
   * gets the gradient, as in PyTorch. */
  float zeros[1 * 4 * 4 * 1] = { 0 }, dz[16], g[4] = { 1, 2, 3, 4 };
  fer_cpu_maxpool2d_backward (dz, g, zeros, 1, 4, 4, 1, 3, 2, 1);
  float want[16] = { 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
  g_assert_cmpmem (dz, sizeof dz, want, sizeof want);

  q.dout = g_realloc (q.dout, sizeof (float) * q.n * q.c);
  for (int i = 0; i < q.n * q.c; i++)
    q.dout[i] = fer_rng_normal (&rng);
  fer_cpu_avgpool_backward (d, q.dout, q.n, q.h * q.w, q.c);
  fd_check ("global avgpool backward", q.inp, nin, avgpool_loss, &q, d,
      0.0f);
  g_free (q.inp);
  g_free (q.dout);
  g_free (q.out);
  g_free (d);
}

typedef struct
{
  int n, nin, nout;
  float *inp, *w, *b, *dout, *out;
} linear_ctx;

static double
linear_loss (void *p)
{
  linear_ctx *l = p;
  fer_cpu_linear_forward (l->out, l->inp, l->w, l->b, l->n, l->nin, l->nout,
      FALSE);
  return dot (l->out, l->dout, (size_t) l->n * l->nout);
}

static void
test_linear (void)
{
  linear_ctx l = { .n = 5, .nin = 12, .nout = 7 };
  l.inp = random_floats ((size_t) l.n * l.nin, 1.0f);
  l.w = random_floats ((size_t) l.nout * l.nin, 0.5f);
  l.b = random_floats (l.nout, 0.5f);
  l.dout = random_floats ((size_t) l.n * l.nout, 1.0f);
  l.out = g_new (float, (size_t) l.n * l.nout);
  float *dinp = g_new (float, (size_t) l.n * l.nin);
  float *dw = g_new (float, (size_t) l.nout * l.nin);
  float *db = g_new (float, l.nout);
  for (int i = 0; i < l.nout * l.nin; i++)
    dw[i] = 1.0f;
  for (int i = 0; i < l.nout; i++)
    db[i] = 1.0f;
  fer_cpu_linear_backward (dinp, dw, db, l.dout, l.inp, l.w, l.n, l.nin,
      l.nout);
  fd_check ("linear backward: dinp", l.inp, (size_t) l.n * l.nin,
      linear_loss, &l, dinp, 0.0f);
  fd_check ("linear backward: dweight", l.w, (size_t) l.nout * l.nin,
      linear_loss, &l, dw, 1.0f);
  fd_check ("linear backward: dbias", l.b, l.nout, linear_loss, &l, db, 1.0f);
  g_free (l.inp);
  g_free (l.w);
  g_free (l.b);
  g_free (l.dout);
  g_free (l.out);
  g_free (dinp);
  g_free (dw);
  g_free (db);
}

typedef struct
{
  int n, c;
  float *inp, *dout, *out;
} softmax_ctx;

static double
softmax_loss (void *p)
{
  softmax_ctx *s = p;
  fer_cpu_softmax_forward (s->out, s->inp, s->n, s->c);
  return dot (s->out, s->dout, (size_t) s->n * s->c);
}

static void
test_softmax (void)
{
  softmax_ctx s = { .n = 4, .c = 9 };
  s.inp = random_floats ((size_t) s.n * s.c, 2.0f);
  s.dout = random_floats ((size_t) s.n * s.c, 1.0f);
  s.out = g_new (float, (size_t) s.n * s.c);
  float *d = g_new (float, (size_t) s.n * s.c);
  softmax_loss (&s);
  fer_cpu_softmax_backward (d, s.dout, s.out, s.n, s.c);
  fd_check ("softmax backward", s.inp, (size_t) s.n * s.c, softmax_loss, &s,
      d, 0.0f);
  g_free (s.inp);
  g_free (s.dout);
  g_free (s.out);
  g_free (d);
}

/* ------------------------------------------------------------------ */
/* Loss                                                                */

typedef struct
{
  int n, k;
  float *logits, *w;
  int *ya, *yb;
  float lam, smoothing, gamma;
} loss_ctx;

/* The definition, per label set: log-softmax, PyTorch's weighted,
 * label-smoothed cross-entropy per sample, the focal factor, divided by
 * the sum of the targets' weights. */
static double
naive_term (const loss_ctx *l, const int *y)
{
  double total = 0.0, wsum = 0.0;
  for (int i = 0; i < l->n; i++) {
    const float *z = l->logits + (size_t) i * l->k;
    double lse = 0.0, logp[16];
    for (int j = 0; j < l->k; j++)
      lse += exp (z[j]);
    lse = log (lse);
    for (int j = 0; j < l->k; j++)
      logp[j] = z[j] - lse;
    double w_t = l->w ? l->w[y[i]] : 1.0;
    double nll = -w_t * logp[y[i]], smooth = 0.0;
    for (int j = 0; j < l->k; j++)
      smooth -= (l->w ? l->w[j] : 1.0) * logp[j];
    double ce = (1 - l->smoothing) * nll + l->smoothing / l->k * smooth;
    total += ce * pow (1.0 - exp (logp[y[i]]), l->gamma);
    wsum += w_t;
  }
  return total / wsum;
}

static double
naive_loss (const loss_ctx *l)
{
  if (!l->yb)
    return naive_term (l, l->ya);
  return l->lam * naive_term (l, l->ya) + (1 - l->lam) * naive_term (l, l->yb);
}

static double
loss_value (void *p)
{
  loss_ctx *l = p;
  float loss;
  fer_cpu_softmax_xent (&loss, NULL, l->logits, l->ya, l->yb, l->lam, l->w,
      l->n, l->k, l->smoothing, l->gamma);
  return loss;
}

typedef struct
{
  const char *name;
  gboolean weights, mixup;
  float smoothing, gamma;
} loss_case;

static void
check_loss (gconstpointer data)
{
  const loss_case *lc = data;
  loss_ctx l = { .n = 6, .k = 5 };
  int ya[6] = { 0, 3, 1, 4, 3, 2 }, yb[6] = { 2, 2, 0, 1, 4, 3 };
  float w[5] = { 0.5f, 2.0f, 1.0f, 0.8f, 1.3f };
  char what[96];
  l.logits = random_floats ((size_t) l.n * l.k, 1.5f);
  l.w = lc->weights ? w : NULL;
  l.ya = ya;
  l.yb = lc->mixup ? yb : NULL;
  l.lam = 0.65f;
  l.smoothing = lc->smoothing;
  l.gamma = lc->gamma;
  float loss, *d = g_new (float, (size_t) l.n * l.k);
  for (int i = 0; i < l.n * l.k; i++)
    d[i] = 1e6f;  /* overwritten */

  fer_cpu_softmax_xent (&loss, d, l.logits, l.ya, l.yb, l.lam, l.w, l.n, l.k,
      l.smoothing, l.gamma);
  double ref = naive_loss (&l);
  double rel = fabs (loss - ref) / fabs (ref);
  g_printerr ("# loss %-40s value %.6f, naive %.6f, relative error %.2e\n",
      lc->name, loss, ref, rel);
  g_assert_cmpfloat (rel, <, REF_TOL);
  snprintf (what, sizeof what, "loss %s: dlogits", lc->name);
  fd_check (what, l.logits, (size_t) l.n * l.k, loss_value, &l, d, 0.0f);
  g_free (l.logits);
  g_free (d);
}

/* ------------------------------------------------------------------ */
/* Optimizers                                                          */

typedef struct
{
  const char *name;
  int kind;          /* 0 Adam, 1 AdamW, 2 SGD */
  float wd, momentum;
  gboolean nesterov;
} opt_case;

static void
check_optimizer (gconstpointer data)
{
  const opt_case *oc = data;
  const size_t n = 257;
  const int steps = 6;
  const float lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
  float *p = random_floats (n, 1.0f), *m = g_new0 (float, n),
      *v = g_new0 (float, n), *g = g_new (float, n);
  double *rp = g_new (double, n), *rm = g_new0 (double, n),
      *rv = g_new0 (double, n);
  double err = 0.0;
  for (size_t i = 0; i < n; i++)
    rp[i] = p[i];

  for (int t = 1; t <= steps; t++) {
    for (size_t i = 0; i < n; i++)
      g[i] = fer_rng_normal (&rng) * (i % 3 ? 1.0f : 1e-3f);
    if (oc->kind == 2)
      fer_cpu_sgd_update (p, m, g, n, lr, oc->momentum, oc->wd,
          oc->nesterov, t == 1);
    else
      fer_cpu_adam_update (p, m, v, g, n, lr, b1, b2, eps, oc->wd, t,
          oc->kind == 1);
    /* the reference, straight from torch.optim's documentation */
    for (size_t i = 0; i < n; i++) {
      double gi = g[i];
      if (oc->kind == 1) {
        rp[i] *= 1.0 - (double) lr * oc->wd;
      } else {
        gi += (double) oc->wd * rp[i];
      }
      if (oc->kind == 2) {
        if (oc->momentum != 0.0f) {
          rm[i] = t == 1 ? gi : oc->momentum * rm[i] + gi;
          gi = oc->nesterov ? gi + oc->momentum * rm[i] : rm[i];
        }
        rp[i] -= lr * gi;
      } else {
        rm[i] = b1 * rm[i] + (1.0 - b1) * gi;
        rv[i] = b2 * rv[i] + (1.0 - b2) * gi * gi;
        double mhat = rm[i] / (1.0 - pow (b1, t));
        double vhat = rv[i] / (1.0 - pow (b2, t));
        rp[i] -= lr * mhat / (sqrt (vhat) + eps);
      }
    }
  }
  for (size_t i = 0; i < n; i++)
    err = fmax (err, fabs (p[i] - rp[i]) / (1.0 + fabs (rp[i])));
  g_printerr ("# %-40s %d steps: max |p - p_ref| / (1 + |p_ref|) = %.2e\n",
      oc->name, steps, err);
  g_assert_cmpfloat (err, <, REF_TOL);
  g_free (p);
  g_free (m);
  g_free (v);
  g_free (g);
  g_free (rp);
  g_free (rm);
  g_free (rv);
}

int
main (int argc, char **argv)
{
  static const conv_case convs[] = {
    { 2, 6, 3, 4, 3, 1, 1, FALSE },
    { 2, 7, 3, 5, 3, 2, 1, FALSE },
    { 3, 7, 4, 6, 1, 2, 0, FALSE },   /* downsample */
    { 2, 9, 1, 4, 7, 2, 3, FALSE },   /* torchvision stem, 1 channel */
    { 2, 5, 3, 4, 1, 1, 0, FALSE },   /* pointwise: no im2col */
    { 3, 6, 3, 4, 3, 1, 1, TRUE },    /* workspace for one image: chunks */
    { 4, 2, 6, 5, 3, 1, 1, FALSE },   /* layer4 at 48x48: 2x2 */
    { 4, 3, 6, 5, 3, 2, 1, FALSE },   /* layer4.0 conv1: 3x3 -> 2x2 */
    { 4, 3, 6, 5, 1, 2, 0, FALSE },   /* layer4.0 downsample */
  };
  static const loss_case losses[] = {
    { "plain", FALSE, FALSE, 0.0f, 0.0f },
    { "weights", TRUE, FALSE, 0.0f, 0.0f },
    { "weights+smoothing", TRUE, FALSE, 0.1f, 0.0f },
    { "weights+smoothing+focal2", TRUE, FALSE, 0.1f, 2.0f },
    { "focal0.5", FALSE, FALSE, 0.0f, 0.5f },
    { "weights+smoothing+focal2+mixup", TRUE, TRUE, 0.1f, 2.0f },
  };
  static const opt_case opts[] = {
    { "adam", 0, 0.0f, 0.0f, FALSE },
    { "adam weight_decay 0.1 (L2)", 0, 0.1f, 0.0f, FALSE },
    { "adamw weight_decay 0.1 (decoupled)", 1, 0.1f, 0.0f, FALSE },
    { "sgd", 2, 0.0f, 0.0f, FALSE },
    { "sgd momentum 0.9 weight_decay 0.01", 2, 0.01f, 0.9f, FALSE },
    { "sgd nesterov momentum 0.9", 2, 0.0f, 0.9f, TRUE },
  };
  char name[96];

  g_test_init (&argc, &argv, NULL);
  fer_rng_seed (&rng, 12345);
  for (guint i = 0; i < G_N_ELEMENTS (convs); i++) {
    snprintf (name, sizeof name, "/train-ops/conv-backward/%u", i);
    g_test_add_data_func (name, &convs[i], check_conv);
  }
  g_test_add_func ("/train-ops/batchnorm-backward", test_bn_backward);
  g_test_add_func ("/train-ops/batchnorm-forward", test_bn_forward);
  g_test_add_func ("/train-ops/elementwise", test_elementwise);
  g_test_add_func ("/train-ops/pool", test_pool);
  g_test_add_func ("/train-ops/linear", test_linear);
  g_test_add_func ("/train-ops/softmax", test_softmax);
  for (guint i = 0; i < G_N_ELEMENTS (losses); i++) {
    snprintf (name, sizeof name, "/train-ops/loss/%s", losses[i].name);
    g_test_add_data_func (name, &losses[i], check_loss);
  }
  for (guint i = 0; i < G_N_ELEMENTS (opts); i++) {
    snprintf (name, sizeof name, "/train-ops/optimizer/%u", i);
    g_test_add_data_func (name, &opts[i], check_optimizer);
  }
  return g_test_run ();
}

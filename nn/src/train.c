/* Training the ResNet-18 (train.h): the graph of model.c with BatchNorm
 * unfolded and in training mode, its backward pass, the loss and the
 * optimizer step, all through the backend's training ops (backend.h).
 *
 * Memory, as in llm.c: every learnable parameter lives in one backend
 * allocation `params` with a view per tensor (torchvision names, inventory
 * order of arch.c); `grads`, and the optimizer's `m` and `v`, mirror that
 * layout, so zeroing, updating and saving are single loops. Conv weights are
 * stored (Cout, K, K, Cin), the layout the NHWC ops want; they are
 * transposed to and from PyTorch's (Cout, Cin, K, K) only at the edges (init,
 * save, load, param_get). BatchNorm running statistics are not learnable and
 * live in a second buffer `running`. Activations live in one slab, sized for
 * the largest batch seen and then reused, so steady-state steps allocate
 * nothing; activation gradients use four rotating buffers of the largest
 * activation's size.
 *
 * Contract of the ops (backend.h): parameter gradients accumulate, so
 * `grads` is zeroed once per step; activation gradients are overwritten. */
#include <fer/train.h>
#include <fer/rng.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "arch.h"
#include "backend.h"
#include "init.h"

#define BN_MOMENTUM 0.1f
/* Upper bound on conv workspace (im2col); larger batches run in chunks. */
#define CONV_WS_CAP ((size_t) 32 << 20)
#define N_GRAD_BUFFERS 4
#define STATE_FORMAT "1"
/* Dropout draws from its own stream, so that it never shifts the
 * initialisation's (which must equal fer_model_write_random's). */
#define DROPOUT_STREAM 0x64726f706f7574ULL

/* A tensor of the inventory: where it lives. */
typedef struct
{
  gboolean learnable; /* in params/grads/m/v; else in running */
  size_t offset;      /* floats into that buffer */
} tensor_view;

typedef struct
{
  int c;
  int gamma;        /* inventory index of .weight; .bias, .running_mean
                         * and .running_var follow it */
  float *save_mean; /* backend (c): batch statistics of the last */
  float *save_rstd; /* backend (c): training-mode forward */
} bn_unit;

/* conv (no bias) -> BatchNorm [-> + residual] [-> ReLU] */
typedef struct
{
  fer_conv_shape s; /* s.n = 1; the batch size is set per call */
  int weight;       /* inventory index */
  bn_unit bn;
  size_t per_image; /* floats of one image's output: oh * ow * cout */
  float *c;         /* backend (n, oh, ow, cout): conv output = BN input */
  float *a;         /* backend (n, oh, ow, cout): BN [+ res] [ReLU] out */
} conv_unit;

typedef struct
{
  conv_unit conv1, conv2, down;
  gboolean has_down;
} block_unit;

typedef struct
{
  int nin, nout;
  int weight; /* inventory index; .bias follows */
  float *out; /* backend (n, nout) */
} linear_unit;

struct fer_trainer
{
  fer_train_config cfg;
  float *class_weights_host; /* (n_classes) copy, or NULL */
  fer_backend *be;
  fer_backend_type backend_type;

  /* Tensors: the topology's inventory, and for each its view. learn[i] is
   * the inventory index of learnable parameter i (fer_trainer_param
   * order). */
  fer_topology topo;
  tensor_view view[FER_ARCH_MAX_PARAMS];
  int learn[FER_ARCH_MAX_PARAMS];
  int n_learn;
  size_t n_params, n_running;
  float *params;        /* backend (n_params) */
  float *grads;         /* backend (n_params) */
  float *m, *v;         /* backend (n_params): Adam moments; m: SGD momentum */
  float *running;       /* backend (n_running) */
  float *ema_params;    /* backend (n_params): the average, or NULL */
  float *ema_running;   /* backend (n_running): the average, or NULL */
  gboolean ema_swapped; /* the average is in params/running */
  float *bn_stats;      /* backend: save_mean, save_rstd of every BatchNorm */
  float *class_weights; /* backend (n_classes) or NULL */
  GHashTable *init_metadata; /* the init model's fer.* preprocessing keys */

  /* Graph */
  conv_unit stem;
  int stem_oh; /* stem conv output side */
  int pool_oh; /* after the max-pool (torchvision stem only) */
  size_t pool_per_image;
  float *pool; /* backend (n, pool_oh, pool_oh, 64) */
  block_unit blocks[FER_N_BLOCKS];
  int final_hw; /* spatial positions of layer4's output */
  linear_unit fc[2];
  int n_fc;
  bn_unit head_bn; /* mlp head: fc.1 */
  float *feat;     /* backend (n, 512): pooled features */
  float *hidden;   /* backend (n, 256): mlp head after BN + ReLU */
  float *dropped;  /* backend (n, 256): after dropout */
  float *mask;     /* backend (n, 256): dropout mask */
  float *dlogits;  /* backend (n, n_classes) */
  size_t max_act;  /* floats of the largest activation of one image */

  /* Workspace for ws_n images */
  int ws_n;
  float *slab;                 /* backend: every activation above */
  float *gbuf[N_GRAD_BUFFERS]; /* backend (ws_n, max_act) */
  float *conv_ws;              /* backend */
  size_t conv_ws_floats;
  float *input;     /* backend (ws_n, S, S, C) */
  float *host_nhwc; /* (ws_n, S, S, C) staging when C > 1 */
  float *host_mask; /* (ws_n, 256) when the head has dropout */

  fer_rng rng; /* dropout */
  int64_t step;
  float lr;
  char *fallback_reason; /* fer_trainer_fallback_reason */
};

/* ------------------------------------------------------------------ */
/* Views                                                               */

static float *
param_ptr (fer_trainer *t, float *buf, int tensor)
{
  g_assert (t->view[tensor].learnable);
  return buf + t->view[tensor].offset;
}

static float *
running_ptr (fer_trainer *t, int tensor)
{
  g_assert (!t->view[tensor].learnable);
  return t->running + t->view[tensor].offset;
}

static gboolean
is_statistic (fer_param_kind k)
{
  return k == FER_PARAM_BN_MEAN || k == FER_PARAM_BN_VAR;
}

static void
build_views (fer_trainer *t)
{
  fer_topology_init (&t->topo, &t->cfg.arch);
  for (int i = 0; i < t->topo.n_params; i++) {
    tensor_view *v = &t->view[i];
    v->learnable = !is_statistic (t->topo.params[i].kind);
    if (v->learnable) {
      v->offset = t->n_params;
      t->n_params += t->topo.params[i].numel;
      t->learn[t->n_learn++] = i;
    } else {
      v->offset = t->n_running;
      t->n_running += t->topo.params[i].numel;
    }
  }
}

/* PyTorch's (Cout, Cin, K, K) to ours (Cout, K, K, Cin), or back. */
static void
conv_relayout (
    float *dst, const float *src, const fer_param_desc *d, gboolean to_ours)
{
  const int64_t co = d->shape[0], ci = d->shape[1],
                kk = d->shape[2] * d->shape[3];
  for (int64_t o = 0; o < co; o++)
    for (int64_t c = 0; c < ci; c++)
      for (int64_t p = 0; p < kk; p++) {
        const int64_t torch = (o * ci + c) * kk + p,
                      ours = (o * kk + p) * ci + c;
        if (to_ours)
          dst[ours] = src[torch];
        else
          dst[torch] = src[ours];
      }
}

/* Uploads tensor i, given in PyTorch layout, into `buf` (params, m, v) or,
 * for statistics, into running. */
static gboolean
set_tensor (fer_trainer *t, float *buf, int i, const float *x, GError **error)
{
  const fer_param_desc *d = &t->topo.params[i];
  float *dst =
      t->view[i].learnable ? param_ptr (t, buf, i) : running_ptr (t, i);
  if (d->kind != FER_PARAM_CONV_WEIGHT)
    return t->be->ops->upload (t->be, dst, x, d->numel, error);
  float *tmp = g_new (float, d->numel);
  conv_relayout (tmp, x, d, TRUE);
  gboolean ok = t->be->ops->upload (t->be, dst, tmp, d->numel, error);
  g_free (tmp);
  return ok;
}

/* Downloads tensor i of `buf` (params, grads, m, v; running for
 * statistics) into out, PyTorch layout. */
static gboolean
get_tensor (fer_trainer *t, const float *buf, int i, float *out, GError **error)
{
  const fer_param_desc *d = &t->topo.params[i];
  const float *src =
      t->view[i].learnable ? buf + t->view[i].offset : running_ptr (t, i);
  if (d->kind != FER_PARAM_CONV_WEIGHT)
    return t->be->ops->download (t->be, out, src, d->numel, error);
  float *tmp = g_new (float, d->numel);
  gboolean ok = t->be->ops->download (t->be, tmp, src, d->numel, error);
  if (ok)
    conv_relayout (out, tmp, d, FALSE);
  g_free (tmp);
  return ok;
}

/* ------------------------------------------------------------------ */
/* Graph                                                               */

/* Unit u for conv d at shape s (one image). */
static void
init_conv (conv_unit *u, const fer_conv_desc *d, const fer_conv_shape *s)
{
  u->s = *s;
  u->weight = d->weight;
  u->bn.c = d->cout;
  u->bn.gamma = d->weight + 1;
  u->per_image = (size_t) u->s.oh * u->s.ow * d->cout;
}

/* Shapes for the configured input size; FALSE when it is too small for
 * the network (a spatial size reaches 0). */
static gboolean
build_graph (fer_trainer *t)
{
  const fer_topology *topo = &t->topo;
  fer_topology_shapes s;

  if (!fer_topology_shapes_init (&s, topo, t->cfg.input_size))
    return FALSE;
  t->max_act = s.max_activation;
  init_conv (&t->stem, &topo->stem, &s.stem);
  t->stem_oh = s.stem.oh;
  if (topo->stem_geometry.max_pool) {
    t->pool_oh = s.pool_side;
    t->pool_per_image = (size_t) s.pool_side * s.pool_side * topo->stem.cout;
  }
  for (int i = 0; i < FER_N_BLOCKS; i++) {
    const fer_block_desc *d = &topo->blocks[i];
    block_unit *blk = &t->blocks[i];
    init_conv (&blk->conv1, &d->conv1, &s.conv1[i]);
    init_conv (&blk->conv2, &d->conv2, &s.conv2[i]);
    blk->has_down = d->has_down;
    if (blk->has_down)
      init_conv (&blk->down, &d->down, &s.down[i]);
  }
  const int h = s.final_side;
  t->final_hw = h * h;
  t->n_fc = topo->n_head;
  for (int i = 0; i < topo->n_head; i++) {
    const fer_linear_desc *d = &topo->head[i];
    t->fc[i] = (linear_unit){ d->nin, d->nout, d->weight, NULL };
    if (d->bn >= 0) {
      t->head_bn.c = d->nout;
      t->head_bn.gamma = d->bn;
    }
  }
  return TRUE;
}

/* Every conv unit, for loops over them. */
static int
conv_units (fer_trainer *t, conv_unit **out)
{
  int n = 0;
  out[n++] = &t->stem;
  for (int i = 0; i < FER_N_BLOCKS; i++) {
    out[n++] = &t->blocks[i].conv1;
    out[n++] = &t->blocks[i].conv2;
    if (t->blocks[i].has_down)
      out[n++] = &t->blocks[i].down;
  }
  return n;
}

#define MAX_CONV_UNITS 20

static gboolean
alloc_bn_stats (fer_trainer *t, GError **error)
{
  conv_unit *units[MAX_CONV_UNITS];
  int n = conv_units (t, units);
  size_t total = t->cfg.arch.head == FER_HEAD_MLP ? 2 * FER_MLP_HIDDEN : 0;
  for (int i = 0; i < n; i++)
    total += 2 * (size_t) units[i]->bn.c;
  t->bn_stats = t->be->ops->alloc (t->be, total, error);
  if (!t->bn_stats)
    return FALSE;
  float *p = t->bn_stats;
  for (int i = 0; i < n; i++) {
    units[i]->bn.save_mean = p;
    units[i]->bn.save_rstd = p + units[i]->bn.c;
    p += 2 * units[i]->bn.c;
  }
  if (t->cfg.arch.head == FER_HEAD_MLP) {
    t->head_bn.save_mean = p;
    t->head_bn.save_rstd = p + FER_MLP_HIDDEN;
  }
  return TRUE;
}

static void
free_workspace (fer_trainer *t)
{
  const fer_backend_ops *ops = t->be->ops;
  float **bufs[] = { &t->slab, &t->gbuf[0], &t->gbuf[1], &t->gbuf[2],
    &t->gbuf[3], &t->conv_ws, &t->input };
  for (guint i = 0; i < G_N_ELEMENTS (bufs); i++) {
    if (*bufs[i])
      ops->release (t->be, *bufs[i]);
    *bufs[i] = NULL;
  }
  g_free (t->host_nhwc);
  g_free (t->host_mask);
  t->host_nhwc = t->host_mask = NULL;
  t->ws_n = 0;
}

static float *
take (float **p, size_t n)
{
  float *r = *p;
  *p += n;
  return r;
}

/* Activations, gradient buffers and conv workspace for n images; grows,
 * never shrinks, so a steady stream of batches allocates nothing. */
static gboolean
ensure_workspace (fer_trainer *t, int n, GError **error)
{
  const fer_backend_ops *ops = t->be->ops;
  const int k = t->cfg.arch.n_classes, s = t->cfg.input_size;
  const size_t in_per_image = (size_t) s * s * t->cfg.arch.channels;
  conv_unit *units[MAX_CONV_UNITS];
  int n_units = conv_units (t, units);

  if (n <= t->ws_n)
    return TRUE;
  free_workspace (t);

  size_t per_image = t->pool_per_image + FER_FEATURES + 2 * (size_t) k;
  for (int i = 0; i < n_units; i++)
    per_image += 2 * units[i]->per_image;
  if (t->n_fc == 2)
    per_image += 4 * FER_MLP_HIDDEN;
  t->slab = ops->alloc (t->be, per_image * n, error);
  if (!t->slab)
    return FALSE;
  float *p = t->slab;
  for (int i = 0; i < n_units; i++) {
    units[i]->c = take (&p, units[i]->per_image * n);
    units[i]->a = take (&p, units[i]->per_image * n);
  }
  t->pool = t->pool_per_image ? take (&p, t->pool_per_image * n) : NULL;
  t->feat = take (&p, (size_t) FER_FEATURES * n);
  t->dlogits = take (&p, (size_t) k * n);
  t->fc[t->n_fc - 1].out = take (&p, (size_t) k * n);
  if (t->n_fc == 2) {
    t->fc[0].out = take (&p, (size_t) FER_MLP_HIDDEN * n);
    t->hidden = take (&p, (size_t) FER_MLP_HIDDEN * n);
    t->dropped = take (&p, (size_t) FER_MLP_HIDDEN * n);
    t->mask = take (&p, (size_t) FER_MLP_HIDDEN * n);
    if (t->cfg.dropout > 0.0f)
      t->host_mask = g_new (float, (size_t) FER_MLP_HIDDEN *n);
  }

  for (int i = 0; i < N_GRAD_BUFFERS; i++)
    if (!(t->gbuf[i] = ops->alloc (t->be, t->max_act * n, error)))
      return FALSE;

  t->conv_ws_floats = 1;
  for (int i = 0; i < n_units; i++) {
    fer_conv_shape one = units[i]->s, all = units[i]->s;
    all.n = n;
    size_t least = ops->conv2d_train_workspace (t->be, &one);
    size_t want = ops->conv2d_train_workspace (t->be, &all);
    t->conv_ws_floats =
        MAX (t->conv_ws_floats, MIN (want, MAX (least, CONV_WS_CAP)));
  }
  t->conv_ws = ops->alloc (t->be, t->conv_ws_floats, error);
  t->input = ops->alloc (t->be, in_per_image * n, error);
  if (!t->conv_ws || !t->input)
    return FALSE;
  if (t->cfg.arch.channels > 1)
    t->host_nhwc = g_new (float, in_per_image *n);
  t->ws_n = n;
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Forward                                                             */

/* Both modes; `update` moves the running statistics (training steps). */
static gboolean
bn_forward (fer_trainer *t, const bn_unit *bn, float *out, const float *inp,
    const float *residual, int rows, gboolean relu, gboolean train,
    gboolean update, GError **error)
{
  const fer_backend_ops *ops = t->be->ops;
  const float *gamma = param_ptr (t, t->params, bn->gamma);
  const float *beta = param_ptr (t, t->params, bn->gamma + 1);
  float *mean = running_ptr (t, bn->gamma + 2);
  float *var = running_ptr (t, bn->gamma + 3);
  if (train)
    return ops->batchnorm_forward_train (t->be, out, bn->save_mean,
        bn->save_rstd, update ? mean : NULL, update ? var : NULL, inp, gamma,
        beta, residual, rows, bn->c, BN_MOMENTUM, FER_BN_EPS, relu, error);
  return ops->batchnorm_forward_eval (t->be, out, inp, gamma, beta, mean, var,
      residual, rows, bn->c, FER_BN_EPS, relu, error);
}

static gboolean
conv_bn_forward (fer_trainer *t, conv_unit *u, const float *inp,
    const float *residual, gboolean relu, int n, gboolean train,
    gboolean update, GError **error)
{
  fer_conv_shape s = u->s;
  s.n = n;
  return t->be->ops->conv2d_forward_train (
             t->be, u->c, inp, param_ptr (t, t->params, u->weight), &s, error)
      && bn_forward (t, &u->bn, u->a, u->c, residual, n * s.oh * s.ow, relu,
          train, update, error);
}

static void
draw_dropout_mask (fer_trainer *t, int n)
{
  const float p = t->cfg.dropout, keep_scale = 1.0f / (1.0f - p);
  for (size_t i = 0; i < (size_t) n * FER_MLP_HIDDEN; i++)
    t->host_mask[i] = fer_rng_uniform (&t->rng) < p ? 0.0f : keep_scale;
}

static gboolean
head_dropout (const fer_trainer *t, gboolean train)
{
  return train && t->n_fc == 2 && t->cfg.dropout > 0.0f;
}

/* Input of the last linear layer. */
static float *
head_input (fer_trainer *t, gboolean train)
{
  if (t->n_fc == 1)
    return t->feat;
  return head_dropout (t, train) ? t->dropped : t->hidden;
}

/* The graph on n images in t->input; logits in fc[n_fc - 1].out. */
static gboolean
forward (fer_trainer *t, int n, gboolean train, gboolean update, GError **error)
{
  const fer_backend_ops *ops = t->be->ops;
  fer_backend *be = t->be;
  const float *x = t->pool ? t->pool : t->stem.a;

  if (!conv_bn_forward (
          t, &t->stem, t->input, NULL, TRUE, n, train, update, error))
    return FALSE;
  if (t->pool
      && !ops->maxpool2d_forward (be, t->pool, t->stem.a, n, t->stem_oh,
          t->stem_oh, t->stem.bn.c, FER_POOL_K, FER_POOL_STRIDE, FER_POOL_PAD,
          error))
    return FALSE;
  for (int i = 0; i < FER_N_BLOCKS; i++) {
    block_unit *blk = &t->blocks[i];
    const float *identity = x;
    if (!conv_bn_forward (
            t, &blk->conv1, x, NULL, TRUE, n, train, update, error))
      return FALSE;
    if (blk->has_down) {
      if (!conv_bn_forward (
              t, &blk->down, x, NULL, FALSE, n, train, update, error))
        return FALSE;
      identity = blk->down.a;
    }
    if (!conv_bn_forward (t, &blk->conv2, blk->conv1.a, identity, TRUE, n,
            train, update, error))
      return FALSE;
    x = blk->conv2.a;
  }
  if (!ops->avgpool_forward (
          be, t->feat, x, n, t->final_hw, FER_FEATURES, error))
    return FALSE;

  const linear_unit *fc = &t->fc[0];
  if (!ops->linear_forward (be, fc->out, t->feat,
          param_ptr (t, t->params, fc->weight),
          param_ptr (t, t->params, fc->weight + 1), n, fc->nin, fc->nout, FALSE,
          error))
    return FALSE;
  if (t->n_fc == 1)
    return TRUE;
  if (!bn_forward (t, &t->head_bn, t->hidden, fc->out, NULL, n, TRUE, train,
          update, error))
    return FALSE;
  if (head_dropout (t, train)) {
    size_t count = (size_t) n * FER_MLP_HIDDEN;
    draw_dropout_mask (t, n);
    if (!ops->upload (be, t->mask, t->host_mask, count, error)
        || !ops->dropout_forward (
            be, t->dropped, t->hidden, t->mask, count, error))
      return FALSE;
  }
  fc = &t->fc[1];
  return ops->linear_forward (be, fc->out, head_input (t, train),
      param_ptr (t, t->params, fc->weight),
      param_ptr (t, t->params, fc->weight + 1), n, fc->nin, fc->nout, FALSE,
      error);
}

/* ------------------------------------------------------------------ */
/* Backward                                                            */

static gboolean
bn_backward (fer_trainer *t, const bn_unit *bn, float *dinp, const float *dout,
    const float *inp, int rows, GError **error)
{
  return t->be->ops->batchnorm_backward (t->be, dinp,
      param_ptr (t, t->grads, bn->gamma),
      param_ptr (t, t->grads, bn->gamma + 1), dout, inp, bn->save_mean,
      bn->save_rstd, param_ptr (t, t->params, bn->gamma), rows, bn->c, error);
}

/* dout: gradient of u->c's BatchNorm output (after ReLU masking), left
 * intact; scratch receives the BN input's gradient; dinp (may be NULL) the
 * conv input's. */
static gboolean
conv_bn_backward (fer_trainer *t, conv_unit *u, float *dinp, float *scratch,
    const float *dout, const float *inp, int n, GError **error)
{
  fer_conv_shape s = u->s;
  s.n = n;
  return bn_backward (t, &u->bn, scratch, dout, u->c, n * s.oh * s.ow, error)
      && t->be->ops->conv2d_backward (t->be, dinp,
          param_ptr (t, t->grads, u->weight), scratch, inp,
          param_ptr (t, t->params, u->weight), &s, t->conv_ws,
          t->conv_ws_floats, error);
}

/* Index of a gradient buffer that is none of the three given. */
static int
other_buffer (int a, int b, int c)
{
  for (int i = 0; i < N_GRAD_BUFFERS; i++)
    if (i != a && i != b && i != c)
      return i;
  g_assert_not_reached ();
  return -1;
}

/* Parameter gradients into t->grads (zeroed here) from t->dlogits. */
static gboolean
backward (fer_trainer *t, int n, GError **error)
{
  const fer_backend_ops *ops = t->be->ops;
  fer_backend *be = t->be;
  float **g = t->gbuf;

  if (!ops->zero (be, t->grads, t->n_params, error))
    return FALSE;

  /* Head: the gradient of the pooled features ends up in g[0]. */
  const linear_unit *last = &t->fc[t->n_fc - 1];
  if (!ops->linear_backward (be, g[0], param_ptr (t, t->grads, last->weight),
          param_ptr (t, t->grads, last->weight + 1), t->dlogits,
          head_input (t, TRUE), param_ptr (t, t->params, last->weight), n,
          last->nin, last->nout, error))
    return FALSE;
  if (t->n_fc == 2) {
    const linear_unit *fc0 = &t->fc[0];
    size_t count = (size_t) n * FER_MLP_HIDDEN;
    if (head_dropout (t, TRUE)
        && !ops->dropout_backward (be, g[0], g[0], t->mask, count, error))
      return FALSE;
    if (!ops->relu_backward (be, g[0], g[0], t->hidden, count, error)
        || !bn_backward (t, &t->head_bn, g[1], g[0], fc0->out, n, error)
        || !ops->linear_backward (be, g[0],
            param_ptr (t, t->grads, fc0->weight),
            param_ptr (t, t->grads, fc0->weight + 1), g[1], t->feat,
            param_ptr (t, t->params, fc0->weight), n, fc0->nin, fc0->nout,
            error))
      return FALSE;
  }
  if (!ops->avgpool_backward (
          be, g[1], g[0], n, t->final_hw, FER_FEATURES, error))
    return FALSE;

  /* Blocks, last to first; `cur` holds the gradient of the block output. */
  int cur = 1;
  for (int i = FER_N_BLOCKS - 1; i >= 0; i--) {
    block_unit *blk = &t->blocks[i];
    const float *x = i > 0 ? t->blocks[i - 1].conv2.a
        : t->pool          ? t->pool
                           : t->stem.a;
    int sb = other_buffer (cur, -1, -1), sc = other_buffer (cur, sb, -1),
        sd = other_buffer (cur, sb, sc);
    size_t out_count = blk->conv2.per_image * n;
    size_t mid_count = blk->conv1.per_image * n;

    /* out = relu(bn2(conv2(a1)) + identity) */
    if (!ops->relu_backward (be, g[cur], g[cur], blk->conv2.a, out_count, error)
        || !conv_bn_backward (
            t, &blk->conv2, g[sc], g[sb], g[cur], blk->conv1.a, n, error)
        || !ops->relu_backward (
            be, g[sc], g[sc], blk->conv1.a, mid_count, error)
        || !conv_bn_backward (t, &blk->conv1, g[sd], g[sb], g[sc], x, n, error))
      return FALSE;
    /* g[sd]: input gradient through the main path; add the shortcut's */
    if (blk->has_down) {
      if (!conv_bn_backward (t, &blk->down, g[sc], g[sb], g[cur], x, n, error)
          || !ops->add (be, g[sd], g[sd], g[sc],
              blk->down.s.h * blk->down.s.w * (size_t) blk->down.s.cin * n,
              error))
        return FALSE;
    } else if (!ops->add (be, g[sd], g[sd], g[cur], out_count, error)) {
      return FALSE;
    }
    cur = sd;
  }

  /* Stem */
  if (t->pool) {
    int to = other_buffer (cur, -1, -1);
    if (!ops->maxpool2d_backward (be, g[to], g[cur], t->stem.a, n, t->stem_oh,
            t->stem_oh, t->stem.bn.c, FER_POOL_K, FER_POOL_STRIDE, FER_POOL_PAD,
            error))
      return FALSE;
    cur = to;
  }
  return ops->relu_backward (
             be, g[cur], g[cur], t->stem.a, t->stem.per_image * n, error)
      && conv_bn_backward (t, &t->stem, NULL, g[other_buffer (cur, -1, -1)],
          g[cur], t->input, n, error);
}

/* ------------------------------------------------------------------ */
/* Creation                                                            */

void
fer_train_config_init (fer_train_config *cfg, const fer_arch *arch)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->arch = *arch;
  cfg->input_size = 48;
  cfg->dropout = 0.5f;
  cfg->optimizer = FER_OPTIMIZER_ADAM;
  cfg->lr = 1e-3f;
  cfg->beta1 = 0.9f;
  cfg->beta2 = 0.999f;
  cfg->eps = 1e-8f;
  cfg->backend = FER_BACKEND_AUTO;
}

static gboolean
in_range (float v, float lo, float hi)
{
  return isfinite (v) && v >= lo && v <= hi;
}

static gboolean
check_config (const fer_train_config *c, GError **error)
{
  const fer_arch *a = &c->arch;
  const char *bad = NULL;
  char value[64];

#define CHECK(cond, field, fmt, v, expect)                                     \
  if (!bad && !(cond)) {                                                       \
    bad = field;                                                               \
    snprintf (value, sizeof value, fmt " (expected " expect ")", v);           \
  }
  CHECK (a->channels == 1 || a->channels == 3, "arch.channels", "%d",
      a->channels, "1 or 3");
  CHECK (a->n_classes >= 2 && a->n_classes <= 100000, "arch.n_classes", "%d",
      a->n_classes, "2..100000");
  CHECK (fer_stem_name (a->stem) != NULL, "arch.stem", "%d", (int) a->stem,
      "torchvision, small or nopool");
  CHECK (a->head == FER_HEAD_FC || a->head == FER_HEAD_MLP, "arch.head", "%d",
      (int) a->head, "fc or mlp");
  CHECK (c->input_size >= 8 && c->input_size <= 1024, "input_size", "%d",
      c->input_size, "8..1024");
  CHECK (in_range (c->dropout, 0.0f, 0.999f), "dropout", "%g",
      (double) c->dropout, "0 <= p < 1");
  CHECK (c->optimizer == FER_OPTIMIZER_ADAM
          || c->optimizer == FER_OPTIMIZER_ADAMW
          || c->optimizer == FER_OPTIMIZER_SGD,
      "optimizer", "%d", (int) c->optimizer, "adam, adamw or sgd");
  CHECK (in_range (c->lr, 0.0f, 1e6f), "lr", "%g", (double) c->lr, ">= 0");
  CHECK (in_range (c->weight_decay, 0.0f, 1e6f), "weight_decay", "%g",
      (double) c->weight_decay, ">= 0");
  CHECK (in_range (c->momentum, 0.0f, 1.0f), "momentum", "%g",
      (double) c->momentum, "0..1");
  CHECK (!c->nesterov || c->momentum > 0.0f, "nesterov", "%s",
      "TRUE with momentum 0", "momentum > 0");
  CHECK (in_range (c->beta1, 0.0f, 0.999999f), "beta1", "%g", (double) c->beta1,
      "0 <= beta1 < 1");
  CHECK (in_range (c->beta2, 0.0f, 0.999999f), "beta2", "%g", (double) c->beta2,
      "0 <= beta2 < 1");
  CHECK (in_range (c->eps, 0.0f, 1.0f), "eps", "%g", (double) c->eps, "0..1");
  CHECK (in_range (c->label_smoothing, 0.0f, 1.0f), "label_smoothing", "%g",
      (double) c->label_smoothing, "0..1");
  CHECK (in_range (c->focal_gamma, 0.0f, 100.0f), "focal_gamma", "%g",
      (double) c->focal_gamma, "0..100");
  CHECK (in_range (c->ema_decay, 0.0f, 1.0f) && c->ema_decay < 1.0f,
      "ema_decay", "%g", (double) c->ema_decay, "0 (off) or 0 < d < 1");
  for (int i = 0; c->class_weights && i < a->n_classes; i++)
    CHECK (in_range (c->class_weights[i], 0.0f, 1e30f), "class_weights", "%g",
        (double) c->class_weights[i], "finite and >= 0");
#undef CHECK
  if (bad)
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "training config: %s = %s", bad, value);
  return bad == NULL;
}

static gboolean
has_training_ops (const fer_backend_ops *o)
{
  return o->conv2d_train_workspace && o->conv2d_forward_train
      && o->conv2d_backward && o->batchnorm_forward_train
      && o->batchnorm_forward_eval && o->batchnorm_backward && o->relu_backward
      && o->add && o->dropout_forward && o->dropout_backward
      && o->maxpool2d_backward && o->avgpool_backward && o->linear_backward
      && o->softmax_xent && o->adam_update && o->sgd_update && o->ema_update
      && o->zero;
}

/* Same values as fer_model_write_random (randomize_bn FALSE) for the seed. */
static gboolean
init_fresh (fer_trainer *t, GError **error)
{
  fer_rng rng;
  int64_t fan_in = 0;
  gboolean ok = TRUE;
  fer_rng_seed (&rng, t->cfg.seed);
  for (int i = 0; ok && i < t->topo.n_params; i++) {
    float *x = g_new (float, t->topo.params[i].numel);
    fer_init_param (&t->topo.params[i], &fan_in, &rng, FALSE, x);
    ok = set_tensor (t, t->params, i, x, error);
    g_free (x);
  }
  return ok;
}

/* Metadata an init model passes on to the models saved from it: its
 * preprocessing (labels, mean, std), not its provenance, nor what this
 * training sets itself: the input and crop sizes (a model fine-tuned on
 * whole 48 px faces from one trained on 44 px crops takes no crops), the
 * stem and the channels (the configured architecture's). */
static gboolean
is_inherited_key (const char *key)
{
  static const char *const own[] = { "fer.trained_by", "fer.val_accuracy",
    "fer.dataset", "fer.input_size", "fer.crop_size", "fer.stem",
    "fer.input_channels" };
  if (!g_str_has_prefix (key, "fer."))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (own); i++)
    if (strcmp (key, own[i]) == 0)
      return FALSE;
  return TRUE;
}

/* The init model's weights, which must be those of the configured
 * architecture, and its inherited metadata. */
static gboolean
init_from_file (fer_trainer *t, const char *path, GError **error)
{
  fer_weights *w = fer_weights_read (path, &t->cfg.arch, error);
  GHashTableIter it;
  gpointer key, value;
  gboolean ok = w != NULL;

  for (int i = 0; ok && i < t->topo.n_params; i++)
    ok = set_tensor (t, t->params, i, w->tensor[i], error);
  if (ok) {
    g_hash_table_iter_init (&it, w->metadata);
    while (g_hash_table_iter_next (&it, &key, &value))
      if (is_inherited_key (key))
        g_hash_table_insert (
            t->init_metadata, g_strdup (key), g_strdup (value));
  }
  fer_weights_free (w);
  return ok;
}

/* dst (n floats, backend) = src (backend), through the host: only when an
 * average starts, so no op of its own. */
static gboolean
copy_buffer (
    fer_trainer *t, float *dst, const float *src, size_t n, GError **error)
{
  float *tmp = g_try_new (float, n);
  gboolean ok = tmp != NULL;
  if (!ok)
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "cannot allocate %zu floats to start the weights' average", n);
  ok = ok && t->be->ops->download (t->be, tmp, src, n, error)
      && t->be->ops->upload (t->be, dst, tmp, n, error);
  g_free (tmp);
  return ok;
}

/* The average starts (again) at the live weights. */
static gboolean
ema_restart (fer_trainer *t, GError **error)
{
  return copy_buffer (t, t->ema_params, t->params, t->n_params, error)
      && copy_buffer (t, t->ema_running, t->running, t->n_running, error);
}

/* A trainer for cfg on `backend` (which replaces cfg->backend); under
 * backend=auto a device that fails to start leaves it on the CPU with
 * *fallback set (fallback may be NULL for the CPU backend). */
static fer_trainer *
trainer_new (const fer_train_config *cfg, const char *init_model,
    fer_backend_type backend, char **fallback, GError **error)
{
  fer_trainer *t;
  const fer_backend_ops *ops;

  t = g_new0 (fer_trainer, 1);
  t->cfg = *cfg;
  t->lr = cfg->lr;
  t->init_metadata =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (cfg->class_weights)
    t->class_weights_host =
        g_memdup2 (cfg->class_weights, sizeof (float) * cfg->arch.n_classes);
  t->cfg.class_weights = t->class_weights_host;
  fer_rng_seed (&t->rng, cfg->seed ^ DROPOUT_STREAM);

  build_views (t);
  if (!build_graph (t)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "training config: input_size = %d is too small for a ResNet-18 with "
        "the %s stem",
        cfg->input_size, fer_stem_name (cfg->arch.stem));
    goto fail;
  }

  t->be = fer_backend_new_with_fallback (
      backend, cfg->device_id, cfg->threads, &t->backend_type, fallback, error);
  if (!t->be)
    goto fail;
  ops = t->be->ops;
  if (!has_training_ops (ops)) {
    g_set_error (error, FER_ERROR, FER_ERROR_UNSUPPORTED,
        "the %s backend of this build cannot train (no training ops)",
        ops->name);
    goto fail;
  }
  if (!(t->params = ops->alloc (t->be, t->n_params, error))
      || !(t->grads = ops->alloc (t->be, t->n_params, error))
      || !(t->m = ops->alloc (t->be, t->n_params, error))
      || !(t->v = ops->alloc (t->be, t->n_params, error))
      || !(t->running = ops->alloc (t->be, t->n_running, error))
      || !alloc_bn_stats (t, error))
    goto fail;
  /* alloc gives zeroed memory on the CPU only: say what we mean */
  if (!ops->zero (t->be, t->grads, t->n_params, error)
      || !ops->zero (t->be, t->m, t->n_params, error)
      || !ops->zero (t->be, t->v, t->n_params, error))
    goto fail;
  if (cfg->class_weights) {
    t->class_weights = ops->alloc (t->be, cfg->arch.n_classes, error);
    if (!t->class_weights
        || !ops->upload (t->be, t->class_weights, cfg->class_weights,
            cfg->arch.n_classes, error))
      goto fail;
  }
  if (!(init_model ? init_from_file (t, init_model, error)
                   : init_fresh (t, error)))
    goto fail;
  if (cfg->ema_decay > 0.0f
      && (!(t->ema_params = ops->alloc (t->be, t->n_params, error))
          || !(t->ema_running = ops->alloc (t->be, t->n_running, error))
          || !ema_restart (t, error)))
    goto fail;
  return t;

fail:
  fer_trainer_free (t);
  return NULL;
}

static gboolean forward_backward (fer_trainer *t, const char *what,
    const float *x, const int *y_a, const int *y_b, float lam,
    const float *soft, float soft_weight, int n, gboolean update_stats,
    float *loss, float *logits, GError **error);

/* max |a - b| over max(floor, max |b|). */
static double
relative_error (const float *a, const float *b, size_t n, double floor)
{
  double err = 0.0, scale = floor;
  for (size_t i = 0; i < n; i++) {
    err = fmax (err, isnan (a[i]) ? INFINITY : fabs ((double) a[i] - b[i]));
    scale = fmax (scale, fabs (b[i]));
  }
  return err / scale;
}

/* The training self-test: one training-mode forward and backward pass on a
 * fixed batch (seeded noise, every class) on the device trainer and on the
 * same trainer on the CPU: loss, logits and every parameter gradient must
 * agree within FER_SELFTEST_TOLERANCE_REDUCED of their largest magnitude
 * (training runs in TF32 by default; docs/architecture.md, "Fail-safe").
 * Neither trainer changes: no update, no running statistics, and the
 * dropout generators are put back. */
static gboolean
trainer_selftest (fer_trainer *dev, fer_trainer *cpu, GError **error)
{
  enum
  {
    N = 4
  };
  const int k = dev->cfg.arch.n_classes, s = dev->cfg.input_size;
  const size_t n_in = (size_t) N * dev->cfg.arch.channels * s * s;
  const double tol = FER_SELFTEST_TOLERANCE_REDUCED;
  float *x = g_new (float, n_in), loss[2];
  float *logits[2] = { g_new (float, N *k), g_new (float, N *k) };
  float *grads[2] = { g_try_new (float, dev->n_params),
    g_try_new (float, dev->n_params) };
  fer_trainer *both[2] = { dev, cpu };
  fer_rng rng, saved[2] = { dev->rng, cpu->rng };
  int y[N];
  gboolean ok = grads[0] && grads[1];

  if (!ok)
    g_set_error (error, FER_ERROR, FER_ERROR_NOMEM,
        "training self-test: cannot allocate 2 x %zu gradients", dev->n_params);
  fer_rng_seed (&rng, 0x5e1f7e57);
  for (size_t i = 0; i < n_in; i++)
    x[i] = fer_rng_normal (&rng);
  for (int i = 0; i < N; i++)
    y[i] = i % k;
  for (int b = 0; ok && b < 2; b++)
    ok = forward_backward (both[b], "training self-test", x, y, NULL, 1.0f,
             NULL, 0.0f, N, FALSE, &loss[b], logits[b], error)
        && both[b]->be->ops->download (
            both[b]->be, grads[b], both[b]->grads, both[b]->n_params, error);
  dev->rng = saved[0];
  cpu->rng = saved[1];
  if (ok) {
    double e_loss = relative_error (&loss[0], &loss[1], 1, 1.0);
    double e_logits = relative_error (logits[0], logits[1], N * k, 1.0);
    double e_grads =
        relative_error (grads[0], grads[1], dev->n_params, FLT_MIN);
    if (!(fmax (e_loss, fmax (e_logits, e_grads)) <= tol)) {
      g_set_error (error, FER_ERROR, FER_ERROR_BACKEND,
          "the %s backend's training step differs from the CPU backend's: "
          "loss by %.3g, logits by %.3g, gradients by %.3g (relative; "
          "tolerance %.0e)",
          dev->be->ops->name, e_loss, e_logits, e_grads, tol);
      ok = FALSE;
    }
  }
  g_free (x);
  for (int b = 0; b < 2; b++) {
    g_free (logits[b]);
    g_free (grads[b]);
  }
  return ok;
}

fer_trainer *
fer_trainer_new (
    const fer_train_config *cfg, const char *init_model, GError **error)
{
  GError *dev_error = NULL;
  char *fallback = NULL;
  fer_trainer *dev, *cpu;

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);
  if (!cfg) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "fer_trainer_new: no config");
    return NULL;
  }
  if (!check_config (cfg, error))
    return NULL;
  dev = trainer_new (cfg, init_model, cfg->backend, &fallback, error);
  if (!dev || !dev->be->ops->selftest_tolerance) {
    if (dev)
      dev->fallback_reason = fallback;
    else
      g_free (fallback); /* the CPU it fell back to failed too */
    return dev;
  }
  /* a device: checked against the CPU before the first real step */
  cpu = trainer_new (cfg, init_model, FER_BACKEND_CPU, NULL, error);
  if (!cpu) {
    fer_trainer_free (dev);
    return NULL;
  }
  if (trainer_selftest (dev, cpu, &dev_error)) {
    fer_backend_selftest_passed (dev->be);
    fer_trainer_free (cpu);
    return dev;
  }
  fer_trainer_free (dev);
  cpu->fallback_reason = fer_backend_device_failed (
      cfg->backend, "its training self-test", dev_error, error);
  if (!cpu->fallback_reason) {
    fer_trainer_free (cpu);
    return NULL;
  }
  return cpu;
}

fer_backend_type
fer_trainer_backend (const fer_trainer *t)
{
  return t->backend_type;
}

const char *
fer_trainer_fallback_reason (const fer_trainer *t)
{
  return t->fallback_reason;
}

void
fer_trainer_free (fer_trainer *t)
{
  if (!t)
    return;
  if (t->be) {
    float *bufs[] = { t->params, t->grads, t->m, t->v, t->running, t->bn_stats,
      t->class_weights, t->ema_params, t->ema_running };
    free_workspace (t);
    for (guint i = 0; i < G_N_ELEMENTS (bufs); i++)
      if (bufs[i])
        t->be->ops->release (t->be, bufs[i]);
    fer_backend_free (t->be);
  }
  if (t->init_metadata)
    g_hash_table_unref (t->init_metadata);
  g_free (t->fallback_reason);
  g_free (t->class_weights_host);
  g_free (t);
}

void
fer_trainer_set_lr (fer_trainer *t, float lr)
{
  t->lr = lr;
}

float
fer_trainer_get_lr (const fer_trainer *t)
{
  return t->lr;
}

int64_t
fer_trainer_step_count (const fer_trainer *t)
{
  return t->step;
}

/* ------------------------------------------------------------------ */
/* Steps                                                               */

/* Validates a batch and puts it, NHWC, into t->input. */
static gboolean
load_batch (fer_trainer *t, const char *what, const float *x, const int *y_a,
    const int *y_b, float lam, int n, gboolean labels, GError **error)
{
  const int c = t->cfg.arch.channels, s = t->cfg.input_size;
  const size_t per_image = (size_t) c * s * s;

  if (n < 1 || !x || (labels && !y_a)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s: n=%d images with %s", what, n,
        !x          ? "no input"
            : n < 1 ? "input"
                    : "no labels");
    return FALSE;
  }
  for (int set = 0; labels && set < 2; set++) {
    const int *y = set ? y_b : y_a;
    for (int i = 0; y && i < n; i++) {
      if (y[i] < 0 || y[i] >= t->cfg.arch.n_classes) {
        g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
            "%s: label %s[%d] = %d, expected 0..%d", what, set ? "y_b" : "y_a",
            i, y[i], t->cfg.arch.n_classes - 1);
        return FALSE;
      }
    }
  }
  if (labels && y_b && !in_range (lam, 0.0f, 1.0f)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s: mixup lam = %g, expected 0..1", what, (double) lam);
    return FALSE;
  }
  /* Training-mode BatchNorm needs two values per channel (PyTorch raises
   * "Expected more than 1 value per channel" too). */
  if (labels && n * t->final_hw < 2) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s: a batch of %d image(s) gives batch norm one value per channel "
        "in training mode (layer4); use batches of 2 or more",
        what, n);
    return FALSE;
  }
  if (labels && n < 2 && t->n_fc == 2) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s: a batch of 1 image gives the mlp head's batch norm (fc.1) one "
        "value per channel in training mode; use batches of 2 or more",
        what);
    return FALSE;
  }
  if (!ensure_workspace (t, n, error))
    return FALSE;
  if (c > 1) {
    /* NCHW (the public, PyTorch layout) -> NHWC (the graph's) */
    for (int b = 0; b < n; b++)
      for (int ch = 0; ch < c; ch++)
        for (int p = 0; p < s * s; p++)
          t->host_nhwc[((size_t) b * s * s + p) * c + ch] =
              x[((size_t) b * c + ch) * s * s + p];
    x = t->host_nhwc;
  }
  return t->be->ops->upload (t->be, t->input, x, n * per_image, error);
}

/* Distillation targets: a weight in 0..1 and, when it is above 0, n rows
 * of k finite, non-negative probabilities that sum to 1 (to 1e-3). */
static gboolean
check_soft (const fer_trainer *t, const char *what, const float *soft,
    float weight, int n, GError **error)
{
  const int k = t->cfg.arch.n_classes;
  if (!in_range (weight, 0.0f, 1.0f) || (weight > 0.0f && !soft)) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s: soft-target weight %g%s, expected 0..1 with targets", what,
        (double) weight, soft ? "" : " without targets");
    return FALSE;
  }
  for (int i = 0; soft && weight > 0.0f && i < n; i++) {
    double sum = 0.0;
    for (int j = 0; j < k; j++) {
      const float q = soft[(size_t) i * k + j];
      if (!(q >= 0.0f && q <= 1.0f)) { /* also NaN */
        g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
            "%s: soft target [%d][%d] = %g, expected a probability", what, i, j,
            (double) q);
        return FALSE;
      }
      sum += q;
    }
    if (fabs (sum - 1.0) > 1e-3) {
      g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
          "%s: soft targets of sample %d sum to %g, expected 1", what, i, sum);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
forward_backward (fer_trainer *t, const char *what, const float *x,
    const int *y_a, const int *y_b, float lam, const float *soft,
    float soft_weight, int n, gboolean update_stats, float *loss, float *logits,
    GError **error)
{
  const fer_backend_ops *ops = t->be->ops;
  const int k = t->cfg.arch.n_classes;
  float value = 0.0f;

  if (soft_weight <= 0.0f)
    soft = NULL;
  if (!check_soft (t, what, soft, soft_weight, n, error)
      || !load_batch (t, what, x, y_a, y_b, lam, n, TRUE, error)
      || !forward (t, n, TRUE, update_stats, error)
      || !ops->softmax_xent (t->be, &value, t->dlogits, t->fc[t->n_fc - 1].out,
          y_a, y_b, lam, t->class_weights, n, k, t->cfg.label_smoothing,
          t->cfg.focal_gamma, soft, soft_weight, error)
      || !backward (t, n, error))
    return FALSE;
  if (loss)
    *loss = value;
  return !logits
      || ops->download (
          t->be, logits, t->fc[t->n_fc - 1].out, (size_t) n * k, error);
}

gboolean
fer_trainer_forward_backward (fer_trainer *t, const float *x, const int *y_a,
    const int *y_b, float lam, int n, float *loss, GError **error)
{
  return forward_backward (t, "fer_trainer_forward_backward", x, y_a, y_b, lam,
      NULL, 0.0f, n, FALSE, loss, NULL, error);
}

gboolean
fer_trainer_step (fer_trainer *t, const float *x, const int *y_a,
    const int *y_b, float lam, int n, float *loss, float *logits,
    GError **error)
{
  return fer_trainer_step_distill (
      t, x, y_a, y_b, lam, NULL, 0.0f, n, loss, logits, error);
}

gboolean
fer_trainer_step_distill (fer_trainer *t, const float *x, const int *y_a,
    const int *y_b, float lam, const float *soft, float soft_weight, int n,
    float *loss, float *logits, GError **error)
{
  const fer_train_config *c = &t->cfg;
  const fer_backend_ops *ops = t->be->ops;
  gboolean ok;

  if (t->ema_swapped) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "fer_trainer_step: the weights' average is swapped in; "
        "fer_trainer_swap_ema puts the live weights back before training");
    return FALSE;
  }
  if (!forward_backward (t, "fer_trainer_step", x, y_a, y_b, lam, soft,
          soft_weight, n, TRUE, loss, logits, error))
    return FALSE;
  t->step++;
  if (c->optimizer == FER_OPTIMIZER_SGD)
    ok = ops->sgd_update (t->be, t->params, t->m, t->grads, t->n_params, t->lr,
        c->momentum, c->weight_decay, c->nesterov, t->step == 1, error);
  else
    ok = ops->adam_update (t->be, t->params, t->m, t->v, t->grads, t->n_params,
        t->lr, c->beta1, c->beta2, c->eps, c->weight_decay, t->step,
        c->optimizer == FER_OPTIMIZER_ADAMW, error);
  if (ok && t->ema_params) {
    /* the warm-up: (1 + steps before this one) / (10 + the same) */
    const double warm = (double) t->step / (double) (t->step + 9);
    const float d = (float) fmin ((double) c->ema_decay, warm);
    ok =
        ops->ema_update (t->be, t->ema_params, t->params, t->n_params, d, error)
        && ops->ema_update (
            t->be, t->ema_running, t->running, t->n_running, d, error);
  }
  return ok;
}

gboolean
fer_trainer_has_ema (const fer_trainer *t)
{
  return t->ema_params != NULL;
}

gboolean
fer_trainer_ema_swapped (const fer_trainer *t)
{
  return t->ema_swapped;
}

gboolean
fer_trainer_swap_ema (fer_trainer *t, GError **error)
{
  float *p = t->params, *r = t->running;
  if (!t->ema_params) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "fer_trainer_swap_ema: this trainer keeps no average of its weights "
        "(ema_decay is 0)");
    return FALSE;
  }
  t->params = t->ema_params;
  t->running = t->ema_running;
  t->ema_params = p;
  t->ema_running = r;
  t->ema_swapped = !t->ema_swapped;
  return TRUE;
}

gboolean
fer_trainer_eval (
    fer_trainer *t, const float *x, int n, float *logits, GError **error)
{
  const int k = t->cfg.arch.n_classes;
  const size_t per_image =
      (size_t) t->cfg.arch.channels * t->cfg.input_size * t->cfg.input_size;
  const int chunk = t->ws_n ? t->ws_n : MIN (n, 64);

  if (n < 0 || (n > 0 && (!x || !logits))) {
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "fer_trainer_eval: n=%d with %s input/logits", n,
        x && logits ? "valid" : "NULL");
    return FALSE;
  }
  for (int b0 = 0; b0 < n; b0 += chunk) {
    int nb = MIN (chunk, n - b0);
    if (!load_batch (t, "fer_trainer_eval", x + b0 * per_image, NULL, NULL,
            0.0f, nb, FALSE, error)
        || !forward (t, nb, FALSE, FALSE, error)
        || !t->be->ops->download (t->be, logits + (size_t) b0 * k,
            t->fc[t->n_fc - 1].out, (size_t) nb * k, error))
      return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------------ */
/* Parameters                                                          */

int
fer_trainer_n_params (const fer_trainer *t)
{
  return t->n_learn;
}

static gboolean
check_index (const fer_trainer *t, int i, GError **error)
{
  if (i >= 0 && i < t->n_learn)
    return TRUE;
  g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
      "parameter index %d, expected 0..%d", i, t->n_learn - 1);
  return FALSE;
}

const char *
fer_trainer_param_name (const fer_trainer *t, int i)
{
  return i >= 0 && i < t->n_learn ? t->topo.params[t->learn[i]].name : NULL;
}

int64_t
fer_trainer_param_numel (const fer_trainer *t, int i)
{
  return i >= 0 && i < t->n_learn ? t->topo.params[t->learn[i]].numel : 0;
}

gboolean
fer_trainer_param_get (fer_trainer *t, int i, float *out, GError **error)
{
  return check_index (t, i, error)
      && get_tensor (t, t->params, t->learn[i], out, error);
}

gboolean
fer_trainer_param_grad (fer_trainer *t, int i, float *out, GError **error)
{
  return check_index (t, i, error)
      && get_tensor (t, t->grads, t->learn[i], out, error);
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

gboolean
fer_trainer_save_model (fer_trainer *t, const char *path, fer_dtype dtype,
    const char *const *metadata, GError **error)
{
  gboolean ok = TRUE;
  GHashTableIter it;
  gpointer key, value;

  if (dtype != FER_DTYPE_F32 && dtype != FER_DTYPE_F16) {
    g_autofree char *shown = fer_text_quote (path, 0);
    g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
        "%s: model dtype must be F32 or F16", shown);
    return FALSE;
  }
  fer_st_writer *w = fer_st_writer_new ();
  for (int i = 0; ok && i < t->topo.n_params; i++) {
    const fer_param_desc *d = &t->topo.params[i];
    float *x = g_new (float, d->numel);
    ok = get_tensor (t, t->params, i, x, error)
        && fer_st_writer_add (w, d->name, dtype, d->ndim, d->shape, x, error);
    g_free (x);
  }
  fer_init_default_metadata (
      w, &t->cfg.arch, t->cfg.input_size, "libfernn fer_trainer");
  g_hash_table_iter_init (&it, t->init_metadata);
  while (g_hash_table_iter_next (&it, &key, &value))
    fer_st_writer_set_metadata (w, key, value);
  for (int i = 0; metadata && metadata[i] && metadata[i + 1]; i += 2)
    fer_st_writer_set_metadata (w, metadata[i], metadata[i + 1]);
  ok = ok && fer_st_writer_save (w, path, error);
  fer_st_writer_free (w);
  return ok;
}

static const char *
optimizer_name (fer_optimizer o)
{
  return o == FER_OPTIMIZER_SGD  ? "sgd"
      : o == FER_OPTIMIZER_ADAMW ? "adamw"
                                 : "adam";
}

/* The optimizer state's tensors of learnable parameter i: torch.optim's
 * state names, PyTorch layout. */
static int
state_slots (fer_trainer *t, float **bufs, const char **suffixes)
{
  if (t->cfg.optimizer != FER_OPTIMIZER_SGD) {
    bufs[0] = t->m;
    suffixes[0] = "exp_avg";
    bufs[1] = t->v;
    suffixes[1] = "exp_avg_sq";
    return 2;
  }
  if (t->cfg.momentum == 0.0f)
    return 0;
  bufs[0] = t->m;
  suffixes[0] = "momentum_buffer";
  return 1;
}

/* Exchanges the live weights and the average (fer_trainer_swap_ema
 * without its flag): the state's "ema." tensors are read and written
 * through the views of params and running. */
static void
ema_exchange (fer_trainer *t)
{
  float *p = t->params, *r = t->running;
  t->params = t->ema_params;
  t->running = t->ema_running;
  t->ema_params = p;
  t->ema_running = r;
}

static gboolean
state_not_swapped (
    const fer_trainer *t, const char *what, const char *path, GError **error)
{
  if (!t->ema_swapped)
    return TRUE;
  g_autofree char *shown = fer_text_quote (path, 0);
  g_set_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT,
      "%s %s: the weights' average is swapped in; fer_trainer_swap_ema puts "
      "the live weights back first",
      what, shown);
  return FALSE;
}

/* The average's tensors into w (every tensor of the model, "ema.<name>"). */
static gboolean
save_ema (fer_trainer *t, fer_st_writer *w, GError **error)
{
  gboolean ok = TRUE;
  char text[32];
  ema_exchange (t);
  for (int i = 0; ok && i < t->topo.n_params; i++) {
    const fer_param_desc *d = &t->topo.params[i];
    char *name = g_strdup_printf ("ema.%s", d->name);
    float *x = g_new (float, d->numel);
    ok = get_tensor (t, t->params, i, x, error)
        && fer_st_writer_add (
            w, name, FER_DTYPE_F32, d->ndim, d->shape, x, error);
    g_free (x);
    g_free (name);
  }
  ema_exchange (t);
  snprintf (text, sizeof text, "%.9g", (double) t->cfg.ema_decay);
  fer_st_writer_set_metadata (w, "fer.state.ema_decay", text);
  return ok;
}

/* The average's tensors from st (checked as the optimizer's are). */
static gboolean
load_ema (fer_trainer *t, fer_safetensors *st, const char *path, GError **error)
{
  gboolean ok = TRUE;
  ema_exchange (t);
  for (int i = 0; ok && i < t->topo.n_params; i++) {
    const fer_param_desc *d = &t->topo.params[i];
    char *name = g_strdup_printf ("ema.%s", d->name);
    const fer_st_tensor *tensor = fer_safetensors_find (st, name);
    ok = fer_check_tensor (tensor, d, path, name, FALSE, error);
    if (ok) {
      float *x = g_new (float, d->numel);
      fer_safetensors_read_f32 (st, tensor, x);
      ok = set_tensor (t, t->params, i, x, error);
      g_free (x);
    }
    g_free (name);
  }
  ema_exchange (t);
  return ok;
}

gboolean
fer_trainer_save_state (fer_trainer *t, const char *path, GError **error)
{
  float *bufs[2];
  const char *suffixes[2];
  const int slots = state_slots (t, bufs, suffixes);
  gboolean ok = state_not_swapped (t, "cannot save the state", path, error);
  char text[128];

  fer_st_writer *w = fer_st_writer_new ();
  for (int s = 0; ok && s < slots; s++) {
    for (int i = 0; ok && i < t->n_learn; i++) {
      const fer_param_desc *d = &t->topo.params[t->learn[i]];
      char *name = g_strdup_printf ("%s.%s", d->name, suffixes[s]);
      float *x = g_new (float, d->numel);
      ok = get_tensor (t, bufs[s], t->learn[i], x, error)
          && fer_st_writer_add (
              w, name, FER_DTYPE_F32, d->ndim, d->shape, x, error);
      g_free (x);
      g_free (name);
    }
  }
  fer_st_writer_set_metadata (w, "fer.state.format", STATE_FORMAT);
  fer_st_writer_set_metadata (
      w, "fer.state.optimizer", optimizer_name (t->cfg.optimizer));
  snprintf (text, sizeof text, "%" G_GINT64_FORMAT, t->step);
  fer_st_writer_set_metadata (w, "fer.state.step", text);
  snprintf (text, sizeof text, "%.9g", (double) t->lr);
  fer_st_writer_set_metadata (w, "fer.state.lr", text);
  snprintf (text, sizeof text, "%zu", t->n_params);
  fer_st_writer_set_metadata (w, "fer.state.n_params", text);
  snprintf (text, sizeof text,
      "%016" G_GINT64_MODIFIER "x,%016" G_GINT64_MODIFIER
      "x,%016" G_GINT64_MODIFIER "x,%016" G_GINT64_MODIFIER "x",
      (guint64) t->rng.s[0], (guint64) t->rng.s[1], (guint64) t->rng.s[2],
      (guint64) t->rng.s[3]);
  fer_st_writer_set_metadata (w, "fer.state.rng", text);
  ok = ok && (!t->ema_params || save_ema (t, w, error))
      && fer_st_writer_save (w, path, error);
  fer_st_writer_free (w);
  return ok;
}

static gboolean
parse_rng (const char *s, fer_rng *out)
{
  char **parts = s ? g_strsplit (s, ",", -1) : NULL;
  gboolean ok = parts && g_strv_length (parts) == 4;
  guint64 any = 0;
  for (int i = 0; ok && i < 4; i++) {
    char *end = NULL;
    ok = g_ascii_isxdigit (parts[i][0]);
    out->s[i] = g_ascii_strtoull (parts[i], &end, 16);
    ok = ok && *end == '\0';
    any |= out->s[i];
  }
  g_strfreev (parts);
  return ok && any != 0;
}

gboolean
fer_trainer_load_state (fer_trainer *t, const char *file, GError **error)
{
  /* the path and the metadata values as messages show them: a file name
   * need not be UTF-8, a value may hold control characters */
  g_autofree char *path = fer_text_quote (file, 0);
  g_autofree char *q = NULL;
  float *bufs[2];
  const char *suffixes[2];
  const int slots = state_slots (t, bufs, suffixes);
  fer_safetensors *st;
  const char *v;
  gboolean ok = FALSE, file_ema;
  guint64 step = 0, n_params = 0;
  double lr = 0.0;
  fer_rng rng;
  char *end = NULL;

  if (!state_not_swapped (t, "cannot load the state", file, error)
      || !(st = fer_safetensors_open (file, error)))
    return FALSE;
/* v quoted (kept in q until the next use), or "(missing)" */
#define QV(v)                                                                  \
  (g_free (q), q = (v) ? fer_text_quote ((v), 64) : g_strdup ("(missing)"))
#define FAIL(...)                                                              \
  do {                                                                         \
    g_set_error (error, FER_ERROR, FER_ERROR_FORMAT, __VA_ARGS__);             \
    goto done;                                                                 \
  } while (0)
  v = fer_safetensors_metadata (st, "fer.state.format");
  if (g_strcmp0 (v, STATE_FORMAT) != 0)
    FAIL ("%s: not a libfernn optimizer state (metadata fer.state.format = "
          "'%s', expected '%s')",
        path, QV (v), STATE_FORMAT);
  v = fer_safetensors_metadata (st, "fer.state.optimizer");
  if (g_strcmp0 (v, optimizer_name (t->cfg.optimizer)) != 0)
    FAIL ("%s: optimizer state of '%s', but this trainer uses '%s'", path,
        QV (v), optimizer_name (t->cfg.optimizer));
  v = fer_safetensors_metadata (st, "fer.state.n_params");
  if (!v || !g_ascii_string_to_unsigned (v, 10, 0, G_MAXINT64, &n_params, NULL)
      || n_params != t->n_params)
    FAIL ("%s: state for %s parameters, but the model has %zu", path, QV (v),
        t->n_params);
  v = fer_safetensors_metadata (st, "fer.state.step");
  if (!v || !g_ascii_string_to_unsigned (v, 10, 0, G_MAXINT64, &step, NULL))
    FAIL ("%s: metadata fer.state.step = '%s', expected a step count", path,
        QV (v));
  v = fer_safetensors_metadata (st, "fer.state.lr");
  if (v)
    lr = g_ascii_strtod (v, &end);
  if (!v || end == v || *end != '\0' || !isfinite (lr) || lr < 0.0)
    FAIL ("%s: metadata fer.state.lr = '%s', expected a learning rate >= 0",
        path, QV (v));
  v = fer_safetensors_metadata (st, "fer.state.rng");
  if (!parse_rng (v, &rng))
    FAIL ("%s: metadata fer.state.rng = '%s', expected 4 comma-separated "
          "hex words",
        path, QV (v));
  v = fer_safetensors_metadata (st, "fer.state.ema_decay");
  file_ema = v != NULL;
  if (file_ema && !t->ema_params)
    FAIL ("%s: the state keeps an average of the weights (EMA decay %s), "
          "but this trainer has none (ema_decay 0)",
        path, QV (v));
  if (fer_safetensors_n_tensors (st)
      != slots * t->n_learn + (file_ema ? t->topo.n_params : 0))
    FAIL ("%s: %d tensors, expected %d (%s state of %d parameters%s)", path,
        fer_safetensors_n_tensors (st),
        slots * t->n_learn + (file_ema ? t->topo.n_params : 0),
        optimizer_name (t->cfg.optimizer), t->n_learn,
        file_ema ? " and their average" : "");
#undef FAIL
#undef QV
  ok = TRUE;
  for (int s = 0; ok && s < slots; s++) {
    for (int i = 0; ok && i < t->n_learn; i++) {
      const fer_param_desc *d = &t->topo.params[t->learn[i]];
      char *name = g_strdup_printf ("%s.%s", d->name, suffixes[s]);
      const fer_st_tensor *tensor = fer_safetensors_find (st, name);
      ok = fer_check_tensor (tensor, d, path, name, FALSE, error);
      if (ok) {
        float *x = g_new (float, d->numel);
        fer_safetensors_read_f32 (st, tensor, x);
        ok = set_tensor (t, bufs[s], t->learn[i], x, error);
        g_free (x);
      }
      g_free (name);
    }
  }
  if (ok && t->ema_params)
    ok = file_ema ? load_ema (t, st, path, error) : ema_restart (t, error);
  if (ok) {
    t->step = (int64_t) step;
    t->lr = (float) lr;
    t->rng = rng;
  }
done:
  fer_safetensors_free (st);
  return ok;
}

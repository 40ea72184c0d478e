/* The ResNet-18 of a fer_arch, described once: its topology (a table of
 * blocks of conv + BatchNorm units, and the head's linear layers), the
 * tensor inventory that topology implies (torchvision's names and shapes,
 * in state_dict order), and the one reader that checks a model file against
 * that inventory. The loader (model.c), the trainer (train.c) and the
 * random-model writer (init.c) all walk this description, so they can never
 * disagree about names, shapes or order. */
#ifndef FER_ARCH_H
#define FER_ARCH_H

#include <fer/model.h>

#include "conv-shape.h"

typedef enum
{
  FER_PARAM_CONV_WEIGHT,   /* (Cout, Cin, KH, KW) */
  FER_PARAM_BN_WEIGHT,     /* (C) gamma */
  FER_PARAM_BN_BIAS,       /* (C) beta */
  FER_PARAM_BN_MEAN,       /* (C) running_mean, not learnable */
  FER_PARAM_BN_VAR,        /* (C) running_var, not learnable */
  FER_PARAM_LINEAR_WEIGHT, /* (out, in) */
  FER_PARAM_LINEAR_BIAS,   /* (out) */
} fer_param_kind;

typedef struct
{
  char name[48];
  fer_param_kind kind;
  int ndim;
  int64_t shape[4];
  int64_t numel;
} fer_param_desc;

#define FER_MLP_HIDDEN 256
#define FER_BN_EPS 1e-5
#define FER_ARCH_MAX_PARAMS 128
#define FER_N_BLOCKS 8   /* layer1.0, layer1.1, ... layer4.1 */
#define FER_FEATURES 512 /* layer4's channels: the head's input */

/* conv1's kernel, stride and padding, and whether a 3x3/2 max-pool
 * follows it, for each stem. */
typedef struct
{
  int k, stride, pad;
  gboolean max_pool;
} fer_stem_geometry;

fer_stem_geometry fer_stem_geometry_of (fer_stem stem);

/* The stem's max-pool (3x3, stride 2, padding 1): its output side. */
#define FER_POOL_K 3
#define FER_POOL_STRIDE 2
#define FER_POOL_PAD 1
static inline int
fer_pool_side (int h)
{
  return (h + 2 * FER_POOL_PAD - FER_POOL_K) / FER_POOL_STRIDE + 1;
}

/* A conv without bias, then BatchNorm2d. Its tensors are params[weight]
 * (Cout, Cin, K, K) and the BatchNorm's weight, bias, running_mean and
 * running_var at params[weight + 1 .. weight + 4]. */
typedef struct
{
  int cin, cout, k, stride, pad;
  int weight;
} fer_conv_desc;

/* torchvision's BasicBlock:
 *   out = relu (bn2 (conv2 (relu (bn1 (conv1 (x))))) + shortcut (x)),
 * shortcut (x) = bn (down (x)) when the block changes the channels or the
 * stride (has_down), else x. */
typedef struct
{
  fer_conv_desc conv1, conv2, down;
  gboolean has_down;
} fer_block_desc;

/* A linear layer with bias: params[weight] (nout, nin), params[weight + 1]
 * (nout). The mlp head's hidden layer is followed by BatchNorm1d (tensors
 * at params[bn .. bn + 3], as above), ReLU and Dropout; bn is -1 for the
 * others. */
typedef struct
{
  int nin, nout;
  int weight;
  int bn;
} fer_linear_desc;

/* The network of an architecture, in the order its layers run, with the
 * inventory of its tensors (state_dict order: a block's shortcut after its
 * conv2). */
typedef struct
{
  fer_arch arch;
  fer_stem_geometry stem_geometry;
  fer_conv_desc stem; /* conv1, bn1 */
  fer_block_desc blocks[FER_N_BLOCKS];
  fer_linear_desc head[2]; /* fc; or fc.0 + fc.1, then fc.4 */
  int n_head;
  fer_param_desc params[FER_ARCH_MAX_PARAMS];
  int n_params;
} fer_topology;

void fer_topology_init (fer_topology *t, const fer_arch *a);

/* The shape of every convolution of t for one image at a size x size
 * input, in the order they run: the one walk of the map sides that the
 * loader, the trainer and the FLOP count share. */
typedef struct
{
  fer_conv_shape stem;
  int pool_side; /* the stem's output side after its max-pool, if any */
  fer_conv_shape conv1[FER_N_BLOCKS], conv2[FER_N_BLOCKS];
  fer_conv_shape down[FER_N_BLOCKS]; /* where blocks[i].has_down */
  int final_side;                    /* layer4's output side */
  /* floats of the largest map of one image (the input, every conv's output,
   * the pooled features) */
  size_t max_activation;
} fer_topology_shapes;

/* FALSE when the input is too small for the network: a side reaches 0. */
gboolean fer_topology_shapes_init (
    fer_topology_shapes *s, const fer_topology *t, int size);

/* Learnable parameter count (running statistics excluded), as PyTorch's
 * sum(p.numel() for p in model.parameters()). */
int64_t fer_arch_n_params (const fer_arch *a);

/* Multiply-adds of one forward pass at a size x size input: every
 * convolution counted as a direct one over the whole kernel (padding taps
 * included, as the usual FLOP counts of torchvision's models do), plus the
 * head's linear layers; pooling, BatchNorm and activations are left out.
 * Twice this is the "GFLOP per view" of the docs; 0 when the input is too
 * small for the network. */
int64_t fer_arch_forward_macs (const fer_arch *a, int size);

/* A shape as messages print it, "[64, 1, 7, 7]"; g_free it. */
char *fer_shape_string (int ndim, const int64_t *shape);

/* The tensor types a model file may store weights in. */
static inline gboolean
fer_dtype_is_float (fer_dtype d)
{
  return d == FER_DTYPE_F32 || d == FER_DTYPE_F16 || d == FER_DTYPE_BF16;
}

/* FALSE, with an error naming path and tensor `name`, unless t is present,
 * of dtype F32 (of any float dtype when any_float) and of d's shape. For
 * files that hold the inventory's shapes under other names too (the
 * trainer's optimizer state). */
gboolean fer_check_tensor (const fer_st_tensor *t, const fer_param_desc *d,
    const char *path, const char *name, gboolean any_float, GError **error);

/* metadata `key` = `value` as an integer in lo..hi; FALSE with an error
 * naming path, key and value otherwise. */
gboolean fer_metadata_int (const char *path, const char *key, const char *value,
    int lo, int hi, int *out, GError **error);

/* A model file's weights, read and checked once: every tensor of the
 * topology's inventory as float32 in PyTorch layout, whatever the file's
 * float dtype. What the loader folds and the trainer keeps. */
typedef struct
{
  fer_topology topo;
  float *tensor[FER_ARCH_MAX_PARAMS]; /* topo.params[i]: numel floats */
  float *data;                        /* the one allocation behind them */
  GHashTable *metadata;               /* __metadata__, key -> value */
} fer_weights;

/* Reads path and checks, in inventory order, that every tensor is present,
 * of a float dtype and of the inventory's shape. With arch NULL the
 * architecture is recognised from the file: channels and stem from
 * conv1.weight's shape (fer.input_channels must agree; fer.stem tells the
 * 7x7 stems apart and must agree with the kernel), head and classes from
 * fc.weight or fc.4.weight. With arch given the file must hold that
 * architecture's tensors, and its metadata is not looked at. Every error
 * names the file and the tensor or key. Returns NULL on failure. */
fer_weights *fer_weights_read (
    const char *path, const fer_arch *arch, GError **error);
void fer_weights_free (fer_weights *w);

#endif

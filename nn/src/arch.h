/* The ResNet-18 tensor inventory: every tensor a model file of a given
 * fer_arch holds, with torchvision's names and shapes. The loader checks a
 * file against it and fer_model_write_random creates files from it, so the
 * two can never disagree about names. */
#ifndef FER_ARCH_H
#define FER_ARCH_H

#include <fer/model.h>

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

/* Fills `out` (room for FER_ARCH_MAX_PARAMS) and returns the count. */
#define FER_ARCH_MAX_PARAMS 128
int fer_arch_params (const fer_arch *a, fer_param_desc *out);

/* Learnable parameter count (running statistics excluded), as PyTorch's
 * sum(p.numel() for p in model.parameters()). */
int64_t fer_arch_n_params (const fer_arch *a);

/* torchvision's layer names of block b (0 or 1) of stage (0 to 3); the
 * first block of stages 1 to 3 has a downsampling shortcut. */
typedef struct
{
  char conv1[40], bn1[40], conv2[40], bn2[40];
  gboolean has_down;
  char down_conv[40], down_bn[40];   /* empty without a shortcut */
} fer_block_names;

void fer_block_names_init (fer_block_names *n, int stage, int b);

/* A shape as messages print it, "[64, 1, 7, 7]"; g_free it. */
char *fer_shape_string (int ndim, const int64_t *shape);

/* The tensor types a model file may store weights in. */
static inline gboolean
fer_dtype_is_float (fer_dtype d)
{
  return d == FER_DTYPE_F32 || d == FER_DTYPE_F16 || d == FER_DTYPE_BF16;
}

/* conv1's kernel, stride and padding, and whether a 3x3/2 max-pool
 * follows it, for each stem. */
typedef struct
{
  int k, stride, pad;
  gboolean max_pool;
} fer_stem_geometry;

fer_stem_geometry fer_stem_geometry_of (fer_stem stem);

/* Stage geometry shared by the graph builders. */
static inline int
fer_stage_planes (int stage)
{
  return 64 << stage;
}

#endif

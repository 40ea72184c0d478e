/* The CPU backend's private header: its state, and the table's entries
 * that each op family's file (cpu/<family>.c) defines next to its kernels.
 * CPU backend memory is host memory, so every pointer goes straight
 * through; the entries that only compute return TRUE. */
#ifndef FER_CPU_BACKEND_H
#define FER_CPU_BACKEND_H

#include "backend.h"
#include "cpu/ops.h"

typedef struct
{
  fer_backend base;
  fer_cpu_conv_scratch *conv;
  fer_cpu_workers *workers; /* NULL: one thread */
  fer_scratch *preprocess;  /* fer_preprocess's buffers */
  float *planar;            /* one view, NCHW, for C > 1 */
  size_t planar_floats;
} cpu_backend;

/* conv.c */
fer_op_conv2d_prepare_weight fer_cpu_op_conv2d_prepare_weight;
fer_op_conv2d_forward fer_cpu_op_conv2d_forward;
fer_op_conv2d_train_workspace fer_cpu_op_conv2d_train_workspace;
fer_op_conv2d_forward_train fer_cpu_op_conv2d_forward_train;
fer_op_conv2d_backward fer_cpu_op_conv2d_backward;

/* pool.c */
fer_op_maxpool2d_forward fer_cpu_op_maxpool2d_forward;
fer_op_maxpool2d_backward fer_cpu_op_maxpool2d_backward;
fer_op_avgpool_forward fer_cpu_op_avgpool_forward;
fer_op_avgpool_backward fer_cpu_op_avgpool_backward;

/* linear.c */
fer_op_linear_forward fer_cpu_op_linear_forward;
fer_op_linear_backward fer_cpu_op_linear_backward;

/* batchnorm.c */
fer_op_batchnorm_forward_train fer_cpu_op_batchnorm_forward_train;
fer_op_batchnorm_forward_eval fer_cpu_op_batchnorm_forward_eval;
fer_op_batchnorm_backward fer_cpu_op_batchnorm_backward;

/* activation.c */
fer_op_relu_backward fer_cpu_op_relu_backward;
fer_op_add fer_cpu_op_add;
fer_op_dropout_forward fer_cpu_op_dropout_forward;
fer_op_dropout_backward fer_cpu_op_dropout_backward;

/* softmax.c */
fer_op_softmax_average fer_cpu_op_softmax_average;

/* loss.c */
fer_op_softmax_xent fer_cpu_op_softmax_xent;

/* optimizer.c */
fer_op_adam_update fer_cpu_op_adam_update;
fer_op_sgd_update fer_cpu_op_sgd_update;
fer_op_ema_update fer_cpu_op_ema_update;
fer_op_zero fer_cpu_op_zero;

/* preprocess.c */
fer_op_preprocess fer_cpu_op_preprocess;

#endif

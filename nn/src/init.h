/* Fresh parameters and default metadata: what fer_model_write_random (in
 * init.c) writes and what a fer_trainer starts from without an init model,
 * shared so that the same seed gives the same network in both. */
#ifndef FER_INIT_H
#define FER_INIT_H

#include <fer/rng.h>
#include "arch.h"

/* Fills x (d->numel floats, PyTorch layout) with tensor d's initial values
 * (Kaiming normal fan_out for convs as torchvision does, nn.Linear's
 * default for linear layers, BatchNorm identity or, with randomize_bn,
 * random). Call it for every tensor of a fer_topology's inventory in
 * order, with one generator and one *linear_fan_in (initially 0) carried
 * along: a linear weight sets the fan-in its bias needs. */
void fer_init_param (const fer_param_desc *d, int64_t *linear_fan_in,
    fer_rng *rng, gboolean randomize_bn, float *x);

/* Label i of a model with n_classes classes and no fer.labels metadata:
 * FER2013's (alphabetical) for 7 classes, else "class<i>". Free with g_free. */
char *fer_default_label (int n_classes, int i);

/* The metadata of a model file written by libfernn (fer.labels from
 * fer_default_label, fer.input_size, fer.input_channels, fer.mean 0.5,
 * fer.std 0.25, fer.stem, fer.trained_by); callers then add or override. */
void fer_init_default_metadata (fer_st_writer *w, const fer_arch *arch,
    int input_size, const char *trained_by);

#endif

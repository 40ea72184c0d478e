/* libfernn: umbrella header. */
#ifndef FER_FER_H
#define FER_FER_H

#include <fer/error.h>
#include <fer/safetensors.h>
#include <fer/image.h>
#include <fer/model.h>
#include <fer/train.h>
#include <fer/rng.h>

#endif

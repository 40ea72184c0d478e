/* libfernn: umbrella header.
 *
 * Thread safety: each header's top comment says what may be called
 * concurrently; in short, distinct objects are independent, one object
 * serves one thread at a time, and read-only accessors of a loaded model or
 * an open safetensors file may be called from any thread. */
#ifndef FER_FER_H
#define FER_FER_H

#include <fer/version.h>
#include <fer/error.h>
#include <fer/safetensors.h>
#include <fer/image.h>
#include <fer/model.h>
#include <fer/train.h>
#include <fer/rng.h>

#endif

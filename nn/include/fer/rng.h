/* libfernn: deterministic random numbers (xoshiro256** seeded through
 * splitmix64). The same seed gives the same stream on every machine and
 * every GLib version (GRand promises neither), so models written by fer-init
 * and training runs are reproducible.
 *
 * The state is public because callers keep generators by value and save
 * them: fer_trainer_save_state writes the four words of its dropout
 * generator as fer.state.rng, and a generator restored from them continues
 * the same stream.
 *
 * Thread safety: the functions share no state; a generator is the caller's
 * and serves one thread at a time (give each thread its own stream). */
#ifndef FER_RNG_H
#define FER_RNG_H

#include <stdint.h>
#include <fer/error.h>

G_BEGIN_DECLS

typedef struct
{
  uint64_t s[4];
} fer_rng;

FER_API void fer_rng_seed (fer_rng *r, uint64_t seed);
/* One of many independent streams of a seed: fer-train gives every epoch
 * its own stream, so an epoch's data order and augmentation depend only on
 * the seed and the epoch number. Nearby seeds and nearby streams give
 * unrelated states. */
FER_API void fer_rng_seed_stream (fer_rng *r, uint64_t seed, uint64_t stream);
FER_API uint64_t fer_rng_next (fer_rng *r);
/* Uniform in [0, 1), 24 random bits. */
FER_API float fer_rng_uniform (fer_rng *r);
/* Uniform in [0, 1), 53 random bits. */
FER_API double fer_rng_uniform_double (fer_rng *r);
/* Uniform integer in [0, n), unbiased; n >= 1. */
FER_API uint32_t fer_rng_below (fer_rng *r, uint32_t n);
/* Standard normal (Box-Muller on two 53-bit uniforms). */
FER_API double fer_rng_normal_double (fer_rng *r);
/* The same draw rounded to float. */
FER_API float fer_rng_normal (fer_rng *r);

G_END_DECLS

#endif

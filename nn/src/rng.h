/* Deterministic random numbers (xoshiro256** seeded through splitmix64):
 * the same seed gives the same stream on every machine, so models written by
 * fer-init and training runs are reproducible. */
#ifndef FER_RNG_H
#define FER_RNG_H

#include <stdint.h>

typedef struct
{
  uint64_t s[4];
} fer_rng;

void fer_rng_seed (fer_rng *r, uint64_t seed);
uint64_t fer_rng_next (fer_rng *r);
/* Uniform in [0, 1), 24 random bits. */
float fer_rng_uniform (fer_rng *r);
/* Standard normal (Box-Muller on two uniforms, computed in double). */
float fer_rng_normal (fer_rng *r);

#endif

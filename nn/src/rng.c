/* Deterministic random numbers (contract in fer/rng.h). */
#include <fer/rng.h>

#include <math.h>

static uint64_t
splitmix64 (uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void
fer_rng_seed (fer_rng *r, uint64_t seed)
{
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64 (&seed);
}

void
fer_rng_seed_stream (fer_rng *r, uint64_t seed, uint64_t stream)
{
  /* The stream goes through a second splitmix so that nearby seeds and
   * nearby streams (epochs 1, 2, 3...) give unrelated states. */
  uint64_t a = seed, b = stream ^ 0x6a09e667f3bcc909ULL;
  uint64_t x = splitmix64 (&a) ^ splitmix64 (&b);
  fer_rng_seed (r, x);
}

static inline uint64_t
rotl (uint64_t x, int k)
{
  return (x << k) | (x >> (64 - k));
}

uint64_t
fer_rng_next (fer_rng *r)
{
  uint64_t *s = r->s;
  uint64_t result = rotl (s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl (s[3], 45);
  return result;
}

float
fer_rng_uniform (fer_rng *r)
{
  return (float) (fer_rng_next (r) >> 40) * (1.0f / 16777216.0f);
}

double
fer_rng_uniform_double (fer_rng *r)
{
  return (double) (fer_rng_next (r) >> 11) * (1.0 / 9007199254740992.0);
}

uint32_t
fer_rng_below (fer_rng *r, uint32_t n)
{
  /* Lemire's multiply-and-reject: no modulo bias. */
  uint64_t m = (fer_rng_next (r) >> 32) * (uint64_t) n;
  uint32_t low = (uint32_t) m;
  if (low < n) {
    uint32_t threshold = (uint32_t) (-n) % n;
    while (low < threshold) {
      m = (fer_rng_next (r) >> 32) * (uint64_t) n;
      low = (uint32_t) m;
    }
  }
  return (uint32_t) (m >> 32);
}

double
fer_rng_normal_double (fer_rng *r)
{
  double u1 = 1.0 - fer_rng_uniform_double (r); /* (0, 1]: log is finite */
  double u2 = fer_rng_uniform_double (r);
  return sqrt (-2.0 * log (u1)) * cos (2.0 * M_PI * u2);
}

float
fer_rng_normal (fer_rng *r)
{
  return (float) fer_rng_normal_double (r);
}

/* libfernn internals: what tests may observe of preprocessing scratch memory. */
#ifndef FER_PREPROCESS_PRIVATE_H
#define FER_PREPROCESS_PRIVATE_H

#include <fer/image.h>

G_BEGIN_DECLS

/* How many times `s` has grown its buffers since fer_scratch_new: steady-state
 * preprocessing must leave this unchanged. */
guint fer_scratch_n_allocations (const fer_scratch *s);

G_END_DECLS

#endif

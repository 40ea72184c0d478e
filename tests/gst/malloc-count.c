/* An LD_PRELOAD module for tests/gst/test_allocations.sh: counts every
 * malloc, calloc, realloc and aligned allocation of the process (glibc's
 * own entry points do the work) and writes the total to $FER_MALLOC_COUNT
 * at exit. Not for sanitizer builds, whose runtime owns malloc. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc (size_t);
extern void *__libc_calloc (size_t, size_t);
extern void *__libc_realloc (void *, size_t);
extern void *__libc_memalign (size_t, size_t);

static unsigned long count;

static void
counted (void)
{
  __atomic_add_fetch (&count, 1, __ATOMIC_RELAXED);
}

void *
malloc (size_t n)
{
  counted ();
  return __libc_malloc (n);
}

void *
calloc (size_t a, size_t b)
{
  counted ();
  return __libc_calloc (a, b);
}

void *
realloc (void *p, size_t n)
{
  counted ();
  return __libc_realloc (p, n);
}

int
posix_memalign (void **p, size_t align, size_t n)
{
  counted ();
  *p = __libc_memalign (align, n);
  return *p ? 0 : 12; /* ENOMEM */
}

void *
aligned_alloc (size_t align, size_t n)
{
  counted ();
  return __libc_memalign (align, n);
}

void *
memalign (size_t align, size_t n)
{
  counted ();
  return __libc_memalign (align, n);
}

__attribute__ ((destructor)) static void
report (void)
{
  const char *path = getenv ("FER_MALLOC_COUNT");
  FILE *f = path ? fopen (path, "w") : NULL;
  if (f) {
    fprintf (f, "%lu\n", count);
    fclose (f);
  }
}

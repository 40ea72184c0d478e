#include <fer/error.h>

G_DEFINE_QUARK (fer-error-quark, fer_error)

#include <fer/error.h>

#include <string.h>

G_DEFINE_QUARK (fer - error - quark, fer_error)

char *
fer_text_quote (const char *s, int max_chars)
{
  if (s == NULL)
    return g_strdup ("(null)");
  size_t left = strlen (s);
  GString *q = g_string_sized_new (MIN (left, 256) + 1);
  for (int chars = 0; left > 0; chars++) {
    if (max_chars > 0 && chars == max_chars) {
      g_string_append (q, "...");
      break;
    }
    /* Bounded by `left`: a sequence cut short at the end is (gunichar) -2,
     * never a read past the NUL. */
    gunichar c = g_utf8_get_char_validated (s, (gssize) left);
    size_t len = 1;
    if (c == (gunichar) -1 || c == (gunichar) -2)
      g_string_append_printf (q, "\\x%02X", (guchar) *s);
    else if (c < 0x20 || c == 0x7f)
      g_string_append_c (q, '?');
    else {
      len = (size_t) (g_utf8_next_char (s) - s);
      g_string_append_len (q, s, (gssize) len);
    }
    s += len;
    left -= len;
  }
  return g_string_free (q, FALSE);
}

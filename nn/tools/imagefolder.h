/* Image-folder trees, ROOT/<label>/<image>, as fer-train and fer-eval read
 * them: the label folders are ROOT's subfolders (plain files beside them
 * are ignored), the images the *.jpg, *.jpeg and *.png files (any case) in
 * each. Entries are visited in byte order of their names and hidden ones
 * are left out, so two runs (and two machines) see the same sequence; with
 * no given labels, the sorted folder names are the labels. */
#ifndef FER_TOOLS_IMAGEFOLDER_H
#define FER_TOOLS_IMAGEFOLDER_H

#include <glib.h>

G_BEGIN_DECLS

/* The names of root's subfolders, sorted; NULL with an error naming root
 * when it cannot be read. */
GPtrArray *fer_image_folder_labels (const char *root, GError **error);

/* Appends the paths (dir/name) of dir's image files, sorted, to paths
 * (which frees them with g_free); FALSE with an error naming dir when it
 * cannot be read. */
gboolean fer_image_folder_files (
    const char *dir, GPtrArray *paths, GError **error);

G_END_DECLS

#endif

/* The model loader and classifier: variants, metadata, bad model files that
 * are valid safetensors but not a model we can run, and TTA classification
 * consistency. */
#include <math.h>
#include <string.h>
#include <glib/gstdio.h>

#include <fer/model.h>
#include "arch.h"
#include "test-images.h"
#include "test-util.h"

static char *tmpdir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static char *
write_model (const char *name, fer_stem stem, fer_head head, int channels,
    int classes, const char *const *meta)
{
  fer_arch a = { stem, head, channels, classes };
  GError *error = NULL;
  char *path = tmp_path (name);
  g_assert_true (
      fer_model_write_random (&a, 3, TRUE, FER_DTYPE_F32, meta, path, &error));
  g_assert_no_error (error);
  return path;
}

/* Copies src to a new file, leaving out tensor `drop`, giving tensor
 * `reshape` a wrong leading dimension (or, as "nan:NAME" / "neg:NAME",
 * making NAME's element 5 NaN or -1), and overriding one metadata key. */
static char *
rewrite (const char *src, const char *name, const char *drop,
    const char *reshape, const char *key, const char *value)
{
  GError *error = NULL;
  fer_safetensors *st = fer_safetensors_open (src, &error);
  g_assert_no_error (error);
  fer_st_writer *w = fer_st_writer_new ();
  for (int i = 0; i < fer_safetensors_n_tensors (st); i++) {
    const fer_st_tensor *t = fer_safetensors_tensor (st, i);
    if (g_strcmp0 (t->name, drop) == 0)
      continue;
    float *x = g_new (float, t->numel);
    fer_safetensors_read_f32 (st, t, x);
    int64_t shape[FER_ST_MAX_DIMS];
    memcpy (shape, t->shape, sizeof shape);
    if (g_strcmp0 (t->name, reshape) == 0)
      shape[0] -= 1; /* the data's first rows, one row fewer */
    if (reshape && strlen (reshape) > 4 && strcmp (t->name, reshape + 4) == 0)
      x[5] = g_str_has_prefix (reshape, "nan:") ? NAN : -1.0f;
    g_assert_true (fer_st_writer_add (
        w, t->name, FER_DTYPE_F32, t->ndim, shape, x, &error));
    g_free (x);
  }
  for (const char *const *k = fer_safetensors_metadata_keys (st); *k; k++)
    fer_st_writer_set_metadata (w, *k, fer_safetensors_metadata (st, *k));
  if (key)
    fer_st_writer_set_metadata (w, key, value);
  char *path = tmp_path (name);
  g_assert_true (fer_st_writer_save (w, path, &error));
  g_assert_no_error (error);
  fer_st_writer_free (w);
  fer_safetensors_free (st);
  return path;
}

/* A refusal of path naming it and `needle`, in one line of UTF-8 (a path
 * that is not UTF-8 shows quoted, fer_text_quote). */
static void
expect_load_error (const char *path, const char *needle)
{
  GError *error = NULL;
  fer_model *m = test_load_model (path, FER_BACKEND_CPU, 1, &error);
  g_autofree char *shown = fer_text_quote (path, 0);
  g_assert_null (m);
  g_assert_nonnull (error);
  g_test_message ("%s -> %s", shown, error->message);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
  g_assert_nonnull (strstr (error->message, shown));
  if (!strstr (error->message, needle))
    g_error ("message '%s' lacks '%s'", error->message, needle);
  g_assert_null (strchr (error->message, '\n'));
  g_error_free (error);
}

static void
test_variants (void)
{
  const struct
  {
    fer_stem stem;
    fer_head head;
    int channels, classes;
    int64_t params; /* PyTorch's sum(p.numel() for p in parameters()) */
  } cases[] = {
    /* the seed report's model: 3 channels, torchvision stem, mlp head */
    { FER_STEM_TORCHVISION, FER_HEAD_MLP, 3, 7, 11310151 },
    /* torchvision's resnet18(num_classes=7) */
    { FER_STEM_TORCHVISION, FER_HEAD_FC, 3, 7, 11180103 },
    { FER_STEM_SMALL, FER_HEAD_FC, 1, 7, 11170240 - 3136 + 576 + 3591 },
    { FER_STEM_SMALL, FER_HEAD_MLP, 3, 4, 0 },
    /* torchvision's resnet18 with maxpool = Identity, 1 channel */
    { FER_STEM_NOPOOL, FER_HEAD_FC, 1, 7, 11180103 - 2 * 7 * 7 * 64 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GError *error = NULL;
    char *path = write_model ("variant.safetensors", cases[i].stem,
        cases[i].head, cases[i].channels, cases[i].classes, NULL);
    fer_model *m = test_load_model (path, FER_BACKEND_CPU, 1, &error);
    g_assert_no_error (error);
    fer_arch a = fer_model_arch (m);
    g_assert_cmpint (a.stem, ==, cases[i].stem);
    g_assert_cmpint (a.head, ==, cases[i].head);
    g_assert_cmpint (a.channels, ==, cases[i].channels);
    g_assert_cmpint (fer_model_n_classes (m), ==, cases[i].classes);
    if (cases[i].params)
      g_assert_cmpint (fer_model_n_params (m), ==, cases[i].params);
    if (cases[i].classes == 7) {
      g_assert_cmpstr (fer_model_label (m, 0), ==, "angry");
      g_assert_cmpstr (fer_model_label (m, 6), ==, "surprise");
      g_assert_cmpint (fer_model_label_index (m, "happy"), ==, 3);
    } else {
      g_assert_cmpstr (fer_model_label (m, 3), ==, "class3");
    }
    g_assert_null (fer_model_label (m, cases[i].classes));
    g_assert_cmpint (fer_model_label_index (m, "nope"), ==, -1);
    const fer_input_spec *spec = fer_model_input_spec (m);
    g_assert_cmpint (spec->size, ==, 48);
    g_assert_cmpfloat (spec->mean[cases[i].channels - 1], ==, 0.5f);
    g_assert_cmpfloat (spec->std[0], ==, 0.25f);
    g_assert_cmpint (fer_model_backend (m), ==, FER_BACKEND_CPU);
    fer_model_free (m);
    g_unlink (path);
    g_free (path);
  }
}

/* fer_arch_forward_macs against published counts: torchvision lists
 * resnet18 (3 x 224 x 224, 1000 classes) at 1.81 GFLOPS, by which it means
 * multiply-adds (torchvision.models, "GFLOPS" column of the classification
 * weights table; fvcore's count, 1.819 G, is the same), and issue 9's
 * figures for our 44 px crops: 0.181, 0.575 and 2.19 GFLOP (2 per
 * multiply-add) for the torchvision, nopool and small stems. */
static void
test_forward_macs (void)
{
  const struct
  {
    fer_arch arch;
    int size;
    double macs, tolerance;
  } cases[] = {
    { { FER_STEM_TORCHVISION, FER_HEAD_FC, 3, 1000 }, 224, 1.814e9, 0.005 },
    { { FER_STEM_TORCHVISION, FER_HEAD_FC, 1, 7 }, 44, 0.181e9 / 2, 0.01 },
    { { FER_STEM_NOPOOL, FER_HEAD_FC, 1, 7 }, 44, 0.575e9 / 2, 0.01 },
    { { FER_STEM_SMALL, FER_HEAD_FC, 1, 7 }, 44, 2.19e9 / 2, 0.01 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    const double macs = (double) fer_arch_forward_macs (
                     &cases[i].arch, cases[i].size),
                 rel = fabs (macs / cases[i].macs - 1.0);
    g_test_message ("%s stem, %d px: %.4g multiply-adds, %.2f%% from %.4g",
        fer_stem_name (cases[i].arch.stem), cases[i].size, macs, 100.0 * rel,
        cases[i].macs);
    g_assert_cmpfloat (rel, <, cases[i].tolerance);
  }
  /* the head counts: 1000 classes cost 512 x 993 more than 7 */
  fer_arch a = cases[0].arch, b = cases[0].arch;
  b.n_classes = 7;
  g_assert_cmpint (
      fer_arch_forward_macs (&a, 224) - fer_arch_forward_macs (&b, 224), ==,
      512 * 993);
}

/* The 7x7 stems differ only in fer.stem: the key decides, and a file
 * without it is torchvision's (max-pool). */
static void
test_stem_from_metadata (void)
{
  char *nopool = write_model (
      "nopool.safetensors", FER_STEM_NOPOOL, FER_HEAD_FC, 1, 7, NULL);
  char *tv =
      rewrite (nopool, "tv.safetensors", NULL, NULL, "fer.stem", "torchvision");
  const struct
  {
    const char *path;
    fer_stem stem;
  } cases[] = { { nopool, FER_STEM_NOPOOL }, { tv, FER_STEM_TORCHVISION } };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    GError *error = NULL;
    fer_model *m = test_load_model (cases[i].path, FER_BACKEND_CPU, 1, &error);
    g_assert_no_error (error);
    g_assert_cmpint (fer_model_arch (m).stem, ==, cases[i].stem);
    fer_model_free (m);
  }
  char *small = write_model (
      "small.safetensors", FER_STEM_SMALL, FER_HEAD_FC, 1, 7, NULL);
  char *bad =
      rewrite (small, "bad.safetensors", NULL, NULL, "fer.stem", "nopool");
  expect_load_error (bad, "conv1.weight");
  for (const char *const *p =
           (const char *const[]){ nopool, tv, small, bad, NULL };
       *p; p++)
    g_unlink (*p);
  g_free (nopool);
  g_free (tv);
  g_free (small);
  g_free (bad);
}

static void
test_metadata (void)
{
  const char *const meta[] = { "fer.labels", "a, b ,c", "fer.input_size", "40",
    "fer.crop_size", "36", "fer.mean", "0.1,0.2,0.3", "fer.std", "0.5",
    "fer.dataset", "unit", NULL };
  GError *error = NULL;
  char *path =
      write_model ("meta.safetensors", FER_STEM_SMALL, FER_HEAD_FC, 3, 3, meta);
  fer_model *m = test_load_model (path, FER_BACKEND_CPU, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (fer_model_label (m, 1), ==, "b");
  g_assert_cmpint (fer_model_input_size (m), ==, 40);
  g_assert_cmpint (fer_model_crop_size (m), ==, 36);
  g_assert_cmpint (fer_model_input_spec (m)->size, ==, 36);
  g_assert_cmpfloat (fer_model_input_spec (m)->mean[2], ==, 0.3f);
  g_assert_cmpfloat (fer_model_input_spec (m)->std[2], ==, 0.5f);
  g_assert_cmpstr (fer_model_metadata (m, "fer.dataset"), ==, "unit");
  g_assert_null (fer_model_metadata (m, "fer.nothing"));
  fer_model_free (m);
  g_unlink (path);
  g_free (path);
}

static void
test_bad_models (void)
{
  char *good = write_model (
      "good.safetensors", FER_STEM_TORCHVISION, FER_HEAD_MLP, 1, 7, NULL);
  const struct
  {
    const char *drop, *reshape, *key, *value, *needle;
  } cases[] = {
    { "layer3.1.bn2.running_var", NULL, NULL, NULL,
        "layer3.1.bn2.running_var" },
    { "conv1.weight", NULL, NULL, NULL, "conv1.weight" },
    { "fc.4.weight", NULL, NULL, NULL, "fc.4.weight" },
    { NULL, "layer2.0.downsample.0.weight", NULL, NULL,
        "layer2.0.downsample.0.weight" },
    { NULL, "conv1.weight", NULL, NULL, "conv1.weight" },
    { NULL, "fc.1.running_mean", NULL, NULL, "fc.1.running_mean" },
    { NULL, NULL, "fer.labels", "a,b,c", "fc.4.weight" },
    { NULL, NULL, "fer.labels", "a,,c,d,e,f,g", "empty label" },
    { NULL, NULL, "fer.labels", "a,b,c,d,e,f,a",
        "a label twice at position 6" },
    { NULL, NULL, "fer.labels", "a,b,c\td,e,f,g,h",
        "a control character at position 2 ('c?d')" },
    { NULL, NULL, "fer.input_channels", "3", "conv1.weight" },
    { NULL, NULL, "fer.stem", "small", "conv1.weight" },
    { NULL, NULL, "fer.stem", "Small", "fer.stem" },
    { NULL, NULL, "fer.stem", "resnet", "fer.stem" },
    { NULL, NULL, "fer.input_size", "forty", "fer.input_size" },
    { NULL, NULL, "fer.input_size", "4", "fer.input_size" },
    { NULL, NULL, "fer.crop_size", "64", "fer.crop_size" },
    { NULL, NULL, "fer.mean", "0.1,0.2", "fer.mean" },
    { NULL, NULL, "fer.std", "0", "fer.std" },
    { NULL, NULL, "fer.std", "nan", "fer.std" },
    { NULL, NULL, "fer.mean", "1e39", "fer.mean" },  /* inf as a float */
    { NULL, NULL, "fer.std", "1e-50", "fer.std" },   /* 0 as a float */
    { NULL, NULL, "fer.mean", "3e38", "overflows" }, /* mean / std */
    { NULL, "nan:layer2.1.conv2.weight", NULL, NULL,
        "tensor 'layer2.1.conv2.weight' holds NaN or infinity at element 5" },
    { NULL, "neg:layer3.0.bn1.running_var", NULL, NULL,
        "tensor 'layer3.0.bn1.running_var' holds a negative variance" },
  };
  /* each case at a plain name and at one that is not UTF-8 */
  for (guint i = 0; i < 2 * G_N_ELEMENTS (cases); i++) {
    const guint c = i / 2;
    char *bad =
        rewrite (good, i % 2 ? "bad\xff\xc3.safetensors" : "bad.safetensors",
            cases[c].drop, cases[c].reshape, cases[c].key, cases[c].value);
    expect_load_error (bad, cases[c].needle);
    g_unlink (bad);
    g_free (bad);
  }
  char *missing = tmp_path ("does-not-exist.safetensors");
  expect_load_error (missing, "does-not-exist");
  g_free (missing);
  g_unlink (good);
  g_free (good);
}

/* A random GRAY8 frame and its buffer. */
static fer_image
gray_frame (guint8 *pixels, int w, int h, guint32 seed)
{
  GRand *r = g_rand_new_with_seed (seed);
  for (int i = 0; i < w * h; i++)
    pixels[i] = (guint8) g_rand_int_range (r, 0, 256);
  g_rand_free (r);
  fer_image img = { FER_PIXEL_GRAY8, w, h, { pixels }, { w }, TRUE };
  return img;
}

static void
test_classify (void)
{
  GError *error = NULL;
  char *path = write_model (
      "cls.safetensors", FER_STEM_TORCHVISION, FER_HEAD_FC, 1, 7, NULL);
  fer_model *m = test_load_model (path, FER_BACKEND_CPU, 1, &error);
  g_assert_no_error (error);
  guint8 *pixels = g_new (guint8, 160 * 120);
  fer_image img = gray_frame (pixels, 160, 120, 11);
  fer_rect faces[3] = { { 10, 10, 48, 48 }, { 70, 20, 64, 80 },
    { 120, 90, 60, 60 } };
  float together[3 * 7], alone[7], ref[7];

  /* every face's probabilities sum to 1, and batching changes nothing */
  for (int T = 1; T <= FER_TTA_MAX; T += 4) {
    g_assert_true (fer_model_classify (m, &img, faces, 3, T, together, &error));
    g_assert_no_error (error);
    for (int f = 0; f < 3; f++) {
      g_assert_true (
          fer_model_classify (m, &img, &faces[f], 1, T, alone, &error));
      double sum = 0, err = 0;
      for (int j = 0; j < 7; j++) {
        sum += together[f * 7 + j];
        err = fmax (err, fabs (together[f * 7 + j] - alone[j]));
      }
      g_assert_cmpfloat (fabs (sum - 1.0), <, 1e-5);
      g_assert_cmpfloat (err, <, 1e-5);
    }
  }

  /* T = 1 is softmax(forward(preprocess(identity view))) */
  const fer_input_spec *spec = fer_model_input_spec (m);
  float *x = g_new (float, spec->size * spec->size);
  float logits[7];
  fer_view id = { faces[1], FALSE };
  g_assert_true (fer_preprocess (&img, &id, spec, x, NULL, &error));
  g_assert_true (fer_model_forward (m, x, 1, logits, &error));
  double mx = logits[0], s = 0;
  for (int j = 1; j < 7; j++)
    mx = fmax (mx, logits[j]);
  for (int j = 0; j < 7; j++)
    s += exp (logits[j] - mx);
  for (int j = 0; j < 7; j++)
    ref[j] = (float) (exp (logits[j] - mx) / s);
  g_assert_true (fer_model_classify (m, &img, &faces[1], 1, 1, alone, &error));
  for (int j = 0; j < 7; j++)
    g_assert_cmpfloat (fabs (alone[j] - ref[j]), <, 1e-6);

  /* more views than one forward chunk, and zero faces */
  float many[20 * 7];
  fer_rect lots[20];
  for (int i = 0; i < 20; i++)
    lots[i] = faces[i % 3];
  g_assert_true (fer_model_classify (m, &img, lots, 20, 10, many, &error));
  for (int j = 0; j < 7; j++)
    g_assert_cmpfloat (fabs (many[19 * 7 + j] - many[7 + j]), <, 1e-5);
  g_assert_true (fer_model_classify (m, &img, NULL, 0, 5, NULL, &error));

  /* bad arguments are errors, not crashes */
  g_assert_false (fer_model_classify (m, &img, faces, 1, 0, alone, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "tta=0"));
  g_clear_error (&error);
  g_assert_false (fer_model_classify (m, &img, faces, 1, 11, alone, &error));
  g_clear_error (&error);
  fer_rect empty = { 5, 5, 0, 10 };
  g_assert_false (fer_model_classify (m, &img, &empty, 1, 1, alone, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  fer_image broken = img;
  broken.strides[0] = 10;
  g_assert_false (fer_model_classify (m, &broken, faces, 1, 1, alone, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);

  g_free (x);
  g_free (pixels);
  fer_model_free (m);
  g_unlink (path);
  g_free (path);
}

/* fer_model_classify_images (the tools' path, which builds its input with
 * the backend's preprocess op as the frames' path does) on images of odd
 * sizes and formats, all in one call, against its definition: per image,
 * the TTA views of the whole image through fer_preprocess, the raw
 * forward, and the mean of the views' softmax (in double). Gray and colour
 * models, 1 and 10 views; a bad image in the batch is an error. */
static void
test_classify_images (void)
{
  const int K = 7;
  test_odd_images t;
  double err = 0.0;

  test_odd_images_make (&t, 5);
  for (int channels = 1; channels <= 3; channels += 2) {
    GError *error = NULL;
    char *path = write_model ("images.safetensors", FER_STEM_TORCHVISION,
        FER_HEAD_MLP, channels, K, NULL);
    fer_model *m = test_load_model (path, FER_BACKEND_CPU, 1, &error);
    g_assert_no_error (error);
    const fer_input_spec *spec = fer_model_input_spec (m);
    const size_t per_view = (size_t) channels * spec->size * spec->size;
    float *x = g_new (float, FER_TTA_MAX *per_view);
    float probs[TEST_N_ODD_IMAGES * 7], logits[FER_TTA_MAX * 7];

    for (int T = 1; T <= FER_TTA_MAX; T += FER_TTA_MAX - 1) {
      memset (probs, 0xff, sizeof probs);
      g_assert_true (fer_model_classify_images (
          m, t.img, TEST_N_ODD_IMAGES, T, probs, &error));
      g_assert_no_error (error);
      for (int i = 0; i < TEST_N_ODD_IMAGES; i++) {
        const fer_image *img = &t.img[i];
        const fer_rect whole = { 0, 0, (float) img->width,
          (float) img->height };
        fer_view views[FER_TTA_MAX];
        double ref[7] = { 0 };
        g_assert_true (fer_tta_views (&whole, fer_model_input_size (m),
            fer_model_crop_size (m), T, views, &error));
        for (int v = 0; v < T; v++)
          g_assert_true (fer_preprocess (
              img, &views[v], spec, x + v * per_view, NULL, &error));
        g_assert_true (fer_model_forward (m, x, T, logits, &error));
        for (int v = 0; v < T; v++) {
          const float *l = logits + v * K;
          double mx = l[0], s = 0.0;
          for (int j = 1; j < K; j++)
            mx = fmax (mx, l[j]);
          for (int j = 0; j < K; j++)
            s += exp (l[j] - mx);
          for (int j = 0; j < K; j++)
            ref[j] += exp (l[j] - mx) / s / T;
        }
        for (int j = 0; j < K; j++)
          err = fmax (err, fabs (probs[i * K + j] - ref[j]));
      }
    }

    /* a bad image anywhere in the batch is an error naming it */
    fer_image imgs[TEST_N_ODD_IMAGES];
    memcpy (imgs, t.img, sizeof imgs);
    imgs[3].strides[0] = 2;
    g_assert_false (fer_model_classify_images (
        m, imgs, TEST_N_ODD_IMAGES, 2, probs, &error));
    g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
    g_test_message ("%s", error->message);
    g_assert_nonnull (strstr (error->message, "stride"));
    g_clear_error (&error);
    /* an empty image: named as one, not as an empty face rectangle (the
     * caller gave none) */
    memcpy (imgs, t.img, sizeof imgs);
    imgs[2].width = 0;
    g_assert_false (fer_model_classify_images (
        m, imgs, TEST_N_ODD_IMAGES, 2, probs, &error));
    g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
    g_test_message ("%s", error->message);
    g_assert_nonnull (strstr (error->message, "image 2 is empty (0x"));
    g_clear_error (&error);

    g_free (x);
    fer_model_free (m);
    g_unlink (path);
    g_free (path);
  }
  g_test_message (
      "classify_images vs its definition: max |difference| %.3g", err);
  g_assert_cmpfloat (err, <, 1e-6);
  test_odd_images_free (&t);
}

/* The file at path on one CPU thread, conv weights as `format`. */
static fer_model *
load_weights (const char *path, fer_weight_format format, GError **error)
{
  fer_model_options opts;
  fer_model_options_init (&opts);
  opts.backend = FER_BACKEND_CPU;
  opts.threads = 1;
  opts.weights = format;
  return fer_model_load (path, &opts, error);
}

static double
max_prob_diff (fer_model *a, fer_model *b)
{
  GError *error = NULL;
  guint8 *pixels = g_new (guint8, 160 * 120);
  fer_image img = gray_frame (pixels, 160, 120, 5);
  fer_rect faces[3] = { { 10, 10, 48, 48 }, { 70, 20, 64, 80 },
    { 100, 50, 60, 60 } };
  float pa[3 * 7], pb[3 * 7];
  double err = 0.0;
  g_assert_true (fer_model_classify (a, &img, faces, 3, 5, pa, &error));
  g_assert_true (fer_model_classify (b, &img, faces, 3, 5, pb, &error));
  g_assert_no_error (error);
  for (int i = 0; i < 3 * 7; i++)
    err = fmax (err, fabs (pa[i] - pb[i]));
  g_free (pixels);
  return err;
}

/* Conv weights as halves on the CPU (fer_weight_format): chosen under auto
 * exactly when the file's conv weights are halves (an F16 file), and then
 * the probabilities are float32's to rounding; forced on a float32 file,
 * they move by what 11-bit weights cost (bound printed and asserted). */
static void
test_weight_formats (void)
{
  GError *error = NULL;
  fer_arch a = { FER_STEM_TORCHVISION, FER_HEAD_FC, 1, 7 };
  g_autofree char *f16 = tmp_path ("w16.safetensors");
  g_autofree char *f32 = tmp_path ("w32.safetensors");
  g_assert_true (
      fer_model_write_random (&a, 9, TRUE, FER_DTYPE_F16, NULL, f16, &error));
  g_assert_true (
      fer_model_write_random (&a, 9, TRUE, FER_DTYPE_F32, NULL, f32, &error));
  g_assert_no_error (error);

  fer_model *h_auto = load_weights (f16, FER_WEIGHTS_AUTO, &error);
  fer_model *h_f32 = load_weights (f16, FER_WEIGHTS_F32, &error);
  fer_model *s_auto = load_weights (f32, FER_WEIGHTS_AUTO, &error);
  fer_model *s_f16 = load_weights (f32, FER_WEIGHTS_F16, &error);
  g_assert_no_error (error);
  g_assert_cmpint (fer_model_weight_format (h_auto), ==, FER_WEIGHTS_F16);
  g_assert_cmpint (fer_model_weight_format (h_f32), ==, FER_WEIGHTS_F32);
  g_assert_cmpint (fer_model_weight_format (s_auto), ==, FER_WEIGHTS_F32);
  g_assert_cmpint (fer_model_weight_format (s_f16), ==, FER_WEIGHTS_F16);
  double exact = max_prob_diff (h_auto, h_f32);
  double rounded = max_prob_diff (s_f16, s_auto);
  g_print ("# F16 file, half vs float32 weights: max |dp| = %.3g; F32 file "
           "forced to halves: max |dp| = %.3g\n",
      exact, rounded);
  g_assert_cmpfloat (exact, <, 1e-5);
  g_assert_cmpfloat (rounded, <, 1e-2);
  g_assert_cmpfloat (rounded, >, exact);
  fer_model_free (h_auto);
  fer_model_free (h_f32);
  fer_model_free (s_auto);
  fer_model_free (s_f16);

  g_assert_null (load_weights (f16, (fer_weight_format) 7, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "weights = 7"));
  g_clear_error (&error);
  g_unlink (f16);
  g_unlink (f32);
}

static void
test_backend_choice (void)
{
  fer_backend_type t;
  g_assert_true (fer_backend_type_from_string ("CUDA", &t));
  g_assert_cmpint (t, ==, FER_BACKEND_CUDA);
  g_assert_false (fer_backend_type_from_string ("gpu", &t));
  g_assert_cmpstr (fer_backend_type_to_string (FER_BACKEND_AUTO), ==, "auto");

  GError *error = NULL;
  char *path =
      write_model ("be.safetensors", FER_STEM_SMALL, FER_HEAD_FC, 1, 7, NULL);
  fer_model *m = test_load_model (path, FER_BACKEND_CUDA, 0, &error);
  if (!fer_have_cuda_build ()) {
    g_assert_null (m);
    g_assert_error (error, FER_ERROR, FER_ERROR_NO_DEVICE);
    g_assert_nonnull (strstr (error->message, "cuda"));
    g_clear_error (&error);
  }
  fer_model_free (m);
  g_clear_error (&error);
  /* auto on a machine without a GPU is the CPU backend */
  m = test_load_model (path, FER_BACKEND_AUTO, 0, &error);
  g_assert_no_error (error);
  if (!fer_have_cuda_build ())
    g_assert_cmpint (fer_model_backend (m), ==, FER_BACKEND_CPU);
  g_assert_false (fer_model_set_threads (m, -1, &error));
  g_assert_error (error, FER_ERROR, FER_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_true (fer_model_set_threads (m, 1, &error));
  fer_model_free (m);
  g_unlink (path);
  g_free (path);
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("fer-model-XXXXXX", &error);
  g_assert_no_error (error);
  g_test_add_func ("/model/variants", test_variants);
  g_test_add_func ("/model/forward-macs", test_forward_macs);
  g_test_add_func ("/model/stem-from-metadata", test_stem_from_metadata);
  g_test_add_func ("/model/metadata", test_metadata);
  g_test_add_func ("/model/bad-models", test_bad_models);
  g_test_add_func ("/model/classify", test_classify);
  g_test_add_func ("/model/classify-images", test_classify_images);
  g_test_add_func ("/model/backend-choice", test_backend_choice);
  g_test_add_func ("/model/weight-formats", test_weight_formats);
  int rc = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return rc;
}

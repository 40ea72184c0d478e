/* The feremotion plugin: registers its elements, nothing else. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "gstferemotion.h"
#include "gstferemotionexport.h"
#include "gstferemotionoverlay.h"

static gboolean
plugin_init (GstPlugin *plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (feremotion, plugin);
  ret |= GST_ELEMENT_REGISTER (feremotionoverlay, plugin);
  ret |= GST_ELEMENT_REGISTER (feremotionexport, plugin);
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, feremotion,
    "Facial expression recognition (ResNet-18, FER2013 classes)", plugin_init,
    VERSION, "LGPL", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)

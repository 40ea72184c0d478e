/* feremotionexport: writes the GstFerEmotionMeta of each buffer as JSON lines. */
#ifndef __GST_FER_EMOTION_EXPORT_H__
#define __GST_FER_EMOTION_EXPORT_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_FER_EMOTION_EXPORT (gst_fer_emotion_export_get_type ())
G_DECLARE_FINAL_TYPE (GstFerEmotionExport, gst_fer_emotion_export, GST,
    FER_EMOTION_EXPORT, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE (feremotionexport);

G_END_DECLS

#endif

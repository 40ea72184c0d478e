/* feremotionoverlay: draws the GstFerEmotionMeta of each face on the video. */
#ifndef __GST_FER_EMOTION_OVERLAY_H__
#define __GST_FER_EMOTION_OVERLAY_H__

#include <gst/gst.h>
#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS

#define GST_TYPE_FER_EMOTION_OVERLAY (gst_fer_emotion_overlay_get_type ())
G_DECLARE_FINAL_TYPE (GstFerEmotionOverlay, gst_fer_emotion_overlay, GST,
    FER_EMOTION_OVERLAY, GstVideoFilter)

GST_ELEMENT_REGISTER_DECLARE (feremotionoverlay);

G_END_DECLS

#endif

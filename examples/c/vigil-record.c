/* SPDX-License-Identifier: MPL-2.0 */
/*
 * vigil-record: records a failover input to an AV1 Matroska file with the vigil plugins, from C.
 *
 *   vigil-record [--seconds N] [--encoder DESC] OUTPUT.mkv URI [URI...]
 *
 * The URIs are the inputs of vigilfailoversrc, primary first. The video is encoded by
 * vigilsvtav1enc (DESC, default "vigilsvtav1enc preset=12 pred-structure=low-delay"), muxed
 * into Matroska and written by vigilsink. Every status change and every switch of the failover
 * source is printed as it happens:
 *
 *   status healthy active=file:///a.mkv
 *   switch from=file:///a.mkv to=file:///b.mkv reason=eos
 *
 * After N seconds (or on Ctrl-C) the recording is ended with EOS, so the file is finished.
 * Exit status: 0 for a finished recording, 3 when a vigil element's watchdog posted an ERROR
 * (a wedged or panicked worker: the file is truncated), 1 for any other ERROR, 2 for bad
 * arguments or missing plugins.
 *
 * Build: meson builds it (build/examples/c/vigil-record), or
 *   cc vigil-record.c -o vigil-record $(pkg-config --cflags --libs gstreamer-1.0)
 */

#include <glib-unix.h>
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_WATCHDOG 3

typedef struct {
  GMainLoop *loop;
  GstElement *pipeline;
  int exit_code;
  gboolean stopping;
} App;

/* Ends the recording cleanly: EOS travels down to the muxer, which finishes the file. */
static gboolean
stop_recording (gpointer data)
{
  App *app = data;
  if (!app->stopping) {
    app->stopping = TRUE;
    printf ("stopping: sending EOS\n");
    fflush (stdout);
    gst_element_send_event (app->pipeline, gst_event_new_eos ());
  }
  return G_SOURCE_REMOVE;
}

static void
print_element_message (const GstStructure *s)
{
  const gchar *name = gst_structure_get_name (s);
  if (g_str_equal (name, "vigil-failover-status")) {
    const gchar *active = gst_structure_get_string (s, "active-input");
    printf ("status %s active=%s\n", gst_structure_get_string (s, "status"),
        active && *active ? active : "-");
  } else if (g_str_equal (name, "vigil-failover-switched")) {
    const gchar *from = gst_structure_get_string (s, "from");
    printf ("switch from=%s to=%s reason=%s\n", from && *from ? from : "-",
        gst_structure_get_string (s, "to"), gst_structure_get_string (s, "reason"));
  }
  fflush (stdout);
}

static gboolean
on_bus_message (GstBus *bus, GstMessage *msg, gpointer data)
{
  App *app = data;
  (void) bus;
  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ELEMENT:{
      const GstStructure *s = gst_message_get_structure (msg);
      if (s)
        print_element_message (s);
      break;
    }
    case GST_MESSAGE_ERROR:{
      GError *err = NULL;
      gchar *debug = NULL;
      const GstStructure *details = NULL;
      gst_message_parse_error (msg, &err, &debug);
      gst_message_parse_error_details (msg, &details);
      printf ("error from %s: %s\n", GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message);
      if (details && gst_structure_has_name (details, "vigil-watchdog")) {
        gchar *text = gst_structure_to_string (details);
        printf ("watchdog: %s\n", text);
        g_free (text);
        app->exit_code = EXIT_WATCHDOG;
      } else if (app->exit_code == 0) {
        app->exit_code = 1;
      }
      fflush (stdout);
      g_clear_error (&err);
      g_free (debug);
      g_main_loop_quit (app->loop);
      break;
    }
    case GST_MESSAGE_WARNING:{
      GError *err = NULL;
      gst_message_parse_warning (msg, &err, NULL);
      printf ("warning from %s: %s\n", GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)), err->message);
      fflush (stdout);
      g_clear_error (&err);
      break;
    }
    case GST_MESSAGE_EOS:
      printf ("finished\n");
      fflush (stdout);
      g_main_loop_quit (app->loop);
      break;
    default:
      break;
  }
  return TRUE;
}

static int
usage (const char *argv0)
{
  fprintf (stderr, "usage: %s [--seconds N] [--encoder DESC] OUTPUT.mkv URI [URI...]\n", argv0);
  return 2;
}

int
main (int argc, char **argv)
{
  App app = { 0 };
  double seconds = 0;
  const char *encoder = "vigilsvtav1enc preset=12 pred-structure=low-delay";
  const char *const needed[] = { "vigilfailoversrc", "vigilsvtav1enc", "vigilsink" };
  int i = 1;

  gst_init (&argc, &argv);
  for (; i < argc && strncmp (argv[i], "--", 2) == 0; i += 2) {
    if (i + 1 >= argc)
      return usage (argv[0]);
    if (strcmp (argv[i], "--seconds") == 0)
      seconds = atof (argv[i + 1]);
    else if (strcmp (argv[i], "--encoder") == 0)
      encoder = argv[i + 1];
    else
      return usage (argv[0]);
  }
  if (argc - i < 2)
    return usage (argv[0]);
  const char *output = argv[i];

  for (size_t n = 0; n < G_N_ELEMENTS (needed); n++) {
    GstElementFactory *f = gst_element_factory_find (needed[n]);
    if (f == NULL) {
      fprintf (stderr, "%s is not found: install the vigil plugins, or set GST_PLUGIN_PATH "
          "to the built ones (build/plugins)\n", needed[n]);
      return 2;
    }
    gst_object_unref (f);
  }

  gchar *desc = g_strdup_printf ("vigilfailoversrc name=f enable-audio=false "
      "video-caps=video/x-raw,width=640,height=360,framerate=30/1 "
      "! videoconvert ! %s ! matroskamux ! vigilsink name=sink", encoder);
  GError *err = NULL;
  app.pipeline = gst_parse_launch (desc, &err);
  g_free (desc);
  if (app.pipeline == NULL || err != NULL) {
    fprintf (stderr, "cannot build the pipeline: %s\n", err ? err->message : "unknown error");
    return 2;
  }
  GstElement *sink = gst_bin_get_by_name (GST_BIN (app.pipeline), "sink");
  g_object_set (sink, "location", output, NULL);
  gst_object_unref (sink);
  GstElement *src = gst_bin_get_by_name (GST_BIN (app.pipeline), "f");
  for (int u = i + 1; u < argc; u++) {
    gboolean added = FALSE;
    g_signal_emit_by_name (src, "add-uri", argv[u], &added);
    if (!added) {
      fprintf (stderr, "input %s was refused\n", argv[u]);
      return 2;
    }
  }

  app.loop = g_main_loop_new (NULL, FALSE);
  GstBus *bus = gst_element_get_bus (app.pipeline);
  guint watch = gst_bus_add_watch (bus, on_bus_message, &app);
  gst_object_unref (bus);
  g_unix_signal_add (SIGINT, stop_recording, &app);
  if (seconds > 0)
    g_timeout_add ((guint) (seconds * 1000), stop_recording, &app);

  if (gst_element_set_state (app.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    fprintf (stderr, "the pipeline does not start\n");
    app.exit_code = 1;
  } else {
    g_main_loop_run (app.loop);
  }

  gst_element_set_state (app.pipeline, GST_STATE_NULL);
  GstStructure *stats = NULL;
  g_object_get (src, "statistics", &stats, NULL);
  guint64 switches = 0;
  if (stats && gst_structure_get_uint64 (stats, "switches", &switches)) {
    printf ("switches %" G_GUINT64_FORMAT "\n", switches);
  }
  if (stats) {
    gst_structure_free (stats);
  }
  gst_object_unref (src);
  g_source_remove (watch);
  gst_object_unref (app.pipeline);
  g_main_loop_unref (app.loop);
  return app.exit_code;
}

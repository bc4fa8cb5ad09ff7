/* progress.h - what a running algorithm says of how far it has got: the
 * file /output/progress.json, {"fraction": 0.42, "message": "..."}, read
 * from the host side of the run's output directory.  The algorithm owns
 * the file, so it is read as hostile input: no links followed, regular
 * files only, never more than PROGRESS_MAX_BYTES, never blocking.  Pure,
 * any thread. */
#ifndef EDGECD_PROGRESS_H
#define EDGECD_PROGRESS_H

#include <stddef.h>

#include "base/error.h"

#define PROGRESS_NAME "progress.json"
#define PROGRESS_MAX_BYTES 4096       /* a larger file is ignored */
#define PROGRESS_MESSAGE_MAX 256      /* bytes; a longer message is cut at a character */
#define PROGRESS_INTERVAL_MS 250      /* a running job's file is read at most this often */

/* Read output_dir/progress.json into normalised JSON text (caller frees):
 * {"fraction":F,"message":M}, F a number in [0, 1] or null, M a string or
 * null, at least one of them given; other members are dropped.
 * ERR_NOT_FOUND when there is no file; ERR_INVALID (with why) when it is
 * not a regular file, too large, not JSON or not of that shape; ERR_IO
 * when it cannot be read. */
int progress_read(const char *output_dir, char **ret_text, struct err *err);

#endif

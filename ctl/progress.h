/* progress.h - the one-line display of a job being waited for (stderr).
 *
 * On a terminal the line is redrawn in place with \r (cut to the width of
 * the terminal); otherwise a plain line is printed only when the status,
 * the percentage or the message changes.  struct progress owns `last`;
 * progress_done() frees it.
 */
#ifndef EDGECDCTL_PROGRESS_H
#define EDGECDCTL_PROGRESS_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

struct progress {
        FILE *out;
        bool tty;
        bool drawn;      /* a tty line is on screen */
        char *last;      /* what the last plain line said (status, percent, message) */
};

void progress_init(struct progress *p, FILE *out);
/* Show job (a job object) elapsed seconds after the submission. */
void progress_show(struct progress *p, const json_t *job, double elapsed);
/* Ends the tty line (newline) and frees what p holds. */
void progress_done(struct progress *p);

#endif

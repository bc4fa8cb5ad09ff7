/* liveset.h - the run ids in use in this daemon: a container being made, a
 * warm one waiting, a job's run, one being taken apart after the answer.
 * The collector leaves whatever is here alone.  Any thread. */
#ifndef EDGECD_LIVESET_H
#define EDGECD_LIVESET_H

#include <stdbool.h>
#include <stddef.h>

struct liveset;

struct liveset *liveset_new(void);
void liveset_free(struct liveset *l);   /* NULL is fine */
void liveset_add(struct liveset *l, const char *run_id);
void liveset_remove(struct liveset *l, const char *run_id);
bool liveset_contains(struct liveset *l, const char *run_id);

#endif

/* metrics: a program's own counters (ingress, egress, dropped, ...),
 * emitted into its output stream as v2 Counter envelopes, the way
 * Loggregator components send their metrics through the pipeline.
 *
 * The program owns the values and sets each counter's total before
 * metrics_emit; the delta is what changed since the previous emit. */
#ifndef LGR_METRICS_H
#define LGR_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "frame.h"

#define METRICS_MAX 32

struct metric {
	const char *name;
	const char *tag_key;	/* one tag, or NULL */
	const char *tag_value;
	uint64_t total;
	uint64_t emitted;	/* total at the last emit */
};

struct metrics {
	const char *source_id;
	const char *origin;	/* the "origin" tag */
	struct metric m[METRICS_MAX];
	size_t n;
};

void metrics_init(struct metrics *ms, const char *source_id,
    const char *origin);
/* The counter's index, or -1 with errno ENOSPC. Strings are borrowed. */
int metrics_add(struct metrics *ms, const char *name, const char *tag_key,
    const char *tag_value);
static inline void
metrics_set(struct metrics *ms, int i, uint64_t total)
{
	ms->m[i].total = total;
}

/* Write one Counter envelope per counter into w, timestamped now_ns.
 * 0, or -1 with errno from the writer. */
int metrics_emit(struct metrics *ms, int64_t now_ns, struct frame_writer *w);

/* Nanoseconds since the epoch, from CLOCK_REALTIME. */
int64_t time_now_ns(void);
/* Milliseconds from CLOCK_MONOTONIC, for deadlines. */
int64_t time_mono_ms(void);

#endif

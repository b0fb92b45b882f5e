/* squeue: one subscriber's bounded queue of messages (marshalled
 * envelopes), for a single thread. Bounded by a count and by bytes, both
 * fixed at init: the queue never grows with load.
 *
 * Two ways to be full: squeue_push refuses the newest message (the caller
 * decides what a full queue means: the websocket cut-off), and
 * squeue_push_evict drops the oldest to make room and counts them, as a
 * diode does (gRPC and SSE subscribers). */
#ifndef LGR_SQUEUE_H
#define LGR_SQUEUE_H

#include <stddef.h>
#include <stdint.h>

struct squeue {
	unsigned char *buf;	/* circular: each message is a 4-byte length
				 * then its bytes, never split by the wrap */
	size_t cap;		/* bytes in buf */
	size_t head, tail;	/* read and write offsets */
	size_t used;		/* bytes between them, headers and skips */
	size_t count, max_count;
	uint64_t pushed;	/* messages accepted */
	uint64_t popped;	/* messages taken out */
	uint64_t dropped;	/* evicted or refused */
};

/* max_count >= 1; max_bytes bounds one message too (a message longer than
 * max_bytes / 2 is refused and counted). 0, or -1 with errno. */
int squeue_init(struct squeue *q, size_t max_count, size_t max_bytes);
void squeue_release(struct squeue *q);

/* Add a copy of p. 0, or -1 when it does not fit (counted in dropped). */
int squeue_push(struct squeue *q, const void *p, size_t len);
/* Add a copy of p, dropping the oldest until it fits. Returns how many
 * were dropped (counted), or -1 when p can never fit (counted). */
int squeue_push_evict(struct squeue *q, const void *p, size_t len);

/* The oldest message, or NULL when empty. */
const unsigned char *squeue_peek(const struct squeue *q, size_t *len);
void squeue_pop(struct squeue *q);
/* Drop everything held (counted in dropped). */
void squeue_clear(struct squeue *q);

static inline size_t
squeue_count(const struct squeue *q)
{
	return q->count;
}

#endif

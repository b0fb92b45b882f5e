/* squeue: a subscriber's bounded message queue. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "squeue.h"

#define HDR 4
#define SKIP 0xffffffffu	/* header marking "the rest of buf is unused" */

int
squeue_init(struct squeue *q, size_t max_count, size_t max_bytes)
{
	memset(q, 0, sizeof(*q));
	if (max_count == 0 || max_bytes < 2 * HDR) {
		errno = EINVAL;
		return -1;
	}
	q->buf = malloc(max_bytes);
	if (q->buf == NULL)
		return -1;
	q->cap = max_bytes;
	q->max_count = max_count;
	return 0;
}

void
squeue_release(struct squeue *q)
{
	free(q->buf);
	q->buf = NULL;
}

/* Room for one message of n bytes at tail, wrapping when the end of buf
 * is too short; returns the offset or -1. */
static long
squeue_room(struct squeue *q, size_t n)
{
	size_t need = HDR + n;

	if (q->count >= q->max_count)
		return -1;
	if (q->count == 0) {
		q->head = q->tail = q->used = 0;
		return need <= q->cap ? 0 : -1;
	}
	if (q->tail == q->head)
		return -1;	/* wrapped all the way round: full */
	if (q->tail > q->head) {
		/* free space: [tail, cap) then [0, head) */
		if (q->cap - q->tail >= need)
			return (long)q->tail;
		if (q->head >= need)
			return -2;	/* fits after a wrap */
		return -1;
	}
	return q->head - q->tail >= need ? (long)q->tail : -1;
}

static int
squeue_put(struct squeue *q, const void *p, size_t len)
{
	long at = squeue_room(q, len);

	if (at == -1)
		return -1;
	if (at == -2) {
		size_t rest = q->cap - q->tail;

		if (rest >= HDR)
			frame_put_len(q->buf + q->tail, SKIP);
		q->used += rest;
		at = 0;
	}
	frame_put_len(q->buf + at, (uint32_t)len);
	memcpy(q->buf + at + HDR, p, len);
	q->tail = (size_t)at + HDR + len;
	if (q->tail == q->cap)
		q->tail = 0;
	q->used += HDR + len;
	q->count++;
	q->pushed++;
	return 0;
}

int
squeue_push(struct squeue *q, const void *p, size_t len)
{
	if (len > q->cap / 2 || squeue_put(q, p, len) < 0) {
		q->dropped++;
		return -1;
	}
	return 0;
}

int
squeue_push_evict(struct squeue *q, const void *p, size_t len)
{
	int n = 0;

	if (len > q->cap / 2) {
		q->dropped++;
		return -1;
	}
	while (squeue_put(q, p, len) < 0) {
		squeue_pop(q);
		q->popped--;
		q->dropped++;
		n++;
	}
	return n;
}

/* Step head past a skip marker or the unusable tail end of buf. */
static void
squeue_skip(struct squeue *q)
{
	size_t rest = q->cap - q->head;

	if (q->count == 0)
		return;
	if (rest < HDR || frame_get_len(q->buf + q->head) == SKIP) {
		q->used -= rest;
		q->head = 0;
	}
}

const unsigned char *
squeue_peek(const struct squeue *q, size_t *len)
{
	struct squeue *m = (struct squeue *)q;

	if (q->count == 0)
		return NULL;
	squeue_skip(m);
	*len = frame_get_len(q->buf + q->head);
	return q->buf + q->head + HDR;
}

void
squeue_pop(struct squeue *q)
{
	size_t n;

	if (q->count == 0)
		return;
	squeue_skip(q);
	n = HDR + frame_get_len(q->buf + q->head);
	q->head += n;
	if (q->head == q->cap)
		q->head = 0;
	q->used -= n;
	q->count--;
	q->popped++;
	if (q->count == 0)
		q->head = q->tail = q->used = 0;
}

void
squeue_clear(struct squeue *q)
{
	q->dropped += q->count;
	q->count = 0;
	q->head = q->tail = q->used = 0;
}

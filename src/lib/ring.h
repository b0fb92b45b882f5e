/* ring: the diode. A single-producer single-consumer ring of frames whose
 * writer never waits for its reader: when the ring is full, the writer
 * overwrites the oldest frames and the reader finds out and counts them as
 * dropped. The ring holds at most nslots frames and at most nbytes bytes
 * of frame data; whichever bound is reached first, the oldest goes.
 *
 * One thread calls ring_push/ring_publish/ring_close, one other thread calls
 * ring_pop_into/ring_wait. Every frame pushed is later either popped
 * (egress) or counted in ring->dropped; nothing is lost unaccounted.
 *
 * Frames are kept in wire form (length header included), back to back,
 * so the reader copies a run of frames with one memcpy and then checks
 * once that the writer has not started to overwrite the run (a seqlock on
 * the run's first slot plus the writer's byte reservation): each frame is
 * delivered whole or counted as dropped. */
#ifndef LGR_RING_H
#define LGR_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct ring_slot {
	_Atomic uint64_t seq;	/* frame number + 1 once written; 0 while being rewritten */
	_Atomic uint64_t off;	/* byte position of the frame (monotonic) */
	_Atomic uint32_t len;
};

struct ring {
	struct ring_slot *slots;	/* owned */
	unsigned char *bytes;	/* owned */
	size_t nslots;
	size_t nbytes;

	/* Writer side. */
	_Alignas(64) _Atomic uint64_t head;	/* frames published */
	_Atomic uint64_t reserve;	/* bytes the writer may be writing below */
	_Atomic int closed;
	_Alignas(64) uint64_t whead;	/* frames pushed (writer's own) */
	uint64_t wpos;		/* bytes pushed (writer's own) */
	uint64_t wreserve;	/* writer's copy of reserve */

	/* Reader side. */
	_Alignas(64) uint64_t tail;	/* next frame to read */
	_Atomic uint64_t rtail;	/* tail as last shown to the writer */
	_Atomic uint64_t dropped;	/* overwritten before they were read */
	_Atomic uint32_t wake;		/* futex word */
	_Atomic int sleeping;
};

/* nslots >= 1, nbytes >= 2 * the largest frame pushed (header
 * included). 0, or -1 errno. */
int ring_init(struct ring *r, size_t nslots, size_t nbytes);
void ring_release(struct ring *r);

/* Writer: copy one frame in, p pointing at its 4-byte length header and
 * len counting the header; never blocks. len <= nbytes / 2. The reader
 * sees it after the next ring_publish. */
void ring_push(struct ring *r, const void *p, size_t len);
/* Writer: copy in a run of count frames lying back to back at p (headers
 * included, len bytes in all, len <= nbytes / 2) with one copy. */
void ring_push_run(struct ring *r, const unsigned char *p, size_t len,
    size_t count);
/* Writer: make pushed frames visible; call after each batch of pushes.
 * A sleeping reader is woken only once a good part of the ring waits for
 * it; otherwise it wakes on its own within RING_POLL_MS. That keeps the
 * writer's syscalls and the context switches per frame near zero. */
void ring_publish(struct ring *r);
/* Writer: no more frames will come. */
void ring_close(struct ring *r);

/* Reader: move up to max frames into w's batch. w->cap must hold the
 * largest frame. Returns the number moved, 0 when the ring is empty, -1
 * with errno when w could not be flushed. Frames found overwritten are
 * added to dropped. */
int ring_pop_into(struct ring *r, struct frame_writer *w, size_t max);
#define RING_POLL_MS 1

/* Reader: sleep until frames arrive, the ring closes, or timeout_ms passes
 * (-1: no timeout), checking at least every RING_POLL_MS. Returns 1 when
 * the ring is closed and empty. */
int ring_wait(struct ring *r, int timeout_ms);

/* Frames published so far (frames pushed, once the writer is done). */
static inline uint64_t
ring_ingress(struct ring *r)
{
	return atomic_load_explicit(&r->head, memory_order_acquire);
}

#endif

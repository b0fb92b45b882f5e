/* ring: an overwriting single-producer single-consumer frame ring. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"

/* The writer announces the bytes it will overwrite this many times per
 * trip round the byte ring. */
#define RING_RESERVE_STEPS 16
/* Frames waiting before a sleeping reader is woken. */
#ifndef RING_WAKE_AT
#define RING_WAKE_AT(r) ((r)->nslots >= 16 ? (r)->nslots / 8 : 1)
#endif
#ifndef RING_SPIN
#define RING_SPIN 200
#endif

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

int
ring_init(struct ring *r, size_t nslots, size_t nbytes)
{
	memset(r, 0, sizeof(*r));
	if (nslots == 0 || nbytes < 16) {
		errno = EINVAL;
		return -1;
	}
	r->slots = calloc(nslots, sizeof(*r->slots));
	r->bytes = malloc(nbytes);
	if (r->slots == NULL || r->bytes == NULL) {
		ring_release(r);
		return -1;
	}
	r->nslots = nslots;
	r->nbytes = nbytes;
	return 0;
}

void
ring_release(struct ring *r)
{
	free(r->slots);
	free(r->bytes);
	r->slots = NULL;
	r->bytes = NULL;
}

static void
ring_copy_in(struct ring *r, uint64_t pos, const unsigned char *p, size_t len)
{
	size_t at = pos % r->nbytes, first = r->nbytes - at;

	if (first >= len) {
		memcpy(r->bytes + at, p, len);
	} else {
		memcpy(r->bytes + at, p, first);
		memcpy(r->bytes, p + first, len - first);
	}
}

static void
ring_copy_out(const struct ring *r, uint64_t pos, unsigned char *p, size_t len)
{
	size_t at = pos % r->nbytes, first = r->nbytes - at;

	if (first >= len) {
		memcpy(p, r->bytes + at, len);
	} else {
		memcpy(p, r->bytes + at, first);
		memcpy(p + first, r->bytes, len - first);
	}
}

void
ring_push(struct ring *r, const void *p, size_t len)
{
	uint64_t k = r->whead;
	struct ring_slot *s = &r->slots[k % r->nslots];
	uint64_t pos = r->wpos;

	/* Announce the bytes about to be written before writing them, so a
	 * reader copying an old frame there can tell it was overwritten.
	 * Announce a step ahead, so the shared line changes once per step
	 * rather than once per frame; the reader then gives up on frames a
	 * step early, which only matters when the ring is full anyway. */
	if (pos + len > r->wreserve) {
		r->wreserve = pos + len + r->nbytes / RING_RESERVE_STEPS;
		atomic_store_explicit(&r->reserve, r->wreserve,
		    memory_order_relaxed);
	}
	atomic_store_explicit(&s->seq, 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	ring_copy_in(r, pos, p, len);
	atomic_store_explicit(&s->off, pos, memory_order_relaxed);
	atomic_store_explicit(&s->len, (uint32_t)len, memory_order_relaxed);
	atomic_store_explicit(&s->seq, k + 1, memory_order_release);
	r->wpos = pos + len;
	r->whead = k + 1;
}

void
ring_push_run(struct ring *r, const unsigned char *p, size_t len,
    size_t count)
{
	uint64_t k = r->whead, pos = r->wpos, i;
	size_t at = 0;

	if (pos + len > r->wreserve) {
		r->wreserve = pos + len + r->nbytes / RING_RESERVE_STEPS;
		atomic_store_explicit(&r->reserve, r->wreserve,
		    memory_order_relaxed);
	}
	/* Slots first marked as being rewritten, then the bytes, then each
	 * slot filled in: the same order as ring_push, for the whole run. */
	for (i = 0; i < count && i < r->nslots; i++)
		atomic_store_explicit(&r->slots[(k + i) % r->nslots].seq, 0,
		    memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	ring_copy_in(r, pos, p, len);
	for (i = 0; i < count; i++) {
		struct ring_slot *s = &r->slots[(k + i) % r->nslots];
		uint32_t flen = FRAME_HEADER + frame_get_len(p + at);

		atomic_store_explicit(&s->off, pos + at, memory_order_relaxed);
		atomic_store_explicit(&s->len, flen, memory_order_relaxed);
		atomic_store_explicit(&s->seq, k + i + 1, memory_order_release);
		at += flen;
	}
	r->wpos = pos + len;
	r->whead = k + count;
}

static void
futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, INT_MAX,
	    NULL, NULL, 0);
}

void
ring_publish(struct ring *r)
{
	atomic_store_explicit(&r->head, r->whead, memory_order_release);
	/* Pairs with the reader's fence between setting sleeping and
	 * re-checking head: one of the two sees the other. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->sleeping, memory_order_relaxed) &&
	    r->whead - atomic_load_explicit(&r->rtail, memory_order_relaxed) >=
	    RING_WAKE_AT(r)) {
		atomic_fetch_add_explicit(&r->wake, 1, memory_order_relaxed);
		futex_wake(&r->wake);
	}
}

void
ring_close(struct ring *r)
{
	atomic_store_explicit(&r->head, r->whead, memory_order_release);
	atomic_store_explicit(&r->closed, 1, memory_order_release);
	atomic_fetch_add_explicit(&r->wake, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	futex_wake(&r->wake);
}

/* Read slot k's offset and length if it still holds frame k: 0, or -1
 * when the writer has moved on. */
static int
ring_slot_read(struct ring *r, uint64_t k, uint64_t *off, uint32_t *len)
{
	struct ring_slot *s = &r->slots[k % r->nslots];
	uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);

	*off = atomic_load_explicit(&s->off, memory_order_relaxed);
	*len = atomic_load_explicit(&s->len, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	if (seq != k + 1 ||
	    atomic_load_explicit(&s->seq, memory_order_relaxed) != seq)
		return -1;
	return 0;
}

int
ring_pop_into(struct ring *r, struct frame_writer *w, size_t max)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	size_t moved = 0;

	while (r->tail < head && moved < max) {
		uint64_t n, off0, offl, bytes;
		uint32_t len0, lenl;
		unsigned char *dst;

		if (head - r->tail > r->nslots) {
			/* Lapped: those slots hold newer frames now. */
			uint64_t lost = head - r->nslots - r->tail;

			atomic_fetch_add_explicit(&r->dropped, lost,
			    memory_order_relaxed);
			r->tail += lost;
		}
		if (ring_slot_read(r, r->tail, &off0, &len0) == -1)
			goto lost;
		/* The run tail..tail+n-1, as long as fits the output batch. */
		n = head - r->tail;
		if (n > max - moved)
			n = max - moved;
		for (;;) {
			if (ring_slot_read(r, r->tail + n - 1, &offl, &lenl) == -1)
				goto lost;
			bytes = offl + lenl - off0;
			if (bytes <= w->cap - w->len)
				break;
			if (w->len > 0 && bytes <= w->cap) {
				if (frame_flush(w) == -1)
					return -1;
				break;
			}
			if (n == 1)
				break;
			n /= 2;
		}
		if (atomic_load_explicit(&r->reserve, memory_order_relaxed) >
		    off0 + r->nbytes)
			goto lost;
		dst = frame_reserve_raw(w, bytes);
		if (dst == NULL)
			return -1;
		ring_copy_out(r, off0, dst, bytes);
		/* The run is whole if its first frame's slot is unchanged and
		 * the writer has not reserved past where it starts: the writer
		 * overwrites in order, so nothing later in it was touched. */
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&r->slots[r->tail % r->nslots].seq,
		    memory_order_relaxed) != r->tail + 1 ||
		    atomic_load_explicit(&r->reserve, memory_order_relaxed) >
		    off0 + r->nbytes)
			goto lost;
		frame_commit_raw(w, bytes, n);
		r->tail += n;
		moved += n;
		continue;
lost:
		atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
		r->tail++;
	}
	atomic_store_explicit(&r->rtail, r->tail, memory_order_relaxed);
	return (int)moved;
}

int
ring_wait(struct ring *r, int timeout_ms)
{
	struct timespec ts;
	uint32_t seen;
	int spin;

	for (spin = 0; spin < RING_SPIN; spin++) {
		if (r->tail < atomic_load_explicit(&r->head, memory_order_acquire))
			return 0;
		if (atomic_load_explicit(&r->closed, memory_order_acquire))
			break;
		cpu_relax();
	}
	seen = atomic_load_explicit(&r->wake, memory_order_relaxed);
	atomic_store_explicit(&r->sleeping, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (r->tail < atomic_load_explicit(&r->head, memory_order_acquire)) {
		atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
		return 0;
	}
	if (atomic_load_explicit(&r->closed, memory_order_acquire)) {
		atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
		return r->tail >= atomic_load_explicit(&r->head,
		    memory_order_acquire);
	}
	if (timeout_ms < 0 || timeout_ms > RING_POLL_MS)
		timeout_ms = RING_POLL_MS;
	ts.tv_sec = timeout_ms / 1000;
	ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000;
	syscall(SYS_futex, (uint32_t *)&r->wake, FUTEX_WAIT_PRIVATE, seen, &ts,
	    NULL, 0);
	atomic_store_explicit(&r->sleeping, 0, memory_order_relaxed);
	return 0;
}

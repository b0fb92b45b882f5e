/* test_ring: the diode ring keeps the newest frames, delivers each one
 * whole or counts it as dropped, and never loses count, with one thread
 * and with a writer racing a slow reader. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "ring.h"
#include "tap.h"

/* Frame k: header, 8 bytes of k, then (k % 97) bytes of (k & 0xff). */
static size_t
make_frame(unsigned char *p, uint64_t k)
{
	size_t extra = k % 97;

	frame_put_len(p, 8 + extra);
	memcpy(p + 4, &k, 8);
	memset(p + 12, (int)(k & 0xff), extra);
	return 12 + extra;
}

/* Check a run of frames from the writer's buffer: each well formed, in
 * increasing order. Returns the count, or -1 on a bad frame. */
static long
check_frames(const unsigned char *p, size_t n, uint64_t *last, int *first)
{
	long count = 0;
	size_t at = 0;

	while (at < n) {
		unsigned char want[200];
		uint64_t k;
		uint32_t len;

		if (n - at < 12)
			return -1;
		len = frame_get_len(p + at);
		memcpy(&k, p + at + 4, 8);
		if (len + 4 > n - at || make_frame(want, k) != len + 4 ||
		    memcmp(want, p + at, len + 4) != 0)
			return -1;
		if (!*first && k <= *last)
			return -1;
		*first = 0;
		*last = k;
		at += len + 4;
		count++;
	}
	return count;
}

static void
test_single_thread(void)
{
	struct frame_writer w;
	unsigned char f[200];
	struct ring r;
	uint64_t k, last = 0;
	int fd = memfd_create("ring", 0), first = 1;
	long got;

	ring_init(&r, 4, 4096);
	frame_writer_init(&w, fd, 65536);
	for (k = 0; k < 3; k++)
		ring_push(&r, f, make_frame(f, k));
	ok(ring_pop_into(&r, &w, 100) == 0, "nothing shows before publish");
	ring_publish(&r);
	ok(ring_pop_into(&r, &w, 100) == 3, "three pushed, three popped");
	got = check_frames(w.buf, w.len, &last, &first);
	ok(got == 3 && last == 2, "in order and whole");
	w.len = 0;

	for (k = 3; k < 13; k++)
		ring_push(&r, f, make_frame(f, k));
	ring_publish(&r);
	ok(ring_pop_into(&r, &w, 100) == 4, "ten pushed into four slots: four popped");
	got = check_frames(w.buf, w.len, &last, &first);
	ok(got == 4 && last == 12, "the newest four are kept");
	ok(r.dropped == 6, "the six oldest are counted dropped (%llu)",
	    (unsigned long long)r.dropped);
	ring_close(&r);
	ok(ring_wait(&r, 0) == 1, "closed and empty");
	ring_release(&r);
	frame_writer_release(&w);
	close(fd);
}

static void
test_byte_bound(void)
{
	struct frame_writer w;
	unsigned char f[200];
	struct ring r;
	uint64_t k, last = 0;
	int fd = memfd_create("ring", 0), first = 1;
	long got;

	/* Room for 1000 frames by count but only ~4 KiB of bytes. */
	ring_init(&r, 1000, 4096);
	frame_writer_init(&w, fd, 1 << 20);
	for (k = 0; k < 500; k++)
		ring_push(&r, f, make_frame(f, k));
	ring_publish(&r);
	got = ring_pop_into(&r, &w, 1000);
	ok(got > 0 && got < 100, "the byte bound limits what is kept (%ld)", got);
	ok(check_frames(w.buf, w.len, &last, &first) == got && last == 499,
	    "what is kept is whole and the newest");
	ok((uint64_t)got + r.dropped == 500, "kept + dropped = pushed");
	ring_release(&r);
	frame_writer_release(&w);
	close(fd);
}

struct race {
	struct ring r;
	uint64_t n;
};

/* Frames one by one, then in runs of up to 16 with one copy each. */
static void *
race_writer(void *arg)
{
	struct race *x = arg;
	unsigned char f[200 * 16];
	uint64_t k;

	for (k = 0; k < x->n / 2; k++) {
		ring_push(&x->r, f, make_frame(f, k));
		if (k % 64 == 63)
			ring_publish(&x->r);
	}
	while (k < x->n) {
		size_t len = 0, count = 0;

		while (count < 1 + k % 16 && k < x->n) {
			len += make_frame(f + len, k++);
			count++;
		}
		ring_push_run(&x->r, f, len, count);
		if (k % 64 < 16)
			ring_publish(&x->r);
	}
	ring_publish(&x->r);
	ring_close(&x->r);
	return NULL;
}

static void
test_race(size_t nslots, size_t nbytes, int slow)
{
	struct frame_writer w;
	struct race x;
	pthread_t th;
	uint64_t last = 0, egress = 0;
	int fd = memfd_create("ring", 0), first = 1, bad = 0, rounds = 0;

	x.n = 2000000;
	ring_init(&x.r, nslots, nbytes);
	frame_writer_init(&w, fd, 1 << 16);
	pthread_create(&th, NULL, race_writer, &x);
	for (;;) {
		int n = ring_pop_into(&x.r, &w, 512);
		long got;

		if (n > 0) {
			got = check_frames(w.buf, w.len, &last, &first);
			if (got != n)
				bad = 1;
			egress += n;
			w.len = 0;
			if (slow && ++rounds % 50 == 0) {
				struct timespec ts = { 0, 200000 };

				nanosleep(&ts, NULL);
			}
			continue;
		}
		if (ring_wait(&x.r, 10))
			break;
	}
	pthread_join(th, NULL);
	ok(!bad, "race %zu slots %zu bytes%s: every frame delivered is whole "
	    "and in order", nslots, nbytes, slow ? ", slow reader" : "");
	ok(egress + x.r.dropped == x.n,
	    "race: egress %llu + dropped %llu = %llu pushed",
	    (unsigned long long)egress, (unsigned long long)x.r.dropped,
	    (unsigned long long)x.n);
	ok(last == x.n - 1, "race: the last frame pushed is delivered");
	if (slow)
		ok(x.r.dropped > 0, "race: a slow reader makes the ring drop");
	ring_release(&x.r);
	frame_writer_release(&w);
	close(fd);
}

int
main(void)
{
	log_init("test_ring");
	test_single_thread();
	test_byte_bound();
	test_race(10000, 1 << 20, 0);
	test_race(1000, 1 << 16, 1);
	test_race(64, 1 << 20, 1);
	return tap_done();
}

/* test_frame: the frame reader and writer on a table of streams: empty,
 * whole, zero-length, truncated, oversized, and frames split across reads
 * one byte at a time. */
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "tap.h"

struct expect {
	const char *name;
	const char *in;		/* stream bytes */
	size_t in_len;
	size_t max_frame;
	int nframes;		/* frames handed out */
	const char *frames[4];	/* their contents */
	int end;		/* 0 clean end, -1 EBADMSG */
	uint64_t oversized;
	uint64_t err_offset;	/* frame_offset when end is -1 */
};

#define S(x) x, sizeof(x) - 1

static const struct expect cases[] = {
	{ "empty stream", S(""), 64, 0, { NULL }, 0, 0, 0 },
	{ "one frame", S("\0\0\0\3abc"), 64, 1, { "abc" }, 0, 0, 0 },
	{ "zero-length frame", S("\0\0\0\0"), 64, 1, { "" }, 0, 0, 0 },
	{ "two frames", S("\0\0\0\1a\0\0\0\2bc"), 64, 2, { "a", "bc" }, 0, 0, 0 },
	{ "truncated header", S("\0\0\0\1a\0\0"), 64, 1, { "a" }, -1, 0, 5 },
	{ "truncated body", S("\0\0\0\1a\0\0\0\5abc"), 64, 1, { "a" }, -1, 0, 5 },
	{ "frame at max", S("\0\0\0\4abcd"), 4, 1, { "abcd" }, 0, 0, 0 },
	{ "frame over max skipped", S("\0\0\0\5abcde\0\0\0\1z"), 4, 1, { "z" },
	    0, 1, 0 },
	{ "oversized then truncated", S("\0\0\0\11abc"), 4, 0, { NULL }, -1,
	    1, 0 },
	{ "huge length", S("\377\377\377\377ab"), 1024, 0, { NULL }, -1, 1, 0 },
};

struct feeder {
	int fd;
	const char *p;
	size_t n;
};

/* Write one byte at a time, so every frame spans many reads. */
static void *
feed_slowly(void *arg)
{
	struct feeder *f = arg;
	size_t i;

	for (i = 0; i < f->n; i++)
		if (write(f->fd, f->p + i, 1) != 1)
			break;
	close(f->fd);
	return NULL;
}

static void
run_case(const struct expect *c, int slowly)
{
	struct frame_reader r;
	struct feeder f;
	pthread_t th;
	const unsigned char *p;
	size_t len;
	int fds[2], rc, got = 0, good = 1;

	if (slowly) {
		if (pipe(fds) == -1)
			abort();
		f.fd = fds[1];
		f.p = c->in;
		f.n = c->in_len;
		pthread_create(&th, NULL, feed_slowly, &f);
	} else {
		fds[0] = memfd_create("t", 0);
		if (c->in_len && write(fds[0], c->in, c->in_len) != (ssize_t)c->in_len)
			abort();
		lseek(fds[0], 0, SEEK_SET);
	}
	frame_reader_init(&r, fds[0], c->max_frame);
	while ((rc = frame_read(&r, &p, &len)) == 1) {
		if (got >= c->nframes || len != strlen(c->frames[got]) ||
		    memcmp(p, c->frames[got], len) != 0)
			good = 0;
		got++;
	}
	ok(good && got == c->nframes, "%s%s: frames", c->name,
	    slowly ? " (byte by byte)" : "");
	if (c->end == 0)
		ok(rc == 0, "%s%s: clean end", c->name, slowly ? " (byte by byte)" : "");
	else
		ok(rc == -1 && errno == EBADMSG && r.frame_offset == c->err_offset,
		    "%s%s: EBADMSG at offset %llu", c->name,
		    slowly ? " (byte by byte)" : "",
		    (unsigned long long)c->err_offset);
	ok(r.oversized == c->oversized, "%s%s: %llu oversized", c->name,
	    slowly ? " (byte by byte)" : "", (unsigned long long)c->oversized);
	frame_reader_release(&r);
	close(fds[0]);
	if (slowly)
		pthread_join(th, NULL);
}

static void
test_writer(void)
{
	struct frame_writer w;
	struct frame_reader r;
	const unsigned char *p;
	unsigned char *big;
	size_t len, i;
	int fd = memfd_create("w", 0), good = 1, n = 0;

	frame_writer_init(&w, fd, 4096);
	for (i = 0; i < 1000; i++)
		if (frame_write(&w, &i, sizeof(i)) == -1)
			good = 0;
	ok(good && w.frames == 1000 && w.flushed < 1000,
	    "writer batches small frames (flushed %llu before the end)",
	    (unsigned long long)w.flushed);
	big = malloc(100000);
	memset(big, 'x', 100000);
	ok(frame_write(&w, big, 100000) == 0 && w.flushed == 1001,
	    "a frame larger than the batch goes straight through");
	ok(frame_flush(&w) == 0 && w.bytes == 1000 * 12 + 100004,
	    "flush writes every byte");
	lseek(fd, 0, SEEK_SET);
	frame_reader_init(&r, fd, 200000);
	for (i = 0; frame_read(&r, &p, &len) == 1; i++, n++) {
		if (i < 1000 && (len != sizeof(i) || memcmp(p, &i, len) != 0))
			good = 0;
		if (i == 1000 && (len != 100000 || memcmp(p, big, len) != 0))
			good = 0;
	}
	ok(good && n == 1001, "what was written reads back frame for frame");
	frame_reader_release(&r);
	frame_writer_release(&w);
	free(big);
	close(fd);
}

static void
test_writer_epipe(void)
{
	struct frame_writer w;
	int fds[2];

	if (pipe(fds) == -1)
		abort();
	close(fds[0]);
	signal(SIGPIPE, SIG_IGN);
	frame_writer_init(&w, fds[1], 4096);
	ok(frame_write(&w, "abc", 3) == 0, "a write is batched, not sent");
	ok(frame_flush(&w) == -1 && errno == EPIPE,
	    "flush to a closed pipe fails with EPIPE");
	frame_writer_release(&w);
	close(fds[1]);
}

int
main(void)
{
	size_t i;

	log_init("test_frame");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_case(&cases[i], 0);
		run_case(&cases[i], 1);
	}
	test_writer();
	test_writer_epipe();
	return tap_done();
}

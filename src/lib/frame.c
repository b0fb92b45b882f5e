/* frame: buffered batch reading and writing of length-prefixed frames. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"

#define FRAME_READ_MIN (256 * 1024)
/* Bytes asked of each read(2) unless a frame needs more: small enough to
 * stay in cache and to hold a pipe's lock briefly, large enough to move
 * hundreds of frames per call. */
#define FRAME_READ_CHUNK (128 * 1024)

int
frame_reader_init(struct frame_reader *r, int fd, size_t max_frame)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->max_frame = max_frame;
	r->cap = max_frame + FRAME_HEADER;
	if (r->cap < FRAME_READ_MIN)
		r->cap = FRAME_READ_MIN;
	r->buf = malloc(r->cap);
	return r->buf ? 0 : -1;
}

void
frame_reader_release(struct frame_reader *r)
{
	free(r->buf);
	r->buf = NULL;
}

/* Read more bytes after what is buffered: >0 bytes read, 0 at end of
 * stream, -1 with errno. */
static ssize_t
frame_fill(struct frame_reader *r, size_t need)
{
	size_t want;
	ssize_t n;

	if (r->start > 0 && (r->start == r->end || r->cap - r->end < r->cap / 4)) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	want = need > FRAME_READ_CHUNK ? need : FRAME_READ_CHUNK;
	if (want > r->cap - r->end)
		want = r->cap - r->end;
	n = read(r->fd, r->buf + r->end, want);
	if (n > 0)
		r->end += n;
	else if (n == 0)
		r->eof = 1;
	return n;
}

static void
frame_consume(struct frame_reader *r, size_t n)
{
	r->start += n;
	r->offset += n;
}

int
frame_reader_ready(const struct frame_reader *r)
{
	size_t have = r->end - r->start;

	if (r->skip > 0 || have < FRAME_HEADER)
		return 0;
	return frame_get_len(r->buf + r->start) <= have - FRAME_HEADER;
}

int
frame_read(struct frame_reader *r, const unsigned char **p, size_t *len)
{
	for (;;) {
		size_t have = r->end - r->start, need = 0;
		ssize_t n;

		if (r->skip > 0) {
			size_t drop = have < r->skip ? have : r->skip;

			frame_consume(r, drop);
			r->skip -= drop;
			have -= drop;
		}
		if (r->skip == 0 && have >= FRAME_HEADER) {
			uint32_t flen = frame_get_len(r->buf + r->start);

			if (flen > r->max_frame) {
				r->oversized++;
				log_warn("event=frame_skipped offset=%llu len=%u max=%zu",
				    (unsigned long long)r->offset, flen,
				    r->max_frame);
				r->frame_offset = r->offset;
				frame_consume(r, FRAME_HEADER);
				r->skip = flen;
				continue;
			}
			if (flen <= have - FRAME_HEADER) {
				*p = r->buf + r->start + FRAME_HEADER;
				*len = flen;
				frame_consume(r, FRAME_HEADER + flen);
				r->frames++;
				return 1;
			}
			need = FRAME_HEADER + flen - have;
		}
		if (r->eof)
			n = 0;
		else
			n = frame_fill(r, need);
		if (n > 0)
			continue;
		if (n == -1)
			return -1;
		/* End of stream: clean only between frames. */
		if (r->skip == 0 && r->end == r->start)
			return 0;
		if (r->skip == 0)
			r->frame_offset = r->offset;
		errno = EBADMSG;
		return -1;
	}
}

int
frame_read_run(struct frame_reader *r, const unsigned char **p, size_t *len,
    size_t *count, size_t max_bytes)
{
	size_t at = r->start, n = 0;
	int rc;

	while (r->skip == 0 && r->end - at >= FRAME_HEADER) {
		uint32_t flen = frame_get_len(r->buf + at);

		if (flen > r->max_frame || flen > r->end - at - FRAME_HEADER ||
		    (n > 0 && at - r->start + FRAME_HEADER + flen > max_bytes))
			break;
		at += FRAME_HEADER + flen;
		n++;
	}
	if (n > 0) {
		*p = r->buf + r->start;
		*len = at - r->start;
		*count = n;
		r->frames += n;
		frame_consume(r, *len);
		return 1;
	}
	/* Nothing whole at hand: one frame the careful way (reads, skips
	 * oversized frames, reports the end). */
	rc = frame_read(r, p, len);
	if (rc == 1) {
		*p -= FRAME_HEADER;
		*len += FRAME_HEADER;
		*count = 1;
	}
	return rc;
}

int
frame_writer_init(struct frame_writer *w, int fd, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->cap = cap < 4096 ? 4096 : cap;
	w->buf = malloc(w->cap);
	return w->buf ? 0 : -1;
}

void
frame_writer_release(struct frame_writer *w)
{
	free(w->buf);
	w->buf = NULL;
}

int
fd_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t k = write(fd, c, n);

		if (k == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += k;
		n -= k;
	}
	return 0;
}

void
fd_grow_pipe(int fd)
{
	/* 1 MiB is the unprivileged default ceiling (pipe-max-size). */
	(void)fcntl(fd, F_SETPIPE_SZ, 1024 * 1024);
}

int
frame_flush(struct frame_writer *w)
{
	if (w->len == 0)
		return 0;
	if (fd_write_all(w->fd, w->buf, w->len) == -1)
		return -1;
	w->bytes += w->len;
	w->len = 0;
	w->flushed = w->frames;
	return 0;
}

unsigned char *
frame_reserve_raw(struct frame_writer *w, size_t n)
{
	if (n > w->cap) {
		errno = EMSGSIZE;
		return NULL;
	}
	if (w->cap - w->len < n && frame_flush(w) == -1)
		return NULL;
	return w->buf + w->len;
}

void
frame_commit_raw(struct frame_writer *w, size_t n, uint64_t frames)
{
	w->len += n;
	w->frames += frames;
}

unsigned char *
frame_reserve(struct frame_writer *w, size_t len)
{
	unsigned char *p;

	if (len > w->cap - FRAME_HEADER) {
		errno = EMSGSIZE;
		return NULL;
	}
	p = frame_reserve_raw(w, FRAME_HEADER + len);
	return p ? p + FRAME_HEADER : NULL;
}

void
frame_commit(struct frame_writer *w, size_t len)
{
	frame_put_len(w->buf + w->len, (uint32_t)len);
	w->len += FRAME_HEADER + len;
	w->frames++;
}

int
frame_write(struct frame_writer *w, const void *p, size_t len)
{
	unsigned char hdr[FRAME_HEADER];
	struct iovec iov[2];

	if (len > UINT32_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	if (FRAME_HEADER + len <= w->cap) {
		unsigned char *dst = frame_reserve(w, len);

		if (dst == NULL)
			return -1;
		memcpy(dst, p, len);
		frame_commit(w, len);
		return 0;
	}
	/* Larger than a batch: write it straight through. */
	if (frame_flush(w) == -1)
		return -1;
	frame_put_len(hdr, (uint32_t)len);
	iov[0].iov_base = hdr;
	iov[0].iov_len = FRAME_HEADER;
	iov[1].iov_base = (void *)p;
	iov[1].iov_len = len;
	while (iov[1].iov_len > 0) {
		ssize_t k = writev(w->fd, iov[0].iov_len ? iov : iov + 1,
		    iov[0].iov_len ? 2 : 1);

		if (k == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		w->bytes += k;
		if ((size_t)k >= iov[0].iov_len) {
			k -= iov[0].iov_len;
			iov[0].iov_len = 0;
			iov[1].iov_base = (char *)iov[1].iov_base + k;
			iov[1].iov_len -= k;
		} else {
			iov[0].iov_base = (char *)iov[0].iov_base + k;
			iov[0].iov_len -= k;
		}
	}
	w->frames++;
	w->flushed = w->frames;
	return 0;
}

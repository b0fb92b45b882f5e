/* frame: the stream between lgr programs.
 *
 *   frame = length (4 bytes, unsigned, big-endian) · envelope (length bytes)
 *
 * A reader fills a large buffer with each read(2) and hands out many frames
 * per call; a writer gathers many frames per write(2). Neither makes a
 * syscall per frame.
 *
 * A frame longer than the reader's max_frame is skipped and counted (with
 * a log line), never fatal. A stream that ends inside a frame is an error
 * (EBADMSG) and r->frame_offset says where that frame began. */
#ifndef LGR_FRAME_H
#define LGR_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER 4
#define FRAME_MAX_DEFAULT (1024 * 1024)
#define FRAME_MAX_LIMIT (64u * 1024 * 1024)	/* what --max-frame may be */

static inline uint32_t
frame_get_len(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void
frame_put_len(unsigned char *p, uint32_t n)
{
	p[0] = n >> 24;
	p[1] = n >> 16;
	p[2] = n >> 8;
	p[3] = n;
}

struct frame_reader {
	int fd;
	unsigned char *buf;	/* owned */
	size_t cap;
	size_t start, end;	/* unread bytes are buf[start, end) */
	size_t max_frame;
	uint64_t offset;	/* stream offset of buf[start] */
	uint64_t frame_offset;	/* where the frame in error began */
	uint64_t skip;		/* bytes of an oversized frame left to drop */
	uint64_t frames;	/* frames handed out */
	uint64_t oversized;	/* frames skipped for being over max_frame */
	int eof;
};

/* 0, or -1 with errno. The buffer is sized to hold the largest frame. */
int frame_reader_init(struct frame_reader *r, int fd, size_t max_frame);
void frame_reader_release(struct frame_reader *r);

/* The next frame. Returns 1 and sets *p and *len to the envelope bytes
 * (inside the reader's buffer, valid until the next call; the frame's
 * 4-byte length header sits just before *p, so *p - FRAME_HEADER is the
 * whole frame as it came in); 0 at a clean end
 * of stream; -1 with errno: EBADMSG if the stream ended inside a frame,
 * EAGAIN on a nonblocking fd with no whole frame yet, EINTR if a signal
 * interrupted read(2), or read(2)'s own error. */
int frame_read(struct frame_reader *r, const unsigned char **p, size_t *len);

/* Like frame_read, but hands out a run of whole frames lying back to back
 * in the buffer: *p points at the first frame's length header and *len
 * bytes hold *count frames with their headers, at most max_bytes unless
 * one frame alone is longer. Returns as frame_read does. */
int frame_read_run(struct frame_reader *r, const unsigned char **p,
    size_t *len, size_t *count, size_t max_bytes);

/* 1 when a whole frame is buffered, so frame_read will not call read(2). */
int frame_reader_ready(const struct frame_reader *r);

struct frame_writer {
	int fd;
	unsigned char *buf;	/* owned */
	size_t cap;
	size_t len;
	uint64_t frames;	/* frames accepted */
	uint64_t flushed;	/* frames written out to fd */
	uint64_t bytes;		/* bytes written to fd */
};

/* 0, or -1 with errno. cap is the batch size in bytes. */
int frame_writer_init(struct frame_writer *w, int fd, size_t cap);
void frame_writer_release(struct frame_writer *w);

/* Queue one frame; writes when the batch is full. 0, or -1 with errno from
 * write(2) (EPIPE when the reader went away); EMSGSIZE for len > 4 GiB. */
int frame_write(struct frame_writer *w, const void *p, size_t len);
/* Room for one frame of len bytes in the batch, to fill in place; NULL
 * with errno if the batch could not be flushed. Commit with
 * frame_commit(w, len). */
unsigned char *frame_reserve(struct frame_writer *w, size_t len);
void frame_commit(struct frame_writer *w, size_t len);
/* Room for n bytes of frames already in wire form (headers included);
 * flushes first if needed. NULL with errno (EMSGSIZE if n > cap). Commit
 * with frame_commit_raw(w, n, how many frames those bytes hold). */
unsigned char *frame_reserve_raw(struct frame_writer *w, size_t n);
void frame_commit_raw(struct frame_writer *w, size_t n, uint64_t frames);
/* Write everything queued. 0, or -1 with errno. */
int frame_flush(struct frame_writer *w);

/* Write all of p, retrying on EINTR and short writes. 0, or -1. */
int fd_write_all(int fd, const void *p, size_t n);
/* Make a pipe on fd bigger, so each syscall moves more; best effort. */
void fd_grow_pipe(int fd);

#endif

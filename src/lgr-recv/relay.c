/* relay: hand one egress call to lgr-ws over a unix connection and relay
 * its response frames back as gRPC messages (protocol: lib/relay.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "log.h"
#include "relay.h"

#define READ_CHUNK (64 * 1024)
#define PART_MIN 4096		/* a split frame's buffer, at least */
#define PART_KEEP READ_CHUNK	/* kept between frames; larger is freed */
#define WHY_MAX 128		/* grpcsrv keeps this much of a reason */

struct rcall {
	struct relay *rl;
	struct grpc_call *call;	/* NULL once grpcsrv says it is gone */
	const char *path;
	uv_pipe_t pipe;
	uv_connect_t connect;
	uv_write_t write;
	unsigned char *req;	/* frame(path) frame(request) until written */
	size_t req_len;
	unsigned char *part;	/* a frame split across reads */
	size_t have, cap;
	int accepted;		/* lgr-ws answered "0 " */
	int paused;		/* not reading: the call's buffer is full */
	int ended;		/* the call's outcome is decided */
	int closing;		/* the pipe is closing */
	int closed;		/* and its close callback has run */
	uint64_t messages;
	char peer[64];		/* for the log line after the call is gone */
};

static void rcall_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf);

void
relay_init(struct relay *rl, uv_loop_t *loop, const char *sock,
    size_t max_message)
{
	memset(rl, 0, sizeof(*rl));
	rl->loop = loop;
	rl->sock = sock;
	rl->max_message = max_message;
}

static void
rcall_free(struct rcall *rc)
{
	rc->rl->open--;
	free(rc->req);
	free(rc->part);
	free(rc);
}

/* Freed when both the pipe and the gRPC call are gone, in either order. */
static void
rcall_pipe_closed(uv_handle_t *h)
{
	struct rcall *rc = h->data;

	rc->closed = 1;
	if (rc->call == NULL)
		rcall_free(rc);
}

static void
rcall_close_pipe(struct rcall *rc)
{
	if (rc->closing)
		return;
	rc->closing = 1;
	uv_close((uv_handle_t *)&rc->pipe, rcall_pipe_closed);
}

/* End the call once: close the unix connection, then send the status.
 * In that order: grpc_call_finish may report the call closed at once,
 * and rc lives on until the pipe's close callback. */
static void
rcall_end(struct rcall *rc, int status, const char *why, int warn)
{
	if (rc->ended)
		return;
	rc->ended = 1;
	rcall_close_pipe(rc);
	(warn ? log_warn : log_info)("event=relay_end peer=%s path=%s "
	    "socket=%s status=%d messages=%llu reason=\"%s\"", rc->peer,
	    rc->path, rc->rl->sock, status, (unsigned long long)rc->messages,
	    why);
	if (rc->call != NULL)
		grpc_call_finish(rc->call, status, why);
}

/* "STATUS MESSAGE" from lgr-ws: STATUS in decimal, then a space and the
 * message, or nothing. The message goes out as grpc-message, which is
 * percent-encoded on the wire: bytes that would need encoding become '?'.
 * Returns the status, or -1 when the text is not a status. */
static int
parse_status(const unsigned char *p, size_t n, char *why, size_t whylen)
{
	size_t i = 0, k = 0;
	int code = 0;

	while (i < n && i < 3 && p[i] >= '0' && p[i] <= '9')
		code = code * 10 + (p[i++] - '0');
	if (i == 0 || (i < n && p[i] != ' '))
		return -1;
	if (i < n)
		i++;
	for (; i < n && k + 1 < whylen; i++)
		why[k++] = p[i] >= 0x20 && p[i] < 0x7f && p[i] != '%' ?
		    (char)p[i] : '?';
	why[k] = '\0';
	return code > 16 ? GRPC_UNKNOWN : code;	/* gRPC codes end at 16 */
}

/* One frame from lgr-ws. 0, or -1 when the call has ended. */
static int
rcall_frame(struct rcall *rc, const unsigned char *p, size_t n)
{
	char why[WHY_MAX];
	int code;

	if (!rc->accepted || (n > 0 && p[0] == RELAY_END_MARK)) {
		code = rc->accepted ? parse_status(p + 1, n - 1, why, sizeof(why))
		    : parse_status(p, n, why, sizeof(why));
		if (code == -1) {
			rcall_end(rc, GRPC_INTERNAL, "egress relay: lgr-ws sent "
			    "a malformed status", 1);
			return -1;
		}
		if (code == GRPC_OK && !rc->accepted) {
			rc->accepted = 1;
			return 0;
		}
		rcall_end(rc, code, why, 0);
		return -1;
	}
	if (grpc_call_send(rc->call, p, n) == -1) {
		rcall_end(rc, GRPC_INTERNAL, "egress relay: cannot queue a "
		    "message", 1);
		return -1;
	}
	rc->messages++;
	rc->rl->messages++;
	return 0;
}

/* Hand out the whole frames in p; returns the bytes they took, or -1
 * when the call has ended. A frame over the gRPC message limit ends the
 * call as soon as its header is seen. */
static ssize_t
rcall_frames(struct rcall *rc, const unsigned char *p, size_t n)
{
	size_t off = 0;

	while (n - off >= FRAME_HEADER) {
		size_t len = frame_get_len(p + off);

		if (len > rc->rl->max_message) {
			char why[WHY_MAX];

			snprintf(why, sizeof(why), "egress relay: a message of "
			    "%zu bytes over the limit of %zu", len,
			    rc->rl->max_message);
			rcall_end(rc, GRPC_INTERNAL, why, 1);
			return -1;
		}
		if (n - off - FRAME_HEADER < len)
			break;
		if (rcall_frame(rc, p + off + FRAME_HEADER, len) == -1)
			return -1;
		off += FRAME_HEADER + len;
	}
	return (ssize_t)off;
}

/* Room in rc->part for the split frame starting at p (n bytes of it). */
static int
rcall_part_fit(struct rcall *rc, const unsigned char *p, size_t n)
{
	size_t need = n < FRAME_HEADER ? PART_MIN :
	    FRAME_HEADER + (size_t)frame_get_len(p);
	unsigned char *q;

	if (need < PART_MIN)
		need = PART_MIN;
	if (need <= rc->cap)
		return 0;
	q = realloc(rc->part, need);
	if (q == NULL)
		return -1;
	rc->part = q;
	rc->cap = need;
	return 0;
}

static void
rcall_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char chunk[READ_CHUNK];	/* one loop thread: consumed at once */
	struct rcall *rc = h->data;

	(void)hint;
	/* A split frame is completed in place; whole frames need no copy. */
	if (rc->have > 0)
		*buf = uv_buf_init((char *)rc->part + rc->have, rc->cap - rc->have);
	else
		*buf = uv_buf_init(chunk, sizeof(chunk));
}

/* EOF or a read error: how the call ends depends on where it stood. */
static void
rcall_eof(struct rcall *rc, ssize_t n)
{
	char why[WHY_MAX];

	if (n != UV_EOF) {
		snprintf(why, sizeof(why), "egress relay: reading from lgr-ws: "
		    "%s", uv_strerror((int)n));
		rcall_end(rc, GRPC_UNAVAILABLE, why, 1);
	} else if (rc->have > 0) {
		rcall_end(rc, GRPC_UNAVAILABLE, "egress relay: lgr-ws ended "
		    "the connection inside a frame", 1);
	} else if (!rc->accepted) {
		rcall_end(rc, GRPC_UNAVAILABLE, "egress relay: lgr-ws closed "
		    "the connection without a status", 1);
	} else {
		rcall_end(rc, GRPC_OK, "", 0);
	}
}

static void
rcall_read(uv_stream_t *h, ssize_t n, const uv_buf_t *buf)
{
	struct rcall *rc = h->data;
	const unsigned char *p;
	size_t len;
	ssize_t took;
	int in_part;

	if (rc->ended || rc->call == NULL)
		return;
	if (n < 0) {
		rcall_eof(rc, n);
		return;
	}
	if (n == 0)
		return;
	in_part = rc->have > 0;
	if (in_part) {
		rc->have += (size_t)n;
		p = rc->part;
		len = rc->have;
	} else {
		p = (const unsigned char *)buf->base;
		len = (size_t)n;
	}
	if ((took = rcall_frames(rc, p, len)) == -1)
		return;
	/* What is left is the start of a split frame: keep it at the front
	 * of rc->part, with room for the whole frame. */
	len -= (size_t)took;
	if (in_part) {
		memmove(rc->part, p + took, len);
		p = rc->part;
	} else {
		p += took;
	}
	if (len > 0 && rcall_part_fit(rc, p, len) == -1) {
		rcall_end(rc, GRPC_RESOURCE_EXHAUSTED, "egress relay: out of "
		    "memory", 1);
		return;
	}
	if (len > 0 && !in_part)
		memcpy(rc->part, p, len);
	rc->have = len;
	if (rc->have == 0 && rc->cap > PART_KEEP) {
		free(rc->part);
		rc->part = NULL;
		rc->cap = 0;
	}
	if (rc->call != NULL && grpc_call_pending(rc->call) > RELAY_HIGH_WATER) {
		uv_read_stop(h);
		rc->paused = 1;
	}
}

static void
rcall_written(uv_write_t *req, int status)
{
	struct rcall *rc = req->data;

	(void)status;	/* a refusal comes back as a status frame or EOF */
	free(rc->req);
	rc->req = NULL;
}

static void
rcall_connected(uv_connect_t *req, int status)
{
	struct rcall *rc = req->data;
	char why[WHY_MAX];
	uv_buf_t b;
	int rc2;

	if (rc->closing)
		return;
	if (status < 0) {
		rc->rl->unavailable++;
		snprintf(why, sizeof(why), "egress relay: lgr-ws is not "
		    "reachable: %s", uv_strerror(status));
		rcall_end(rc, GRPC_UNAVAILABLE, why, 1);
		return;
	}
	b = uv_buf_init((char *)rc->req, rc->req_len);
	rc->write.data = rc;
	if ((rc2 = uv_write(&rc->write, (uv_stream_t *)&rc->pipe, &b, 1,
	    rcall_written)) < 0 ||
	    (rc2 = uv_read_start((uv_stream_t *)&rc->pipe, rcall_alloc,
	    rcall_read)) < 0) {
		snprintf(why, sizeof(why), "egress relay: %s",
		    uv_strerror(rc2));
		rcall_end(rc, GRPC_UNAVAILABLE, why, 1);
	}
}

int
relay_open(struct relay *rl, const char *path, struct grpc_call *call,
    const uint8_t *msg, size_t len, const char **why)
{
	size_t plen = strlen(path);
	struct rcall *rc = calloc(1, sizeof(*rc));

	if (rc != NULL) {
		rc->req_len = 2 * FRAME_HEADER + plen + len;
		rc->req = malloc(rc->req_len);
	}
	if (rc == NULL || rc->req == NULL) {
		free(rc);
		*why = "egress relay: out of memory";
		return GRPC_RESOURCE_EXHAUSTED;
	}
	frame_put_len(rc->req, (uint32_t)plen);
	memcpy(rc->req + FRAME_HEADER, path, plen);
	frame_put_len(rc->req + FRAME_HEADER + plen, (uint32_t)len);
	if (len > 0)
		memcpy(rc->req + 2 * FRAME_HEADER + plen, msg, len);
	rc->rl = rl;
	rc->call = call;
	rc->path = path;
	snprintf(rc->peer, sizeof(rc->peer), "%s", grpc_call_peer(call));
	rl->calls++;
	rl->open++;
	uv_pipe_init(rl->loop, &rc->pipe, 0);
	rc->pipe.data = rc;
	rc->connect.data = rc;
	/* Non-blocking: the outcome, failure too, comes to the callback. */
	uv_pipe_connect(&rc->connect, &rc->pipe, rl->sock, rcall_connected);
	grpc_call_set_arg(call, rc);
	return GRPC_OK;
}

void
relay_writable(void *ctx, struct grpc_call *call, void *arg)
{
	struct rcall *rc = arg;

	(void)ctx;
	if (rc == NULL || !rc->paused || rc->closing ||
	    grpc_call_pending(call) > RELAY_HIGH_WATER)
		return;
	rc->paused = 0;
	if (uv_read_start((uv_stream_t *)&rc->pipe, rcall_alloc,
	    rcall_read) < 0)
		rcall_end(rc, GRPC_INTERNAL, "egress relay: cannot read", 1);
}

/* The client cancelled, its connection went, or the status went out:
 * the unix connection goes too, which tells lgr-ws the call is over. */
void
relay_closed(void *ctx, struct grpc_call *call, void *arg)
{
	struct rcall *rc = arg;

	(void)ctx;
	(void)call;
	if (rc == NULL)
		return;
	rc->call = NULL;
	if (!rc->ended) {
		rc->ended = 1;
		log_info("event=relay_end peer=%s path=%s socket=%s "
		    "status=cancelled messages=%llu", rc->peer, rc->path,
		    rc->rl->sock, (unsigned long long)rc->messages);
	}
	rcall_close_pipe(rc);
	if (rc->closed)
		rcall_free(rc);
}

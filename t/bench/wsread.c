/* wsread: a websocket client for the benchmarks: connects to
 * HOST PORT PATH, reads binary messages until N have come or TIMEOUT
 * seconds pass, and prints "messages bytes seconds". Framing by wslay. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wslay/wslay.h>

static int fd;
static unsigned long long want, got, bytes;
static double deadline;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static ssize_t
on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *user)
{
	ssize_t n;

	(void)flags;
	(void)user;
	n = read(fd, buf, len);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (n <= 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return n;
}

static ssize_t
on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *user)
{
	ssize_t n = write(fd, data, len);

	(void)flags;
	(void)user;
	if (n < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return n;
}

static int
on_mask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	(void)ctx;
	(void)user;
	memset(buf, 0x5a, len);	/* a benchmark needs no secret mask */
	return 0;
}

static void
on_msg(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
	(void)ctx;
	(void)user;
	if (arg->opcode == WSLAY_BINARY_FRAME) {
		got++;
		bytes += arg->msg_length;
	}
}

int
main(int argc, char **argv)
{
	struct wslay_event_callbacks cb = { on_recv, on_send, on_mask, NULL,
	    NULL, NULL, on_msg };
	wslay_event_context_ptr ctx;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char req[512], resp[4096];
	size_t have = 0;
	double t0;
	struct timeval tv = { 1, 0 };

	if (argc != 6) {
		fprintf(stderr, "usage: wsread HOST PORT PATH N TIMEOUT\n");
		return 2;
	}
	want = strtoull(argv[4], NULL, 10);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_port = htons(atoi(argv[2]));
	inet_pton(AF_INET, argv[1], &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		perror("wsread: connect");
		return 1;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%s\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n", argv[3], argv[1], argv[2]);
	if (write(fd, req, strlen(req)) < 0)
		return 1;
	/* Read the answer byte by byte: websocket data may follow it. */
	while (have < sizeof(resp) - 1) {
		if (read(fd, resp + have, 1) != 1)
			return 1;
		have++;
		resp[have] = '\0';
		if (have >= 4 && memcmp(resp + have - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	if (strncmp(resp, "HTTP/1.1 101", 12) != 0) {
		fprintf(stderr, "wsread: %.*s\n", (int)strcspn(resp, "\r"), resp);
		return 1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	wslay_event_context_client_init(&ctx, &cb, NULL);
	t0 = now();
	deadline = t0 + atof(argv[5]);
	while (got < want && now() < deadline) {
		if (wslay_event_recv(ctx) != 0)
			break;	/* the connection ended */
		if (!wslay_event_want_read(ctx))
			break;	/* closed by the server */
		if (wslay_event_want_write(ctx))
			wslay_event_send(ctx);	/* pongs */
	}
	printf("%llu %llu %.3f\n", got, bytes, now() - t0);
	return 0;
}

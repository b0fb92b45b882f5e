/* grpccli: a loggregator.v2.Ingress/BatchSender client that sends the
 * frames of one ring to one or more addresses, as Loggregator's agent
 * sends to its dopplers.
 *
 * Each address is HOST:PORT or [V6ADDR]:PORT. A name is resolved with
 * getaddrinfo, and every address it resolves to gets a connection of its
 * own; a connection that went down resolves its name again before it
 * reconnects, so dopplers behind one name come and go as DNS says. Each
 * connection is HTTP/2 over TCP, in clear text (h2c with prior knowledge)
 * or TLS, and holds one long-lived BatchSender stream, opened again
 * whenever it ends.
 *
 * Envelopes leave in EnvelopeBatch messages of at most batch_max
 * envelopes and max_message bytes, built from the frames' bytes without
 * decoding them; a batch that is not full leaves flush_ms after its first
 * envelope. Batches go to the connection with the fewest queued, in turn
 * when several tie. Each connection queues a few batches at most; while
 * every connection is full or down, nothing more is taken from the ring,
 * which then overwrites its oldest frames and counts them, as a diode
 * does: the ring's writer never waits.
 *
 * Every envelope taken from the ring is counted once: in egress when the
 * HTTP/2 DATA frame carrying the end of its batch has gone to the socket,
 * in dropped when its connection or stream failed before that (a batch
 * not yet started moves to another connection instead, when one has
 * room), or when it could never fit in max_message. popped == egress +
 * dropped once grpccli_run has returned.
 *
 * A connection that fails (refused, reset, TLS failure, protocol error,
 * no answer to a keepalive PING) is logged and retried with exponential
 * backoff while the others carry the load. A stream that ends with a
 * non-OK status or a reset is logged and reopened. Idle connections send
 * an HTTP/2 PING every keepalive_ms (Loggregator's servers refuse pings
 * more often than every 10 s).
 *
 * The caller must ignore SIGPIPE (sig_init does): a write to a connection
 * the server closed then fails with EPIPE and is handled here. */
#ifndef LGR_GRPCCLI_H
#define LGR_GRPCCLI_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "ring.h"

/* Defaults, used for every option left 0. */
#define GRPCCLI_BATCH_MAX	100
#define GRPCCLI_FLUSH_MS	100
#define GRPCCLI_BACKOFF_MIN_MS	100
#define GRPCCLI_BACKOFF_MAX_MS	10000
#define GRPCCLI_MAX_MESSAGE	(4u * 1024 * 1024)
#define GRPCCLI_QUEUE		4
#define GRPCCLI_KEEPALIVE_MS	15000
#define GRPCCLI_CONNECT_MS	10000
#define GRPCCLI_DRAIN_MS	5000

#define GRPCCLI_MAX_TARGETS	64	/* addresses in addrs */
#define GRPCCLI_MAX_RESOLVED	16	/* connections one name may get */

struct grpccli_opts {
	const char *const *addrs;	/* HOST:PORT each; borrowed */
	size_t naddrs;
	SSL_CTX *ssl;		/* NULL: h2c; else TLS (tls_client_ctx) */
	/* TLS: SNI and the name the server's certificate must carry, e.g.
	 * "doppler"; NULL: each address's HOST. */
	const char *server_name;
	const char *name;	/* adds sink=NAME to log lines; may be NULL */
	size_t batch_max;	/* envelopes per EnvelopeBatch */
	unsigned flush_ms;	/* a batch not full leaves after this long */
	unsigned backoff_min_ms;	/* first reconnect delay, doubling */
	unsigned backoff_max_ms;	/* up to this */
	size_t max_message;	/* bytes in one message, its prefix aside */
	unsigned queue;		/* batches queued per connection */
	unsigned keepalive_ms;	/* PING an idle connection this often; no
				 * answer by the next one closes it */
	unsigned connect_ms;	/* TCP, TLS and HTTP/2 SETTINGS, in all */
	/* After ring_close, the time to send what is left; then the rest
	 * counts as dropped. */
	unsigned drain_ms;
};

/* Counts, updated as they happen and readable from any thread. */
struct grpccli_stats {
	_Atomic uint64_t popped;	/* envelopes taken from the ring */
	_Atomic uint64_t egress;	/* envelopes in batches written out */
	_Atomic uint64_t dropped;	/* envelopes taken and never sent */
	_Atomic uint64_t batches;	/* batches written out */
	_Atomic uint64_t connects;	/* connections that came up */
	_Atomic uint64_t disconnects;	/* ... and went down again */
	_Atomic uint64_t connect_failures;	/* attempts never up */
	_Atomic uint64_t stream_failures;	/* streams the server ended */
	_Atomic uint64_t conns_up;	/* connections up now */
};

/* Check o without resolving anything: every address is HOST:PORT, the
 * limits are in range. 0, or -1 with a one-line reason in err. */
int grpccli_check(const struct grpccli_opts *o, char *err, size_t errlen);

/* Send everything r holds, in the calling thread (it becomes r's only
 * reader), on an event loop of its own, until r is closed and all it held
 * is sent or dropped: at most drain_ms after ring_close, plus a second to
 * close the connections. o, its strings, o->ssl and r are borrowed for
 * the call (o->ssl may serve several clients at once). *st should start
 * zeroed; it is only added to. Returns 0, or -1 with errno when it
 * could not start: EINVAL for bad options (logged, as grpccli_check
 * words it), ENOMEM, or a libuv failure. */
int grpccli_run(const struct grpccli_opts *o, struct ring *r,
    struct grpccli_stats *st);

#endif

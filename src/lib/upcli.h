/* upcli: gRPC server-streaming subscriptions to upstream servers, as a
 * traffic controller or reverse log proxy holds them on its dopplers.
 *
 * One struct upcli per process holds one HTTP/2 connection per upstream
 * address, in clear text (h2c with prior knowledge) or TLS. Each address
 * is HOST:PORT or [V6ADDR]:PORT; a name is resolved with getaddrinfo and
 * every address it resolves to gets a connection of its own (resolved
 * again before each reconnect, so servers behind one name come and go
 * as DNS says). A subscription opens one call, `path` with one request
 * message, on every connection; the calls are streams multiplexed on the
 * shared connections. Every response message, reassembled whole across
 * DATA frames, goes to the subscription's callback.
 *
 * Nothing waits for anyone: flow-control windows are large and data is
 * taken as it comes, so a caller that cannot keep up must queue or drop
 * on its side. An upstream that is down never holds up the others.
 *
 * A connection that fails (refused, reset, TLS, protocol error, garbage,
 * no answer to a keepalive PING, GOAWAY) is logged and retried with
 * doubling backoff; its streams wait and are all reopened once it is
 * back. A stream that ends on a live connection (any grpc-status, a
 * reset, a message over max_message, a compressed message) is logged and
 * reopened after a backoff of its own, reset once a stream lives a
 * second. Log lines are event=upstream_* with addr=.
 *
 * Single-threaded: every function runs on the loop's thread. The caller
 * must ignore SIGPIPE (sig_init does). */
#ifndef LGR_UPCLI_H
#define LGR_UPCLI_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <uv.h>

/* Defaults, used for every option left 0. */
#define UPCLI_BACKOFF_MIN_MS	100
#define UPCLI_BACKOFF_MAX_MS	10000
#define UPCLI_MAX_MESSAGE	(10u * 1024 * 1024)	/* SPEC §2 */
#define UPCLI_KEEPALIVE_MS	15000
#define UPCLI_CONNECT_MS	10000

#define UPCLI_MAX_TARGETS	64	/* addresses in addrs */
#define UPCLI_MAX_RESOLVED	16	/* connections one name may get */

struct upcli_opts {
	const char *const *addrs;	/* HOST:PORT each; borrowed */
	size_t naddrs;
	SSL_CTX *ssl;		/* NULL: h2c; else TLS (tls_client_ctx, ALPN
				 * h2); borrowed until upcli_close */
	/* TLS: SNI and the name the server's certificate must carry, e.g.
	 * "doppler"; NULL: each address's HOST. Borrowed. */
	const char *server_name;
	unsigned backoff_min_ms;	/* first reconnect/reopen delay */
	unsigned backoff_max_ms;	/* doubling up to this */
	size_t max_message;	/* a bigger response message ends its stream */
	unsigned keepalive_ms;	/* PING a quiet connection this often; no
				 * answer by the next one closes it */
	unsigned connect_ms;	/* TCP, TLS and the server's SETTINGS, in all */
	/* Bytes all streams together may hold in messages not yet whole;
	 * a stream that would go past it is reset (0: 4 * max_message, at
	 * least 64 MiB). Bounds memory however many streams are open. */
	size_t max_buffered;
};

struct upcli;
struct upsub;

/* One whole response message, without its 5-byte gRPC prefix; the bytes
 * are valid during the call only. */
typedef void (*upsub_msg_cb)(void *arg, const uint8_t *msg, size_t len);

/* The subscription's stream on connection addr_index (the index in
 * opts.addrs; a name resolving to several addresses has a stream per
 * address under one index) opened (up = 1, the server answered with
 * its headers or a message) or is down (up = 0): it ended, failed, or
 * its connection did or could not come up; why says how. Transitions
 * only: up = 0 comes once per run of failures, the first time when the
 * stream never came up. */
typedef void (*upsub_state_cb)(void *arg, size_t addr_index, int up,
    const char *why);

/* Check o without resolving anything: every address is HOST:PORT, the
 * limits are in range. 0, or -1 with a one-line reason in err. */
int upcli_check(const struct upcli_opts *o, char *err, size_t errlen);

/* Start connecting to every address in o on loop. o and its strings are
 * borrowed until upcli_close (o itself is copied). 0 and *out, or -1
 * with errno (EINVAL: bad options, reason in err; ENOMEM) and a reason
 * in err. */
int upcli_new(uv_loop_t *loop, const struct upcli_opts *o,
    struct upcli **out, char *err, size_t errlen);

/* Open path (e.g. "/loggregator.v2.Egress/BatchedReceiver") with the
 * request message req (len bytes, copied; no gRPC prefix) on every
 * upstream, now or as each connection comes up, and reopen each stream
 * whenever it ends, for as long as the subscription lives. on_msg gets
 * every message of every stream, in order within a stream; on_state may
 * be NULL. Callbacks run from the loop, never from inside this call.
 * NULL with errno ENOMEM, or EINVAL after upcli_close. */
struct upsub *upcli_subscribe(struct upcli *c, const char *path,
    const uint8_t *req, size_t len, upsub_msg_cb on_msg,
    upsub_state_cb on_state, void *arg);

/* Cancel the streams on every upstream (RST_STREAM CANCEL). No callback
 * of s comes after this returns, and s is freed (at once, or when the
 * loop callback it was called from returns). May be called from inside
 * s's own callbacks. */
void upsub_cancel(struct upsub *s);

/* Counts since upcli_new. */
struct upcli_stats {
	uint64_t messages;	/* response messages delivered */
	uint64_t bytes;		/* their bytes, prefixes aside */
	uint64_t connects;	/* connections that came up */
	uint64_t disconnects;	/* ... and went down again */
	uint64_t connect_failures;	/* attempts that never came up */
	uint64_t stream_failures;	/* streams ended on a live connection */
	uint64_t streams_up;	/* streams open now, answered by servers */
	uint64_t conns_up;	/* connections up now */
};

/* Valid until upcli_close; copy what is wanted before. */
const struct upcli_stats *upcli_stats(struct upcli *c);

/* Cancel every subscription (no callback comes after this returns; its
 * struct upsub pointers are dead), send GOAWAY where it can go at once,
 * and close every connection. c itself is freed when the loop has run
 * the close callbacks: nothing may use it after this call. May be called
 * from inside a callback. */
void upcli_close(struct upcli *c);

#endif

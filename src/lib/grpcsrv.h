/* grpcsrv: a gRPC server for client-streaming, unary and server-streaming
 * methods, on
 * HTTP/2 (nghttp2) over TCP (libuv), in clear text (h2c with prior
 * knowledge) or TLS (OpenSSL, ALPN h2, mutual authentication when the
 * context asks for it).
 *
 * The server reassembles each request message and hands it whole to the
 * method's on_message; when the client half-closes, the call ends with
 * status OK and one empty response message (every lgr ingress method
 * answers an empty message). A handler that returns a non-zero gRPC
 * status ends that call alone with a trailers-only response; the
 * connection and every other call go on. Limits: message size, streams
 * per connection, connections, idle time, and the bytes all calls may
 * hold in partial messages at once.
 *
 * A server-streaming method gets its one request message in on_open with
 * a call handle; the handler answers with grpc_call_send as it pleases,
 * watching grpc_call_pending (the call's own buffer, which only the
 * handler fills) and on_writable (called when the buffer has drained
 * below GRPC_CALL_LOW_WATER), and ends the call with grpc_call_finish.
 * on_close tells it the call is gone (client cancel, connection lost, or
 * after its finish went out); the handle is invalid after that. A slow
 * client's HTTP/2 window or a full socket stops the buffer draining; the
 * handler decides what to drop. */
#ifndef LGR_GRPCSRV_H
#define LGR_GRPCSRV_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <uv.h>

enum grpc_status {
	GRPC_OK = 0,
	GRPC_UNKNOWN = 2,
	GRPC_INVALID_ARGUMENT = 3,
	GRPC_RESOURCE_EXHAUSTED = 8,
	GRPC_UNIMPLEMENTED = 12,
	GRPC_INTERNAL = 13,
	GRPC_UNAVAILABLE = 14,
};

struct grpc_call;

#define GRPC_CALL_LOW_WATER (64 * 1024)

struct grpc_method {
	const char *path;	/* "/loggregator.v2.Ingress/Sender" */
	int unary;		/* exactly one request message */
	int server_stream;	/* one request, a stream of responses: uses
				 * on_open, on_writable, on_close */
	int (*on_open)(void *ctx, struct grpc_call *call, const uint8_t *msg,
	    size_t len, const char **why);
	void (*on_writable)(void *ctx, struct grpc_call *call, void *arg);
	void (*on_close)(void *ctx, struct grpc_call *call, void *arg);
	/* One whole request message, valid only during the call. Returns
	 * GRPC_OK, or a status to end the call with (msg: its reason). */
	int (*on_message)(void *ctx, const uint8_t *msg, size_t len,
	    const char **why);
};

struct grpc_limits {
	size_t max_message;	/* bytes in one message */
	unsigned max_streams;	/* concurrent calls per connection */
	unsigned max_conns;	/* connections at once */
	unsigned idle_ms;	/* close a connection quiet this long */
	size_t buffer_budget;	/* bytes of partial messages, all calls */
};

/* What the server counts, for self-metrics. */
struct grpc_stats {
	uint64_t conns;		/* accepted */
	uint64_t conns_refused;	/* over max_conns */
	uint64_t tls_failed;	/* handshakes that failed */
	uint64_t calls;
	uint64_t calls_failed;	/* ended with a non-OK status */
	uint64_t messages;
};

struct grpc_server;

/* Listen on addr. methods (n of them) and ctx are borrowed for the life
 * of the server; ssl (may be NULL) is referenced. 0, or -1 with a reason
 * in err. */
int grpc_server_listen(uv_loop_t *loop, const struct sockaddr *addr,
    const struct grpc_method *methods, size_t n,
    const struct grpc_limits *lim, SSL_CTX *ssl, void *ctx,
    struct grpc_server **out, char *err, size_t errlen);

/* Server-streaming calls. arg is the handler's own, given back in
 * on_writable and on_close. */
void grpc_call_set_arg(struct grpc_call *call, void *arg);
/* Queue one response message (the 5-byte prefix is added). 0, or -1 on
 * ENOMEM or when the call has finished. */
int grpc_call_send(struct grpc_call *call, const void *msg, size_t len);
/* Bytes queued and not yet taken by HTTP/2. */
size_t grpc_call_pending(const struct grpc_call *call);
/* End the call once what is queued has gone: status (GRPC_OK or an
 * error) in the trailers. */
void grpc_call_finish(struct grpc_call *call, int status, const char *why);
/* The peer's address, for log lines. */
const char *grpc_call_peer(const struct grpc_call *call);

/* Use a new TLS context for connections accepted from now on. */
void grpc_server_set_ssl(struct grpc_server *s, SSL_CTX *ssl);
/* The bound address (port 0 resolved), for log lines. */
int grpc_server_addr(struct grpc_server *s, struct sockaddr_storage *ss);
const struct grpc_stats *grpc_server_stats(struct grpc_server *s);
/* Stop taking connections and calls, but let server-streaming calls go
 * on until their handlers finish them: the listener closes, every
 * connection gets a GOAWAY, other calls end UNAVAILABLE, and a connection
 * closes once no streaming call is left on it. grpc_server_close later
 * ends whatever is left. */
void grpc_server_drain(struct grpc_server *s);
/* Stop listening and close every connection; the memory goes when the
 * loop has run the close callbacks. */
void grpc_server_close(struct grpc_server *s);

#endif

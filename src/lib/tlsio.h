/* tlsio: TLS over two memory BIOs, for a socket an event loop owns.
 *
 * The caller moves every byte: ciphertext read from the socket goes in
 * with tlsio_feed, plaintext comes out with tlsio_read; plaintext to
 * send goes in with tlsio_write, and the ciphertext it makes (and what
 * the handshake makes) waits in tlsio_pending bytes for tlsio_take to
 * hand to the socket. tlsio never touches a file descriptor, so it fits
 * libuv's streams, and one read buffer serves every session.
 *
 * Every call that may make ciphertext (tlsio_client, tlsio_feed,
 * tlsio_read, tlsio_write, tlsio_shutdown) leaves it pending: the
 * caller drains tlsio_pending after each. */
#ifndef LGR_TLSIO_H
#define LGR_TLSIO_H

#include <stddef.h>
#include <sys/types.h>
#include <openssl/ssl.h>

struct tlsio {
	SSL *ssl;	/* owns the two BIOs; NULL once released */
	BIO *rbio;	/* ciphertext in, from the socket */
	BIO *wbio;	/* ciphertext out, for the socket */
};

/* Start a client session on ctx that sends name as SNI and accepts only
 * a certificate made out to name (tls_client_set_name). The ClientHello
 * is then pending. 0, or -1 with a one-line reason in err (t is then
 * released). */
int tlsio_client(struct tlsio *t, SSL_CTX *ctx, const char *name,
    char *err, size_t errlen);

/* Free the session; t may be zeroed or released already. */
void tlsio_release(struct tlsio *t);

/* 1 once the handshake is done. */
int tlsio_ready(const struct tlsio *t);

/* 1 if the handshake chose ALPN h2 or no protocol at all, 0 if the peer
 * chose another (call once tlsio_ready). */
int tlsio_alpn_h2(const struct tlsio *t);

/* Take n bytes of ciphertext from the socket and move the handshake on.
 * 1 when this call finished the handshake, 0 when it is done already or
 * needs more bytes, -1 with a reason in err (a certificate refused, the
 * peer's alert, a memory failure). */
int tlsio_feed(struct tlsio *t, const void *p, size_t n, char *err,
    size_t errlen);

#define TLSIO_CLOSED (-2)

/* Plaintext received, up to len bytes into buf: the count (> 0), 0 when
 * no more for now, TLSIO_CLOSED when the peer ended TLS (close_notify),
 * -1 with a reason in err. */
ssize_t tlsio_read(struct tlsio *t, void *buf, size_t len, char *err,
    size_t errlen);

/* Encrypt n bytes (after the handshake). 0, or -1. */
int tlsio_write(struct tlsio *t, const void *p, size_t n);

/* Ciphertext waiting for the socket, in bytes. */
size_t tlsio_pending(const struct tlsio *t);

/* Move up to len bytes of it into buf. Returns how many. */
size_t tlsio_take(struct tlsio *t, void *buf, size_t len);

/* Queue a close_notify (best effort, once the handshake is done). */
void tlsio_shutdown(struct tlsio *t);

#endif

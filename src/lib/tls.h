/* tls: OpenSSL contexts as Loggregator's components use them: TLS 1.2 or
 * 1.3, on TLS 1.2 only ECDHE-RSA with AES-GCM, ALPN h2 for gRPC, and with
 * a CA file, mutual authentication: a peer must present a certificate
 * signed by that CA. */
#ifndef LGR_TLS_H
#define LGR_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* A server context from PEM files. With ca, clients must present a
 * certificate that CA signed. Offers ALPN h2 (a client that offers no
 * ALPN is still served). NULL with a one-line reason in err. The caller
 * frees it with SSL_CTX_free. */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, const char *ca,
    char *err, size_t errlen);

/* The last OpenSSL error queue entry as text, for log lines; the queue is
 * cleared. */
const char *tls_error(char *buf, size_t len);

#endif

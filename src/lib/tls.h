/* tls: OpenSSL contexts as Loggregator's components use them: TLS 1.2 or
 * 1.3, on TLS 1.2 only ECDHE-RSA with AES-GCM, ALPN h2 for gRPC, and with
 * a CA file, mutual authentication: a peer must present a certificate
 * signed by that CA. Servers and clients alike. */
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

/* A client context from PEM files: the same protocol versions and TLS 1.2
 * ciphers, ALPN h2, and the server's certificate checked against ca (the
 * system's trusted CAs when ca is NULL). With cert, that certificate and
 * key (key NULL: the key is in cert's file too) are presented when a
 * server asks, as Loggregator's servers all do. The server's name is
 * checked per connection (tls_client_set_name). NULL with a one-line
 * reason in err. The caller frees it with SSL_CTX_free. */
SSL_CTX *tls_client_ctx(const char *cert, const char *key, const char *ca,
    char *err, size_t errlen);

/* Before a client handshake: send name as SNI (unless it is an IP
 * address, which SNI may not carry) and accept only a server certificate
 * made out to name (a DNS name, or an IP address in its subjectAltName).
 * 0, or -1 when OpenSSL refused the name. */
int tls_client_set_name(SSL *ssl, const char *name);

/* Why a handshake failed, for log lines: the certificate check's verdict
 * when that failed, else the last OpenSSL error (the queue is cleared). */
const char *tls_handshake_error(SSL *ssl, char *buf, size_t len);

/* The last OpenSSL error queue entry as text, for log lines; the queue is
 * cleared. */
const char *tls_error(char *buf, size_t len);

#endif

/* tlsio: TLS over memory BIOs; the caller carries the bytes. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "tls.h"
#include "tlsio.h"

#define WHY_LEN 256

int
tlsio_client(struct tlsio *t, SSL_CTX *ctx, const char *name, char *err,
    size_t errlen)
{
	char why[WHY_LEN];
	int rc;

	memset(t, 0, sizeof(*t));
	t->ssl = SSL_new(ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
		snprintf(err, errlen, "tls setup: %s",
		    tls_error(why, sizeof(why)));
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		memset(t, 0, sizeof(*t));
		return -1;
	}
	/* An empty memory BIO says "retry", not end of file. */
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	SSL_set_connect_state(t->ssl);
	if (tls_client_set_name(t->ssl, name) == -1) {
		snprintf(err, errlen, "tls: bad server name '%s'", name);
		tlsio_release(t);
		return -1;
	}
	rc = SSL_do_handshake(t->ssl);	/* makes the ClientHello */
	if (rc != 1 && SSL_get_error(t->ssl, rc) != SSL_ERROR_WANT_READ) {
		snprintf(err, errlen, "tls: %s", tls_error(why, sizeof(why)));
		tlsio_release(t);
		return -1;
	}
	return 0;
}

void
tlsio_release(struct tlsio *t)
{
	if (t->ssl != NULL)
		SSL_free(t->ssl);	/* and the BIOs it owns */
	memset(t, 0, sizeof(*t));
}

int
tlsio_ready(const struct tlsio *t)
{
	return t->ssl != NULL && SSL_is_init_finished(t->ssl);
}

int
tlsio_alpn_h2(const struct tlsio *t)
{
	const unsigned char *p;
	unsigned n;

	SSL_get0_alpn_selected(t->ssl, &p, &n);
	return n == 0 || (n == 2 && memcmp(p, "h2", 2) == 0);
}

int
tlsio_feed(struct tlsio *t, const void *p, size_t n, char *err,
    size_t errlen)
{
	char why[WHY_LEN];
	int rc;

	if (n > INT_MAX || BIO_write(t->rbio, p, (int)n) != (int)n) {
		snprintf(err, errlen, "tls: buffer failed");
		return -1;
	}
	if (SSL_is_init_finished(t->ssl))
		return 0;
	rc = SSL_do_handshake(t->ssl);
	if (rc == 1)
		return 1;
	if (SSL_get_error(t->ssl, rc) == SSL_ERROR_WANT_READ)
		return 0;
	snprintf(err, errlen, "tls handshake: %s",
	    tls_handshake_error(t->ssl, why, sizeof(why)));
	return -1;
}

ssize_t
tlsio_read(struct tlsio *t, void *buf, size_t len, char *err, size_t errlen)
{
	char why[WHY_LEN];
	int rc, e;

	if (!SSL_is_init_finished(t->ssl))
		return 0;
	if (len > INT_MAX)
		len = INT_MAX;
	rc = SSL_read(t->ssl, buf, (int)len);
	if (rc > 0)
		return rc;
	e = SSL_get_error(t->ssl, rc);
	if (e == SSL_ERROR_WANT_READ)
		return 0;
	if (e == SSL_ERROR_ZERO_RETURN)
		return TLSIO_CLOSED;
	snprintf(err, errlen, "tls: %s", tls_error(why, sizeof(why)));
	return -1;
}

int
tlsio_write(struct tlsio *t, const void *p, size_t n)
{
	/* Memory BIOs take everything: SSL_write is all or nothing here. */
	if (n == 0)
		return 0;
	if (n > INT_MAX || SSL_write(t->ssl, p, (int)n) != (int)n) {
		ERR_clear_error();
		return -1;
	}
	return 0;
}

size_t
tlsio_pending(const struct tlsio *t)
{
	return t->wbio != NULL ? BIO_ctrl_pending(t->wbio) : 0;
}

size_t
tlsio_take(struct tlsio *t, void *buf, size_t len)
{
	int rc;

	if (len > INT_MAX)
		len = INT_MAX;
	rc = BIO_read(t->wbio, buf, (int)len);
	return rc > 0 ? (size_t)rc : 0;
}

void
tlsio_shutdown(struct tlsio *t)
{
	if (t->ssl != NULL && SSL_is_init_finished(t->ssl)) {
		(void)SSL_shutdown(t->ssl);
		ERR_clear_error();
	}
}

/* fuzz_rfc5424: arbitrary bytes decoded as a v2 envelope and formatted as
 * drain messages. The first byte picks the options. Every message must
 * start "<PRI>1 ", its header (up to the SD) must hold no control bytes,
 * each frame's length prefix must equal its byte count, the framed and
 * unframed outputs must hold the same messages, and a refusal or a full
 * buffer must leave the output as it was. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "buf.h"
#include "envelope.h"
#include "rfc5424.h"

/* "<PRI>1 " then TIMESTAMP HOSTNAME APP-NAME PROCID "-": five spaces, no
 * byte outside 33..126 in between. Returns 1 when m satisfies that. */
static int
header_ok(const char *m, size_t n)
{
	size_t i = 1, spaces = 0;

	if (n < 2 || m[0] != '<')
		return 0;
	if (m[i] == '-')
		i++;
	if (i >= n || m[i] < '0' || m[i] > '9')
		return 0;
	while (i < n && m[i] >= '0' && m[i] <= '9')
		i++;
	if (n - i < 3 || memcmp(m + i, ">1 ", 3) != 0)
		return 0;
	for (i += 3; i < n && spaces < 5; i++) {
		unsigned char c = (unsigned char)m[i];

		if (c == ' ')
			spaces++;
		else if (c < 33 || c > 126)
			return 0;
	}
	/* MSGID is "-", and the SD follows. */
	return spaces == 5 && i >= 2 && m[i - 2] == '-' && i < n &&
	    (m[i] == '-' || m[i] == '[');
}

static void
check(const Loggregator__V2__Envelope *e, struct rfc5424_opts *o)
{
	struct buf framed, plain, small;
	size_t off = 0, mlen, total = 0;
	const char *m;
	int n, np, count = 0, rc;

	if (buf_init(&framed, 64, 1 << 22) == -1 ||
	    buf_init(&plain, 64, 1 << 22) == -1 ||
	    buf_init(&small, 16, 96) == -1)
		abort();
	o->framed = 1;
	n = rfc5424_format(e, o, &framed, NULL);
	if (n == -1) {
		if ((errno != EINVAL && errno != EMSGSIZE) || framed.len != 0)
			abort();
	} else {
		while ((rc = rfc5424_unframe(framed.data, framed.len, &off, &m,
		    &mlen)) == 1) {
			if (!header_ok(m, mlen) || m[mlen - 1] != '\n')
				abort();
			total += mlen;
			count++;
		}
		if (rc == -1 || count != n || off != framed.len)
			abort();
		o->framed = 0;
		np = rfc5424_format(e, o, &plain, NULL);
		if (np != n || plain.len != total)
			abort();
		if (n == 1 && memcmp(plain.data, framed.data + framed.len -
		    total, total) != 0)
			abort();
	}
	/* A short buffer: success or an untouched buffer. */
	o->framed = 1;
	if (rfc5424_format(e, o, &small, NULL) == -1 && small.len != 0)
		abort();
	buf_release(&framed);
	buf_release(&plain);
	buf_release(&small);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *hosts[] = { "", "h", "bad host", "org.space.app" };
	struct rfc5424_opts o = { 0 };
	Loggregator__V2__Envelope *e;
	struct arena a;

	if (size < 1)
		return 0;
	o.hostname = hosts[data[0] & 3];
	o.omit_metadata = (data[0] >> 2) & 1;
	if (arena_init(&a, 4096, 16 << 20) == -1)
		abort();
	e = envelope_unpack(&a, data + 1, size - 1);
	if (e != NULL) {
		check(e, &o);
		(void)rfc5424_drain_carries(
		    rfc5424_drain_type_parse((data[0] & 8) ? "all" : NULL), e);
	}
	arena_release(&a);
	return 0;
}

/* fuzz_multipart: a --cache server's answer into lgr-ws's multipart
 * parser, as recentlogs and containermetrics read it (SPEC.md §6,
 * "Removed endpoints"). The input's first line is the Content-Type
 * header line (taken as the bare value when it is not one), the rest the
 * body. Checked:
 *   - the Content-Type value holds no CR or LF; a boundary is 1 to 70
 *     bytes of it, without '"', ';', space or tab;
 *   - a body that splits gives parts inside the body, in order, apart,
 *     each ending where the first "\r\n--boundary" after its start is,
 *     and the body holds a closing "--boundary--";
 *   - the parts, framed again as lgr-ws frames its answer, split to the
 *     same parts, and that framing framed again is the same bytes;
 *   - a body that does not split leaves the parts already held as they
 *     were. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/lgr-ws/httpparse.c"

static void
reframe(const char *boundary, const struct hp_part *parts, size_t n)
{
	struct hp_part *again = NULL;
	size_t n2 = 0, cap2 = 0, i;
	struct buf b, c;

	if (buf_init(&b, 256, 1 << 26) == -1 || buf_init(&c, 256, 1 << 26) ==
	    -1)
		abort();
	if (hp_mp_write(&b, boundary, parts, n) == -1)
		abort();
	if (hp_mp_split(b.data, b.len, boundary, &again, &n2, &cap2) != 0 ||
	    n2 != n)
		abort();
	for (i = 0; i < n; i++)
		if (again[i].len != parts[i].len || (parts[i].len > 0 &&
		    memcmp(again[i].p, parts[i].p, parts[i].len) != 0))
			abort();
	if (hp_mp_write(&c, boundary, again, n2) == -1 || c.len != b.len ||
	    memcmp(c.data, b.data, b.len) != 0)
		abort();
	free(again);
	buf_release(&b);
	buf_release(&c);
}

static void
check_parts(const char *body, size_t len, const char *boundary,
    const struct hp_part *parts, size_t n)
{
	const unsigned char *start = (const unsigned char *)body;
	const unsigned char *end = start + len, *prev = start, *at;
	char mid[96], close[96];
	size_t ml, i;

	ml = (size_t)snprintf(mid, sizeof(mid), "\r\n--%s", boundary);
	snprintf(close, sizeof(close), "--%s--", boundary);
	if (memmem(body, len, close, strlen(close)) == NULL)
		abort();
	for (i = 0; i < n; i++) {
		if (parts[i].p < prev || parts[i].p > end ||
		    parts[i].len > (size_t)(end - parts[i].p))
			abort();
		prev = parts[i].p + parts[i].len;
		at = memmem(parts[i].p, (size_t)(end - parts[i].p), mid, ml);
		if (at != prev)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', size), *body;
	char ctype[256], boundary[80];
	struct hp_part *parts;
	size_t n, cap, len, hl;
	int rc;

	hl = nl ? (size_t)(nl - (const char *)data) + 1 : size;
	if (!hp_header_ctype((const char *)data, hl, ctype, sizeof(ctype))) {
		snprintf(ctype, sizeof(ctype), "%.*s", (int)hl, data);
		ctype[strcspn(ctype, "\r\n")] = '\0';
	}
	if (strchr(ctype, '\r') != NULL || strchr(ctype, '\n') != NULL)
		abort();
	if (hp_mp_boundary(ctype, boundary, sizeof(boundary)) == -1)
		return 0;
	if (strlen(boundary) < 1 || strlen(boundary) > 70 ||
	    strpbrk(boundary, "\"; \t") != NULL ||
	    strstr(ctype, boundary) == NULL)
		abort();
	body = (const char *)data + hl;
	len = size - hl;

	/* One part already held, as from another cache. */
	cap = 1;
	n = 1;
	parts = malloc(sizeof(*parts));
	if (parts == NULL)
		abort();
	memset(parts, 0, sizeof(*parts));
	parts[0].p = (const unsigned char *)ctype;
	parts[0].len = strlen(ctype);
	rc = hp_mp_split(body, len, boundary, &parts, &n, &cap);
	if (rc == -1) {
		if (n != 1 || parts[0].p != (const unsigned char *)ctype)
			abort();
	} else {
		if (rc != 0 || n < 1 || n > cap)
			abort();
		check_parts(body, len, boundary, parts + 1, n - 1);
		reframe(boundary, parts + 1, n - 1);
	}
	free(parts);
	return 0;
}

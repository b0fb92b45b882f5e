/* fuzz_statsd: one datagram into statsd_datagram, twice, on a small table.
 * Every envelope must pack and decode back to the same bytes, and every
 * short line must match as a plain backtracking reading of the pattern. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "envelope.h"
#include "statsd.h"

#define REF_MAX 128	/* the reference is cubic: short lines only */

/*
 * The pattern read as a backtracking matcher reads it, every choice tried
 * in the order Go's leftmost-first semantics prefer:
 *   ([^.]+)\.([^:]+):([+-]?)(\d+(\.\d+)?)\|(ms|g|c)(\|@(\d+(\.\d+)?))?(\|#([\w:,]*))?
 * Nothing after the type can fail, so its first choice is the answer.
 */
static int
ref_digit(const char *p, size_t n, size_t i)
{
	return i < n && p[i] >= '0' && p[i] <= '9';
}

/* Choices for \d+(\.\d+)? at i, best first: ends[] gets each end. Only
 * the longest digit run can have a fraction, so n + n ends at most. */
static size_t
ref_numbers(const char *p, size_t n, size_t i, size_t *ends)
{
	size_t d, f, k = 0, j;

	for (d = i; ref_digit(p, n, d); d++)
		;
	for (j = d; j > i; j--) {
		if (j < n && p[j] == '.' && ref_digit(p, n, j + 1)) {
			for (f = j + 1; ref_digit(p, n, f); f++)
				;
			for (; f > j + 1; f--)
				ends[k++] = f;
		}
		ends[k++] = j;
	}
	return k;
}

static int
ref_tagc(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == ':' || c == ',';
}

static int
ref_tail(const char *p, size_t n, size_t i, struct statsd_line *m)
{
	size_t ends[2 * REF_MAX + 8], ne, k, t, v, r;
	int signed_first, opt;

	signed_first = i < n && (p[i] == '+' || p[i] == '-');
	for (opt = signed_first ? 0 : 1; opt < 2; opt++) {
		v = opt == 0 ? i + 1 : i;
		ne = ref_numbers(p, n, v, ends);
		for (k = 0; k < ne; k++) {
			t = ends[k];
			if (t >= n || p[t] != '|')
				continue;
			t++;
			if (n - t >= 2 && p[t] == 'm' && p[t + 1] == 's') {
				m->type = 'm';
				t += 2;
			} else if (t < n && (p[t] == 'g' || p[t] == 'c'))
				m->type = p[t++];
			else
				continue;
			m->sign = opt == 0 ? p[i] : 0;
			m->value = p + v;
			m->value_len = ends[k] - v;
			m->rate_len = m->tags_len = 0;
			if (n - t >= 3 && p[t] == '|' && p[t + 1] == '@' &&
			    ref_numbers(p, n, t + 2, ends) > 0) {
				r = ends[0];
				m->rate = p + t + 2;
				m->rate_len = r - (t + 2);
				t = r;
			}
			if (n - t >= 2 && p[t] == '|' && p[t + 1] == '#') {
				for (r = t + 2; r < n && ref_tagc(p[r]); r++)
					;
				m->tags = p + t + 2;
				m->tags_len = r - (t + 2);
			}
			return 0;
		}
	}
	return -1;
}

static int
ref_match(const char *p, size_t n, struct statsd_line *m)
{
	size_t s, e1, e2, run1, run2;

	for (s = 0; s < n; s++) {
		for (run1 = s; run1 < n && p[run1] != '.'; run1++)
			;
		for (e1 = run1; e1 > s; e1--) {
			if (e1 >= n || p[e1] != '.')
				continue;
			for (run2 = e1 + 1; run2 < n && p[run2] != ':'; run2++)
				;
			for (e2 = run2; e2 > e1 + 1; e2--) {
				if (e2 >= n || p[e2] != ':')
					continue;
				if (ref_tail(p, n, e2 + 1, m) == 0) {
					m->origin = p + s;
					m->origin_len = e1 - s;
					m->name = p + e1 + 1;
					m->name_len = e2 - (e1 + 1);
					return 0;
				}
			}
		}
	}
	return -1;
}

static void
check_line(const char *p, size_t n)
{
	struct statsd_line a, b;
	int ra, rb;

	if (n > REF_MAX)
		return;
	ra = statsd_match(p, n, &a);
	rb = ref_match(p, n, &b);
	if (ra != rb)
		abort();
	if (ra == -1)
		return;
	if (a.origin != b.origin || a.origin_len != b.origin_len ||
	    a.name != b.name || a.name_len != b.name_len ||
	    a.sign != b.sign || a.type != b.type || a.value != b.value ||
	    a.value_len != b.value_len || a.rate_len != b.rate_len ||
	    (a.rate_len && a.rate != b.rate) || a.tags_len != b.tags_len ||
	    (a.tags_len && a.tags != b.tags))
		abort();
}

struct fuzz_ctx {
	struct arena *scratch;
	size_t n;
};

static int
emit(void *vctx, Loggregator__V2__Envelope *e)
{
	struct fuzz_ctx *ctx = vctx;
	Loggregator__V2__Envelope *back;
	unsigned char *p1, *p2;
	size_t n1, n2, i;
	int origin = 0;

	ctx->n++;
	if (e->message_case != LOGGREGATOR__V2__ENVELOPE__MESSAGE_GAUGE ||
	    e->gauge->n_metrics != 1 || e->source_id[0] == '\0' ||
	    e->gauge->metrics[0]->key[0] == '\0')
		abort();
	for (i = 0; i < e->n_tags; i++) {
		if (i + 1 < e->n_tags &&
		    strcmp(e->tags[i]->key, e->tags[i + 1]->key) >= 0)
			abort();
		if (strcmp(e->tags[i]->key, "origin") == 0)
			origin = 1;
	}
	if (!origin)
		abort();
	arena_reset(ctx->scratch);
	n1 = loggregator__v2__envelope__get_packed_size(e);
	if ((p1 = arena_alloc(ctx->scratch, n1 + 1)) == NULL)
		abort();
	loggregator__v2__envelope__pack(e, p1);
	if ((back = envelope_unpack(ctx->scratch, p1, n1)) == NULL)
		abort();
	n2 = loggregator__v2__envelope__get_packed_size(back);
	if ((p2 = arena_alloc(ctx->scratch, n2 + 1)) == NULL)
		abort();
	loggregator__v2__envelope__pack(back, p2);
	if (n1 != n2 || memcmp(p1, p2, n1) != 0)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct arena a, scratch;
	static int ready;
	struct fuzz_ctx ctx = { &scratch, 0 };
	const char *p = (const char *)data, *nl;
	struct statsd s;
	size_t pos, end, len;
	int round, r;

	if (!ready) {
		if (arena_init(&a, 64 * 1024, 64 << 20) == -1 ||
		    arena_init(&scratch, 64 * 1024, 64 << 20) == -1)
			abort();
		ready = 1;
	}
	for (pos = 0; pos < size; pos = nl ? end + 1 : size) {
		nl = memchr(p + pos, '\n', size - pos);
		end = nl ? (size_t)(nl - p) : size;
		len = end - pos;
		if (len > 0 && p[end - 1] == '\r')
			len--;
		check_line(p + pos, len);
	}
	/* A small table, so that table_full happens too. */
	if (statsd_init(&s, 4, 64) == -1)
		abort();
	for (round = 0; round < 2; round++) {
		arena_reset(&a);
		r = statsd_datagram(&s, p, size, 1, &a, emit, &ctx);
		if (r == -1)
			abort();
	}
	if (s.emitted != ctx.n || s.lines != s.emitted + s.bad_lines +
	    s.bad_tags + s.bad_text + s.table_full)
		abort();
	statsd_release(&s);
	return 0;
}

/* fmtnum: Go's shortest float formatting, built on printf's correctly
 * rounded %.*e and on strtod to test that the digits read back. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmtnum.h"

/* A positive decimal 0.d[0]d[1]...d[nd-1] * 10^dp. No leading zero in d;
 * nd == 0 means zero. */
struct fmt_digits {
	char d[24];
	int nd;
	int dp;
};

static void fmt_digits_from_e(struct fmt_digits *, const char *);
static double fmt_digits_value(const struct fmt_digits *);
static void fmt_digits_step(struct fmt_digits *, int);
static void fmt_shortest(struct fmt_digits *, double);
static size_t fmt_put_e(char *, int, const struct fmt_digits *, int);
static size_t fmt_put_f(char *, int, const struct fmt_digits *);

/* Parse printf's "d.ddde+xx". */
static void
fmt_digits_from_e(struct fmt_digits *dg, const char *s)
{
	dg->nd = 0;
	for (; *s != 'e' && *s != '\0'; s++)
		if (*s >= '0' && *s <= '9' && dg->nd < (int)sizeof(dg->d))
			dg->d[dg->nd++] = *s;
	dg->dp = (*s == 'e' ? (int)strtol(s + 1, NULL, 10) : 0) + 1;
}

static double
fmt_digits_value(const struct fmt_digits *dg)
{
	char s[48];

	snprintf(s, sizeof(s), "%.*se%d", dg->nd, dg->d, dg->dp - dg->nd);
	return strtod(s, NULL);
}

/* Move to the next (dir > 0) or previous nd-digit decimal. */
static void
fmt_digits_step(struct fmt_digits *dg, int dir)
{
	int i = dg->nd - 1;

	if (dir > 0) {
		for (; i >= 0 && dg->d[i] == '9'; i--)
			dg->d[i] = '0';
		if (i >= 0) {
			dg->d[i]++;
			return;
		}
		/* 99..9 became 100..0, one place up. */
		dg->d[0] = '1';
		dg->dp++;
		return;
	}
	for (; i > 0 && dg->d[i] == '0'; i--)
		dg->d[i] = '9';
	dg->d[i]--;
	if (dg->d[0] != '0')
		return;
	/* 10..0 became 09..9: below a power of ten the grid is finer, so the
	 * neighbour is nd nines one place down. */
	memset(dg->d, '9', (size_t)dg->nd);
	dg->dp--;
}

/*
 * The fewest digits that strtod maps back to v (v finite, > 0). For each
 * length, %.*e gives the closest decimal of that length; if it misses,
 * only its neighbour on the far side of v can still hit, because the
 * interval that reads back to v is not always centred on v (at powers of
 * two it is narrower below). Ties and interval ends follow the same
 * round-half-even rule as Go's strconv, so the digits agree with Go's.
 */
static void
fmt_shortest(struct fmt_digits *dg, double v)
{
	struct fmt_digits alt;
	char s[48];
	double r;
	int p;

	for (p = 1; p <= 17; p++) {
		snprintf(s, sizeof(s), "%.*e", p - 1, v);
		fmt_digits_from_e(dg, s);
		r = fmt_digits_value(dg);
		if (r == v)
			break;
		alt = *dg;
		fmt_digits_step(&alt, r < v ? 1 : -1);
		if (fmt_digits_value(&alt) == v) {
			*dg = alt;
			break;
		}
	}
	while (dg->nd > 1 && dg->d[dg->nd - 1] == '0')
		dg->nd--;
}

/* Go's %e with precision nd-1; mindig is the least exponent digits. */
static size_t
fmt_put_e(char *o, int neg, const struct fmt_digits *dg, int mindig)
{
	size_t n = 0;
	int exp, i;

	if (neg)
		o[n++] = '-';
	o[n++] = dg->nd > 0 ? dg->d[0] : '0';
	if (dg->nd > 1) {
		o[n++] = '.';
		for (i = 1; i < dg->nd; i++)
			o[n++] = dg->d[i];
	}
	exp = dg->nd > 0 ? dg->dp - 1 : 0;
	o[n++] = 'e';
	o[n++] = exp < 0 ? '-' : '+';
	n += (size_t)sprintf(o + n, "%0*d", mindig, exp < 0 ? -exp : exp);
	return n;
}

/* Go's %f with precision max(nd-dp, 0). */
static size_t
fmt_put_f(char *o, int neg, const struct fmt_digits *dg)
{
	size_t n = 0;
	int i, j, prec;

	if (neg)
		o[n++] = '-';
	if (dg->dp > 0) {
		for (i = 0; i < dg->dp; i++)
			o[n++] = i < dg->nd ? dg->d[i] : '0';
	} else
		o[n++] = '0';
	prec = dg->nd - dg->dp;
	if (prec > 0) {
		o[n++] = '.';
		for (i = 0; i < prec; i++) {
			j = dg->dp + i;
			o[n++] = j >= 0 && j < dg->nd ? dg->d[j] : '0';
		}
	}
	return n;
}

int
fmt_double(char *dst, size_t n, double v, enum fmt_style style)
{
	char o[FMT_DOUBLE_MAX];
	struct fmt_digits dg;
	const char *lit = NULL;
	size_t len;
	double a;
	int neg, exp;

	if (style != FMT_JSON && style != FMT_GO_G && style != FMT_GO_F) {
		errno = EINVAL;
		return -1;
	}
	neg = signbit(v) != 0;
	if (isnan(v))
		lit = style == FMT_JSON ? "\"NaN\"" : "NaN";
	else if (isinf(v) && style == FMT_JSON)
		lit = neg ? "\"-Infinity\"" : "\"Infinity\"";
	else if (isinf(v))
		lit = neg ? "-Inf" : "+Inf";
	if (lit != NULL) {
		len = strlen(lit);
		memcpy(o, lit, len);
		goto out;
	}

	a = fabs(v);
	dg.nd = dg.dp = 0;
	if (a != 0)
		fmt_shortest(&dg, a);
	exp = dg.dp - 1;
	switch (style) {
	case FMT_JSON:
		/* encoding/json's switch points; protojson then drops the
		 * exponent's leading zero, which only a negative one has. */
		if (a != 0 && (a < 1e-6 || a >= 1e21))
			len = fmt_put_e(o, neg, &dg, 1);
		else
			len = fmt_put_f(o, neg, &dg);
		break;
	case FMT_GO_G:
		/* With precision -1, Go decides as if the precision were 6. */
		if (a != 0 && (exp < -4 || exp >= 6))
			len = fmt_put_e(o, neg, &dg, 2);
		else
			len = fmt_put_f(o, neg, &dg);
		break;
	default:
		len = fmt_put_f(o, neg, &dg);
		break;
	}
out:
	if (len >= n) {
		if (n > 0)
			dst[0] = '\0';
		errno = ENOSPC;
		return -1;
	}
	memcpy(dst, o, len);
	dst[len] = '\0';
	return (int)len;
}

/* test_fmtnum: fmt_double against strings Go's strconv and protojson write. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fmtnum.h"
#include "tap.h"

struct fmt_case {
	const char *name;
	double v;
	const char *json;	/* protojson */
	const char *g;		/* FormatFloat(v, 'g', -1, 64) */
	const char *f;		/* FormatFloat(v, 'f', -1, 64), or NULL */
};

static const struct fmt_case cases[] = {
	{ "0", 0.0, "0", "0", "0" },
	{ "-0", -0.0, "-0", "-0", "-0" },
	{ "0.5", 0.5, "0.5", "0.5", "0.5" },
	{ "1e-7", 1e-7, "1e-7", "1e-07", "0.0000001" },
	{ "1e-6", 1e-6, "0.000001", "1e-06", "0.000001" },
	{ "1e-5", 1e-5, "0.00001", "1e-05", "0.00001" },
	{ "1e-4", 1e-4, "0.0001", "0.0001", "0.0001" },
	{ "0.00012", 0.00012, "0.00012", "0.00012", "0.00012" },
	{ "1e21", 1e21, "1e+21", "1e+21", "1000000000000000000000" },
	{ "1e20", 1e20, "100000000000000000000", "1e+20",
	    "100000000000000000000" },
	{ "123456789.125", 123456789.125, "123456789.125",
	    "1.23456789125e+08", "123456789.125" },
	{ "5e-324", 5e-324, "5e-324", "5e-324", NULL },
	{ "DBL_MAX", DBL_MAX, "1.7976931348623157e+308",
	    "1.7976931348623157e+308", NULL },
	{ "-DBL_MAX", -DBL_MAX, "-1.7976931348623157e+308",
	    "-1.7976931348623157e+308", NULL },
	{ "DBL_MIN", DBL_MIN, "2.2250738585072014e-308",
	    "2.2250738585072014e-308", NULL },
	{ "NaN", NAN, "\"NaN\"", "NaN", "NaN" },
	{ "+Inf", INFINITY, "\"Infinity\"", "+Inf", "+Inf" },
	{ "-Inf", -INFINITY, "\"-Infinity\"", "-Inf", "-Inf" },
	{ "0.1", 0.1, "0.1", "0.1", "0.1" },
	{ "0.3", 0.1 + 0.2, "0.30000000000000004", "0.30000000000000004",
	    "0.30000000000000004" },
	{ "100", 100.0, "100", "100", "100" },
	{ "123456", 123456.0, "123456", "123456", "123456" },
	{ "1e6", 1e6, "1000000", "1e+06", "1000000" },
	{ "1234567", 1234567.0, "1234567", "1.234567e+06", "1234567" },
	{ "268435456", 268435456.0, "268435456", "2.68435456e+08",
	    "268435456" },
	{ "42", 42.0, "42", "42", "42" },
	{ "-1.25", -1.25, "-1.25", "-1.25", "-1.25" },
	{ "1.5", 1.5, "1.5", "1.5", "1.5" },
	{ "1.5e-10", 1.5e-10, "1.5e-10", "1.5e-10", "0.00000000015" },
	{ "-1.2345e-7", -1.2345e-7, "-1.2345e-7", "-1.2345e-07",
	    "-0.00000012345" },
	{ "1e23", 1e23, "1e+23", "1e+23", "100000000000000000000000" },
	{ "1e100", 1e100, "1e+100", "1e+100", NULL },
	{ "2^53", 9007199254740992.0, "9007199254740992",
	    "9.007199254740992e+15", "9007199254740992" },
	/* Shortest digits, then zeros: not the exact 9223372036854775808. */
	{ "2^63", 9223372036854775808.0, "9223372036854776000",
	    "9.223372036854776e+18", "9223372036854776000" },
	{ "1e-300", 1e-300, "1e-300", "1e-300", NULL },
	/* Powers of two whose shortest digits lie above the value: printf's
	 * closest of that length does not read back. */
	{ "2^-1017", 0x1p-1017, "7.120236347223045e-307",
	    "7.120236347223045e-307", NULL },
	{ "2^-1007", 0x1p-1007, "7.291122019556398e-304",
	    "7.291122019556398e-304", NULL },
	{ "2^-296", 0x1p-296, "7.854549544476363e-90",
	    "7.854549544476363e-90", NULL },
};

/* 'f' forms too long to spell out: a digit string at a decimal place. */
static int
check_long_f(double v, const char *got)
{
	char want[FMT_DOUBLE_MAX];
	size_t i;

	if (v == 5e-324) {
		strcpy(want, "0.");
		for (i = 0; i < 323; i++)
			strcat(want, "0");
		strcat(want, "5");
		return strcmp(got, want) == 0;
	}
	if (fabs(v) == DBL_MAX) {
		strcpy(want, v < 0 ? "-17976931348623157" :
		    "17976931348623157");
		for (i = 0; i < 292; i++)
			strcat(want, "0");
		return strcmp(got, want) == 0;
	}
	/* Otherwise: no exponent, and it reads back. */
	return strchr(got, 'e') == NULL && strtod(got, NULL) == v;
}

int
main(void)
{
	char s[FMT_DOUBLE_MAX], tiny[4];
	size_t i;
	int n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct fmt_case *c = &cases[i];

		n = fmt_double(s, sizeof(s), c->v, FMT_JSON);
		if (!ok(n >= 0 && strcmp(s, c->json) == 0 &&
		    (size_t)n == strlen(s), "json %s", c->name))
			diag("got '%s' want '%s'", s, c->json);
		n = fmt_double(s, sizeof(s), c->v, FMT_GO_G);
		if (!ok(n >= 0 && strcmp(s, c->g) == 0, "g %s", c->name))
			diag("got '%s' want '%s'", s, c->g);
		n = fmt_double(s, sizeof(s), c->v, FMT_GO_F);
		if (c->f != NULL) {
			if (!ok(n >= 0 && strcmp(s, c->f) == 0, "f %s",
			    c->name))
				diag("got '%s' want '%s'", s, c->f);
		} else
			ok(n >= 0 && check_long_f(c->v, s), "f %s (%d bytes)",
			    c->name, n);
	}

	/* Every finite double reads back from its shortest form. */
	{
		uint64_t x = 0x9e3779b97f4a7c15ULL, bits;
		double v;
		int bad = 0, k;

		for (k = 0; k < 20000; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			bits = x;
			memcpy(&v, &bits, sizeof(v));
			if (!isfinite(v))
				continue;
			if (fmt_double(s, sizeof(s), v, FMT_GO_G) < 0 ||
			    strtod(s, NULL) != v)
				bad++;
			if (fmt_double(s, sizeof(s), v, FMT_GO_F) < 0 ||
			    strtod(s, NULL) != v)
				bad++;
		}
		ok(bad == 0, "20000 random doubles read back (%d bad)", bad);
	}

	n = fmt_double(tiny, sizeof(tiny), 12345.0, FMT_JSON);
	ok(n == -1 && errno == ENOSPC && tiny[0] == '\0',
	    "too small a buffer is ENOSPC");
	n = fmt_double(tiny, sizeof(tiny), 1234.0, FMT_JSON);
	ok(n == -1 && errno == ENOSPC, "room for the digits but not the NUL");
	n = fmt_double(tiny, sizeof(tiny), 123.0, FMT_JSON);
	ok(n == 3 && strcmp(tiny, "123") == 0, "exact fit");
	n = fmt_double(s, sizeof(s), 1.0, (enum fmt_style)99);
	ok(n == -1 && errno == EINVAL, "unknown style is EINVAL");
	return tap_done();
}

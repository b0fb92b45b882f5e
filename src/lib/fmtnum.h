/* fmtnum: doubles written the way Go writes them, digit for digit, so that
 * lgr's JSON, syslog and tag text match the Go Loggregator's. */
#ifndef LGR_FMTNUM_H
#define LGR_FMTNUM_H

#include <stddef.h>

/* Every style uses the shortest digits that read back to the same double
 * (what Go's strconv does with precision -1). */
enum fmt_style {
	/* protojson: 'f' form, or 'e' form when |v| < 1e-6 or >= 1e21, the
	 * exponent written with no leading zeros (1e-7, 1e+21); NaN and
	 * +-Inf as the quoted JSON strings "NaN", "Infinity", "-Infinity". */
	FMT_JSON,
	/* strconv.FormatFloat(v, 'g', -1, 64): 'e' form when the decimal
	 * exponent is < -4 or >= 6, with at least two exponent digits
	 * (2.68435456e+08, 1e-05); NaN, +Inf, -Inf. Also fmt.Sprint. */
	FMT_GO_G,
	/* strconv.FormatFloat(v, 'f', -1, 64): never an exponent. */
	FMT_GO_F,
};

/* Room for any double in any style, with the NUL ('f' of 5e-324 is 326). */
#define FMT_DOUBLE_MAX 352

/* Write v into dst (n bytes, NUL-terminated). Returns the length without
 * the NUL, or -1 with errno ENOSPC when n is too small (dst then holds ""
 * if n > 0) or EINVAL for an unknown style. */
int fmt_double(char *dst, size_t n, double v, enum fmt_style style);

#endif
